//! `cargo xtask bench host [FLAGS]`: what training on a training host costs
//! compared with training locally, measured side by side in one run.
//!
//! A training host (`host_service::serve`) runs in this process on a
//! loopback port, with its own models folder; the same data folder serves
//! both routes.
//!
//! - overhead: the same training through `TrainingAdapter`, locally and on
//!   the host (model fetched back and installed), alternating, several
//!   repeats; the median time of each, their ratio and the host's extra
//!   time in percent;
//! - progress: events per second that reach the client through the host
//!   when the trainer reports as often as it may (1 ms), beside the events
//!   the same training hands to a local callback;
//! - cancel latency: a training runs as a managed operation (the same
//!   `start_managed_operation` as `TrainingManager`), locally and on the
//!   host, alternating; at seeded random points of it, from the cancel
//!   request to the operation's status reading `cancelled` (the work has
//!   returned), and to the host's session reading `CANCELLED`, with the
//!   mean batch time for scale.
//!
//! Prints one JSON line, then a table; what it is doing goes to stderr.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a benchmark's output is its purpose; progress goes to stderr"
)]

use std::error::Error;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bench_support::{Flags, args_or_exit, quantile, verdict, workspace_root};
use host_client::{ConnectOptions, HostEndpoint, HostKind, RemoteUpdate, TrainingHostClient};
use local_trainer::LocalTrainer;
use orchestrator_core::{
    CancelReason, CancellationToken, HostServiceConfig, OperationKind, OperationStatus,
    OperationsService, ServiceOrchestrator,
};
use progress::{ProgressContext, ProgressRenderer, TrainingProgressRenderer};
use rpc::proto;
use strategy::StrategyConfig;
use tokio_util::task::TaskTracker;
use training_adapter::{
    Directories, TrainingAdapter, TrainingJob, TrainingOptions, TrainingRequest, TrainingSummary,
};

const USAGE: &str = "\
usage: cargo xtask bench host [FLAGS]

  --strategy PATH    the strategy trained [strategies/eurusd_mlp.yaml]
  --epochs E         epochs of the compared trainings (early stopping off) [100]
  --repeats N        local/host pairs, alternating [5]
  --cancels N        cancels at random points of a long training, per route [20]
  --seed S           the cancel points [42]";

/// Goals the figures are judged by (not measured): a cancel ends the
/// operation within one batch plus this slack.
const OVERHEAD_GOAL_PERCENT: f64 = 5.0;
const LOCAL_CANCEL_SLACK_MS: f64 = 20.0;
const HOST_CANCEL_SLACK_MS: f64 = 100.0;

#[derive(Debug)]
struct Args {
    strategy: PathBuf,
    epochs: usize,
    repeats: usize,
    cancels: usize,
    seed: u64,
}

impl Args {
    /// `Ok(None)` when help was asked for.
    fn parse(words: impl Iterator<Item = String>) -> Result<Option<Self>, String> {
        let mut args = Args {
            strategy: workspace_root().join("strategies/eurusd_mlp.yaml"),
            epochs: 100,
            repeats: 5,
            cancels: 20,
            seed: 42,
        };
        let mut flags = Flags::new(words);
        while let Some(flag) = flags.next_flag() {
            match flag.as_str() {
                "--help" | "-h" => return Ok(None),
                "--strategy" => args.strategy = PathBuf::from(flags.value(&flag)?),
                "--epochs" => args.epochs = flags.positive(&flag)?,
                "--repeats" => args.repeats = flags.positive(&flag)?,
                "--cancels" => args.cancels = flags.positive(&flag)?,
                "--seed" => args.seed = flags.number(&flag)?,
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
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start a runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", orchestrator_core::error_chain(&*err));
            ExitCode::FAILURE
        }
    }
}

/// Everything one run needs: the strategy, folders, and both routes.
struct Bench {
    strategy: StrategyConfig,
    local_models: tempfile::TempDir,
    url: String,
    local: TrainingAdapter,
    host: TrainingAdapter,
    client: TrainingHostClient,
}

impl Bench {
    fn request(
        &self,
        epochs: usize,
        progress_interval: Duration,
    ) -> Result<TrainingRequest, Box<dyn Error>> {
        let options = TrainingOptions {
            epochs: Some(u32::try_from(epochs)?),
            progress_interval,
            ..TrainingOptions::default()
        };
        Ok(TrainingRequest::new(
            self.strategy.clone(),
            None,
            None,
            options,
        )?)
    }

