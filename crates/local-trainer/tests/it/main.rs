//! Trains real (tiny) models on synthetic data: learning, determinism,
//! progress, early stopping, cancellation, both CPU backends, and wgpu in
//! a build with it.

mod pipeline;

use std::error::Error as _;
use std::time::Duration;

use local_trainer::{Backend, TrainError, TrainOptions, TrainedModel, train};
use orchestrator_core::{CancelReason, CancellationToken, Cancelled};
use progress::{ProgressContext, ProgressState, Step, TrainingContext};
use strategy::{ModelKind, PreparedData, StrategyConfig};

#[path = "../../src/test_data.rs"]
#[allow(dead_code)]
mod test_data;

fn run(
    strategy: &StrategyConfig,
    data: &PreparedData,
    options: &TrainOptions,
) -> (TrainedModel, Vec<ProgressState>) {
    let mut reports = Vec::new();
    let token = CancellationToken::new();
    let trained = train(strategy, data, options, &token, &mut |state| {
        reports.push(state)
    })
    .unwrap();
    (trained, reports)
}

fn context(state: &ProgressState) -> &TrainingContext {
    match &state.context {
        ProgressContext::Training(context) => context,
        other => panic!("not a training context: {other:?}"),
    }
}

/// Trainings run on a blocking thread and their results cross back to async code.
#[test]
fn results_can_move_between_threads() {
    fn send_and_sync<T: Send + Sync>() {}
    send_and_sync::<TrainedModel>();
    send_and_sync::<local_trainer::Artifact>();
    send_and_sync::<TrainError>();
    send_and_sync::<local_trainer::ArtifactError>();
}

#[test]
fn every_model_kind_learns_well_above_the_baseline() {
    let data = test_data::prepared_data(11);
    for kind in [ModelKind::Mlp, ModelKind::Cnn, ModelKind::Lstm] {
        let strategy = test_data::strategy(kind);
        let (trained, _) = run(&strategy, &data, &TrainOptions::default());
        let metrics = trained.evaluate(&data, &CancellationToken::new()).unwrap();
        assert!(
            metrics.accuracy > 0.8 && metrics.accuracy > metrics.baseline.accuracy + 0.3,
            "{kind:?}: accuracy {} vs baseline {}",
            metrics.accuracy,
            metrics.baseline.accuracy
        );
        assert_eq!(trained.report.epochs_run, strategy.model.epochs);
        assert_eq!(metrics.samples, data.test.len());
    }
}

#[test]
fn the_same_seed_gives_the_same_model_and_another_seed_does_not() {
    let data = test_data::prepared_data(5);
    let mut strategy = test_data::strategy(ModelKind::Mlp);
    strategy.model.epochs = 4;
    strategy.model.dropout = 0.3;
    strategy.model.symbol_embedding_dim = 3;
    let token = CancellationToken::new();
    let losses = |trained: &TrainedModel| {
        trained
            .report
            .history
            .iter()
            .map(|epoch| {
                (
                    epoch.train_loss,
                    epoch.train_accuracy,
                    epoch.val_loss,
                    epoch.val_accuracy,
                )
            })
            .collect::<Vec<_>>()
    };

    let (first, _) = run(&strategy, &data, &TrainOptions::default());
    let (second, _) = run(&strategy, &data, &TrainOptions::default());
    assert_eq!(losses(&first), losses(&second));
    assert_eq!(
        first.evaluate(&data, &token).unwrap(),
        second.evaluate(&data, &token).unwrap()
    );
    assert_eq!(
        first.model.predict(&data.test).unwrap(),
        second.model.predict(&data.test).unwrap()
    );
    // Byte for byte: the weights file holds the parameters' ids too.
    let weights = |trained: &TrainedModel| {
        let models = tempfile::tempdir().unwrap();
        let metrics = trained.evaluate(&data, &token).unwrap();
        let path = local_trainer::save_artifact(
            models.path(),
            &strategy,
            &data,
            trained,
            &metrics,
            &token,
        )
        .unwrap();
        std::fs::read(path.join(local_trainer::WEIGHTS_FILE)).unwrap()
    };
    assert_eq!(weights(&first), weights(&second));

    strategy.model.seed += 1;
    let (other, _) = run(&strategy, &data, &TrainOptions::default());
    assert_ne!(losses(&first), losses(&other));
}

