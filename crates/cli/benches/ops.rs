//! `cargo xtask bench ops`: the operations API of a real `trdr serve` on
//! loopback: `ListOperations` latency over 10 000 stored operations, and
//! what 100 concurrent watchers of one training cost it, gRPC
//! (`WatchOperation`) and HTTP (the dashboard's Server-Sent Events).
//!
//! Prints one JSON line, then a table. Trainings without watchers, with
//! gRPC ones and with SSE ones alternate in one run, so all see the same
//! machine state.

// A benchmark's output is its purpose.
#![allow(clippy::print_stdout)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use bench_support::{quantile, round, workspace_root};
use chrono::Utc;
use host_client::{ConnectOptions, OperationsClient};
use http_body_util::BodyExt as _;
use orchestrator_core::store::{OperationStore, SqliteStore};
use orchestrator_core::{Operation, OperationKind, OperationStatus};
use rpc::proto;

const STORED_OPERATIONS: usize = 10_000;
const LIST_CALLS: usize = 1_000;
const WATCHERS: usize = 100;
/// Rounds of trainings (without watchers, with gRPC ones, with SSE ones),
/// alternating.
const ROUNDS: usize = 4;
const EPOCHS: u32 = 150;

fn main() {
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let dir = tempfile::tempdir().expect("temporary directory");
    let db = dir.path().join("operations.db");
    let seeding = Instant::now();
    seed(&db);
    let seeding = seeding.elapsed();
    let strategy = long_strategy(dir.path());
    let server = Server::start(&db, &dir.path().join("models"));
    let mut rows = serde_json::Map::new();
    let mut table: Vec<(String, String)> = vec![(
        format!("seed {STORED_OPERATIONS} operations (SQLite)"),
        format!("{:>10.2} s", seeding.as_secs_f64()),
    )];

    runtime.block_on(async {
        let mut client = connect(&server.url).await;
        for (name, limit) in [("list_20", 20), ("list_100", 100)] {
            let latencies = millis(&list_latencies(&mut client, limit, LIST_CALLS).await);
            let (p50, p99) = (quantile(&latencies, 0.5), quantile(&latencies, 0.99));
            rows.insert(format!("{name}_p50_ms"), round(p50, 3).into());
            rows.insert(format!("{name}_p99_ms"), round(p99, 3).into());
            table.push((
                format!("ListOperations limit {limit} of {STORED_OPERATIONS} ({LIST_CALLS} calls)"),
                format!("p50 {p50:>7.2} ms   p99 {p99:>7.2} ms"),
            ));
        }
        let everything = millis(&list_latencies(&mut client, 0, 20).await);
        let p50 = quantile(&everything, 0.5);
        rows.insert("list_all_p50_ms".into(), round(p50, 3).into());
        table.push((
            format!("ListOperations all {STORED_OPERATIONS} (20 calls)"),
            format!("p50 {p50:>7.2} ms"),
        ));

        let mut alone = Vec::new();
        let mut grpc = Vec::new();
        let mut sse = Vec::new();
        let (mut grpc_delivered, mut sse_delivered) = (0_u64, 0_u64);
        // Warm-up: the first training pays for page faults and caches.
        training(&server, &strategy, Watchers::None).await;
        for _ in 0..ROUNDS {
            alone.push(training(&server, &strategy, Watchers::None).await.0);
            let (seconds, snapshots) = training(&server, &strategy, Watchers::Grpc).await;
            grpc.push(seconds);
            grpc_delivered += snapshots;
            let (seconds, events) = training(&server, &strategy, Watchers::Sse).await;
            sse.push(seconds);
            sse_delivered += events;
        }
        let mean = |runs: &[f64]| runs.iter().sum::<f64>() / runs.len() as f64;
        rows.insert(
            "training_s_without_watchers".into(),
            round(mean(&alone), 3).into(),
        );
        table.push((
            format!("training eurusd_mlp {EPOCHS} epochs, mean of {ROUNDS}"),
            format!("{:>7.3} s alone", mean(&alone)),
        ));
        for (name, runs, delivered, unit) in [
            ("grpc", &grpc, grpc_delivered, "snapshots"),
            ("sse", &sse, sse_delivered, "events"),
        ] {
            let ratio = mean(runs) / mean(&alone);
            let per_second = delivered as f64 / runs.iter().sum::<f64>();
            rows.insert(
                format!("training_s_with_{name}_watchers"),
                round(mean(runs), 3).into(),
            );
            rows.insert(format!("{name}_watcher_cost_ratio"), round(ratio, 3).into());
            rows.insert(format!("{name}_{unit}_per_s"), per_second.round().into());
            let label = if name == "grpc" { "gRPC" } else { "SSE" };
            table.push((
                format!("{WATCHERS} {label} watchers: training time"),
                format!(
                    "{:>7.3} s, ratio {ratio:>6.3} ({:+.1}%)",
                    mean(runs),
                    (ratio - 1.0) * 100.0
                ),
            ));
            table.push((
                format!("{WATCHERS} {label} watchers: {unit} delivered"),
                format!("{per_second:>7.0} /s (all watchers together)"),
            ));
        }
    });
    drop(server);

    println!("{}", serde_json::Value::Object(rows));
    println!();
    let width = table.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
    for (name, value) in table {
        println!("{name:<width$}  {value}");
    }
}

