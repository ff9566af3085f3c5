//! `trdr serve --executor slurm` against a real one-node Slurm cluster
//! (`cargo xtask slurm up`, which `cargo xtask ci` runs first): trainings
//! become batch jobs that run `trdr slurm-job` on the node, and are
//! followed, cancelled and reported as local ones are.

use std::io::BufReader;
use std::process::{Child, Stdio};

use super::serve::{assert_child_exit, client, operation_id_in, start_server};
use super::*;

/// The cluster's config, which the server's Slurm commands and the tests'
/// `scancel` and `scontrol` read.
fn slurm_conf() -> String {
    std::env::var("SLURM_CONF").unwrap_or_else(|_| {
        panic!(
            "the Slurm tests need a cluster and SLURM_CONF: run `eval \"$(cargo xtask slurm up)\"` \
             first (cargo xtask ci does)"
        )
    })
}

/// The one-node cluster, one test at a time: a test takes its node down.
static CLUSTER: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn cluster() -> std::sync::MutexGuard<'static, ()> {
    CLUSTER
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A `trdr serve --executor slurm` of the cluster, its store in `state`,
/// its models (and job folders) in `models`, with more flags in `extra`.
fn start_slurm_server(state: &Path, models: &Path, extra: &[&str]) -> Listening {
    // SLURM_CONF comes from this process's environment, as for a user.
    slurm_conf();
    let mut args = vec!["--executor", "slurm"];
    args.extend(extra);
    start_server(state, models, &args)
}

/// Runs a Slurm command of the cluster; its output.
fn slurm_command(program: &str, args: &[&str]) -> std::process::Output {
    Command::new(program)
        .args(args)
        .env("SLURM_CONF", slurm_conf())
        .output()
        .unwrap()
}

/// The LSTM example without early stopping, so `--epochs` sets its length.
fn long_strategy(dir: &Path) -> PathBuf {
    let path = dir.join("lstm.yaml");
    std::fs::write(&path, example_without_early_stopping("btcusd_lstm.yaml")).unwrap();
    path
}

