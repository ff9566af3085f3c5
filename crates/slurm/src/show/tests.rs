//! Unit tests of the scontrol reader, on output captured from Slurm 22.05
//! (`cargo xtask slurm up`; how each was made is said beside it).

use std::path::Path;

use super::*;

fn info(fixture: &str, id: u32) -> JobInfo {
    job_info(fixture, JobId(id)).unwrap_or_else(|err| panic!("{err:?} in {fixture}"))
}

/// The fields a test looks at, as one line.
fn summary(info: &JobInfo) -> String {
    format!(
        "{} {} reason={:?} exit={:?} node={:?} start={:?} end={:?}",
        info.id,
        info.state,
        info.reason,
        info.exit_code.map(|exit| exit.to_string()),
        info.node,
        info.start_time,
        info.end_time,
    )
}

// A third 1-CPU job on a 2-CPU node, waiting.
const PENDING: &str = include_str!("fixtures/pending.txt");
// `sbatch --hold`.
const HELD: &str = include_str!("fixtures/held.txt");
// A name and directory with spaces, and `--comment "a comment x=y Reason=z"`.
const RUNNING: &str = include_str!("fixtures/running_spaces_comment.txt");
// `--wrap 'echo hi'`.
const COMPLETED: &str = include_str!("fixtures/completed.txt");
// `--wrap 'exit 3'`.
const FAILED_EXIT_3: &str = include_str!("fixtures/failed_exit_3.txt");
// `--wrap 'sleep 1000'`, then `scancel --full --signal=INT`.
const FAILED_SIGINT: &str = include_str!("fixtures/failed_sigint.txt");
// A script that ignores TERM, then plain `scancel`: KILL after KillWait.
const CANCELLED_KILLED: &str = include_str!("fixtures/cancelled_killed.txt");
// The same script, just after `scancel`, while it still runs.
const COMPLETING: &str = include_str!("fixtures/completing.txt");
// A pending job, then plain `scancel`.
const CANCELLED_PENDING: &str = include_str!("fixtures/cancelled_pending.txt");
// A running job, then `scontrol update nodename=… state=down`.
const NODE_FAIL: &str = include_str!("fixtures/node_fail.txt");
// `--time=0:01:00 --wrap 'sleep 1000'`.
const TIMEOUT: &str = include_str!("fixtures/timeout.txt");

#[test]
fn each_state_reads_as_slurm_showed_it() {
    let cases = [
        (
            PENDING,
            18,
            "18 PENDING reason=Some(\"Resources\") exit=None node=None start=None end=None",
        ),
        (
            HELD,
            19,
            "19 PENDING reason=Some(\"JobHeldUser\") exit=None node=None start=None end=None",
        ),
        (
            RUNNING,
            17,
            "17 RUNNING reason=None exit=None node=Some(\"vm\") \
             start=Some(\"2026-11-30T04:43:42\") end=None",
        ),
        (
            COMPLETED,
            1,
            "1 COMPLETED reason=None exit=Some(\"0:0\") node=Some(\"vm\") \
             start=Some(\"2026-11-30T04:42:07\") end=Some(\"2026-11-30T04:42:07\")",
        ),
        (
            FAILED_SIGINT,
            3,
            "3 FAILED reason=Some(\"JobLaunchFailure\") exit=Some(\"0:2\") node=Some(\"vm\") \
             start=Some(\"2026-11-30T04:42:13\") end=Some(\"2026-11-30T04:42:33\")",
        ),
        (
            CANCELLED_KILLED,
            5,
            "5 CANCELLED reason=None exit=Some(\"0:9\") node=Some(\"vm\") \
             start=Some(\"2026-11-30T04:42:43\") end=Some(\"2026-11-30T04:42:43\")",
        ),
        (
            CANCELLED_PENDING,
            18,
            "18 CANCELLED reason=Some(\"Resources\") exit=Some(\"0:0\") node=None \
             start=Some(\"2026-11-30T04:43:44\") end=Some(\"2026-11-30T04:43:44\")",
        ),
        (
            NODE_FAIL,
            16,
            "16 NODE_FAIL reason=Some(\"NodeDown\") exit=Some(\"0:0\") node=Some(\"vm\") \
             start=Some(\"2026-11-30T04:43:42\") end=Some(\"2026-11-30T04:43:45\")",
        ),
    ];
    for (fixture, id, expected) in cases {
        assert_eq!(summary(&info(fixture, id)), expected);
    }
}

