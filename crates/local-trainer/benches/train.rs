//! `cargo xtask bench train [FLAGS]`: what training costs, measured side by
//! side in one run.
//!
//! - synthetic: training samples per second per backend on seeded, learnable
//!   random data of a shape set by flags, to compare with other frameworks
//!   at the same shape;
//! - examples: shipped example strategies end to end (`LocalTrainer::run`,
//!   `strategies/eurusd_mlp.yaml` unless `--example` names others), seconds
//!   per phase and test accuracy;
//! - check overhead: checking the cancellation token every batch against
//!   never, in interleaved pairs, as the median extra time in percent;
//! - cancel latency: from `cancel()` to `train` returning `Cancelled`, at
//!   seeded random points of a training, with the mean batch time for scale;
//! - checkpoint cost (`--checkpoint-cost`, a mode of its own): example
//!   strategies trained with their checkpoint policy and without
//!   checkpoints, in interleaved pairs: the train phase's extra time, and
//!   the checkpoints' size and write time.
//!
//! Prints one JSON line (for scripts and the history of notes), then a table;
//! what it is doing goes to stderr. `--help` lists the flags.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a benchmark's output is its purpose; progress goes to stderr"
)]

use std::collections::BTreeMap;
use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use bench_support::{Flags, args_or_exit, median, positive, quantile, round, workspace_root};
use local_trainer::{
    Backend, Checkpoints, Directories, LocalTrainer, SavedCheckpoint, TrainError, TrainOptions,
    TrainedModel, TrainingOptions, TrainingRequest, TrainingSummary, train,
};
use market_data::Timeframe;
use orchestrator_core::{CancelReason, CancellationToken};
use strategy::{
    Activation, CheckpointPolicy, DataSplit, FeatureLayout, Label, LabelConfig, ModelConfig,
    ModelKind, Optimizer, PreparedData, Samples, StrategyConfig, TrainingData,
};

const USAGE: &str = "\
usage: cargo xtask bench train [FLAGS]

synthetic training (also used for the overhead and latency measures):
  --samples N        training samples; validation and test get N/10 each [20000]
  --features F       features per bar [32]
  --seq-len L        bars per sample [1 for mlp, 8 for cnn, 16 for lstm]
  --hidden H[,H..]   units per dense layer (mlp), channels per convolution
                     (cnn) or hidden size per LSTM layer [64; 16,16 for cnn]
  --batch-size B     [64]
  --epochs E         [3]
  --model M          mlp | cnn | lstm [mlp]
  --backend K        flex | ndarray | both | wgpu | cuda [both]; `both` is
                     the two CPU backends; overhead, latency and the
                     examples run on the first (flex for both). A GPU
                     backend needs its feature (cargo xtask bench adds it)
  --throughput-only  measure the synthetic throughput alone (for side by
                     side runs with another framework: bench/vs_torch.py)
  --seed S           data, weights and cancel points [42]
  --min-seconds S    time each backend's training again until S seconds have
                     passed, and make each overhead pair last about S [2]
check overhead and cancel latency:
  --pairs N          interleaved every/never pairs [9]
  --cancels N        cancels at random points [20]
examples:
  --example FILE     an example strategy to train end to end, repeatable
                     [strategies/eurusd_mlp.yaml]
  --example-epochs N train N epochs instead of the strategies'
  --skip-examples    leave them out
checkpoint cost (alone; nothing else is measured):
  --checkpoint-cost  the examples (strategies/btcusd_lstm.yaml and
                     strategies/multi_cnn.yaml unless --example names
                     others) with and without checkpoints, --pairs pairs";

/// Class boundaries of the synthetic labels: the score is standardised, so
/// ±Φ⁻¹(2/3) splits it into three equally likely classes.
const TERTILE: f32 = 0.4307;

/// Goals the figures are judged by (not measured): the extra time of a token
/// check at every batch, and how much longer than one batch a cancel may take.
const OVERHEAD_GOAL_PERCENT: f64 = 0.5;
const LATENCY_GOAL_SLACK_MS: f64 = 20.0;

#[derive(Debug, Clone)]
struct Args {
    samples: usize,
    features: usize,
    seq_len: usize,
    hidden: Vec<usize>,
    batch_size: usize,
    epochs: usize,
    model: ModelKind,
    backends: Vec<Backend>,
    seed: u64,
    min_time: Duration,
    pairs: usize,
    cancels: usize,
    throughput_only: bool,
    examples: Vec<PathBuf>,
    example_epochs: Option<usize>,
    checkpoint_cost: bool,
}