/// Submits the long training for `epochs` with `--json` and waits until
/// its job trains epoch `epoch`; returns the client, the operation id and
/// what the operation says it runs on (`Slurm job N on NODE`).
fn submit_and_wait_for_epoch(
    state: &Path,
    server: &Listening,
    strategy: &Path,
    epochs: &str,
    epoch: u64,
) -> (Child, String, String) {
    let mut child = client(state, server)
        .arg("train")
        .arg(strategy)
        .args(["--epochs", epochs, "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut events = BufReader::new(child.stdout.take().unwrap());
    let id = id_once_at_epoch(&mut events, epoch).expect("the training ended before the epoch");
    std::thread::spawn(move || std::io::copy(&mut events, &mut std::io::sink()));
    let runs_on = shown(state, server, &id)["runs_on"]
        .as_str()
        .expect("a training under way says where it runs")
        .to_owned();
    (child, id, runs_on)
}

/// The job id and node of `Slurm job N on NODE`.
fn job_and_node(runs_on: &str) -> (String, String) {
    let words: Vec<&str> = runs_on.split_whitespace().collect();
    match words[..] {
        ["Slurm", "job", job, "on", node] => (job.to_owned(), node.to_owned()),
        _ => panic!("not a Slurm job: {runs_on:?}"),
    }
}

/// `trdr ops show ID --json` of the server.
fn shown(state: &Path, server: &Listening, id: &str) -> serde_json::Value {
    let output = client(state, server)
        .args(["ops", "show", id, "--json"])
        .output()
        .unwrap();
    assert_exit(&output, 0);
    serde_json::from_slice(&output.stdout).unwrap()
}

/// What `scontrol show job` says of `job`'s state.
fn job_state(job: &str) -> String {
    let output = slurm_command("scontrol", &["show", "job", "--oneliner", job]);
    assert_exit(&output, 0);
    let text = text(&output.stdout);
    text.split_whitespace()
        .find_map(|field| field.strip_prefix("JobState="))
        .unwrap_or_else(|| panic!("no JobState in {text:?}"))
        .to_owned()
}

/// A long training under way on the cluster: the server, its client
/// process, the operation and the job it runs as.
struct UnderWay {
    state: tempfile::TempDir,
    models: tempfile::TempDir,
    server: Listening,
    training: Child,
    id: String,
    job: String,
    node: String,
    _cluster: std::sync::MutexGuard<'static, ()>,
}

impl UnderWay {
    /// Starts a Slurm server with `extra` flags and the long training for
    /// `epochs`, and waits until it trains epoch `epoch`.
    fn start(extra: &[&str], epochs: &str, epoch: u64) -> Self {
        let cluster = cluster();
        let (state, models) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let server = start_slurm_server(state.path(), models.path(), extra);
        let strategy = long_strategy(state.path());
        let (training, id, runs_on) =
            submit_and_wait_for_epoch(state.path(), &server, &strategy, epochs, epoch);
        let (job, node) = job_and_node(&runs_on);
        Self {
            state,
            models,
            server,
            training,
            id,
            job,
            node,
            _cluster: cluster,
        }
    }

    fn operation(&self) -> serde_json::Value {
        shown(self.state.path(), &self.server, &self.id)
    }
}

/// A progress line with every number made `#`, no spaces (numbers are
/// padded), and the ETA left out (an estimate, there or not by timing):
/// its form.
fn form(line: &str) -> String {
    let line = line.split(" ETA ").next().unwrap_or(line);
    let mut form = String::new();
    for c in line.trim().chars() {
        let last = form.chars().last();
        if c.is_ascii_digit() || (c == '.' && last == Some('#')) {
            if last != Some('#') {
                form.push('#');
            }
        } else if !c.is_whitespace() {
            form.push(c);
        }
    }
    form
}

#[test]
fn slow_a_training_on_slurm_completes_with_its_model_and_the_progress_of_a_local_run() {
    let (state, models) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let _cluster = cluster();
    let server = start_slurm_server(state.path(), models.path(), &[]);
    let strategy = repo().join("strategies/eurusd_mlp.yaml");
    let on_slurm = client(state.path(), &server)
        .arg("train")
        .arg(&strategy)
        .args(["--epochs", "3"])
        .output()
        .unwrap();
    assert_exit(&on_slurm, 0);
    let id = operation_id_in(&text(&on_slurm.stdout));
    let operation = shown(state.path(), &server, &id);
    assert_eq!(operation["status"], "completed");
    let runs_on = operation["runs_on"].as_str().unwrap();
    assert!(runs_on.starts_with("Slurm job "), "{runs_on}");
    let model = operation["result"]["model_path"].as_str().unwrap();
    assert!(Path::new(model).starts_with(models.path()), "{model}");
    assert!(Path::new(model).join("manifest.json").is_file());
    assert_eq!(manifests_under(models.path()).len(), 1);

    // The same lines, in form, as a training in this process.
    let local_state = tempfile::tempdir().unwrap();
    let local_models = tempfile::tempdir().unwrap();
    let local = trdr(local_state.path())
        .arg("train")
        .arg(&strategy)
        .args(["--epochs", "3", "--data-dir"])
        .arg(sample_data())
        .arg("--models-dir")
        .arg(local_models.path())
        .output()
        .unwrap();
    assert_exit(&local, 0);
    let local_forms: Vec<String> = text(&local.stdout).lines().map(form).collect();
    let progress_lines: Vec<String> = text(&on_slurm.stdout)
        .lines()
        .filter(|line| line.contains("Training MLP model"))
        .map(form)
        .collect();
    assert!(!progress_lines.is_empty(), "{}", text(&on_slurm.stdout));
    for line in &progress_lines {
        assert!(
            local_forms.contains(line),
            "{line:?} is not in the form of a local run's lines:\n{}",
            local_forms.join("\n")
        );
    }
}

#[test]
fn slow_a_cancel_ends_the_slurm_job_then_the_operation_cancelled_with_its_checkpoint() {
    let mut run = UnderWay::start(&[], "200", 1);
    let cancel = client(run.state.path(), &run.server)
        .args(["ops", "cancel", &run.id])
        .output()
        .unwrap();
    assert_exit(&cancel, 0);
    assert_child_exit(&mut run.training, 130);
    let operation = run.operation();
    assert_eq!(operation["status"], "cancelled");
    let note = operation["error"].as_str().unwrap();
    assert!(
        note.starts_with("during training") && note.ends_with(&format!("in Slurm job {}", run.job)),
        "{note}"
    );
    // The operation ended only once the job had.
    let ended = job_state(&run.job);
    assert!(
        !["PENDING", "RUNNING", "COMPLETING", "CONFIGURING"].contains(&ended.as_str()),
        "job {} is still {ended}",
        run.job
    );
    // Stopped where it was: the checkpoint it saved resumes.
    let checkpoint = operation["checkpoint"]["path"].as_str().unwrap();
    assert!(Path::new(checkpoint).is_file(), "{checkpoint}");
    assert!(manifests_under(run.models.path()).is_empty());
}

#[test]
fn slow_a_job_cancelled_from_outside_trdr_fails_the_training_saying_the_scheduler_did() {
    let mut run = UnderWay::start(&[], "200", 1);
    let scancel = slurm_command("scancel", &[&run.job]);
    assert_exit(&scancel, 0);
    assert_child_exit(&mut run.training, 1);
    let operation = run.operation();
    assert_eq!(operation["status"], "failed");
    let error = operation["error"].as_str().unwrap();
    assert!(
        error.contains(&format!("Slurm job {} ended", run.job)),
        "{error}"
    );
    assert!(error.contains("cancelled by the scheduler"), "{error}");
}

#[test]
fn slow_a_training_that_fails_on_the_node_reports_the_node_s_error() {
    let _cluster = cluster();
    let (state, models) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let server = start_slurm_server(state.path(), models.path(), &[]);
    let output = client(state.path(), &server)
        .arg("train")
        .arg(repo().join("strategies/eurusd_mlp.yaml"))
        .args(["--symbols", "NODATA", "--epochs", "2"])
        .output()
        .unwrap();
    assert_exit(&output, 1);
    let stderr = text(&output.stderr);
    let expected = sample_data().join("NODATA_1h.csv");
    assert!(
        stderr.contains("the training failed in Slurm job")
            && stderr.contains(&format!("{} does not exist", expected.display())),
        "{stderr}"
    );
    let id = operation_id_in_error(&stderr);
    assert_eq!(shown(state.path(), &server, &id)["status"], "failed");
}

/// The operation a failed `trdr train`'s error names.
fn operation_id_in_error(stderr: &str) -> String {
    stderr
        .split_whitespace()
        .find(|word| word.starts_with("op_training_"))
        .unwrap_or_else(|| panic!("no operation in:\n{stderr}"))
        .to_owned()
}

#[test]
fn slow_a_job_lost_with_its_node_is_submitted_again_from_its_checkpoint_and_completes() {
    // Epoch 2 under way: epoch 1's checkpoint is saved.
    let mut run = UnderWay::start(&["--requeue-on-node-failure", "1"], "4", 2);
    let node = format!("nodename={}", run.node);
    let down = slurm_command(
        "scontrol",
        &["update", &node, "state=down", "reason=trdr-test"],
    );
    assert_exit(&down, 0);
    // Back in service (slurmd may have brought it back already).
    let _ = slurm_command("scontrol", &["update", &node, "state=resume"]);

    assert_child_exit(&mut run.training, 0);
    assert_eq!(job_state(&run.job), "NODE_FAIL");
    let operation = run.operation();
    assert_eq!(operation["status"], "completed");
    let (second_job, _) = job_and_node(operation["runs_on"].as_str().unwrap());
    assert_ne!(second_job, run.job);
    assert_eq!(
        operation["result"]["report"]["epochs_run"], 4,
        "{operation}"
    );
    assert_eq!(manifests_under(run.models.path()).len(), 1);
}
