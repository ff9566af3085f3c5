//! `trdr train`: trains a strategy as an operation, shows its typed progress
//! like `trdr data load` does, and prints a summary table at the end. With
//! `--resume` (and as `trdr ops resume`) it continues a stopped training
//! from its checkpoint instead, followed the same way.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow};
use chrono::{DateTime, Utc};
use clap::Args;
use market_data::{Symbol, Timeframe};
use orchestrator_core::{Operation, OperationId, ServiceOrchestrator};
use training_manager::{
    Directories, StrategySource, TrainRequest, TrainingManager, TrainingManagerError,
    TrainingSummary,
};

use crate::Global;
use crate::args::parse_time;
use crate::display::{OperationDisplay, OutputMode};
use crate::embedded;
use crate::follow::follow;
use crate::outcome::report_outcome;

/// Train the model a strategy file describes.
///
/// Runs four steps as one operation: [1/4] load data, [2/4] build features,
/// [3/4] train, [4/4] evaluate and save. Ctrl-C stops the training within a
/// batch and exits with 130; no partial model is left behind, but a
/// training stopped after its first batch keeps a checkpoint, and the
/// closing lines say how to continue it: `trdr train --resume OP_ID`.
#[derive(Debug, Args)]
pub(crate) struct TrainArgs {
    /// The strategy file (YAML, format 2.0), e.g. strategies/eurusd_mlp.yaml.
    #[arg(required_unless_present = "resume")]
    strategy: Option<PathBuf>,
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
    epochs: Option<u32>,
    /// Where model artifacts are written [default: $TRDR_MODELS_DIR, else ./models]
    #[arg(long, value_name = "DIR")]
    models_dir: Option<PathBuf>,
    /// Backend: flex (burn's CPU one, the default), ndarray (CPU), or a GPU
    /// backend of a build with its feature: wgpu (Vulkan, Metal, DX12) or
    /// cuda. Unset, the machine that trains picks: a training host its own
    /// (`trdr host-service --backend`), else flex.
    #[arg(long, value_name = "BACKEND")]
    backend: Option<training_manager::Backend>,
    /// Save a checkpoint at the end of every N epochs, instead of the
    /// strategy's `training.checkpoint.every_epochs` (default 1; 0: not at
    /// epoch ends). A stop always saves one.
    #[arg(long, value_name = "N")]
    checkpoint_every_epochs: Option<u32>,
    /// Inside an epoch too, once this many seconds have passed since the
    /// last save, instead of the strategy's `every_seconds` (default 300;
    /// 0: not inside epochs).
    #[arg(long, value_name = "SECONDS")]
    checkpoint_every_seconds: Option<u64>,
    /// Continue the stopped (cancelled or failed) training OP_ID from its
    /// checkpoint, as a new operation followed like a training; the same as
    /// `trdr ops resume OP_ID`.
    ///
    /// The new operation keeps the old one's strategy, options and
    /// directories, so it takes no STRATEGY and none of the options that
    /// change them. A completed or running training, or one without a
    /// checkpoint, is refused, saying why. With --server, the server
    /// resumes a training of its own store; without, the embedded store's.
    #[arg(
        long,
        value_name = "OP_ID",
        conflicts_with_all = [
            "strategy", "symbols", "timeframes", "start", "end", "epochs", "models_dir",
            "backend", "checkpoint_every_epochs", "checkpoint_every_seconds",
        ],
    )]
    resume: Option<OperationId>,
    /// Submit to this `trdr serve` (e.g. http://127.0.0.1:50051) and follow
    /// it there; Ctrl-C cancels it on the server. The strategy file is read
    /// here and sent as text; the server's data and models directories apply.
    #[arg(long, env = crate::remote::SERVER_ENV, value_name = "URL")]
    server: Option<String>,
}

pub(crate) async fn run(args: TrainArgs, global: &Global) -> anyhow::Result<u8> {
    if let Some(stopped) = &args.resume {
        return resume(stopped, args.server.as_deref(), global).await;
    }
    let strategy = args
        .strategy
        .clone()
        .expect("clap requires a strategy unless --resume is given");
    let finished = match &args.server {
        Some(server) => {
            // The server opens no file a client names: the strategy goes as
            // text, named by where it was read.
            let mut request = train_request(&args, &strategy);
            let origin = crate::remote::server_path(&strategy);
            request.strategy = StrategySource::read(&strategy, origin)
                .with_context(|| format!("cannot read the strategy file {}", strategy.display()))?;
            let wire = rpc::proto::StartTrainingOperationRequest::from(&request);
            crate::remote::train(server, wire, global).await?
        }
        None => train_embedded(&args, &strategy, global).await?,
    };
    report_training(&finished, args.server.as_deref(), global)
}