#[test]
fn a_failed_script_keeps_its_exit_status() {
    let failed = info(FAILED_EXIT_3, id_of(FAILED_EXIT_3));
    assert_eq!(failed.state, JobState::Failed);
    assert_eq!(failed.reason.as_deref(), Some("NonZeroExitCode"));
    assert_eq!(failed.exit_code, Some(JobExit { code: 3, signal: 0 }));
}

#[test]
fn a_completing_job_is_not_finished_and_has_no_exit_yet() {
    let completing = info(COMPLETING, id_of(COMPLETING));
    assert_eq!(completing.state, JobState::Completing);
    assert!(!completing.state.is_finished());
    assert_eq!(completing.exit_code, None);
}

#[test]
fn a_job_past_its_time_limit_timed_out() {
    let timeout = info(TIMEOUT, id_of(TIMEOUT));
    assert_eq!(timeout.state, JobState::Timeout);
    assert_eq!(timeout.reason.as_deref(), Some("TimeLimit"));
    assert!(timeout.state.is_finished());
}

/// The id on a fixture's line.
fn id_of(fixture: &str) -> u32 {
    get(&fields(fixture.trim_end()), "JobId")
        .and_then(|id| id.parse().ok())
        .expect("a JobId")
}

#[test]
fn free_text_keeps_its_spaces_and_cannot_fake_fields() {
    let running = info(RUNNING, 17);
    assert_eq!(running.name, "name with spaces");
    // The comment holds `Reason=z`; the job's own reason comes first.
    assert_eq!(running.reason, None);
    assert_eq!(
        running.stdout.as_deref(),
        Some(Path::new("/tmp/sx/jobs/dir with space/17.out"))
    );
    let fields = fields(RUNNING.trim_end());
    assert_eq!(get(&fields, "WorkDir"), Some("/tmp/sx/jobs/dir with space"));
    assert_eq!(get(&fields, "Comment"), Some("a comment x=y"));
    assert_eq!(get(&fields, "Power"), Some(""));
}

#[test]
fn a_name_runs_to_user_id_whatever_it_holds() {
    let line = "JobId=7 JobName=x JobState=COMPLETED ExitCode=0:0 UserId=root(0) \
                JobState=RUNNING Reason=None ExitCode=0:0 NodeList=vm";
    let job = info(line, 7);
    assert_eq!(job.name, "x JobState=COMPLETED ExitCode=0:0");
    assert_eq!(job.state, JobState::Running);
}

#[test]
fn an_unknown_key_ends_a_plain_value_but_not_free_text() {
    let line = "JobId=7 JobName=a UserId=u JobState=PENDING NewKey=1 Reason=Priority \
                WorkDir=/d NewKey2=2 StdOut=/o";
    let fields = fields(line);
    assert_eq!(get(&fields, "NewKey"), Some("1"));
    assert_eq!(get(&fields, "Reason"), Some("Priority"));
    assert_eq!(get(&fields, "WorkDir"), Some("/d NewKey2=2"));
    assert_eq!(get(&fields, "StdOut"), Some("/o"));
}

#[test]
fn the_wanted_job_is_picked_among_several_lines() {
    let output = "JobId=8 JobName=a UserId=u JobState=RUNNING ExitCode=0:0\n\
                  JobId=9 JobName=b UserId=u JobState=COMPLETED ExitCode=0:0\n";
    let job = info(output, 9);
    assert_eq!((job.name.as_str(), job.state), ("b", JobState::Completed));
}

#[test]
fn output_that_is_not_the_job_is_an_error() {
    assert_eq!(
        job_info("JobId=8 JobName=a UserId=u JobState=RUNNING", JobId(9)),
        Err(ParseError("no line with JobId=9".into()))
    );
    assert_eq!(
        job_info("JobId=9 JobName=a UserId=u", JobId(9)),
        Err(ParseError("no JobState".into()))
    );
    assert_eq!(
        job_info("JobId=9 JobState=FAILED ExitCode=x", JobId(9)),
        Err(ParseError("ExitCode `x` is not CODE:SIGNAL".into()))
    );
    assert!(job_info("", JobId(9)).is_err());
}
