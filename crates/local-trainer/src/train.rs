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

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use burn::module::Module;
use burn::nn::loss::{CrossEntropyLoss, CrossEntropyLossConfig};
use burn::optim::{AdamConfig, ModuleOptimizer, SgdConfig};
use burn::store::ModuleRecord;
use burn::tensor::{Device, Int, Tensor, TensorData};
use orchestrator_core::{CancellationToken, Cancelled};
use progress::{Items, ProgressContext, ProgressState, Step, TrainingContext};
use strategy::{
    CheckpointPolicy, EpochMetrics, Optimizer, PreparedData, Samples, StrategyConfig,
    TrainingOptions, TrainingReport,
};

use crate::backend::Opened;
use crate::batch::{self, SampleShape};
use crate::checkpoint::{
    self, Checkpoints, Header, Inputs, Position, RunningSums, SavedCheckpoint, Sections,
};
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
            backend: options.backend.unwrap_or_default(),
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
    train_with_checkpoints(config, data, options, None, token, progress)
}

/// [`train`], saving checkpoints to `checkpoints.path` as the strategy's
/// [`CheckpointPolicy`](strategy::CheckpointPolicy) says, when the loop
/// ends, and whenever it stops early after its first batch; and continuing
/// from `checkpoints.resume_from` when given.
///
/// A run continued from a checkpoint ends with exactly the weights,
/// history and best epoch of a run that was never stopped. A checkpoint of
/// other inputs (strategy, features, samples, backend) is refused with
/// [`TrainError::Resume`] naming what changed. A checkpoint that cannot be
/// written is logged and the training goes on.
pub fn train_with_checkpoints(
    config: &StrategyConfig,
    data: &PreparedData,
    options: &TrainOptions,
    checkpoints: Option<&mut Checkpoints>,
    token: &CancellationToken,
    progress: &mut dyn FnMut(ProgressState),
) -> Result<TrainedModel, TrainError> {
    token.check("preparing training")?;
    let (mut training, mut network) = Training::setup(config, data, options)?;
    let mut saver = checkpoints.map(|checkpoints| Saver::new(checkpoints, config, data, options));
    let mut state = LoopState::default();
    if let Some(saver) = &saver
        && let Some(path) = &saver.checkpoints.resume_from
    {
        network = training.resume(path, &saver.inputs, &mut state)?;
    }
    let epochs = training.epochs;
    let mut reporter = Reporter::new(config, options, epochs, training.batches, progress);

    while !state.finished(epochs) {
        if state.position.epoch_closed {
            training.shuffle();
            state.position = Position {
                epoch: state.position.epoch + 1,
                batches_done: 0,
                epoch_closed: false,
            };
            state.running = Running::default();
        }
        let epoch = state.position.epoch;
        let started = Instant::now();
        let samples_before = state.running.samples;
        loop {
            let save_due = saver.as_ref().and_then(Saver::next_due);
            let (trained_network, end) =
                training.run_batches(network, &mut state, save_due, token, &mut reporter);
            network = trained_network;
            match end {
                BatchesEnd::EpochDone => break,
                BatchesEnd::SaveDue => {
                    if let Some(saver) = &mut saver {
                        saver.save(&training, &network, &state);
                    }
                }
                BatchesEnd::Stopped(stop) => {
                    // The last progress is where it stopped, as its checkpoint says.
                    if state.position.batches_done > 0 {
                        let now = Instant::now();
                        let samples = state.running.samples - samples_before;
                        reporter.send(Report {
                            now,
                            epoch,
                            batch: state.position.batches_done,
                            train: state.running.read(),
                            validation: None,
                            samples_per_second: per_second(samples, started, now),
                        });
                    }
                    return Err(stopped(&mut saver, &training, &network, &state, stop));
                }
            }
        }
        let seconds = started.elapsed();
        let (train_loss, train_accuracy) = state.running.read();
        if !train_loss.is_finite() {
            return Err(TrainError::Diverged {
                epoch,
                loss: train_loss,
            });
        }

        let snapshot = network.valid();
        let validation = if data.validation.is_empty() {
            None
        } else {
            let validated = token
                .check("validation")
                .map_err(TrainError::from)
                .and_then(|()| validate(&snapshot, &data.validation, &training, token));
            match validated {
                Ok(validation) => Some(validation),
                Err(TrainError::Cancelled(stop)) => {
                    return Err(stopped(&mut saver, &training, &network, &state, stop));
                }
                Err(error) => return Err(error),
            }
        };
        let samples_per_second =
            (state.running.samples - samples_before) as f64 / seconds.as_secs_f64().max(1e-9);
        state.history.push(EpochMetrics {
            epoch,
            train_loss,
            train_accuracy,
            val_loss: validation.map(|(loss, _)| loss),
            val_accuracy: validation.map(|(_, accuracy)| accuracy),
            samples_per_second,
        });
        reporter.send(Report {
            now: Instant::now(),
            epoch,
            batch: training.batches,
            train: (train_loss, train_accuracy),
            validation,
            samples_per_second,
        });

        let score = validation.map_or(train_loss, |(loss, _)| loss);
        if !state.best.offer(epoch, score, snapshot)
            && training
                .patience
                .is_some_and(|patience| state.best.epochs_without_improvement >= patience)
            && epoch < epochs
        {
            state.stopped_early = true;
        }
        state.position.epoch_closed = true;
        if let Some(saver) = &mut saver
            && (state.finished(epochs) || saver.due_at_epoch_end(epoch))
        {
            saver.save(&training, &network, &state);
        }
    }
    token.check("finishing training")?;

    let history = std::mem::take(&mut state.history);
    let (best_epoch, best_score, best_network) = match state.best.kept {
        Some(kept) => kept,
        // At least one epoch ran (epochs > 0), and the first always sets `best`.
        None => (0, f64::NAN, network.valid()),
    };
    let report = TrainingReport {
        seed: training.seed,
        epochs_run: history.len(),
        best_epoch,
        best_val_loss: (!data.validation.is_empty()).then_some(best_score),
        stopped_early: state.stopped_early,
        history,
    };
    Ok(TrainedModel {
        model: Model::new(
            best_network,
            training.architecture,
            options.backend,
            Opened {
                device: training.device,
                name: training.device_name,
            },
        ),
        report,
    })
}