#[test]
fn progress_is_typed_throttled_and_spans_the_training_phase() {
    let data = test_data::prepared_data(2);
    let mut strategy = test_data::strategy(ModelKind::Mlp);
    strategy.model.epochs = 3;
    let batches = data.train.len().div_ceil(strategy.model.batch_size) as u32;

    // Unthrottled: one report per batch, the last of each epoch with validation.
    let options = TrainOptions {
        progress_interval: Duration::ZERO,
        progress_range: (20.0, 60.0),
        ..TrainOptions::default()
    };
    let (_, reports) = run(&strategy, &data, &options);
    assert_eq!(reports.len(), 3 * batches as usize);
    let mut last_percentage = 20.0;
    for (index, state) in reports.iter().enumerate() {
        let context = context(state);
        let epoch = index as u32 / batches + 1;
        let batch = index as u32 % batches + 1;
        assert_eq!(context.epoch, Some(Step::new(epoch, 3)));
        assert_eq!(context.batch, Some(Step::new(batch, batches)));
        assert_eq!(context.val_loss.is_some(), batch == batches);
        assert_eq!(context.val_accuracy.is_some(), batch == batches);
        assert!(context.train_loss.unwrap().is_finite());
        assert!(context.samples_per_second.unwrap() > 0.0);
        assert_eq!(context.model_type.as_deref(), Some("MLP"));
        assert_eq!(context.symbols, ["AAA", "BBB"]);
        assert_eq!(context.timeframes, ["1h", "4h"]);
        assert_eq!(state.step, Some(Step::new(3, 4)));
        assert!(state.percentage > last_percentage && state.percentage <= 60.0);
        last_percentage = state.percentage;
    }
    assert_eq!(last_percentage, 60.0);

    // Throttled far beyond the training's length: only the epoch ends (and
    // the very first batch, since nothing was reported before it).
    let options = TrainOptions {
        progress_interval: Duration::from_secs(3600),
        ..TrainOptions::default()
    };
    let (_, reports) = run(&strategy, &data, &options);
    let epoch_ends = reports
        .iter()
        .filter(|state| context(state).val_loss.is_some())
        .count();
    assert_eq!(epoch_ends, 3);
    assert!(reports.len() <= 4, "{} reports", reports.len());
}

#[test]
fn cancelling_mid_epoch_stops_before_the_epoch_ends() {
    let data = test_data::prepared_data(8);
    let strategy = test_data::strategy(ModelKind::Cnn);
    let batches = data.train.len().div_ceil(strategy.model.batch_size) as u32;
    let mut rng = fastrand::Rng::with_seed(2024);
    for _ in 0..3 {
        let cancel_epoch = rng.u32(1..=3);
        let cancel_batch = rng.u32(1..batches - 1);
        let token = CancellationToken::new();
        let options = TrainOptions {
            progress_interval: Duration::ZERO,
            ..TrainOptions::default()
        };
        let mut last = None;
        let result = train(&strategy, &data, &options, &token, &mut |state| {
            let context = context(&state);
            let at = (
                context.epoch.unwrap().current,
                context.batch.unwrap().current,
            );
            if at == (cancel_epoch, cancel_batch) {
                token.cancel(CancelReason::UserRequest(Some("test".into())));
            }
            last = Some(at);
        });
        let err = result.unwrap_err();
        assert!(matches!(err, TrainError::Cancelled(_)), "{err:?}");
        let cancelled = err.source().unwrap().downcast_ref::<Cancelled>().unwrap();
        assert_eq!(cancelled.stage, "training");
        assert_eq!(
            cancelled.reason,
            CancelReason::UserRequest(Some("test".into()))
        );
        // The batch after the cancel never ran: no report for it, none for the epoch end.
        assert_eq!(last, Some((cancel_epoch, cancel_batch)));
        assert!(cancel_batch < batches);
    }

    // Cancelled before starting: nothing runs at all.
    let token = CancellationToken::new();
    token.cancel(CancelReason::Shutdown);
    let mut reports = 0;
    let err = train(
        &strategy,
        &data,
        &TrainOptions::default(),
        &token,
        &mut |_| reports += 1,
    )
    .unwrap_err();
    assert!(matches!(err, TrainError::Cancelled(_)));
    assert_eq!(reports, 0);
}

#[test]
fn early_stopping_keeps_the_best_epoch() {
    // Labels unrelated to the features: validation loss soon rises.
    let mut data = test_data::prepared_data(21);
    let mut rng = fastrand::Rng::with_seed(9);
    for split in [&mut data.train, &mut data.validation, &mut data.test] {
        for label in &mut split.labels {
            *label = strategy::Label::ALL[rng.usize(0..3)];
        }
    }
    let mut strategy = test_data::strategy(ModelKind::Mlp);
    strategy.model.hidden_layers = vec![64];
    strategy.model.dropout = 0.0;
    strategy.model.learning_rate = 0.02;
    strategy.model.epochs = 40;
    strategy.model.early_stopping_patience = Some(2);
    let (trained, _) = run(&strategy, &data, &TrainOptions::default());
    let report = &trained.report;
    assert!(report.stopped_early);
    assert!(report.epochs_run < 40);
    assert_eq!(report.epochs_run, report.history.len());

    let val_losses: Vec<f64> = report.history.iter().map(|e| e.val_loss.unwrap()).collect();
    let best = val_losses
        .iter()
        .enumerate()
        .min_by(|a, b| a.1.total_cmp(b.1))
        .map(|(index, _)| index + 1)
        .unwrap();
    assert_eq!(report.best_epoch, best);
    assert_eq!(report.best_val_loss, Some(val_losses[best - 1]));
    assert_eq!(report.epochs_run, best + 2);

    // The model kept is the best epoch's: it scores that epoch's validation accuracy.
    let on_validation = PreparedData {
        test: data.validation.clone(),
        ..data.clone()
    };
    let metrics = trained
        .evaluate(&on_validation, &CancellationToken::new())
        .unwrap();
    assert_eq!(
        Some(metrics.accuracy),
        report.history[best - 1].val_accuracy
    );
}

