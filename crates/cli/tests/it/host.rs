//! `trdr train` on a training host: a real `trdr host-service` process and
//! the CLI with `USE_TRAINING_HOST_SERVICE=true`. The model comes back into
//! the local models folder; Ctrl-C stops the remote session; a killed,
//! shut down, absent or token-refusing host fails the training naming its
//! URL, and a killed one leaves the checkpoint fetched last, which resumes
//! locally; a training stopped here resumes on a host. The `slow_` tests train for many epochs and stop part-way, seconds
//! each: a plain `cargo nextest run` leaves them out, `cargo xtask ci` runs
//! them (`.config/nextest.toml`).

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use orchestrator_core::{ListFilter, Operation, OperationStatus, OperationsService};
use progress::{ProgressContext, ProgressState};
use rpc::proto;
use rpc::proto::training_host_client::TrainingHostClient;

use super::*;

/// A `trdr host-service` on a free loopback port, training from the sample
/// data into `models`.
fn host(state: &Path, models: &Path, auth_token: Option<&str>) -> Listening {
    let state = state.join("host");
    std::fs::create_dir_all(&state).unwrap();
    let mut command = trdr(&state);
    command
        .env_remove("TRDR_AUTH_TOKEN")
        .args(["host-service", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(sample_data())
        .arg("--models-dir")
        .arg(models);
    if let Some(token) = auth_token {
        command.args(["--auth-token", token]);
    }
    Listening::start(command)
}

/// `trdr train STRATEGY --json` sent to the host at `url`.
pub(super) fn train_on(
    url: &str,
    state: &Path,
    models: &Path,
    strategy: &str,
    epochs: u32,
) -> Command {
    let mut command = trdr(state);
    command
        .env("USE_TRAINING_HOST_SERVICE", "true")
        .env("TRAINING_HOST_SERVICE_URL", url)
        .env_remove("TRDR_AUTH_TOKEN")
        .arg("train")
        .arg(repo().join("strategies").join(strategy))
        .args(["--epochs", &epochs.to_string(), "--json", "--data-dir"])
        .arg(sample_data())
        .arg("--models-dir")
        .arg(models);
    command
}

/// Spawns `command` and reads its events until the train step reports a
/// batch: the training is under way on the host.
fn spawn_until_training(mut command: Command) -> (Child, BufReader<std::process::ChildStdout>) {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    let training = loop {
        line.clear();
        if stdout.read_line(&mut line).unwrap() == 0 {
            break false;
        }
        let event: serde_json::Value = serde_json::from_str(&line).unwrap();
        if event["progress"]["context"]["batch"]["current"].is_u64() {
            break true;
        }
    };
    if !training {
        let _ = child.wait();
        panic!("trdr ended before training: {}", stderr_of(&mut child));
    }
    (child, stdout)
}

/// A BTCUSD LSTM training of `epochs` epochs sent to a fresh host, read
/// until its train step reports a batch.
struct LongTraining {
    state: tempfile::TempDir,
    host_models: tempfile::TempDir,
    local_models: tempfile::TempDir,
    host: Listening,
    child: Child,
    stdout: BufReader<std::process::ChildStdout>,
}

impl LongTraining {
    fn start(epochs: u32) -> Self {
        let state = tempfile::tempdir().unwrap();
        let host_models = tempfile::tempdir().unwrap();
        let local_models = tempfile::tempdir().unwrap();
        let host = host(state.path(), host_models.path(), None);
        let (child, stdout) = spawn_until_training(train_on(
            &host.url,
            state.path(),
            local_models.path(),
            "btcusd_lstm.yaml",
            epochs,
        ));
        Self {
            state,
            host_models,
            local_models,
            host,
            child,
            stdout,
        }
    }
}

/// The newest operation the CLI recorded in the store of `state`.
fn newest_operation(state: &Path) -> Operation {
    let operations = OperationsService::open_sqlite(state.join("operations.db")).unwrap();
    let page = operations.list(&ListFilter::default()).unwrap();
    page.operations.into_iter().next().unwrap()
}

fn stderr_of(child: &mut Child) -> String {
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    stderr
}

/// The error of the operation, from the last event of a `--json` run.
fn operation_error(stdout: &str) -> String {
    let last: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(last["status"], "failed", "{last}");
    last["operation"]["error"].as_str().unwrap().to_owned()
}

async fn sessions(url: &str) -> Vec<proto::Session> {
    let mut client = TrainingHostClient::connect(url.to_owned()).await.unwrap();
    client
        .list_sessions(proto::ListSessionsRequest {})
        .await
        .unwrap()
        .into_inner()
        .sessions
}

#[test]
fn a_training_on_the_host_completes_and_its_model_comes_back() {
    let state = tempfile::tempdir().unwrap();
    let host_models = tempfile::tempdir().unwrap();
    let local_models = tempfile::tempdir().unwrap();
    let host = host(state.path(), host_models.path(), None);

    let output = train_on(
        &host.url,
        state.path(),
        local_models.path(),
        "eurusd_mlp.yaml",
        2,
    )
    .output()
    .unwrap();
    assert_exit(&output, 0);

    let local = manifests_under(local_models.path());
    assert_eq!(local.len(), 1, "{local:?}");
    assert_eq!(manifests_under(host_models.path()).len(), 1);
    let events = json_events(&output);
    let last = events.last().unwrap();
    assert_eq!(last["status"], "completed");
    let model_path = last["operation"]["result"]["model_path"].as_str().unwrap();
    assert_eq!(Path::new(model_path), local[0].parent().unwrap());
    assert_eq!(last["operation"]["result"]["report"]["epochs_run"], 2);
    // The host's typed progress reached the CLI.
    assert!(
        events
            .iter()
            .any(|event| event["progress"]["context"]["epoch"]["total"] == 2),
        "no epoch progress"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_ctrl_c_cancels_the_session_on_the_host_before_its_last_epoch() {
    const EPOCHS: u32 = 200;
    let LongTraining {
        state,
        host_models,
        local_models,
        host,
        mut child,
        mut stdout,
    } = LongTraining::start(EPOCHS);

    let interrupt = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupt.success());
    std::io::copy(&mut stdout, &mut std::io::sink()).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(130),
        "stderr:\n{}",
        stderr_of(&mut child)
    );

    let operation = &newest_operation(state.path());
    assert_eq!(
        operation.status,
        OperationStatus::Cancelled,
        "{:?}",
        operation.error
    );
    assert!(manifests_under(local_models.path()).is_empty());

    // The host stops the session within a batch of the cancel.
    let deadline = Instant::now() + Duration::from_secs(30);
    let session = loop {
        let sessions = sessions(&host.url).await;
        assert_eq!(sessions.len(), 1, "{sessions:?}");
        let session = sessions.into_iter().next().unwrap();
        if session.status() != proto::SessionStatus::Running || Instant::now() > deadline {
            break session;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        session.status(),
        proto::SessionStatus::Cancelled,
        "{session:?}"
    );
    let progress = ProgressState::try_from(session.progress.clone().unwrap()).unwrap();
    let ProgressContext::Training(training) = progress.context else {
        panic!("{session:?}");
    };
    let epoch = training.epoch.unwrap();
    assert!(
        epoch.current < EPOCHS,
        "the session reached its last epoch: {epoch:?}"
    );
    assert!(manifests_under(host_models.path()).is_empty());
}

#[test]
fn slow_ctrl_c_while_the_host_is_unreachable_still_cancels_promptly_noting_it() {
    let LongTraining {
        state,
        host_models: _host_models,
        local_models,
        host,
        mut child,
        mut stdout,
    } = LongTraining::start(200);

    // A frozen host keeps its connection open but answers nothing.
    host.signal("-STOP");
    let interrupt = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupt.success());
    std::io::copy(&mut stdout, &mut std::io::sink()).unwrap();
    let status = wait_or_hang(&mut child);
    host.signal("-CONT");
    assert_eq!(
        status.code(),
        Some(130),
        "stderr:\n{}",
        stderr_of(&mut child)
    );

    let operation = &newest_operation(state.path());
    assert_eq!(operation.status, OperationStatus::Cancelled);
    let note = operation.error.as_deref().unwrap_or_default();
    assert!(
        note.contains("the remote stop was not confirmed"),
        "{note:?}"
    );
    assert!(manifests_under(local_models.path()).is_empty());
}

#[test]
fn slow_a_host_killed_mid_training_fails_the_training_as_lost() {
    let LongTraining {
        state,
        host_models: _host_models,
        local_models: _local_models,
        host,
        mut child,
        mut stdout,
    } = LongTraining::start(200);

    host.signal("-KILL");
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let status = wait_or_hang(&mut child);
    assert_eq!(status.code(), Some(1), "stderr:\n{}", stderr_of(&mut child));
    let error = operation_error(&rest);
    assert!(
        error.starts_with(&format!(
            "training host lost: {} stopped answering",
            host.url
        )),
        "{error}"
    );
    let operation = &newest_operation(state.path());
    assert_eq!(operation.status, OperationStatus::Failed);
}

#[test]
fn slow_a_host_shut_down_mid_training_fails_the_training() {
    let LongTraining {
        state,
        host_models: _host_models,
        local_models,
        mut host,
        mut child,
        mut stdout,
    } = LongTraining::start(200);

    // Ctrl-C on the host, not here: the host cancels its sessions itself.
    host.signal("-INT");
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(1), "stderr:\n{}", stderr_of(&mut child));
    let error = operation_error(&rest);
    assert!(
        error.starts_with(&format!(
            "training host shut down: {} stopped the training during",
            host.url
        )),
        "{error}"
    );
    let operation = &newest_operation(state.path());
    assert_eq!(operation.status, OperationStatus::Failed);
    assert!(manifests_under(local_models.path()).is_empty());
    assert!(host.wait().success());
}

#[test]
fn a_host_that_is_not_running_fails_the_training_naming_its_url() {
    let state = tempfile::tempdir().unwrap();
    let local_models = tempfile::tempdir().unwrap();
    let url = free_url();
    let output = train_on(
        &url,
        state.path(),
        local_models.path(),
        "eurusd_mlp.yaml",
        2,
    )
    .output()
    .unwrap();
    assert_exit(&output, 1);
    let error = operation_error(&text(&output.stdout));
    assert!(
        error.starts_with(&format!("training host at {url} is not reachable")),
        "{error}"
    );
}

#[test]
fn a_wrong_auth_token_is_refused() {
    let state = tempfile::tempdir().unwrap();
    let host_models = tempfile::tempdir().unwrap();
    let local_models = tempfile::tempdir().unwrap();
    let host = host(state.path(), host_models.path(), Some("s3cret"));

    let output = train_on(
        &host.url,
        state.path(),
        local_models.path(),
        "eurusd_mlp.yaml",
        2,
    )
    .env("TRDR_AUTH_TOKEN", "guess")
    .output()
    .unwrap();
    assert_exit(&output, 1);
    let error = operation_error(&text(&output.stdout));
    assert_eq!(
        error,
        format!(
            "training host at {} refused the call: wrong auth token",
            host.url
        )
    );
    assert!(manifests_under(host_models.path()).is_empty());
    assert!(manifests_under(local_models.path()).is_empty());
}

#[test]
fn slow_a_host_killed_mid_training_leaves_a_local_checkpoint_that_resumes_here_to_the_same_model() {
    let run = super::train::LstmRun::new();

    // On a host, killed once epoch 4 is under way: the checkpoint of epoch
    // 2's end was announced a whole epoch before, and fetched since.
    let (state, host_models, local_models) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let host = host(state.path(), host_models.path(), None);
    let mut on_host = run.train(state.path(), local_models.path());
    on_host
        .env("USE_TRAINING_HOST_SERVICE", "true")
        .env("TRAINING_HOST_SERVICE_URL", &host.url);
    let mut child = on_host
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let Some(id) = id_once_at_epoch(&mut stdout, 4) else {
        let _ = child.wait();
        panic!("trdr ended before epoch 4: {}", stderr_of(&mut child));
    };
    host.signal("-KILL");
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let status = wait_or_hang(&mut child);
    assert_eq!(status.code(), Some(1), "stderr:\n{}", stderr_of(&mut child));
    let lost = newest_operation(state.path());
    assert_eq!(lost.id.as_str(), id);
    assert_eq!(lost.status, OperationStatus::Failed);
    let error = lost.error.unwrap_or_default();
    assert!(error.starts_with("training host lost"), "{error}");
    let checkpoint = lost.checkpoint.expect("a checkpoint fetched from the host");
    assert!(checkpoint.epoch >= 2, "{checkpoint:?}");
    let path = Path::new(&checkpoint.path);
    assert!(
        path.starts_with(local_models.path()) && path.is_file(),
        "{checkpoint:?}"
    );

    // Resumed here, without the host.
    let resumed = trdr(state.path())
        .args(["train", "--resume", &id, "--json"])
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
        run.expected,
        "the run resumed from the host's checkpoint differs from the uninterrupted run"
    );
}

