//! `trdr ops`: list, show, watch and cancel operations, on a server
//! (`--server`) or in the local embedded store.

use anyhow::Context as _;
use clap::{Args, Subcommand};
use orchestrator_core::{
    CancelReason, ListFilter, Operation, OperationId, OperationKind, OperationStatus,
    OperationsService,
};
use rpc::proto;

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
    Show { id: String },
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
}

pub(crate) async fn run(args: OpsArgs, global: &Global) -> anyhow::Result<u8> {
    let mut source = match &args.server {
        Some(url) => Source::Remote(Box::new(Remote::connect(url).await?)),
        None => Source::Local(embedded::operations()?),
    };
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
            let (operations, total, active) = source.list(filter).await?;
            if global.json {
                let listing = serde_json::json!({
                    "operations": operations,
                    "total": total,
                    "active": active,
                });
                println!("{listing}");
            } else {
                print_table(&operations, total, active);
            }
            Ok(0)
        }
        OpsCommand::Show { id } => {
            let operation = source.get(&id).await?;
            if global.json {
                println!("{}", serde_json::to_string(&operation)?);
            } else {
                print_operation(&operation);
            }
            Ok(0)
        }
        OpsCommand::Watch { id } => {
            let id = parse_id(&id)?;
            let mut display = OperationDisplay::new(OutputMode::detect(global.json));
            let finished = match &mut source {
                Source::Local(operations) => {
                    let mut snapshots = LocalSnapshots::new(operations, &id)?;
                    follow_snapshots(&mut snapshots, &id, &mut display, OnInterrupt::Detach).await?
                }
                Source::Remote(remote) => {
                    let mut snapshots = remote.watch(id.as_str()).await?;
                    follow_snapshots(&mut snapshots, &id, &mut display, OnInterrupt::Detach).await?
                }
            };
            report_outcome(&finished, global.json, |_| {
                print_operation(&finished);
                Ok(())
            })
        }
        OpsCommand::Cancel { id, reason } => {
            let operation = source.cancel(&id, reason).await?;
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
    }
}

/// Where operations are read: a server, or the embedded store.
#[derive(Debug)]
enum Source {
    Local(OperationsService),
    Remote(Box<Remote>),
}

impl Source {
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

fn print_table(operations: &[Operation], total: u64, active: u64) {
    if !operations.is_empty() {
        println!(
            "{:<40} {:<10} {:<10} {:<20} PROGRESS",
            "ID", "KIND", "STATUS", "CREATED (UTC)"
        );
    }
    for operation in operations {
        println!(
            "{:<40} {:<10} {:<10} {:<20} {}",
            // Padding needs `str`: these types' Display ignores widths.
            operation.id.as_str(),
            operation.kind.as_str(),
            status_cell(operation),
            operation.created_at.format("%Y-%m-%d %H:%M:%S").to_string(),
            progress_cell(operation)
        );
    }
    println!(
        "{} of {total} operation{} shown, {active} active",
        operations.len(),
        if total == 1 { "" } else { "s" }
    );
}

/// The status, and `stopping` while a requested stop is awaited.
fn status_cell(operation: &Operation) -> &'static str {
    if operation.cancel_requested() && !operation.status.is_terminal() {
        "stopping"
    } else {
        operation.status.as_str()
    }
}

fn progress_cell(operation: &Operation) -> String {
    let message: String = operation.progress.message.chars().take(60).collect();
    format!("{:>3.0}% {message}", operation.progress.percentage)
        .trim_end()
        .to_owned()
}

fn print_operation(operation: &Operation) {
    let time = |at: Option<chrono::DateTime<chrono::Utc>>| {
        at.map_or_else(
            || "-".to_owned(),
            |at| at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        )
    };
    println!("id         {}", operation.id);
    println!("kind       {}", operation.kind);
    println!("status     {}", operation.status);
    println!("created    {}", time(Some(operation.created_at)));
    println!("started    {}", time(operation.started_at));
    match (operation.started_at, operation.finished_at) {
        (Some(start), Some(end)) => println!(
            "finished   {} ({:.1} s)",
            time(Some(end)),
            (end - start).as_seconds_f64()
        ),
        (_, end) => println!("finished   {}", time(end)),
    }
    println!("progress   {}", progress_cell(operation));
    println!("request    {}", operation.params);
    if let Some(result) = &operation.result {
        let pretty = serde_json::to_string_pretty(result).unwrap_or_else(|_| result.to_string());
        println!("result     {}", pretty.replace('\n', "\n           "));
    }
    if let Some(error) = &operation.error {
        println!("error      {error}");
    }
    if let Some(reason) = &operation.cancel_reason {
        let outcome = match operation.status {
            _ if !operation.cancel_requested() => "",
            OperationStatus::Completed => " (too late: the work had already finished)",
            status if status.is_terminal() => "",
            _ => " (waiting for the work to stop)",
        };
        println!("stop       {reason}{outcome}");
        if let Some(at) = operation.cancel_requested_at {
            println!("requested  {}", time(Some(at)));
        }
    }
}
