//! A training stopped and resumed, once or twice, at seeded random batches
//! ends bit for bit as the same training never stopped: weights, per-epoch
//! metrics, best epoch and test metrics, for every model kind on both
//! backends.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::Tensor;
use orchestrator_core::{CancelReason, CancellationToken};
use progress::{ProgressContext, ProgressState};
use strategy::{CheckpointPolicy, ModelKind, PreparedData, StrategyConfig};

use super::*;
use crate::test_data;
use crate::{TrainOptions, TrainedModel, train, train_with_checkpoints};

/// Every float parameter's values, as bits, in visiting order.
#[derive(Default)]
struct Weights(Vec<u32>);

impl ModuleVisitor for Weights {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let values = param.val().into_data().try_to_vec::<f32>().unwrap();
        self.0.extend(values.iter().map(|value| value.to_bits()));
    }
}

/// One epoch's number, and its losses and accuracies as bits.
type EpochBits = (usize, u64, u64, Option<u64>, Option<u64>);

/// What must be identical: weights, history (timings aside), best epoch,
/// early stop, and the test metrics.
#[derive(Debug, PartialEq)]
struct Outcome {
    weights: Vec<u32>,
    history: Vec<EpochBits>,
    best_epoch: usize,
    best_val_loss: Option<u64>,
    stopped_early: bool,
    test: String,
}

fn outcome(trained: &TrainedModel, data: &PreparedData) -> Outcome {
    let mut weights = Weights::default();
    trained.model.network().visit(&mut weights);
    let report = &trained.report;
    let metrics = trained.evaluate(data, &CancellationToken::new()).unwrap();
    Outcome {
        weights: weights.0,
        history: report
            .history
            .iter()
            .map(|epoch| {
                (
                    epoch.epoch,
                    epoch.train_loss.to_bits(),
                    epoch.train_accuracy.to_bits(),
                    epoch.val_loss.map(f64::to_bits),
                    epoch.val_accuracy.map(f64::to_bits),
                )
            })
            .collect(),
        best_epoch: report.best_epoch,
        best_val_loss: report.best_val_loss.map(f64::to_bits),
        stopped_early: report.stopped_early,
        test: serde_json::to_string(&metrics).unwrap(),
    }
}

fn options(backend: Backend) -> TrainOptions {
    TrainOptions {
        backend,
        // Every batch reports, so a test can stop at any one.
        progress_interval: Duration::ZERO,
        ..TrainOptions::default()
    }
}

/// One run: continues from `resume_from` if given, writes its checkpoints
/// to `path`, and is cancelled once it reports (epoch, batch) `stop_at`.
/// Returns the model, or `None` when it stopped, and the saves it heard of.
fn run(
    strategy: &StrategyConfig,
    data: &PreparedData,
    backend: Backend,
    path: &Path,
    resume_from: Option<PathBuf>,
    stop_at: Option<(u32, u32)>,
) -> (Option<TrainedModel>, Vec<SavedCheckpoint>) {
    let token = CancellationToken::new();
    let (sender, saves) = mpsc::channel();
    let mut checkpoints = Checkpoints {
        path: path.to_owned(),
        resume_from,
        on_saved: Arc::new(move |saved| {
            let _ = sender.send(saved.clone());
        }),
    };
    let mut progress = |state: ProgressState| {
        let ProgressContext::Training(context) = &state.context else {
            return;
        };
        let at = (
            context.epoch.map_or(0, |step| step.current),
            context.batch.map_or(0, |step| step.current),
        );
        if Some(at) == stop_at {
            token.cancel(CancelReason::UserRequest(None));
        }
    };
    let result = train_with_checkpoints(
        strategy,
        data,
        &options(backend),
        Some(&mut checkpoints),
        &token,
        &mut progress,
    );
    let saves = saves.try_iter().collect();
    match result {
        Ok(trained) => (Some(trained), saves),
        Err(TrainError::Cancelled(_)) => (None, saves),
        Err(error) => panic!("{error}"),
    }
}

