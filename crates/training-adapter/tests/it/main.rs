//! The host route of `TrainingAdapter` against a real training host served
//! in-process on loopback: the model comes back into the local models
//! folder, progress reaches the operation, the host's checkpoints land in
//! the local checkpoint file, a local checkpoint resumes there, a cancel
//! ends it cancelled, a host that shuts down fails it.

use std::error::Error as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use orchestrator_core::{
    CancelReason, Cancelled, HostServiceConfig, OperationKind, OperationsService, ServiceAdapter,
};
use progress::ProgressContext;
use strategy::StrategyConfig;
use training_adapter::{
    AdapterError, Checkpoints, Directories, RemoteStop, RemoteTrainingError, SavedCheckpoint,
    TrainingAdapter, TrainingJob, TrainingOptions, TrainingRequest,
};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A training host on `127.0.0.1:0` writing its models to `models_dir`;
/// stops when the returned sender is dropped.
async fn start_host(models_dir: &Path) -> (String, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let options = host_service::HostOptions {
        data_dir: root().join("data"),
        models_dir: models_dir.to_owned(),
        max_concurrent: 1,
        auth_token: None,
        backend: host_service::Backend::Flex,
    };
    tokio::spawn(host_service::serve(listener, options, async {
        let _ = stopped.await;
    }));
    (url, stop)
}

fn request(epochs: u32) -> TrainingRequest {
    let strategy = StrategyConfig::from_file(&root().join("strategies/eurusd_mlp.yaml")).unwrap();
    let options = TrainingOptions {
        epochs: Some(epochs),
        ..TrainingOptions::default()
    };
    TrainingRequest::new(strategy, None, None, options).unwrap()
}

fn directories(models: &Path) -> Directories {
    Directories {
        // The host reads its own data folder; this one must not matter.
        data: PathBuf::from("/nonexistent"),
        models: models.to_owned(),
    }
}

