//! gRPC clients of trdr's servers: the training host (`trdr host-service`),
//! the data host it also serves, and the operations API (`trdr serve`).
//! Everything in trdr that dials a server goes through this crate.
//!
//! - [`HostEndpoint`] connects with a deadline, retrying only connection
//!   set-up (with back-off), and keeps the connection checked with HTTP/2
//!   keep-alive pings so a host that dies is noticed within seconds.
//! - [`TrainingHostClient`] runs one training on a training host: events
//!   become progress of the local operation and announcements of the
//!   checkpoints it saves there (each fetched whole with
//!   `fetch_checkpoint`), cancelling the token sends `CancelTraining` and
//!   drops the event stream, and the finished model's files are fetched
//!   into a folder. A checkpoint saved here travels the other way
//!   (`upload_checkpoint`) for a training there to continue from
//!   (`train_from`). Its `status` asks what the host can take
//!   ([`HostStatus`]: capacity, sessions waiting or running, backends,
//!   version), answered within [`STATUS_DEADLINE`] or not waited for.
//! - [`DataHostClient`] streams bars from a data host; it is market-data's
//!   `RemoteBars`, which `DataManager::with_remote` takes for the fetching
//!   load modes.
//! - [`OperationsClient`] starts, gets, lists, watches, cancels and resumes
//!   the operations of a `trdr serve`; a cancel not answered within
//!   [`CANCEL_DEADLINE`] (a resume, [`RESUME_DEADLINE`]) fails rather than
//!   waits.
//! - Every failure is a [`HostError`] naming the host URL; `tonic::Status`
//!   never leaves this crate.
//!
//! ```no_run
//! use host_client::{ConnectOptions, HostEndpoint, HostKind};
//! use orchestrator_core::CancellationToken;
//!
//! # async fn demo() -> Result<(), host_client::HostError> {
//! let endpoint = HostEndpoint::new(
//!     HostKind::Training,
//!     "http://127.0.0.1:50052",
//!     ConnectOptions::from_env(),
//! );
//! // Fails within the connect deadline, naming the URL, when nothing listens there.
//! endpoint.check_reachable(&CancellationToken::new()).await?;
//! # Ok(())
//! # }
//! ```

mod data;
mod endpoint;
mod error;
mod operations;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
mod training;

pub use data::{DataHostClient, data_manager_from_env};
pub use endpoint::{ConnectOptions, HostEndpoint};
pub use error::{HostError, HostKind};
pub use operations::{
    CANCEL_DEADLINE, OperationPage, OperationWatch, OperationsClient, RESUME_DEADLINE,
};
pub use training::{
    FetchedCheckpoint, HostStatus, RemoteCheckpoint, RemoteCompletion, RemoteStop,
    RemoteTrainingError, RemoteUpdate, STATUS_DEADLINE, TrainingHostClient,
};
