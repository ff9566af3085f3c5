//! The wrapper against a real Slurm: jobs submitted, followed, signalled and
//! cancelled on the one-node cluster of `cargo xtask slurm up`.
//!
//! The tests are `slow_` (seconds each, and a cluster): a plain
//! `cargo nextest run` leaves them out; `cargo test` runs them, and they
//! fail unless `SLURM_CONF` names a running cluster:
//!
//! ```text
//! eval "$(cargo xtask slurm up)"    # as root; prints export SLURM_CONF=…
//! cargo test -p slurm
//! ```

use std::path::Path;
use std::time::Duration;

use slurm::{JobExit, JobId, JobInfo, JobSpec, JobState, Signal, Slurm, SlurmError};

/// Long enough for a job to start and end on a busy machine (they take
/// about a second).
const DEADLINE: Duration = Duration::from_secs(60);

fn cluster() -> Slurm {
    let conf = std::env::var_os("SLURM_CONF").unwrap_or_else(|| {
        panic!(
            "SLURM_CONF is not set: start the test cluster with `cargo xtask slurm up` \
             (as root) and export the SLURM_CONF it prints"
        )
    });
    Slurm::new(Some(conf.into()))
}

/// Polls the job until `done` holds of it, under [`DEADLINE`].
async fn wait_until(
    slurm: &Slurm,
    id: JobId,
    what: &str,
    done: impl Fn(&JobInfo) -> bool,
) -> JobInfo {
    let poll = async {
        loop {
            let info = slurm.job(id).await.expect("the job's state");
            if done(&info) {
                return info;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    match tokio::time::timeout(DEADLINE, poll).await {
        Ok(info) => info,
        Err(_) => panic!(
            "job {id} was not {what} within {DEADLINE:?}; last seen: {:?}",
            slurm.job(id).await
        ),
    }
}

fn output(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// A job whose script prints `ready` once it is set up, then waits.
async fn ready_job(slurm: &Slurm, dir: &Path, name: &str, script: &str) -> (JobId, JobSpec) {
    let job = JobSpec::new(name, dir, script);
    let id = slurm.submit(&job).await.expect("submitted");
    wait_until(slurm, id, "ready", |info| {
        info.state == JobState::Running && output(&job.stdout).contains("ready")
    })
    .await;
    (id, job)
}

#[tokio::test]
async fn slow_a_job_runs_then_completes_with_its_output_and_environment() {
    let slurm = cluster();
    let dir = tempfile::tempdir().unwrap();
    let mut job = JobSpec::new(
        "trdr-it-completes",
        dir.path(),
        "#!/bin/sh\necho \"hello $TRDR_GREETING from $SLURM_JOB_ID\"\n\
         while [ ! -e go ]; do sleep 0.1; done\necho done\n",
    );
    job.env = vec![("TRDR_GREETING".into(), "a b,c".into())];
    let id = slurm.submit(&job).await.unwrap();

    let running = wait_until(&slurm, id, "running", |info| {
        info.state == JobState::Running
    })
    .await;
    assert_eq!(running.name, "trdr-it-completes");
    assert!(running.node.is_some(), "{running:?}");
    assert_eq!(running.exit_code, None);
    std::fs::write(dir.path().join("go"), "").unwrap();

    let ended = wait_until(&slurm, id, "finished", |info| info.state.is_finished()).await;
    assert_eq!(ended.state, JobState::Completed, "{ended:?}");
    assert_eq!(ended.exit_code, Some(JobExit { code: 0, signal: 0 }));
    assert_eq!(ended.stdout.as_deref(), Some(job.stdout.as_path()));
    assert_eq!(
        output(&job.stdout),
        format!("hello a b,c from {id}\ndone\n")
    );
}

#[tokio::test]
async fn slow_int_reaches_the_script_which_ends_as_it_chooses() {
    let slurm = cluster();
    let dir = tempfile::tempdir().unwrap();
    // A script that traps INT, as a trainer saving its checkpoint would.
    let (id, job) = ready_job(
        &slurm,
        dir.path(),
        "trdr-it-int-trapped",
        "#!/bin/sh\ntrap 'echo got INT; exit 0' INT\necho ready\n\
         while :; do sleep 0.1; done\n",
    )
    .await;
    slurm.cancel(id, Some(Signal::Int)).await.unwrap();
    let ended = wait_until(&slurm, id, "finished", |info| info.state.is_finished()).await;
    assert_eq!(ended.state, JobState::Completed, "{ended:?}");
    assert!(output(&job.stdout).ends_with("ready\ngot INT\n"));

    // Untrapped, INT ends the script: the job failed, of signal 2; a signal
    // is not a cancellation.
    let dir = tempfile::tempdir().unwrap();
    let (id, _) = ready_job(
        &slurm,
        dir.path(),
        "trdr-it-int-untrapped",
        "#!/bin/sh\necho ready\nexec sleep 1000\n",
    )
    .await;
    slurm.cancel(id, Some(Signal::Int)).await.unwrap();
    let ended = wait_until(&slurm, id, "finished", |info| info.state.is_finished()).await;
    assert_eq!(ended.state, JobState::Failed, "{ended:?}");
    assert_eq!(ended.exit_code, Some(JobExit { code: 0, signal: 2 }));
}

#[tokio::test]
async fn slow_plain_cancel_ends_a_running_job_cancelled() {
    let slurm = cluster();
    let dir = tempfile::tempdir().unwrap();
    let (id, _) = ready_job(
        &slurm,
        dir.path(),
        "trdr-it-cancel",
        "#!/bin/sh\necho ready\nexec sleep 1000\n",
    )
    .await;
    slurm.cancel(id, None).await.unwrap();
    let ended = wait_until(&slurm, id, "finished", |info| info.state.is_finished()).await;
    assert_eq!(ended.state, JobState::Cancelled, "{ended:?}");
    assert_eq!(
        ended.exit_code,
        Some(JobExit {
            code: 0,
            signal: 15
        })
    );
    // Cancelling it again changes nothing and is no error, as with scancel.
    slurm.cancel(id, None).await.unwrap();
}

#[tokio::test]
async fn slow_a_pending_job_refuses_a_signal_and_is_cancelled_plainly() {
    let slurm = cluster();
    let dir = tempfile::tempdir().unwrap();
    let mut job = JobSpec::new("trdr-it-held", dir.path(), "#!/bin/sh\ntrue\n");
    job.extra_args = vec!["--hold".into()];
    let id = slurm.submit(&job).await.unwrap();
    let pending = slurm.job(id).await.unwrap();
    assert_eq!(pending.state, JobState::Pending);
    assert_eq!(pending.reason.as_deref(), Some("JobHeldUser"));
    assert_eq!((pending.node, pending.exit_code), (None, None));

    match slurm.cancel(id, Some(Signal::Int)).await {
        Err(SlurmError::NotRunning { id: refused, .. }) => assert_eq!(refused, id),
        other => panic!("expected NotRunning, got {other:?}"),
    }
    slurm.cancel(id, None).await.unwrap();
    let ended = wait_until(&slurm, id, "finished", |info| info.state.is_finished()).await;
    assert_eq!(ended.state, JobState::Cancelled, "{ended:?}");
}

#[tokio::test]
async fn slow_a_script_that_exits_3_fails_with_exit_code_3() {
    let slurm = cluster();
    let dir = tempfile::tempdir().unwrap();
    let job = JobSpec::new(
        "trdr-it-exit-3",
        dir.path(),
        "#!/bin/sh\necho failing >&2\nexit 3\n",
    );
    let id = slurm.submit(&job).await.unwrap();
    let ended = wait_until(&slurm, id, "finished", |info| info.state.is_finished()).await;
    assert_eq!(ended.state, JobState::Failed, "{ended:?}");
    assert_eq!(ended.reason.as_deref(), Some("NonZeroExitCode"));
    assert_eq!(ended.exit_code, Some(JobExit { code: 3, signal: 0 }));
    assert_eq!(output(&job.stderr), "failing\n");
}

#[tokio::test]
async fn slow_a_job_slurm_never_had_is_unknown() {
    let slurm = cluster();
    // Above any id this cluster hands out (MaxJobId is 67 043 328).
    let id = JobId(67_000_000);
    assert!(matches!(
        slurm.job(id).await,
        Err(SlurmError::UnknownJob { id: unknown }) if unknown == id
    ));
}
