//! The training loop: seeded shuffling, mini-batches, validation each epoch,
//! early stopping, best-epoch weights, progress and cancellation.
//!
//! # Why a loop of our own rather than burn-train's `Learner`
//!
//! The loop is a few dozen lines over burn's optimizer API, and owning it is
//! what makes the operations contract easy to keep:
//! - the token is checked at every batch (one atomic load, configurable
//!   interval) and between phases, with a plain `return Err(Cancelled)`; with
//!   the `Learner` the token would have to be bridged to its interrupter,
//!   which it polls on its own schedule, and its stop is a normal return we
//!   would have to tell apart from a finished training afterwards;
//! - progress is our typed [`TrainingContext`], throttled, with running loss
//!   and accuracy kept on the device and read back only when a report is due;
//!   the `Learner` would produce its own metric events to translate;
//! - keeping the best epoch's weights is a clone of the module, and
//!   determinism is fully in our hands (seeded shuffle and dropout masks);
//! - burn-train brings a large dependency tree (dashboard, metrics, file
//!   checkpointers) of which we would use little.

use std::time::{Duration, Instant};

use burn::module::Module;
use burn::nn::loss::{CrossEntropyLoss, CrossEntropyLossConfig};
use burn::optim::{AdamConfig, ModuleOptimizer, SgdConfig};
use burn::tensor::{Device, Int, Tensor};
use orchestrator_core::CancellationToken;
use progress::{Items, ProgressContext, ProgressState, Step, TrainingContext};
use strategy::{
    EpochMetrics, Optimizer, PreparedData, Samples, StrategyConfig, TrainingOptions, TrainingReport,
};

use crate::batch::{self, SampleShape};
use crate::model::{Architecture, Network, Pass, Scratch};
use crate::{Backend, Metrics, Model, TrainError};

/// How to run a training (what to train comes from the strategy).
#[derive(Debug, Clone, PartialEq)]
pub struct TrainOptions {
    pub backend: Backend,
    /// Train this many epochs instead of the strategy's `epochs`.
    pub epochs_override: Option<usize>,
    /// Check the cancellation token every this many batches (0 counts as 1).
    pub check_every_batches: usize,
    /// Least time between two progress reports inside an epoch; the end of
    /// every epoch is always reported.
    pub progress_interval: Duration,
    /// The overall percentages the training phase spans: training is one
    /// phase of the pipeline (load data, features, train, evaluate and
    /// save), so by default it moves the bar from 50 % to 90 %.
    pub progress_range: (f64, f64),
    /// The pipeline step reported as `[k/n]` while training.
    pub progress_step: Step,
}

impl Default for TrainOptions {
    fn default() -> Self {
        Self {
            backend: Backend::default(),
            epochs_override: None,
            check_every_batches: 1,
            progress_interval: Duration::from_millis(100),
            progress_range: (50.0, 90.0),
            progress_step: Step::new(3, 4),
        }
    }
}

impl From<&TrainingOptions> for TrainOptions {
    /// The loop's options for a request's; progress spans the defaults.
    fn from(options: &TrainingOptions) -> Self {
        Self {
            backend: options.backend,
            epochs_override: options.epochs.map(|epochs| epochs as usize),
            check_every_batches: options.check_every_batches as usize,
            progress_interval: options.progress_interval,
            ..Self::default()
        }
    }
}

/// The result of [`train`]: the best epoch's weights and how training went.
#[derive(Debug)]
pub struct TrainedModel {
    pub model: Model,
    pub report: TrainingReport,
}

impl TrainedModel {
    /// Metrics of the model on the test split of `data`, with the baseline
    /// from its training split; the token is checked before every batch.
    pub fn evaluate(
        &self,
        data: &PreparedData,
        token: &CancellationToken,
    ) -> Result<Metrics, TrainError> {
        evaluate(&self.model, data, token)
    }
}

