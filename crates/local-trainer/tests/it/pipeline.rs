//! The whole pipeline on the shipped example strategies and sample data:
//! train, evaluate, save, reload and reproduce; and a cancel mid-epoch that
//! leaves no complete-looking artifact.

use std::path::{Path, PathBuf};

use local_trainer::{
    Backend, Directories, LocalTrainer, PipelineError, TrainingOptions, TrainingRequest,
    TrainingSummary, load_artifact,
};
use market_data::LocalStore;
use orchestrator_core::{CancelReason, CancellationToken, Cancelled};
use progress::{ProgressContext, ProgressState};
use strategy::{
    Label, PreparedData, StrategyConfig, assemble, build_symbol_samples, with_overrides,
};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn request(strategy: &str, epochs: u32) -> TrainingRequest {
    options_request(
        strategy,
        TrainingOptions {
            backend: Some(Backend::Flex),
            epochs: Some(epochs),
            ..TrainingOptions::default()
        },
    )
}

fn options_request(strategy: &str, options: TrainingOptions) -> TrainingRequest {
    let strategy = StrategyConfig::from_file(&root().join("strategies").join(strategy)).unwrap();
    TrainingRequest::new(strategy, None, None, options).unwrap()
}

fn directories(models: &Path) -> Directories {
    Directories {
        data: root().join("data"),
        models: models.to_owned(),
    }
}

/// The samples the pipeline trained on, rebuilt independently (features are deterministic).
fn prepared_data(request: &TrainingRequest) -> PreparedData {
    let strategy = request.strategy();
    let store = LocalStore::new(root().join("data"));
    let per_symbol = strategy
        .training_data
        .symbols
        .iter()
        .map(|symbol| {
            let series: Vec<_> = strategy
                .training_data
                .timeframes
                .iter()
                .map(|&tf| (tf, store.read_or_resample(symbol, tf).unwrap().0))
                .collect();
            build_symbol_samples(strategy, symbol, &series).unwrap()
        })
        .collect();
    assemble(strategy, per_symbol)
}

fn train_reload_and_reproduce(strategy: &str, epochs: usize) -> TrainingSummary {
    let models = tempfile::tempdir().unwrap();
    let request = request(strategy, u32::try_from(epochs).unwrap());
    let mut steps = Vec::new();
    let summary = LocalTrainer
        .run(
            &request,
            &directories(models.path()),
            None,
            &CancellationToken::new(),
            &mut |state: ProgressState| {
                steps.push(state.step.map(|step| step.current));
            },
        )
        .unwrap();

    // The four steps were reported in order.
    steps.dedup();
    assert_eq!(steps, [Some(1), Some(2), Some(3), Some(4)]);
    assert_eq!(summary.report.epochs_run, epochs);
    assert!(summary.model_path.starts_with(models.path()));

    let artifact = load_artifact(&summary.model_path, Backend::Flex).unwrap();
    let data = prepared_data(&request);
    assert_eq!(data.test.len(), summary.samples.test);
    let predicted = artifact.predict(&data.test).unwrap();
    let correct = predicted
        .iter()
        .zip(&data.test.labels)
        .filter(|(p, a)| p == a)
        .count();
    let accuracy = correct as f64 / data.test.len() as f64;
    assert_eq!(
        accuracy, summary.metrics.accuracy,
        "the reloaded model reproduces the test accuracy"
    );
    assert_eq!(artifact.metrics, summary.metrics);

    // The quality reading counts every split's labels and reaches a verdict.
    let quality = &summary.quality;
    let total = |counts: [u64; 3]| counts.iter().sum::<u64>() as usize;
    assert_eq!(total(quality.labels.train), summary.samples.train);
    assert_eq!(total(quality.labels.validation), summary.samples.validation);
    assert_eq!(total(quality.labels.test), summary.samples.test);
    assert!(
        quality.verdict.starts_with("no better than always")
            || quality.verdict.starts_with("beats always"),
        "{}",
        quality.verdict
    );
    summary
}

