//! A small typed wrapper over Slurm's command-line tools: submit a batch
//! job (`sbatch`), read its state (`scontrol show job`), signal or cancel it
//! (`scancel`). Async, on tokio's child processes; every command runs under a
//! timeout (10 s by default), so a controller that is down fails a call
//! within it instead of hanging.
//!
//! ```no_run
//! use std::path::PathBuf;
//!
//! use slurm::{JobSpec, Signal, Slurm};
//!
//! # async fn example() -> Result<(), slurm::SlurmError> {
//! // The config `cargo xtask slurm up` printed; `None` uses Slurm's own lookup.
//! let slurm = Slurm::new(Some(PathBuf::from("target/slurm/slurm.conf")));
//! let job = JobSpec::new("train", "/tmp/job-1", "#!/bin/sh\necho hello\n");
//! let id = slurm.submit(&job).await?;
//! let info = slurm.job(id).await?;
//! println!("job {id} is {}", info.state);
//! if !info.state.is_finished() {
//!     // Asks the batch script to stop; it may trap INT and save its work.
//!     slurm.cancel(id, Some(Signal::Int)).await?;
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Behaviour worth knowing (observed with Slurm 22.05; see `cargo xtask
//! slurm`): signalling a job is not cancelling it. After
//! `cancel(id, Some(Signal::Int))` a script that traps INT and exits ends
//! as its exit status says (`Completed` for 0, `Failed` otherwise), and an
//! untrapped INT ends it `Failed` with signal 2. Only a running job can be
//! signalled: any other fails with [`SlurmError::NotRunning`] at once
//! (a pending one is then cancelled plainly; nothing of it ran).
//! `cancel(id, None)` is plain `scancel`: TERM to the script's process
//! group, KILL after `KillWait`, state `Cancelled`; it succeeds for a job
//! that has already ended. `scontrol` forgets a job `MinJobAge` (300 s by
//! default) after it ends; [`Slurm::job`] then fails with
//! [`SlurmError::UnknownJob`].

mod job;
mod show;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Output, Stdio};
use std::time::Duration;

use tokio::process::Command;

pub use job::{JobExit, JobId, JobInfo, JobSpec, JobState, SCRIPT_FILE, Signal};

