//! `trdr serve` end to end: a real server process driven by `trdr train
//! --server`, `trdr data load --server` and `trdr ops` from other processes.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use super::*;

/// Starts `trdr serve` on a free loopback port, serving the store
/// `{state}/operations.db`, which the local `trdr ops` of [`client`] also
/// reads, and the example strategies (unless `extra` says otherwise). Its
/// token is the one it keeps in `state`, unless `extra` says otherwise.
pub(super) fn start_server(state: &Path, models: &Path, extra: &[&str]) -> Listening {
    let mut command = trdr(state);
    command
        .env_remove("TRDR_AUTH_TOKEN")
        .env("TRDR_STRATEGIES_DIR", repo().join("strategies"))
        .args(["serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(state.join("operations.db"))
        .arg("--data-dir")
        .arg(sample_data())
        .arg("--models-dir")
        .arg(models)
        .args(extra);
    Listening::start(command)
}

/// A `trdr` client of `server` (through `TRDR_SERVER`) sharing its store,
/// and so its token file: the server's user.
pub(super) fn client(state: &Path, server: &Listening) -> Command {
    let mut command = trdr(state);
    command
        .env("TRDR_SERVER", &server.url)
        .env_remove("TRDR_AUTH_TOKEN");
    command
}

/// `trdr ops list --json` of the server.
fn listing(state: &Path, server: &Listening, extra: &[&str]) -> serde_json::Value {
    let output = client(state, server)
        .args(["ops", "list", "--json"])
        .args(extra)
        .output()
        .unwrap();
    assert_exit(&output, 0);
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The status of operation `id`, as the server says.
fn status_of(state: &Path, server: &Listening, id: &str) -> String {
    let output = client(state, server)
        .args(["ops", "show", id, "--json"])
        .output()
        .unwrap();
    assert_exit(&output, 0);
    let operation: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    operation["status"].as_str().unwrap().to_owned()
}

/// Waits (up to a minute) until `id` has `status`.
#[track_caller]
fn wait_for_status(state: &Path, server: &Listening, id: &str, status: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = status_of(state, server, id);
        if now == status {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{id} stayed {now}, never {status}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A long training (many LSTM epochs) submitted with `--server --json`;
/// returns the client process and the operation id of its first event.
fn submit_long_training(state: &Path, server: &Listening) -> (Child, String) {
    let mut child = client(state, server)
        .arg("train")
        .arg(repo().join("strategies/btcusd_lstm.yaml"))
        .args(["--epochs", "500", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    assert!(
        stdout.read_line(&mut line).unwrap() > 0,
        "no event from trdr train"
    );
    let event: serde_json::Value = serde_json::from_str(&line).unwrap();
    let id = event["id"].as_str().unwrap().to_owned();
    // Drain the events in the background so the client never blocks on a full pipe.
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    (child, id)
}

#[track_caller]
pub(super) fn assert_child_exit(child: &mut Child, code: i32) {
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        pipe.read_to_string(&mut stderr).unwrap();
    }
    assert_eq!(status.code(), Some(code), "stderr:\n{stderr}");
}

pub(super) fn operation_id_in(stdout: &str) -> String {
    stdout
        .lines()
        .find_map(|line| line.trim().strip_prefix("operation "))
        .map(|id| id.trim().to_owned())
        .unwrap_or_else(|| panic!("no operation line in:\n{stdout}"))
}

#[test]
fn a_training_submitted_to_the_server_completes_and_every_client_sees_it() {
    let state = tempfile::tempdir().unwrap();
    let models = tempfile::tempdir().unwrap();
    let server = start_server(state.path(), models.path(), &[]);

    // Submitted from another directory: the path travels absolute.
    let output = client(state.path(), &server)
        .current_dir(repo())
        .args(["train", "strategies/eurusd_mlp.yaml", "--epochs", "1"])
        .output()
        .unwrap();
    assert_exit(&output, 0);
    let stdout = text(&output.stdout);
    assert!(stdout.contains("Trained MLP on EURUSD"), "{stdout}");
    let id = operation_id_in(&stdout);

    let show = client(state.path(), &server)
        .args(["ops", "show", &id])
        .output()
        .unwrap();
    assert_exit(&show, 0);
    let shown = text(&show.stdout);
    assert!(shown.contains("status     completed"), "{shown}");
    assert!(shown.contains("\"model_path\""), "{shown}");
    assert!(shown.contains("eurusd_mlp.yaml"), "{shown}");

    // A second process attaches and sees the same terminal state.
    let watch = client(state.path(), &server)
        .args(["ops", "watch", &id, "--json"])
        .output()
        .unwrap();
    assert_exit(&watch, 0);
    let events = json_events(&watch);
    assert_eq!(events.len(), 1, "a finished operation is sent once");
    assert_eq!(events[0]["status"], "completed");
    assert_eq!(events[0]["id"], id.as_str());

    // The embedded store is the server's database: the local view agrees.
    let local = trdr(state.path())
        .env_remove("TRDR_SERVER")
        .args(["ops", "show", &id, "--json"])
        .output()
        .unwrap();
    assert_exit(&local, 0);
    let operation: serde_json::Value = serde_json::from_slice(&local.stdout).unwrap();
    assert_eq!(operation["status"], "completed");
    assert_eq!(operation["result"]["report"]["epochs_run"], 1);

    // Its curve: one point per finished epoch, from the server and the store alike.
    for remote in [true, false] {
        let mut command = if remote {
            client(state.path(), &server)
        } else {
            let mut local = trdr(state.path());
            local.env_remove("TRDR_SERVER");
            local
        };
        let metrics = command
            .args(["ops", "show", &id, "--metrics", "--json"])
            .output()
            .unwrap();
        assert_exit(&metrics, 0);
        let epochs: serde_json::Value = serde_json::from_slice(&metrics.stdout).unwrap();
        let epochs = epochs.as_array().unwrap();
        assert_eq!(epochs.len(), 1, "{epochs:?}");
        assert_eq!(epochs[0]["epoch"], 1);
        assert!(epochs[0]["val_loss"].is_f64(), "{epochs:?}");
    }

    let list = listing(state.path(), &server, &[]);
    assert_eq!(list["total"], 1);
    assert_eq!(list["active"], 0);
}

#[test]
fn a_data_load_through_the_server_prints_the_same_summary() {
    let state = tempfile::tempdir().unwrap();
    let models = tempfile::tempdir().unwrap();
    let server = start_server(state.path(), models.path(), &[]);
    let output = client(state.path(), &server)
        .args(["data", "load", "EURUSD", "1h"])
        .output()
        .unwrap();
    assert_exit(&output, 0);
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains("Loaded EURUSD 1h: 6225 bars, 2017-01-01 22:00 to 2017-12-29 21:00 UTC"),
        "{stdout}"
    );
    let table = client(state.path(), &server)
        .args(["ops", "list"])
        .output()
        .unwrap();
    assert_exit(&table, 0);
    let table = text(&table.stdout);
    assert!(table.contains("data_load  completed"), "{table}");
    assert!(
        table.contains("1 of 1 operation shown, 0 active"),
        "{table}"
    );
}

#[test]
fn a_cancel_from_a_third_process_ends_the_training_and_its_watchers() {
    let state = tempfile::tempdir().unwrap();
    let models = tempfile::tempdir().unwrap();
    let mut server = start_server(state.path(), models.path(), &[]);
    let (mut submitter, id) = submit_long_training(state.path(), &server);
    wait_for_status(state.path(), &server, &id, "running");
    let mut watcher = client(state.path(), &server)
        .args(["ops", "watch", &id])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    let cancel = client(state.path(), &server)
        .args(["ops", "cancel", &id, "--reason", "enough"])
        .output()
        .unwrap();
    assert_exit(&cancel, 0);
    // A request: the training stops at its next check, and only then is
    // the operation `cancelled`.
    assert!(
        text(&cancel.stdout).contains(&format!("Asked {id} to stop")),
        "{}",
        text(&cancel.stdout)
    );

    assert_child_exit(&mut submitter, 130);
    assert_child_exit(&mut watcher, 130);
    let show = client(state.path(), &server)
        .args(["ops", "show", &id])
        .output()
        .unwrap();
    let shown = text(&show.stdout);
    assert!(shown.contains("status     cancelled"), "{shown}");
    assert!(
        shown.contains("stop       cancelled by user: enough"),
        "{shown}"
    );

    // Cancelling it again is a clear error; the record does not change.
    let again = client(state.path(), &server)
        .args(["ops", "cancel", &id])
        .output()
        .unwrap();
    assert_exit(&again, 1);
    assert!(
        text(&again.stderr).contains("is already cancelled"),
        "{}",
        text(&again.stderr)
    );

    // SIGTERM with nothing running: a clean exit.
    server.signal("-TERM");
    assert_eq!(server.wait().code(), Some(0));
}

#[test]
fn sigterm_cancels_running_work_and_the_server_exits_cleanly() {
    let state = tempfile::tempdir().unwrap();
    let models = tempfile::tempdir().unwrap();
    let mut server = start_server(state.path(), models.path(), &[]);
    let (mut submitter, id) = submit_long_training(state.path(), &server);
    wait_for_status(state.path(), &server, &id, "running");

    server.signal("-TERM");
    assert_eq!(server.wait().code(), Some(0));
    // The client saw the training end cancelled, not a broken stream.
    assert_child_exit(&mut submitter, 130);
    let local = trdr(state.path())
        .env_remove("TRDR_SERVER")
        .args(["ops", "show", &id, "--json"])
        .output()
        .unwrap();
    assert_exit(&local, 0);
    let operation: serde_json::Value = serde_json::from_slice(&local.stdout).unwrap();
    assert_eq!(operation["status"], "cancelled");
    assert_eq!(operation["cancel_reason"]["kind"], "shutdown");
}

#[test]
fn a_restarted_server_keeps_the_history_and_fails_the_interrupted_training() {
    let state = tempfile::tempdir().unwrap();
    let models = tempfile::tempdir().unwrap();
    let mut server = start_server(state.path(), models.path(), &[]);
    let load = client(state.path(), &server)
        .args(["data", "load", "IBM", "1d"])
        .output()
        .unwrap();
    assert_exit(&load, 0);
    let (mut submitter, id) = submit_long_training(state.path(), &server);
    wait_for_status(state.path(), &server, &id, "running");

    server.signal("-KILL");
    server.wait();
    // The client notices the server went away; it does not hang.
    assert_child_exit(&mut submitter, 1);

    let server = start_server(state.path(), models.path(), &[]);
    let list = listing(state.path(), &server, &[]);
    assert_eq!(list["total"], 2, "{list}");
    let operations = list["operations"].as_array().unwrap();
    assert_eq!(operations[0]["id"], id.as_str());
    assert_eq!(operations[0]["status"], "failed");
    assert!(
        operations[0]["error"]
            .as_str()
            .unwrap()
            .starts_with("interrupted"),
        "{list}"
    );
    assert_eq!(operations[1]["kind"], "data_load");
    assert_eq!(operations[1]["status"], "completed");
}

#[test]
fn trainings_beyond_the_limit_wait_pending_then_run_in_order() {
    let state = tempfile::tempdir().unwrap();
    let models = tempfile::tempdir().unwrap();
    let server = start_server(
        state.path(),
        models.path(),
        &["--max-concurrent-trainings", "1"],
    );
    let (mut first, first_id) = submit_long_training(state.path(), &server);
    wait_for_status(state.path(), &server, &first_id, "running");
    let (mut second, second_id) = submit_long_training(state.path(), &server);
    let (mut third, third_id) = submit_long_training(state.path(), &server);
    assert_eq!(status_of(state.path(), &server, &second_id), "pending");
    assert_eq!(status_of(state.path(), &server, &third_id), "pending");
    let pending = listing(state.path(), &server, &["--status", "pending"]);
    assert_eq!(pending["total"], 2, "{pending}");
    assert_eq!(pending["active"], 3, "{pending}");

    let cancel = |id: &str| {
        let output = client(state.path(), &server)
            .args(["ops", "cancel", id])
            .output()
            .unwrap();
        assert_exit(&output, 0);
    };
    cancel(&first_id);
    wait_for_status(state.path(), &server, &second_id, "running");
    assert_eq!(status_of(state.path(), &server, &third_id), "pending");
    cancel(&second_id);
    wait_for_status(state.path(), &server, &third_id, "running");
    cancel(&third_id);
    for child in [&mut first, &mut second, &mut third] {
        assert_child_exit(child, 130);
    }
}

#[test]
fn bad_requests_get_clear_errors_and_leave_the_store_unchanged() {
    let state = tempfile::tempdir().unwrap();
    let models = tempfile::tempdir().unwrap();
    let server = start_server(state.path(), models.path(), &[]);
    let load = client(state.path(), &server)
        .args(["data", "load", "EURUSD", "1d"])
        .output()
        .unwrap();
    assert_exit(&load, 0);
    let done = operation_id_in(&text(&load.stdout));
    let before = listing(state.path(), &server, &[]);

    let refused = |args: &[&str], expected: &str| {
        let output = client(state.path(), &server).args(args).output().unwrap();
        assert_exit(&output, 1);
        let stderr = text(&output.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    };
    let unknown = "op_training_20200101_000000_deadbeef";
    refused(
        &["ops", "show", unknown],
        &format!("no operation with id {unknown}"),
    );
    refused(&["ops", "watch", unknown], unknown);
    refused(&["ops", "cancel", "nonsense"], "id:");
    refused(
        &["ops", "cancel", &done],
        &format!("operation {done} is already completed"),
    );
    let missing = state.path().join("no/such/strategy.yaml");
    refused(
        &["train", missing.to_str().unwrap()],
        &format!("cannot read the strategy file {}", missing.display()),
    );
    refused(&["data", "load", "NOSUCH", "1h"], "NOSUCH");

    // What the CLI cannot even send: an empty symbol, a symbol that would
    // leave the data directory.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let errors = runtime.block_on(async {
        let mut client = api_client(&server, Some(&owner_token(state.path()))).await;
        let training = client
            .start_training(rpc::proto::StartTrainingOperationRequest {
                strategy: Some(named("eurusd_mlp.yaml")),
                symbols: vec![String::new()],
                ..Default::default()
            })
            .await
            .unwrap_err();
        let load = client
            .start_data_load(rpc::proto::StartDataLoadRequest {
                symbol: "..".to_owned(),
                timeframe: "1h".to_owned(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        [training, load]
    });
    let [training, load] = errors.map(rejected);
    assert!(
        training.contains("StartTrainingOperationRequest.symbols") && training.contains("item 0: "),
        "{training}"
    );
    assert!(load.starts_with("symbol:"), "{load}");

    // The failed data load of a missing series is an operation (it failed
    // while running); nothing else was added.
    let after = listing(state.path(), &server, &[]);
    assert_eq!(
        after["total"],
        before["total"].as_u64().unwrap() + 1,
        "{after}"
    );
    assert_eq!(after["operations"][1], before["operations"][0]);
    assert_eq!(after["operations"][0]["status"], "failed");
}

#[test]
fn a_completed_or_unknown_training_is_not_resumed_and_the_refusal_says_so() {
    let state = tempfile::tempdir().unwrap();
    let models = tempfile::tempdir().unwrap();
    let server = start_server(state.path(), models.path(), &[]);
    let trained = client(state.path(), &server)
        .current_dir(repo())
        .args(["train", "strategies/eurusd_mlp.yaml", "--epochs", "1"])
        .output()
        .unwrap();
    assert_exit(&trained, 0);
    let completed = operation_id_in(&text(&trained.stdout));
    let before = listing(state.path(), &server, &[]);

    let refused = |args: &[&str], expected: &str| {
        let output = client(state.path(), &server)
            .args(args)
            .args(["--server", &server.url])
            .output()
            .unwrap();
        assert_exit(&output, 1);
        let stderr = text(&output.stderr);
        // The server's reason alone, not the gRPC status around it.
        assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(!stderr.contains("FailedPrecondition"), "{args:?}: {stderr}");
    };
    let finished = format!("cannot resume {completed}: it completed");
    refused(&["ops", "resume", &completed], &finished);
    let unknown = "op_training_20200101_000000_deadbeef";
    refused(
        &["ops", "resume", unknown],
        &format!("no operation with id {unknown}"),
    );
    // `trdr train --resume` is the same request.
    refused(&["train", "--resume", &completed], &finished);

    // Without a server, the embedded store (the server's, here) answers alike.
    let embedded = trdr(state.path())
        .env_remove("TRDR_SERVER")
        .args(["ops", "resume", &completed])
        .output()
        .unwrap();
    assert_exit(&embedded, 1);
    let stderr = text(&embedded.stderr);
    assert!(stderr.contains(&format!("error: {finished}")), "{stderr}");

    // Other clients get the refusal as a rejected request, and nothing was
    // registered.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let error = runtime.block_on(async {
        let client = api_client(&server, Some(&owner_token(state.path()))).await;
        client.resume(&completed).await.unwrap_err()
    });
    assert!(rejected(error).contains(&completed));
    assert_eq!(listing(state.path(), &server, &[]), before);
}

#[test]
fn a_wrong_or_missing_auth_token_is_refused() {
    let state = tempfile::tempdir().unwrap();
    let models = tempfile::tempdir().unwrap();
    let server = start_server(state.path(), models.path(), &["--auth-token", "s3cret"]);
    let list = |token: Option<&str>| {
        let mut command = client(state.path(), &server);
        if let Some(token) = token {
            command.env("TRDR_AUTH_TOKEN", token);
        }
        command.args(["ops", "list"]).output().unwrap()
    };
    let wrong = list(Some("guess"));
    assert_exit(&wrong, 1);
    assert!(text(&wrong.stderr).contains("wrong auth token"));
    let missing = list(None);
    assert_exit(&missing, 1);
    assert!(text(&missing.stderr).contains("TRDR_AUTH_TOKEN"));
    assert_exit(&list(Some("s3cret")), 0);
}

#[test]
fn a_server_that_is_down_is_reported_at_once() {
    let state = tempfile::tempdir().unwrap();
    let url = free_url();
    let output = trdr(state.path())
        .args(["ops", "list", "--server", &url])
        .output()
        .unwrap();
    assert_exit(&output, 1);
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains(&format!("cannot connect to the trdr server at {url}")),
        "{stderr}"
    );
}

/// A client of `server` through host-client, sending `token` if any: what
/// a program other than the CLI (or another user) can send.
async fn api_client(server: &Listening, token: Option<&str>) -> host_client::OperationsClient {
    let options = host_client::ConnectOptions {
        auth_token: token.and_then(rpc::Secret::new),
        ..host_client::ConnectOptions::operations_server()
    };
    host_client::OperationsClient::connect(&server.url, options)
        .await
        .unwrap()
}

/// The server's message of a request it rejected as invalid.
fn rejected(error: host_client::HostError) -> String {
    match error {
        host_client::HostError::Rejected { message, .. } => message,
        other => panic!("not rejected: {other:?}"),
    }
}

/// The token a server made in `state`, as its user can read it.
fn owner_token(state: &Path) -> String {
    std::fs::read_to_string(state.join("auth-token"))
        .unwrap()
        .trim()
        .to_owned()
}

fn named(name: &str) -> rpc::proto::start_training_operation_request::Strategy {
    rpc::proto::start_training_operation_request::Strategy::StrategyName(name.to_owned())
}

#[test]
fn a_strategy_named_outside_the_strategies_dir_is_refused_unread() {
    let state = tempfile::tempdir().unwrap();
    let models = tempfile::tempdir().unwrap();
    // The server owner's files: a secret beside the strategies directory,
    // and a link to it inside.
    let top = tempfile::tempdir().unwrap();
    let strategies = top.path().join("strategies");
    std::fs::create_dir(&strategies).unwrap();
    std::fs::copy(
        repo().join("strategies/eurusd_mlp.yaml"),
        strategies.join("mine.yaml"),
    )
    .unwrap();
    let secret_line = "api_key: TOP-SECRET-7c1e9b";
    let secret = top.path().join("secret.yaml");
    std::fs::write(&secret, format!("{secret_line}\n")).unwrap();
    std::os::unix::fs::symlink(&secret, strategies.join("leak.yaml")).unwrap();
    let server = start_server(
        state.path(),
        models.path(),
        &["--strategies-dir", strategies.to_str().unwrap()],
    );

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut api = runtime.block_on(api_client(&server, Some(&owner_token(state.path()))));
    let mut start = |name: &str| {
        runtime.block_on(
            api.start_training(rpc::proto::StartTrainingOperationRequest {
                strategy: Some(named(name)),
                epochs: Some(1),
                ..Default::default()
            }),
        )
    };
    let secret_path = secret.to_str().unwrap().to_owned();
    for name in ["/etc/passwd", &secret_path, "../secret.yaml", "leak.yaml"] {
        let message = rejected(start(name).unwrap_err());
        let message = message.as_str();
        assert!(
            message.contains("a strategy name is a file inside the server's strategies directory"),
            "{name}: {message}"
        );
        for content in ["TOP-SECRET", "api_key", "root:x:", "/bin/"] {
            assert!(!message.contains(content), "{name}: {message}");
        }
    }
    assert_eq!(listing(state.path(), &server, &[])["total"], 0);

    // A name inside the directory is read there and trains.
    let accepted = start("mine.yaml").unwrap();
    let watch = client(state.path(), &server)
        .args(["ops", "watch", accepted.id.as_str()])
        .output()
        .unwrap();
    assert_exit(&watch, 0);
}

#[test]
fn the_server_makes_a_private_token_that_only_its_user_s_clients_hold() {
    use std::os::unix::fs::PermissionsExt as _;
    let state = tempfile::tempdir().unwrap();
    let models = tempfile::tempdir().unwrap();
    let mut server = start_server(state.path(), models.path(), &[]);
    let token_file = state.path().join("auth-token");
    let mode = std::fs::metadata(&token_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let token = owner_token(state.path());

    // The owner's CLI: same state directory, no token flag or variable.
    let list = |state: &Path| {
        client(state, &server)
            .args(["ops", "list"])
            .output()
            .unwrap()
    };
    assert_exit(&list(state.path()), 0);
    // Another user cannot read the file: to the CLI, no token at all.
    let elsewhere = tempfile::tempdir().unwrap();
    let refused = list(elsewhere.path());
    assert_exit(&refused, 1);
    assert!(
        text(&refused.stderr).contains("this server needs an auth token"),
        "{}",
        text(&refused.stderr)
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let error = runtime
        .block_on(async {
            api_client(&server, None)
                .await
                .list(rpc::proto::ListOperationsRequest::default())
                .await
        })
        .unwrap_err();
    assert!(
        matches!(error, host_client::HostError::Unauthenticated { .. }),
        "{error:?}"
    );

    // A restart keeps the token, so running clients keep working.
    server.signal("-TERM");
    assert_eq!(server.wait().code(), Some(0));
    let server = start_server(state.path(), models.path(), &[]);
    assert_eq!(owner_token(state.path()), token);
    let again = client(state.path(), &server)
        .args(["ops", "list"])
        .output()
        .unwrap();
    assert_exit(&again, 0);

    // A token in the server's TRDR_AUTH_TOKEN is used instead of the file...
    let env_state = tempfile::tempdir().unwrap();
    let mut command = trdr(env_state.path());
    command
        .env("TRDR_AUTH_TOKEN", "from-the-environment")
        .args(["serve", "--listen", "127.0.0.1:0"]);
    let with_env = Listening::start(command);
    assert!(!env_state.path().join("auth-token").exists());
    let list_with = |token: Option<&str>| {
        let mut command = client(env_state.path(), &with_env);
        if let Some(token) = token {
            command.env("TRDR_AUTH_TOKEN", token);
        }
        command.args(["ops", "list"]).output().unwrap()
    };
    assert_exit(&list_with(None), 1);
    assert_exit(&list_with(Some("from-the-environment")), 0);
    drop(with_env);

    // ... and --no-auth sets it aside, lets everyone in, and writes no token.
    let open_state = tempfile::tempdir().unwrap();
    let mut command = trdr(open_state.path());
    command
        .env("TRDR_AUTH_TOKEN", "exported-for-clients")
        .args(["serve", "--no-auth", "--listen", "127.0.0.1:0"]);
    let open = Listening::start(command);
    assert!(!open_state.path().join("auth-token").exists());
    let anyone = client(elsewhere.path(), &open)
        .args(["ops", "list"])
        .output()
        .unwrap();
    assert_exit(&anyone, 0);
}

#[test]
fn a_token_file_others_can_read_stops_the_server_before_it_listens() {
    use std::os::unix::fs::PermissionsExt as _;
    let state = tempfile::tempdir().unwrap();
    let token_file = state.path().join("auth-token");
    std::fs::write(&token_file, "shared\n").unwrap();
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let output = trdr(state.path())
        .env_remove("TRDR_AUTH_TOKEN")
        .args(["serve", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_exit(&output, 1);
    assert!(!text(&output.stdout).contains("listening on"));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "the auth token file {} can be read or written by other users (mode 0644)",
            token_file.display()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("chmod 600"), "{stderr}");
}

#[test]
fn slow_a_training_stopped_by_sigterm_resumes_on_the_restarted_server_as_if_never_stopped() {
    let run = super::train::LstmRun::new();

    let state = tempfile::tempdir().unwrap();
    let models = tempfile::tempdir().unwrap();
    let mut server = start_server(state.path(), models.path(), &[]);
    let mut submitter = client(state.path(), &server)
        .arg("train")
        .arg(&run.strategy)
        .args(["--epochs", "12", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(submitter.stdout.take().unwrap());
    // Once epoch 2 runs, the first epoch's checkpoint exists.
    let id = id_once_at_epoch(&mut stdout, 2).expect("no epoch 2 from trdr train");
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    server.signal("-TERM");
    assert_eq!(server.wait().code(), Some(0));
    assert_child_exit(&mut submitter, 130);

    let server = start_server(state.path(), models.path(), &[]);
    let shown = client(state.path(), &server)
        .args(["ops", "show", &id, "--json"])
        .output()
        .unwrap();
    assert_exit(&shown, 0);
    let stopped: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(stopped["status"], "cancelled");
    assert_eq!(stopped["cancel_reason"]["kind"], "shutdown");
    assert!(
        stopped["checkpoint"]["epoch"].as_u64() >= Some(2),
        "{stopped}"
    );

    let resumed = client(state.path(), &server)
        .args(["ops", "resume", &id, "--json"])
        .output()
        .unwrap();
    assert_exit(&resumed, 0);
    let events = json_events(&resumed);
    let done = &events.last().unwrap()["operation"];
    assert_eq!(done["params"]["resumed_from"], id.as_str());
    assert_eq!(
        done["result"]["model_path"]
            .as_str()
            .map(super::train::artifact_bytes)
            .unwrap(),
        run.expected
    );
}
