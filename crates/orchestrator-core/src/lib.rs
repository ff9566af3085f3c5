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
//!
//! A manager gets the rest of the pattern by implementing five accessors of
//! [`ServiceOrchestrator`]: managed operations it can await, calls that stop
//! with a token, health and configuration.
//!
//! ```
//! use orchestrator_core::{
//!     BoxError, CancelReason, CancellationToken, Cancelled, HostServiceConfig, OperationKind,
//!     OperationsService, ServiceAdapter, ServiceOrchestrator,
//! };
//! use progress::{DataProgressRenderer, ProgressRenderer};
//! use std::sync::Arc;
//! use tokio_util::task::TaskTracker;
//!
//! /// Where the work runs; here, in-process.
//! struct Counter;
//!
//! impl ServiceAdapter for Counter {
//!     fn name(&self) -> &str {
//!         "counter"
//!     }
//!     async fn health(&self) -> Result<(), BoxError> {
//!         Ok(())
//!     }
//! }
//!
//! struct CountingManager {
//!     operations: OperationsService,
//!     adapter: Counter,
//!     config: HostServiceConfig,
//!     tasks: TaskTracker,
//! }
//!
//! impl ServiceOrchestrator for CountingManager {
//!     type Adapter = Counter;
//!     fn operations(&self) -> &OperationsService { &self.operations }
//!     fn adapter(&self) -> &Counter { &self.adapter }
//!     fn host_config(&self) -> &HostServiceConfig { &self.config }
//!     fn renderer(&self) -> Arc<dyn ProgressRenderer> { Arc::new(DataProgressRenderer) }
//!     fn tasks(&self) -> &TaskTracker { &self.tasks }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let manager = CountingManager {
//!     operations: OperationsService::in_memory(),
//!     adapter: Counter,
//!     config: HostServiceConfig::local("COUNTING"),
//!     tasks: TaskTracker::new(),
//! };
//!
//! // A managed operation (listed, watched, cancellable like any), awaited.
//! let params = serde_json::json!({ "to": 1000 });
//! let total: u64 = manager
//!     .execute_with_progress(OperationKind::DataLoad, params, |context| async move {
//!         let mut total = 0;
//!         for n in 1..=1000_u64 {
//!             context.token.check("counting")?;
//!             total += n;
//!         }
//!         Ok::<_, Cancelled>(total)
//!     })
//!     .await?;
//! assert_eq!(total, 500_500);
//!
//! // A call not worth an operation still stops when its token is cancelled.
//! let token = CancellationToken::new();
//! token.cancel(CancelReason::Timeout);
//! let waited = manager
//!     .execute_with_cancellation(&token, "waiting for the host", std::future::pending::<()>())
//!     .await;
//! assert_eq!(waited.unwrap_err().stage, "waiting for the host");
//!
//! let health = manager.health_check().await;
//! assert!(health.healthy && health.active_operations == 0);
//! assert_eq!(manager.configuration().adapter, "counter");
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
    Checkpoint, InvalidOperationId, ListFilter, Operation, OperationId, OperationKind,
    OperationPage, OperationStatus, UnknownName,
};
pub use orchestrator::{
    BoxError, ExecuteError, HealthReport, ServiceAdapter, ServiceConfiguration, ServiceOrchestrator,
};
pub use service::{
    OperationContext, OperationError, OperationWatch, OperationsService, ProgressReporter,
    StartReporter, Transition,
};

// The README's example runs as a doctest too, so it cannot rot.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
struct ReadmeDoctests;
