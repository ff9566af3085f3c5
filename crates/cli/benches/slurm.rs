//! `cargo xtask bench slurm [FLAGS]`: the latencies of trainings run as
//! Slurm jobs, against the one-node cluster on this machine (`eval
//! "$(cargo xtask slurm up)"` first) and a real `trdr serve --executor
//! slurm` on loopback, with a state, models and jobs folder of its own in a
//! temporary folder.
//!
//! One training at a time (the LSTM example, early stopping off, 200
//! epochs, sent as text), each followed by a `WatchOperation` stream of its
//! own, as `trdr train --server` follows one, and cancelled once a few of
//! its batch reports have arrived; one warm-up training first, not counted.
//!
//! - submit → running: from the `StartTraining` call to the first snapshot
//!   that reads `running` (the executor starts the operation when
//!   `scontrol show job` says RUNNING or the job's first event arrives),
//!   to the operation's `started_at` (serve's clock), and to the first
//!   snapshot with the job's progress;
//! - progress delay: from the node's event to the client receiving it. The
//!   job stamps each progress state's `updated_at` with the node's clock
//!   as it writes the line; serve's reporter stamps it again on arrival.
//!   After each training the bench reads the job's output file and matches
//!   every progress snapshot the client received to the event it shows
//!   (the same step and items; of equal ones, the last written before
//!   serve's stamp): node → client, split at serve's stamp into node →
//!   serve (the executor reads the file every 100 ms) and serve → client
//!   (a watch stream sends at most one snapshot per 100 ms, the latest).
//!   Events a later one replaced before the client got them (the latest
//!   value wins, by design) were never shown and are not counted. Node,
//!   serve and client share this machine's clock.
//! - cancel: from the `CancelOperation` call to the terminal `cancelled`
//!   snapshot (which comes only once Slurm says the job has ended); on the
//!   way, to the job's last write to its output (its `cancelled` event: the
//!   file's modification time), to `squeue` no longer listing the job as
//!   pending, running or completing (asked every 20 ms), and to the
//!   operation's `finished_at` (serve's clock).
//!
//! Prints one JSON line, then a table; what it is doing goes to stderr.
//! Other jobs on the cluster (a test run) queue with these and show in the
//! submit figures.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a benchmark's output is its purpose; progress goes to stderr"
)]

use std::collections::HashSet;
use std::error::Error;
use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitCode, Stdio};
use std::time::{Duration, Instant, SystemTime};

use bench_support::{Flags, args_or_exit, quantile, round, workspace_root};
use host_client::{ConnectOptions, OperationsClient};
use orchestrator_core::{Operation, OperationStatus};
use progress::{ProgressContext, ProgressState};
use rpc::proto;
use training_adapter::slurm::JobEvent;

const USAGE: &str = "\
usage: cargo xtask bench slurm [FLAGS]

  --trainings N   trainings, one at a time, each cancelled [20]
  --batches K     batch reports a training shows before it is cancelled [5]

Needs the one-node Slurm cluster of this machine and its SLURM_CONF:
run `eval \"$(cargo xtask slurm up)\"` first.";

/// Epochs asked for: far more than a training lives before its cancel.
const EPOCHS: u32 = 200;
/// How often `squeue` is asked whether a cancelled job is gone.
const SQUEUE_EVERY: Duration = Duration::from_millis(20);
/// How long a cancelled job may take to leave `squeue` before the bench
/// gives up (the executor's grace is 10 s, then Slurm's `KillWait`).
const SQUEUE_LIMIT: Duration = Duration::from_secs(120);
/// The job states in which `squeue` lists a job by default.
const LISTED: &[&str] = &["PENDING", "CONFIGURING", "RUNNING", "COMPLETING"];

#[derive(Debug)]
struct Args {
    trainings: usize,
    batches: usize,
}

