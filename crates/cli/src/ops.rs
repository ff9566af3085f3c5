//! `trdr ops`: list, show, watch, cancel and resume operations, on a server
//! (`--server`) or in the local embedded store; plot a training's curves;
//! prune old checkpoints.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use orchestrator_core::{
    CancelReason, ListFilter, Operation, OperationId, OperationKind, OperationStatus,
    OperationsService,
};
use progress::EpochPoint;
use rpc::proto;
use training_manager::{Pruned, prune_checkpoints};

use crate::Global;
use crate::display::{OperationDisplay, OutputMode};
use crate::embedded;
use crate::follow::{LocalSnapshots, OnInterrupt, follow_snapshots};
use crate::outcome::{cancelled_line, report_outcome};
use crate::remote::{Remote, SERVER_ENV};

#[derive(Debug, Args)]
pub(crate) struct OpsArgs {
    /// The `trdr serve` to ask, e.g. http://127.0.0.1:50051; without it the
    /// local embedded store is read.
    #[arg(long, env = SERVER_ENV, global = true, value_name = "URL")]
    server: Option<String>,
    #[command(subcommand)]
    command: OpsCommand,
}

#[derive(Debug, Subcommand)]
enum OpsCommand {
    /// List operations, newest first.
    List {
        /// Only operations with this status (repeatable): pending, running,
        /// completed, failed, cancelled.
        #[arg(long = "status", value_name = "STATUS")]
        statuses: Vec<OperationStatus>,
        /// Only this kind: training or data_load.
        #[arg(long)]
        kind: Option<OperationKind>,
        /// At most this many (0 for all).
        #[arg(long, default_value_t = 20, value_name = "N")]
        limit: u32,
        /// Only pending and running operations.
        #[arg(long)]
        active: bool,
    },
    /// Show everything about one operation: request, progress, result or error.
    Show {
        id: String,
        /// Instead, a training's finished epochs: losses, accuracies,
        /// samples/s and time, one line each (with --json, a list).
        #[arg(long)]
        metrics: bool,
    },
    /// Follow an operation to its end with live progress.
    ///
    /// Exits with the operation's outcome: 0 completed, 1 failed, 130
    /// cancelled. Ctrl-C stops watching; the operation goes on. Without
    /// --server, an operation another process runs is followed through the
    /// store: status changes only, no live progress.
    Watch { id: String },
    /// Cancel a pending or running operation.
    ///
    /// Without --server, an operation another trdr process is running
    /// cannot be reached from here: cancel it there (Ctrl-C in its
    /// terminal), or run it on a server (--server) to cancel it from anywhere.
    Cancel {
        id: String,
        /// A note recorded with the cancellation.
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
    },
    /// Continue a stopped training from its checkpoint, as a new operation.
    ///
    /// A cancelled or failed training that got past its first batch keeps
    /// a checkpoint (`trdr ops show` prints it). The new operation takes the
    /// old one's strategy, options and directories, starts from the saved
    /// epoch and batch, and is followed like `trdr train` (Ctrl-C cancels
    /// it, exit codes 0 completed, 1 failed, 130 cancelled); its record
    /// names the old one. A completed or running training, or one without a
    /// checkpoint, is refused, saying why. The same as `trdr train --resume
    /// OP_ID`. Without --server, the embedded store's trainings are resumed
    /// in this process.
    Resume {
        /// The stopped training, e.g. op_training_20261130_024000_0a1b2c3d.
        #[arg(value_name = "OP_ID")]
        id: OperationId,
    },
    /// Draw a training's loss and accuracy curves as an SVG file.
    ///
    /// Train and validation, one point per finished epoch; the kept epoch
    /// and the majority-class baseline are marked once the training has
    /// completed. A running training is drawn as far as it has got.
    Plot {
        id: String,
        /// The file to write [default: OP_ID.svg in this directory]
        #[arg(long, value_name = "FILE.svg")]
        out: Option<PathBuf>,
    },
    /// Remove old checkpoints of stopped trainings nobody resumed.
    ///
    /// A cancelled or failed training keeps its checkpoint (in the models
    /// directory's `.checkpoints`) until a resume of it completes. This
    /// removes those last written longer ago than --older-than, on this
    /// machine: run it where the trainings ran (for `trdr serve`, on the
    /// server's machine with its models directory and state). A pending or
    /// running training keeps its checkpoint, however old. A pruned
    /// training can no longer be resumed.
    Prune {
        /// How old a checkpoint must be to go: a number and a unit, s, m, h
        /// or d (e.g. 30d, 12h).
        #[arg(long, value_name = "AGE", default_value = "30d", value_parser = parse_age)]
        older_than: Duration,
        /// The models directory [default: $TRDR_MODELS_DIR, else ./models]
        #[arg(long, value_name = "DIR")]
        models_dir: Option<PathBuf>,
    },
}