/// `trdr train --resume` and `trdr ops resume`: continues the stopped
/// training `stopped` from its checkpoint as a new operation, on `server`
/// or in the embedded store, and follows and reports that one as `trdr
/// train` does a training.
pub(crate) async fn resume(
    stopped: &OperationId,
    server: Option<&str>,
    global: &Global,
) -> anyhow::Result<u8> {
    let finished = match server {
        Some(server) => crate::remote::resume(server, stopped, global).await?,
        None => resume_embedded(stopped, global).await?,
    };
    report_training(&finished, server, global)
}

/// The closing lines of a followed training, and its exit code.
fn report_training(
    finished: &Operation,
    server: Option<&str>,
    global: &Global,
) -> anyhow::Result<u8> {
    report_outcome(finished, global.json, server, |result| {
        let summary: TrainingSummary =
            serde_json::from_value(result.clone()).context("unreadable training summary")?;
        print!("{}", summary_text(&summary, finished));
        Ok(())
    })
}

/// What the arguments ask to train.
fn train_request(args: &TrainArgs, strategy: &Path) -> TrainRequest {
    TrainRequest {
        symbols: (!args.symbols.is_empty()).then(|| args.symbols.clone()),
        timeframes: (!args.timeframes.is_empty()).then(|| args.timeframes.clone()),
        start: args.start,
        end: args.end,
        epochs: args.epochs,
        backend: args.backend,
        checkpoint_every_epochs: args.checkpoint_every_epochs,
        checkpoint_every_seconds: args.checkpoint_every_seconds,
        ..TrainRequest::new(StrategySource::File(strategy.to_path_buf()))
    }
}

async fn train_embedded(
    args: &TrainArgs,
    strategy: &Path,
    global: &Global,
) -> anyhow::Result<Operation> {
    let operations = embedded::operations()?;
    let manager = TrainingManager::from_env(operations.clone())?;
    let directories = Directories {
        data: global.data_dir.clone(),
        models: models_dir(args.models_dir.clone()),
    };
    let id = manager.train_multi_symbol_strategy(train_request(args, strategy), directories)?;
    follow_embedded(&manager, &id, global).await
}

/// Resumes in the embedded store, so a training an embedded `trdr train`
/// recorded continues here; the new operation keeps the old one's
/// directories.
async fn resume_embedded(stopped: &OperationId, global: &Global) -> anyhow::Result<Operation> {
    let operations = embedded::operations()?;
    let manager = TrainingManager::from_env(operations)?;
    let id = manager.resume(stopped).map_err(|error| match error {
        // The reason alone, as the server words its refusal.
        TrainingManagerError::NotResumable(why) => anyhow!(why),
        // "no operation with id …", without "cannot register the training".
        TrainingManagerError::Operation(error) => anyhow::Error::new(error),
        other => anyhow::Error::new(other).context(format!("cannot resume {stopped}")),
    })?;
    follow_embedded(&manager, &id, global).await
}