impl Args {
    /// `Ok(None)` when help was asked for.
    fn parse(words: impl Iterator<Item = String>) -> Result<Option<Self>, String> {
        let mut args = Args {
            samples: 20_000,
            features: 32,
            seq_len: 0,
            hidden: Vec::new(),
            batch_size: 64,
            epochs: 3,
            model: ModelKind::Mlp,
            backends: Backend::CPU.to_vec(),
            seed: 42,
            min_time: Duration::from_secs(2),
            pairs: 9,
            cancels: 20,
            throughput_only: false,
            examples: Vec::new(),
            example_epochs: None,
            checkpoint_cost: false,
        };
        let mut seq_len = None;
        let mut skip_examples = false;
        let mut flags = Flags::new(words);
        while let Some(flag) = flags.next_flag() {
            match flag.as_str() {
                "--help" | "-h" => return Ok(None),
                "--samples" => args.samples = flags.positive(&flag)?,
                "--features" => args.features = flags.positive(&flag)?,
                "--seq-len" => seq_len = Some(flags.positive(&flag)?),
                "--hidden" => {
                    args.hidden = flags
                        .value(&flag)?
                        .split(',')
                        .map(|units| positive(&flag, units.trim()))
                        .collect::<Result<_, _>>()?;
                }
                "--batch-size" => args.batch_size = flags.positive(&flag)?,
                "--epochs" => args.epochs = flags.positive(&flag)?,
                "--pairs" => args.pairs = flags.positive(&flag)?,
                "--cancels" => args.cancels = flags.positive(&flag)?,
                "--example" => args.examples.push(PathBuf::from(flags.value(&flag)?)),
                "--example-epochs" => args.example_epochs = Some(flags.positive(&flag)?),
                "--skip-examples" => skip_examples = true,
                "--throughput-only" => args.throughput_only = true,
                "--checkpoint-cost" => args.checkpoint_cost = true,
                "--min-seconds" => {
                    let text = flags.value(&flag)?;
                    args.min_time = text
                        .parse()
                        .ok()
                        .and_then(|seconds| Duration::try_from_secs_f64(seconds).ok())
                        .ok_or_else(|| format!("`--min-seconds` wants seconds, not `{text}`"))?;
                }
                "--seed" => args.seed = flags.number(&flag)?,
                "--model" => {
                    args.model = match flags.value(&flag)?.as_str() {
                        "mlp" => ModelKind::Mlp,
                        "cnn" => ModelKind::Cnn,
                        "lstm" => ModelKind::Lstm,
                        other => {
                            return Err(format!("`--model` is mlp, cnn or lstm, not `{other}`"));
                        }
                    };
                }
                "--backend" => {
                    let text = flags.value(&flag)?;
                    args.backends = if text == "both" {
                        Backend::CPU.to_vec()
                    } else {
                        vec![text.parse().map_err(|err| format!("`--backend`: {err}"))?]
                    };
                }
                other => return Err(format!("unknown flag `{other}`")),
            }
        }
        args.seq_len = seq_len.unwrap_or(match args.model {
            ModelKind::Mlp => 1,
            ModelKind::Cnn => 8,
            ModelKind::Lstm => 16,
        });
        if args.hidden.is_empty() {
            args.hidden = match args.model {
                ModelKind::Cnn => vec![16, 16],
                _ => vec![64],
            };
        }
        if args.checkpoint_cost && args.examples.is_empty() {
            args.examples = ["strategies/btcusd_lstm.yaml", "strategies/multi_cnn.yaml"]
                .map(PathBuf::from)
                .to_vec();
        } else if skip_examples || args.throughput_only {
            args.examples.clear();
        } else if args.examples.is_empty() {
            args.examples
                .push(PathBuf::from("strategies/eurusd_mlp.yaml"));
        }
        Ok(Some(args))
    }

    /// The backend of the overhead, latency and EURUSD measures.
    fn main_backend(&self) -> Backend {
        self.backends[0]
    }

    fn options(&self, backend: Backend) -> TrainOptions {
        TrainOptions {
            backend,
            ..TrainOptions::default()
        }
    }
}