/// Metrics of `model` on the test split of `data` (see [`TrainedModel::evaluate`]).
pub fn evaluate(
    model: &Model,
    data: &PreparedData,
    token: &CancellationToken,
) -> Result<Metrics, TrainError> {
    token.check("evaluation")?;
    if data.test.is_empty() {
        return Err(TrainError::InvalidData(
            "test: no samples to evaluate on".to_owned(),
        ));
    }
    model
        .architecture()
        .sample_shape()
        .check_split("test", &data.test, data.symbols.len())?;
    let predicted = model.predict_checked(&data.test, &mut || Ok(token.check("evaluation")?))?;
    Ok(Metrics::from_predictions(
        &data.test.labels,
        &predicted,
        &data.train.labels,
    ))
}

/// Trains the strategy's model on `data` and returns the best epoch's weights.
///
/// Deterministic: the same data, strategy (seed included) and backend give
/// the same weights and metrics. Checks `token` at every
/// `check_every_batches` batches and between phases, and returns
/// [`TrainError::Cancelled`] when it is cancelled, never a partial model.
/// Reports progress through `progress` (see [`TrainOptions`]); the callback
/// must not block (`ProgressReporter::report` does not).
pub fn train(
    config: &StrategyConfig,
    data: &PreparedData,
    options: &TrainOptions,
    token: &CancellationToken,
    progress: &mut dyn FnMut(ProgressState),
) -> Result<TrainedModel, TrainError> {
    token.check("preparing training")?;
    let (mut training, mut network) = Training::setup(config, data, options)?;
    let epochs = training.epochs;
    let mut reporter = Reporter::new(config, options, epochs, training.batches, progress);
    let mut history = Vec::with_capacity(epochs);
    let mut best = Best::default();
    let mut stopped_early = false;

    for epoch in 1..=epochs {
        token.check("training")?;
        let (trained_network, trained) = training.epoch(network, epoch, token, &mut reporter)?;
        network = trained_network;

        token.check("validation")?;
        let snapshot = network.valid();
        let validation = if data.validation.is_empty() {
            None
        } else {
            Some(validate(
                &snapshot,
                &data.validation,
                training.shape,
                &training.device,
                training.batch_size,
                training.check_every,
                token,
            )?)
        };
        let samples_per_second = trained.samples as f64 / trained.seconds.as_secs_f64().max(1e-9);
        history.push(EpochMetrics {
            epoch,
            train_loss: trained.loss,
            train_accuracy: trained.accuracy,
            val_loss: validation.map(|(loss, _)| loss),
            val_accuracy: validation.map(|(_, accuracy)| accuracy),
            samples_per_second,
        });
        reporter.send(Report {
            now: Instant::now(),
            epoch,
            batch: training.batches,
            train: (trained.loss, trained.accuracy),
            validation,
            samples_per_second,
        });

        let score = validation.map_or(trained.loss, |(loss, _)| loss);
        if !best.offer(epoch, score, snapshot)
            && training
                .patience
                .is_some_and(|patience| best.epochs_without_improvement >= patience)
            && epoch < epochs
        {
            stopped_early = true;
            break;
        }
    }
    token.check("finishing training")?;

    let (best_epoch, best_score, best_network) = match best.kept {
        Some(kept) => kept,
        // At least one epoch ran (epochs > 0), and the first always sets `best`.
        None => (0, f64::NAN, network.valid()),
    };
    let report = TrainingReport {
        seed: training.seed,
        epochs_run: history.len(),
        best_epoch,
        best_val_loss: (!data.validation.is_empty()).then_some(best_score),
        stopped_early,
        history,
    };
    Ok(TrainedModel {
        model: Model::new(
            best_network,
            training.architecture,
            options.backend,
            training.device,
        ),
        report,
    })
}

