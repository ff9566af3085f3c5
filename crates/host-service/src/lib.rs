//! The training host (`trdr host-service`): a gRPC server that runs a
//! [`LocalTrainer`](local_trainer::LocalTrainer) per session, streams its
//! typed progress, honours cancellation and serves the bars of its data store.
//!
//! [`serve`] serves, on a listener the caller bound:
//! - `trdr.v1.TrainingHost`: `StartTraining` answers with a stream of
//!   events (`Accepted`, progress, then exactly one of `Completed`, `Failed`,
//!   `Cancelled`). Each session trains on a thread of its own with its own
//!   cancellation token; at most [`HostOptions::max_concurrent`] train at once
//!   and the others wait (`WAITING`, with their place in line as the progress
//!   message). `CancelTraining`, or dropping the event stream, cancels the
//!   session's token and the trainer stops within a batch. `FetchArtifact`
//!   streams a completed session's model files, `manifest.json` last.
//! - `trdr.v1.DataHost`: `ListSeries` and `FetchBars` over the data store.
//! - the standard gRPC health service (both services `SERVING`) and server
//!   reflection.
//!
//! The two trdr services refuse calls without the [`HostOptions::auth_token`]
//! when one is set (`UNAUTHENTICATED`). When `shutdown` completes, every
//! waiting and running session is cancelled with `CancelReason::Shutdown`;
//! the server stops once their trainers have returned and their streams have
//! sent `Cancelled`.
//!
//! ```no_run
//! use host_service::{HostOptions, serve};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:50052").await?;
//! let options = HostOptions {
//!     data_dir: "data".into(),
//!     models_dir: "models".into(),
//!     max_concurrent: 1,
//!     auth_token: None,
//! };
//! let ctrl_c = async {
//!     let _ = tokio::signal::ctrl_c().await;
//! };
//! serve(listener, options, ctrl_c).await?;
//! # Ok(())
//! # }
//! ```

mod artifact;
mod data;
#[cfg(any(test, fuzzing))]
pub mod fuzzing;
mod sessions;
mod training;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rpc::auth::RequireToken;
use rpc::proto::data_host_server::DataHostServer;
use rpc::proto::training_host_server::TrainingHostServer;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;

use crate::data::DataService;
use crate::training::{Host, TrainingService};

/// How often the server pings an idle connection, and how long it waits
/// for the answer: a caller that vanished without closing its connection
/// is noticed within seconds, and its sessions are cancelled.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(1);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(2);

/// How a training host runs.
#[derive(Clone)]
pub struct HostOptions {
    /// The data store trainings read and `DataHost` serves.
    pub data_dir: PathBuf,
    /// Where trainings write their artifacts.
    pub models_dir: PathBuf,
    /// Trainings that run at once; later ones wait in line. 0 counts as 1.
    pub max_concurrent: usize,
    /// The token callers must send; `None` or empty accepts every caller.
    pub auth_token: Option<String>,
}

impl std::fmt::Debug for HostOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostOptions")
            .field("data_dir", &self.data_dir)
            .field("models_dir", &self.models_dir)
            .field("max_concurrent", &self.max_concurrent)
            // The secret stays out of logs.
            .field("auth_token", &self.auth_token.as_ref().map(|_| "<set>"))
            .finish()
    }
}

/// Why the host stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum HostServiceError {
    #[error("cannot read the address the listener is bound to")]
    Address(#[source] std::io::Error),
    #[error("serving gRPC on {addr}")]
    Serve {
        addr: SocketAddr,
        #[source]
        source: tonic::transport::Error,
    },
}

/// Serves the training host on `listener` until `shutdown` completes, then
/// cancels every session, waits for their trainers and stops.
pub async fn serve(
    listener: tokio::net::TcpListener,
    options: HostOptions,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), HostServiceError> {
    let addr = listener.local_addr().map_err(HostServiceError::Address)?;
    let host = Arc::new(Host::new(
        options.data_dir.clone(),
        options.models_dir.clone(),
        options.max_concurrent,
    ));
    let auth = RequireToken::new(options.auth_token.as_deref());
    let training = TrainingHostServer::new(TrainingService::new(Arc::clone(&host)))
        .max_decoding_message_size(rpc::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(rpc::MAX_MESSAGE_BYTES);
    let data = DataHostServer::new(DataService::new(options.data_dir.clone()))
        .max_decoding_message_size(rpc::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(rpc::MAX_MESSAGE_BYTES);

    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<TrainingHostServer<TrainingService>>()
        .await;
    health.set_serving::<DataHostServer<DataService>>().await;

    tracing::info!(%addr, ?options, "training host serving");
    let drain = async move {
        shutdown.await;
        tracing::info!("shutting down: cancelling every training session");
        health
            .set_not_serving::<TrainingHostServer<TrainingService>>()
            .await;
        health
            .set_not_serving::<DataHostServer<DataService>>()
            .await;
        host.shutdown().await;
        tracing::info!("every training session has ended");
    };
    Server::builder()
        .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
        .add_service(InterceptedService::new(training, auth.clone()))
        .add_service(InterceptedService::new(data, auth))
        .add_service(health_service)
        .add_service(rpc::reflection_service())
        // Without no-delay, small replies (a cancel's answer) wait ~40 ms for a
        // delayed ACK; tonic applies its own TCP options only to listeners it binds.
        .serve_with_incoming_shutdown(TcpIncoming::from(listener).with_nodelay(Some(true)), drain)
        .await
        .map_err(|source| HostServiceError::Serve { addr, source })
}
