//! End-to-end tests of the `trdr` binary, driven as a user would: real
//! processes, real files, real signals.

mod dashboard;
mod data;
mod data_host;
mod host;
mod host_service;
mod pool;
mod remote_cancel;
mod serve;
mod slurm;
mod train;
#[cfg(feature = "wgpu")]
mod wgpu;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output};
use std::time::Duration;

/// The repository root (sample data, example strategies).
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The shipped sample data.
fn sample_data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data")
}

/// A `trdr` command with its own operations store and no inherited settings
/// that could change its behaviour.
fn trdr(state_dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_trdr"));
    command
        .env("TRDR_STATE_DIR", state_dir)
        .env_remove("TRDR_DATA_DIR")
        .env_remove("USE_DATA_HOST_SERVICE")
        .env_remove("USE_TRAINING_HOST_SERVICE")
        .env_remove("TRDR_MODELS_DIR")
        .env("RUST_LOG", "warn");
    command
}

/// The text of the example strategy `name` (in `strategies/`) with early
/// stopping off, so that `--epochs` alone sets how long it trains.
fn example_without_early_stopping(name: &str) -> String {
    let example = std::fs::read_to_string(repo().join("strategies").join(name)).unwrap();
    let text = example.replacen("enabled: true", "enabled: false", 1);
    assert_ne!(text, example, "the early stopping of {name} moved");
    text
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The NDJSON events a `--json` run printed.
fn json_events(output: &Output) -> Vec<serde_json::Value> {
    text(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// Runs `train` (a `trdr train … --json`), interrupts it (SIGINT, as
/// Ctrl-C) once its events report epoch `epoch` under way, and returns the
/// operation's id once it has exited 130.
fn interrupt_at_epoch(train: &mut Command, epoch: u64) -> String {
    let mut child = train
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let id = id_once_at_epoch(&mut stdout, epoch)
        .unwrap_or_else(|| panic!("trdr ended before epoch {epoch}"));
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    std::io::copy(&mut stdout, &mut std::io::sink()).unwrap();
    assert_eq!(wait_or_hang(&mut child).code(), Some(130));
    id
}

/// The operation record of `id` in the store of `state`.
fn stored(state: &Path, id: &str) -> orchestrator_core::Operation {
    let operations =
        orchestrator_core::OperationsService::open_sqlite(state.join("operations.db")).unwrap();
    operations.get(&id.parse().unwrap()).unwrap()
}

/// Reads a `--json` run's events until one reports epoch `epoch` (or a
/// later one) under way; returns its operation id, or `None` if the run
/// ended first.
fn id_once_at_epoch(events: &mut impl std::io::BufRead, epoch: u64) -> Option<String> {
    let mut line = String::new();
    loop {
        line.clear();
        if events.read_line(&mut line).unwrap() == 0 {
            return None;
        }
        let event: serde_json::Value = serde_json::from_str(&line).unwrap();
        let current = event["progress"]["context"]["epoch"]["current"].as_u64();
        if current.is_some_and(|current| current >= epoch) {
            return Some(event["id"].as_str().unwrap().to_owned());
        }
    }
}

#[track_caller]
fn assert_exit(output: &Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        text(&output.stdout),
        text(&output.stderr)
    );
}

/// A `trdr serve` or `trdr host-service` process listening on a loopback
/// port it chose and announced on its first stdout line; killed when dropped.
struct Listening {
    child: std::process::Child,
    url: String,
    // Kept open: the process's stdout must not hit a closed pipe.
    stdout: std::io::BufReader<std::process::ChildStdout>,
}

impl Listening {
    /// Starts `command` (which must pass `--listen 127.0.0.1:0`) and waits
    /// for its `listening on ADDRESS` line.
    fn start(mut command: Command) -> Self {
        use std::io::BufRead;
        let mut child = command
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .unwrap();
        let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let address = line
            .trim_end()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        assert!(address.starts_with("127.0.0.1:"), "{address}");
        Self {
            url: format!("http://{address}"),
            child,
            stdout,
        }
    }

    /// The next line the process prints, without its newline.
    fn next_line(&mut self) -> String {
        use std::io::BufRead;
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        line.trim_end().to_owned()
    }

    /// Sends `signal` (as `kill` spells it, e.g. `-INT`).
    fn signal(&self, signal: &str) {
        let sent = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
    }

    fn wait(&mut self) -> std::process::ExitStatus {
        self.child.wait().unwrap()
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How long a `trdr` process may take to exit before the test fails: a
/// deadline that turns a hang into a failure, far above any real wait (how
/// fast a cancel lands is measured by the benches, not asserted here).
const HANG: Duration = Duration::from_secs(60);

/// Waits for `child` to exit; kills it and fails the test after [`HANG`].
#[track_caller]
fn wait_or_hang(child: &mut Child) -> ExitStatus {
    let pid = child.id();
    std::thread::scope(|scope| {
        let (sender, receiver) = std::sync::mpsc::channel();
        scope.spawn(move || sender.send(child.wait().unwrap()));
        receiver.recv_timeout(HANG).unwrap_or_else(|_| {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("trdr (pid {pid}) still running after {HANG:?}");
        })
    })
}

/// An http URL on loopback where nothing listens (the port was bound, then released).
fn free_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", listener.local_addr().unwrap())
}

/// Every `manifest.json` below `dir`: one per complete model artifact.
fn manifests_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(manifests_under(&path));
        } else if path.ends_with("manifest.json") {
            found.push(path);
        }
    }
    found
}
