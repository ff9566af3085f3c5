//! Operations that report typed progress and stop when cancelled.
//!
//! Every long job in trdr (loading data, training a model) is an
//! *operation*: registered with an [`OperationsService`], observable through
//! structured [`ProgressState`](progress::ProgressState) snapshots, and
//! cancellable at any moment through its [`CancellationToken`], which the
//! work checks in its innermost loop. Managers share this behaviour by
//! implementing [`ServiceOrchestrator`].
//!
//! ```
//! use orchestrator_core::{
//!     CancelReason, Cancelled, OperationContext, OperationKind, OperationStatus, OperationsService,
//! };
//! use progress::{Items, ProgressState};
//!
//! /// Reads bars until cancelled, checking the token at every step.
//! fn read_bars(context: &OperationContext) -> Result<(), Cancelled> {
//!     for bar in 0..u64::MAX {
//!         context.token.check("reading bars")?;
//!         if bar % 1000 == 0 {
//!             let items = Some(Items { processed: bar, total: None });
//!             context.progress.report(ProgressState { items, ..ProgressState::default() });
//!         }
//!     }
//!     Ok(())
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let operations = OperationsService::in_memory();
//! let context = operations.create(OperationKind::DataLoad, serde_json::json!({ "symbol": "EURUSD" }), None)?;
//! let id = context.id.clone();
//! operations.start(&id)?;
//! let mut watch = operations.watch(&id)?;
//!
//! // Blocking work on its own thread, which records how it ended.
//! let worker = std::thread::spawn({
//!     let operations = operations.clone();
//!     move || match read_bars(&context) {
//!         Ok(()) => operations.complete(&context.id, serde_json::Value::Null),
//!         Err(stop) => operations.stopped(&context.id, &stop),
//!     }
//! });
//!
//! // Ask for a stop once progress arrives. The operation stays `running`,
//! // with the request visible, until the loop stops at its next check.
//! while let Some(snapshot) = watch.next().await {
//!     if snapshot.progress.items.is_some() && !snapshot.cancel_requested() {
//!         operations.cancel(&id, CancelReason::UserRequest(None))?;
//!     }
//! }
//! worker.join().unwrap()?;
//! let operation = operations.get(&id)?;
//! assert_eq!(operation.status, OperationStatus::Cancelled);
//! assert_eq!(operation.error.as_deref(), Some("during reading bars"));
//! # Ok(())
//! # }
//! ```

mod cancel;
mod chain;
mod host_config;
mod operation;
mod orchestrator;
mod service;
pub mod store;

pub use cancel::{CancelReason, CancellationToken, Cancelled};
pub use chain::error_chain;
pub use host_config::{AdapterMode, ConfigError, HostServiceConfig};
pub use operation::{
    InvalidOperationId, ListFilter, Operation, OperationId, OperationKind, OperationPage,
    OperationStatus, UnknownName,
};
pub use orchestrator::{
    BoxError, ExecuteError, HealthReport, ServiceAdapter, ServiceConfiguration, ServiceOrchestrator,
};
pub use service::{
    OperationContext, OperationError, OperationWatch, OperationsService, ProgressReporter,
    Transition,
};

// The README's example runs as a doctest too, so it cannot rot.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
struct ReadmeDoctests;
