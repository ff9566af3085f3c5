//! What a job is to this crate: its id, what to submit, its state as
//! `scontrol` reports it, and the signals it can be sent.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// A Slurm job id, as `sbatch --parsable` prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct JobId(pub u32);

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for JobId {
    type Err = std::num::ParseIntError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        text.parse().map(JobId)
    }
}

/// A batch job to submit.
///
/// The job runs `script` (a shell script with its `#!` line) in `dir`,
/// where [`Slurm::submit`](crate::Slurm::submit) writes it as
/// [`SCRIPT_FILE`] first. Its environment is `env`, plus `PATH`, `HOME`,
/// `USER`, `LOGNAME`, `LANG`, `LC_ALL`, `TZ` and `TMPDIR` where the
/// submitting process has them, `SLURM_CONF` (the one the
/// [`Slurm`](crate::Slurm) names, else the submitting process's), and the
/// `SLURM_*` variables Slurm adds: nothing else of the submitter's
/// environment (a server's token, say) reaches the job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSpec {
    /// `--job-name`.
    pub name: String,
    /// `--chdir`: the job's working directory, which holds the script. It
    /// must exist, on the node as here (one machine, or a shared file system).
    pub dir: PathBuf,
    /// The batch script's text.
    pub script: String,
    /// `--output`: the job's stdout; Slurm expands `%j` to the job id.
    pub stdout: PathBuf,
    /// `--error`: the job's stderr.
    pub stderr: PathBuf,
    /// `--partition`; `None` is the cluster's default partition.
    pub partition: Option<String>,
    /// Environment variables of the job, on top of the few listed above.
    pub env: Vec<(String, String)>,
    /// More `sbatch` arguments, passed as they are before the script
    /// (`--cpus-per-task=2`, `--time=1:00:00`, …).
    pub extra_args: Vec<String>,
}

/// The name of the batch script [`Slurm::submit`](crate::Slurm::submit)
/// writes in the job's directory (Slurm keeps its own copy once submitted).
pub const SCRIPT_FILE: &str = "slurm-job.sh";

impl JobSpec {
    /// A job named `name` running `script` in `dir`, its output in
    /// `dir/stdout.log` and `dir/stderr.log`, on the default partition.
    pub fn new(
        name: impl Into<String>,
        dir: impl Into<PathBuf>,
        script: impl Into<String>,
    ) -> Self {
        let dir = dir.into();
        Self {
            name: name.into(),
            stdout: dir.join("stdout.log"),
            stderr: dir.join("stderr.log"),
            dir,
            script: script.into(),
            partition: None,
            env: Vec::new(),
            extra_args: Vec::new(),
        }
    }
}

/// A job's state: `JobState=` of `scontrol show job`, Slurm's own names.
///
/// `Completing` is shown while a job that ended (by any way) still has
/// processes; the base state shows once they are gone.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum JobState {
    Pending,
    Configuring,
    Running,
    Completing,
    Completed,
    Failed,
    Cancelled,
    Timeout,
    NodeFail,
    Preempted,
    BootFail,
    OutOfMemory,
    Deadline,
    Suspended,
    Requeued,
    /// Any other name Slurm shows (`RESIZING`, `REQUEUE_HOLD`,
    /// `SPECIAL_EXIT`, `SIGNALING`, `STAGE_OUT`, …), as shown.
    Other(String),
}

impl JobState {
    const NAMES: [(&'static str, JobState); 15] = [
        ("PENDING", JobState::Pending),
        ("CONFIGURING", JobState::Configuring),
        ("RUNNING", JobState::Running),
        ("COMPLETING", JobState::Completing),
        ("COMPLETED", JobState::Completed),
        ("FAILED", JobState::Failed),
        ("CANCELLED", JobState::Cancelled),
        ("TIMEOUT", JobState::Timeout),
        ("NODE_FAIL", JobState::NodeFail),
        ("PREEMPTED", JobState::Preempted),
        ("BOOT_FAIL", JobState::BootFail),
        ("OUT_OF_MEMORY", JobState::OutOfMemory),
        ("DEADLINE", JobState::Deadline),
        ("SUSPENDED", JobState::Suspended),
        ("REQUEUED", JobState::Requeued),
    ];

    /// The state Slurm names `name`.
    pub(crate) fn from_slurm(name: &str) -> Self {
        Self::NAMES
            .iter()
            .find(|(known, _)| *known == name)
            .map_or_else(
                || JobState::Other(name.to_owned()),
                |(_, state)| state.clone(),
            )
    }

    /// Whether the job has ended for good, its processes gone: completed,
    /// failed, cancelled, timed out, lost with its node, preempted, never
    /// booted, out of memory or past its deadline. `Completing` is not (its
    /// processes may still run), nor is `Requeued` (it will run again), nor
    /// any `Other` state.
    pub fn is_finished(&self) -> bool {
        matches!(
            self,
            JobState::Completed
                | JobState::Failed
                | JobState::Cancelled
                | JobState::Timeout
                | JobState::NodeFail
                | JobState::Preempted
                | JobState::BootFail
                | JobState::OutOfMemory
                | JobState::Deadline
        )
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let JobState::Other(name) = self {
            return f.write_str(name);
        }
        let name = Self::NAMES
            .iter()
            .find(|(_, state)| state == self)
            .map_or("UNKNOWN", |(name, _)| name);
        f.write_str(name)
    }
}

/// How a job's batch script ended: `ExitCode=CODE:SIGNAL`. A script that
/// exits 3 is `3:0`; one killed by SIGKILL is `0:9`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct JobExit {
    /// The script's exit status (0 when a signal ended it).
    pub code: i32,
    /// The signal that ended the script, 0 if none.
    pub signal: i32,
}