impl Args {
    /// `Ok(None)` when help was asked for.
    fn parse(words: impl Iterator<Item = String>) -> Result<Option<Self>, String> {
        let mut args = Args {
            trainings: 20,
            batches: 5,
        };
        let mut flags = Flags::new(words);
        while let Some(flag) = flags.next_flag() {
            match flag.as_str() {
                "--help" | "-h" => return Ok(None),
                "--trainings" => args.trainings = flags.positive(&flag)?,
                "--batches" => args.batches = flags.positive(&flag)?,
                _ => return Err(format!("unknown flag `{flag}`")),
            }
        }
        Ok(Some(args))
    }
}

fn main() -> ExitCode {
    let args = match args_or_exit(Args::parse(std::env::args().skip(1)), USAGE) {
        Ok(args) => args,
        Err(code) => return code,
    };
    let Some(conf) = std::env::var_os("SLURM_CONF").filter(|conf| !conf.is_empty()) else {
        eprintln!(
            "error: SLURM_CONF is not set: this benchmark runs trainings on the one-node \
             Slurm cluster of this machine; run `eval \"$(cargo xtask slurm up)\"` first"
        );
        return ExitCode::from(2);
    };
    if !Path::new(&conf).is_file() {
        eprintln!(
            "error: SLURM_CONF names {}, which is not a file; run `eval \"$(cargo xtask slurm up)\"`",
            Path::new(&conf).display()
        );
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start a runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&args, conf)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", orchestrator_core::error_chain(&*err));
            ExitCode::FAILURE
        }
    }
}

type BenchResult<T> = Result<T, Box<dyn Error>>;

async fn run(args: &Args, conf: OsString) -> BenchResult<()> {
    let dir = tempfile::tempdir()?;
    let jobs = dir.path().join("jobs");
    let server = Server::start(dir.path(), &jobs)?;
    let mut bench = Bench {
        strategy: long_strategy()?,
        submitter: connect(&server.url).await?,
        watcher: connect(&server.url).await?,
        jobs,
        seen: HashSet::new(),
        conf,
        batches: args.batches,
        job: None,
    };
    eprintln!("warm-up training (not counted)");
    bench.training_or_scancel().await?;
    let mut samples = Vec::with_capacity(args.trainings);
    for index in 1..=args.trainings {
        let sample = bench.training_or_scancel().await?;
        eprintln!(
            "training {index}/{}: running after {:.0} ms, {} progress snapshots, \
             cancelled {:.0} ms after the request",
            args.trainings,
            sample.submit_to_running,
            sample.progress.len(),
            sample.cancel_to_cancelled
        );
        samples.push(sample);
    }
    drop(server);
    report(args, &samples);
    Ok(())
}

/// The LSTM example without early stopping, so [`EPOCHS`] sets its length.
fn long_strategy() -> BenchResult<String> {
    let example = std::fs::read_to_string(workspace_root().join("strategies/btcusd_lstm.yaml"))?;
    let text = example.replacen("enabled: true", "enabled: false", 1);
    if text == example {
        return Err("btcusd_lstm.yaml no longer has `early_stopping: enabled: true`".into());
    }
    Ok(text)
}

async fn connect(url: &str) -> BenchResult<OperationsClient> {
    Ok(OperationsClient::connect(url, ConnectOptions::operations_server()).await?)
}

/// What one training measured; durations in milliseconds.
#[derive(Debug)]
struct Sample {
    submit_to_running: f64,
    /// To the operation's `started_at`, by serve's clock.
    submit_to_started: f64,
    submit_to_progress: f64,
    progress: Vec<Delay>,
    /// Progress snapshots whose event was not found in the job's output.
    unmatched: usize,
    cancel_to_cancelled: f64,
    /// To the operation's `finished_at`, by serve's clock.
    cancel_to_finished: f64,
    cancel_to_last_event: f64,
    cancel_to_squeue_gone: f64,
}