/// Saves the state at the last completed batch of a training that stopped,
/// unless it stopped before its first batch, and gives the stop back.
fn stopped(
    saver: &mut Option<Saver<'_>>,
    training: &Training<'_>,
    network: &Network,
    state: &LoopState,
    stop: Cancelled,
) -> TrainError {
    let before_first_batch =
        state.position.epoch == 1 && state.position.batches_done == 0 && state.history.is_empty();
    if let Some(saver) = saver
        && !before_first_batch
    {
        saver.save(training, network, state);
    }
    TrainError::Cancelled(stop)
}

/// Where the loop stands and what it has gathered: everything of a
/// training's state but the network and what [`Training`] holds.
struct LoopState {
    position: Position,
    running: Running,
    history: Vec<EpochMetrics>,
    best: Best,
    stopped_early: bool,
}

impl Default for LoopState {
    /// Before the first epoch.
    fn default() -> Self {
        Self {
            position: Position {
                epoch: 0,
                batches_done: 0,
                epoch_closed: true,
            },
            running: Running::default(),
            history: Vec::new(),
            best: Best::default(),
            stopped_early: false,
        }
    }
}

impl LoopState {
    /// Whether the last epoch, or an early stop, has closed the loop.
    fn finished(&self, epochs: usize) -> bool {
        self.position.epoch_closed && (self.stopped_early || self.position.epoch >= epochs)
    }
}

/// How a run of batches ended.
enum BatchesEnd {
    /// The epoch's last batch is done.
    EpochDone,
    /// A checkpoint is due; the epoch goes on after it.
    SaveDue,
    Stopped(Cancelled),
}