pub(crate) async fn run(args: OpsArgs, global: &Global) -> anyhow::Result<u8> {
    let server = args.server.as_deref();
    match args.command {
        OpsCommand::List {
            statuses,
            kind,
            limit,
            active,
        } => {
            let filter = ListFilter {
                statuses,
                kind,
                active_only: active,
                limit: (limit > 0).then_some(limit as usize),
                offset: 0,
            };
            let (operations, total, active) = Source::open(server).await?.list(filter).await?;
            if global.json {
                let listing = serde_json::json!({
                    "operations": operations,
                    "total": total,
                    "active": active,
                });
                println!("{listing}");
            } else {
                print!("{}", table_text(&operations, total, active));
            }
            Ok(0)
        }
        OpsCommand::Show { id, metrics: true } => {
            let epochs = Source::open(server).await?.metrics(&id).await?;
            if global.json {
                println!("{}", serde_json::to_string(&epochs)?);
            } else {
                print!("{}", metrics_text(&epochs));
            }
            Ok(0)
        }
        OpsCommand::Show { id, metrics: false } => {
            let operation = Source::open(server).await?.get(&id).await?;
            if global.json {
                println!("{}", serde_json::to_string(&operation)?);
            } else {
                print!("{}", operation_text(&operation));
            }
            Ok(0)
        }
        OpsCommand::Watch { id } => {
            let id = parse_id(&id)?;
            let mut display = OperationDisplay::new(OutputMode::detect(global.json));
            let finished = match &mut Source::open(server).await? {
                Source::Local(operations) => {
                    let mut snapshots = LocalSnapshots::new(operations, &id)?;
                    follow_snapshots(&mut snapshots, &id, &mut display, OnInterrupt::Detach).await?
                }
                Source::Remote(remote) => {
                    let mut snapshots = remote.watch(id.as_str()).await?;
                    follow_snapshots(&mut snapshots, &id, &mut display, OnInterrupt::Detach).await?
                }
            };
            report_outcome(&finished, global.json, server, |_| {
                print!("{}", operation_text(&finished));
                Ok(())
            })
        }
        OpsCommand::Cancel { id, reason } => {
            let operation = Source::open(server).await?.cancel(&id, reason).await?;
            if global.json {
                println!("{}", serde_json::to_string(&operation)?);
            } else if operation.status.is_terminal() {
                println!("{}", cancelled_line(&operation));
            } else {
                println!(
                    "Asked {id} to stop; it ends at its next check (`trdr ops watch {id}` follows it).",
                    id = operation.id
                );
            }
            Ok(0)
        }
        // A resume trains, and is followed, as `trdr train` does.
        OpsCommand::Resume { id } => crate::train::resume(&id, server, global).await,
        OpsCommand::Plot { id, out } => {
            let out = out.unwrap_or_else(|| PathBuf::from(format!("{id}.svg")));
            anyhow::ensure!(
                out.extension().is_some_and(|extension| extension == "svg"),
                "{} is not an .svg file: trdr ops plot writes SVG, which browsers and image \
                 viewers open",
                out.display()
            );
            let mut source = Source::open(server).await?;
            let operation = source.get(&id).await?;
            let epochs = source.metrics(&id).await?;
            let svg = api_server::training_chart(&operation, &epochs);
            write_atomically(&out, svg.as_bytes())
                .with_context(|| format!("cannot write {}", out.display()))?;
            if global.json {
                println!(
                    "{}",
                    serde_json::json!({ "path": out, "epochs": epochs.len() })
                );
            } else {
                println!("Wrote {} ({} epochs).", out.display(), epochs.len());
            }
            Ok(0)
        }
        OpsCommand::Prune {
            older_than,
            models_dir,
        } => {
            anyhow::ensure!(
                server.is_none(),
                "trdr ops prune removes files of this machine; run it on the server's machine \
                 (without --server)"
            );
            let models = crate::train::models_dir(models_dir);
            let pruned = prune_checkpoints(&embedded::operations()?, &models, older_than)
                .with_context(|| format!("cannot prune the checkpoints in {}", models.display()))?;
            if global.json {
                println!("{}", serde_json::to_string(&pruned)?);
            } else {
                print!("{}", pruned_text(&pruned, &models));
            }
            Ok(0)
        }
    }
}