/// One progress snapshot's way from the node to the client, in ms.
#[derive(Debug, Clone, Copy)]
struct Delay {
    node_to_serve: f64,
    serve_to_client: f64,
    node_to_client: f64,
}

/// A progress snapshot as the client received it.
#[derive(Debug)]
struct Shown {
    key: Key,
    /// Serve's stamp: when its reporter published the state.
    served: SystemTime,
    received: SystemTime,
}

/// What tells a job's progress events apart: the pipeline step and the
/// items done in it (batches, in training).
type Key = (u32, u64);

fn key(state: &ProgressState) -> Option<Key> {
    Some((state.step?.current, state.items?.processed))
}

/// Whether `state` is a batch report of the training loop.
fn is_batch(state: &ProgressState) -> bool {
    matches!(&state.context, ProgressContext::Training(context) if context.batch.is_some())
}

/// The cancel request: when it was sent, and the `squeue` watch it started.
struct Cancel {
    at: Instant,
    wall: SystemTime,
    gone: tokio::task::JoinHandle<Result<Instant, String>>,
}

struct Bench {
    strategy: String,
    submitter: OperationsClient,
    watcher: OperationsClient,
    jobs: PathBuf,
    /// The job folders of earlier trainings.
    seen: HashSet<PathBuf>,
    conf: OsString,
    batches: usize,
    /// The Slurm job of the training under way, once known.
    job: Option<String>,
}

impl Bench {
    /// [`Bench::training`]; if it fails, its job is cancelled so that it
    /// does not train on after the bench.
    async fn training_or_scancel(&mut self) -> BenchResult<Sample> {
        let sample = self.training().await;
        if let (Err(_), Some(job)) = (&sample, self.job.take()) {
            let _ = Command::new("scancel")
                .arg(&job)
                .env("SLURM_CONF", &self.conf)
                .status();
        }
        sample
    }