/// Writes checkpoints for one training and says when the next is due.
///
/// The state is encoded on the training's thread, at a batch boundary;
/// writing it (fsync included) happens on a thread of its own while the
/// training goes on. One write at a time, in order: a save waits for the
/// one before it, and dropping the saver waits for the last, so a training
/// that returns has its last checkpoint on disk and recorded.
struct Saver<'c> {
    checkpoints: &'c mut Checkpoints,
    policy: CheckpointPolicy,
    inputs: Inputs,
    trainer_version: &'static str,
    last_saved: Instant,
    writing: Option<std::thread::JoinHandle<()>>,
}

impl<'c> Saver<'c> {
    fn new(
        checkpoints: &'c mut Checkpoints,
        config: &StrategyConfig,
        data: &PreparedData,
        options: &TrainOptions,
    ) -> Self {
        Self {
            checkpoints,
            policy: config.model.checkpoint,
            inputs: Inputs::of(config, data, options.backend),
            trainer_version: env!("CARGO_PKG_VERSION"),
            last_saved: Instant::now(),
            writing: None,
        }
    }

    /// When a save is due inside an epoch, if the policy saves there.
    fn next_due(&self) -> Option<Instant> {
        (self.policy.every_seconds > 0)
            .then(|| self.last_saved + Duration::from_secs(self.policy.every_seconds))
    }

    fn due_at_epoch_end(&self, epoch: usize) -> bool {
        self.policy.every_epochs > 0 && epoch.is_multiple_of(self.policy.every_epochs)
    }

    /// Saves the state; a failure is logged, as the training itself is
    /// sound and worth finishing.
    fn save(&mut self, training: &Training<'_>, network: &Network, state: &LoopState) {
        let path = self.checkpoints.path.clone();
        let started = Instant::now();
        let content = match training.encode_checkpoint(&path, self, network, state) {
            Ok(content) => content,
            Err(error) => return cannot_save(&path, &error),
        };
        let encoding = started.elapsed();
        self.finish_writing();
        self.last_saved = Instant::now();
        let on_saved = Arc::clone(&self.checkpoints.on_saved);
        let (epoch, batch) = (state.position.epoch, state.position.batches_done);
        self.writing = Some(std::thread::spawn(move || {
            let writing = Instant::now();
            match checkpoint::replace_atomically(&path, &content) {
                Ok(()) => on_saved(&SavedCheckpoint {
                    bytes: content.len() as u64,
                    path,
                    epoch,
                    batch,
                    took: encoding + writing.elapsed(),
                }),
                Err(source) => {
                    let error = TrainError::CheckpointIo {
                        action: "write",
                        path: path.clone(),
                        source,
                    };
                    cannot_save(&path, &error);
                }
            }
        }));
    }

    /// Waits for the checkpoint being written, if any.
    fn finish_writing(&mut self) {
        if let Some(writing) = self.writing.take() {
            // A panic there (in `on_saved`) is the callback's; the training goes on.
            let _ = writing.join();
        }
    }
}

impl Drop for Saver<'_> {
    fn drop(&mut self) {
        self.finish_writing();
    }
}

fn cannot_save(path: &Path, error: &TrainError) {
    tracing::warn!(
        path = %path.display(),
        error = %orchestrator_core::error_chain(error),
        "cannot write a checkpoint; the training goes on"
    );
}