/// `30d`, `12h`, `90m` or `45s` as a duration.
fn parse_age(text: &str) -> Result<Duration, String> {
    let unit_at = text.len().saturating_sub(1);
    let (number, unit) = text.split_at(unit_at);
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => {
            return Err(format!(
                "{text:?} is not an age such as 30d, 12h, 90m or 45s"
            ));
        }
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|count| count.checked_mul(seconds))
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{text:?} is not an age such as 30d, 12h, 90m or 45s"))
}

/// What `trdr ops prune` did, for a person.
fn pruned_text(pruned: &Pruned, models: &Path) -> String {
    let bytes: u64 = pruned.removed.iter().map(|(_, bytes)| bytes).sum();
    let mut text = match pruned.removed.len() {
        0 => format!(
            "No checkpoint to remove in {}.\n",
            models.join(".checkpoints").display()
        ),
        count => format!(
            "Removed {count} checkpoint{} ({}) from {}.\n",
            if count == 1 { "" } else { "s" },
            size_text(bytes),
            models.join(".checkpoints").display()
        ),
    };
    if !pruned.kept_live.is_empty() {
        text.push_str(&format!(
            "Kept {} of trainings still pending or running.\n",
            pruned.kept_live.len()
        ));
    }
    text
}

/// Where operations are read: a server, or the embedded store.
#[derive(Debug)]
enum Source {
    Local(OperationsService),
    Remote(Box<Remote>),
}

impl Source {
    /// The server at `url`, else the embedded store.
    async fn open(url: Option<&str>) -> anyhow::Result<Self> {
        Ok(match url {
            Some(url) => Source::Remote(Box::new(Remote::connect(url).await?)),
            None => Source::Local(embedded::operations()?),
        })
    }

    async fn list(&mut self, filter: ListFilter) -> anyhow::Result<(Vec<Operation>, u64, u64)> {
        match self {
            Source::Local(operations) => {
                let page = operations.list(&filter)?;
                let active = operations
                    .list(&ListFilter {
                        active_only: true,
                        limit: Some(0),
                        ..ListFilter::default()
                    })?
                    .total;
                Ok((page.operations, page.total as u64, active as u64))
            }
            Source::Remote(remote) => {
                let request = proto::ListOperationsRequest {
                    statuses: filter
                        .statuses
                        .iter()
                        .map(|&status| proto::OperationStatus::from(status).into())
                        .collect(),
                    kind: filter
                        .kind
                        .map(|kind| proto::OperationKind::from(kind).into()),
                    active_only: filter.active_only,
                    limit: filter.limit.map_or(0, |limit| limit as u32),
                    offset: 0,
                };
                remote.list(request).await
            }
        }
    }

    async fn metrics(&mut self, id: &str) -> anyhow::Result<Vec<EpochPoint>> {
        match self {
            Source::Local(operations) => Ok(operations.get(&parse_id(id)?)?.epochs),
            Source::Remote(remote) => remote.metrics(id).await,
        }
    }

    async fn get(&mut self, id: &str) -> anyhow::Result<Operation> {
        match self {
            Source::Local(operations) => Ok(operations.get(&parse_id(id)?)?),
            Source::Remote(remote) => remote.get(id).await,
        }
    }

    async fn cancel(&mut self, id: &str, reason: Option<String>) -> anyhow::Result<Operation> {
        match self {
            Source::Local(operations) => {
                let id = parse_id(id)?;
                operations.cancel(&id, CancelReason::UserRequest(reason))?;
                Ok(operations.get(&id)?)
            }
            Source::Remote(remote) => remote.cancel(id, reason).await,
        }
    }
}