fn adapter(url: &str) -> TrainingAdapter {
    TrainingAdapter::new(&HostServiceConfig::host("TRAINING", url).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_training_brings_its_model_back_into_the_local_models_folder() {
    let host_models = tempfile::tempdir().unwrap();
    let local_models = tempfile::tempdir().unwrap();
    let (url, _stop) = start_host(host_models.path()).await;
    let operations = OperationsService::in_memory();
    let context = operations
        .create(OperationKind::Training, serde_json::json!({}), None)
        .unwrap();

    let mut watch = operations.watch(&context.id).unwrap();
    let adapter = adapter(&url);
    let training = adapter.train(TrainingJob::new(
        request(2),
        directories(local_models.path()),
        context,
    ));
    tokio::pin!(training);
    let mut epochs_seen = Vec::new();
    let summary = loop {
        tokio::select! {
            summary = &mut training => break summary.unwrap(),
            Some(snapshot) = watch.next() => {
                if let ProgressContext::Training(training) = snapshot.progress.context {
                    epochs_seen.extend(training.epoch);
                }
            }
        }
    };

    assert_eq!(summary.report.epochs_run, 2);
    assert!(
        summary.model_path.starts_with(local_models.path()),
        "{summary:?}"
    );
    assert!(
        summary.model_path.ends_with("eurusd_mlp/EURUSD_1h_v1"),
        "{summary:?}"
    );
    let local =
        local_trainer::load_artifact(&summary.model_path, training_adapter::Backend::Flex).unwrap();
    assert_eq!(local.metrics, summary.metrics);
    // The host's typed progress reached the local operation (coalesced:
    // a watcher sees the latest snapshot, not every one).
    assert!(
        !epochs_seen.is_empty() && epochs_seen.iter().all(|epoch| epoch.total == 2),
        "{epochs_seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_stops_the_host_training_and_installs_nothing() {
    let host_models = tempfile::tempdir().unwrap();
    let local_models = tempfile::tempdir().unwrap();
    let (url, _stop) = start_host(host_models.path()).await;
    let operations = OperationsService::in_memory();
    let context = operations
        .create(OperationKind::Training, serde_json::json!({}), None)
        .unwrap();
    let token = context.token.clone();
    let mut watch = operations.watch(&context.id).unwrap();
    let training = tokio::spawn({
        let adapter = adapter(&url);
        let (request, directories) = (request(500), directories(local_models.path()));
        async move {
            adapter
                .train(TrainingJob::new(request, directories, context))
                .await
        }
    });
    // Cancel once the host trains (its first batch report).
    while let Some(snapshot) = watch.next().await {
        if let ProgressContext::Training(training) = &snapshot.progress.context
            && training.batch.is_some()
        {
            break;
        }
    }
    token.cancel(CancelReason::UserRequest(None));
    let err = training.await.unwrap().unwrap_err();

    let AdapterError::Host(RemoteTrainingError::Cancelled { stop, .. }) = &err else {
        panic!("{err:?}");
    };
    assert_eq!(stop, &RemoteStop::Confirmed);
    assert!(
        err.source().is_some_and(|source| source.is::<Cancelled>()),
        "{err:?}"
    );
    assert_eq!(std::fs::read_dir(local_models.path()).unwrap().count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hosts_checkpoints_land_in_the_local_file_up_to_where_a_cancel_stopped_it() {
    let host_models = tempfile::tempdir().unwrap();
    let local_models = tempfile::tempdir().unwrap();
    let (url, _stop) = start_host(host_models.path()).await;
    let operations = OperationsService::in_memory();
    let context = operations
        .create(OperationKind::Training, serde_json::json!({}), None)
        .unwrap();
    let token = context.token.clone();
    let local = local_models.path().join(".checkpoints").join("op.ckpt");
    let (saved, mut reported) = tokio::sync::mpsc::unbounded_channel();
    let checkpoints = Checkpoints {
        path: local.clone(),
        resume_from: None,
        on_saved: Arc::new(move |checkpoint: &SavedCheckpoint| {
            let _ = saved.send(checkpoint.clone());
        }),
    };
    let training = tokio::spawn({
        let adapter = adapter(&url);
        let (request, directories) = (request(500), directories(local_models.path()));
        async move {
            adapter
                .train(
                    TrainingJob::new(request, directories, context).with_checkpoints(checkpoints),
                )
                .await
        }
    });
    // A checkpoint of an epoch's end, fetched and written here.
    let first = reported.recv().await.unwrap();
    assert_eq!(first.path, local);
    token.cancel(CancelReason::UserRequest(None));
    let err = training.await.unwrap().unwrap_err();
    assert!(
        matches!(
            err,
            AdapterError::Host(RemoteTrainingError::Cancelled {
                stop: RemoteStop::Confirmed,
                ..
            })
        ),
        "{err:?}"
    );

    // The last one reported is the one the host saved where it stopped.
    let mut last = first;
    while let Ok(saved) = reported.try_recv() {
        last = saved;
    }
    let on_host: Vec<PathBuf> = std::fs::read_dir(host_models.path().join(".checkpoints"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    let [on_host] = &on_host[..] else {
        panic!("{on_host:?}");
    };
    let content = std::fs::read(&local).unwrap();
    assert_eq!(content, std::fs::read(on_host).unwrap());
    assert_eq!(last.bytes, content.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_shuts_down_mid_training_fails_the_training() {
    let host_models = tempfile::tempdir().unwrap();
    let local_models = tempfile::tempdir().unwrap();
    let (url, stop) = start_host(host_models.path()).await;
    let operations = OperationsService::in_memory();
    let context = operations
        .create(OperationKind::Training, serde_json::json!({}), None)
        .unwrap();
    let token = context.token.clone();
    let mut watch = operations.watch(&context.id).unwrap();
    let training = tokio::spawn({
        let adapter = adapter(&url);
        let (request, directories) = (request(500), directories(local_models.path()));
        async move {
            adapter
                .train(TrainingJob::new(request, directories, context))
                .await
        }
    });
    while let Some(snapshot) = watch.next().await {
        if let ProgressContext::Training(training) = &snapshot.progress.context
            && training.batch.is_some()
        {
            break;
        }
    }
    // The host's own shutdown (Ctrl-C on `trdr host-service`), not a cancel here.
    drop(stop);
    let err = training.await.unwrap().unwrap_err();

    assert!(
        matches!(
            err,
            AdapterError::Host(RemoteTrainingError::HostShutDown { .. })
        ),
        "{err:?}"
    );
    assert!(!token.is_cancelled());
    // No `Cancelled` in the chain: the operation running it ends `failed`.
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&err);
    while let Some(error) = source {
        assert!(!error.is::<Cancelled>(), "{err:?}");
        source = error.source();
    }
    assert!(
        orchestrator_core::error_chain(&err).starts_with(&format!(
            "training host shut down: {url} stopped the training"
        )),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(local_models.path()).unwrap().count(), 0);
}

/// The weights and test metrics of the artifact at `model_path`: what two
/// trainings of the same seed share byte for byte.
fn artifact_bytes(model_path: &Path) -> (Vec<u8>, Vec<u8>) {
    (
        std::fs::read(model_path.join("model.bpk")).unwrap(),
        std::fs::read(model_path.join("metrics.json")).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_checkpoint_resumes_on_the_host_to_the_uninterrupted_runs_model() {
    let mut strategy =
        StrategyConfig::from_file(&root().join("strategies/eurusd_mlp.yaml")).unwrap();
    strategy.model.early_stopping_patience = None;
    let request = || {
        let options = TrainingOptions {
            epochs: Some(4),
            ..TrainingOptions::default()
        };
        TrainingRequest::new(strategy.clone(), None, None, options).unwrap()
    };
    let local = TrainingAdapter::new(&HostServiceConfig::local("TRAINING"));
    let operations = OperationsService::in_memory();
    let context = || {
        operations
            .create(OperationKind::Training, serde_json::json!({}), None)
            .unwrap()
    };
    let here = |models: &Path| Directories {
        data: root().join("data"),
        models: models.to_owned(),
    };

    let whole_models = tempfile::tempdir().unwrap();
    let whole = context();
    let whole = local
        .train(TrainingJob::new(
            request(),
            here(whole_models.path()),
            whole,
        ))
        .await
        .unwrap();

    // Stopped here once the end of epoch 2 is saved.
    let local_models = tempfile::tempdir().unwrap();
    let stopped = local_models
        .path()
        .join(".checkpoints")
        .join("stopped.ckpt");
    let stopping = context();
    let token = stopping.token.clone();
    let checkpoints = Checkpoints {
        path: stopped.clone(),
        resume_from: None,
        on_saved: Arc::new(move |saved: &SavedCheckpoint| {
            if saved.epoch >= 2 {
                token.cancel(CancelReason::UserRequest(None));
            }
        }),
    };
    let err = local
        .train(
            TrainingJob::new(request(), here(local_models.path()), stopping)
                .with_checkpoints(checkpoints),
        )
        .await
        .unwrap_err();
    assert!(
        err.source().is_some_and(|source| source.is::<Cancelled>()),
        "{err:?}"
    );

    // Resumed on the host: uploaded, continued there, its checkpoints
    // fetched into this run's file.
    let host_models = tempfile::tempdir().unwrap();
    let (url, _stop) = start_host(host_models.path()).await;
    let resumed_file = local_models
        .path()
        .join(".checkpoints")
        .join("resumed.ckpt");
    let (saved, mut reported) = tokio::sync::mpsc::unbounded_channel();
    let checkpoints = Checkpoints {
        path: resumed_file.clone(),
        resume_from: Some(stopped.clone()),
        on_saved: Arc::new(move |checkpoint: &SavedCheckpoint| {
            let _ = saved.send(checkpoint.clone());
        }),
    };
    let resuming = context();
    let summary = adapter(&url)
        .train(
            TrainingJob::new(request(), directories(local_models.path()), resuming)
                .with_checkpoints(checkpoints),
        )
        .await
        .unwrap();

    assert!(
        summary.model_path.starts_with(local_models.path()),
        "{summary:?}"
    );
    assert_eq!(
        artifact_bytes(&summary.model_path),
        artifact_bytes(&whole.model_path),
        "the run resumed on the host differs from the uninterrupted run"
    );
    // It went on from epoch 2: every checkpoint fetched (the training may
    // end before one is) is of a later epoch.
    while let Ok(fetched) = reported.try_recv() {
        assert!(fetched.epoch >= 3, "{fetched:?}");
        assert_eq!(fetched.path, resumed_file);
    }
    // The host continued from the upload, so it removed it once the
    // training completed (and its own checkpoints with it).
    let left_on_host: Vec<PathBuf> = std::fs::read_dir(host_models.path().join(".checkpoints"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    assert!(left_on_host.is_empty(), "{left_on_host:?}");
}

#[tokio::test]
async fn the_health_of_a_host_that_is_down_names_its_url() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", free.local_addr().unwrap());
    drop(free);
    let adapter = adapter(&url);
    assert_eq!(adapter.name(), "training-host");
    let problem = adapter.health().await.unwrap_err().to_string();
    assert!(
        problem.starts_with(&format!("training host at {url} is not reachable")),
        "{problem}"
    );
}