/// What a training keeps from one epoch to the next, apart from the network
/// (which the optimizer takes and gives back at every step): the checked
/// settings, the devices, the optimizer, the sample order, the random
/// streams and the scratch buffers the batches reuse.
struct Training<'d> {
    split: &'d Samples,
    architecture: Architecture,
    shape: SampleShape,
    backend: Backend,
    device: Device,
    /// What `device` is (see [`Opened`]).
    device_name: String,
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

        let Opened {
            device,
            name: device_name,
        } = crate::backend::open(options.backend)?;
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
            backend: options.backend,
            device,
            device_name,
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
            scratch: Scratch::new(options.backend),
        };
        Ok((training, network))
    }

    /// The sample order of the next epoch.
    fn shuffle(&mut self) {
        self.shuffle_rng.shuffle(&mut self.order);
    }

    /// Trains `network` on the rest of the current epoch's batches, in the
    /// shuffled order, until the epoch is done, `save_due` has passed or
    /// the token is cancelled; gives it back with how the run ended. The
    /// batches reuse the order and the scratch buffers; only the tensors
    /// are new.
    fn run_batches(
        &mut self,
        mut network: Network,
        state: &mut LoopState,
        save_due: Option<Instant>,
        token: &CancellationToken,
        reporter: &mut Reporter<'_>,
    ) -> (Network, BatchesEnd) {
        let epoch = state.position.epoch;
        let started = Instant::now();
        let samples_before = state.running.samples;
        let first = state.position.batches_done;
        let chunks = self.order.chunks(self.batch_size).enumerate().skip(first);
        for (index, chunk) in chunks {
            if index % self.check_every == 0 && token.is_cancelled() {
                let stop = token.cancelled_error("training");
                return (network, BatchesEnd::Stopped(stop));
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
            state.running.add(
                loss.clone().inner(),
                forward.logits.clone().inner(),
                labels.inner(),
            );
            let gradients = network.backward(loss, forward, &mut self.scratch);
            network = self.optimizer.step(self.learning_rate, network, gradients);
            state.position.batches_done = index + 1;

            let now = Instant::now();
            if index + 1 < self.batches {
                if reporter.due(now) {
                    let (loss, accuracy) = state.running.read();
                    let samples = state.running.samples - samples_before;
                    reporter.send(Report {
                        now,
                        epoch,
                        batch: index + 1,
                        train: (loss, accuracy),
                        validation: None,
                        samples_per_second: per_second(samples, started, now),
                    });
                }
                if save_due.is_some_and(|due| now >= due) {
                    return (network, BatchesEnd::SaveDue);
                }
            }
        }
        (network, BatchesEnd::EpochDone)
    }

    /// The training's state as a checkpoint file's content (`path` names
    /// it in errors).
    fn encode_checkpoint(
        &self,
        path: &Path,
        saver: &Saver<'_>,
        network: &Network,
        state: &LoopState,
    ) -> Result<Vec<u8>, TrainError> {
        let encode = |what: &str, error: &dyn std::fmt::Display| {
            checkpoint::invalid(path, &format!("cannot encode the {what}: {error}"))
        };
        let network_bytes = network
            .clone()
            .into_record()
            .into_bytes()
            .map_err(|error| encode("network", &error))?;
        let optimizer_bytes = self
            .optimizer
            .into_bytes()
            .map_err(|error| encode("optimizer state", &error))?;
        let best_bytes = match &state.best.kept {
            Some((_, _, best)) => Some(
                best.clone()
                    .into_record()
                    .into_bytes()
                    .map_err(|error| encode("best weights", &error))?,
            ),
            None => None,
        };
        let header = Header {
            trainer_version: saver.trainer_version.to_owned(),
            inputs: saver.inputs.clone(),
            epochs: self.epochs,
            position: state.position,
            stopped_early: state.stopped_early,
            shuffle_rng: self.shuffle_rng.get_seed(),
            dropout_rng: self.dropout_rng.get_seed(),
            running: state.running.sums(),
            best: state
                .best
                .kept
                .as_ref()
                .map(|(epoch, score, _)| (*epoch, *score)),
            epochs_without_improvement: state.best.epochs_without_improvement,
            history: state.history.clone(),
        };
        checkpoint::encode(
            path,
            &Sections {
                header: &header,
                order: &self.order,
                network: &network_bytes,
                optimizer: &optimizer_bytes,
                best: best_bytes.as_deref(),
            },
        )
    }

    /// Loads the checkpoint at `path` into this training and `state`, and
    /// returns its network; refuses one of other inputs than `inputs`.
    fn resume(
        &mut self,
        path: &Path,
        inputs: &Inputs,
        state: &mut LoopState,
    ) -> Result<Network, TrainError> {
        let file = checkpoint::read_file(path)?;
        let header = file.header;
        if let Some(changes) = header.inputs.changes(inputs) {
            return Err(checkpoint::invalid(
                path,
                &format!("it was trained on other inputs; changed since: {changes}"),
            ));
        }
        if header.epochs != self.epochs {
            return Err(checkpoint::invalid(
                path,
                &format!(
                    "it was a training of {} epochs, this one has {}",
                    header.epochs, self.epochs
                ),
            ));
        }
        if file.order.len() != self.order.len() {
            return Err(checkpoint::invalid(path, "its sample order does not fit"));
        }
        let damaged = |what: &str, error: &dyn std::fmt::Display| {
            checkpoint::invalid(path, &format!("its {what} do not load: {error}"))
        };
        let load = |bytes, device: &Device| -> Result<Network, TrainError> {
            let record =
                ModuleRecord::from_bytes(bytes).map_err(|error| damaged("weights", &error))?;
            Network::new(&self.architecture, device)
                .try_load_record(record)
                .map_err(|error| damaged("weights", &error))
        };
        let network = load(file.network, &self.train_device)?;
        let best = match (header.best, file.best) {
            (Some((epoch, score)), Some(bytes)) => Some((epoch, score, load(bytes, &self.device)?)),
            (None, None) => None,
            _ => return Err(checkpoint::invalid(path, "its best epoch has no weights")),
        };
        let optimizer = std::mem::replace(&mut self.optimizer, AdamConfig::new().init());
        self.optimizer = optimizer
            .from_bytes(file.optimizer)
            .map_err(|error| damaged("optimizer state", &error))?;
        self.order = file.order;
        self.shuffle_rng = fastrand::Rng::with_seed(header.shuffle_rng);
        self.dropout_rng = fastrand::Rng::with_seed(header.dropout_rng);
        *state = LoopState {
            position: header.position,
            running: Running::restore(header.running, &self.device),
            history: header.history,
            best: Best {
                kept: best,
                epochs_without_improvement: header.epochs_without_improvement,
            },
            stopped_early: header.stopped_early,
        };
        Ok(network)
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

/// Loss and accuracy of `network` (already in validation mode) on `split`,
/// in batches of the training's size.
fn validate(
    network: &Network,
    split: &Samples,
    training: &Training<'_>,
    token: &CancellationToken,
) -> Result<(f64, f64), TrainError> {
    let Training {
        shape,
        ref device,
        batch_size,
        check_every,
        backend,
        ..
    } = *training;
    let loss_function: CrossEntropyLoss = CrossEntropyLossConfig::new().init(device);
    let mut running = Running::default();
    let mut indices = Vec::with_capacity(batch_size.min(split.len()));
    let mut scratch = Scratch::new(backend);
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
    /// Correct predictions counted before a resume (the device sum holds
    /// those since).
    correct_before: u64,
    samples: usize,
}

impl Running {
    /// Sums a checkpoint saved, on `device`: the loss sum goes on from the
    /// very same f32.
    fn restore(sums: Option<RunningSums>, device: &Device) -> Self {
        let Some(sums) = sums else {
            return Self::default();
        };
        let loss_sum = f32::from_bits(sums.loss_sum_bits);
        Self {
            loss_sum: Some(Tensor::from_data(
                TensorData::new(vec![loss_sum], [1]),
                device,
            )),
            correct: None,
            correct_before: sums.correct,
            samples: sums.samples,
        }
    }

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

    /// The sums as numbers (a device sync), for a checkpoint.
    fn sums(&self) -> Option<RunningSums> {
        let loss_sum = self.loss_sum.as_ref()?;
        Some(RunningSums {
            loss_sum_bits: loss_sum.clone().into_scalar::<f32>().to_bits(),
            correct: self.correct_count(),
            samples: self.samples,
        })
    }

    fn correct_count(&self) -> u64 {
        let since = self.correct.as_ref().map_or(0, |correct| {
            u64::try_from(correct.clone().into_scalar::<i64>()).unwrap_or(0)
        });
        self.correct_before + since
    }

    /// Mean loss and accuracy so far.
    fn read(&self) -> (f64, f64) {
        let Some(loss) = &self.loss_sum else {
            return (f64::NAN, f64::NAN);
        };
        let samples = self.samples as f64;
        let loss = f64::from(loss.clone().into_scalar::<f32>());
        (loss / samples, self.correct_count() as f64 / samples)
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
