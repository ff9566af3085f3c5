//! Tests of the operations service: lifecycle, finality under races, watching.

use std::time::Duration;

use progress::{ProgressContext, Step, TrainingContext, TrainingProgressRenderer};

use super::*;

fn service() -> OperationsService {
    OperationsService::in_memory()
}

fn params() -> serde_json::Value {
    serde_json::json!({ "strategy": "demo.yaml" })
}

fn training_progress(epoch: u32) -> ProgressState {
    ProgressState {
        percentage: f64::from(epoch) * 10.0,
        step: Some(Step {
            current: 3,
            total: 4,
        }),
        context: ProgressContext::Training(TrainingContext {
            model_type: Some("MLP".into()),
            symbols: vec!["EURUSD".into()],
            timeframes: vec!["1h".into()],
            epoch: Some(Step {
                current: epoch,
                total: 10,
            }),
            ..TrainingContext::default()
        }),
        ..ProgressState::default()
    }
}

#[test]
fn an_operation_moves_from_pending_to_completed() {
    let ops = service();
    let context = ops.create(OperationKind::Training, params(), None).unwrap();
    let id = context.id.clone();
    let created = ops.get(&id).unwrap();
    assert_eq!(created.status, OperationStatus::Pending);
    assert_eq!(created.params, params());
    assert!(created.started_at.is_none());

    assert_eq!(ops.start(&id).unwrap(), Transition::Applied);
    assert_eq!(ops.get(&id).unwrap().status, OperationStatus::Running);
    assert_eq!(ops.active_count(), 1);

    let result = serde_json::json!({ "accuracy": 0.6 });
    assert_eq!(
        ops.complete(&id, result.clone()).unwrap(),
        Transition::Applied
    );
    let done = ops.get(&id).unwrap();
    assert_eq!(done.status, OperationStatus::Completed);
    assert_eq!(done.result, Some(result));
    assert!(done.started_at.is_some() && done.finished_at >= done.started_at);
    assert_eq!(ops.active_count(), 0);
    assert_eq!(
        ops.inner.store.get(&id).unwrap(),
        Some(done),
        "the store has the final record"
    );
}

#[test]
fn terminal_states_are_final() {
    let ops = service();
    let context = ops.create(OperationKind::Training, params(), None).unwrap();
    let id = context.id.clone();
    ops.start(&id).unwrap();
    ops.fail(&id, "out of memory".into()).unwrap();

    assert_eq!(
        ops.complete(&id, serde_json::json!({})).unwrap(),
        Transition::Ignored(OperationStatus::Failed)
    );
    assert_eq!(
        ops.start(&id).unwrap(),
        Transition::Ignored(OperationStatus::Failed)
    );
    context.progress.report(training_progress(5));

    let err = ops
        .cancel(&id, CancelReason::UserRequest(None))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "operation {id} is already failed; only pending or running operations can be cancelled"
        )
    );
    assert!(!context.token.is_cancelled());
    let operation = ops.get(&id).unwrap();
    assert_eq!(operation.status, OperationStatus::Failed);
    assert_eq!(operation.error.as_deref(), Some("out of memory"));
    assert_eq!(operation.progress, ProgressState::default());
}

#[test]
fn cancelling_a_pending_operation_ends_it_at_once() {
    let ops = service();
    let context = ops.create(OperationKind::DataLoad, params(), None).unwrap();
    let reason = CancelReason::UserRequest(Some("wrong symbol".into()));
    let operation = ops.cancel(&context.id, reason.clone()).unwrap();
    assert_eq!(context.token.reason(), Some(reason.clone()));
    assert_eq!(operation.status, OperationStatus::Cancelled);
    assert_eq!(operation.cancel_reason, Some(reason));
    assert_eq!(operation.error.as_deref(), Some("before it started"));
    assert!(operation.cancel_requested() && operation.finished_at.is_some());
    assert_eq!(ops.get(&context.id).unwrap(), operation);
    assert_eq!(ops.active_count(), 0);
}