fn parse_id(text: &str) -> anyhow::Result<OperationId> {
    text.parse()
        .with_context(|| format!("{text:?} is not an operation id"))
}

/// What `trdr ops list` prints: a table, newest first, and a count.
fn table_text(operations: &[Operation], total: u64, active: u64) -> String {
    let mut lines = Vec::new();
    if !operations.is_empty() {
        lines.push(format!(
            "{:<40} {:<10} {:<10} {:<20} PROGRESS",
            "ID", "KIND", "STATUS", "CREATED (UTC)"
        ));
    }
    lines.extend(operations.iter().map(|operation| {
        format!(
            "{:<40} {:<10} {:<10} {:<20} {}",
            // Padding needs `str`: these types' Display ignores widths.
            operation.id.as_str(),
            operation.kind.as_str(),
            status_cell(operation),
            operation.created_at.format("%Y-%m-%d %H:%M:%S").to_string(),
            progress_cell(operation)
        )
    }));
    lines.push(format!(
        "{} of {total} operation{} shown, {active} active",
        operations.len(),
        if total == 1 { "" } else { "s" }
    ));
    lines.push(String::new());
    lines.join("\n")
}

/// The status, and `stopping` while a requested stop is awaited.
fn status_cell(operation: &Operation) -> &'static str {
    if operation.cancel_requested() && !operation.status.is_terminal() {
        "stopping"
    } else {
        operation.status.as_str()
    }
}

/// The percentage, right-aligned, and the message cut to 60 characters, an
/// ellipsis marking the cut.
fn progress_cell(operation: &Operation) -> String {
    const WIDTH: usize = 60;
    let full = &operation.progress.message;
    let message: String = if full.chars().count() > WIDTH {
        full.chars().take(WIDTH - 1).chain(['…']).collect()
    } else {
        full.clone()
    };
    format!("{:>3.0}% {message}", operation.progress.percentage)
        .trim_end()
        .to_owned()
}

/// What `trdr ops show` prints: one field a line, the result pretty-printed.
fn operation_text(operation: &Operation) -> String {
    let time = |at: Option<chrono::DateTime<chrono::Utc>>| {
        at.map_or_else(
            || "-".to_owned(),
            |at| at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        )
    };
    let mut lines = vec![
        format!("id         {}", operation.id),
        format!("kind       {}", operation.kind),
        format!("status     {}", operation.status),
        format!("created    {}", time(Some(operation.created_at))),
        format!("started    {}", time(operation.started_at)),
    ];
    if let Some(on) = &operation.runs_on {
        lines.push(format!("runs on    {on}"));
    }
    lines.push(match (operation.started_at, operation.finished_at) {
        (Some(start), Some(end)) => format!(
            "finished   {} ({:.1} s)",
            time(Some(end)),
            (end - start).as_seconds_f64()
        ),
        (_, end) => format!("finished   {}", time(end)),
    });
    // Whole, unlike the table's cell: this view has the room.
    let progress = format!(
        "progress   {:.0}% {}",
        operation.progress.percentage, operation.progress.message
    );
    lines.push(progress.trim_end().to_owned());
    lines.push(format!("request    {}", operation.params));
    if let Some(stopped) = operation
        .params
        .get("resumed_from")
        .and_then(|id| id.as_str())
    {
        lines.push(format!("resumed    from {stopped}"));
    }
    if let Some(result) = &operation.result {
        let pretty = serde_json::to_string_pretty(result).unwrap_or_else(|_| result.to_string());
        lines.push(format!(
            "result     {}",
            pretty.replace('\n', "\n           ")
        ));
    }
    if let Some(error) = &operation.error {
        // A cancelled operation's note says how it ended: `during training`.
        if operation.status == OperationStatus::Cancelled {
            lines.push(format!("cancelled  {error}"));
        } else {
            lines.push(format!("error      {error}"));
        }
    }
    if let Some(reason) = &operation.cancel_reason {
        let outcome = match operation.status {
            _ if !operation.cancel_requested() => "",
            OperationStatus::Completed => " (too late: the work had already finished)",
            status if status.is_terminal() => "",
            _ => " (waiting for the work to stop)",
        };
        lines.push(format!("stop       {reason}{outcome}"));
        if let Some(at) = operation.cancel_requested_at {
            lines.push(format!("requested  {}", time(Some(at))));
        }
    }
    if let Some(checkpoint) = &operation.checkpoint {
        lines.push(format!(
            "checkpoint epoch {}, batch {} · {} · {} · saved {}",
            checkpoint.epoch,
            checkpoint.batch,
            size_text(checkpoint.bytes),
            checkpoint.path,
            time(Some(checkpoint.saved_at))
        ));
    }
    lines.push(String::new());
    lines.join("\n")
}

