//! `ServiceOrchestrator`: the behaviour every manager shares — adapter
//! selection, managed operations, health and configuration.

use std::error::Error;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use progress::{ProgressRenderer, ProgressState};
use serde::{Serialize, de::DeserializeOwned};
use tokio::sync::{AcquireError, OwnedSemaphorePermit, Semaphore};
use tokio_util::task::TaskTracker;

use crate::{
    AdapterMode, CancellationToken, Cancelled, HostServiceConfig, OperationContext, OperationError,
    OperationId, OperationKind, OperationStatus, OperationsService, error_chain,
};

/// Any error work may return. A [`Cancelled`] anywhere in its chain makes the
/// operation end `cancelled`.
pub type BoxError = Box<dyn Error + Send + Sync>;

/// The piece a manager delegates its work to (local or host service).
pub trait ServiceAdapter: Send + Sync {
    /// Short name shown in the configuration, e.g. `local` or `host-client`.
    fn name(&self) -> &str;
    /// Whether the adapter can take work now (e.g. its host answers).
    fn health(&self) -> impl Future<Output = Result<(), BoxError>> + Send;
}

/// How a managed operation ended, for callers that awaited it.
#[derive(Debug, thiserror::Error)]
pub enum ExecuteError {
    #[error("operation {id} was cancelled: {reason}")]
    Cancelled {
        id: OperationId,
        reason: crate::CancelReason,
    },
    #[error("operation {id} failed: {error}")]
    Failed { id: OperationId, error: String },
    #[error("operation {id} result could not be read")]
    Result {
        id: OperationId,
        #[source]
        source: serde_json::Error,
    },
    #[error(transparent)]
    Operation(#[from] OperationError),
}

/// A service's adapter mode, as reported to users.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceConfiguration {
    /// The service prefix, e.g. `TRAINING`.
    pub service: &'static str,
    #[serde(flatten)]
    pub mode: AdapterMode,
    pub adapter: String,
}

/// A service's health, as reported to users.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthReport {
    #[serde(flatten)]
    pub configuration: ServiceConfiguration,
    pub healthy: bool,
    /// Why the adapter is unhealthy.
    pub problem: Option<String>,
    /// Pending and running operations of the whole operations service.
    pub active_operations: usize,
}

/// Shared manager behaviour: implement the five accessors, get the rest.
///
/// `TrainingManager` and `DataManager` both implement it, so a training and
/// a data load are registered, observed and cancelled the same way.
pub trait ServiceOrchestrator: Send + Sync {
    type Adapter: ServiceAdapter;

    fn operations(&self) -> &OperationsService;
    fn adapter(&self) -> &Self::Adapter;
    /// Local or host mode, usually from [`HostServiceConfig::from_env`].
    fn host_config(&self) -> &HostServiceConfig;
    /// Renders this service's progress messages.
    fn renderer(&self) -> Arc<dyn ProgressRenderer>;
    /// Tracks the spawned work, so shutdown can wait for it.
    fn tasks(&self) -> &TaskTracker;
    /// Bounds how many operations run at once; the others stay `pending`
    /// and start in the order they were submitted.
    fn admission(&self) -> Option<&Arc<Semaphore>> {
        None
    }
    /// Whether admitted work stays `pending` until it reports, through
    /// [`OperationContext::start`], that it really runs: for work that waits
    /// in a queue of its own first (a pool of busy hosts, a cluster's
    /// scheduler), so the record never says `running` of a job in a queue.
    /// A cancel meanwhile is a request the work answers, as when running.
    /// By default the operation runs once admitted.
    fn defers_start(&self) -> bool {
        false
    }

    /// Registers an operation and runs `work` in the background with its
    /// [`OperationContext`], recording how it ends: `Ok` → `completed` with
    /// the value as result summary; an error carrying [`Cancelled`] (or any
    /// error after the token was cancelled) → `cancelled`; any other error or
    /// a panic → `failed`. Must be called within a tokio runtime.
    fn start_managed_operation<W, Fut, T, E>(
        &self,
        kind: OperationKind,
        params: serde_json::Value,
        work: W,
    ) -> Result<OperationId, OperationError>
    where
        W: FnOnce(OperationContext) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        T: Serialize + Send + 'static,
        E: Into<BoxError> + Send + 'static,
    {
        let context = self
            .operations()
            .create(kind, params, Some(self.renderer()))?;
        let id = context.id.clone();
        let admission = self.admission().cloned().map(Admission::queue);
        if let Some(Admission::Queued(_)) = admission {
            context.progress.report(ProgressState {
                message: WAITING_FOR_A_SLOT.to_owned(),
                ..ProgressState::default()
            });
        }
        self.tasks().spawn(run_managed(
            self.operations().clone(),
            admission,
            self.defers_start(),
            context,
            work,
        ));
        Ok(id)
    }