#[test]
fn a_cancel_request_keeps_a_running_operation_live_until_its_work_stops() {
    let ops = service();
    let context = ops.create(OperationKind::Training, params(), None).unwrap();
    let id = context.id.clone();
    ops.start(&id).unwrap();
    let reason = CancelReason::UserRequest(Some("interrupted (Ctrl-C)".into()));

    let requested = ops.cancel(&id, reason.clone()).unwrap();
    assert_eq!(requested.status, OperationStatus::Running);
    assert_eq!(requested.cancel_reason, Some(reason.clone()));
    assert!(requested.cancel_requested() && requested.finished_at.is_none());
    assert!(context.token.is_cancelled());
    assert_eq!(ops.active_count(), 1, "the work has not stopped yet");
    assert_eq!(
        ops.inner.store.get(&id).unwrap(),
        Some(requested.clone()),
        "the request is saved"
    );
    // Asking again changes nothing; the first reason stands.
    assert_eq!(ops.cancel(&id, CancelReason::Shutdown).unwrap(), requested);

    let stop = context.token.check("training").unwrap_err();
    assert_eq!(ops.stopped(&id, &stop).unwrap(), Transition::Applied);
    let cancelled = ops.get(&id).unwrap();
    assert_eq!(cancelled.status, OperationStatus::Cancelled);
    assert_eq!(cancelled.error.as_deref(), Some("during training"));
    assert_eq!(cancelled.stopped_during(), Some("training"));
    assert_eq!(cancelled.cancel_reason, Some(reason));
    assert_eq!(cancelled.cancel_requested_at, requested.cancel_requested_at);
    assert_eq!(ops.active_count(), 0);
}

#[test]
fn work_that_completes_before_it_sees_the_request_ends_completed() {
    let ops = service();
    let context = ops.create(OperationKind::Training, params(), None).unwrap();
    ops.start(&context.id).unwrap();
    ops.cancel(&context.id, CancelReason::UserRequest(None))
        .unwrap();
    ops.complete(&context.id, serde_json::json!({ "accuracy": 0.6 }))
        .unwrap();

    let done = ops.get(&context.id).unwrap();
    assert_eq!(done.status, OperationStatus::Completed);
    assert!(done.result.is_some());
    assert!(done.cancel_requested(), "the request is noted as too late");
    assert_eq!(done.cancel_reason, Some(CancelReason::UserRequest(None)));
}

#[test]
fn work_that_stops_on_its_own_token_keeps_its_reason() {
    let ops = service();
    let context = ops.create(OperationKind::Training, params(), None).unwrap();
    ops.start(&context.id).unwrap();
    let stop = Cancelled {
        reason: CancelReason::Timeout,
        stage: "validation".into(),
    };
    ops.stopped(&context.id, &stop).unwrap();
    let operation = ops.get(&context.id).unwrap();
    assert_eq!(operation.status, OperationStatus::Cancelled);
    assert_eq!(operation.cancel_reason, Some(CancelReason::Timeout));
    assert!(!operation.cancel_requested());
}

#[test]
fn a_checkpoint_is_stored_with_the_running_operation_and_kept_when_it_stops() {
    let ops = service();
    let context = ops.create(OperationKind::Training, params(), None).unwrap();
    ops.start(&context.id).unwrap();
    let checkpoint = |epoch| Checkpoint {
        path: format!("/models/.checkpoints/{}.ckpt", context.id),
        bytes: 1024,
        epoch,
        batch: 7,
        saved_at: Utc::now(),
    };
    ops.set_checkpoint(&context.id, Some(checkpoint(1)))
        .unwrap();
    ops.set_checkpoint(&context.id, Some(checkpoint(2)))
        .unwrap();
    let stored = ops.inner.store.get(&context.id).unwrap().unwrap();
    assert_eq!(stored.checkpoint.map(|saved| saved.epoch), Some(2));

    let stop = Cancelled {
        reason: CancelReason::Shutdown,
        stage: "training".into(),
    };
    ops.stopped(&context.id, &stop).unwrap();
    assert_eq!(
        ops.set_checkpoint(&context.id, Some(checkpoint(3)))
            .unwrap(),
        Transition::Ignored(OperationStatus::Cancelled)
    );
    let ended = ops.get(&context.id).unwrap();
    assert_eq!(ended.status, OperationStatus::Cancelled);
    assert_eq!(ended.checkpoint.map(|saved| saved.epoch), Some(2));
}

