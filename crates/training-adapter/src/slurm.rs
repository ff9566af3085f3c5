//! The Slurm executor: each training is a batch job that runs `trdr` itself
//! on a compute node, and trdr follows the job.
//!
//! The executor writes the request, as the manager built it, into a job
//! file, and submits a script that runs `trdr slurm-job FILE`. The job
//! writes typed events (progress states, checkpoints, how it ended) as
//! NDJSON to its stdout, a file on the shared file system that the
//! executor reads as it grows: the same structs a local training reports,
//! so the display is the same and nothing is parsed out of text. Why not
//! `trdr train --json`: the node must train exactly the request the
//! manager checked (a strategy sent as text, overrides applied), as a
//! training host does, not re-read a strategy file.
//!
//! The job's state comes from `scontrol show job` (no accounting needed):
//! `PENDING` keeps the operation `pending` with Slurm's reason, `RUNNING`
//! starts it, naming the job and node. How it ended comes from the job's
//! own last event, not from its state alone (a job can end `COMPLETED`
//! without having run, on a drained node). A cancel sends SIGINT to the
//! batch script (`scancel --full --signal=INT`): the training stops within
//! a batch, saves its checkpoint and says so; plain `scancel` follows if
//! it has not ended within the grace period. The operation ends only once
//! the job has. A job that ends without saying how (time limit, node
//! failure, killed), or that a signal from elsewhere stopped (an admin's
//! `scancel`), fails with Slurm's state and reason; with
//! [`SlurmOptions::requeue_on_node_failure`], one lost with its node (or to
//! its time limit, or preempted) is submitted again from its last
//! checkpoint, at most that many times.
//!
//! The data and models folders, the checkpoints and the jobs folder must
//! be on a file system every node sees at the same paths, as on a cluster.

mod events;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use orchestrator_core::BoxError;
use slurm::{JobId, JobInfo, JobSpec, JobState, Signal, Slurm, SlurmError};

pub use events::{JOB_CANCELLED, JOB_FAILED, JobEvent, JobFile, run_job};

use crate::{AdapterError, Directories, Executor, SavedCheckpoint, TrainingJob, TrainingSummary};
use events::EventReader;

/// How a [`SlurmExecutor`] submits and follows jobs.
#[derive(Debug, Clone)]
pub struct SlurmOptions {
    /// The cluster's config (`SLURM_CONF` for the Slurm commands); `None`
    /// is Slurm's own lookup.
    pub conf: Option<PathBuf>,
    /// `--partition`; `None` is the cluster's default.
    pub partition: Option<String>,
    /// More `sbatch` arguments, as they are (`--time=2:00:00`, `--gres=gpu:1`).
    pub sbatch_args: Vec<String>,
    /// The `trdr` binary the job runs, at this path on the node.
    pub trdr: PathBuf,
    /// Where each job gets a folder of its own: the job file, the script,
    /// its stdout (the events) and stderr.
    pub jobs_dir: PathBuf,
    /// How many times a job lost with its node (or to its time limit, or
    /// preempted) is submitted again from its last checkpoint.
    pub requeue_on_node_failure: u32,
    /// How long a cancelled job has to stop after SIGINT before plain
    /// `scancel` (TERM, then KILL after the cluster's `KillWait`).
    pub cancel_grace: Duration,
    /// How often the job's output is read; its state is asked every
    /// [`STATE_EVERY`] reads.
    pub poll: Duration,
}

/// The job's state is asked of slurmctld at every this many reads of its
/// output: a process each time, and the output carries the progress.
pub const STATE_EVERY: u32 = 4;

/// How long slurmctld may stay unreachable before a job is given up on.
const SLURM_UNREACHABLE_LIMIT: Duration = Duration::from_secs(120);

