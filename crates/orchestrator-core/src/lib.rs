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
//! use orchestrator_core::{CancelReason, Cancelled, OperationKind, OperationStatus, OperationsService};
//! use progress::{Items, ProgressState};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let operations = OperationsService::in_memory();
//! let context = operations.create(OperationKind::DataLoad, serde_json::json!({ "symbol": "EURUSD" }), None)?;
//! let id = context.id.clone();
//! operations.start(&id)?;
//! let mut watch = operations.watch(&id)?;
//!
//! // Blocking work on its own thread checks the token at every step.
//! let worker = std::thread::spawn(move || -> Result<(), Cancelled> {
//!     for bar in 0..u64::MAX {
//!         context.token.check("reading bars")?;
//!         if bar % 1000 == 0 {
//!             let items = Some(Items { processed: bar, total: None });
//!             context.progress.report(ProgressState { items, ..ProgressState::default() });
//!         }
//!     }
//!     Ok(())
//! });
//!
//! // Cancel as soon as some progress arrives; the loop stops at its next check.
//! while let Some(snapshot) = watch.next().await {
//!     if snapshot.status == OperationStatus::Running && snapshot.progress.items.is_some() {
//!         operations.cancel(&id, CancelReason::UserRequest(None))?;
//!     }
//! }
//! assert_eq!(worker.join().unwrap().unwrap_err().stage, "reading bars");
//! assert_eq!(operations.get(&id)?.status, OperationStatus::Cancelled);
//! # Ok(())
//! # }
//! ```

mod cancel;
mod host_config;
mod operation;
mod orchestrator;
mod service;
pub mod store;

pub use cancel::{CancelReason, CancellationToken, Cancelled};
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