/// What went wrong talking to Slurm, naming the command.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SlurmError {
    /// A Slurm command is not installed.
    #[error("{program} not found: install slurm-client or run `cargo xtask slurm up`")]
    NotInstalled { program: &'static str },
    /// A command could not be started for another reason.
    #[error("`{command}` could not start: {source}")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    /// A command did not finish in time (slurmctld down or overloaded); it
    /// was killed.
    #[error("`{command}` did not finish within {} s; is slurmctld up?", timeout.as_secs_f64())]
    Timeout { command: String, timeout: Duration },
    /// A command failed; `stderr` is what it said, trimmed and bounded.
    #[error("`{command}` failed ({status}): {stderr}")]
    Failed {
        command: String,
        status: ExitStatus,
        stderr: String,
    },
    /// slurmctld does not know the job: never submitted, or ended more than
    /// `MinJobAge` ago.
    #[error("job {id} is unknown to slurmctld (never submitted, or ended more than MinJobAge ago)")]
    UnknownJob { id: JobId },
    /// A signal was refused because the job is not running: pending (not
    /// started yet), completing, ended, or unknown.
    #[error("job {id} cannot be sent {signal}: it is not running ({stderr})")]
    NotRunning {
        id: JobId,
        signal: Signal,
        stderr: String,
    },
    /// A command's output was not what Slurm prints.
    #[error("unexpected output of `{command}`: {reason}: {excerpt:?}")]
    Parse {
        command: String,
        reason: String,
        excerpt: String,
    },
    /// The batch script could not be written to the job's directory.
    #[error("cannot write the batch script {}: {source}", path.display())]
    Script {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The default bound on each command.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// How much of a command's stderr or output an error quotes.
const EXCERPT_CHARS: usize = 500;

/// The variables of the submitting process a job gets (when set).
const PASSED_ENV: &[&str] = &[
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TZ", "TMPDIR",
];

/// A handle on one Slurm cluster: its config, and how long a command may take.
#[derive(Debug, Clone)]
pub struct Slurm {
    conf: Option<PathBuf>,
    timeout: Duration,
    /// Where the Slurm commands are; `None` looks them up on `PATH`.
    bin_dir: Option<PathBuf>,
}

impl Slurm {
    /// A cluster whose commands read `conf` (set as `SLURM_CONF` for them),
    /// or, with `None`, whatever config Slurm finds itself (`SLURM_CONF` of
    /// this process, else `/etc/slurm/slurm.conf`).
    pub fn new(conf: Option<PathBuf>) -> Self {
        Self {
            conf,
            timeout: DEFAULT_TIMEOUT,
            bin_dir: None,
        }
    }

    /// The same cluster with another bound on each command.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The config passed to the commands, if any.
    pub fn conf(&self) -> Option<&Path> {
        self.conf.as_deref()
    }

    /// Writes the job's script to its directory and submits it with
    /// `sbatch --parsable --no-requeue`; see [`JobSpec`] for the arguments
    /// and the environment the job gets. A timeout here may leave a job
    /// submitted whose id was never read.
    pub async fn submit(&self, job: &JobSpec) -> Result<JobId, SlurmError> {
        let script = job.dir.join(SCRIPT_FILE);
        let text = job.script.clone();
        let path = script.clone();
        tokio::task::spawn_blocking(move || std::fs::write(&path, text))
            .await
            .map_err(|join| std::io::Error::other(join.to_string()))
            .and_then(|written| written)
            .map_err(|source| SlurmError::Script {
                path: script.clone(),
                source,
            })?;

        let mut command = self.command("sbatch");
        command.env_clear();
        for name in PASSED_ENV {
            if let Some(value) = std::env::var_os(name) {
                command.env(name, value);
            }
        }
        // Slurm's own lookup starts at this process's SLURM_CONF.
        if let Some(conf) = self
            .conf
            .clone()
            .map(OsString::from)
            .or_else(|| std::env::var_os("SLURM_CONF"))
        {
            command.env("SLURM_CONF", conf);
        }
        command.envs(job.env.iter().map(|(name, value)| (name, value)));
        command.args(submit_args(job, &script));
        let output = self.run("sbatch", command).await?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        // `ID` or, on a multi-cluster setup, `ID;CLUSTER`.
        let id = stdout.trim().split(';').next().unwrap_or_default();
        let id = id.parse().map_err(|_| SlurmError::Parse {
            command: "sbatch --parsable".into(),
            reason: "expected a job id".into(),
            excerpt: excerpt(&stdout),
        })?;
        tracing::debug!(job = %id, name = %job.name, "submitted a Slurm job");
        Ok(id)
    }

    /// What `scontrol show job --oneliner ID` says of the job: pending,
    /// running, or ended less than `MinJobAge` ago.
    pub async fn job(&self, id: JobId) -> Result<JobInfo, SlurmError> {
        let mut command = self.command("scontrol");
        command.args(["show", "job", "--oneliner", &id.to_string()]);
        let output = match self.run("scontrol", command).await {
            Err(SlurmError::Failed { stderr, .. }) if is_invalid_job_id(&stderr) => {
                return Err(SlurmError::UnknownJob { id });
            }
            other => other?,
        };
        let stdout = String::from_utf8_lossy(&output.stdout);
        show::job_info(&stdout, id).map_err(|show::ParseError(reason)| SlurmError::Parse {
            command: format!("scontrol show job --oneliner {id}"),
            reason,
            excerpt: excerpt(&stdout),
        })
    }

    /// With a signal, `scancel --state=RUNNING --full --signal=SIG ID`: the
    /// signal reaches the batch script and its children, and the job goes
    /// on (or ends) as the script decides; a job that is not running
    /// (pending, completing, ended, unknown) is not signalled and the call
    /// fails with [`SlurmError::NotRunning`]. Without, plain `scancel ID`: TERM, then
    /// KILL after `KillWait`, and the job ends `Cancelled`; a job that has
    /// ended already (or is unknown) is left as it is, without an error,
    /// as Slurm does.
    pub async fn cancel(&self, id: JobId, signal: Option<Signal>) -> Result<(), SlurmError> {
        let mut command = self.command("scancel");
        if let Some(signal) = signal {
            // Only a running job: asked to signal a pending one, scancel
            // retries for 95 s. Verbose, to hear that nothing matched.
            command.args([
                "--verbose",
                "--state=RUNNING",
                "--full",
                &format!("--signal={}", signal.name()),
            ]);
        }
        command.arg(id.to_string());
        let result = self.run("scancel", command).await;
        let Some(signal) = signal else {
            return result.map(|_| ());
        };
        let stderr = match result {
            Ok(output) => String::from_utf8_lossy(&output.stderr).into_owned(),
            Err(SlurmError::Failed { stderr, .. }) if refuses_signal(&stderr) => stderr,
            Err(err) => return Err(err),
        };
        if refuses_signal(&stderr) {
            return Err(SlurmError::NotRunning {
                id,
                signal,
                stderr: error_lines(&stderr),
            });
        }
        Ok(())
    }

    fn command(&self, program: &'static str) -> Command {
        let path: OsString = match &self.bin_dir {
            Some(dir) => dir.join(program).into(),
            None => program.into(),
        };
        let mut command = Command::new(path);
        if let Some(conf) = &self.conf {
            command.env("SLURM_CONF", conf);
        }
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command
    }

    /// Runs `command` to its end within the timeout and fails unless it
    /// exits successfully.
    async fn run(&self, program: &'static str, mut command: Command) -> Result<Output, SlurmError> {
        let shown = shown(program, &command);
        let child = command.spawn().map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                SlurmError::NotInstalled { program }
            } else {
                SlurmError::Spawn {
                    command: shown.clone(),
                    source,
                }
            }
        })?;
        // Dropping the future on timeout drops the child, which kills it.
        let output = tokio::time::timeout(self.timeout, child.wait_with_output())
            .await
            .map_err(|_| SlurmError::Timeout {
                command: shown.clone(),
                timeout: self.timeout,
            })?
            .map_err(|source| SlurmError::Spawn {
                command: shown.clone(),
                source,
            })?;
        if output.status.success() {
            Ok(output)
        } else {
            Err(SlurmError::Failed {
                command: shown,
                status: output.status,
                stderr: excerpt(&String::from_utf8_lossy(&output.stderr)),
            })
        }
    }
}