fn main() -> ExitCode {
    let args = match args_or_exit(Args::parse(std::env::args().skip(1)), USAGE) {
        Ok(args) => args,
        Err(code) => return code,
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", orchestrator_core::error_chain(&*err));
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), Box<dyn Error>> {
    if args.checkpoint_cost {
        let mut costs = Vec::with_capacity(args.examples.len());
        for path in &args.examples {
            eprintln!(
                "bench train: checkpoint cost of {}, {} pairs, {}",
                path.display(),
                args.pairs,
                args.main_backend()
            );
            costs.push(checkpoint_cost(args, path)?);
        }
        print_checkpoint_cost(args, &costs);
        return Ok(());
    }
    let strategy = synthetic_strategy(args);
    let data = synthetic_data(args);

    let mut synthetic = Vec::with_capacity(args.backends.len());
    for &backend in &args.backends {
        eprintln!("bench train: synthetic, {backend}");
        synthetic.push(throughput(args, &strategy, &data, backend)?);
    }
    let mut examples = Vec::with_capacity(args.examples.len());
    for path in &args.examples {
        eprintln!(
            "bench train: example {}, {}",
            path.display(),
            args.main_backend()
        );
        examples.push(example(args, path)?);
    }
    if args.throughput_only {
        print_json(args, &synthetic, &examples, None);
        print_table(args, &synthetic, &examples, None);
        return Ok(());
    }
    eprintln!(
        "bench train: check overhead, {} pairs, {}",
        args.pairs,
        args.main_backend()
    );
    // The main backend's training sets the scale of the last two measures.
    let one_training = synthetic[0].wall;
    let overhead = check_overhead(args, &strategy, &data, one_training)?;
    eprintln!(
        "bench train: cancel latency, {} cancels, {}",
        args.cancels,
        args.main_backend()
    );
    let latency = cancel_latency(args, &strategy, &data, one_training)?;

    let cancel = Cancel { overhead, latency };
    print_json(args, &synthetic, &examples, Some(&cancel));
    print_table(args, &synthetic, &examples, Some(&cancel));
    Ok(())
}

/// What the cancellation token costs and how fast a cancel lands.
#[derive(Debug)]
struct Cancel {
    overhead: Overhead,
    latency: Latency,
}

// ---- synthetic data ----

fn synthetic_strategy(args: &Args) -> StrategyConfig {
    StrategyConfig {
        name: "bench_synthetic".to_owned(),
        description: None,
        source: None,
        training_data: TrainingData {
            symbols: vec![synthetic_symbol()],
            timeframes: vec![Timeframe::H1],
            base_timeframe: Timeframe::H1,
        },
        indicators: Vec::new(),
        fuzzy_sets: Vec::new(),
        model: ModelConfig {
            kind: args.model,
            hidden_layers: args.hidden.clone(),
            activation: Activation::Relu,
            dropout: 0.0,
            lookback_periods: args.seq_len - 1,
            scale_features: false,
            include_price_context: false,
            symbol_embedding_dim: 0,
            learning_rate: 1e-3,
            batch_size: args.batch_size,
            epochs: args.epochs,
            optimizer: Optimizer::Adam,
            early_stopping_patience: None,
            seed: args.seed,
            checkpoint: CheckpointPolicy::default(),
        },
        // Not used: the data is built here, not from bars.
        labels: LabelConfig {
            zigzag_threshold: 0.01,
            label_lookahead: 1,
        },
        data_split: DataSplit {
            train: 0.8,
            validation: 0.1,
            test: 0.1,
        },
    }
}

fn synthetic_symbol() -> market_data::Symbol {
    "SYNTH".parse().expect("a valid symbol")
}

/// Uniform noise in [-1, 1]; the label is a hidden random linear score of the
/// whole window, cut into three equally likely classes, so every model kind
/// can learn it.
fn synthetic_data(args: &Args) -> PreparedData {
    let mut rng = fastrand::Rng::with_seed(args.seed);
    let inputs = args.seq_len * args.features;
    let teacher: Vec<f32> = (0..inputs).map(|_| rng.f32() * 2.0 - 1.0).collect();
    // Each input has variance 1/3, so the score's variance is |teacher|² / 3.
    let scale = (teacher.iter().map(|w| w * w).sum::<f32>() / 3.0)
        .sqrt()
        .max(f32::EPSILON)
        .recip();
    let mut split = |len: usize| {
        let mut samples = Samples {
            features: Vec::with_capacity(len * inputs),
            labels: Vec::with_capacity(len),
            symbol_ids: vec![0; len],
            timestamps: Vec::new(),
        };
        for _ in 0..len {
            let first = samples.features.len();
            samples
                .features
                .extend((0..inputs).map(|_| rng.f32() * 2.0 - 1.0));
            let score = samples.features[first..]
                .iter()
                .zip(&teacher)
                .map(|(x, w)| x * w)
                .sum::<f32>()
                * scale;
            samples.labels.push(if score > TERTILE {
                Label::Buy
            } else if score < -TERTILE {
                Label::Sell
            } else {
                Label::Hold
            });
        }
        samples
    };
    let held_out = (args.samples / 10).max(1);
    PreparedData {
        layout: FeatureLayout {
            window: args.seq_len,
            names: (0..args.features).map(|i| format!("x{i}")).collect(),
        },
        symbols: vec![synthetic_symbol()],
        train: split(args.samples),
        validation: split(held_out),
        test: split(held_out),
        scaler: None,
    }
}

fn timed_train(
    strategy: &StrategyConfig,
    data: &PreparedData,
    options: &TrainOptions,
) -> Result<(TrainedModel, Duration), TrainError> {
    let token = CancellationToken::new();
    let started = Instant::now();
    let trained = train(strategy, data, options, &token, &mut |_| {})?;
    Ok((trained, started.elapsed()))
}

// ---- (a) synthetic throughput ----

#[derive(Debug)]
struct Throughput {
    backend: Backend,
    /// Trainings timed (as many as fit in `--min-seconds`, at least one).
    runs: usize,
    /// The whole `train` call, validation included (median over the runs).
    wall: Duration,
    /// Training batches only, summed over epochs (median over the runs).
    loop_seconds: f64,
    /// Per run.
    samples_trained: usize,
    batches: usize,
    final_train_loss: f64,
    test_accuracy: f64,
    baseline_accuracy: f64,
}

impl Throughput {
    fn samples_per_s(&self) -> f64 {
        self.samples_trained as f64 / self.loop_seconds
    }

    fn batch_ms(&self) -> f64 {
        self.loop_seconds * 1e3 / self.batches as f64
    }
}

/// Trains on `backend` until `--min-seconds` have passed (each training is
/// deterministic, so the runs differ only in time) and keeps the medians.
fn throughput(
    args: &Args,
    strategy: &StrategyConfig,
    data: &PreparedData,
    backend: Backend,
) -> Result<Throughput, TrainError> {
    let options = args.options(backend);
    // One short epoch first, so that one-time costs (thread pools, first
    // allocations) are not charged to the measured runs.
    let warm_up = PreparedData {
        train: head(
            &data.train,
            (data.train.len() / 20).max(1),
            data.layout.window * data.layout.width(),
        ),
        ..data.clone()
    };
    timed_train(
        strategy,
        &warm_up,
        &TrainOptions {
            epochs_override: Some(1),
            ..options.clone()
        },
    )?;

    let train_len = data.train.len();
    let started = Instant::now();
    let mut walls = Vec::new();
    let mut loops = Vec::new();
    let trained = loop {
        let (trained, wall) = timed_train(strategy, data, &options)?;
        walls.push(wall.as_secs_f64());
        loops.push(
            trained
                .report
                .history
                .iter()
                .map(|epoch| train_len as f64 / epoch.samples_per_second)
                .sum(),
        );
        if started.elapsed() >= args.min_time {
            break trained;
        }
    };
    let history = &trained.report.history;
    let metrics = trained.evaluate(data, &CancellationToken::new())?;
    Ok(Throughput {
        backend,
        runs: walls.len(),
        wall: Duration::from_secs_f64(median(&walls)),
        loop_seconds: median(&loops),
        samples_trained: history.len() * train_len,
        batches: history.len() * train_len.div_ceil(args.batch_size),
        final_train_loss: history.last().map_or(f64::NAN, |epoch| epoch.train_loss),
        test_accuracy: metrics.accuracy,
        baseline_accuracy: metrics.baseline.accuracy,
    })
}

/// The first `len` samples of `samples`.
fn head(samples: &Samples, len: usize, per_sample: usize) -> Samples {
    let len = len.min(samples.len());
    Samples {
        features: samples.features[..len * per_sample].to_vec(),
        labels: samples.labels[..len].to_vec(),
        symbol_ids: samples.symbol_ids[..len].to_vec(),
        timestamps: Vec::new(),
    }
}

// ---- (b) example strategies ----

#[derive(Debug)]
struct Example {
    name: String,
    epochs: usize,
    wall: Duration,
    summary: TrainingSummary,
}

/// Trains the example strategy at `path` (relative to the workspace root)
/// end to end on the shipped data.
fn example(args: &Args, path: &Path) -> Result<Example, Box<dyn Error>> {
    let (request, directories) = example_request(args, path)?;
    let name = request.strategy().name.clone();
    let epochs = args
        .example_epochs
        .unwrap_or(request.strategy().model.epochs);
    let started = Instant::now();
    let summary = LocalTrainer.run(
        &request,
        &directories.directories,
        None,
        &CancellationToken::new(),
        &mut |_| {},
    )?;
    Ok(Example {
        name,
        epochs,
        wall: started.elapsed(),
        summary,
    })
}

/// Where an example trains: the shipped data, and models in a folder
/// removed when this is dropped.
struct ExampleDirectories {
    directories: Directories,
    _models: tempfile::TempDir,
}

/// The request of the example strategy at `path`, and its folders.
fn example_request(
    args: &Args,
    path: &Path,
) -> Result<(TrainingRequest, ExampleDirectories), Box<dyn Error>> {
    let root = workspace_root();
    let strategy = StrategyConfig::from_file(&root.join(path))?;
    let models = tempfile::tempdir()?;
    let options = TrainingOptions {
        backend: Some(args.main_backend()),
        epochs: args.example_epochs.map(u32::try_from).transpose()?,
        ..TrainingOptions::default()
    };
    let request = TrainingRequest::new(strategy, None, None, options)?;
    let directories = Directories {
        data: root.join("data"),
        models: models.path().to_owned(),
    };
    Ok((
        request,
        ExampleDirectories {
            directories,
            _models: models,
        },
    ))
}

// ---- checkpoint cost ----

#[derive(Debug)]
struct CheckpointCost {
    name: String,
    policy: CheckpointPolicy,
    /// Train phase seconds with and without checkpoints, per pair.
    with: Vec<f64>,
    without: Vec<f64>,
    /// `with / without - 1` per pair, in percent.
    percents: Vec<f64>,
    /// Checkpoints one training wrote, their size, and every write's time.
    saves_per_training: usize,
    bytes: u64,
    writes: Vec<Duration>,
}

/// Pairs of trainings of one example with its checkpoint policy and
/// without checkpoints, alternating which goes first; the train phase is
/// compared, so loading data and saving the model do not dilute it.
fn checkpoint_cost(args: &Args, path: &Path) -> Result<CheckpointCost, Box<dyn Error>> {
    let (request, directories) = example_request(args, path)?;
    let checkpoint = directories.directories.models.join("bench.ckpt");
    let mut cost = CheckpointCost {
        name: request.strategy().name.clone(),
        policy: request.strategy().model.checkpoint,
        with: Vec::new(),
        without: Vec::new(),
        percents: Vec::new(),
        saves_per_training: 0,
        bytes: 0,
        writes: Vec::new(),
    };
    for pair in 0..args.pairs {
        let mut seconds = [0.0; 2];
        let order = if pair % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        };
        for checkpointing in order {
            let (sender, saves) = std::sync::mpsc::channel();
            let mut checkpoints = checkpointing.then(|| Checkpoints {
                path: checkpoint.clone(),
                resume_from: None,
                on_saved: std::sync::Arc::new(move |saved| {
                    let _ = sender.send(saved.clone());
                }),
            });
            let summary = LocalTrainer.run(
                &request,
                &directories.directories,
                checkpoints.as_mut(),
                &CancellationToken::new(),
                &mut |_| {},
            )?;
            seconds[usize::from(!checkpointing)] = summary.phase_seconds.train;
            if checkpointing {
                let saves: Vec<SavedCheckpoint> = saves.try_iter().collect();
                cost.saves_per_training = saves.len();
                cost.bytes = saves.last().map_or(0, |saved| saved.bytes);
                cost.writes.extend(saves.iter().map(|saved| saved.took));
            }
        }
        cost.with.push(seconds[0]);
        cost.without.push(seconds[1]);
        cost.percents.push((seconds[0] / seconds[1] - 1.0) * 100.0);
    }
    Ok(cost)
}

