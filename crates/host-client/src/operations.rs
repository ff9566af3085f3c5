//! [`OperationsClient`]: the client of `trdr serve`'s operations API: start
//! a training or a data load, get, list, watch, cancel and resume
//! operations, over the same [`HostEndpoint`] connection and [`HostError`]s
//! as the hosts.

use std::time::Duration;

use orchestrator_core::{CancellationToken, Operation, error_chain};
use progress::EpochPoint;
use rpc::proto;
use rpc::proto::operations_client::OperationsClient as GrpcClient;

use crate::endpoint::Connection;
use crate::{ConnectOptions, HostEndpoint, HostError, HostKind};

/// How long a cancel may take to be answered: a server that stopped
/// answering is not waited for (the operation may still be running).
pub const CANCEL_DEADLINE: Duration = Duration::from_secs(2);

/// How long a resume may take to be answered. The server reads the stopped
/// operation and checks its checkpoint before it registers the new one, so
/// it is given longer than a cancel; a server that stopped answering is
/// still not waited for (the new operation may have started meanwhile).
pub const RESUME_DEADLINE: Duration = Duration::from_secs(5);

/// A connection to the operations API of one `trdr serve`. Cheap to clone:
/// clones share the connection.
#[derive(Debug, Clone)]
pub struct OperationsClient {
    endpoint: HostEndpoint,
    client: GrpcClient<Connection>,
}

/// One page of [`OperationsClient::list`].
#[derive(Debug, Clone, PartialEq)]
pub struct OperationPage {
    /// The operations of the page, newest first.
    pub operations: Vec<Operation>,
    /// How many operations match the filter, beyond this page too.
    pub total: u64,
    /// How many operations are active (pending or running) on the server.
    pub active: u64,
}

impl OperationsClient {
    /// Connects to the server at `url` (`http://` is assumed without a
    /// scheme); a server that is down fails within the connect deadline.
    pub async fn connect(url: &str, options: ConnectOptions) -> Result<Self, HostError> {
        Self::connect_to(HostEndpoint::new(HostKind::Operations, url, options)).await
    }

    /// Connects to `endpoint`.
    pub async fn connect_to(endpoint: HostEndpoint) -> Result<Self, HostError> {
        let connection = endpoint
            .connect(&CancellationToken::new())
            .await?
            .expect("a token nobody cancels never stops the connecting");
        let client = GrpcClient::new(connection)
            .max_decoding_message_size(rpc::MAX_MESSAGE_BYTES)
            .max_encoding_message_size(rpc::MAX_MESSAGE_BYTES);
        Ok(Self { endpoint, client })
    }

    pub fn url(&self) -> &str {
        self.endpoint.url()
    }

    /// Submits a training; the server answers with the new operation.
    pub async fn start_training(
        &mut self,
        request: proto::StartTrainingOperationRequest,
    ) -> Result<Operation, HostError> {
        let reply = self.client.start_training(request).await;
        self.operation(reply)
    }

    /// Submits a data load; the server answers with the new operation.
    pub async fn start_data_load(
        &mut self,
        request: proto::StartDataLoadRequest,
    ) -> Result<Operation, HostError> {
        let reply = self.client.start_data_load(request).await;
        self.operation(reply)
    }

    pub async fn get(&mut self, id: &str) -> Result<Operation, HostError> {
        let reply = self
            .client
            .get_operation(proto::GetOperationRequest { id: id.to_owned() })
            .await;
        self.operation(reply)
    }

    /// The finished epochs of a training, in order (none for other work).
    pub async fn metrics(&mut self, id: &str) -> Result<Vec<EpochPoint>, HostError> {
        let reply = self
            .client
            .get_operation_metrics(proto::GetOperationRequest { id: id.to_owned() })
            .await
            .map_err(|status| self.endpoint.status_error(&status))?;
        Ok(reply
            .into_inner()
            .epochs
            .into_iter()
            .map(Into::into)
            .collect())
    }

