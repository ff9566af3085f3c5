//! `--server` against a server that takes the cancel request but never
//! answers it (a hung `trdr serve`): Ctrl-C still ends the CLI, with exit
//! 130 once the cancel deadline passed, saying the cancel was not confirmed.

use std::io::{BufRead, BufReader, Read};
use std::process::Stdio;

use orchestrator_core::{Operation, OperationKind, OperationStatus};

use super::*;

/// host-client's hung server on a loopback port, on a runtime of its own.
fn serve_hung() -> (String, tokio::runtime::Runtime) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let mut operation = Operation::new(
        OperationKind::DataLoad,
        serde_json::json!({ "symbol": "EURUSD", "timeframe": "1h" }),
        chrono::Utc::now(),
    );
    operation.status = OperationStatus::Running;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    runtime.spawn(async move {
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        host_client::testing::serve_hung_on_cancel(listener, operation).await;
    });
    (url, runtime)
}

#[test]
fn ctrl_c_ends_the_cli_when_the_server_never_answers_the_cancel() {
    let (url, _server) = serve_hung();
    let state = tempfile::tempdir().unwrap();
    let mut child = trdr(state.path())
        .env_remove("TRDR_AUTH_TOKEN")
        .args(["--json", "data", "load", "EURUSD", "1h", "--server", &url])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The first snapshot is shown once the signal listeners are installed.
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let event: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(event["status"], "running", "{line}");

    let interrupt = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupt.success());
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();

    assert_eq!(status.code(), Some(130), "stderr:\n{stderr}");
    assert!(
        stderr.contains("was not confirmed (the server did not answer within 2 s)"),
        "{stderr}"
    );
}