fn strategy(kind: ModelKind) -> StrategyConfig {
    let mut strategy = test_data::strategy(kind);
    strategy.model.epochs = 5;
    // Early stopping's count is part of the state too.
    strategy.model.early_stopping_patience = Some(3);
    strategy
}

#[test]
fn a_stopped_and_resumed_training_ends_exactly_as_an_uninterrupted_one() {
    let data = test_data::prepared_data(3);
    let dir = tempfile::tempdir().unwrap();
    let mut rng = fastrand::Rng::with_seed(14);
    // Bit for bit on the CPU; a GPU's sums need not be.
    for backend in Backend::CPU {
        for kind in [ModelKind::Mlp, ModelKind::Cnn, ModelKind::Lstm] {
            let strategy = strategy(kind);
            let batches = data.train.len().div_ceil(strategy.model.batch_size) as u32;
            let case = format!("{kind:?} on {backend}");
            let uninterrupted = train(
                &strategy,
                &data,
                &options(backend),
                &CancellationToken::new(),
                &mut |_| {},
            )
            .unwrap();
            let expected = outcome(&uninterrupted, &data);

            // Stopped once, in the middle of an epoch.
            let stop = (rng.u32(1..=3), rng.u32(1..batches));
            let first = dir.path().join(format!("{case} first.ckpt"));
            let (stopped, saves) = run(&strategy, &data, backend, &first, None, Some(stop));
            assert!(stopped.is_none(), "{case}: not stopped at {stop:?}");
            let last = saves.last().expect("a checkpoint on stop");
            assert_eq!(
                (last.epoch, last.batch),
                (stop.0 as usize, stop.1 as usize),
                "{case}: the stop saves the state at the last completed batch"
            );
            let second = dir.path().join(format!("{case} second.ckpt"));
            let (resumed, _) = run(&strategy, &data, backend, &second, Some(first), None);
            assert_eq!(
                outcome(&resumed.unwrap(), &data),
                expected,
                "{case}: stopped at {stop:?} and resumed"
            );

            // Stopped twice: the second run stops again, later.
            let stops = [
                (1, rng.u32(1..batches)),
                (rng.u32(2..=4), rng.u32(1..batches)),
            ];
            let paths: Vec<PathBuf> = (0..3)
                .map(|run| dir.path().join(format!("{case} twice {run}.ckpt")))
                .collect();
            let (stopped, _) = run(&strategy, &data, backend, &paths[0], None, Some(stops[0]));
            assert!(stopped.is_none());
            let (stopped, _) = run(
                &strategy,
                &data,
                backend,
                &paths[1],
                Some(paths[0].clone()),
                Some(stops[1]),
            );
            assert!(stopped.is_none());
            let (resumed, _) = run(
                &strategy,
                &data,
                backend,
                &paths[2],
                Some(paths[1].clone()),
                None,
            );
            assert_eq!(
                outcome(&resumed.unwrap(), &data),
                expected,
                "{case}: stopped at {stops:?} and resumed twice"
            );
        }
    }
}

#[test]
fn checkpoints_follow_the_policy_and_the_end_of_the_loop_is_always_saved() {
    let data = test_data::prepared_data(5);
    let dir = tempfile::tempdir().unwrap();
    let mut strategy = strategy(ModelKind::Mlp);
    strategy.model.early_stopping_patience = None;
    strategy.model.checkpoint = CheckpointPolicy {
        every_epochs: 2,
        every_seconds: 0,
    };
    let path = dir.path().join("policy.ckpt");
    let (trained, saves) = run(&strategy, &data, Backend::Flex, &path, None, None);
    assert!(trained.is_some());
    let batches = data.train.len().div_ceil(strategy.model.batch_size);
    let at: Vec<(usize, usize)> = saves
        .iter()
        .map(|saved| (saved.epoch, saved.batch))
        .collect();
    assert_eq!(at, [(2, batches), (4, batches), (5, batches)]);
    let bytes = std::fs::metadata(&path).unwrap().len();
    assert_eq!(saves.last().unwrap().bytes, bytes);

    // A resume of a finished loop trains nothing more and gives the same model.
    let again = dir.path().join("again.ckpt");
    let (resumed, saves) = run(&strategy, &data, Backend::Flex, &again, Some(path), None);
    assert!(saves.is_empty(), "nothing left to save: {saves:?}");
    assert_eq!(
        outcome(&resumed.unwrap(), &data),
        outcome(&trained.unwrap(), &data)
    );
}