    /// Runs `work` as a managed operation and awaits its outcome.
    fn execute_with_progress<W, Fut, T, E>(
        &self,
        kind: OperationKind,
        params: serde_json::Value,
        work: W,
    ) -> impl Future<Output = Result<T, ExecuteError>> + Send
    where
        W: FnOnce(OperationContext) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        T: Serialize + DeserializeOwned + Send + 'static,
        E: Into<BoxError> + Send + 'static,
    {
        let started = self
            .start_managed_operation(kind, params, work)
            .and_then(|id| Ok((self.operations().watch(&id)?, id)));
        async move {
            let (mut watch, id) = started?;
            let mut last = None;
            while let Some(snapshot) = watch.next().await {
                last = Some(snapshot);
            }
            let operation = last.ok_or_else(|| OperationError::NotFound(id.clone()))?;
            match operation.status {
                OperationStatus::Completed => {
                    let result = operation.result.unwrap_or_default();
                    serde_json::from_value(result)
                        .map_err(|source| ExecuteError::Result { id, source })
                }
                OperationStatus::Cancelled => Err(ExecuteError::Cancelled {
                    id,
                    reason: operation
                        .cancel_reason
                        .unwrap_or(crate::CancelReason::Shutdown),
                }),
                _ => Err(ExecuteError::Failed {
                    id,
                    error: operation.error.unwrap_or_default(),
                }),
            }
        }
    }

    /// Awaits `work` unless `token` is cancelled first, for calls that are
    /// not worth registering as operations but must still stop promptly.
    fn execute_with_cancellation<F>(
        &self,
        token: &CancellationToken,
        stage: &'static str,
        work: F,
    ) -> impl Future<Output = Result<F::Output, Cancelled>> + Send
    where
        F: Future + Send,
    {
        let token = token.clone();
        async move { token.run_until_cancelled(stage, work).await }
    }

    fn configuration(&self) -> ServiceConfiguration {
        let config = self.host_config();
        ServiceConfiguration {
            service: config.prefix,
            mode: config.mode.clone(),
            adapter: self.adapter().name().to_owned(),
        }
    }

    fn health_check(&self) -> impl Future<Output = HealthReport> + Send {
        let configuration = self.configuration();
        let active_operations = self.operations().active_count();
        let health = self.adapter().health();
        async move {
            let problem = health.await.err().map(|error| error_chain(&*error));
            HealthReport {
                configuration,
                healthy: problem.is_none(),
                problem,
                active_operations,
            }
        }
    }

    /// Waits until all work started by this service has ended. Cancel the
    /// operations first (e.g. `operations().cancel_active(Shutdown)`) for a
    /// prompt shutdown.
    fn drain(&self) -> impl Future<Output = ()> + Send {
        let tasks = self.tasks().clone();
        tasks.close();
        async move { tasks.wait().await }
    }
}

/// The progress message of an operation waiting for its turn.
const WAITING_FOR_A_SLOT: &str = "waiting for a free slot";

/// An operation's place under the admission limit, taken when it is
/// submitted. Tokio's semaphore serves waiters first come, first served, but
/// an acquire joins the queue only when first polled, and a spawned task is
/// polled whenever the scheduler gets to it; polling once at submission
/// makes "first come" mean "first submitted".
enum Admission {
    Admitted(OwnedSemaphorePermit),
    Queued(Pin<Box<dyn Future<Output = Result<OwnedSemaphorePermit, AcquireError>> + Send>>),
}

impl Admission {
    fn queue(semaphore: Arc<Semaphore>) -> Self {
        let mut acquire = Box::pin(semaphore.acquire_owned());
        // The waker is never woken: the task that takes this over polls again
        // with its own, and the place in the queue is kept.
        match acquire
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
        {
            Poll::Ready(Ok(permit)) => Admission::Admitted(permit),
            Poll::Ready(Err(closed)) => {
                Admission::Queued(Box::pin(std::future::ready(Err(closed))))
            }
            Poll::Pending => Admission::Queued(acquire),
        }
    }
}

