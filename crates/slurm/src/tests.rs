//! Unit tests of the command layer, against fake Slurm commands: shell
//! scripts that record their arguments and environment and answer as Slurm
//! did.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use super::*;

/// One test with fakes at a time: a script being written while another
/// test forks is held open for writing by that child until it execs, and
/// running the script then fails with "Text file busy".
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A folder of fake commands, and a [`Slurm`] that runs them.
struct Fakes {
    dir: tempfile::TempDir,
    slurm: Slurm,
    _serial: tokio::sync::MutexGuard<'static, ()>,
}

impl Fakes {
    async fn new() -> Self {
        let serial = SERIAL.lock().await;
        let dir = tempfile::tempdir().unwrap();
        let mut slurm = Slurm::new(Some(PathBuf::from("/etc/trdr-test/slurm.conf")));
        slurm.bin_dir = Some(dir.path().to_path_buf());
        Self {
            dir,
            slurm,
            _serial: serial,
        }
    }

    /// A fake `name` that saves its arguments (one a line) to `name.args`
    /// and its environment to `name.env`, then runs `body`.
    fn command(&self, name: &str, body: &str) {
        let path = self.dir.path().join(name);
        let record = self.dir.path().join(name);
        let script = format!(
            "#!/bin/sh\nfor arg in \"$@\"; do printf '%s\\n' \"$arg\"; done > '{0}.args'\nenv > '{0}.env'\n{body}\n",
            record.display()
        );
        fs::write(&path, script).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn args(&self, name: &str) -> Vec<String> {
        let text = fs::read_to_string(self.dir.path().join(format!("{name}.args"))).unwrap();
        text.lines().map(str::to_owned).collect()
    }

    fn env_names(&self, name: &str) -> Vec<String> {
        let text = fs::read_to_string(self.dir.path().join(format!("{name}.env"))).unwrap();
        text.lines()
            .filter_map(|line| line.split_once('=').map(|(name, _)| name.to_owned()))
            .collect()
    }
}

#[tokio::test]
async fn submit_writes_the_script_and_passes_the_spec_to_sbatch() {
    let fakes = Fakes::new().await;
    fakes.command("sbatch", "echo '42;trdr'");
    let job_dir = tempfile::tempdir().unwrap();
    let mut job = JobSpec::new("train eurusd", job_dir.path(), "#!/bin/sh\necho hi\n");
    job.partition = Some("debug".into());
    job.env = vec![("TRDR_JOB".into(), "a b,c".into())];
    job.extra_args = vec!["--cpus-per-task=2".into()];

    assert_eq!(fakes.slurm.submit(&job).await.unwrap(), JobId(42));

    let script = job_dir.path().join(SCRIPT_FILE);
    assert_eq!(fs::read_to_string(&script).unwrap(), "#!/bin/sh\necho hi\n");
    let dir = job_dir.path().display();
    assert_eq!(
        fakes.args("sbatch"),
        [
            "--parsable".to_owned(),
            "--no-requeue".into(),
            "--export=ALL".into(),
            "--job-name=train eurusd".into(),
            format!("--chdir={dir}"),
            format!("--output={dir}/stdout.log"),
            format!("--error={dir}/stderr.log"),
            "--partition=debug".into(),
            "--cpus-per-task=2".into(),
            script.display().to_string(),
        ]
    );
    // Only the listed variables reach sbatch (and so the job), and what the
    // shell running the fake adds itself.
    let env = fakes.env_names("sbatch");
    assert!(env.contains(&"TRDR_JOB".to_owned()) && env.contains(&"SLURM_CONF".to_owned()));
    for name in &env {
        assert!(
            PASSED_ENV.contains(&name.as_str())
                || ["TRDR_JOB", "SLURM_CONF", "PWD", "OLDPWD", "SHLVL", "_"]
                    .contains(&name.as_str()),
            "{name} reached sbatch"
        );
    }
}

#[tokio::test]
async fn job_reads_scontrol_and_knows_an_unknown_job() {
    let fakes = Fakes::new().await;
    fakes.command(
        "scontrol",
        &format!(
            "cat <<'EOF'\n{}EOF",
            include_str!("show/fixtures/pending.txt")
        ),
    );
    let info = fakes.slurm.job(JobId(18)).await.unwrap();
    assert_eq!(
        (info.state, info.reason.as_deref()),
        (JobState::Pending, Some("Resources"))
    );
    assert_eq!(fakes.args("scontrol"), ["show", "job", "--oneliner", "18"]);
    assert!(
        fakes
            .env_names("scontrol")
            .contains(&"SLURM_CONF".to_owned())
    );

    fakes.command(
        "scontrol",
        "echo 'slurm_load_jobs error: Invalid job id specified' >&2; exit 1",
    );
    assert!(matches!(
        fakes.slurm.job(JobId(18)).await,
        Err(SlurmError::UnknownJob { id: JobId(18) })
    ));
}

#[tokio::test]
async fn cancel_signals_with_full_or_cancels_plainly() {
    let fakes = Fakes::new().await;
    fakes.command("scancel", "exit 0");
    fakes
        .slurm
        .cancel(JobId(5), Some(Signal::Int))
        .await
        .unwrap();
    assert_eq!(
        fakes.args("scancel"),
        [
            "--verbose",
            "--state=RUNNING",
            "--full",
            "--signal=INT",
            "5"
        ]
    );
    fakes.slurm.cancel(JobId(5), None).await.unwrap();
    assert_eq!(fakes.args("scancel"), ["5"]);
}

#[tokio::test]
async fn a_job_that_is_not_running_refuses_a_signal() {
    let fakes = Fakes::new().await;
    // What scancel said, verbose, of a pending job (exit 0) and of one that
    // had ended (exit 1).
    let noise = "scancel: select/cons_tres: common_init: select/cons_tres loaded";
    let nothing = "scancel: error: No active jobs match ALL job filters, including: state=RUNNING";
    let invalid = "scancel: error: Kill job error on job id 21: Invalid job id specified";
    for (body, said) in [
        (format!("echo '{noise}\n{nothing}' >&2"), nothing.to_owned()),
        (
            format!("echo '{noise}\n{invalid}\n{nothing}' >&2; exit 1"),
            format!("{invalid}; {nothing}"),
        ),
    ] {
        fakes.command("scancel", &body);
        match fakes.slurm.cancel(JobId(21), Some(Signal::Int)).await {
            Err(SlurmError::NotRunning { id, signal, stderr }) => {
                assert_eq!((id, signal), (JobId(21), Signal::Int));
                assert_eq!(stderr, said);
            }
            other => panic!("expected NotRunning, got {other:?}"),
        }
    }
    // A plain cancel of the same job is fine, as it is for scancel.
    fakes.command("scancel", "exit 0");
    fakes.slurm.cancel(JobId(21), None).await.unwrap();
}

#[tokio::test]
async fn a_failed_command_is_named_with_its_stderr_bounded() {
    let fakes = Fakes::new().await;
    fakes.command(
        "sbatch",
        "echo '  sbatch: error: Batch job submission failed: Invalid partition name specified  ' >&2; exit 1",
    );
    let job_dir = tempfile::tempdir().unwrap();
    let err = fakes
        .slurm
        .submit(&JobSpec::new("x", job_dir.path(), "#!/bin/sh\n"))
        .await
        .unwrap_err();
    let SlurmError::Failed {
        command, stderr, ..
    } = &err
    else {
        panic!("expected Failed, got {err:?}");
    };
    assert!(
        command.starts_with("sbatch --parsable --no-requeue"),
        "{command}"
    );
    assert_eq!(
        stderr,
        "sbatch: error: Batch job submission failed: Invalid partition name specified"
    );
    assert!(err.to_string().starts_with("`sbatch --parsable"));

    fakes.command(
        "scontrol",
        "head -c 5000 /dev/zero | tr '\\0' x >&2; exit 1",
    );
    match fakes.slurm.job(JobId(1)).await {
        Err(SlurmError::Failed { stderr, .. }) => {
            assert_eq!(stderr.chars().count(), EXCERPT_CHARS + 1);
            assert!(stderr.ends_with('…'));
        }
        other => panic!("expected Failed, got {other:?}"),
    }
}

#[tokio::test]
async fn a_command_that_hangs_is_killed_at_the_timeout() {
    let fakes = Fakes::new().await;
    fakes.command("scontrol", "exec sleep 30");
    let slurm = fakes.slurm.clone().with_timeout(Duration::from_millis(200));
    match slurm.job(JobId(1)).await {
        Err(SlurmError::Timeout { command, timeout }) => {
            assert_eq!(command, "scontrol show job --oneliner 1");
            assert_eq!(timeout, Duration::from_millis(200));
        }
        other => panic!("expected Timeout, got {other:?}"),
    }
}

#[tokio::test]
async fn a_missing_command_says_how_to_install_it() {
    let fakes = Fakes::new().await;
    let err = fakes.slurm.cancel(JobId(1), None).await.unwrap_err();
    assert!(matches!(
        err,
        SlurmError::NotInstalled { program: "scancel" }
    ));
    assert_eq!(
        err.to_string(),
        "scancel not found: install slurm-client or run `cargo xtask slurm up`"
    );
}

#[tokio::test]
async fn a_job_dir_that_does_not_exist_fails_before_sbatch() {
    let fakes = Fakes::new().await;
    let job = JobSpec::new("x", "/nonexistent/trdr-job", "#!/bin/sh\n");
    match fakes.slurm.submit(&job).await {
        Err(SlurmError::Script { path, .. }) => {
            assert_eq!(path, Path::new("/nonexistent/trdr-job").join(SCRIPT_FILE));
        }
        other => panic!("expected Script, got {other:?}"),
    }
}

#[tokio::test]
async fn sbatch_output_that_is_no_id_is_a_parse_error() {
    let fakes = Fakes::new().await;
    fakes.command("sbatch", "echo 'Submitted batch job 42'");
    let job_dir = tempfile::tempdir().unwrap();
    match fakes
        .slurm
        .submit(&JobSpec::new("x", job_dir.path(), "#!/bin/sh\n"))
        .await
    {
        Err(SlurmError::Parse { excerpt, .. }) => assert_eq!(excerpt, "Submitted batch job 42"),
        other => panic!("expected Parse, got {other:?}"),
    }
}