#[test]
fn slow_a_training_stopped_here_resumes_on_a_host_to_the_same_model() {
    let run = super::train::LstmRun::new();

    // Here, stopped by Ctrl-C once epoch 4 is under way.
    let (state, local_models) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut child = run
        .train(state.path(), local_models.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let Some(id) = id_once_at_epoch(&mut stdout, 4) else {
        let _ = child.wait();
        panic!("trdr ended before epoch 4: {}", stderr_of(&mut child));
    };
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    std::io::copy(&mut stdout, &mut std::io::sink()).unwrap();
    let status = wait_or_hang(&mut child);
    assert_eq!(
        status.code(),
        Some(130),
        "stderr:\n{}",
        stderr_of(&mut child)
    );
    let stopped = newest_operation(state.path());
    assert_eq!(stopped.id.as_str(), id);
    assert_eq!(stopped.status, OperationStatus::Cancelled);
    let checkpoint = stopped.checkpoint.expect("a checkpoint recorded on Ctrl-C");
    assert!(checkpoint.epoch >= 4, "{checkpoint:?}");
    let stopped_file = Path::new(&checkpoint.path);
    assert!(
        stopped_file.starts_with(local_models.path()),
        "{checkpoint:?}"
    );

    // Resumed on a host: the checkpoint goes there, the model comes back.
    let host_models = tempfile::tempdir().unwrap();
    let host = host(state.path(), host_models.path(), None);
    let resumed = trdr(state.path())
        .env("USE_TRAINING_HOST_SERVICE", "true")
        .env("TRAINING_HOST_SERVICE_URL", &host.url)
        .env_remove("TRDR_AUTH_TOKEN")
        .args(["train", "--resume", &id, "--json"])
        .output()
        .unwrap();
    assert_exit(&resumed, 0);
    let events = json_events(&resumed);
    // The display goes on from the checkpoint, not from epoch 1.
    let first = events
        .iter()
        .find_map(|event| event["progress"]["context"]["epoch"]["current"].as_u64())
        .unwrap();
    assert!(first >= u64::from(checkpoint.epoch), "{first}");
    let done = &events.last().unwrap()["operation"];
    assert_eq!(done["params"]["resumed_from"], id.as_str());
    let model_path = done["result"]["model_path"].as_str().unwrap();
    assert!(
        Path::new(model_path).starts_with(local_models.path()),
        "{model_path}"
    );
    assert_eq!(
        super::train::artifact_bytes(model_path),
        run.expected,
        "the run resumed on the host differs from the uninterrupted run"
    );
    assert!(!stopped_file.exists(), "its checkpoint outlived it here");
    let left_on_host: Vec<_> = std::fs::read_dir(host_models.path().join(".checkpoints"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert!(
        left_on_host.is_empty(),
        "left on the host: {left_on_host:?}"
    );
}