impl fmt::Display for JobExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.code, self.signal)
    }
}

/// What `scontrol show job` says of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct JobInfo {
    pub id: JobId,
    pub name: String,
    pub state: JobState,
    /// Why it waits or how it ended (`Resources`, `Priority`, `JobHeldUser`,
    /// `NonZeroExitCode`, `NodeDown`, …); `None` when Slurm says `None`.
    pub reason: Option<String>,
    /// How the batch script ended; `Some` once the state
    /// [is finished](JobState::is_finished) (Slurm shows `0:0` before).
    pub exit_code: Option<JobExit>,
    /// The node it runs or ran on (`NodeList`); `None` before it starts.
    pub node: Option<String>,
    /// `StartTime` and `EndTime` as Slurm writes them
    /// (`2026-11-30T04:42:07`, local time); `None` while `Unknown`. A
    /// pending job's `StartTime` may be an estimate.
    pub start_time: Option<String>,
    pub end_time: Option<String>,
    /// `StdOut` and `StdErr`, with `%j` expanded.
    pub stdout: Option<PathBuf>,
    pub stderr: Option<PathBuf>,
}

/// A signal [`Slurm::cancel`](crate::Slurm::cancel) can send to a running
/// job's batch script and its children.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Signal {
    Int,
    Term,
    Hup,
    Usr1,
    Usr2,
}

impl Signal {
    /// The name `scancel --signal` takes.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Int => "INT",
            Signal::Term => "TERM",
            Signal::Hup => "HUP",
            Signal::Usr1 => "USR1",
            Signal::Usr2 => "USR2",
        }
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_through_slurm_names() {
        for (name, state) in JobState::NAMES {
            assert_eq!(JobState::from_slurm(name), state);
            assert_eq!(state.to_string(), name);
        }
        let other = JobState::from_slurm("REQUEUE_HOLD");
        assert_eq!(other, JobState::Other("REQUEUE_HOLD".into()));
        assert_eq!(other.to_string(), "REQUEUE_HOLD");
    }

    #[test]
    fn only_ended_states_are_finished() {
        let finished: Vec<String> = JobState::NAMES
            .iter()
            .filter(|(_, state)| state.is_finished())
            .map(|(name, _)| (*name).to_owned())
            .collect();
        assert_eq!(
            finished,
            [
                "COMPLETED",
                "FAILED",
                "CANCELLED",
                "TIMEOUT",
                "NODE_FAIL",
                "PREEMPTED",
                "BOOT_FAIL",
                "OUT_OF_MEMORY",
                "DEADLINE"
            ]
        );
        assert!(!JobState::Other("SPECIAL_EXIT".into()).is_finished());
    }

    #[test]
    fn a_spec_keeps_its_output_in_its_dir() {
        let spec = JobSpec::new("train", "/jobs/7", "#!/bin/sh\ntrue\n");
        assert_eq!(spec.stdout, PathBuf::from("/jobs/7/stdout.log"));
        assert_eq!(spec.stderr, PathBuf::from("/jobs/7/stderr.log"));
        assert_eq!(spec.partition, None);
    }

    #[test]
    fn ids_and_exits_print_as_slurm_does() {
        assert_eq!("42".parse::<JobId>().unwrap(), JobId(42));
        assert!("42;cluster".parse::<JobId>().is_err());
        assert_eq!(JobId(42).to_string(), "42");
        assert_eq!(JobExit { code: 0, signal: 9 }.to_string(), "0:9");
        assert_eq!(Signal::Int.to_string(), "INT");
    }
}