/// Fills a fresh store with finished operations, a second apart, before
/// the server opens it (far faster than running 10 000 loads).
fn seed(db: &Path) {
    let store = SqliteStore::open(db).expect("operations store");
    let now = Utc::now();
    for index in 0..STORED_OPERATIONS {
        let kind = if index % 4 == 0 {
            OperationKind::Training
        } else {
            OperationKind::DataLoad
        };
        let created = now - chrono::Duration::seconds(index as i64 + 60);
        let mut operation = Operation::new(
            kind,
            serde_json::json!({ "symbol": "EURUSD", "timeframe": "1h", "index": index }),
            created,
        );
        operation.status = OperationStatus::Completed;
        operation.started_at = Some(created);
        operation.finished_at = Some(created + chrono::Duration::seconds(1));
        // No result: results travel typed by kind, and a stand-in that is
        // not its kind's summary is refused (INTERNAL) when listed.
        store.insert(&operation).expect("insert operation");
    }
}

/// eurusd_mlp without early stopping, so every run trains all [`EPOCHS`]
/// and lasts long enough to compare.
fn long_strategy(dir: &Path) -> std::path::PathBuf {
    let example = workspace_root().join("strategies/eurusd_mlp.yaml");
    let text = std::fs::read_to_string(example).expect("the example strategy");
    let early = "early_stopping:\n      enabled: true";
    assert!(
        text.contains(early),
        "eurusd_mlp.yaml no longer has {early:?}"
    );
    let path = dir.join("eurusd_mlp_long.yaml");
    std::fs::write(
        &path,
        text.replace(early, "early_stopping:\n      enabled: false"),
    )
    .expect("write the strategy");
    path
}

async fn connect(url: &str) -> OperationsClient {
    OperationsClient::connect(url, ConnectOptions::operations_server())
        .await
        .expect("connect to trdr serve")
}

async fn list_latencies(client: &mut OperationsClient, limit: u32, calls: usize) -> Vec<Duration> {
    let mut latencies = Vec::with_capacity(calls);
    for _ in 0..calls {
        let started = Instant::now();
        let reply = client
            .list(proto::ListOperationsRequest {
                limit,
                ..Default::default()
            })
            .await
            .expect("ListOperations");
        latencies.push(started.elapsed());
        assert_eq!(reply.total as usize, STORED_OPERATIONS);
    }
    latencies
}

/// Who follows a training in the benchmark: [`WATCHERS`] of one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Watchers {
    None,
    /// `WatchOperation` streams.
    Grpc,
    /// The dashboard's event streams (`/api/operations/{id}/events`).
    Sse,
}