    /// This machine's folders; the host route reads the host's data.
    fn directories(&self) -> Directories {
        Directories {
            data: workspace_root().join("data"),
            models: self.local_models.path().to_owned(),
        }
    }
}

async fn run(args: &Args) -> Result<(), Box<dyn Error>> {
    let mut strategy = StrategyConfig::from_file(&args.strategy)?;
    // Every training runs the epochs asked for: early stopping would end the
    // compared runs at different points and the cancel rounds before the cancel.
    strategy.model.early_stopping_patience = None;
    let host_models = tempfile::tempdir()?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let (stop_host, host_stopped) = tokio::sync::oneshot::channel::<()>();
    let host = tokio::spawn(host_service::serve(
        listener,
        host_service::HostOptions {
            data_dir: workspace_root().join("data"),
            models_dir: host_models.path().to_owned(),
            max_concurrent: 1,
            auth_token: None,
            backend: host_service::Backend::Flex,
        },
        async {
            let _ = host_stopped.await;
        },
    ));
    let bench = Bench {
        strategy,
        local_models: tempfile::tempdir()?,
        local: TrainingAdapter::new(&HostServiceConfig::local("TRAINING")),
        host: TrainingAdapter::new(&HostServiceConfig::host("TRAINING", &url)?),
        client: TrainingHostClient::new(HostEndpoint::new(
            HostKind::Training,
            &url,
            ConnectOptions::default(),
        )),
        url,
    };

    let overhead = overhead(&bench, args).await?;
    let events = progress_rate(&bench, args).await?;
    let cancels = cancel_latency(&bench, args).await?;

    let _ = stop_host.send(());
    host.await??;
    report(args, &bench, &overhead, &events, &cancels);
    Ok(())
}

struct Overhead {
    local_s: Vec<f64>,
    host_s: Vec<f64>,
    /// Of one local training, for scale.
    batch_ms: f64,
}

async fn train(
    bench: &Bench,
    adapter: &TrainingAdapter,
    request: TrainingRequest,
) -> Result<TrainingSummary, Box<dyn Error>> {
    let operations = OperationsService::in_memory();
    let context = operations.create(OperationKind::Training, serde_json::json!({}), None)?;
    Ok(adapter
        .train(TrainingJob::new(request, bench.directories(), context))
        .await?)
}

async fn overhead(bench: &Bench, args: &Args) -> Result<Overhead, Box<dyn Error>> {
    let interval = TrainingOptions::default().progress_interval;
    // One of each first: the host warms up its data cache like the local route.
    eprintln!("warming up both routes");
    let warm = train(bench, &bench.local, bench.request(1, interval)?).await?;
    train(bench, &bench.host, bench.request(1, interval)?).await?;
    let batches_per_epoch = warm
        .samples
        .train
        .div_ceil(bench.strategy.model.batch_size.max(1));

    let mut result = Overhead {
        local_s: Vec::new(),
        host_s: Vec::new(),
        batch_ms: 0.0,
    };
    for repeat in 1..=args.repeats {
        // Alternate which goes first, so drift favours neither.
        for host_first in [repeat % 2 == 0, repeat % 2 != 0] {
            let adapter = if host_first {
                &bench.host
            } else {
                &bench.local
            };
            let started = Instant::now();
            let summary = train(bench, adapter, bench.request(args.epochs, interval)?).await?;
            let seconds = started.elapsed().as_secs_f64();
            if host_first {
                result.host_s.push(seconds);
            } else {
                let batches = summary.report.epochs_run * batches_per_epoch;
                result.batch_ms = summary.phase_seconds.train * 1000.0 / batches.max(1) as f64;
                result.local_s.push(seconds);
            }
            eprintln!(
                "repeat {repeat}/{}: {} {seconds:.3} s",
                args.repeats,
                if host_first { "host " } else { "local" }
            );
        }
    }
    Ok(result)
}

struct Events {
    local_per_s: f64,
    host_per_s: f64,
    host_events: usize,
}

async fn progress_rate(bench: &Bench, args: &Args) -> Result<Events, Box<dyn Error>> {
    const AS_OFTEN_AS_ALLOWED: Duration = Duration::from_millis(1);
    eprintln!("counting progress events");
    let request = bench.request(args.epochs, AS_OFTEN_AS_ALLOWED)?;
    let local_request = request.clone();
    let directories = bench.directories();
    let token = CancellationToken::new();
    let local_started = Instant::now();
    let local_events = tokio::task::spawn_blocking(move || {
        let mut count = 0_usize;
        LocalTrainer
            .run(&local_request, &directories, None, &token, &mut |_| {
                count += 1
            })
            .map(|_| count)
    })
    .await??;
    let local_s = local_started.elapsed().as_secs_f64();

    let mut host_events = 0_usize;
    let started = Instant::now();
    bench
        .client
        .train(&request, &CancellationToken::new(), |update| {
            host_events += usize::from(matches!(update, RemoteUpdate::Progress(_)));
        })
        .await?;
    let host_s = started.elapsed().as_secs_f64();
    Ok(Events {
        local_per_s: local_events as f64 / local_s,
        host_per_s: host_events as f64 / host_s,
        host_events,
    })
}

struct Cancels {
    /// From the cancel request to the operation reading `cancelled`.
    local_ms: Vec<f64>,
    host_ms: Vec<f64>,
    /// From the cancel request to the host's session reading `CANCELLED`.
    host_session_ms: Vec<f64>,
}

/// Runs trainings as managed operations, as `TrainingManager` does.
struct Trainings {
    operations: OperationsService,
    adapter: TrainingAdapter,
    config: HostServiceConfig,
    tasks: TaskTracker,
}

impl ServiceOrchestrator for Trainings {
    type Adapter = TrainingAdapter;
    fn operations(&self) -> &OperationsService {
        &self.operations
    }
    fn adapter(&self) -> &TrainingAdapter {
        &self.adapter
    }
    fn host_config(&self) -> &HostServiceConfig {
        &self.config
    }
    fn renderer(&self) -> Arc<dyn ProgressRenderer> {
        Arc::new(TrainingProgressRenderer)
    }
    fn tasks(&self) -> &TaskTracker {
        &self.tasks
    }
}

impl Trainings {
    fn new(adapter: &TrainingAdapter, config: HostServiceConfig) -> Self {
        Self {
            operations: OperationsService::in_memory(),
            adapter: adapter.clone(),
            config,
            tasks: TaskTracker::new(),
        }
    }