fn print_checkpoint_cost(args: &Args, costs: &[CheckpointCost]) {
    let write_ms = |cost: &CheckpointCost, q: f64| {
        let ms: Vec<f64> = cost
            .writes
            .iter()
            .map(|took| took.as_secs_f64() * 1e3)
            .collect();
        round(quantile(&ms, q), 3)
    };
    let json = serde_json::json!({
        "bench": "train checkpoint cost",
        "backend": args.main_backend().as_str(),
        "pairs": args.pairs,
        "examples": costs.iter().map(|cost| serde_json::json!({
            "strategy": cost.name,
            "policy": { "every_epochs": cost.policy.every_epochs, "every_seconds": cost.policy.every_seconds },
            "train_s_with": cost.with.iter().map(|s| round(*s, 4)).collect::<Vec<_>>(),
            "train_s_without": cost.without.iter().map(|s| round(*s, 4)).collect::<Vec<_>>(),
            "overhead_percent_per_pair": cost.percents.iter().map(|p| round(*p, 2)).collect::<Vec<_>>(),
            "median_overhead_percent": round(median(&cost.percents), 2),
            "checkpoints_per_training": cost.saves_per_training,
            "checkpoint_bytes": cost.bytes,
            "write_ms_p50": write_ms(cost, 0.5),
            "write_ms_max": write_ms(cost, 1.0),
        })).collect::<Vec<_>>(),
    });
    println!("{json}");
    println!();
    println!(
        "checkpoint cost, {} pairs on {} (train phase, median of the pairs' extra time; goal < 2 %)",
        args.pairs,
        args.main_backend()
    );
    println!(
        "{:<14} {:>9} {:>9} {:>10} {:>12} {:>10} {:>11} {:>10}",
        "strategy",
        "with s",
        "without s",
        "overhead",
        "checkpoints",
        "bytes",
        "write p50",
        "write max"
    );
    for cost in costs {
        println!(
            "{:<14} {:>9.3} {:>9.3} {:>9.2}% {:>12} {:>10} {:>8.2} ms {:>7.2} ms",
            cost.name,
            median(&cost.with),
            median(&cost.without),
            median(&cost.percents),
            cost.saves_per_training,
            cost.bytes,
            write_ms(cost, 0.5),
            write_ms(cost, 1.0),
        );
    }
}