/// `sbatch`'s arguments for `job`, whose script is at `script`.
fn submit_args(job: &JobSpec, script: &Path) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec![
        "--parsable".into(),
        "--no-requeue".into(),
        "--export=ALL".into(),
        format!("--job-name={}", job.name).into(),
    ];
    let mut path_arg = |flag: &str, path: &Path| {
        let mut arg = OsString::from(flag);
        arg.push(path);
        args.push(arg);
    };
    path_arg("--chdir=", &job.dir);
    path_arg("--output=", &job.stdout);
    path_arg("--error=", &job.stderr);
    if let Some(partition) = &job.partition {
        args.push(format!("--partition={partition}").into());
    }
    args.extend(job.extra_args.iter().map(OsString::from));
    args.push(script.into());
    args
}

/// The command line for messages: the program and its arguments, bounded.
fn shown(program: &str, command: &Command) -> String {
    let mut line = program.to_owned();
    for arg in command.as_std().get_args() {
        line.push(' ');
        line.push_str(&arg.to_string_lossy());
    }
    bounded(&line, 300)
}

/// `text` trimmed, at most [`EXCERPT_CHARS`] characters.
fn excerpt(text: &str) -> String {
    bounded(text.trim(), EXCERPT_CHARS)
}

fn bounded(text: &str, chars: usize) -> String {
    match text.char_indices().nth(chars) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// `slurm_load_jobs error: Invalid job id specified`, and scancel's
/// `Kill job error on job id N: Invalid job id specified`.
fn is_invalid_job_id(stderr: &str) -> bool {
    stderr.contains("Invalid job id specified")
}

/// What `scancel --state=RUNNING` says of a job that is not running:
/// `No active jobs match ALL job filters` (pending, completing, ended;
/// exit 0, heard with `--verbose` only), `Invalid job id specified`
/// (ended or unknown), and, without the state filter, `Job can not be
/// altered now` (pending).
fn refuses_signal(stderr: &str) -> bool {
    is_invalid_job_id(stderr)
        || stderr.contains("No active jobs match")
        || stderr.contains("Job can not be altered now")
}

/// The `error:` lines of a verbose command's stderr (else all of it),
/// bounded.
fn error_lines(stderr: &str) -> String {
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|line| line.contains("error:"))
        .map(str::trim)
        .collect();
    if errors.is_empty() {
        excerpt(stderr)
    } else {
        excerpt(&errors.join("; "))
    }
}

#[cfg(test)]
mod tests;