/// Trains eurusd_mlp with `watchers` following it, each on its own
/// connection as separate terminals or browser tabs would be. Returns the
/// training's own duration (started → finished, as the server recorded
/// it) and the snapshots (or SSE events) all watchers received.
async fn training(server: &Server, strategy: &Path, watchers: Watchers) -> (f64, u64) {
    let url = &server.url;
    let count = if watchers == Watchers::Grpc {
        WATCHERS
    } else {
        0
    };
    let mut clients = Vec::with_capacity(count);
    for _ in 0..count {
        clients.push(connect(url).await);
    }
    let mut submitter = connect(url).await;
    let operation = submitter
        .start_training(proto::StartTrainingOperationRequest {
            strategy: Some(
                proto::start_training_operation_request::Strategy::StrategyText(
                    proto::StrategyText {
                        yaml: std::fs::read_to_string(strategy).expect("read the strategy"),
                        origin: strategy.to_string_lossy().into(),
                    },
                ),
            ),
            epochs: Some(EPOCHS),
            ..Default::default()
        })
        .await
        .expect("StartTraining");
    let id = operation.id.to_string();
    let mut streams = Vec::with_capacity(WATCHERS);
    if watchers == Watchers::Sse {
        for _ in 0..WATCHERS {
            let events = format!("{}/api/operations/{id}/events", server.dashboard);
            streams.push(tokio::spawn(sse_watcher(events)));
        }
    }
    for mut client in clients {
        let id = id.clone();
        streams.push(tokio::spawn(async move {
            let mut stream = client.watch(&id).await.expect("WatchOperation");
            let mut received = 0_u64;
            while stream.next().await.expect("snapshot").is_some() {
                received += 1;
            }
            received
        }));
    }
    let mut own = submitter.watch(&id).await.expect("WatchOperation");
    let mut last = None;
    while let Some(snapshot) = own.next().await.expect("snapshot") {
        last = Some(snapshot);
    }
    let mut delivered = 0;
    for stream in streams {
        delivered += stream.await.expect("watcher task");
    }
    let finished = last.expect("a terminal snapshot");
    assert_eq!(
        finished.status,
        OperationStatus::Completed,
        "{:?}",
        finished.error
    );
    let seconds = (finished.finished_at.expect("finished") - finished.started_at.expect("started"))
        .as_seconds_f64();
    (seconds, delivered)
}

/// Follows one event stream to its `end` on a connection of its own;
/// returns how many events it received.
async fn sse_watcher(url: String) -> u64 {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<String>();
    let request = http::Request::get(&url)
        .body(String::new())
        .expect("an event stream request");
    let response = client.request(request).await.expect("the event stream");
    assert_eq!(response.status(), 200, "{url}");
    let mut body = response.into_body();
    let mut text = String::new();
    let mut received = 0;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.expect("an event stream frame").into_data() else {
            continue;
        };
        text.push_str(std::str::from_utf8(&data).expect("UTF-8 events"));
        while let Some(end) = text.find("\n\n") {
            let event: String = text.drain(..end + 2).collect();
            if event.starts_with("event: ") {
                received += 1;
            }
            if event.starts_with("event: end\n") {
                return received;
            }
        }
    }
    panic!("{url} closed before its end event");
}

fn millis(durations: &[Duration]) -> Vec<f64> {
    durations
        .iter()
        .map(|duration| duration.as_secs_f64() * 1000.0)
        .collect()
}

/// The `trdr serve` under test, built by cargo beside this benchmark.
struct Server {
    child: Child,
    url: String,
    /// `http://ADDRESS` of its dashboard.
    dashboard: String,
    _stdout: BufReader<ChildStdout>,
}

impl Server {
    fn start(db: &Path, models: &Path) -> Server {
        let data = workspace_root().join("data");
        let mut child = Command::new(env!("CARGO_BIN_EXE_trdr"))
            // Its clients send no token: the token check's cost is not what
            // this measures.
            .args(["serve", "--no-auth", "--listen", "127.0.0.1:0"])
            .args(["--http", "127.0.0.1:0", "--db"])
            .arg(db)
            .arg("--data-dir")
            .arg(data)
            .arg("--models-dir")
            .arg(models)
            .env("RUST_LOG", "error")
            .env_remove("TRDR_AUTH_TOKEN")
            .env_remove("USE_TRAINING_HOST_SERVICE")
            .stdout(Stdio::piped())
            .spawn()
            .expect("start trdr serve");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("read trdr serve");
        let address = line
            .trim_end()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        line.clear();
        stdout.read_line(&mut line).expect("read trdr serve");
        let dashboard = line
            .trim_end()
            .strip_prefix("dashboard on ")
            .unwrap_or_else(|| panic!("unexpected second line {line:?}"))
            .to_owned();
        Server {
            child,
            url: format!("http://{address}"),
            dashboard,
            _stdout: stdout,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