// ---- (c) check overhead ----

#[derive(Debug)]
struct Overhead {
    /// Trainings of each setting per pair.
    repeats: usize,
    /// `every / never - 1` per pair, in percent, in run order.
    percents: Vec<f64>,
    median_percent: f64,
    every: Vec<Duration>,
    never: Vec<Duration>,
}

/// Pairs of runs of the same training with the token checked every batch
/// and (within an epoch) never. A pair repeats the training as often as fits
/// in `--min-seconds` (given that one takes `one_training`), alternating the
/// two settings training by training and swapping which goes first, so that
/// bursts of load and drifts of the machine's speed hit both alike.
fn check_overhead(
    args: &Args,
    strategy: &StrategyConfig,
    data: &PreparedData,
    one_training: Duration,
) -> Result<Overhead, TrainError> {
    let options = |check_every_batches| TrainOptions {
        check_every_batches,
        ..args.options(args.main_backend())
    };
    let (every_options, never_options) = (options(1), options(usize::MAX));
    let repeats = (args.min_time.as_secs_f64() / 2.0 / one_training.as_secs_f64().max(1e-6)).ceil();
    let repeats = (repeats as usize).max(1);
    let mut overhead = Overhead {
        repeats,
        percents: Vec::with_capacity(args.pairs),
        median_percent: f64::NAN,
        every: Vec::with_capacity(args.pairs),
        never: Vec::with_capacity(args.pairs),
    };
    for pair in 0..args.pairs {
        let (mut every, mut never) = (Duration::ZERO, Duration::ZERO);
        for repeat in 0..repeats {
            if (pair + repeat) % 2 == 0 {
                every += timed_train(strategy, data, &every_options)?.1;
                never += timed_train(strategy, data, &never_options)?.1;
            } else {
                never += timed_train(strategy, data, &never_options)?.1;
                every += timed_train(strategy, data, &every_options)?.1;
            }
        }
        overhead
            .percents
            .push((every.as_secs_f64() / never.as_secs_f64() - 1.0) * 100.0);
        overhead.every.push(every);
        overhead.never.push(never);
    }
    overhead.median_percent = median(&overhead.percents);
    Ok(overhead)
}