#[test]
fn a_resume_against_other_inputs_or_a_damaged_file_is_refused_naming_why() {
    let data = test_data::prepared_data(6);
    let dir = tempfile::tempdir().unwrap();
    let strategy = strategy(ModelKind::Mlp);
    let path = dir.path().join("saved.ckpt");
    let (stopped, _) = run(&strategy, &data, Backend::Flex, &path, None, Some((2, 3)));
    assert!(stopped.is_none());
    let refusal = |strategy: &StrategyConfig, data: &PreparedData, backend, from: &Path| {
        let token = CancellationToken::new();
        let mut checkpoints = Checkpoints {
            path: dir.path().join("refused.ckpt"),
            resume_from: Some(from.to_owned()),
            on_saved: Arc::new(|_| {}),
        };
        let options = TrainOptions {
            backend,
            ..TrainOptions::default()
        };
        match train_with_checkpoints(
            strategy,
            data,
            &options,
            Some(&mut checkpoints),
            &token,
            &mut |_| {},
        ) {
            Err(error @ TrainError::Resume { .. }) => error.to_string(),
            other => panic!("not refused: {:?}", other.map(|trained| trained.report)),
        }
    };

    let mut changed = strategy.clone();
    changed.model.learning_rate = 0.5;
    changed.model.hidden_layers = vec![8];
    let message = refusal(&changed, &data, Backend::Flex, &path);
    assert!(
        message.contains("the strategy (model.hidden_layers, model.learning_rate)"),
        "{message}"
    );
    // Where the strategy was read from and its checkpoint policy are not the training.
    let mut moved = strategy.clone();
    moved.source = Some("elsewhere.yaml".into());
    moved.model.checkpoint.every_epochs = 3;
    assert_eq!(
        Inputs::of(&moved, &data, Backend::Flex).changes(&Inputs::of(
            &strategy,
            &data,
            Backend::Flex
        )),
        None
    );

    let mut more_data = data.clone();
    more_data.train = test_data::samples(320, &mut fastrand::Rng::with_seed(1));
    let message = refusal(&strategy, &more_data, Backend::Flex, &path);
    assert!(
        message.contains("the train data (300 → 320 samples)"),
        "{message}"
    );
    let message = refusal(&strategy, &data, Backend::NdArray, &path);
    assert!(
        message.contains("the backend (flex → ndarray)"),
        "{message}"
    );

    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    let damaged = dir.path().join("damaged.ckpt");
    std::fs::write(&damaged, &bytes).unwrap();
    let message = refusal(&strategy, &data, Backend::Flex, &damaged);
    assert!(message.contains("its checksum does not match"), "{message}");
    let missing = dir.path().join("missing.ckpt");
    let error = resume_strategy(&missing, None).unwrap_err();
    assert!(error.to_string().contains("missing.ckpt"), "{error}");

    // What a resume trains: the checkpoint's strategy, unless its file changed.
    let (resumed, backend) = resume_strategy(&path, None).unwrap();
    assert_eq!(resumed.model, strategy.model);
    assert_eq!(backend, Backend::Flex);
    assert_eq!(resume_strategy(&path, Some(&moved)).unwrap().0, moved);
    let error = resume_strategy(&path, Some(&changed)).unwrap_err();
    assert!(
        error.to_string().ends_with(
            "the strategy changed since the checkpoint (model.hidden_layers, model.learning_rate)"
        ),
        "{error}"
    );
}