impl SlurmOptions {
    /// Submits to the default partition, running `trdr`, with job folders
    /// in `jobs_dir`; no requeue, a 10 s cancel grace, output read every
    /// 100 ms.
    pub fn new(trdr: PathBuf, jobs_dir: PathBuf) -> Self {
        Self {
            conf: None,
            partition: None,
            sbatch_args: Vec::new(),
            trdr,
            jobs_dir,
            requeue_on_node_failure: 0,
            cancel_grace: Duration::from_secs(10),
            poll: Duration::from_millis(100),
        }
    }
}

/// Runs each training as a Slurm batch job; see the [module](self) doc.
#[derive(Debug, Clone)]
pub struct SlurmExecutor {
    slurm: Slurm,
    options: SlurmOptions,
}

/// Why a training on Slurm did not produce a model.
#[derive(Debug, thiserror::Error)]
pub enum SlurmTrainingError {
    #[error("cannot prepare the job folder {}", path.display())]
    JobFolder {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot submit the training to Slurm")]
    Submit(#[source] SlurmError),
    /// The training failed on the node; `error` is its own message.
    #[error("the training failed in Slurm job {job} on {node}: {error}")]
    Failed {
        job: JobId,
        node: String,
        error: String,
    },
    /// The job ended without the training saying it ended, or a signal
    /// from elsewhere stopped it.
    #[error(
        "Slurm job {job} ended {state}{}{}",
        reason_text(reason),
        stderr_text(stderr)
    )]
    Ended {
        job: JobId,
        state: String,
        reason: Option<String>,
        stderr: Option<PathBuf>,
    },
    #[error("lost contact with Slurm while following job {job}")]
    Unreachable {
        job: JobId,
        #[source]
        source: SlurmError,
    },
}

fn reason_text(reason: &Option<String>) -> String {
    reason
        .as_ref()
        .map_or_else(String::new, |reason| format!(" ({reason})"))
}

fn stderr_text(stderr: &Option<PathBuf>) -> String {
    stderr.as_ref().map_or_else(String::new, |path| {
        format!("; its log is {}", path.display())
    })
}

impl SlurmExecutor {
    pub fn new(options: SlurmOptions) -> Self {
        Self {
            slurm: Slurm::new(options.conf.clone()),
            options,
        }
    }
}

#[async_trait::async_trait]
impl Executor for SlurmExecutor {
    fn name(&self) -> &str {
        "slurm"
    }

    async fn train(&self, job: TrainingJob) -> Result<TrainingSummary, AdapterError> {
        let mut resume_from = job.checkpoints.as_ref().and_then(|c| c.resume_from.clone());
        let mut requeues_left = self.options.requeue_on_node_failure;
        loop {
            let run = self.run_once(&job, resume_from.clone()).await;
            match run {
                Ok(summary) => return Ok(summary),
                Err(Attempt::Lost { error, checkpoint }) if requeues_left > 0 => {
                    let Some(checkpoint) = checkpoint.or(resume_from.clone()) else {
                        return Err(AdapterError::Executor(Box::new(error)));
                    };
                    requeues_left -= 1;
                    tracing::warn!(error = %orchestrator_core::error_chain(&error), checkpoint = %checkpoint.display(), "the job was lost; submitting it again from its checkpoint");
                    job.start
                        .waiting(format!("{error}; submitting it again from its checkpoint"));
                    resume_from = Some(checkpoint);
                }
                Err(Attempt::Lost { error, .. } | Attempt::Failed(error)) => {
                    return Err(AdapterError::Executor(Box::new(error)));
                }
                Err(Attempt::Cancelled(stop)) => {
                    return Err(AdapterError::Executor(Box::new(stop)));
                }
            }
        }
    }

