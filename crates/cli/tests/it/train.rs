//! `trdr train` end to end: a real training with typed progress events, and
//! Ctrl-C during the train step.

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use orchestrator_core::{ListFilter, OperationKind, OperationStatus, OperationsService};

use super::*;

/// (epoch, batch) of a progress event of the train step, if it has them.
fn epoch_and_batch(event: &serde_json::Value) -> Option<(u64, u64)> {
    let context = &event["progress"]["context"];
    Some((
        context["epoch"]["current"].as_u64()?,
        context["batch"]["current"].as_u64()?,
    ))
}

#[test]
fn train_completes_with_an_artifact_and_increasing_progress() {
    let state = tempfile::tempdir().unwrap();
    let models = tempfile::tempdir().unwrap();
    let output = trdr(state.path())
        .arg("train")
        .arg(repo().join("strategies/eurusd_mlp.yaml"))
        .args(["--epochs", "3", "--json", "--data-dir"])
        .arg(sample_data())
        .arg("--models-dir")
        .arg(models.path())
        .output()
        .unwrap();
    assert_exit(&output, 0);
    let events = json_events(&output);

    // Progress is coalesced (the latest snapshot wins), so on a busy machine
    // the display may skip snapshots, even the last epoch's; what it shows
    // must still move forward and stay within the three epochs.
    let figures: Vec<(u64, u64)> = events.iter().filter_map(epoch_and_batch).collect();
    assert!(!figures.is_empty(), "no epoch/batch progress shown");
    assert!(
        figures.windows(2).all(|pair| pair[0] < pair[1]),
        "epoch/batch went backwards: {figures:?}"
    );
    assert!(
        figures.iter().all(|(epoch, _)| (1..=3).contains(epoch)),
        "{figures:?}"
    );

    let manifests = manifests_under(models.path());
    assert_eq!(manifests.len(), 1, "{manifests:?}");
    let last = events.last().unwrap();
    assert_eq!(last["status"], "completed");
    let model_path = last["operation"]["result"]["model_path"].as_str().unwrap();
    assert_eq!(Path::new(model_path), manifests[0].parent().unwrap());

    let operations = OperationsService::open_sqlite(state.path().join("operations.db")).unwrap();
    let page = operations.list(&ListFilter::default()).unwrap();
    assert_eq!(page.operations[0].kind, OperationKind::Training);
    assert_eq!(page.operations[0].status, OperationStatus::Completed);
    assert_eq!(
        page.operations[0].result.as_ref().unwrap()["report"]["epochs_run"],
        3
    );
}

#[test]
fn ctrl_c_during_training_cancels_it_and_leaves_no_model() {
    let state = tempfile::tempdir().unwrap();
    let models = tempfile::tempdir().unwrap();
    const EPOCHS: u64 = 200;
    let mut child = trdr(state.path())
        .arg("train")
        .arg(repo().join("strategies/btcusd_lstm.yaml"))
        .args(["--epochs", &EPOCHS.to_string(), "--json", "--data-dir"])
        .arg(sample_data())
        .arg("--models-dir")
        .arg(models.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());

    // Wait until the train step reports batches, then interrupt.
    let mut line = String::new();
    let mut last_epoch = loop {
        line.clear();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "trdr ended before training"
        );
        let event: serde_json::Value = serde_json::from_str(&line).unwrap();
        if let Some((epoch, _)) = epoch_and_batch(&event) {
            break epoch;
        }
    };
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(130), "stderr:\n{stderr}");

    for line in rest.lines() {
        let event: serde_json::Value = serde_json::from_str(line).unwrap();
        if let Some((epoch, _)) = epoch_and_batch(&event) {
            last_epoch = last_epoch.max(epoch);
        }
    }
    assert!(last_epoch < EPOCHS, "training ran to its last epoch");

    let operations = OperationsService::open_sqlite(state.path().join("operations.db")).unwrap();
    let operation = &operations.list(&ListFilter::default()).unwrap().operations[0];
    assert_eq!(
        operation.status,
        OperationStatus::Cancelled,
        "{:?}",
        operation.error
    );
    assert!(
        manifests_under(models.path()).is_empty(),
        "a complete-looking artifact was left"
    );
}