#[test]
fn every_reported_epoch_end_joins_the_history_once_and_is_stored_with_the_next_change() {
    let ops = service();
    let context = ops.create(OperationKind::Training, params(), None).unwrap();
    ops.start(&context.id).unwrap();
    let epoch_end = |epoch: u32, val_loss: f64| {
        let mut state = training_progress(epoch);
        let ProgressContext::Training(training) = &mut state.context else {
            unreachable!()
        };
        training.batch = Some(Step::new(40, 40));
        training.val_loss = Some(val_loss);
        state
    };
    let mid_epoch = |epoch: u32| {
        let mut state = training_progress(epoch);
        let ProgressContext::Training(training) = &mut state.context else {
            unreachable!()
        };
        training.batch = Some(Step::new(12, 40));
        state
    };
    context.progress.report(mid_epoch(1));
    context.progress.report(epoch_end(1, 0.9));
    context.progress.report(epoch_end(1, 0.9));
    context.progress.report(mid_epoch(2));
    context.progress.report(epoch_end(2, 0.8));
    let live = ops.get(&context.id).unwrap();
    let epochs: Vec<(u32, Option<f64>)> = live
        .epochs
        .iter()
        .map(|point| (point.epoch, point.val_loss))
        .collect();
    assert_eq!(epochs, [(1, Some(0.9)), (2, Some(0.8))]);
    assert!(
        ops.inner
            .store
            .get(&context.id)
            .unwrap()
            .unwrap()
            .epochs
            .is_empty(),
        "reports never touch the store"
    );

    // A state change keeps them, and saves them.
    ops.complete(&context.id, serde_json::json!({})).unwrap();
    let stored = ops.inner.store.get(&context.id).unwrap().unwrap();
    assert_eq!(stored.epochs, live.epochs);
}

#[test]
fn unknown_ids_are_reported() {
    let ops = service();
    let unknown: OperationId = "op_training_20260101_000000_deadbeef".parse().unwrap();
    for err in [
        ops.get(&unknown).unwrap_err(),
        ops.cancel(&unknown, CancelReason::Timeout).unwrap_err(),
        ops.watch(&unknown).unwrap_err(),
    ] {
        assert_eq!(err.to_string(), format!("no operation with id {unknown}"));
    }
}

#[test]
fn progress_is_rendered_timed_and_estimated() {
    let ops = service();
    let context = ops
        .create(
            OperationKind::Training,
            params(),
            Some(Arc::new(TrainingProgressRenderer)),
        )
        .unwrap();
    ops.start(&context.id).unwrap();
    context.progress.report(training_progress(3));
    let progress = ops.get(&context.id).unwrap().progress;
    assert_eq!(
        progress.message,
        "Training MLP model on EURUSD [1h] [epoch 3/10] [3/4]"
    );
    assert!(progress.started_at.is_some());
    assert!(progress.updated_at >= progress.started_at);
    // One observation is not enough to estimate anything.
    assert_eq!(progress.eta, None);

    let mut explicit = training_progress(4);
    explicit.eta = Some(Duration::from_secs(42));
    context.progress.report(explicit);
    assert_eq!(
        ops.get(&context.id).unwrap().progress.eta,
        Some(Duration::from_secs(42))
    );
}

#[test]
fn list_filters_pages_and_shows_live_progress() {
    let ops = service();
    let data = ops.create(OperationKind::DataLoad, params(), None).unwrap();
    let training = ops.create(OperationKind::Training, params(), None).unwrap();
    let finished = ops.create(OperationKind::Training, params(), None).unwrap();
    ops.complete(&finished.id, serde_json::json!(null)).unwrap();
    training.progress.report(training_progress(2));

    let all = ops.list(&ListFilter::default()).unwrap();
    assert_eq!(all.total, 3);
    let live = all
        .operations
        .iter()
        .find(|op| op.id == training.id)
        .unwrap();
    assert_eq!(live.progress.percentage, 20.0);

    let active_training = ops
        .list(&ListFilter {
            kind: Some(OperationKind::Training),
            active_only: true,
            ..ListFilter::default()
        })
        .unwrap();
    assert_eq!(active_training.total, 1);
    assert_eq!(active_training.operations[0].id, training.id);

    let second = ops
        .list(&ListFilter {
            limit: Some(1),
            offset: 1,
            ..ListFilter::default()
        })
        .unwrap();
    assert_eq!(second.total, 3);
    assert_eq!(second.operations.len(), 1);
    drop(data);
}

