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
//!   streams a completed session's model files, `manifest.json` last. Each
//!   checkpoint a session saves (in the models folder's `.checkpoints`) is
//!   announced in its event stream (`CheckpointSaved`), and
//!   `FetchCheckpoint` streams the one it last saved. `UploadCheckpoint`
//!   writes a checkpoint saved elsewhere into that folder under a name the
//!   host chooses (`upload-….ckpt`); a `StartTraining` naming it in
//!   `resume_checkpoint` continues from it and removes it once it
//!   completes. `GetStatus` says what the host can take, for a caller
//!   choosing among hosts: its capacity ([`HostOptions::max_concurrent`]),
//!   the sessions waiting or running now, the backends it trains on (its
//!   default, [`HostOptions::backend`], first) and its version. A request
//!   that names no backend trains on the default; one naming a backend the
//!   host does not offer is refused (`FAILED_PRECONDITION`).
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
//!     backend: local_trainer::Backend::Flex,
//! };
//! let ctrl_c = async {
//!     let _ = tokio::signal::ctrl_c().await;
//! };
//! serve(listener, options, ctrl_c).await?;
//! # Ok(())
//! # }
//! ```

mod artifact;
mod checkpoint;
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

pub use local_trainer::Backend;
use local_trainer::BackendUnavailable;
use rpc::Secret;
use rpc::proto::data_host_server::DataHostServer;
use rpc::proto::training_host_server::TrainingHostServer;
use rpc::server::{KeepAlive, ServerBuilder};

use crate::data::DataService;
use crate::training::{Host, TrainingService};

/// How often the server pings an idle connection, and how long it waits
/// for the answer: a caller that vanished without closing its connection
/// is noticed within seconds, and its sessions are cancelled.
const KEEP_ALIVE: KeepAlive = KeepAlive {
    interval: Duration::from_secs(1),
    timeout: Duration::from_secs(2),
};

/// How a training host runs.
#[derive(Debug, Clone)]
pub struct HostOptions {
    /// The data store trainings read and `DataHost` serves.
    pub data_dir: PathBuf,
    /// Where trainings write their artifacts.
    pub models_dir: PathBuf,
    /// Trainings that run at once; later ones wait in line. 0 counts as 1.
    /// `GetStatus` reports it as the host's capacity.
    pub max_concurrent: usize,
    /// The token callers must send; `None` accepts every caller.
    pub auth_token: Option<Secret>,
    /// What a session trains on when its request names no backend. A GPU
    /// backend is opened before the host serves, and offered besides the
    /// CPU ones.
    pub backend: Backend,
}

/// Why the host stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum HostServiceError {
    #[error("cannot train on the host's backend")]
    Backend(#[from] BackendUnavailable),
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
    let device = local_trainer::probe(options.backend)?;
    tracing::info!(backend = %options.backend, %device, "training backend opened");
    let host = Arc::new(Host::new(
        options.data_dir.clone(),
        options.models_dir.clone(),
        options.max_concurrent,
        options.backend,
    ));
    let training = TrainingHostServer::new(TrainingService::new(Arc::clone(&host)))
        .max_decoding_message_size(rpc::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(rpc::MAX_MESSAGE_BYTES);
    let data = DataHostServer::new(DataService::new(options.data_dir.clone()))
        .max_decoding_message_size(rpc::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(rpc::MAX_MESSAGE_BYTES);

    let server = ServerBuilder::new(options.auth_token.as_ref(), KEEP_ALIVE)
        .add_service(training)
        .add_service(data);
    let health = server.health();

    tracing::info!(%addr, ?options, "training host serving");
    let drain = async move {
        shutdown.await;
        tracing::info!("shutting down: cancelling every training session");
        health.set_not_serving().await;
        host.shutdown().await;
        tracing::info!("every training session has ended");
    };
    server
        .serve(listener, drain)
        .await
        .map_err(|source| HostServiceError::Serve { addr, source })
}
