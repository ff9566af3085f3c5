//! End-to-end tests of the `trdr` binary, driven as a user would: real
//! processes, real files, real signals.

mod data;
mod train;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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
