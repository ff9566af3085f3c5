//! trdr's gRPC services, generated at build time from `proto/trdr/v1/*.proto`
//! with a pure-Rust protobuf compiler, and the conversions between wire
//! messages and the core types of `progress` and `orchestrator-core`.
//!
//! - [`proto`]: messages, clients (`proto::training_host_client::…`) and
//!   server traits (`proto::operations_server::…`) of the `TrainingHost`,
//!   `DataHost` and `Operations` services.
//! - Conversions: `From<&ProgressState> for proto::Progress` and back,
//!   likewise for [`Operation`](orchestrator_core::Operation),
//!   [`CancelReason`](orchestrator_core::CancelReason), statuses and kinds,
//!   and the results: a training's
//!   [`TrainingSummary`](strategy::TrainingSummary) and a data load's
//!   [`LoadSummary`](market_data::LoadSummary) travel as typed messages
//!   ([`operation_result`] reads an operation's stored JSON as its kind's
//!   type). Wire messages that cannot be core values give a [`WireError`]
//!   naming the field; a stored result that is not its kind's type, a
//!   [`ResultError`].
//! - [`auth`]: the shared-token check every server applies, and the header
//!   clients send; [`Secret`], the token as options hold it (`Debug` says
//!   only `<set>`).
//! - [`server`]: [`ServerBuilder`](server::ServerBuilder), the one set-up of
//!   both trdr servers: health, reflection v1 and v1alpha, auth, TCP no-delay,
//!   HTTP/2 keep-alive.
//! - [`MAX_MESSAGE_BYTES`], [`MAX_CHECKPOINT_BYTES`],
//!   [`CANCEL_CONFIRM_WINDOW`]: how large a message and a checkpoint may
//!   be, how long a cancel's confirmation may take.
//! - [`CheckpointName`]: the name of a checkpoint a training host keeps
//!   for a caller ([`resume_checkpoint`] reads it from a
//!   `StartTrainingRequest`), one plain file name.
//!
//! ```
//! use progress::{ProgressContext, ProgressState, Step, TrainingContext};
//!
//! let state = ProgressState {
//!     percentage: 42.0,
//!     message: "Training MLP model on EURUSD [1h] [epoch 3/10]".into(),
//!     context: ProgressContext::Training(TrainingContext {
//!         epoch: Some(Step::new(3, 10)),
//!         ..TrainingContext::default()
//!     }),
//!     ..ProgressState::default()
//! };
//! let wire = rpc::proto::Progress::from(&state);
//! assert_eq!(ProgressState::try_from(wire).unwrap(), state);
//! ```

pub mod auth;
mod convert;
mod secret;
pub mod server;
#[cfg(feature = "testing")]
pub mod testing;

pub use convert::{
    CheckpointName, ResultError, WireError, datetime, operation_result, resume_checkpoint,
    timestamp,
};
pub use secret::Secret;

/// Code generated from `proto/trdr/v1/*.proto` (package `trdr.v1`).
#[allow(
    missing_docs,
    unreachable_pub,
    missing_debug_implementations,
    clippy::all,
    clippy::pedantic
)]
pub mod proto {
    tonic::include_proto!("trdr.v1");
}

/// The encoded descriptors of every trdr service, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/trdr_descriptor.bin"));

/// The largest message a trdr server or client sends or accepts. Bars and
/// artifacts travel in chunks well below it.
pub const MAX_MESSAGE_BYTES: usize = 8 * 1024 * 1024;

/// The largest checkpoint that travels between a trdr and a training host,
/// either way: a fetch holds it in memory until it is whole, and a host
/// refuses larger uploads.
pub const MAX_CHECKPOINT_BYTES: u64 = 1024 * 1024 * 1024;

/// How long a training host's `CancelTraining` waits for the session to end
/// before it answers with the session as it is, and so how long a client
/// waits for that answer (plus its way back) before it counts the stop as
/// unconfirmed. One window, so neither side gives up while the other waits.
pub const CANCEL_CONFIRM_WINDOW: std::time::Duration = std::time::Duration::from_secs(5);
