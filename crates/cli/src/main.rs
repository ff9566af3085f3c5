//! `trdr`: train neural-network trading models on market data, with
//! structured progress and cancellation that reaches the work.

// The binary is the one place that prints.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "the CLI's output is its purpose"
)]

mod args;
mod data;
mod display;
mod embedded;
mod exit;
mod follow;
mod host_service;
mod listen;
mod ops;
mod outcome;
mod remote;
mod serve;
mod slurm_job;
mod token;
mod train;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Train neural-network trading models on OHLCV market data.
///
/// Every long job runs as an operation with live, structured progress;
/// Ctrl-C cancels it and stops the work, then exits with code 130.
#[derive(Debug, Parser)]
#[command(name = "trdr", version, propagate_version = true)]
struct Cli {
    /// Directory of the local data store, one `{SYMBOL}_{TIMEFRAME}.csv` per
    /// series [default: $TRDR_DATA_DIR, else ./data]
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,

    /// Print machine-readable JSON instead of text (progress as NDJSON events).
    #[arg(long, global = true)]
    json: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Train the model a strategy file describes, with live progress.
    Train(train::TrainArgs),
    /// Load, inspect, list and import market data.
    #[command(subcommand)]
    Data(data::DataCommand),
    // No doc here: it would replace the long `--help` of HostServiceArgs.
    HostService(host_service::HostServiceArgs),
    // No doc here either: ServeArgs's long `--help` says how clients are
    // checked and what the server opens.
    Serve(serve::ServeArgs),
    /// List, show, watch, cancel and resume operations.
    Ops(ops::OpsArgs),
    #[command(hide = true)]
    SlurmJob(slurm_job::SlurmJobArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            return fail(&anyhow::Error::new(error).context("cannot start the async runtime"));
        }
    };
    let global = Global {
        data_dir: market_data::LocalStore::resolve_dir(cli.data_dir),
        json: cli.json,
    };
    let outcome = runtime.block_on(async {
        match cli.command {
            Command::Train(args) => train::run(args, &global).await,
            Command::Data(command) => data::run(command, &global).await,
            Command::HostService(args) => host_service::run(args, &global).await,
            Command::Serve(args) => serve::run(args, &global).await,
            Command::Ops(args) => ops::run(args, &global).await,
            Command::SlurmJob(args) => slurm_job::run(args).await,
        }
    });
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err(error) => fail(&error),
    }
}

/// Options every command shares.
#[derive(Debug)]
pub(crate) struct Global {
    pub(crate) data_dir: PathBuf,
    pub(crate) json: bool,
}

fn fail(error: &anyhow::Error) -> ExitCode {
    eprintln!("error: {error:#}");
    ExitCode::from(exit::EXIT_FAILURE as u8)
}

/// Logs go to stderr, filtered by `RUST_LOG` (default `info`).
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}