#[test]
fn the_eurusd_mlp_example_trains_saves_reloads_and_reproduces() {
    let summary = train_reload_and_reproduce("eurusd_mlp.yaml", 3);
    assert!(
        summary.model_path.ends_with("eurusd_mlp/EURUSD_1h_v1"),
        "{}",
        summary.model_path.display()
    );
    assert!(summary.samples.train > 3000, "{:?}", summary.samples);
}

#[test]
fn the_btcusd_lstm_example_trains_saves_reloads_and_reproduces() {
    let summary = train_reload_and_reproduce("btcusd_lstm.yaml", 1);
    assert!(summary.model_path.ends_with("btcusd_lstm/BTCUSD_1h_v1"));
}

#[test]
fn the_multi_symbol_cnn_example_trains_saves_reloads_and_reproduces() {
    let summary = train_reload_and_reproduce("multi_cnn.yaml", 1);
    assert!(
        summary
            .model_path
            .ends_with("multi_cnn/EURUSD-BTCUSD_1h-4h_v1"),
        "{}",
        summary.model_path.display()
    );
    assert_eq!(summary.symbols.len(), 2);
}

#[test]
fn a_cancel_mid_epoch_ends_with_cancelled_and_no_complete_artifact() {
    let models = tempfile::tempdir().unwrap();
    // Report every batch, so the cancel lands on the batch chosen below.
    let options = TrainingOptions {
        epochs: Some(5),
        progress_interval: std::time::Duration::ZERO,
        ..TrainingOptions::default()
    };
    let request = options_request("eurusd_mlp.yaml", options);
    let token = CancellationToken::new();
    // A pseudo-random batch of the second epoch (seeded for reproducibility).
    let cancel_at = 2 + fastrand::Rng::with_seed(2026).usize(0..40);
    let mut last_batch = None;
    let directories = directories(models.path());
    let result = LocalTrainer.run(
        &request,
        &directories,
        None,
        &token,
        &mut |state: ProgressState| {
            if let ProgressContext::Training(context) = &state.context
                && let (Some(epoch), Some(batch)) = (context.epoch, context.batch)
            {
                last_batch = Some((epoch, batch));
                if epoch.current == 2 && batch.current as usize >= cancel_at {
                    token.cancel(CancelReason::UserRequest(None));
                }
            }
        },
    );

    let error = result.unwrap_err();
    assert!(matches!(error, PipelineError::Train(_)), "{error}");
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&error);
    let mut cancelled = None;
    while let Some(inner) = source {
        cancelled = cancelled.or(inner.downcast_ref::<Cancelled>());
        source = inner.source();
    }
    assert!(cancelled.is_some(), "Cancelled is in the error chain");
    let (epoch, batch) = last_batch.unwrap();
    assert_eq!(
        epoch.current, 2,
        "stopped within the epoch it was cancelled in"
    );
    assert!(
        batch.current < batch.total,
        "stopped before the epoch's last batch"
    );

    // Nothing in the models dir looks like a complete artifact.
    let complete: Vec<_> = walk(models.path())
        .into_iter()
        .filter(|p| p.ends_with("manifest.json"))
        .collect();
    assert!(complete.is_empty(), "{complete:?}");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(walk(&path));
        }
        found.push(path);
    }
    found
}

#[test]
fn a_missing_series_fails_naming_the_file() {
    let models = tempfile::tempdir().unwrap();
    let base = request("eurusd_mlp.yaml", 1);
    let nope = with_overrides(
        base.strategy().clone(),
        Some(vec!["NOPE".parse().unwrap()]),
        None,
    );
    let request = TrainingRequest::new(nope.unwrap(), None, None, *base.options()).unwrap();
    let error = LocalTrainer
        .run(
            &request,
            &directories(models.path()),
            None,
            &CancellationToken::new(),
            &mut |_| {},
        )
        .unwrap_err();
    let message = format!("{error}: {}", std::error::Error::source(&error).unwrap());
    assert!(message.contains("NOPE_1h.csv does not exist"), "{message}");
    // Labels are usable as class indices.
    assert_eq!(Label::from_index(Label::Sell.index()), Some(Label::Sell));
}