    /// One page of operations, with the number matching and the number active.
    pub async fn list(
        &mut self,
        request: proto::ListOperationsRequest,
    ) -> Result<OperationPage, HostError> {
        let reply = self
            .client
            .list_operations(request)
            .await
            .map_err(|status| self.endpoint.status_error(&status))?
            .into_inner();
        let operations = reply
            .operations
            .into_iter()
            .map(Operation::try_from)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| self.protocol(&error))?;
        Ok(OperationPage {
            operations,
            total: reply.total,
            active: reply.active,
        })
    }

    /// Asks the server to cancel `id`, with `reason` as the user's note.
    /// Fails with [`HostError::NoAnswer`] after [`CANCEL_DEADLINE`].
    pub async fn cancel(
        &mut self,
        id: &str,
        reason: Option<String>,
    ) -> Result<Operation, HostError> {
        let request = proto::CancelOperationRequest {
            id: id.to_owned(),
            reason,
        };
        let mut client = self.client.clone();
        let reply = client.cancel_operation(request);
        self.answered_within(CANCEL_DEADLINE, reply).await
    }

    /// Asks the server to continue the stopped training `id` from its
    /// checkpoint; the server answers with the new operation. A training
    /// that cannot be resumed is [`HostError::Rejected`] with the server's
    /// reason; fails with [`HostError::NoAnswer`] after [`RESUME_DEADLINE`].
    pub async fn resume(&self, id: &str) -> Result<Operation, HostError> {
        let request = proto::ResumeOperationRequest { id: id.to_owned() };
        let mut client = self.client.clone();
        let reply = client.resume_operation(request);
        self.answered_within(RESUME_DEADLINE, reply).await
    }

    /// The server's snapshots of `id`: the current one at once, then each
    /// change, until the terminal one.
    pub async fn watch(&mut self, id: &str) -> Result<OperationWatch, HostError> {
        let stream = self
            .client
            .watch_operation(proto::WatchOperationRequest { id: id.to_owned() })
            .await
            .map_err(|status| self.endpoint.status_error(&status))?
            .into_inner();
        Ok(OperationWatch {
            client: self.clone(),
            stream,
        })
    }

    /// The operation `reply` answers with, unless it takes longer than `deadline`.
    async fn answered_within(
        &self,
        deadline: Duration,
        reply: impl Future<Output = Result<tonic::Response<proto::Operation>, tonic::Status>>,
    ) -> Result<Operation, HostError> {
        match tokio::time::timeout(deadline, reply).await {
            Ok(reply) => self.operation(reply),
            Err(_) => Err(HostError::NoAnswer {
                kind: self.endpoint.kind(),
                url: self.url().to_owned(),
                waited: deadline,
            }),
        }
    }

    fn operation(
        &self,
        reply: Result<tonic::Response<proto::Operation>, tonic::Status>,
    ) -> Result<Operation, HostError> {
        let wire = reply.map_err(|status| self.endpoint.status_error(&status))?;
        Operation::try_from(wire.into_inner()).map_err(|error| self.protocol(&error))
    }

    fn protocol(&self, error: &rpc::WireError) -> HostError {
        HostError::Protocol {
            kind: self.endpoint.kind(),
            url: self.url().to_owned(),
            message: error_chain(error),
        }
    }
}

/// A `WatchOperation` stream: the snapshots of one operation.
#[derive(Debug)]
pub struct OperationWatch {
    client: OperationsClient,
    stream: tonic::Streaming<proto::Operation>,
}

impl OperationWatch {
    /// The next snapshot; `None` once the server ended the stream.
    pub async fn next(&mut self) -> Result<Option<Operation>, HostError> {
        let wire = self
            .stream
            .message()
            .await
            .map_err(|status| self.client.endpoint.status_error(&status))?;
        wire.map(Operation::try_from)
            .transpose()
            .map_err(|error| self.client.protocol(&error))
    }

    /// A client on the watch's connection, to cancel or get the operation
    /// while the watch goes on.
    pub fn client(&self) -> OperationsClient {
        self.client.clone()
    }
}

#[cfg(test)]
mod tests {
    use orchestrator_core::{OperationKind, OperationStatus};

    use super::*;

    fn running() -> Operation {
        let mut operation = Operation::new(
            OperationKind::DataLoad,
            serde_json::Value::Null,
            chrono::DateTime::UNIX_EPOCH,
        );
        operation.status = OperationStatus::Running;
        operation
    }

    // Real time: the cancel deadline is waited once (2 s); the assertion is
    // on the error, not on the time taken.
    #[tokio::test]
    async fn a_cancel_the_server_never_answers_fails_after_the_deadline() {
        let operation = running();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(crate::testing::serve_hung_on_cancel(
            listener,
            operation.clone(),
        ));
        let mut client = OperationsClient::connect(&url, ConnectOptions::operations_server())
            .await
            .unwrap();
        let mut watch = client.watch(operation.id.as_str()).await.unwrap();
        assert_eq!(watch.next().await.unwrap(), Some(operation.clone()));

        let error = watch
            .client()
            .cancel(operation.id.as_str(), None)
            .await
            .unwrap_err();
        assert_eq!(
            error,
            HostError::NoAnswer {
                kind: HostKind::Operations,
                url: url.clone(),
                waited: CANCEL_DEADLINE,
            }
        );
        assert_eq!(
            error.to_string(),
            format!("trdr server at {url} did not answer within 2 s")
        );
        // Get still answers: only the cancel hangs.
        assert_eq!(client.get(operation.id.as_str()).await.unwrap(), operation);
    }

    #[tokio::test]
    async fn a_resume_answers_with_the_new_operation() {
        let operation = running();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(crate::testing::serve_hung_on_cancel(
            listener,
            operation.clone(),
        ));
        let client = OperationsClient::connect(&url, ConnectOptions::operations_server())
            .await
            .unwrap();
        let stopped = "op_training_20200101_000000_deadbeef";
        assert_eq!(client.resume(stopped).await.unwrap(), operation);
    }

    #[tokio::test]
    async fn a_server_that_is_down_is_unreachable_naming_its_url() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let error = OperationsClient::connect(&url, ConnectOptions::operations_server())
            .await
            .unwrap_err();
        assert!(matches!(error, HostError::Unreachable { .. }), "{error:?}");
        assert!(
            error
                .to_string()
                .starts_with(&format!("trdr server at {url} is not reachable")),
            "{error}"
        );
    }
}