    async fn health(&self) -> Result<(), BoxError> {
        // Any answer from slurmctld will do; an unknown job is one.
        match self.slurm.job(JobId(u32::MAX)).await {
            Ok(_) | Err(SlurmError::UnknownJob { .. }) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }
}

/// How one submitted job ended, when not with a model.
enum Attempt {
    Failed(SlurmTrainingError),
    /// Lost to the cluster (node failure, time limit, preemption): worth
    /// submitting again from `checkpoint`, the last it saved.
    Lost {
        error: SlurmTrainingError,
        checkpoint: Option<PathBuf>,
    },
    Cancelled(orchestrator_core::Cancelled),
}

impl SlurmExecutor {
    /// Submits the job once and follows it to its end.
    async fn run_once(
        &self,
        job: &TrainingJob,
        resume_from: Option<PathBuf>,
    ) -> Result<TrainingSummary, Attempt> {
        let folder = self.job_folder(job, resume_from).map_err(Attempt::Failed)?;
        let id = self
            .slurm
            .submit(&folder.spec)
            .await
            .map_err(|error| Attempt::Failed(SlurmTrainingError::Submit(error)))?;
        tracing::info!(job = %id, folder = %folder.dir.display(), "submitted the training to Slurm");
        job.start.waiting(format!("submitted to Slurm as job {id}"));
        let mut follow = Follow {
            executor: self,
            job,
            id,
            folder: &folder,
            reader: EventReader::default(),
            ended_with: None,
            checkpoint: None,
            node: None,
            cancel_sent: None,
        };
        let outcome = follow.until_it_ends().await;
        if outcome.is_ok() {
            // Nothing in it is needed any more; a failed job's folder
            // keeps its log for whoever looks into it.
            if let Err(error) = std::fs::remove_dir_all(&folder.dir) {
                tracing::debug!(folder = %folder.dir.display(), %error, "cannot remove the job folder");
            }
        }
        outcome
    }

    /// Writes the job file and names the job's folder and output files.
    fn job_folder(
        &self,
        job: &TrainingJob,
        resume_from: Option<PathBuf>,
    ) -> Result<JobFolder, SlurmTrainingError> {
        let name = format!(
            "trdr-{}-{:08x}",
            job.request.strategy().name,
            fastrand::u32(..)
        );
        let dir = self.options.jobs_dir.join(&name);
        let folder_error = |source| SlurmTrainingError::JobFolder {
            path: dir.clone(),
            source,
        };
        std::fs::create_dir_all(&dir).map_err(folder_error)?;
        // The job runs in its folder: relative paths would mean other places.
        let absolute = |path: &Path| std::path::absolute(path).map_err(folder_error);
        let directories = Directories {
            data: absolute(&job.directories.data)?,
            models: absolute(&job.directories.models)?,
        };
        let checkpoint = match &job.checkpoints {
            Some(checkpoints) => Some(absolute(&checkpoints.path)?),
            None => None,
        };
        let resume_from = resume_from.as_deref().map(absolute).transpose()?;
        let file = JobFile::new(&job.request, directories, checkpoint, resume_from);
        let job_file = dir.join("job.json");
        let text = serde_json::to_vec_pretty(&file).map_err(|error| folder_error(error.into()))?;
        local_trainer::replace_atomically(&job_file, &text).map_err(folder_error)?;
        let script = format!(
            "#!/bin/sh\nexec {} slurm-job {}\n",
            shell_quote(&self.options.trdr),
            shell_quote(&job_file)
        );
        let mut spec = JobSpec::new(name, &dir, script);
        spec.partition = self.options.partition.clone();
        spec.extra_args = self.options.sbatch_args.clone();
        // The node's log level follows the server's.
        if let Ok(filter) = std::env::var("RUST_LOG") {
            spec.env.push(("RUST_LOG".to_owned(), filter));
        }
        Ok(JobFolder { dir, spec })
    }
}

struct JobFolder {
    dir: PathBuf,
    spec: JobSpec,
}

/// One job being followed: its events as they come, its state now and then.
struct Follow<'a> {
    executor: &'a SlurmExecutor,
    job: &'a TrainingJob,
    id: JobId,
    folder: &'a JobFolder,
    reader: EventReader,
    /// The job's last event, once it said how it ended.
    ended_with: Option<JobEvent>,
    checkpoint: Option<PathBuf>,
    /// Where it runs, once it does.
    node: Option<String>,
    /// When SIGINT was sent; plain `scancel` follows after the grace.
    cancel_sent: Option<Instant>,
}

