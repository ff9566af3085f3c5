//! A cancelled training resumes from its checkpoint as a new operation and
//! ends as the same training never stopped; resumes that cannot be right
//! are refused, saying why.

use orchestrator_core::{CancelReason, OperationStatus, ServiceOrchestrator};
use progress::ProgressContext;
use training_manager::{StrategySource, TrainRequest, TrainingManagerError, TrainingSummary};

use super::{directories, manager, request, root, snapshots_until_done};

/// What an uninterrupted run and a resumed one must share: the per-epoch
/// losses and accuracies (timings aside), the best epoch and the test metrics.
fn outcome(summary: &TrainingSummary) -> String {
    let epochs: Vec<_> = summary
        .report
        .history
        .iter()
        .map(|epoch| {
            (
                epoch.train_loss.to_bits(),
                epoch.train_accuracy.to_bits(),
                epoch.val_loss.map(f64::to_bits),
                epoch.val_accuracy.map(f64::to_bits),
            )
        })
        .collect();
    format!(
        "{epochs:?} best {} {}",
        summary.report.best_epoch,
        serde_json::to_string(&summary.metrics).unwrap()
    )
}

fn summary(operation: &orchestrator_core::Operation) -> TrainingSummary {
    assert_eq!(
        operation.status,
        OperationStatus::Completed,
        "{:?}",
        operation.error
    );
    serde_json::from_value(operation.result.clone().unwrap()).unwrap()
}

