//! `trdr serve` training on a pool of three `trdr host-service` processes
//! (`USE_TRAINING_HOST_SERVICE`, `TRAINING_HOST_SERVICE_URLS`), each taking
//! one training at a time: trainings spread over the hosts, those beyond
//! their capacity wait `pending` saying why, a host killed mid-training
//! fails its training as lost and later trainings run on the other hosts.
//! Not `slow_`: the long trainings are the small MLP's, stopped as soon as
//! the scenario has seen them run (under a second in all here).

use host_client::{ConnectOptions, OperationsClient};
use orchestrator_core::{Operation, OperationStatus};
use rpc::proto;
use rpc::proto::start_training_operation_request::Strategy;

use super::*;

/// The server's token, which the test's client sends.
const TOKEN: &str = "pool-test-token";

/// A `trdr host-service` taking one training at a time, training from the
/// sample data into `{state}/{name}/models`.
fn host(state: &Path, name: &str) -> Listening {
    let dir = state.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let mut command = trdr(&dir);
    command
        .env_remove("TRDR_AUTH_TOKEN")
        .args([
            "host-service",
            "--listen",
            "127.0.0.1:0",
            "--max-concurrent",
            "1",
        ])
        .arg("--data-dir")
        .arg(sample_data())
        .arg("--models-dir")
        .arg(dir.join("models"));
    Listening::start(command)
}

