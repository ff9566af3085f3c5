//! Test support (feature `testing`, and this crate's own tests): servers
//! that misbehave on purpose, for the tests of what clients do then.

use std::pin::Pin;

use orchestrator_core::Operation;
use rpc::proto;
use rpc::proto::operations_server::{Operations, OperationsServer};
use tokio_stream::{Stream, StreamExt as _};
use tonic::{Request, Response, Status};

type OperationStream = Pin<Box<dyn Stream<Item = Result<proto::Operation, Status>> + Send>>;

/// Serves, on `listener`, an operations API that takes the cancel request
/// but never answers it, as a hung `trdr serve` would: `StartDataLoad`,
/// `ResumeOperation` and `GetOperation` answer `running`, `WatchOperation`
/// sends it and then nothing, for good. Runs until dropped.
pub async fn serve_hung_on_cancel(listener: tokio::net::TcpListener, running: Operation) {
    let running =
        proto::Operation::try_from(&running).expect("a running operation has no result yet");
    tonic::transport::Server::builder()
        .add_service(OperationsServer::new(HungOnCancel { running }))
        .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
        .await
        .expect("the hung server serves until dropped");
}

struct HungOnCancel {
    running: proto::Operation,
}

#[tonic::async_trait]
impl Operations for HungOnCancel {
    type WatchOperationStream = OperationStream;

    async fn start_training(
        &self,
        _request: Request<proto::StartTrainingOperationRequest>,
    ) -> Result<Response<proto::Operation>, Status> {
        Err(Status::unimplemented("not scripted"))
    }

    async fn start_data_load(
        &self,
        _request: Request<proto::StartDataLoadRequest>,
    ) -> Result<Response<proto::Operation>, Status> {
        Ok(Response::new(self.running.clone()))
    }

    async fn get_operation(
        &self,
        _request: Request<proto::GetOperationRequest>,
    ) -> Result<Response<proto::Operation>, Status> {
        Ok(Response::new(self.running.clone()))
    }

    async fn list_operations(
        &self,
        _request: Request<proto::ListOperationsRequest>,
    ) -> Result<Response<proto::ListOperationsResponse>, Status> {
        Err(Status::unimplemented("not scripted"))
    }

    async fn watch_operation(
        &self,
        _request: Request<proto::WatchOperationRequest>,
    ) -> Result<Response<OperationStream>, Status> {
        let running = tokio_stream::iter([Ok(self.running.clone())]);
        Ok(Response::new(Box::pin(
            running.chain(tokio_stream::pending()),
        )))
    }

    async fn cancel_operation(
        &self,
        _request: Request<proto::CancelOperationRequest>,
    ) -> Result<Response<proto::Operation>, Status> {
        std::future::pending().await
    }

    async fn resume_operation(
        &self,
        _request: Request<proto::ResumeOperationRequest>,
    ) -> Result<Response<proto::Operation>, Status> {
        Ok(Response::new(self.running.clone()))
    }

    async fn get_operation_metrics(
        &self,
        _request: Request<proto::GetOperationRequest>,
    ) -> Result<Response<proto::OperationMetrics>, Status> {
        Err(Status::unimplemented("not scripted"))
    }
}