/// The chart's title: what was trained, and by which operation.
/// Writes `bytes` to `path` through a temporary file renamed over it, so a
/// reader never sees half a chart.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let temporary = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    std::fs::write(&temporary, bytes)?;
    std::fs::rename(&temporary, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&temporary);
    })
}

/// A training's epochs as a table, one line each.
fn metrics_text(epochs: &[EpochPoint]) -> String {
    if epochs.is_empty() {
        return "No finished epoch.\n".to_owned();
    }
    let number = |value: Option<f64>, digits: usize| {
        value.map_or_else(|| "-".to_owned(), |value| format!("{value:.digits$}"))
    };
    let percent =
        |value: Option<f64>| value.map_or_else(|| "-".to_owned(), |v| format!("{:.1}%", v * 100.0));
    let mut text = format!(
        "{:>5}  {:>10}  {:>9}  {:>8}  {:>7}  {:>10}  {:>9}\n",
        "epoch", "train loss", "train acc", "val loss", "val acc", "samples/s", "elapsed"
    );
    for point in epochs {
        text.push_str(&format!(
            "{:>5}  {:>10}  {:>9}  {:>8}  {:>7}  {:>10}  {:>9}\n",
            point.epoch,
            number(point.train_loss, 4),
            percent(point.train_accuracy),
            number(point.val_loss, 4),
            percent(point.val_accuracy),
            number(point.samples_per_second, 0),
            point
                .elapsed_seconds
                .map_or_else(|| "-".to_owned(), |seconds| format!("{seconds:.1} s")),
        ));
    }
    text
}