#[test]
fn both_backends_train_and_load_each_others_artifacts() {
    let data = test_data::prepared_data(4);
    let mut strategy = test_data::strategy(ModelKind::Lstm);
    strategy.model.epochs = 6;
    let token = CancellationToken::new();
    let models = tempfile::tempdir().unwrap();
    for (backend, other) in [
        (Backend::NdArray, Backend::Flex),
        (Backend::Flex, Backend::NdArray),
    ] {
        let options = TrainOptions {
            backend,
            ..TrainOptions::default()
        };
        let (trained, _) = run(&strategy, &data, &options);
        assert_eq!(trained.model.backend(), backend);
        let metrics = trained.evaluate(&data, &token).unwrap();
        assert!(
            metrics.accuracy > metrics.baseline.accuracy + 0.2,
            "{backend}: {} vs {}",
            metrics.accuracy,
            metrics.baseline.accuracy
        );
        let path = local_trainer::save_artifact(
            models.path(),
            &strategy,
            &data,
            &trained,
            &metrics,
            &token,
        )
        .unwrap();
        let artifact = local_trainer::load_artifact(&path, other).unwrap();
        assert_eq!(artifact.manifest.backend, backend);
        assert_eq!(
            artifact.predict(&data.test).unwrap(),
            trained.model.predict(&data.test).unwrap()
        );
    }
}

/// The GPU path (lavapipe in CI): every model kind trains on wgpu to the
/// losses it reaches on flex, within float rounding, since a GPU sums in
/// another order. The LSTM is burn's own layer there and the fused one on
/// flex, so this also holds the two to the same numbers.
#[cfg(feature = "wgpu")]
#[test]
fn slow_every_model_kind_trains_on_wgpu_to_the_losses_of_flex() {
    let data = test_data::prepared_data(5);
    for kind in [ModelKind::Mlp, ModelKind::Cnn, ModelKind::Lstm] {
        let mut strategy = test_data::strategy(kind);
        // Dropout masks are drawn in another order by the two LSTM paths.
        strategy.model.dropout = 0.0;
        strategy.model.hidden_layers = vec![16, 8];
        // Few, large batches: lavapipe runs every kernel on the CPU.
        strategy.model.batch_size = 100;
        strategy.model.epochs = 2;
        let on = |backend| {
            let options = TrainOptions {
                backend,
                ..TrainOptions::default()
            };
            run(&strategy, &data, &options).0
        };
        let (gpu, cpu) = (on(Backend::Wgpu), on(Backend::Flex));
        assert_ne!(gpu.model.device_name(), "cpu");
        let losses = |trained: &TrainedModel| -> Vec<f64> {
            let history = &trained.report.history;
            history.iter().map(|epoch| epoch.train_loss).collect()
        };
        let (gpu_losses, cpu_losses) = (losses(&gpu), losses(&cpu));
        for (gpu_loss, cpu_loss) in gpu_losses.iter().zip(&cpu_losses) {
            assert!(
                (gpu_loss - cpu_loss).abs() <= 1e-3 * cpu_loss,
                "{kind:?}: train losses {gpu_losses:?} on wgpu, {cpu_losses:?} on flex"
            );
        }
        let (gpu_labels, cpu_labels) = (
            gpu.model.predict(&data.test).unwrap(),
            cpu.model.predict(&data.test).unwrap(),
        );
        let agree = gpu_labels
            .iter()
            .zip(&cpu_labels)
            .filter(|(gpu, cpu)| gpu == cpu)
            .count();
        assert!(
            agree * 100 >= gpu_labels.len() * 98,
            "{kind:?}: {agree} of {} test predictions agree",
            gpu_labels.len()
        );
    }
}

#[test]
fn unusable_configurations_and_data_are_refused_before_training() {
    let data = test_data::prepared_data(1);
    let token = CancellationToken::new();
    let refuse = |strategy: &StrategyConfig, data: &PreparedData| {
        train(
            strategy,
            data,
            &TrainOptions::default(),
            &token,
            &mut |_| {},
        )
        .unwrap_err()
        .to_string()
    };

    let mut lstm = test_data::strategy(ModelKind::Lstm);
    lstm.model.hidden_layers.clear();
    assert_eq!(
        refuse(&lstm, &data),
        "invalid model configuration: an LSTM needs at least one hidden layer"
    );

    let mut no_batches = test_data::strategy(ModelKind::Mlp);
    no_batches.model.batch_size = 0;
    assert_eq!(
        refuse(&no_batches, &data),
        "invalid model configuration: epochs (12) and batch_size (0) must be positive"
    );

    let mut short = data.clone();
    short.validation.labels.pop();
    assert_eq!(
        refuse(&test_data::strategy(ModelKind::Mlp), &short),
        "invalid training data: validation: 100 samples of features but 99 labels and 100 symbol ids"
    );
}