fn not_resumable(error: TrainingManagerError) -> String {
    match error {
        TrainingManagerError::NotResumable(message) => message,
        other => panic!("not a refusal to resume: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_training_resumes_from_its_checkpoint_and_ends_as_if_never_stopped() {
    let models = tempfile::tempdir().unwrap();
    let manager = manager(1);
    let epochs = 200;
    let uninterrupted = manager
        .train_multi_symbol_strategy(request(epochs), directories(&models.path().join("whole")))
        .unwrap();
    let expected = summary(
        snapshots_until_done(&manager, &uninterrupted)
            .await
            .last()
            .unwrap(),
    );

    let stopped = manager
        .train_multi_symbol_strategy(request(epochs), directories(models.path()))
        .unwrap();
    let mut watch = manager.operations().watch(&stopped).unwrap();
    while let Some(snapshot) = watch.next().await {
        let ProgressContext::Training(context) = &snapshot.progress.context else {
            continue;
        };
        // Early stopping ends this training after well over 2 epochs.
        if context.epoch.is_some_and(|epoch| epoch.current >= 2) && !snapshot.cancel_requested() {
            manager
                .operations()
                .cancel(&stopped, CancelReason::UserRequest(None))
                .unwrap();
        }
    }
    let cancelled = manager.operations().get(&stopped).unwrap();
    assert_eq!(cancelled.status, OperationStatus::Cancelled);
    let checkpoint = cancelled
        .checkpoint
        .clone()
        .expect("a checkpoint on cancel");
    assert!(checkpoint.epoch >= 2, "{checkpoint:?}");
    let file = std::path::PathBuf::from(&checkpoint.path);
    assert_eq!(std::fs::metadata(&file).unwrap().len(), checkpoint.bytes);
    assert_eq!(
        file.parent(),
        Some(models.path().join(".checkpoints").as_path())
    );

    let resumed = manager.resume(&stopped).unwrap();
    let snapshots = snapshots_until_done(&manager, &resumed).await;
    let done = snapshots.last().unwrap();
    assert_eq!(done.params["resumed_from"], serde_json::json!(stopped));
    assert_eq!(done.checkpoint, None, "a completed training has none left");
    assert_eq!(outcome(&summary(done)), outcome(&expected));
    // Its progress went on from the checkpoint's epoch, not from the first.
    let first_epoch = snapshots
        .iter()
        .find_map(|snapshot| match &snapshot.progress.context {
            ProgressContext::Training(context) => context.epoch,
            _ => None,
        });
    assert!(first_epoch.is_some_and(|epoch| epoch.current >= checkpoint.epoch));
    // Done: neither run's checkpoint is left, so it cannot be resumed twice.
    assert!(!file.exists());
    assert_eq!(
        std::fs::read_dir(models.path().join(".checkpoints"))
            .unwrap()
            .count(),
        0
    );
    let again = not_resumable(manager.resume(&stopped).unwrap_err());
    assert!(again.contains("is gone"), "{again}");
    let completed = not_resumable(manager.resume(&resumed).unwrap_err());
    assert!(
        completed.ends_with("it completed; there is nothing left to train"),
        "{completed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_resume_while_one_runs_or_a_changed_strategy_file_is_refused() {
    let models = tempfile::tempdir().unwrap();
    let strategy_file = models.path().join("mine.yaml");
    std::fs::copy(root().join("strategies/eurusd_mlp.yaml"), &strategy_file).unwrap();
    let manager = manager(1);
    let mine = TrainRequest {
        strategy: StrategySource::File(strategy_file.clone()),
        ..request(200)
    };
    let stopped = manager
        .train_multi_symbol_strategy(mine, directories(models.path()))
        .unwrap();
    let mut watch = manager.operations().watch(&stopped).unwrap();
    while let Some(snapshot) = watch.next().await {
        if snapshot.checkpoint.is_some() && !snapshot.cancel_requested() {
            manager
                .operations()
                .cancel(&stopped, CancelReason::UserRequest(None))
                .unwrap();
        }
    }
    assert_eq!(
        manager.operations().get(&stopped).unwrap().status,
        OperationStatus::Cancelled
    );

    // A long training holds the only slot, so the resume waits, pending...
    let long = manager
        .train_multi_symbol_strategy(
            TrainRequest {
                strategy: StrategySource::File(root().join("strategies/btcusd_lstm.yaml")),
                ..request(500)
            },
            directories(&models.path().join("long")),
        )
        .unwrap();
    let mut long_watch = manager.operations().watch(&long).unwrap();
    while let Some(snapshot) = long_watch.next().await {
        if snapshot.status == OperationStatus::Running {
            break;
        }
    }
    let resumed = manager.resume(&stopped).unwrap();
    assert_eq!(
        manager.operations().get(&resumed).unwrap().status,
        OperationStatus::Pending
    );
    // ...and a second resume of the same checkpoint is refused meanwhile.
    let twice = not_resumable(manager.resume(&stopped).unwrap_err());
    assert!(twice.ends_with("it is being resumed already"), "{twice}");
    let live = not_resumable(manager.resume(&long).unwrap_err());
    assert!(live.contains("it is still running"), "{live}");
    for id in [&resumed, &long] {
        manager
            .operations()
            .cancel(id, CancelReason::UserRequest(None))
            .unwrap();
    }
    manager.drain().await;

    // The strategy file changed since: refused, naming the field.
    let text = std::fs::read_to_string(&strategy_file).unwrap();
    let changed = text.replacen("learning_rate: 0.001", "learning_rate: 0.002", 1);
    assert_ne!(changed, text, "the example's learning rate moved");
    std::fs::write(&strategy_file, changed).unwrap();
    let refused = not_resumable(manager.resume(&stopped).unwrap_err());
    assert!(
        refused.ends_with("the strategy changed since the checkpoint (model.learning_rate)"),
        "{refused}"
    );
}

#[test]
fn pruning_removes_old_checkpoints_but_never_a_live_trainings() {
    use std::time::{Duration, SystemTime};

    let models = tempfile::tempdir().unwrap();
    let dir = models.path().join(".checkpoints");
    std::fs::create_dir(&dir).unwrap();
    let operations = orchestrator_core::OperationsService::in_memory();
    let live = operations
        .create(
            orchestrator_core::OperationKind::Training,
            serde_json::json!({}),
            None,
        )
        .unwrap();
    operations.start(&live.id).unwrap();
    let month_ago = SystemTime::now() - Duration::from_secs(31 * 24 * 3600);
    let file = |name: &str, modified: SystemTime| {
        let path = dir.join(name);
        std::fs::write(&path, b"state").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(modified)
            .unwrap();
        path
    };
    let stale = file("op_training_20261001_120000_0a1b2c3d.ckpt", month_ago);
    let leftover = file(
        ".op_training_20261001_120000_0a1b2c3d.ckpt.tmp-00ff",
        month_ago,
    );
    let running = file(&format!("{}.ckpt", live.id), month_ago);
    let recent = file(
        "op_training_20261129_120000_0a1b2c3d.ckpt",
        SystemTime::now(),
    );

    let thirty_days = Duration::from_secs(30 * 24 * 3600);
    let pruned =
        training_manager::prune_checkpoints(&operations, models.path(), thirty_days).unwrap();
    let removed: Vec<_> = pruned
        .removed
        .iter()
        .map(|(path, _)| path.clone())
        .collect();
    let mut expected = vec![stale.clone(), leftover.clone()];
    expected.sort();
    assert_eq!(removed, expected, "removed, in path order");
    assert!(pruned.removed.iter().all(|(_, bytes)| *bytes == 5));
    assert_eq!(pruned.kept_live, std::slice::from_ref(&running));
    assert!(!stale.exists() && !leftover.exists());
    assert!(running.exists() && recent.exists());

    // No checkpoints folder at all: nothing to do.
    let empty = tempfile::tempdir().unwrap();
    assert_eq!(
        training_manager::prune_checkpoints(&operations, empty.path(), thirty_days).unwrap(),
        training_manager::Pruned::default()
    );
}
