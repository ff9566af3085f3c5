//! A small reference service that counts to N on a blocking thread, showing
//! the whole ServiceOrchestrator pattern end to end: managed operations,
//! progress, cancellation reaching a blocking loop, outcomes and admission.

mod cancel_race;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use orchestrator_core::{
    BoxError, CancelReason, Cancelled, ExecuteError, HostServiceConfig, OperationContext,
    OperationId, OperationKind, OperationStatus, OperationsService, ServiceAdapter,
    ServiceOrchestrator,
};
use progress::{
    DataContext, DataProgressRenderer, Items, ProgressContext, ProgressRenderer, ProgressState,
};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;

/// The adapter: does the counting, checking its token at every step.
#[derive(Debug, Default)]
struct CountingAdapter {
    healthy: bool,
}

impl ServiceAdapter for CountingAdapter {
    fn name(&self) -> &str {
        "local-counter"
    }

    async fn health(&self) -> Result<(), BoxError> {
        if self.healthy {
            Ok(())
        } else {
            Err("counter host unreachable".into())
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Counted {
    total: u64,
}

#[derive(Debug, thiserror::Error)]
enum CountError {
    #[error("counting stopped")]
    Stopped(#[from] Cancelled),
    #[error("refusing to count to {0}")]
    Refused(u64),
}

impl CountingAdapter {
    /// Blocking work, as a burn training loop is.
    fn count(
        context: &OperationContext,
        to: u64,
        counted: &AtomicU64,
    ) -> Result<Counted, CountError> {
        if to == 13 {
            return Err(CountError::Refused(to));
        }
        for n in 1..=to {
            context.token.check("counting")?;
            counted.store(n, Ordering::Relaxed);
            if n % 1024 == 0 || n == to {
                context.progress.report(ProgressState {
                    percentage: 100.0 * n as f64 / to as f64,
                    items: Some(Items {
                        processed: n,
                        total: Some(to),
                    }),
                    context: ProgressContext::Data(DataContext {
                        bars_loaded: n,
                        ..DataContext::default()
                    }),
                    ..ProgressState::default()
                });
            }
            std::hint::black_box(n);
        }
        Ok(Counted { total: to })
    }
}

/// The manager: hands out its parts and gets the orchestration for free.
#[derive(Debug)]
struct CountingManager {
    operations: OperationsService,
    adapter: CountingAdapter,
    config: HostServiceConfig,
    tasks: TaskTracker,
    admission: Option<Arc<Semaphore>>,
    counted: Arc<AtomicU64>,
    /// Its work queues itself elsewhere before it runs.
    defers_start: bool,
}

impl CountingManager {
    fn new(max_concurrent: Option<usize>) -> Self {
        Self {
            operations: OperationsService::in_memory(),
            adapter: CountingAdapter { healthy: true },
            config: HostServiceConfig::local("COUNTING"),
            tasks: TaskTracker::new(),
            admission: max_concurrent.map(|n| Arc::new(Semaphore::new(n))),
            counted: Arc::default(),
            defers_start: false,
        }
    }

    fn count_to(&self, to: u64) -> OperationId {
        let counted = Arc::clone(&self.counted);
        self.start_managed_operation(
            OperationKind::DataLoad,
            serde_json::json!({ "to": to }),
            move |context| async move {
                tokio::task::spawn_blocking(move || CountingAdapter::count(&context, to, &counted))
                    .await
                    .expect("counting thread panicked")
            },
        )
        .unwrap()
    }

    async fn finished(&self, id: &OperationId) -> orchestrator_core::Operation {
        let mut watch = self.operations.watch(id).unwrap();
        let mut last = None;
        while let Some(snapshot) = watch.next().await {
            last = Some(snapshot);
        }
        last.unwrap()
    }
}

impl ServiceOrchestrator for CountingManager {
    type Adapter = CountingAdapter;
    fn operations(&self) -> &OperationsService {
        &self.operations
    }
    fn adapter(&self) -> &CountingAdapter {
        &self.adapter
    }
    fn host_config(&self) -> &HostServiceConfig {
        &self.config
    }
    fn renderer(&self) -> Arc<dyn ProgressRenderer> {
        Arc::new(DataProgressRenderer)
    }
    fn tasks(&self) -> &TaskTracker {
        &self.tasks
    }
    fn admission(&self) -> Option<&Arc<Semaphore>> {
        self.admission.as_ref()
    }
    fn defers_start(&self) -> bool {
        self.defers_start
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_managed_operation_completes_with_its_result_and_rendered_progress() {
    let manager = CountingManager::new(None);
    let id = manager.count_to(10_000);
    let done = manager.finished(&id).await;
    assert_eq!(done.status, OperationStatus::Completed);
    assert_eq!(done.result, Some(serde_json::json!({ "total": 10_000 })));
    assert_eq!(done.progress.percentage, 100.0);
    assert_eq!(done.progress.message, "Loading data 10000 bars ETA 0s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_stops_the_blocking_loop_before_it_finishes() {
    let manager = CountingManager::new(None);
    let id = manager.count_to(u64::MAX);
    let mut watch = manager.operations.watch(&id).unwrap();
    // Wait until the loop is really running.
    while watch.next().await.unwrap().progress.items.is_none() {}
    manager
        .operations
        .cancel(&id, CancelReason::UserRequest(Some("test".into())))
        .unwrap();
    let requested = manager.operations.get(&id).unwrap();
    assert!(requested.cancel_requested());

    let done = manager.finished(&id).await;
    assert_eq!(done.status, OperationStatus::Cancelled);
    assert_eq!(
        done.cancel_reason,
        Some(CancelReason::UserRequest(Some("test".into())))
    );
    assert_eq!(done.error.as_deref(), Some("during counting"));
    // `cancelled` is recorded only once the work has returned: the blocking
    // thread has stopped, short of its goal.
    assert!(manager.counted.load(Ordering::Relaxed) < u64::MAX);
    manager.drain().await;
}

#[tokio::test]
async fn a_cancelled_error_maps_to_status_cancelled_not_failed() {
    let manager = CountingManager::new(None);
    // The work stops on its own token (e.g. a parent shutdown) without a
    // cancel request through the service.
    let id = manager
        .start_managed_operation(
            OperationKind::Training,
            serde_json::json!({}),
            |context| async move {
                let child = context.token.child();
                child.cancel(CancelReason::Timeout);
                child.check("evaluation").map_err(CountError::from)?;
                Ok::<_, CountError>(())
            },
        )
        .unwrap();
    let done = manager.finished(&id).await;
    assert_eq!(done.status, OperationStatus::Cancelled);
    assert_eq!(done.cancel_reason, Some(CancelReason::Timeout));
    assert_eq!(done.error.as_deref(), Some("during evaluation"));
    assert!(!done.cancel_requested());
}

/// Starts work that signals when it runs and then waits for `release`,
/// ignoring its token, and returns what `release` sends.
fn start_held_work(
    manager: &CountingManager,
) -> (
    OperationId,
    tokio::sync::oneshot::Receiver<orchestrator_core::CancellationToken>,
    tokio::sync::oneshot::Sender<Result<Counted, CountError>>,
) {
    let (started_tx, started) = tokio::sync::oneshot::channel();
    let (release, released) = tokio::sync::oneshot::channel();
    let id = manager
        .start_managed_operation(
            OperationKind::Training,
            serde_json::json!({}),
            |context| async move {
                let _ = started_tx.send(context.token.clone());
                released.await.expect("the test releases the work")
            },
        )
        .unwrap();
    (id, started, release)
}

#[tokio::test]
async fn a_cancelled_operation_stays_running_and_active_until_its_work_returns() {
    let manager = CountingManager::new(None);
    let (id, started, release) = start_held_work(&manager);
    let token = started.await.unwrap();
    let requested = manager
        .operations
        .cancel(&id, CancelReason::UserRequest(None))
        .unwrap();
    assert_eq!(requested.status, OperationStatus::Running);
    assert!(requested.cancel_requested() && token.is_cancelled());
    assert_eq!(manager.health_check().await.active_operations, 1);

    let stop = token.cancelled_error("training on the host; the remote stop was not confirmed");
    release.send(Err(CountError::Stopped(stop))).unwrap();
    let done = manager.finished(&id).await;
    assert_eq!(done.status, OperationStatus::Cancelled);
    assert_eq!(
        done.error.as_deref(),
        Some("during training on the host; the remote stop was not confirmed")
    );
    assert_eq!(done.cancel_requested_at, requested.cancel_requested_at);
    assert_eq!(manager.operations.active_count(), 0);
}

/// Starts work that waits in a queue of its own: it says why, waits for
/// `run`, reports that it runs on "node-1", then waits for `release`.
fn start_queued_work(
    manager: &CountingManager,
) -> (
    OperationId,
    tokio::sync::oneshot::Sender<()>,
    tokio::sync::oneshot::Sender<Result<Counted, CountError>>,
) {
    let (run, runs) = tokio::sync::oneshot::channel::<()>();
    let (release, released) = tokio::sync::oneshot::channel();
    let id = manager
        .start_managed_operation(
            OperationKind::Training,
            serde_json::json!({}),
            |context| async move {
                context.start.waiting("queued: Resources");
                tokio::select! {
                    ran = runs => {
                        ran.expect("the test lets the work run");
                        context.start.running("node-1");
                    }
                    () = context.token.cancelled() => {
                        return Err(CountError::Stopped(context.token.cancelled_error("the queue")));
                    }
                }
                released.await.expect("the test releases the work")
            },
        )
        .unwrap();
    (id, run, release)
}

/// The first snapshot of `id` that `accept` takes.
async fn first_snapshot(
    manager: &CountingManager,
    id: &OperationId,
    accept: impl Fn(&orchestrator_core::Operation) -> bool,
) -> orchestrator_core::Operation {
    let mut watch = manager.operations.watch(id).unwrap();
    while let Some(snapshot) = watch.next().await {
        if accept(&snapshot) {
            return snapshot;
        }
    }
    panic!("the operation ended before the awaited snapshot")
}

#[tokio::test]
async fn work_queued_elsewhere_stays_pending_until_it_says_it_runs_and_where() {
    let manager = CountingManager {
        defers_start: true,
        ..CountingManager::new(None)
    };
    let (id, run, release) = start_queued_work(&manager);
    let queued = first_snapshot(&manager, &id, |op| {
        op.progress.message == "queued: Resources"
    })
    .await;
    assert_eq!(queued.status, OperationStatus::Pending);
    assert_eq!((queued.started_at, queued.runs_on), (None, None));

    run.send(()).unwrap();
    let running = first_snapshot(&manager, &id, |op| op.status == OperationStatus::Running).await;
    assert_eq!(running.runs_on.as_deref(), Some("node-1"));
    assert!(running.started_at.is_some());
    release.send(Ok(Counted { total: 1 })).unwrap();
    let done = manager.finished(&id).await;
    assert_eq!(done.status, OperationStatus::Completed);
    assert_eq!(done.runs_on.as_deref(), Some("node-1"));
}

#[tokio::test]
async fn a_cancel_of_work_queued_elsewhere_waits_for_the_work_to_leave_the_queue() {
    let manager = CountingManager {
        defers_start: true,
        ..CountingManager::new(None)
    };
    let (id, _run, _release) = start_queued_work(&manager);
    first_snapshot(&manager, &id, |op| {
        op.progress.message == "queued: Resources"
    })
    .await;
    // Still pending, but the work holds it: the request waits for an answer.
    let requested = manager
        .operations
        .cancel(&id, CancelReason::UserRequest(None))
        .unwrap();
    assert_eq!(requested.status, OperationStatus::Pending);
    assert!(requested.cancel_requested());

    let done = manager.finished(&id).await;
    assert_eq!(done.status, OperationStatus::Cancelled);
    assert_eq!(done.error.as_deref(), Some("during the queue"));
}

#[tokio::test]
async fn any_error_after_the_request_ends_cancelled_and_says_so() {
    let manager = CountingManager::new(None);
    let (id, started, release) = start_held_work(&manager);
    started.await.unwrap();
    manager
        .operations
        .cancel(&id, CancelReason::Shutdown)
        .unwrap();
    release.send(Err(CountError::Refused(7))).unwrap();
    let done = manager.finished(&id).await;
    assert_eq!(done.status, OperationStatus::Cancelled);
    assert_eq!(
        done.error.as_deref(),
        Some("after its work failed: refusing to count to 7")
    );
}

#[tokio::test]
async fn work_that_finishes_before_it_sees_the_request_ends_completed() {
    let manager = CountingManager::new(None);
    let (id, started, release) = start_held_work(&manager);
    started.await.unwrap();
    manager
        .operations
        .cancel(&id, CancelReason::UserRequest(None))
        .unwrap();
    release.send(Ok(Counted { total: 3 })).unwrap();
    let done = manager.finished(&id).await;
    assert_eq!(done.status, OperationStatus::Completed);
    assert_eq!(done.result, Some(serde_json::json!({ "total": 3 })));
    assert!(done.cancel_requested(), "the request is noted, too late");
}

#[tokio::test(start_paused = true)]
async fn work_that_does_not_stop_within_the_grace_period_is_given_up() {
    let mut manager = CountingManager::new(None);
    manager.operations = manager
        .operations
        .with_cancel_grace(Duration::from_secs(30));
    let (id, started, release) = start_held_work(&manager);
    started.await.unwrap();
    manager
        .operations
        .cancel(&id, CancelReason::UserRequest(None))
        .unwrap();

    // Paused time: the runtime jumps to the end of the grace period.
    let done = manager.finished(&id).await;
    assert_eq!(done.status, OperationStatus::Cancelled);
    assert_eq!(
        done.error.as_deref(),
        Some("without its work, which was still running 30s after the request")
    );
    manager.drain().await;
    // The late result goes nowhere.
    let _ = release.send(Ok(Counted { total: 1 }));
    tokio::task::yield_now().await;
    assert_eq!(manager.operations.get(&id).unwrap(), done);
}

#[tokio::test(start_paused = true)]
async fn work_that_is_committing_its_result_is_not_given_up() {
    let manager = CountingManager::new(None);
    let (id, started, release) = start_held_work(&manager);
    let token = started.await.unwrap();
    // The work has installed its result and is on its way out.
    assert_eq!(token.commit("installing", || ()), Ok(()));
    manager
        .operations
        .cancel(&id, CancelReason::UserRequest(None))
        .unwrap();
    tokio::time::advance(manager.operations.cancel_grace() * 2).await;
    assert_eq!(
        manager.operations.get(&id).unwrap().status,
        OperationStatus::Running
    );

    release.send(Ok(Counted { total: 2 })).unwrap();
    let done = manager.finished(&id).await;
    assert_eq!(done.status, OperationStatus::Completed);
}

#[tokio::test]
async fn errors_and_panics_map_to_failed_with_the_message() {
    let manager = CountingManager::new(None);
    let refused = manager.finished(&manager.count_to(13)).await;
    assert_eq!(refused.status, OperationStatus::Failed);
    assert_eq!(refused.error.as_deref(), Some("refusing to count to 13"));

    let panicked = manager
        .start_managed_operation(OperationKind::Training, serde_json::json!({}), |_| async {
            if true {
                panic!("model exploded");
            }
            Ok::<(), CountError>(())
        })
        .unwrap();
    let panicked = manager.finished(&panicked).await;
    assert_eq!(panicked.status, OperationStatus::Failed);
    assert_eq!(
        panicked.error.as_deref(),
        Some("work panicked: model exploded")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn execute_with_progress_returns_the_typed_result_or_the_outcome() {
    let manager = CountingManager::new(None);
    let counted: Counted = manager
        .execute_with_progress(
            OperationKind::DataLoad,
            serde_json::json!({}),
            |context| async move {
                tokio::task::spawn_blocking(move || {
                    CountingAdapter::count(&context, 5000, &AtomicU64::new(0))
                })
                .await
                .unwrap()
            },
        )
        .await
        .unwrap();
    assert_eq!(counted, Counted { total: 5000 });

    let failed = manager
        .execute_with_progress(
            OperationKind::DataLoad,
            serde_json::json!({}),
            |context| async move { CountingAdapter::count(&context, 13, &AtomicU64::new(0)) },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(failed, ExecuteError::Failed { ref error, .. } if error == "refusing to count to 13"),
        "{failed}"
    );
}

#[tokio::test]
async fn execute_with_cancellation_stops_awaiting_when_cancelled() {
    let manager = CountingManager::new(None);
    let token = orchestrator_core::CancellationToken::new();
    let canceller = {
        let token = token.clone();
        tokio::spawn(async move { token.cancel(CancelReason::UserRequest(None)) })
    };
    let err = manager
        .execute_with_cancellation(&token, "waiting for host", std::future::pending::<()>())
        .await
        .unwrap_err();
    canceller.await.unwrap();
    assert_eq!(err.stage, "waiting for host");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admission_keeps_extra_operations_pending_and_starts_them_in_order() {
    let manager = CountingManager::new(Some(1));
    let first = manager.count_to(u64::MAX);
    let second = manager.count_to(1000);
    let third = manager.count_to(1000);

    let mut watch = manager.operations.watch(&first).unwrap();
    while watch.next().await.unwrap().status != OperationStatus::Running {}
    assert_eq!(
        manager.operations.get(&second).unwrap().status,
        OperationStatus::Pending
    );
    assert_eq!(
        manager.operations.get(&third).unwrap().status,
        OperationStatus::Pending
    );

    // A pending operation can be cancelled and never runs.
    manager
        .operations
        .cancel(&third, CancelReason::UserRequest(None))
        .unwrap();
    manager
        .operations
        .cancel(&first, CancelReason::UserRequest(None))
        .unwrap();
    let second = manager.finished(&second).await;
    assert_eq!(second.status, OperationStatus::Completed);
    let third = manager.finished(&third).await;
    assert_eq!(third.status, OperationStatus::Cancelled);
    assert_eq!(
        third.started_at, None,
        "a cancelled pending operation never started"
    );
    assert!(second.started_at.unwrap() >= manager.finished(&first).await.finished_at.unwrap());
}

#[tokio::test]
async fn health_and_configuration_describe_the_adapter() {
    let mut manager = CountingManager::new(None);
    let health = manager.health_check().await;
    assert!(health.healthy);
    assert_eq!(
        serde_json::to_value(&health).unwrap(),
        serde_json::json!({
            "service": "COUNTING",
            "mode": "local",
            "adapter": "local-counter",
            "healthy": true,
            "problem": null,
            "active_operations": 0
        })
    );
    manager.adapter.healthy = false;
    manager.config = HostServiceConfig::host("COUNTING", "http://127.0.0.1:1").unwrap();
    let health = manager.health_check().await;
    assert!(!health.healthy);
    assert_eq!(health.problem.as_deref(), Some("counter host unreachable"));
    assert_eq!(
        manager.configuration().mode.to_string(),
        "host service at http://127.0.0.1:1"
    );
}