#[tokio::test]
async fn a_watcher_sees_progress_and_the_terminal_snapshot() {
    let ops = service();
    let context = ops.create(OperationKind::Training, params(), None).unwrap();
    let id = context.id.clone();
    let mut watch = ops.watch(&id).unwrap();
    assert_eq!(watch.next().await.unwrap().status, OperationStatus::Pending);

    let producer = {
        let ops = ops.clone();
        tokio::spawn(async move {
            ops.start(&context.id).unwrap();
            for epoch in 1..=1000 {
                context.progress.report(training_progress(epoch));
            }
            ops.complete(&context.id, serde_json::json!({ "epochs": 1000 }))
                .unwrap();
        })
    };
    let mut snapshots = Vec::new();
    while let Some(snapshot) = watch.next().await {
        snapshots.push(snapshot);
    }
    producer.await.unwrap();
    let last = snapshots.last().unwrap();
    assert_eq!(last.status, OperationStatus::Completed);
    assert_eq!(last.result, Some(serde_json::json!({ "epochs": 1000 })));
    assert!(
        snapshots[..snapshots.len() - 1]
            .iter()
            .all(|s| !s.status.is_terminal())
    );
    assert!(
        watch.next().await.is_none(),
        "the stream ends after the terminal snapshot"
    );

    // Watching a finished operation yields its final snapshot once.
    let mut late = ops.watch(&id).unwrap();
    assert_eq!(
        late.next().await.unwrap().status,
        OperationStatus::Completed
    );
    assert!(late.next().await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_transitions_leave_exactly_one_terminal_state() {
    let ops = service();
    let contexts: Vec<_> = (0..50)
        .map(|_| ops.create(OperationKind::Training, params(), None).unwrap())
        .collect();
    let mut watches: Vec<_> = contexts.iter().map(|c| ops.watch(&c.id).unwrap()).collect();

    let mut racers = Vec::new();
    for context in &contexts {
        for racer in 0..6 {
            let (ops, context) = (ops.clone(), context.clone());
            racers.push(tokio::spawn(async move {
                let id = &context.id;
                let _ = ops.start(id);
                for epoch in 0..20 {
                    context.progress.report(training_progress(epoch));
                    tokio::task::yield_now().await;
                }
                match racer % 3 {
                    0 => drop(ops.complete(id, serde_json::json!({ "by": racer }))),
                    1 => drop(ops.fail(id, format!("racer {racer}"))),
                    _ => drop(ops.cancel(id, CancelReason::UserRequest(None))),
                }
                // After a complete or a fail, the operation has ended: a
                // report must change nothing. (A cancel only asks.)
                if racer % 3 != 2 {
                    context.progress.report(training_progress(99));
                }
            }));
        }
    }
    for racer in racers {
        racer.await.unwrap();
    }

    for (context, watch) in contexts.iter().zip(&mut watches) {
        let operation = ops.get(&context.id).unwrap();
        assert!(operation.status.is_terminal());
        assert_eq!(
            ops.inner.store.get(&context.id).unwrap().as_ref(),
            Some(&operation)
        );
        // A cancel that found the operation pending ended it; one that
        // found it running only asked, and the work's end decided.
        assert_eq!(context.token.is_cancelled(), operation.cancel_requested());
        if operation.status == OperationStatus::Cancelled {
            assert!(operation.cancel_requested());
        }
        // Exactly the fields of the winning terminal state are set.
        match operation.status {
            OperationStatus::Completed => {
                assert!(operation.result.is_some() && operation.error.is_none())
            }
            OperationStatus::Failed => {
                assert!(operation.error.is_some() && operation.result.is_none())
            }
            OperationStatus::Cancelled => {
                assert!(operation.cancel_reason.is_some() && operation.result.is_none())
            }
            status => panic!("{status} is not terminal"),
        }
        assert_ne!(
            operation.progress.percentage, 990.0,
            "progress after the end was applied"
        );

        let mut last = None;
        while let Some(snapshot) = watch.next().await {
            last = Some(snapshot);
        }
        assert_eq!(
            last.as_ref(),
            Some(&operation),
            "the watcher ends on the terminal snapshot"
        );
    }
    assert_eq!(ops.active_count(), 0);
}

#[test]
fn cancel_active_cancels_only_unfinished_operations() {
    let ops = service();
    let running = ops.create(OperationKind::Training, params(), None).unwrap();
    ops.start(&running.id).unwrap();
    let pending = ops.create(OperationKind::DataLoad, params(), None).unwrap();
    let done = ops.create(OperationKind::DataLoad, params(), None).unwrap();
    ops.complete(&done.id, serde_json::json!(1)).unwrap();

    let mut cancelled = ops.cancel_active(CancelReason::Shutdown);
    cancelled.sort();
    let mut expected = vec![running.id.clone(), pending.id.clone()];
    expected.sort();
    assert_eq!(cancelled, expected);
    assert!(running.token.is_cancelled() && pending.token.is_cancelled());
    assert_eq!(
        ops.get(&pending.id).unwrap().status,
        OperationStatus::Cancelled
    );
    let asked = ops.get(&running.id).unwrap();
    assert_eq!(asked.status, OperationStatus::Running);
    assert_eq!(asked.cancel_reason, Some(CancelReason::Shutdown));
    assert_eq!(
        ops.get(&done.id).unwrap().status,
        OperationStatus::Completed
    );
}

#[cfg(feature = "sqlite")]
#[test]
fn a_sqlite_backed_service_keeps_history_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ops.db");
    let (finished, interrupted) = {
        let ops = OperationsService::open_sqlite(&path).unwrap();
        let finished = ops.create(OperationKind::Training, params(), None).unwrap();
        ops.start(&finished.id).unwrap();
        finished.progress.report(training_progress(10));
        ops.complete(&finished.id, serde_json::json!({ "accuracy": 0.7 }))
            .unwrap();
        let interrupted = ops.create(OperationKind::Training, params(), None).unwrap();
        ops.start(&interrupted.id).unwrap();
        (finished.id, interrupted.id)
    };

    let ops = OperationsService::open_sqlite(&path).unwrap();
    let finished = ops.get(&finished).unwrap();
    assert_eq!(finished.status, OperationStatus::Completed);
    assert_eq!(
        finished.progress.percentage, 100.0,
        "the last progress is saved with the end"
    );
    let interrupted = ops.get(&interrupted).unwrap();
    assert_eq!(interrupted.status, OperationStatus::Failed);
    assert_eq!(
        interrupted.error.as_deref(),
        Some(crate::store::INTERRUPTED)
    );
}

/// A store that refuses or holds up saves on demand.
#[derive(Debug, Default)]
struct FaultyStore {
    inner: InMemoryStore,
    refuse_saves: std::sync::atomic::AtomicBool,
    /// While set, a save reports that it started and then waits for the
    /// go-ahead.
    stall: Mutex<Option<(std::sync::mpsc::Sender<()>, std::sync::mpsc::Receiver<()>)>>,
}

impl OperationStore for Arc<FaultyStore> {
    fn insert(&self, operation: &Operation) -> Result<(), StoreError> {
        self.inner.insert(operation)
    }

    fn save(&self, operation: &Operation) -> Result<(), StoreError> {
        if let Some((started, go_ahead)) = &*self.stall.lock().unwrap() {
            started.send(()).unwrap();
            go_ahead.recv().unwrap();
        }
        if self.refuse_saves.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(StoreError::Io {
                path: "operations.db".into(),
                source: std::io::Error::other("disk full"),
            });
        }
        self.inner.save(operation)
    }

    fn get(&self, id: &OperationId) -> Result<Option<Operation>, StoreError> {
        self.inner.get(id)
    }

    fn list(&self, filter: &ListFilter) -> Result<OperationPage, StoreError> {
        self.inner.list(filter)
    }
}