    /// Submits one training, follows it to its first batch reports, cancels
    /// it and follows it to its end.
    async fn training(&mut self) -> BenchResult<Sample> {
        let request = proto::StartTrainingOperationRequest {
            strategy: Some(
                proto::start_training_operation_request::Strategy::StrategyText(
                    proto::StrategyText {
                        yaml: self.strategy.clone(),
                        origin: "btcusd_lstm.yaml (early stopping off)".into(),
                    },
                ),
            ),
            epochs: Some(EPOCHS),
            ..Default::default()
        };
        let (submitted, submitted_wall) = (Instant::now(), SystemTime::now());
        let operation = self.submitter.start_training(request).await?;
        let id = operation.id.to_string();
        let mut watch = self.watcher.watch(&id).await?;
        let mut running = None;
        let mut first_progress = None;
        let mut shown = Vec::new();
        let mut batches = 0;
        let mut last_stamp = None;
        let mut first = true;
        let mut cancel: Option<Cancel> = None;
        let (finished, ended) = loop {
            let Some(snapshot) = watch.next().await? else {
                return Err(format!("the watch of {id} ended before the operation did").into());
            };
            let (now, wall) = (Instant::now(), SystemTime::now());
            if snapshot.status.is_terminal() {
                break (snapshot, now);
            }
            if snapshot.status == OperationStatus::Running && running.is_none() {
                running = Some(now - submitted);
            }
            if self.job.is_none() && snapshot.runs_on.is_some() {
                self.job = Some(slurm_job(&snapshot)?);
            }
            let stamp = snapshot.progress.updated_at;
            let fresh = stamp.is_some() && stamp != last_stamp;
            last_stamp = stamp;
            // The first snapshot is the state when the watch began, not a
            // delivery: the training is still queued then.
            if std::mem::take(&mut first) || !fresh {
                continue;
            }
            let (Some(key), Some(served)) = (key(&snapshot.progress), stamp) else {
                continue;
            };
            shown.push(Shown {
                key,
                served,
                received: wall,
            });
            first_progress.get_or_insert(now - submitted);
            batches += usize::from(is_batch(&snapshot.progress));
            if cancel.is_none() && batches >= self.batches {
                let job = self
                    .job
                    .clone()
                    .ok_or_else(|| format!("{id} shows progress but no Slurm job"))?;
                let (at, wall) = (Instant::now(), SystemTime::now());
                let gone = tokio::spawn(gone_from_squeue(job, self.conf.clone()));
                self.submitter
                    .cancel(&id, Some("cargo xtask bench slurm".to_owned()))
                    .await?;
                cancel = Some(Cancel { at, wall, gone });
            }
        };
        if finished.status != OperationStatus::Cancelled {
            return Err(format!(
                "{id} ended {:?} instead of cancelled: {}",
                finished.status,
                finished.error.as_deref().unwrap_or("no error")
            )
            .into());
        }
        let cancel = cancel.ok_or_else(|| format!("{id} ended before it was cancelled"))?;
        let gone = cancel.gone.await??;
        self.job = None;
        let output = self.job_output()?;
        let events = node_events(&output)?;
        let last_write = std::fs::metadata(&output)?.modified()?;
        let (progress, unmatched) = delays(&shown, &events);
        let (running, first_progress) = match (running, first_progress) {
            (Some(running), Some(first_progress)) => (running, first_progress),
            _ => return Err(format!("{id} showed no progress while running").into()),
        };
        let (Some(started_at), Some(finished_at)) = (finished.started_at, finished.finished_at)
        else {
            return Err(format!("{id} ended without its start and end times").into());
        };
        Ok(Sample {
            submit_to_running: millis(running),
            submit_to_started: signed_millis(started_at.into(), submitted_wall),
            submit_to_progress: millis(first_progress),
            progress,
            unmatched,
            cancel_to_cancelled: millis(ended - cancel.at),
            cancel_to_finished: signed_millis(finished_at.into(), cancel.wall),
            cancel_to_last_event: signed_millis(last_write, cancel.wall),
            cancel_to_squeue_gone: millis(gone - cancel.at),
        })
    }

    /// The output file of the job just run: the one new folder in the jobs
    /// folder (a cancelled job's folder is kept).
    fn job_output(&mut self) -> BenchResult<PathBuf> {
        let mut new = Vec::new();
        for entry in std::fs::read_dir(&self.jobs)? {
            let path = entry?.path();
            if self.seen.insert(path.clone()) {
                new.push(path);
            }
        }
        match &new[..] {
            [folder] => Ok(folder.join("stdout.log")),
            _ => Err(format!(
                "expected one new job folder in {}, found {new:?}",
                self.jobs.display()
            )
            .into()),
        }
    }
}

/// The Slurm job id of the operation's `runs_on` (`Slurm job 12 on vm`).
fn slurm_job(operation: &Operation) -> BenchResult<String> {
    let runs_on = operation.runs_on.as_deref().unwrap_or_default();
    runs_on
        .strip_prefix("Slurm job ")
        .and_then(|rest| rest.split_whitespace().next())
        .map(str::to_owned)
        .ok_or_else(|| format!("{} does not run as a Slurm job: {runs_on:?}", operation.id).into())
}

/// When `squeue` stops listing `job` as pending, running or completing.
async fn gone_from_squeue(job: String, conf: OsString) -> Result<Instant, String> {
    let started = Instant::now();
    loop {
        let output = tokio::process::Command::new("squeue")
            .args(["--noheader", "--format=%T", "--jobs", &job])
            .env("SLURM_CONF", &conf)
            .output()
            .await
            .map_err(|error| format!("cannot run squeue: {error}"))?;
        let now = Instant::now();
        let text = String::from_utf8_lossy(&output.stdout);
        // A job slurmctld has forgotten is an error ("Invalid job id").
        let listed =
            output.status.success() && text.lines().any(|state| LISTED.contains(&state.trim()));
        if !listed {
            return Ok(now);
        }
        if started.elapsed() > SQUEUE_LIMIT {
            return Err(format!(
                "squeue still lists job {job} after {SQUEUE_LIMIT:?}"
            ));
        }
        tokio::time::sleep(SQUEUE_EVERY).await;
    }
}