impl Follow<'_> {
    async fn until_it_ends(&mut self) -> Result<TrainingSummary, Attempt> {
        let options = &self.executor.options;
        let mut reads = 0_u32;
        let mut unreachable_since: Option<Instant> = None;
        loop {
            self.take_events().await;
            if self.job.token.is_cancelled() {
                self.cancel().await;
            }
            if reads.is_multiple_of(STATE_EVERY) || self.cancel_sent.is_some() {
                match self.executor.slurm.job(self.id).await {
                    Ok(info) => {
                        unreachable_since = None;
                        if info.state.is_finished() {
                            // What it wrote last, before deciding.
                            self.take_events().await;
                            return self.outcome(Some(&info));
                        }
                        self.observe(&info);
                    }
                    // Forgotten (ended more than MinJobAge ago).
                    Err(SlurmError::UnknownJob { .. }) => {
                        self.take_events().await;
                        return self.outcome(None);
                    }
                    Err(error) => {
                        let since = *unreachable_since.get_or_insert_with(Instant::now);
                        if since.elapsed() > SLURM_UNREACHABLE_LIMIT {
                            return Err(Attempt::Failed(SlurmTrainingError::Unreachable {
                                job: self.id,
                                source: error,
                            }));
                        }
                        tracing::warn!(job = %self.id, error = %orchestrator_core::error_chain(&error), "cannot ask Slurm about the job; asking again");
                    }
                }
            }
            reads = reads.wrapping_add(1);
            tokio::select! {
                () = tokio::time::sleep(options.poll) => {}
                () = self.job.token.cancelled(), if self.cancel_sent.is_none() => {}
            }
        }
    }

    /// Reports the events the job wrote since the last read. The first
    /// says it runs: the operation starts (asking Slurm where) before its
    /// first progress.
    async fn take_events(&mut self) {
        let events = match self.reader.read_new(&self.folder.spec.stdout) {
            Ok(events) => events,
            Err(error) => {
                tracing::warn!(job = %self.id, path = %self.folder.spec.stdout.display(), %error, "cannot read the job's output");
                return;
            }
        };
        if !events.is_empty() && self.node.is_none() {
            let node = self
                .executor
                .slurm
                .job(self.id)
                .await
                .ok()
                .and_then(|info| info.node);
            self.runs(node.as_deref());
        }
        for event in events {
            match event {
                JobEvent::Progress { state } => self.job.progress.report(state),
                JobEvent::Checkpoint {
                    path,
                    bytes,
                    epoch,
                    batch,
                    took_seconds,
                } => {
                    if let Some(checkpoints) = &self.job.checkpoints {
                        (checkpoints.on_saved)(&SavedCheckpoint {
                            path: path.clone(),
                            bytes,
                            epoch,
                            batch,
                            took: Duration::from_secs_f64(took_seconds.max(0.0)),
                        });
                    }
                    self.checkpoint = Some(path);
                }
                ended => self.ended_with = Some(ended),
            }
        }
    }

    /// Follows the job's state: the queue's reason while it waits, where
    /// it runs once it does.
    fn observe(&mut self, info: &JobInfo) {
        match info.state {
            JobState::Pending | JobState::Requeued => {
                let reason = info
                    .reason
                    .as_deref()
                    .map_or_else(String::new, |reason| format!(": {reason}"));
                self.job
                    .start
                    .waiting(format!("queued on Slurm as job {}{reason}", self.id));
            }
            JobState::Running | JobState::Configuring | JobState::Completing => {
                self.runs(info.node.as_deref());
            }
            _ => {}
        }
    }

    /// Records, once, that the job runs (on `node`, if known): when Slurm
    /// says so, or when its first event arrives.
    fn runs(&mut self, node: Option<&str>) {
        if self.node.is_none() {
            let node = node.unwrap_or("a node").to_owned();
            self.job
                .start
                .running(format!("Slurm job {} on {node}", self.id));
            self.node = Some(node);
        }
    }

    /// Asks the job to stop: SIGINT to the batch script while it runs (the
    /// training saves its checkpoint and stops), plain `scancel` while it
    /// is queued or once the grace period is over.
    async fn cancel(&mut self) {
        let slurm = &self.executor.slurm;
        match self.cancel_sent {
            None => {
                self.cancel_sent = Some(Instant::now());
                match slurm.cancel(self.id, Some(Signal::Int)).await {
                    Ok(()) => {}
                    // Queued, or ending already: remove it plainly.
                    Err(SlurmError::NotRunning { .. }) => self.scancel().await,
                    Err(error) => {
                        tracing::warn!(job = %self.id, error = %orchestrator_core::error_chain(&error), "cannot signal the job; cancelling it");
                        self.scancel().await;
                    }
                }
            }
            Some(sent) if sent.elapsed() > self.executor.options.cancel_grace => {
                self.scancel().await;
                // Once more only after another grace period.
                self.cancel_sent = Some(Instant::now());
            }
            Some(_) => {}
        }
    }

    async fn scancel(&self) {
        if let Err(error) = self.executor.slurm.cancel(self.id, None).await {
            tracing::warn!(job = %self.id, error = %orchestrator_core::error_chain(&error), "cannot cancel the job");
        }
    }

    /// How the ended job's training ended (see [`verdict`]), as this
    /// attempt's outcome; `info` is `None` once slurmctld forgot the job.
    fn outcome(&mut self, info: Option<&JobInfo>) -> Result<TrainingSummary, Attempt> {
        let state = info.map(|info| &info.state);
        let reason = info.and_then(|info| info.reason.clone());
        let requested = self.cancel_sent.is_some();
        let ended = |reason: Option<String>| SlurmTrainingError::Ended {
            job: self.id,
            state: state.map_or_else(
                || "(no longer known to slurmctld)".to_owned(),
                ToString::to_string,
            ),
            reason,
            stderr: Some(self.folder.spec.stderr.clone()),
        };
        match verdict(self.ended_with.take(), requested, state, reason) {
            Verdict::Completed(summary) => Ok(*summary),
            Verdict::FailedOnNode(error) => Err(Attempt::Failed(SlurmTrainingError::Failed {
                job: self.id,
                node: self.node.clone().unwrap_or_else(|| "its node".to_owned()),
                error,
            })),
            Verdict::Cancelled(stage) => Err(Attempt::Cancelled(
                self.job
                    .token
                    .cancelled_error(format!("{stage}, in Slurm job {}", self.id)),
            )),
            Verdict::Lost(reason) => Err(Attempt::Lost {
                error: ended(reason),
                checkpoint: self.checkpoint.clone(),
            }),
            Verdict::Ended(reason) => Err(Attempt::Failed(ended(reason))),
        }
    }
}