// ---- (d) cancel latency ----

#[derive(Debug)]
struct Latency {
    /// From `cancel()` to `train` returning, one per cancel that landed.
    millis: Vec<f64>,
    /// Where the training noticed each cancel (`Cancelled::stage`).
    stages: BTreeMap<String, usize>,
    /// Cancels that came after the training had finished.
    finished_first: usize,
    /// The training duration the cancel points were drawn within.
    expected: Duration,
}

/// Starts the synthetic training on a thread and cancels it from this one
/// after a seeded random delay within `expected`, `args.cancels` times.
fn cancel_latency(
    args: &Args,
    strategy: &StrategyConfig,
    data: &PreparedData,
    expected: Duration,
) -> Result<Latency, TrainError> {
    let options = args.options(args.main_backend());
    let mut rng = fastrand::Rng::with_seed(args.seed ^ 0x0cac_e11a);
    let mut latency = Latency {
        millis: Vec::with_capacity(args.cancels),
        stages: BTreeMap::new(),
        finished_first: 0,
        expected,
    };
    for _ in 0..args.cancels {
        let delay = expected.mul_f64(rng.f64());
        let token = CancellationToken::new();
        let (result, cancelled_at, returned_at) = std::thread::scope(|scope| {
            let training = scope.spawn(|| {
                let result = train(strategy, data, &options, &token, &mut |_| {});
                (result, Instant::now())
            });
            std::thread::sleep(delay);
            let cancelled_at = Instant::now();
            token.cancel(CancelReason::UserRequest(None));
            let (result, returned_at) = training.join().expect("the training thread panicked");
            (result, cancelled_at, returned_at)
        });
        match result {
            Ok(_) => latency.finished_first += 1,
            Err(TrainError::Cancelled(cancelled)) => {
                let elapsed = returned_at.saturating_duration_since(cancelled_at);
                latency.millis.push(elapsed.as_secs_f64() * 1e3);
                *latency
                    .stages
                    .entry(cancelled.stage.into_owned())
                    .or_default() += 1;
            }
            Err(err) => return Err(err),
        }
    }
    Ok(latency)
}