/// The job's progress events with the node's time of each, in the order
/// written.
fn node_events(output: &Path) -> BenchResult<Vec<(Key, SystemTime)>> {
    let text = std::fs::read_to_string(output)?;
    let mut events = Vec::new();
    let mut last = None;
    for line in text.lines().filter(|line| !line.trim().is_empty()) {
        let event: JobEvent = serde_json::from_str(line)
            .map_err(|error| format!("{}: not an event: {error}", output.display()))?;
        if let JobEvent::Progress { state } = &event
            && let Some(key) = key(state)
        {
            let at = state.updated_at.ok_or_else(|| {
                format!(
                    "{}: a progress event without the node's time (a trdr older than this bench?)",
                    output.display()
                )
            })?;
            events.push((key, at));
        }
        last = Some(event);
    }
    match last {
        Some(JobEvent::Cancelled { .. }) => Ok(events),
        other => Err(format!(
            "{}: the job's last event is {other:?}, not `cancelled`",
            output.display()
        )
        .into()),
    }
}

/// Each shown snapshot's way from the node, and how many could not be
/// matched to a node event.
fn delays(shown: &[Shown], events: &[(Key, SystemTime)]) -> (Vec<Delay>, usize) {
    let mut delays = Vec::with_capacity(shown.len());
    let mut unmatched = 0;
    for snapshot in shown {
        // Of equal events, the one serve published: the last written
        // before its stamp.
        let written = events
            .iter()
            .rev()
            .find(|(key, at)| *key == snapshot.key && *at <= snapshot.served);
        match written {
            Some(&(_, at)) => delays.push(Delay {
                node_to_serve: signed_millis(snapshot.served, at),
                serve_to_client: signed_millis(snapshot.received, snapshot.served),
                node_to_client: signed_millis(snapshot.received, at),
            }),
            None => unmatched += 1,
        }
    }
    (delays, unmatched)
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// `later - earlier` in ms, negative if it is not later.
fn signed_millis(later: SystemTime, earlier: SystemTime) -> f64 {
    match later.duration_since(earlier) {
        Ok(duration) => millis(duration),
        Err(error) => -millis(error.duration()),
    }
}

/// The JSON line and the table.
fn report(args: &Args, samples: &[Sample]) {
    let all = |pick: fn(&Sample) -> f64| samples.iter().map(pick).collect::<Vec<_>>();
    let progress: Vec<Delay> = samples
        .iter()
        .flat_map(|sample| sample.progress.iter().copied())
        .collect();
    let of_progress = |pick: fn(&Delay) -> f64| progress.iter().map(pick).collect::<Vec<_>>();
    let unmatched: usize = samples.iter().map(|sample| sample.unmatched).sum();
    let n = samples.len();
    let p = progress.len();
    let rows: Vec<(&str, String, Vec<f64>)> = vec![
        (
            "submit_to_running",
            format!("submit -> `running` snapshot ({n} trainings)"),
            all(|s| s.submit_to_running),
        ),
        (
            "submit_to_started",
            "  submit -> serve starts it (its started_at)".to_owned(),
            all(|s| s.submit_to_started),
        ),
        (
            "submit_to_progress",
            format!("submit -> first progress shown ({n})"),
            all(|s| s.submit_to_progress),
        ),
        (
            "progress_node_to_client",
            format!("progress: node event -> client ({p} snapshots)"),
            of_progress(|d| d.node_to_client),
        ),
        (
            "progress_node_to_serve",
            "  node -> serve (output read every 100 ms)".to_owned(),
            of_progress(|d| d.node_to_serve),
        ),
        (
            "progress_serve_to_client",
            "  serve -> client (a snapshot per 100 ms at most)".to_owned(),
            of_progress(|d| d.serve_to_client),
        ),
        (
            "cancel_to_cancelled",
            format!("cancel -> `cancelled` snapshot ({n})"),
            all(|s| s.cancel_to_cancelled),
        ),
        (
            "cancel_to_job_last_event",
            "  cancel -> the job wrote `cancelled` (file time)".to_owned(),
            all(|s| s.cancel_to_last_event),
        ),
        (
            "cancel_to_squeue_gone",
            "  cancel -> gone from squeue (polled 20 ms)".to_owned(),
            all(|s| s.cancel_to_squeue_gone),
        ),
        (
            "cancel_to_finished",
            "  cancel -> serve ends it (its finished_at)".to_owned(),
            all(|s| s.cancel_to_finished),
        ),
    ];
    let mut json = serde_json::Map::new();
    json.insert("trainings".into(), n.into());
    json.insert("progress_snapshots".into(), p.into());
    json.insert("progress_unmatched".into(), unmatched.into());
    let mut table = Vec::with_capacity(rows.len());
    for (name, label, values) in rows {
        let (p50, p99) = (quantile(&values, 0.5), quantile(&values, 0.99));
        let max = values.iter().copied().fold(f64::NAN, f64::max);
        for (suffix, value) in [("p50", p50), ("p99", p99), ("max", max)] {
            json.insert(format!("{name}_{suffix}_ms"), round(value, 1).into());
        }
        table.push((label, format!("{p50:>9.1} {p99:>9.1} {max:>9.1}")));
    }
    println!("{}", serde_json::Value::Object(json));
    println!();
    println!(
        "btcusd_lstm on the local Slurm, trdr serve --executor slurm on loopback \
         (cargo xtask bench slurm --trainings {} --batches {})",
        args.trainings, args.batches
    );
    let width = table
        .iter()
        .map(|(label, _)| label.len())
        .max()
        .unwrap_or(0);
    println!("{:<width$} {:>9} {:>9} {:>9}", "ms", "p50", "p99", "max");
    for (label, values) in table {
        println!("{label:<width$} {values}");
    }
    if unmatched > 0 {
        println!("({unmatched} progress snapshots matched no event of their job: left out)");
    }
}

/// The `trdr serve --executor slurm` under test, built by cargo beside
/// this benchmark; its store and models under `dir`, its job folders in
/// `jobs`.
struct Server {
    child: Child,
    url: String,
    _stdout: BufReader<ChildStdout>,
}

impl Server {
    fn start(dir: &Path, jobs: &Path) -> BenchResult<Server> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_trdr"))
            // Its clients send no token: the token check is not measured.
            .args(["serve", "--no-auth", "--listen", "127.0.0.1:0"])
            .args(["--executor", "slurm", "--slurm-jobs-dir"])
            .arg(jobs)
            .arg("--db")
            .arg(dir.join("operations.db"))
            .arg("--data-dir")
            .arg(workspace_root().join("data"))
            .arg("--models-dir")
            .arg(dir.join("models"))
            // The jobs' log level too.
            .env("RUST_LOG", "error")
            .env_remove("TRDR_AUTH_TOKEN")
            .env_remove("USE_TRAINING_HOST_SERVICE")
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|error| format!("cannot start trdr serve: {error}"))?;
        let mut stdout = BufReader::new(child.stdout.take().ok_or("no stdout of trdr serve")?);
        let mut line = String::new();
        stdout.read_line(&mut line)?;
        let Some(address) = line.trim_end().strip_prefix("listening on ") else {
            let _ = child.kill();
            return Err(format!("trdr serve said {line:?} instead of where it listens").into());
        };
        Ok(Server {
            url: format!("http://{address}"),
            child,
            _stdout: stdout,
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