/// How a job's training ended.
#[derive(Debug, PartialEq)]
enum Verdict {
    Completed(Box<TrainingSummary>),
    /// The training's own error.
    FailedOnNode(String),
    /// Stopped on trdr's request, at this stage.
    Cancelled(String),
    /// Lost to the cluster (node failure, time limit, preemption, boot
    /// failure): worth submitting again from its checkpoint.
    Lost(Option<String>),
    /// Ended otherwise without a model, for this reason.
    Ended(Option<String>),
}

/// Judges an ended job: the training's last event first (a job can end
/// `COMPLETED` without having run), then whether trdr asked it to stop,
/// then Slurm's `state` and `reason`. A training that a signal trdr did
/// not send stopped was stopped by the scheduler: lost with its node (or
/// time, or to preemption), or cancelled by someone else.
fn verdict(
    last: Option<JobEvent>,
    requested: bool,
    state: Option<&JobState>,
    reason: Option<String>,
) -> Verdict {
    let stopped_during = match last {
        Some(JobEvent::Completed { summary }) => return Verdict::Completed(Box::new(summary)),
        Some(JobEvent::Failed { error }) => return Verdict::FailedOnNode(error),
        Some(JobEvent::Cancelled { stage }) => Some(stage),
        Some(JobEvent::Progress { .. } | JobEvent::Checkpoint { .. }) | None => None,
    };
    let state_name = state.map_or_else(|| "unknown".to_owned(), ToString::to_string);
    if requested {
        return Verdict::Cancelled(stopped_during.unwrap_or_else(|| {
            format!("the job, which ended {state_name} before the training said so")
        }));
    }
    let lost = state.is_some_and(|state| {
        matches!(
            state,
            JobState::NodeFail | JobState::Timeout | JobState::Preempted | JobState::BootFail
        )
    });
    match (lost, stopped_during) {
        (true, _) => Verdict::Lost(reason),
        (false, Some(stage)) => Verdict::Ended(Some(format!(
            "cancelled by the scheduler: a signal from outside trdr stopped the training during {stage}"
        ))),
        (false, None) => Verdict::Ended(reason),
    }
}