/// What a training keeps from one epoch to the next, apart from the network
/// (which the optimizer takes and gives back at every step): the checked
/// settings, the devices, the optimizer, the sample order, the random
/// streams and the scratch buffers the batches reuse.
struct Training<'d> {
    split: &'d Samples,
    architecture: Architecture,
    shape: SampleShape,
    device: Device,
    train_device: Device,
    optimizer: ModuleOptimizer,
    loss_function: CrossEntropyLoss,
    seed: u64,
    epochs: usize,
    batch_size: usize,
    batches: usize,
    learning_rate: f64,
    check_every: usize,
    patience: Option<usize>,
    order: Vec<usize>,
    shuffle_rng: fastrand::Rng,
    dropout_rng: fastrand::Rng,
    scratch: Scratch,
}

/// One epoch's training loss and accuracy, over how many samples and in
/// how much time.
struct EpochRun {
    loss: f64,
    accuracy: f64,
    samples: usize,
    seconds: Duration,
}

impl<'d> Training<'d> {
    /// Checks the data against the model and the settings, and builds the
    /// seeded network, optimizer and random streams.
    fn setup(
        config: &StrategyConfig,
        data: &'d PreparedData,
        options: &TrainOptions,
    ) -> Result<(Self, Network), TrainError> {
        let model_config = &config.model;
        let architecture = Architecture::new(model_config, &data.layout, data.symbols.len())?;
        let shape = architecture.sample_shape();
        for (name, split) in [
            ("train", &data.train),
            ("validation", &data.validation),
            ("test", &data.test),
        ] {
            shape.check_split(name, split, data.symbols.len())?;
        }
        if data.train.is_empty() {
            return Err(TrainError::InvalidData("train: no samples".to_owned()));
        }
        let epochs = options.epochs_override.unwrap_or(model_config.epochs);
        let batch_size = model_config.batch_size;
        let learning_rate = model_config.learning_rate;
        if epochs == 0 || batch_size == 0 {
            return Err(TrainError::InvalidConfig(format!(
                "epochs ({epochs}) and batch_size ({batch_size}) must be positive"
            )));
        }
        if !(learning_rate.is_finite() && learning_rate > 0.0) {
            return Err(TrainError::InvalidConfig(format!(
                "learning_rate {learning_rate} must be a positive number"
            )));
        }
        let seed = model_config.seed;

        let device = crate::backend::device(options.backend);
        // Only burn-internal randomness uses this (none of ours does: see `model`).
        device.seed(seed);
        let train_device = device.clone().autodiff();
        let network = Network::seeded(&architecture, &train_device, seed);
        let optimizer = match model_config.optimizer {
            Optimizer::Adam => AdamConfig::new().init(),
            Optimizer::Sgd => SgdConfig::new().init(),
        };
        let loss_function = CrossEntropyLossConfig::new().init(&train_device);
        let split = &data.train;
        let training = Self {
            split,
            architecture,
            shape,
            device,
            train_device,
            optimizer,
            loss_function,
            seed,
            epochs,
            batch_size,
            batches: split.len().div_ceil(batch_size),
            learning_rate,
            check_every: options.check_every_batches.max(1),
            patience: model_config.early_stopping_patience,
            order: (0..split.len()).collect(),
            shuffle_rng: fastrand::Rng::with_seed(seed),
            // A separate stream, so dropout does not change the order of the
            // samples.
            dropout_rng: fastrand::Rng::with_seed(seed ^ 0x9e37_79b9_7f4a_7c15),
            scratch: Scratch::default(),
        };
        Ok((training, network))
    }