#[tokio::test]
async fn a_final_state_the_store_refuses_still_ends_the_operation_and_is_saved_later() {
    let store = Arc::new(FaultyStore::default());
    let ops = OperationsService::new(Arc::clone(&store));
    let id = ops
        .create(OperationKind::Training, params(), None)
        .unwrap()
        .id;
    ops.start(&id).unwrap();
    let mut watch = ops.watch(&id).unwrap();
    assert_eq!(watch.next().await.unwrap().status, OperationStatus::Running);

    store
        .refuse_saves
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let result = serde_json::json!({ "accuracy": 0.6 });
    assert_eq!(
        ops.complete(&id, result.clone()).unwrap(),
        Transition::Applied
    );
    // Watchers and readers see the end at once; nothing counts it as active.
    let last = watch.next().await.unwrap();
    assert_eq!(last.status, OperationStatus::Completed);
    assert!(watch.next().await.is_none());
    assert_eq!(ops.get(&id).unwrap().result, Some(result));
    assert_eq!(ops.active_count(), 0);
    let listed = ops.list(&ListFilter::default()).unwrap();
    assert_eq!(listed.operations[0].status, OperationStatus::Completed);
    assert_eq!(
        store.inner.get(&id).unwrap().unwrap().status,
        OperationStatus::Running,
        "the store still has the old record"
    );

    // The next write saves it.
    store
        .refuse_saves
        .store(false, std::sync::atomic::Ordering::SeqCst);
    ops.create(OperationKind::DataLoad, params(), None).unwrap();
    assert_eq!(
        store.inner.get(&id).unwrap().unwrap().status,
        OperationStatus::Completed
    );
}