/// `path` as one word of a POSIX shell command.
fn shell_quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_quoted_for_the_shell() {
        assert_eq!(shell_quote(Path::new("/a b/c")), "'/a b/c'");
        assert_eq!(shell_quote(Path::new("/it's")), r"'/it'\''s'");
    }

    fn cancelled(stage: &str) -> Option<JobEvent> {
        Some(JobEvent::Cancelled {
            stage: stage.to_owned(),
        })
    }

    #[test]
    fn a_job_is_judged_by_its_last_event_then_the_request_then_slurm() {
        let failed = Some(JobEvent::Failed {
            error: "no data".to_owned(),
        });
        let completed = Some(&JobState::Completed);
        let node_down = Some("NodeDown".to_owned());
        assert_eq!(
            verdict(failed, true, completed, None),
            Verdict::FailedOnNode("no data".to_owned())
        );
        // Asked to stop: stopped, wherever Slurm's state says.
        assert_eq!(
            verdict(cancelled("training"), true, Some(&JobState::Failed), None),
            Verdict::Cancelled("training".to_owned())
        );
        assert_eq!(
            verdict(None, true, Some(&JobState::Cancelled), None),
            Verdict::Cancelled(
                "the job, which ended CANCELLED before the training said so".to_owned()
            )
        );
        // The node went down: slurmd's signal stopped the training.
        assert_eq!(
            verdict(
                cancelled("training"),
                false,
                Some(&JobState::NodeFail),
                node_down.clone()
            ),
            Verdict::Lost(node_down.clone())
        );
        assert_eq!(
            verdict(None, false, Some(&JobState::Timeout), None),
            Verdict::Lost(None)
        );
        // An admin's scancel.
        let Verdict::Ended(Some(why)) = verdict(
            cancelled("training"),
            false,
            Some(&JobState::Cancelled),
            None,
        ) else {
            panic!("not ended")
        };
        assert!(why.starts_with("cancelled by the scheduler"), "{why}");
        // COMPLETED without a word from the training: it did not run.
        assert_eq!(verdict(None, false, completed, None), Verdict::Ended(None));
        assert_eq!(verdict(None, false, None, None), Verdict::Ended(None));
    }

    #[test]
    fn an_ended_job_names_its_state_reason_and_log() {
        let error = SlurmTrainingError::Ended {
            job: JobId(7),
            state: "TIMEOUT".to_owned(),
            reason: Some("TimeLimit".to_owned()),
            stderr: Some(PathBuf::from("/jobs/x/stderr.log")),
        };
        assert_eq!(
            error.to_string(),
            "Slurm job 7 ended TIMEOUT (TimeLimit); its log is /jobs/x/stderr.log"
        );
    }
}
