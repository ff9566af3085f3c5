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

    // Its curves: an SVG whose lines have one point per epoch.
    let id = page.operations[0].id.to_string();
    let chart = models.path().join("curves.svg");
    let plot = trdr(state.path())
        .args(["ops", "plot", &id, "--out"])
        .arg(&chart)
        .output()
        .unwrap();
    assert_exit(&plot, 0);
    let svg = std::fs::read_to_string(&chart).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    for series in ["train loss", "val loss", "train acc", "val acc"] {
        let marker = format!(r#"data-series="{series}" points=""#);
        let start = svg.find(&marker).unwrap_or_else(|| panic!("no {series}")) + marker.len();
        let points = &svg[start..start + svg[start..].find('"').unwrap()];
        assert_eq!(points.split(' ').count(), 3, "{series}: {points}");
    }
    assert!(
        svg.contains(r#"class="baseline""#),
        "a completed training marks its baseline"
    );
    let png = trdr(state.path())
        .args(["ops", "plot", &id, "--out", "curves.png"])
        .output()
        .unwrap();
    assert_exit(&png, 1);
    assert!(text(&png.stderr).contains("is not an .svg file"));
}

#[cfg(not(feature = "cuda"))]
#[test]
fn a_backend_not_built_in_fails_the_training_naming_the_feature_to_build() {
    let state = tempfile::tempdir().unwrap();
    let models = tempfile::tempdir().unwrap();
    let output = trdr(state.path())
        .arg("train")
        .arg(repo().join("strategies/eurusd_mlp.yaml"))
        .args(["--backend", "cuda", "--data-dir"])
        .arg(sample_data())
        .arg("--models-dir")
        .arg(models.path())
        .output()
        .unwrap();
    assert_exit(&output, 1);
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains(
            "the cuda backend is not compiled into this trdr: build it with `--features cuda`"
        ),
        "{stderr}"
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

/// A stop-and-resume scenario: the LSTM example without early stopping,
/// so `--epochs 12` sets its length (long enough to stop midway), and the
/// weights and test metrics of its uninterrupted run, which a resumed run
/// must match byte for byte.
pub(super) struct LstmRun {
    pub(super) strategy: PathBuf,
    pub(super) expected: (Vec<u8>, Vec<u8>),
    _scratch: tempfile::TempDir,
}

impl LstmRun {
    /// Writes the strategy and trains it once, uninterrupted, here.
    pub(super) fn new() -> Self {
        let scratch = tempfile::tempdir().unwrap();
        let strategy = scratch.path().join("lstm.yaml");
        std::fs::write(
            &strategy,
            example_without_early_stopping("btcusd_lstm.yaml"),
        )
        .unwrap();
        let mut run = Self {
            strategy,
            expected: (Vec::new(), Vec::new()),
            _scratch: scratch,
        };
        let (state, models) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let whole = run.train(state.path(), models.path()).output().unwrap();
        assert_exit(&whole, 0);
        run.expected = json_events(&whole).last().unwrap()["operation"]["result"]["model_path"]
            .as_str()
            .map(artifact_bytes)
            .unwrap();
        run
    }

    /// `trdr train` of it with JSON events, on the sample data, its models
    /// in `models`, recorded in the store of `state`.
    pub(super) fn train(&self, state: &Path, models: &Path) -> Command {
        let mut command = trdr(state);
        command
            .env_remove("TRDR_AUTH_TOKEN")
            .arg("train")
            .arg(&self.strategy)
            .args(["--epochs", "12", "--json", "--data-dir"])
            .arg(sample_data())
            .arg("--models-dir")
            .arg(models);
        command
    }
}

/// What two trainings of the same seed must share byte for byte: the
/// weights and test metrics of the artifact at `model_path`.
pub(super) fn artifact_bytes(model_path: &str) -> (Vec<u8>, Vec<u8>) {
    let dir = Path::new(model_path);
    (
        std::fs::read(dir.join("model.bpk")).unwrap(),
        std::fs::read(dir.join("metrics.json")).unwrap(),
    )
}

#[test]
fn slow_ctrl_c_saves_a_checkpoint_and_train_resume_ends_as_an_uninterrupted_run() {
    let run = LstmRun::new();

    // Interrupted once epoch 3 is done.
    let (state, models) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let id = interrupt_at_epoch(&mut run.train(state.path(), models.path()), 4);
    let stopped = stored(state.path(), &id);
    assert_eq!(stopped.status, OperationStatus::Cancelled);
    let checkpoint = stopped.checkpoint.expect("a checkpoint recorded on Ctrl-C");
    assert!(checkpoint.epoch >= 4, "{checkpoint:?}");
    assert!(Path::new(&checkpoint.path).starts_with(models.path()));

    let resumed = trdr(state.path())
        .args(["train", "--resume", &id, "--json"])
        .output()
        .unwrap();
    assert_exit(&resumed, 0);
    let events = json_events(&resumed);
    // The display goes on from the checkpoint, not from epoch 1.
    let first = events.iter().find_map(epoch_and_batch).unwrap();
    assert!(first.0 >= u64::from(checkpoint.epoch), "{first:?}");
    let done = &events.last().unwrap()["operation"];
    assert_eq!(done["params"]["resumed_from"], id.as_str());
    assert_eq!(
        done["result"]["model_path"]
            .as_str()
            .map(artifact_bytes)
            .unwrap(),
        run.expected,
        "the resumed run's weights and metrics differ from the uninterrupted run's"
    );
    assert!(
        !Path::new(&checkpoint.path).exists(),
        "its checkpoint outlived it"
    );
}

#[test]
fn ops_prune_removes_old_checkpoints_here_and_refuses_a_server() {
    let state = tempfile::tempdir().unwrap();
    let models = tempfile::tempdir().unwrap();
    let checkpoints = models.path().join(".checkpoints");
    std::fs::create_dir(&checkpoints).unwrap();
    let stale = checkpoints.join("op_training_20261001_120000_0a1b2c3d.ckpt");
    std::fs::write(&stale, vec![0; 1500]).unwrap();

    let output = trdr(state.path())
        .args(["ops", "prune", "--older-than", "0s", "--models-dir"])
        .arg(models.path())
        .output()
        .unwrap();
    assert_exit(&output, 0);
    assert!(
        text(&output.stdout).starts_with("Removed 1 checkpoint (1.5 kB) from"),
        "{}",
        text(&output.stdout)
    );
    assert!(!stale.exists());

    let remote = trdr(state.path())
        .args(["ops", "prune", "--server", "http://127.0.0.1:9"])
        .output()
        .unwrap();
    assert_exit(&remote, 1);
    assert!(text(&remote.stderr).contains("run it on the server's machine"));
    let bad_age = trdr(state.path())
        .args(["ops", "prune", "--older-than", "soon"])
        .output()
        .unwrap();
    assert_exit(&bad_age, 2);
}