    /// Trains `network` for one epoch over the shuffled training split and
    /// gives it back with the epoch's loss and accuracy. The batches reuse
    /// the order and the scratch buffers; only the tensors are new.
    fn epoch(
        &mut self,
        mut network: Network,
        epoch: usize,
        token: &CancellationToken,
        reporter: &mut Reporter<'_>,
    ) -> Result<(Network, EpochRun), TrainError> {
        self.shuffle_rng.shuffle(&mut self.order);
        let started = Instant::now();
        let mut running = Running::default();
        for (index, chunk) in self.order.chunks(self.batch_size).enumerate() {
            if index % self.check_every == 0 && token.is_cancelled() {
                return Err(token.cancelled_error("training").into());
            }
            let inputs = batch::gather(
                &self.split.features,
                &self.split.symbol_ids,
                chunk,
                self.shape,
                &self.train_device,
            );
            let labels = batch::labels(&self.split.labels, chunk, &self.train_device);
            let forward = network.forward(
                inputs.features,
                inputs.symbols,
                &mut Pass::Train(&mut self.dropout_rng),
                &mut self.scratch,
            );
            let loss = self
                .loss_function
                .forward(forward.logits.clone(), labels.clone());
            running.add(
                loss.clone().inner(),
                forward.logits.clone().inner(),
                labels.inner(),
            );
            let gradients = network.backward(loss, forward, &mut self.scratch);
            network = self.optimizer.step(self.learning_rate, network, gradients);

            let now = Instant::now();
            if index + 1 < self.batches && reporter.due(now) {
                let (loss, accuracy) = running.read();
                reporter.send(Report {
                    now,
                    epoch,
                    batch: index + 1,
                    train: (loss, accuracy),
                    validation: None,
                    samples_per_second: per_second(running.samples, started, now),
                });
            }
        }
        let seconds = started.elapsed();
        let (loss, accuracy) = running.read();
        if !loss.is_finite() {
            return Err(TrainError::Diverged { epoch, loss });
        }
        let run = EpochRun {
            loss,
            accuracy,
            samples: running.samples,
            seconds,
        };
        Ok((network, run))
    }
}

/// The best epoch so far (its number, score and weights), and how many
/// epochs have passed without beating it, for early stopping.
#[derive(Default)]
struct Best {
    kept: Option<(usize, f64, Network)>,
    epochs_without_improvement: usize,
}

impl Best {
    /// Keeps `network` if `score` beats the best so far; says whether it did.
    fn offer(&mut self, epoch: usize, score: f64, network: Network) -> bool {
        if self
            .kept
            .as_ref()
            .is_none_or(|(_, best_score, _)| score < *best_score)
        {
            self.kept = Some((epoch, score, network));
            self.epochs_without_improvement = 0;
            true
        } else {
            self.epochs_without_improvement += 1;
            false
        }
    }
}

/// Loss and accuracy of `network` (already in validation mode) on `split`.
fn validate(
    network: &Network,
    split: &Samples,
    shape: SampleShape,
    device: &Device,
    batch_size: usize,
    check_every: usize,
    token: &CancellationToken,
) -> Result<(f64, f64), TrainError> {
    let loss_function: CrossEntropyLoss = CrossEntropyLossConfig::new().init(device);
    let mut running = Running::default();
    let mut indices = Vec::with_capacity(batch_size.min(split.len()));
    let mut scratch = Scratch::default();
    for (index, start) in (0..split.len()).step_by(batch_size).enumerate() {
        if index % check_every == 0 && token.is_cancelled() {
            return Err(token.cancelled_error("validation").into());
        }
        indices.clear();
        indices.extend(start..(start + batch_size).min(split.len()));
        let inputs = batch::gather(&split.features, &split.symbol_ids, &indices, shape, device);
        let labels = batch::labels(&split.labels, &indices, device);
        let logits = network
            .forward(
                inputs.features,
                inputs.symbols,
                &mut Pass::Eval,
                &mut scratch,
            )
            .logits;
        let loss = loss_function.forward(logits.clone(), labels.clone());
        running.add(loss, logits, labels);
    }
    Ok(running.read())
}

/// Loss and correct predictions summed over an epoch, kept on the device so
/// that nothing is read back (a device sync) unless a report needs it.
#[derive(Default)]
struct Running {
    loss_sum: Option<Tensor<1>>,
    correct: Option<Tensor<1, Int>>,
    samples: usize,
}