// ---- statistics and output ----

fn seconds(duration: Duration) -> f64 {
    round(duration.as_secs_f64(), 3)
}

fn print_json(
    args: &Args,
    synthetic: &[Throughput],
    examples: &[Example],
    cancel: Option<&Cancel>,
) {
    let held_out = (args.samples / 10).max(1);
    let json = serde_json::json!({
        "bench": "train",
        "cpus": std::thread::available_parallelism().map_or(0, usize::from),
        "synthetic": {
            "model": args.model.display_name(),
            "samples": { "train": args.samples, "validation": held_out, "test": held_out },
            "features": args.features,
            "seq_len": args.seq_len,
            "hidden": args.hidden,
            "batch_size": args.batch_size,
            "epochs": args.epochs,
            "seed": args.seed,
            "backends": synthetic.iter().map(|run| serde_json::json!({
                "backend": run.backend.as_str(),
                "runs": run.runs,
                "train_samples_per_s": run.samples_per_s().round(),
                "batch_ms": round(run.batch_ms(), 4),
                "train_loop_s": round(run.loop_seconds, 3),
                "wall_s": seconds(run.wall),
                "final_train_loss": round(run.final_train_loss, 4),
                "test_accuracy": round(run.test_accuracy, 4),
                "baseline_accuracy": round(run.baseline_accuracy, 4),
            })).collect::<Vec<_>>(),
        },
        "examples": examples.iter().map(|run| {
            let summary = &run.summary;
            let phases = summary.phase_seconds;
            serde_json::json!({
                "strategy": run.name,
                "backend": summary.backend.as_str(),
                "epochs": run.epochs,
                "epochs_run": summary.report.epochs_run,
                "best_epoch": summary.report.best_epoch,
                "stopped_early": summary.report.stopped_early,
                "samples": summary.samples,
                "features_per_bar": summary.features_per_bar,
                "phase_s": {
                    "load_data": round(phases.load_data, 3),
                    "build_features": round(phases.build_features, 3),
                    "train": round(phases.train, 3),
                    "evaluate_and_save": round(phases.evaluate_and_save, 3),
                },
                "wall_s": seconds(run.wall),
                "test_accuracy": round(summary.metrics.accuracy, 4),
                "baseline_accuracy": round(summary.metrics.baseline.accuracy, 4),
                "baseline_class": summary.metrics.baseline.class,
                "macro_f1": round(summary.metrics.macro_f1, 4),
            })
        }).collect::<Vec<_>>(),
        "check_overhead": cancel.map(|Cancel { overhead, .. }| serde_json::json!({
            "backend": args.main_backend().as_str(),
            "pairs": args.pairs,
            "trainings_per_setting_per_pair": overhead.repeats,
            "median_percent": round(overhead.median_percent, 3),
            "percents": overhead.percents.iter().map(|p| round(*p, 3)).collect::<Vec<_>>(),
            "every_batch_s": overhead.every.iter().map(|d| seconds(*d)).collect::<Vec<_>>(),
            "never_s": overhead.never.iter().map(|d| seconds(*d)).collect::<Vec<_>>(),
            "within_goal": overhead.median_percent < OVERHEAD_GOAL_PERCENT,
        })),
        "cancel_latency": cancel.map(|Cancel { latency, .. }| {
            let batch_ms = synthetic[0].batch_ms();
            let p99 = quantile(&latency.millis, 0.99);
            serde_json::json!({
                "backend": args.main_backend().as_str(),
                "cancels": args.cancels,
                "landed": latency.millis.len(),
                "finished_before_cancel": latency.finished_first,
                "stages": latency.stages,
                "window_s": seconds(latency.expected),
                "p50_ms": round(quantile(&latency.millis, 0.5), 3),
                "p99_ms": round(p99, 3),
                "max_ms": round(latency.millis.iter().copied().fold(f64::NAN, f64::max), 3),
                "mean_batch_ms": round(batch_ms, 4),
                "within_goal": p99 <= batch_ms + LATENCY_GOAL_SLACK_MS,
            })
        }),
    });
    println!("{json}");
}

