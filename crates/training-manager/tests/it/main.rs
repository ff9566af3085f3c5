//! TrainingManager end to end in-process: typed progress reaching the
//! renderer, concurrent trainings cancelled independently, bad requests.

mod resume;

use std::path::{Path, PathBuf};

use orchestrator_core::{
    CancelReason, ListFilter, Operation, OperationId, OperationStatus, OperationsService,
    ServiceOrchestrator,
};
use progress::{ProgressContext, ProgressRenderer, TrainingProgressRenderer};
use training_manager::{
    Directories, StrategySource, TrainRequest, TrainingManager, TrainingManagerError,
    TrainingSummary,
};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn request(epochs: u32) -> TrainRequest {
    TrainRequest {
        epochs: Some(epochs),
        ..TrainRequest::new(StrategySource::File(
            root().join("strategies/eurusd_mlp.yaml"),
        ))
    }
}

fn directories(models: &Path) -> Directories {
    Directories {
        data: root().join("data"),
        models: models.to_owned(),
    }
}

fn manager(max_concurrent: usize) -> TrainingManager {
    let config = orchestrator_core::HostServiceConfig::local(training_manager::TRAINING_SERVICE);
    TrainingManager::new(OperationsService::in_memory(), config, max_concurrent)
}

async fn snapshots_until_done(manager: &TrainingManager, id: &OperationId) -> Vec<Operation> {
    let mut watch = manager.operations().watch(id).unwrap();
    let mut snapshots = Vec::new();
    while let Some(snapshot) = watch.next().await {
        snapshots.push(snapshot);
    }
    snapshots
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_training_completes_with_its_summary_and_typed_progress() {
    let models = tempfile::tempdir().unwrap();
    let manager = manager(1);
    let id = manager
        .train_multi_symbol_strategy(request(2), directories(models.path()))
        .unwrap();
    let snapshots = snapshots_until_done(&manager, &id).await;

    let done = snapshots.last().unwrap();
    assert_eq!(done.status, OperationStatus::Completed, "{:?}", done.error);
    let summary: TrainingSummary = serde_json::from_value(done.result.clone().unwrap()).unwrap();
    assert_eq!(summary.report.epochs_run, 2);
    assert!(summary.model_path.join("manifest.json").is_file());
    assert!(summary.metrics.baseline.accuracy > 0.0);

    // Every message is the renderer's view of the typed context, never the other way round.
    let mut saw_batches = false;
    for snapshot in &snapshots {
        let progress = &snapshot.progress;
        let ProgressContext::Training(context) = &progress.context else {
            continue;
        };
        assert_eq!(progress.message, TrainingProgressRenderer.render(progress));
        assert_eq!(context.model_type.as_deref(), Some("MLP"));
        assert_eq!(context.symbols, ["EURUSD"]);
        assert_eq!(context.timeframes, ["1h"]);
        if let (Some(epoch), Some(batch)) = (context.epoch, context.batch) {
            saw_batches = true;
            assert_eq!(
                progress.message,
                format!(
                    "Training MLP model on EURUSD [1h] [epoch {}/{}] (batch {}/{}) [3/4]",
                    epoch.current, epoch.total, batch.current, batch.total
                )
            );
        }
    }
    assert!(saw_batches, "no batch progress was reported");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_strategy_sent_as_text_trains_and_the_record_names_its_origin_only() {
    let models = tempfile::tempdir().unwrap();
    let manager = manager(1);
    let yaml = std::fs::read_to_string(root().join("strategies/eurusd_mlp.yaml")).unwrap();
    let id = manager
        .train_multi_symbol_strategy(
            TrainRequest {
                strategy: StrategySource::Text {
                    origin: "/on/the/client/eurusd_mlp.yaml".to_owned(),
                    yaml: yaml.clone(),
                },
                ..request(1)
            },
            directories(models.path()),
        )
        .unwrap();
    let snapshots = snapshots_until_done(&manager, &id).await;
    let done = snapshots.last().unwrap();
    assert_eq!(done.status, OperationStatus::Completed, "{:?}", done.error);
    assert_eq!(
        done.params["strategy"],
        serde_json::json!({"text": {"origin": "/on/the/client/eurusd_mlp.yaml"}})
    );
    assert!(!done.params.to_string().contains("fuzzy_sets"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_trainings_at_once_are_cancelled_independently() {
    let models = tempfile::tempdir().unwrap();
    let manager = manager(2);
    let long = manager
        .train_multi_symbol_strategy(request(500), directories(&models.path().join("long")))
        .unwrap();
    let short = manager
        .train_multi_symbol_strategy(request(2), directories(&models.path().join("short")))
        .unwrap();

    // Cancel the long one once it is training.
    let mut watch = manager.operations().watch(&long).unwrap();
    while let Some(snapshot) = watch.next().await {
        let training = snapshot.progress.step.is_some_and(|step| step.current == 3);
        if training && snapshot.status == OperationStatus::Running {
            manager
                .operations()
                .cancel(&long, CancelReason::UserRequest(Some("test".into())))
                .unwrap();
        }
    }
    manager.drain().await;

    let long = manager.operations().get(&long).unwrap();
    assert_eq!(long.status, OperationStatus::Cancelled);
    let short = manager.operations().get(&short).unwrap();
    assert_eq!(
        short.status,
        OperationStatus::Completed,
        "{:?}",
        short.error
    );
    assert!(!models.path().join("long").exists() || no_manifest_under(&models.path().join("long")));
}

fn no_manifest_under(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .all(|entry| {
            let path = entry.path();
            if path.is_dir() {
                no_manifest_under(&path)
            } else {
                !path.ends_with("manifest.json")
            }
        })
}

#[tokio::test]
async fn bad_requests_fail_before_any_operation_is_registered() {
    let models = tempfile::tempdir().unwrap();
    let manager = manager(1);

    let missing = TrainRequest {
        strategy: StrategySource::File(root().join("strategies/nope.yaml")),
        ..request(1)
    };
    let error = manager
        .train_multi_symbol_strategy(missing, directories(models.path()))
        .unwrap_err();
    assert!(matches!(error, TrainingManagerError::Strategy(_)));
    let chain = format!("{error}: {}", std::error::Error::source(&error).unwrap());
    assert!(chain.contains("strategies/nope.yaml"), "{chain}");

    // Text is parsed as it is; its origin names it and is never opened.
    let text = TrainRequest {
        strategy: StrategySource::Text {
            origin: "/client/side/t.yaml".to_owned(),
            yaml: "name: t\nmodel: [\n".to_owned(),
        },
        ..request(1)
    };
    let error = manager
        .train_multi_symbol_strategy(text, directories(models.path()))
        .unwrap_err();
    let chain = format!("{error}: {}", std::error::Error::source(&error).unwrap());
    assert!(chain.contains("/client/side/t.yaml:"), "{chain}");

    let no_symbols = TrainRequest {
        symbols: Some(vec![]),
        ..request(1)
    };
    assert_eq!(
        manager
            .train_multi_symbol_strategy(no_symbols, directories(models.path()))
            .unwrap_err()
            .to_string(),
        "the symbol list is empty"
    );

    // A directory name that is not UTF-8 (possible on Unix) is refused
    // with its name, not a panic.
    use std::os::unix::ffi::OsStrExt;
    let not_utf8 = models
        .path()
        .join(std::ffi::OsStr::from_bytes(b"models-\xff"));
    let error = manager
        .train_multi_symbol_strategy(
            request(1),
            Directories {
                models: not_utf8.clone(),
                ..directories(models.path())
            },
        )
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "the models directory {} is not valid UTF-8; operation records keep paths as text",
            not_utf8.display()
        )
    );
    assert_eq!(
        manager
            .operations()
            .list(&ListFilter::default())
            .unwrap()
            .total,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_training_beyond_the_limit_stays_pending_and_runs_after() {
    let models = tempfile::tempdir().unwrap();
    let manager = manager(1);
    // A long training (the LSTM example, with early stopping only after
    // several slow epochs) holds the only slot...
    let long = TrainRequest {
        strategy: StrategySource::File(root().join("strategies/btcusd_lstm.yaml")),
        ..request(500)
    };
    let first = manager
        .train_multi_symbol_strategy(long, directories(&models.path().join("first")))
        .unwrap();
    let mut first_watch = manager.operations().watch(&first).unwrap();
    while let Some(snapshot) = first_watch.next().await {
        if snapshot.progress.step.is_some_and(|step| step.current >= 1) {
            break;
        }
    }
    // ...so the next one stays pending until it is cancelled (the first
    // runs 500 epochs: it cannot free the slot before the cancel below).
    let second = manager
        .train_multi_symbol_strategy(request(1), directories(&models.path().join("second")))
        .unwrap();
    assert_eq!(
        manager.operations().get(&second).unwrap().status,
        OperationStatus::Pending
    );
    manager
        .operations()
        .cancel(&first, CancelReason::UserRequest(None))
        .unwrap();

    let mut watch = manager.operations().watch(&second).unwrap();
    let mut last = None;
    while let Some(snapshot) = watch.next().await {
        last = Some(snapshot);
    }
    let second = last.unwrap();
    assert!(second.started_at.is_some());
    assert_eq!(
        second.status,
        OperationStatus::Completed,
        "{:?}",
        second.error
    );
}
