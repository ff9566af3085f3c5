//! `cargo xtask bench core`: the costs that decide whether cancellation and
//! progress can sit in a training loop, and how fast operations are recorded.
//!
//! Prints one JSON line (for scripts and the history of notes), then a table.

// A benchmark's output is its purpose.
#![allow(clippy::print_stdout)]

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bench_support::round;
use orchestrator_core::store::SqliteStore;
use orchestrator_core::{CancellationToken, OperationKind, OperationsService};
use progress::{ProgressContext, ProgressState, Step, TrainingContext, TrainingProgressRenderer};

const TOKEN_CHECKS: u64 = 200_000_000;
const PROGRESS_UPDATES: u32 = 200_000;
const OPERATIONS: u32 = 5_000;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");

    let is_cancelled_ns = time_is_cancelled();
    let check_ns = time_check();
    let progress: Vec<(usize, ProgressFigures)> = [0, 1, 100]
        .into_iter()
        .map(|watchers| (watchers, runtime.block_on(progress_updates(watchers))))
        .collect();
    let in_memory = runtime.block_on(operations_per_second(OperationsService::in_memory()));
    let dir = tempfile::tempdir().expect("temporary directory");
    let sqlite_store = SqliteStore::open(dir.path().join("ops.db")).expect("sqlite store");
    let sqlite = runtime.block_on(operations_per_second(OperationsService::new(sqlite_store)));

    let json = serde_json::json!({
        "bench": "core",
        "is_cancelled_ns": round(is_cancelled_ns, 3),
        "check_ns": round(check_ns, 3),
        "progress_updates_per_s": progress.iter().map(|(watchers, figures)| serde_json::json!({
            "watchers": watchers,
            "updates_per_s": figures.updates_per_s.round(),
            "snapshots_delivered_per_s": figures.delivered_per_s.round(),
        })).collect::<Vec<_>>(),
        "operations_per_s": { "in_memory": in_memory.round(), "sqlite": sqlite.round() },
    });
    println!("{json}");
    println!();
    println!("{:<44} {:>16}", "measure", "value");
    println!(
        "{:<44} {:>13.3} ns",
        "CancellationToken::is_cancelled()", is_cancelled_ns
    );
    println!(
        "{:<44} {:>13.3} ns",
        "CancellationToken::check(stage)", check_ns
    );
    for (watchers, figures) in &progress {
        println!(
            "{:<44} {:>14.0}/s",
            format!("progress updates, {watchers} watchers"),
            figures.updates_per_s
        );
        if *watchers > 0 {
            println!(
                "{:<44} {:>14.0}/s",
                format!("  snapshots delivered to {watchers} watchers"),
                figures.delivered_per_s
            );
        }
    }
    println!(
        "{:<44} {:>14.0}/s",
        "operations created+completed, in memory", in_memory
    );
    println!(
        "{:<44} {:>14.0}/s",
        "operations created+completed, SQLite (WAL)", sqlite
    );
}

/// Nanoseconds per call, on a token that is never cancelled (the hot case).
fn time_is_cancelled() -> f64 {
    let token = black_box(CancellationToken::new());
    let started = Instant::now();
    let mut seen = 0u64;
    for _ in 0..TOKEN_CHECKS {
        seen += u64::from(black_box(&token).is_cancelled());
    }
    let elapsed = started.elapsed();
    assert_eq!(black_box(seen), 0);
    elapsed.as_nanos() as f64 / TOKEN_CHECKS as f64
}

fn time_check() -> f64 {
    let token = black_box(CancellationToken::new());
    let started = Instant::now();
    for _ in 0..TOKEN_CHECKS {
        black_box(black_box(&token).check("batch")).expect("never cancelled");
    }
    started.elapsed().as_nanos() as f64 / TOKEN_CHECKS as f64
}

#[derive(Debug)]
struct ProgressFigures {
    updates_per_s: f64,
    delivered_per_s: f64,
}

/// A training-like producer on a blocking thread reporting as fast as it
/// can, while `watchers` tasks consume snapshots.
async fn progress_updates(watchers: usize) -> ProgressFigures {
    let operations = OperationsService::in_memory();
    let context = operations
        .create(
            OperationKind::Training,
            serde_json::json!({}),
            Some(Arc::new(TrainingProgressRenderer)),
        )
        .expect("create");
    operations.start(&context.id).expect("start");
    let delivered = Arc::new(AtomicU64::new(0));
    let consumers: Vec<_> = (0..watchers)
        .map(|_| {
            let mut watch = operations.watch(&context.id).expect("watch");
            let delivered = Arc::clone(&delivered);
            tokio::spawn(async move {
                while watch.next().await.is_some() {
                    delivered.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    // Let every watcher take its first snapshot before timing.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let baseline = delivered.load(Ordering::Relaxed);

    let reporter = context.progress.clone();
    let producer = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        for batch in 1..=PROGRESS_UPDATES {
            reporter.report(ProgressState {
                percentage: 100.0 * f64::from(batch) / f64::from(PROGRESS_UPDATES),
                step: Some(Step::new(3, 4)),
                context: ProgressContext::Training(TrainingContext {
                    model_type: Some("MLP".into()),
                    symbols: vec!["EURUSD".into()],
                    timeframes: vec!["1h".into()],
                    epoch: Some(Step::new(1, 1)),
                    batch: Some(Step::new(batch, PROGRESS_UPDATES)),
                    train_loss: Some(0.5),
                    ..TrainingContext::default()
                }),
                ..ProgressState::default()
            });
        }
        started.elapsed()
    });
    let elapsed = producer.await.expect("producer");
    let delivered_during = delivered.load(Ordering::Relaxed) - baseline;
    operations
        .complete(&context.id, serde_json::json!({}))
        .expect("complete");
    for consumer in consumers {
        consumer.await.expect("watcher");
    }
    let seconds = elapsed.as_secs_f64();
    ProgressFigures {
        updates_per_s: f64::from(PROGRESS_UPDATES) / seconds,
        delivered_per_s: delivered_during as f64 / seconds,
    }
}

/// Operations created, started and completed per second, one after another.
async fn operations_per_second(operations: OperationsService) -> f64 {
    let started = Instant::now();
    for i in 0..OPERATIONS {
        let context = operations
            .create(OperationKind::DataLoad, serde_json::json!({ "i": i }), None)
            .expect("create");
        operations.start(&context.id).expect("start");
        operations
            .complete(&context.id, serde_json::json!({ "bars": i }))
            .expect("complete");
    }
    f64::from(OPERATIONS) / started.elapsed().as_secs_f64()
}