async fn run_managed<W, Fut, T, E>(
    operations: OperationsService,
    admission: Option<Admission>,
    defers_start: bool,
    context: OperationContext,
    work: W,
) where
    W: FnOnce(OperationContext) -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
    T: Serialize + Send + 'static,
    E: Into<BoxError> + Send + 'static,
{
    let id = context.id.clone();
    let token = context.token.clone();
    let _permit = match admission {
        Some(Admission::Admitted(permit)) => Some(permit),
        Some(Admission::Queued(acquire)) => tokio::select! {
            biased;
            // A cancel request has ended it already; this only covers a
            // token cancelled some other way.
            () = token.cancelled() => {
                let ended = operations.end_cancelled(&id, reason_of(&token), "before it started".to_owned());
                warn_unrecorded(&id, ended);
                return;
            }
            permit = acquire => permit.ok(),
        },
        None => None,
    };
    let started = if defers_start {
        operations.queue_elsewhere(&id)
    } else {
        operations.start(&id)
    };
    match started {
        Ok(crate::Transition::Applied) => {}
        // Cancelled while pending: nothing to run.
        Ok(crate::Transition::Ignored(_)) => return,
        Err(error) => {
            tracing::error!(operation = %id, %error, "could not start operation");
            return;
        }
    }

    // The work runs in this task: a panic while polling it is caught here
    // and recorded, no task of its own is needed.
    let grace = operations.cancel_grace();
    let outcome = tokio::select! {
        outcome = CatchPanic(Box::pin(work(context))) => outcome,
        () = grace_expired(&token, grace) => {
            // Dropping the work discards its result; blocking work it
            // started goes on, and its token, cancelled, refuses any later
            // commit.
            let note = format!("without its work, which was still running {grace:?} after the request");
            warn_unrecorded(&id, operations.end_cancelled(&id, reason_of(&token), note));
            return;
        }
    };
    let recorded = match outcome {
        Ok(Ok(value)) => match serde_json::to_value(value) {
            Ok(result) => operations.complete(&id, result),
            Err(error) => {
                operations.fail(&id, format!("result summary is not valid JSON: {error}"))
            }
        },
        Ok(Err(error)) => {
            let error: BoxError = error.into();
            match Cancelled::find_in(&*error) {
                Some(stop) => operations.stopped(&id, stop),
                None if token.is_cancelled() => {
                    let note = format!("after its work failed: {}", error_chain(&*error));
                    operations.end_cancelled(&id, reason_of(&token), note)
                }
                None => operations.fail(&id, error_chain(&*error)),
            }
        }
        Err(panic) => operations.fail(&id, format!("work panicked: {panic}")),
    };
    warn_unrecorded(&id, recorded);
}

/// Completes `grace` after `token` is cancelled, unless the work has begun
/// committing its result by then: that work is about to return, and
/// abandoning it would leave a result on disk under a `cancelled` operation.
async fn grace_expired(token: &CancellationToken, grace: std::time::Duration) {
    token.cancelled().await;
    tokio::time::sleep(grace).await;
    if token.committed() {
        std::future::pending::<()>().await;
    }
}

fn warn_unrecorded(id: &OperationId, recorded: Result<crate::Transition, OperationError>) {
    if let Err(error) = recorded {
        tracing::error!(operation = %id, %error, "could not record how the operation ended");
    }
}

/// Why `token` was cancelled; only asked once it was.
fn reason_of(token: &CancellationToken) -> crate::CancelReason {
    token.reason().unwrap_or(crate::CancelReason::Shutdown)
}

/// Polls a future and turns a panic while polling it into the panic's
/// message; it is not polled again after that.
struct CatchPanic<F>(Pin<Box<F>>);

impl<F: Future> Future for CatchPanic<F> {
    type Output = Result<F::Output, String>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let work = self.0.as_mut();
        match std::panic::catch_unwind(AssertUnwindSafe(|| work.poll(cx))) {
            Ok(poll) => poll.map(Ok),
            Err(payload) => Poll::Ready(Err(panic_message(payload.as_ref()))),
        }
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic payload".to_owned())
}