#[test]
fn a_refused_start_changes_nothing() {
    let store = Arc::new(FaultyStore::default());
    let ops = OperationsService::new(Arc::clone(&store));
    let id = ops
        .create(OperationKind::Training, params(), None)
        .unwrap()
        .id;
    store
        .refuse_saves
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let error = ops.start(&id).unwrap_err();
    assert_eq!(error.to_string(), "operations database operations.db");
    assert_eq!(ops.get(&id).unwrap().status, OperationStatus::Pending);
}

#[test]
fn progress_reports_go_on_while_the_store_is_slow() {
    let store = Arc::new(FaultyStore::default());
    let ops = OperationsService::new(Arc::clone(&store));
    let context = ops.create(OperationKind::Training, params(), None).unwrap();
    let id = context.id.clone();

    let (started_tx, started) = std::sync::mpsc::channel();
    let (go_ahead, go_ahead_rx) = std::sync::mpsc::channel();
    *store.stall.lock().unwrap() = Some((started_tx, go_ahead_rx));
    std::thread::scope(|scope| {
        let starting = scope.spawn(|| ops.start(&id));
        // The start is inside the store's save now. A report must not wait
        // for it (before, it waited on the snapshot's lock, which the save
        // held: this test never finished).
        started.recv().unwrap();
        context.progress.report(training_progress(7));
        let meanwhile = ops.get(&id).unwrap();
        assert_eq!(meanwhile.status, OperationStatus::Pending);
        assert_eq!(meanwhile.progress.percentage, 70.0);
        go_ahead.send(()).unwrap();
        assert_eq!(starting.join().unwrap().unwrap(), Transition::Applied);
    });
    store.stall.lock().unwrap().take();
    let running = ops.get(&id).unwrap();
    assert_eq!(running.status, OperationStatus::Running);
    assert_eq!(
        running.progress.percentage, 70.0,
        "the newest progress is kept"
    );

    ops.complete(&id, serde_json::json!({})).unwrap();
    let saved = store.inner.get(&id).unwrap().unwrap();
    assert_eq!(saved.status, OperationStatus::Completed);
    assert_eq!(saved.progress.percentage, 70.0);
}