    /// Starts a training, waits until it is in its batches and a random
    /// while longer, cancels it, and returns the milliseconds from the
    /// request to the operation's end, which must be `cancelled`.
    async fn cancel_at_random(
        &self,
        request: TrainingRequest,
        directories: Directories,
        rng: &mut fastrand::Rng,
    ) -> Result<f64, Box<dyn Error>> {
        let adapter = self.adapter.clone();
        let id = self.start_managed_operation(
            OperationKind::Training,
            serde_json::json!({}),
            move |context| async move {
                adapter
                    .train(TrainingJob::new(request, directories, context))
                    .await
            },
        )?;
        let mut watch = self.operations.watch(&id)?;
        while let Some(snapshot) = watch.next().await {
            if let ProgressContext::Training(training) = snapshot.progress.context
                && training.batch.is_some()
            {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(rng.u64(0..300))).await;
        let requested = Instant::now();
        self.operations
            .cancel(&id, CancelReason::UserRequest(None))?;
        let mut last = None;
        while let Some(snapshot) = watch.next().await {
            last = Some(snapshot);
        }
        let elapsed_ms = requested.elapsed().as_secs_f64() * 1000.0;
        match last {
            Some(operation) if operation.status == OperationStatus::Cancelled => Ok(elapsed_ms),
            other => Err(format!("expected the training to end cancelled, got {other:?}").into()),
        }
    }
}

async fn cancel_latency(bench: &Bench, args: &Args) -> Result<Cancels, Box<dyn Error>> {
    // Long enough never to finish before the cancel.
    const EPOCHS: usize = 100_000;
    let mut rng = fastrand::Rng::with_seed(args.seed);
    let mut sessions =
        proto::training_host_client::TrainingHostClient::connect(bench.url.clone()).await?;
    let local = Trainings::new(&bench.local, HostServiceConfig::local("TRAINING"));
    let host = Trainings::new(
        &bench.host,
        HostServiceConfig::host("TRAINING", &bench.url)?,
    );
    let mut result = Cancels {
        local_ms: Vec::new(),
        host_ms: Vec::new(),
        host_session_ms: Vec::new(),
    };
    let interval = TrainingOptions::default().progress_interval;
    for round in 1..=args.cancels {
        // Alternate which goes first, so drift favours neither.
        for host_first in [round % 2 == 0, round % 2 != 0] {
            if !host_first {
                let ms = local
                    .cancel_at_random(
                        bench.request(EPOCHS, interval)?,
                        bench.directories(),
                        &mut rng,
                    )
                    .await?;
                result.local_ms.push(ms);
                continue;
            }
            let requested = Instant::now();
            let ms = host
                .cancel_at_random(
                    bench.request(EPOCHS, interval)?,
                    bench.directories(),
                    &mut rng,
                )
                .await?;
            let cancelled_at = requested.elapsed();
            result.host_ms.push(ms);
            // Newest first: this round's session.
            loop {
                let newest = sessions
                    .list_sessions(proto::ListSessionsRequest {})
                    .await?
                    .into_inner()
                    .sessions
                    .into_iter()
                    .next()
                    .ok_or("the host lists no session")?;
                if newest.status() == proto::SessionStatus::Cancelled {
                    break;
                }
                if requested.elapsed() > cancelled_at + Duration::from_secs(30) {
                    return Err(
                        format!("round {round}: the host session did not end: {newest:?}").into(),
                    );
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            // The session was polled from the operation's end on; its own
            // end is at most that much later.
            result
                .host_session_ms
                .push(ms + (requested.elapsed() - cancelled_at).as_secs_f64() * 1000.0);
        }
        eprintln!(
            "cancel {round}/{}: local cancelled after {:.1} ms, host after {:.1} ms (session {:.1} ms)",
            args.cancels,
            result.local_ms.last().copied().unwrap_or_default(),
            result.host_ms.last().copied().unwrap_or_default(),
            result.host_session_ms.last().copied().unwrap_or_default()
        );
    }
    Ok(result)
}

fn report(args: &Args, bench: &Bench, overhead: &Overhead, events: &Events, cancels: &Cancels) {
    let local = quantile(&overhead.local_s, 0.5);
    let host = quantile(&overhead.host_s, 0.5);
    let ratio = host / local;
    let extra_percent = (ratio - 1.0) * 100.0;
    let p50_p99 = |values: &[f64]| (quantile(values, 0.5), quantile(values, 0.99));
    let (local_cancel, host_cancel, host_session) = (
        p50_p99(&cancels.local_ms),
        p50_p99(&cancels.host_ms),
        p50_p99(&cancels.host_session_ms),
    );
    let local_goal_ms = overhead.batch_ms + LOCAL_CANCEL_SLACK_MS;
    let host_goal_ms = overhead.batch_ms + HOST_CANCEL_SLACK_MS;
    let json = serde_json::json!({
        "bench": "host",
        "strategy": bench.strategy.name,
        "epochs": args.epochs,
        "repeats": args.repeats,
        "local_median_s": local,
        "host_median_s": host,
        "host_local_ratio": ratio,
        "host_overhead_percent": extra_percent,
        "batch_ms": overhead.batch_ms,
        "progress_events_per_s_local": events.local_per_s,
        "progress_events_per_s_host": events.host_per_s,
        "cancels_per_route": cancels.local_ms.len(),
        "cancel_to_cancelled_local_ms_p50": local_cancel.0,
        "cancel_to_cancelled_local_ms_p99": local_cancel.1,
        "cancel_to_cancelled_host_ms_p50": host_cancel.0,
        "cancel_to_cancelled_host_ms_p99": host_cancel.1,
        "cancel_to_host_session_ms_p50": host_session.0,
        "cancel_to_host_session_ms_p99": host_session.1,
    });
    println!("{json}");
    println!();
    println!(
        "{} ({} epochs), host in-process on loopback at {}",
        bench.strategy.name, args.epochs, bench.url
    );
    println!("{:<44} {:>12} {:>12}", "", "local", "host");
    println!(
        "{:<44} {:>12.3} {:>12.3}",
        format!("training, median of {} (s)", args.repeats),
        local,
        host
    );
    println!(
        "{:<44} {:>25}",
        "host / local",
        format!(
            "{ratio:.3} ({extra_percent:+.1} %, goal < {OVERHEAD_GOAL_PERCENT} %: {})",
            verdict(extra_percent < OVERHEAD_GOAL_PERCENT)
        )
    );
    println!(
        "{:<44} {:>12.0} {:>12.0}",
        "progress events/s (1 ms interval)", events.local_per_s, events.host_per_s
    );
    println!(
        "{:<44} {:>12} {:>12}",
        "host events received", "", events.host_events
    );
    println!("{:<44} {:>12.2}", "mean batch (ms)", overhead.batch_ms);
    println!(
        "{:<44} {:>12.1} {:>12.1}",
        format!(
            "cancel -> status cancelled, p50 of {} (ms)",
            cancels.local_ms.len()
        ),
        local_cancel.0,
        host_cancel.0
    );
    println!(
        "{:<44} {:>12.1} {:>12.1}",
        "cancel -> status cancelled, p99 (ms)", local_cancel.1, host_cancel.1
    );
    println!(
        "{:<44} {:>12} {:>12.1}",
        "cancel -> host session CANCELLED, p99 (ms)", "", host_session.1
    );
    println!(
        "{:<44} {:>12} {:>12}",
        "p99 goal: one batch + 20 ms | + 100 ms",
        format!(
            "{local_goal_ms:.0} {}",
            verdict(local_cancel.1 <= local_goal_ms)
        ),
        format!(
            "{host_goal_ms:.0} {}",
            verdict(host_cancel.1.max(host_session.1) <= host_goal_ms)
        )
    );
}