impl Running {
    /// Adds one batch: its mean loss `[1]`, its logits and its labels (all
    /// without autodiff).
    fn add(&mut self, mean_loss: Tensor<1>, logits: Tensor<2>, labels: Tensor<1, Int>) {
        let [batch, _] = logits.dims();
        let loss = mean_loss.mul_scalar(batch as f32);
        let correct = logits.argmax(1).reshape([batch]).equal(labels).int().sum();
        self.loss_sum = Some(match self.loss_sum.take() {
            Some(sum) => sum + loss,
            None => loss,
        });
        self.correct = Some(match self.correct.take() {
            Some(sum) => sum + correct,
            None => correct,
        });
        self.samples += batch;
    }

    /// Mean loss and accuracy so far.
    fn read(&self) -> (f64, f64) {
        let (Some(loss), Some(correct)) = (&self.loss_sum, &self.correct) else {
            return (f64::NAN, f64::NAN);
        };
        let samples = self.samples as f64;
        let loss = f64::from(loss.clone().into_scalar::<f32>());
        let correct = correct.clone().into_scalar::<i64>() as f64;
        (loss / samples, correct / samples)
    }
}

fn per_second(samples: usize, since: Instant, now: Instant) -> f64 {
    samples as f64 / now.duration_since(since).as_secs_f64().max(1e-9)
}

/// One progress report's numbers.
struct Report {
    now: Instant,
    epoch: usize,
    /// Batches done in this epoch.
    batch: usize,
    train: (f64, f64),
    validation: Option<(f64, f64)>,
    samples_per_second: f64,
}

/// Turns the loop's numbers into throttled [`ProgressState`]s.
struct Reporter<'a> {
    sink: &'a mut dyn FnMut(ProgressState),
    /// The fields that do not change during a training.
    template: TrainingContext,
    options: &'a TrainOptions,
    epochs: usize,
    batches: usize,
    last: Option<Instant>,
}

impl<'a> Reporter<'a> {
    fn new(
        config: &StrategyConfig,
        options: &'a TrainOptions,
        epochs: usize,
        batches: usize,
        sink: &'a mut dyn FnMut(ProgressState),
    ) -> Self {
        let template = TrainingContext {
            model_type: Some(config.model.kind.display_name().to_owned()),
            symbols: config
                .training_data
                .symbols
                .iter()
                .map(|symbol| symbol.as_str().to_owned())
                .collect(),
            timeframes: config
                .training_data
                .timeframes
                .iter()
                .map(|timeframe| timeframe.as_str().to_owned())
                .collect(),
            ..TrainingContext::default()
        };
        Self {
            sink,
            template,
            options,
            epochs,
            batches,
            last: None,
        }
    }

    fn due(&self, now: Instant) -> bool {
        self.last
            .is_none_or(|last| now.duration_since(last) >= self.options.progress_interval)
    }

    fn send(&mut self, report: Report) {
        self.last = Some(report.now);
        let done = (report.epoch - 1) * self.batches + report.batch;
        let total = self.epochs * self.batches;
        let (start, end) = self.options.progress_range;
        let percentage = start + (end - start) * done as f64 / total as f64;
        let context = TrainingContext {
            epoch: Some(step(report.epoch, self.epochs)),
            batch: Some(step(report.batch, self.batches)),
            train_loss: Some(report.train.0),
            train_accuracy: Some(report.train.1),
            val_loss: report.validation.map(|(loss, _)| loss),
            val_accuracy: report.validation.map(|(_, accuracy)| accuracy),
            samples_per_second: Some(report.samples_per_second),
            ..self.template.clone()
        };
        (self.sink)(ProgressState {
            percentage,
            step: Some(self.options.progress_step),
            items: Some(Items {
                processed: done as u64,
                total: Some(total as u64),
            }),
            context: ProgressContext::Training(context),
            ..ProgressState::default()
        });
    }
}

fn step(current: usize, total: usize) -> Step {
    let clamp = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    Step::new(clamp(current), clamp(total))
}