/// Follows the training `id` that `manager` runs in this process to its end.
async fn follow_embedded(
    manager: &TrainingManager,
    id: &OperationId,
    global: &Global,
) -> anyhow::Result<Operation> {
    let mut display = OperationDisplay::new(OutputMode::detect(global.json));
    let finished = follow(manager.operations(), id, &mut display).await?;
    // The operation ended once its work returned (or its grace period
    // ended); the task that recorded it is done at once.
    manager.drain().await;
    Ok(finished)
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

/// What `trdr train` prints when the training completed.
fn summary_text(summary: &TrainingSummary, operation: &Operation) -> String {
    let metrics = &summary.metrics;
    let report = &summary.report;
    let symbols: Vec<String> = summary.symbols.iter().map(ToString::to_string).collect();
    let timeframes: Vec<&str> = summary.timeframes.iter().map(|tf| tf.as_str()).collect();
    let duration = match (operation.started_at, operation.finished_at) {
        (Some(start), Some(end)) => format!("{:.1} s", (end - start).as_seconds_f64()),
        _ => "unknown".to_owned(),
    };
    let mut lines = vec![
        format!(
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
        ),
        String::new(),
        format!(
            "  test accuracy  {:.3}   baseline (always {}) {:.3}   on {} samples",
            metrics.accuracy, metrics.baseline.class, metrics.baseline.accuracy, metrics.samples
        ),
    ];
    let quality = &summary.quality;
    // Summaries older than the reading have no verdict.
    if !quality.verdict.is_empty() {
        let counts = |[buy, hold, sell]: [u64; 3]| format!("{buy}/{hold}/{sell}");
        lines.push(format!(
            "  balanced acc   {:.3}   macro-F1 {:.3}   kappa {:.3}",
            quality.balanced_accuracy, metrics.macro_f1, quality.kappa
        ));
        lines.push(format!("  verdict        {}", quality.verdict));
        lines.push(format!(
            "  labels         BUY/HOLD/SELL  train {}  validation {}  test {}",
            counts(quality.labels.train),
            counts(quality.labels.validation),
            counts(quality.labels.test)
        ));
        lines.extend(
            quality
                .warnings
                .iter()
                .map(|warning| format!("  warning        {warning}")),
        );
    }
    lines.extend([
        String::new(),
        "  class   precision  recall     f1   support".to_owned(),
    ]);
    lines.extend(metrics.per_class.iter().map(|class| {
        format!(
            "  {:<6} {:>10.3} {:>7.3} {:>6.3} {:>9}",
            class.class, class.precision, class.recall, class.f1, class.support
        )
    }));
    let phases = &summary.phase_seconds;
    lines.extend([
        String::new(),
        format!(
            "  phases     load {:.2} s, features {:.2} s, train {:.2} s, evaluate+save {:.2} s",
            phases.load_data, phases.build_features, phases.train, phases.evaluate_and_save
        ),
        format!("  model      {}", summary.model_path.display()),
        format!("  operation  {}", operation.id),
        String::new(),
    ]);
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use expect_test::expect;
    use orchestrator_core::{CancelReason, OperationKind, OperationStatus};
    use progress::{ProgressContext, ProgressState, Step, TrainingContext};

    use super::*;
    use crate::outcome::{cancelled_line, failed_line, too_late_note};

    fn training(status: OperationStatus) -> Operation {
        let at = Utc.with_ymd_and_hms(2026, 11, 29, 9, 30, 0).unwrap();
        let mut operation = Operation::new(OperationKind::Training, serde_json::json!({}), at);
        // A fixed id, so the snapshots are too.
        operation.id = "op_training_20261129_093000_0a1b2c3d".parse().unwrap();
        operation.status = status;
        operation.started_at = Some(at);
        operation.finished_at = Some(at + chrono::Duration::milliseconds(12_340));
        operation.progress = ProgressState {
            context: ProgressContext::Training(TrainingContext {
                epoch: Some(Step::new(5, 12)),
                batch: Some(Step::new(96, 110)),
                ..TrainingContext::default()
            }),
            ..ProgressState::default()
        };
        operation
    }

    fn summary() -> TrainingSummary {
        serde_json::from_value(serde_json::json!({
            "strategy": "eurusd_mlp",
            "model_type": "mlp",
            "symbols": ["EURUSD"],
            "timeframes": ["1h"],
            "backend": "flex",
            "model_path": "models/eurusd_mlp/v3",
            "metrics": {
                "samples": 1200,
                "accuracy": 0.5425,
                "per_class": [
                    { "class": "down", "precision": 0.51, "recall": 0.48, "f1": 0.494, "support": 400 },
                    { "class": "flat", "precision": 0.6, "recall": 0.7, "f1": 0.646, "support": 500 },
                    { "class": "up", "precision": 0.47, "recall": 0.4, "f1": 0.432, "support": 300 }
                ],
                "macro_f1": 0.524,
                "confusion_matrix": [[192, 120, 88], [80, 350, 70], [75, 105, 120]],
                "baseline": { "class": "flat", "accuracy": 0.4167 }
            },
            "report": {
                "seed": 42,
                "epochs_run": 12,
                "best_epoch": 9,
                "best_val_loss": 0.93,
                "stopped_early": true,
                "history": []
            },
            "samples": { "train": 5600, "validation": 1200, "test": 1200 },
            "features_per_bar": 17,
            "phase_seconds": { "load_data": 0.21, "build_features": 0.05, "train": 11.8, "evaluate_and_save": 0.12 },
            "quality": {
                "balanced_accuracy": 0.5267,
                "kappa": 0.2841,
                "labels": { "train": [1800, 2500, 1300], "validation": [400, 500, 300], "test": [400, 500, 300] },
                "val_test_gap": 0.0725,
                "verdict": "beats always flat by 12.6 points (kappa 0.284)",
                "warnings": ["validation accuracy 61.5% and test accuracy 54.2% are 7.3 points apart: the validation split does not predict how the model does on new data"]
            }
        }))
        .unwrap()
    }

    #[test]
    fn resume_takes_an_operation_id_instead_of_a_strategy_and_its_options() {
        use clap::Parser as _;
        let parse =
            |args: &[&str]| crate::Cli::try_parse_from(["trdr", "train"].iter().chain(args));
        let stopped = "op_training_20261129_093000_0a1b2c3d";
        let crate::Command::Train(args) = parse(&["--resume", stopped]).unwrap().command else {
            panic!("not the train command");
        };
        assert_eq!(args.resume.unwrap().as_str(), stopped);
        assert_eq!(args.strategy, None);

        for (refused, kind) in [
            (
                vec!["strategies/eurusd_mlp.yaml", "--resume", stopped],
                clap::error::ErrorKind::ArgumentConflict,
            ),
            (
                vec!["--resume", stopped, "--epochs", "3"],
                clap::error::ErrorKind::ArgumentConflict,
            ),
            (
                vec!["--resume", "nonsense"],
                clap::error::ErrorKind::ValueValidation,
            ),
            (vec![], clap::error::ErrorKind::MissingRequiredArgument),
        ] {
            let error = parse(&refused).unwrap_err();
            assert_eq!(error.kind(), kind, "{refused:?}: {error}");
        }
        let error = parse(&["strategies/eurusd_mlp.yaml", "--resume", stopped]).unwrap_err();
        expect!["the argument '[STRATEGY]' cannot be used with '--resume <OP_ID>'"].assert_eq(
            error
                .to_string()
                .lines()
                .next()
                .unwrap()
                .trim_start_matches("error: "),
        );
    }

    #[test]
    fn a_completed_training_ends_with_its_summary() {
        let operation = training(OperationStatus::Completed);
        expect![[r#"
            Trained MLP on EURUSD [1h] in 12.3 s: 12 epochs, best epoch 9 (stopped early)

              test accuracy  0.542   baseline (always flat) 0.417   on 1200 samples
              balanced acc   0.527   macro-F1 0.524   kappa 0.284
              verdict        beats always flat by 12.6 points (kappa 0.284)
              labels         BUY/HOLD/SELL  train 1800/2500/1300  validation 400/500/300  test 400/500/300
              warning        validation accuracy 61.5% and test accuracy 54.2% are 7.3 points apart: the validation split does not predict how the model does on new data

              class   precision  recall     f1   support
              down        0.510   0.480  0.494       400
              flat        0.600   0.700  0.646       500
              up          0.470   0.400  0.432       300

              phases     load 0.21 s, features 0.05 s, train 11.80 s, evaluate+save 0.12 s
              model      models/eurusd_mlp/v3
              operation  op_training_20261129_093000_0a1b2c3d
        "#]]
        .assert_eq(&summary_text(&summary(), &operation));
        assert_eq!(too_late_note(&operation), None);
    }

    #[test]
    fn a_stop_requested_after_the_training_finished_is_noted_as_too_late() {
        let mut operation = training(OperationStatus::Completed);
        operation.cancel_reason = Some(CancelReason::UserRequest(None));
        operation.cancel_requested_at = operation.finished_at;
        expect!["The stop requested at 09:30:12 UTC came too late: op_training_20261129_093000_0a1b2c3d had already finished, and its result stands."].assert_eq(&too_late_note(&operation).unwrap());
    }

    #[test]
    fn a_cancelled_training_ends_with_one_line_saying_where_and_why() {
        let mut interrupted = training(OperationStatus::Cancelled);
        interrupted.error = Some("during training".into());
        interrupted.cancel_reason = Some(CancelReason::UserRequest(Some(
            "interrupted (Ctrl-C)".into(),
        )));
        expect!["Cancelled op_training_20261129_093000_0a1b2c3d during training (epoch 5/12, batch 96/110): interrupted (Ctrl-C)"].assert_eq(&cancelled_line(&interrupted));

        let mut abandoned = training(OperationStatus::Cancelled);
        abandoned.error =
            Some("without its work, which was still running 30s after the request".into());
        abandoned.cancel_reason = Some(CancelReason::Shutdown);
        expect!["Cancelled op_training_20261129_093000_0a1b2c3d without its work, which was still running 30s after the request (epoch 5/12, batch 96/110): the service shut down"].assert_eq(&cancelled_line(&abandoned));

        let mut queued = Operation::new(
            OperationKind::Training,
            serde_json::json!({}),
            interrupted.created_at,
        );
        queued.id = interrupted.id.clone();
        queued.status = OperationStatus::Cancelled;
        queued.error = Some("before it started".into());
        queued.cancel_reason = Some(CancelReason::UserRequest(None));
        expect!["Cancelled op_training_20261129_093000_0a1b2c3d before it started: requested by the user"].assert_eq(&cancelled_line(&queued));
    }

    #[test]
    fn a_failed_training_ends_with_its_error() {
        let mut operation = training(OperationStatus::Failed);
        operation.error = Some("cannot load EURUSD 1h: no data file data/EURUSD_1h.csv".into());
        expect!["error: operation op_training_20261129_093000_0a1b2c3d failed: cannot load EURUSD 1h: no data file data/EURUSD_1h.csv"].assert_eq(&failed_line(&operation));
    }
}