fn print_table(
    args: &Args,
    synthetic: &[Throughput],
    examples: &[Example],
    cancel: Option<&Cancel>,
) {
    let hidden: Vec<String> = args.hidden.iter().map(usize::to_string).collect();
    println!();
    println!(
        "synthetic {}: {} train samples x {} bars x {} features, hidden {}, batch {}, {} epochs",
        args.model.display_name(),
        args.samples,
        args.seq_len,
        args.features,
        hidden.join(","),
        args.batch_size,
        args.epochs
    );
    println!(
        "  {:<8} {:>5} {:>12} {:>10} {:>9} {:>9} {:>9}",
        "backend", "runs", "samples/s", "batch ms", "wall s", "test acc", "baseline"
    );
    for run in synthetic {
        println!(
            "  {:<8} {:>5} {:>12.0} {:>10.3} {:>9.3} {:>9.3} {:>9.3}",
            run.backend,
            run.runs,
            run.samples_per_s(),
            run.batch_ms(),
            run.wall.as_secs_f64(),
            run.test_accuracy,
            run.baseline_accuracy
        );
    }
    for run in examples {
        let summary = &run.summary;
        let phases = summary.phase_seconds;
        println!(
            "{} ({}, {} of {} epochs, {} train samples): load {:.3} s, features {:.3} s, \
             train {:.3} s, evaluate+save {:.3} s; test accuracy {:.3} vs baseline {:.3}",
            run.name,
            summary.backend,
            summary.report.epochs_run,
            run.epochs,
            summary.samples.train,
            phases.load_data,
            phases.build_features,
            phases.train,
            phases.evaluate_and_save,
            summary.metrics.accuracy,
            summary.metrics.baseline.accuracy
        );
    }
    let Some(Cancel { overhead, latency }) = cancel else {
        return;
    };
    println!(
        "token check every batch vs never ({}, {} pairs of {} trainings each): median {:+.2} % \
         (pairs {:+.2} to {:+.2} %; goal < {OVERHEAD_GOAL_PERCENT} %)",
        args.main_backend(),
        args.pairs,
        overhead.repeats,
        overhead.median_percent,
        overhead.percents.iter().copied().fold(f64::NAN, f64::min),
        overhead.percents.iter().copied().fold(f64::NAN, f64::max),
    );
    println!(
        "cancel -> Err(Cancelled) ({}, {} of {} landed): p50 {:.2} ms, p99 {:.2} ms; \
         mean batch {:.3} ms (goal: p99 within a batch + {LATENCY_GOAL_SLACK_MS} ms)",
        args.main_backend(),
        latency.millis.len(),
        args.cancels,
        quantile(&latency.millis, 0.5),
        quantile(&latency.millis, 0.99),
        synthetic[0].batch_ms()
    );
}