/// `trdr serve` sending its trainings, six at once at most, to the pool of
/// `hosts`.
fn server(state: &Path, hosts: &[&Listening]) -> Listening {
    let urls: Vec<&str> = hosts.iter().map(|host| host.url.as_str()).collect();
    let mut command = trdr(state);
    command
        .env_remove("TRDR_AUTH_TOKEN")
        .env("USE_TRAINING_HOST_SERVICE", "true")
        .env("TRAINING_HOST_SERVICE_URLS", urls.join(","))
        .env("TRDR_STRATEGIES_DIR", repo().join("strategies"))
        .args(["serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(state.join("operations.db"))
        .arg("--data-dir")
        .arg(sample_data())
        .arg("--models-dir")
        .arg(state.join("models"))
        .args(["--max-concurrent-trainings", "6", "--auth-token", TOKEN]);
    Listening::start(command)
}

/// The MLP example without early stopping, so that its epochs set its
/// length: 10 000 of them run until cancelled.
fn long_training() -> proto::StartTrainingOperationRequest {
    let yaml = example_without_early_stopping("eurusd_mlp.yaml");
    proto::StartTrainingOperationRequest {
        strategy: Some(Strategy::StrategyText(proto::StrategyText {
            yaml,
            origin: "eurusd_mlp_long.yaml".to_owned(),
        })),
        epochs: Some(10_000),
        ..Default::default()
    }
}

/// The MLP example for two epochs.
fn short_training() -> proto::StartTrainingOperationRequest {
    proto::StartTrainingOperationRequest {
        strategy: Some(Strategy::StrategyName("eurusd_mlp.yaml".to_owned())),
        epochs: Some(2),
        ..Default::default()
    }
}

async fn submit(
    client: &mut OperationsClient,
    request: proto::StartTrainingOperationRequest,
) -> String {
    client.start_training(request).await.unwrap().id.to_string()
}

/// Follows `id` until `wanted` holds of it (failing after [`HANG`], or if
/// it ends first), and returns that snapshot.
async fn until(
    client: &OperationsClient,
    id: &str,
    what: &str,
    wanted: impl Fn(&Operation) -> bool,
) -> Operation {
    let mut watch = client.clone().watch(id).await.unwrap();
    let follow = async {
        let mut last = None;
        while let Some(operation) = watch.next().await.unwrap() {
            if wanted(&operation) {
                return operation;
            }
            last = Some(operation);
        }
        panic!("{id} ended, never {what}: {last:#?}");
    };
    tokio::time::timeout(HANG, follow)
        .await
        .unwrap_or_else(|_| panic!("{id} not {what} after {HANG:?}"))
}

async fn until_running(client: &OperationsClient, id: &str) -> String {
    let running = until(client, id, "running", |op| {
        op.status == OperationStatus::Running
    })
    .await;
    running
        .runs_on
        .expect("a running training says where it runs")
}

async fn until_waiting(client: &OperationsClient, id: &str, why: &str) -> Operation {
    let waiting = until(client, id, why, |op| {
        op.status != OperationStatus::Pending || op.progress.message == why
    })
    .await;
    assert_eq!(waiting.status, OperationStatus::Pending, "{waiting:#?}");
    waiting
}

async fn until_ended(client: &OperationsClient, id: &str) -> Operation {
    until(client, id, "ended", |op| op.status.is_terminal()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trainings_spread_over_the_pool_wait_for_a_free_host_and_avoid_a_killed_one() {
    let state = tempfile::tempdir().unwrap();
    let hosts = [
        host(state.path(), "host-a"),
        host(state.path(), "host-b"),
        host(state.path(), "host-c"),
    ];
    let server = server(state.path(), &hosts.each_ref());
    let options = ConnectOptions {
        auth_token: rpc::Secret::new(TOKEN),
        ..ConnectOptions::operations_server()
    };
    let mut client = OperationsClient::connect(&server.url, options)
        .await
        .unwrap();

    // Three long trainings: one on each host.
    let mut long = Vec::new();
    for _ in 0..3 {
        long.push(submit(&mut client, long_training()).await);
    }
    let mut on = Vec::new();
    for id in &long {
        on.push(until_running(&client, id).await);
    }
    let mut used = on.clone();
    used.sort();
    let mut urls: Vec<String> = hosts.iter().map(|host| host.url.clone()).collect();
    urls.sort();
    assert_eq!(used, urls, "one training on each host");

    // A fourth waits for a free host.
    let fourth = submit(&mut client, short_training()).await;
    until_waiting(
        &client,
        &fourth,
        "waiting for a free training host: 3 hosts, 3 busy, 0 down",
    )
    .await;

    // The host of the first is killed: that training fails as lost, and
    // the host is set aside.
    let killed = hosts.iter().find(|host| host.url == on[0]).unwrap();
    killed.signal("-KILL");
    let lost = until_ended(&client, &long[0]).await;
    assert_eq!(lost.status, OperationStatus::Failed, "{lost:#?}");
    let error = lost.error.unwrap_or_default();
    assert!(
        error.starts_with(&format!("training host lost: {} stopped answering", on[0])),
        "{error}"
    );
    let one_down = "waiting for a free training host: 3 hosts, 2 busy, 1 down";
    until_waiting(&client, &fourth, one_down).await;

    // Submitted after the kill: a fifth waits too, and a sixth, cancelled
    // while it waits, ends cancelled without having run anywhere.
    let fifth = submit(&mut client, short_training()).await;
    until_waiting(&client, &fifth, one_down).await;
    let sixth = submit(&mut client, short_training()).await;
    until_waiting(&client, &sixth, one_down).await;
    client.cancel(&sixth, None).await.unwrap();
    let cancelled = until_ended(&client, &sixth).await;
    assert_eq!(
        cancelled.status,
        OperationStatus::Cancelled,
        "{cancelled:#?}"
    );
    assert_eq!(
        cancelled.error.as_deref(),
        Some("during waiting for a free training host")
    );
    assert_eq!(cancelled.runs_on, None);

    // The other two long ones make way; the waiting ones run on their
    // hosts, never on the killed one, and complete.
    for id in &long[1..] {
        client.cancel(id, None).await.unwrap();
        let stopped = until_ended(&client, id).await;
        assert_eq!(stopped.status, OperationStatus::Cancelled, "{stopped:#?}");
    }
    for id in [&fourth, &fifth] {
        let done = until_ended(&client, id).await;
        assert_eq!(done.status, OperationStatus::Completed, "{done:#?}");
        let ran_on = done.runs_on.unwrap();
        assert!(
            on[1..].contains(&ran_on),
            "{id} ran on {ran_on}, not {:?}",
            &on[1..]
        );
    }

    // `trdr ops show` says where a training ran.
    let show = trdr(state.path())
        .env("TRDR_SERVER", &server.url)
        .env("TRDR_AUTH_TOKEN", TOKEN)
        .args(["ops", "show", &fifth])
        .output()
        .unwrap();
    assert_exit(&show, 0);
    let shown = text(&show.stdout);
    let ran_on = client.get(&fifth).await.unwrap().runs_on.unwrap();
    assert!(
        shown.contains(&format!("\nruns on    {ran_on}\n")),
        "{shown}"
    );
}
