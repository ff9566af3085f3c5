//! `trdr train`: trains a strategy as an operation, shows its typed progress
//! like `trdr data load` does, and prints a summary table at the end.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use clap::Args;
use market_data::{Symbol, Timeframe};
use orchestrator_core::{Operation, ServiceOrchestrator};
use training_manager::{StrategySource, TrainRequest, TrainingManager, TrainingSummary};

use crate::Global;
use crate::args::parse_time;
use crate::display::{OperationDisplay, OutputMode};
use crate::embedded;
use crate::follow::{follow, report_outcome};

/// Train the model a strategy file describes.
///
/// Runs four steps as one operation: [1/4] load data, [2/4] build features,
/// [3/4] train, [4/4] evaluate and save. Ctrl-C stops the training within a
/// batch and exits with 130; no partial model is left behind.
#[derive(Debug, Args)]
pub(crate) struct TrainArgs {
    /// The strategy file (YAML, format 2.0), e.g. strategies/eurusd_mlp.yaml.
    strategy: PathBuf,
    /// Train on these symbols instead of the strategy's (comma-separated).
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    symbols: Vec<Symbol>,
    /// Train on these timeframes instead of the strategy's (comma-separated;
    /// the first is the base timeframe).
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    timeframes: Vec<Timeframe>,
    /// First bar to use: `YYYY-MM-DD`, `YYYY-MM-DD HH:MM:SS` or RFC 3339 (UTC).
    #[arg(long, value_parser = parse_time)]
    start: Option<DateTime<Utc>>,
    /// Last bar to use (inclusive), same formats as --start.
    #[arg(long, value_parser = parse_time)]
    end: Option<DateTime<Utc>>,
    /// Train this many epochs instead of the strategy's.
    #[arg(long, value_name = "N")]
    epochs: Option<usize>,
    /// Where model artifacts are written [default: $TRDR_MODELS_DIR, else ./models]
    #[arg(long, value_name = "DIR")]
    models_dir: Option<PathBuf>,
    /// CPU backend: flex (burn's current one, faster) or ndarray.
    #[arg(long, default_value_t = training_manager::Backend::default())]
    backend: training_manager::Backend,
    /// Submit to this `trdr serve` (e.g. http://127.0.0.1:50051) and follow
    /// it there; Ctrl-C cancels it on the server. The strategy file is read
    /// here and sent as text; the server's data and models directories apply.
    #[arg(long, env = crate::remote::SERVER_ENV, value_name = "URL")]
    server: Option<String>,
}

pub(crate) async fn run(args: TrainArgs, global: &Global) -> anyhow::Result<u8> {
    let finished = match &args.server {
        Some(server) => crate::remote::train(server, wire_request(&args)?, global).await?,
        None => train_embedded(args, global).await?,
    };
    report_outcome(&finished, global.json, |result| {
        let summary: TrainingSummary =
            serde_json::from_value(result.clone()).context("unreadable training summary")?;
        print_summary(&summary, &finished);
        Ok(())
    })
}

async fn train_embedded(args: TrainArgs, global: &Global) -> anyhow::Result<Operation> {
    let operations = embedded::operations()?;
    let manager = TrainingManager::from_env(operations.clone())?;
    let request = TrainRequest {
        strategy: StrategySource::File(args.strategy),
        symbols: (!args.symbols.is_empty()).then_some(args.symbols),
        timeframes: (!args.timeframes.is_empty()).then_some(args.timeframes),
        start: args.start,
        end: args.end,
        epochs: args.epochs,
        data_dir: global.data_dir.clone(),
        models_dir: models_dir(args.models_dir),
        backend: args.backend,
    };
    let id = manager.train_multi_symbol_strategy(request)?;
    let mut display = OperationDisplay::new(OutputMode::detect(global.json));
    let finished = follow(&operations, &id, &mut display).await?;
    // A cancelled training stops within a batch; wait for it, so the process
    // does not exit while the trainer is still writing.
    let _ = tokio::time::timeout(Duration::from_secs(10), manager.drain()).await;
    // Re-read: work that stopped after a cancel may have noted how it stopped.
    Ok(operations.get(&id).unwrap_or(finished))
}

/// The request for `trdr serve`, with the strategy's text: the server opens
/// no file a client names outside its own strategies directory.
fn wire_request(args: &TrainArgs) -> anyhow::Result<rpc::proto::StartTrainingOperationRequest> {
    use rpc::proto::start_training_operation_request::Strategy;
    let yaml = std::fs::read_to_string(&args.strategy)
        .with_context(|| format!("cannot read the strategy file {}", args.strategy.display()))?;
    Ok(rpc::proto::StartTrainingOperationRequest {
        strategy: Some(Strategy::StrategyText(rpc::proto::StrategyText {
            yaml,
            origin: crate::remote::server_path(&args.strategy),
        })),
        symbols: args.symbols.iter().map(ToString::to_string).collect(),
        timeframes: args.timeframes.iter().map(ToString::to_string).collect(),
        start: args.start.map(rpc::timestamp),
        end: args.end.map(rpc::timestamp),
        epochs: args
            .epochs
            .map(|epochs| u32::try_from(epochs).unwrap_or(u32::MAX)),
        backend: args.backend.to_string(),
    })
}

/// `--models-dir`, else `$TRDR_MODELS_DIR`, else `./models`.
pub(crate) fn models_dir(flag: Option<PathBuf>) -> PathBuf {
    flag.or_else(|| {
        std::env::var_os("TRDR_MODELS_DIR")
            .filter(|dir| !dir.is_empty())
            .map(PathBuf::from)
    })
    .unwrap_or_else(|| PathBuf::from("models"))
}

fn print_summary(summary: &TrainingSummary, operation: &Operation) {
    let metrics = &summary.metrics;
    let report = &summary.report;
    let symbols: Vec<String> = summary.symbols.iter().map(ToString::to_string).collect();
    let timeframes: Vec<&str> = summary.timeframes.iter().map(|tf| tf.as_str()).collect();
    let duration = match (operation.started_at, operation.finished_at) {
        (Some(start), Some(end)) => format!("{:.1} s", (end - start).as_seconds_f64()),
        _ => "unknown".to_owned(),
    };
    println!(
        "Trained {} on {} [{}] in {duration}: {} epochs, best epoch {}{}",
        summary.model_type.display_name(),
        symbols.join(", "),
        timeframes.join(", "),
        report.epochs_run,
        report.best_epoch,
        if report.stopped_early {
            " (stopped early)"
        } else {
            ""
        },
    );
    println!();
    println!(
        "  test accuracy  {:.3}   baseline (always {}) {:.3}   on {} samples",
        metrics.accuracy, metrics.baseline.class, metrics.baseline.accuracy, metrics.samples
    );
    println!();
    println!("  class   precision  recall     f1   support");
    for class in &metrics.per_class {
        println!(
            "  {:<6} {:>10.3} {:>7.3} {:>6.3} {:>9}",
            class.class, class.precision, class.recall, class.f1, class.support
        );
    }
    println!();
    let phases = &summary.phase_seconds;
    println!(
        "  phases     load {:.2} s, features {:.2} s, train {:.2} s, evaluate+save {:.2} s",
        phases.load_data, phases.build_features, phases.train, phases.evaluate_and_save
    );
    println!("  model      {}", summary.model_path.display());
    println!("  operation  {}", operation.id);
}