/// A file size in decimal units, one decimal: `1.2 MB`.
fn size_text(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["kB", "MB", "GB", "TB"];
    if bytes < 1000 {
        return format!("{bytes} B");
    }
    // Precision is not needed here: one decimal is shown.
    let mut size = bytes as f64 / 1000.0;
    let mut unit = 0;
    while size >= 999.95 && unit + 1 < UNITS.len() {
        size /= 1000.0;
        unit += 1;
    }
    format!("{size:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone as _, Utc};
    use expect_test::expect;
    use orchestrator_core::Checkpoint;
    use progress::ProgressState;

    use super::*;

    /// An operation created at 09:`minute`:00 UTC and started a second later,
    /// with a fixed id and progress, so the snapshots are fixed too.
    fn operation(
        kind: OperationKind,
        id: &str,
        minute: u32,
        status: OperationStatus,
        percentage: f64,
        message: &str,
    ) -> Operation {
        let at = Utc.with_ymd_and_hms(2026, 11, 29, 9, minute, 0).unwrap();
        let mut operation = Operation::new(kind, serde_json::json!({}), at);
        operation.id = id.parse().unwrap();
        operation.status = status;
        operation.started_at = Some(at + chrono::Duration::seconds(1));
        operation.progress = ProgressState {
            percentage,
            message: message.to_owned(),
            ..ProgressState::default()
        };
        operation
    }

    fn running() -> Operation {
        let mut operation = operation(
            OperationKind::Training,
            "op_training_20261129_094500_0a1b2c3d",
            45,
            OperationStatus::Running,
            41.25,
            "Training MLP model on EURUSD [1h] [epoch 5/12] (batch 96/110) [3/4] loss 0.9812 acc 51.2%",
        );
        operation.params = serde_json::json!({
            "strategy": { "file": "strategies/eurusd_mlp.yaml" },
            "symbols": null,
            "timeframes": null,
            "start": null,
            "end": null,
            "epochs": 12,
            "data_dir": "data",
            "models_dir": "models",
            "backend": "flex",
        });
        operation
    }

    fn stopping() -> Operation {
        let mut operation = running();
        operation.id = "op_training_20261129_094000_4e5f6a7b".parse().unwrap();
        operation.created_at = Utc.with_ymd_and_hms(2026, 11, 29, 9, 40, 0).unwrap();
        operation.started_at = Some(operation.created_at + chrono::Duration::seconds(1));
        operation.progress.percentage = 63.0;
        operation.progress.message =
            "Training CNN model on EURUSD, BTCUSD [1h, 4h] [epoch 8/12] (batch 12/110) [3/4]"
                .to_owned();
        operation.params["strategy"]["file"] = "strategies/multi_cnn.yaml".into();
        operation.cancel_reason = Some(CancelReason::UserRequest(None));
        operation.cancel_requested_at =
            Some(Utc.with_ymd_and_hms(2026, 11, 29, 9, 46, 30).unwrap());
        operation
    }

    /// `stopping()`, stopped during training.
    fn cancelled() -> Operation {
        let mut operation = stopping();
        operation.status = OperationStatus::Cancelled;
        operation.finished_at = Some(Utc.with_ymd_and_hms(2026, 11, 29, 9, 46, 31).unwrap());
        operation.error = Some("during training".to_owned());
        operation
    }

    fn completed() -> Operation {
        let mut operation = operation(
            OperationKind::Training,
            "op_training_20261129_093000_0a1b2c3d",
            30,
            OperationStatus::Completed,
            100.0,
            "Training MLP model on EURUSD [1h] [4/4]",
        );
        operation.params = running().params;
        operation.finished_at = Some(operation.created_at + chrono::Duration::milliseconds(13_340));
        operation.result = Some(serde_json::json!({
            "strategy": "eurusd_mlp",
            "model_type": "mlp",
            "symbols": ["EURUSD"],
            "timeframes": ["1h"],
            "model_path": "models/eurusd_mlp/v3",
            "metrics": { "samples": 1200, "accuracy": 0.5425 },
        }));
        operation
    }

    fn failed() -> Operation {
        let mut operation = operation(
            OperationKind::DataLoad,
            "op_data_load_20261129_091500_8c9d0e1f",
            15,
            OperationStatus::Failed,
            0.0,
            "",
        );
        operation.params = serde_json::json!({
            "symbol": "GBPUSD",
            "timeframe": "1h",
            "start": null,
            "end": null,
            "mode": "local",
        });
        operation.finished_at = Some(operation.created_at + chrono::Duration::milliseconds(1_020));
        operation.error = Some("no data file data/GBPUSD_1h.csv".to_owned());
        operation
    }

    #[test]
    fn the_metrics_are_one_line_per_epoch_and_a_missing_figure_is_a_dash() {
        let point = |epoch, val: Option<f64>| EpochPoint {
            epoch,
            train_loss: Some(1.1 - f64::from(epoch) / 10.0),
            train_accuracy: Some(0.4),
            val_loss: val,
            val_accuracy: val.map(|loss| 1.0 - loss),
            samples_per_second: Some(41_234.6),
            elapsed_seconds: Some(f64::from(epoch) * 0.75),
        };
        expect![[r#"
            epoch  train loss  train acc  val loss  val acc   samples/s    elapsed
                1      1.0000      40.0%    0.5500    45.0%       41235      0.8 s
                2      0.9000      40.0%         -        -       41235      1.5 s
        "#]]
        .assert_eq(&metrics_text(&[point(1, Some(0.55)), point(2, None)]));
        assert_eq!(metrics_text(&[]), "No finished epoch.\n");
    }

    #[test]
    fn ages_have_a_unit_and_prune_reports_what_it_removed() {
        assert_eq!(parse_age("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse_age("12h"), Ok(Duration::from_secs(12 * 3600)));
        assert_eq!(parse_age("0s"), Ok(Duration::ZERO));
        for bad in ["30", "d", "-1d", "1.5h", "30w", ""] {
            let error = parse_age(bad).unwrap_err();
            assert!(error.contains("such as 30d"), "{bad:?}: {error}");
        }

        let models = Path::new("models");
        let pruned = Pruned {
            removed: vec![
                (PathBuf::from("models/.checkpoints/a.ckpt"), 700_000),
                (PathBuf::from("models/.checkpoints/b.ckpt"), 500_000),
            ],
            kept_live: vec![PathBuf::from("models/.checkpoints/c.ckpt")],
        };
        expect![[r#"
            Removed 2 checkpoints (1.2 MB) from models/.checkpoints.
            Kept 1 of trainings still pending or running.
        "#]]
        .assert_eq(&pruned_text(&pruned, models));
        expect![[r#"
            No checkpoint to remove in models/.checkpoints.
        "#]]
        .assert_eq(&pruned_text(&Pruned::default(), models));
    }

    #[test]
    fn the_list_shows_one_operation_a_line_and_a_count() {
        let operations = [running(), stopping(), completed(), failed()];
        expect![[r#"
            ID                                       KIND       STATUS     CREATED (UTC)        PROGRESS
            op_training_20261129_094500_0a1b2c3d     training   running    2026-11-29 09:45:00   41% Training MLP model on EURUSD [1h] [epoch 5/12] (batch 96/11…
            op_training_20261129_094000_4e5f6a7b     training   stopping   2026-11-29 09:40:00   63% Training CNN model on EURUSD, BTCUSD [1h, 4h] [epoch 8/12] …
            op_training_20261129_093000_0a1b2c3d     training   completed  2026-11-29 09:30:00  100% Training MLP model on EURUSD [1h] [4/4]
            op_data_load_20261129_091500_8c9d0e1f    data_load  failed     2026-11-29 09:15:00    0%
            4 of 27 operations shown, 2 active
        "#]]
        .assert_eq(&table_text(&operations, 27, 2));
    }

    #[test]
    fn an_empty_list_is_only_its_count() {
        expect![[r#"
            0 of 1 operation shown, 0 active
        "#]]
        .assert_eq(&table_text(&[], 1, 0));
    }

    #[test]
    fn a_completed_training_shows_where_it_ran_and_its_result_as_indented_json() {
        let mut completed = completed();
        completed.runs_on = Some("http://gpu-2:50052".to_owned());
        expect![[r#"
            id         op_training_20261129_093000_0a1b2c3d
            kind       training
            status     completed
            created    2026-11-29 09:30:00 UTC
            started    2026-11-29 09:30:01 UTC
            runs on    http://gpu-2:50052
            finished   2026-11-29 09:30:13 UTC (12.3 s)
            progress   100% Training MLP model on EURUSD [1h] [4/4]
            request    {"backend":"flex","data_dir":"data","end":null,"epochs":12,"models_dir":"models","start":null,"strategy":{"file":"strategies/eurusd_mlp.yaml"},"symbols":null,"timeframes":null}
            result     {
                         "metrics": {
                           "accuracy": 0.5425,
                           "samples": 1200
                         },
                         "model_path": "models/eurusd_mlp/v3",
                         "model_type": "mlp",
                         "strategy": "eurusd_mlp",
                         "symbols": [
                           "EURUSD"
                         ],
                         "timeframes": [
                           "1h"
                         ]
                       }
        "#]].assert_eq(&operation_text(&completed));
    }

    #[test]
    fn a_failed_operation_shows_its_error() {
        expect![[r#"
            id         op_data_load_20261129_091500_8c9d0e1f
            kind       data_load
            status     failed
            created    2026-11-29 09:15:00 UTC
            started    2026-11-29 09:15:01 UTC
            finished   2026-11-29 09:15:01 UTC (0.0 s)
            progress   0%
            request    {"end":null,"mode":"local","start":null,"symbol":"GBPUSD","timeframe":"1h"}
            error      no data file data/GBPUSD_1h.csv
        "#]]
        .assert_eq(&operation_text(&failed()));
    }

    #[test]
    fn a_cancelled_training_shows_how_it_stopped_and_why() {
        let mut operation = cancelled();
        operation.cancel_reason = Some(CancelReason::UserRequest(Some(
            "interrupted (Ctrl-C)".to_owned(),
        )));
        expect![[r#"
            id         op_training_20261129_094000_4e5f6a7b
            kind       training
            status     cancelled
            created    2026-11-29 09:40:00 UTC
            started    2026-11-29 09:40:01 UTC
            finished   2026-11-29 09:46:31 UTC (390.0 s)
            progress   63% Training CNN model on EURUSD, BTCUSD [1h, 4h] [epoch 8/12] (batch 12/110) [3/4]
            request    {"backend":"flex","data_dir":"data","end":null,"epochs":12,"models_dir":"models","start":null,"strategy":{"file":"strategies/multi_cnn.yaml"},"symbols":null,"timeframes":null}
            cancelled  during training
            stop       cancelled by user: interrupted (Ctrl-C)
            requested  2026-11-29 09:46:30 UTC
        "#]].assert_eq(&operation_text(&operation));
    }

    #[test]
    fn a_stopped_training_shows_its_checkpoint_and_its_resume_where_it_came_from() {
        let mut cancelled = cancelled();
        cancelled.checkpoint = Some(Checkpoint {
            path: "models/.checkpoints/op_training_20261129_094000_4e5f6a7b.ckpt".to_owned(),
            bytes: 1_234_567,
            epoch: 8,
            batch: 12,
            saved_at: Utc.with_ymd_and_hms(2026, 11, 29, 9, 46, 30).unwrap(),
        });
        expect![[r#"
            id         op_training_20261129_094000_4e5f6a7b
            kind       training
            status     cancelled
            created    2026-11-29 09:40:00 UTC
            started    2026-11-29 09:40:01 UTC
            finished   2026-11-29 09:46:31 UTC (390.0 s)
            progress   63% Training CNN model on EURUSD, BTCUSD [1h, 4h] [epoch 8/12] (batch 12/110) [3/4]
            request    {"backend":"flex","data_dir":"data","end":null,"epochs":12,"models_dir":"models","start":null,"strategy":{"file":"strategies/multi_cnn.yaml"},"symbols":null,"timeframes":null}
            cancelled  during training
            stop       cancelled by user
            requested  2026-11-29 09:46:30 UTC
            checkpoint epoch 8, batch 12 · 1.2 MB · models/.checkpoints/op_training_20261129_094000_4e5f6a7b.ckpt · saved 2026-11-29 09:46:30 UTC
        "#]].assert_eq(&operation_text(&cancelled));

        let mut resumed = running();
        resumed.params = serde_json::json!({
            "resumed_from": "op_training_20261129_094000_4e5f6a7b",
            "strategy": { "file": "strategies/multi_cnn.yaml" },
        });
        expect![[r#"
            id         op_training_20261129_094500_0a1b2c3d
            kind       training
            status     running
            created    2026-11-29 09:45:00 UTC
            started    2026-11-29 09:45:01 UTC
            finished   -
            progress   41% Training MLP model on EURUSD [1h] [epoch 5/12] (batch 96/110) [3/4] loss 0.9812 acc 51.2%
            request    {"resumed_from":"op_training_20261129_094000_4e5f6a7b","strategy":{"file":"strategies/multi_cnn.yaml"}}
            resumed    from op_training_20261129_094000_4e5f6a7b
        "#]].assert_eq(&operation_text(&resumed));
    }

    #[test]
    fn sizes_read_in_decimal_units_with_one_decimal() {
        let sizes = [
            0,
            999,
            1_000,
            1_234_567,
            999_949,
            999_950,
            5_000_000_000_000_000,
        ]
        .map(size_text);
        assert_eq!(
            sizes,
            [
                "0 B",
                "999 B",
                "1.0 kB",
                "1.2 MB",
                "999.9 kB",
                "1.0 MB",
                "5000.0 TB"
            ]
        );
    }

    #[test]
    fn a_running_training_asked_to_stop_says_it_waits_for_the_work() {
        expect![[r#"
            id         op_training_20261129_094000_4e5f6a7b
            kind       training
            status     running
            created    2026-11-29 09:40:00 UTC
            started    2026-11-29 09:40:01 UTC
            finished   -
            progress   63% Training CNN model on EURUSD, BTCUSD [1h, 4h] [epoch 8/12] (batch 12/110) [3/4]
            request    {"backend":"flex","data_dir":"data","end":null,"epochs":12,"models_dir":"models","start":null,"strategy":{"file":"strategies/multi_cnn.yaml"},"symbols":null,"timeframes":null}
            stop       cancelled by user (waiting for the work to stop)
            requested  2026-11-29 09:46:30 UTC
        "#]].assert_eq(&operation_text(&stopping()));
    }
}
