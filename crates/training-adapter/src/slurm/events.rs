//! What travels between `trdr serve` and a training's Slurm job, through
//! the shared file system: the job file the executor writes (the request
//! as the manager built it), and the typed events the job writes to its
//! stdout, one JSON object per line.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use chrono::{DateTime, Utc};
use orchestrator_core::{CancellationToken, Cancelled, error_chain};
use progress::ProgressState;
use serde::{Deserialize, Serialize};
use strategy::StrategyConfig;

use crate::{
    Checkpoints, Directories, SavedCheckpoint, TrainingOptions, TrainingRequest, TrainingSummary,
};

/// One training as its job runs it: what the manager checked, where the
/// node reads and writes (the same paths as the server's: a shared file
/// system), and where it saves checkpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobFile {
    pub strategy: StrategyConfig,
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    pub options: TrainingOptions,
    pub directories: Directories,
    /// Where the job saves its checkpoints.
    pub checkpoint: Option<PathBuf>,
    /// The checkpoint it continues from.
    pub resume_from: Option<PathBuf>,
}

impl JobFile {
    pub(crate) fn new(
        request: &TrainingRequest,
        directories: Directories,
        checkpoint: Option<PathBuf>,
        resume_from: Option<PathBuf>,
    ) -> Self {
        Self {
            strategy: request.strategy().clone(),
            start: request.start(),
            end: request.end(),
            options: *request.options(),
            directories,
            checkpoint,
            resume_from,
        }
    }
}

/// What a training's job says, in order: progress, each checkpoint, and
/// one last event saying how it ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[expect(
    clippy::large_enum_variant,
    reason = "events are written and read one at a time"
)]
pub enum JobEvent {
    /// `state.updated_at` is when the job wrote it, by the node's clock;
    /// the executor's reporter stamps it again on arrival, so only the
    /// job's output keeps it (`cargo xtask bench slurm` reads it there to
    /// time the way from node to client).
    Progress {
        state: ProgressState,
    },
    Checkpoint {
        path: PathBuf,
        bytes: u64,
        epoch: usize,
        batch: usize,
        took_seconds: f64,
    },
    Completed {
        summary: TrainingSummary,
    },
    /// Stopped by a signal (a cancel, or the scheduler's TERM), at `stage`.
    Cancelled {
        stage: String,
    },
    Failed {
        error: String,
    },
}

/// How a job's training ended, as its exit status: 0 completed, 1 failed,
/// 130 stopped by a signal (as a shell reports Ctrl-C).
pub const JOB_FAILED: u8 = 1;
pub const JOB_CANCELLED: u8 = 130;

/// Runs the training of the job file at `path` on this node, writing its
/// events as NDJSON to `out`; cancelling `token` (the job's SIGINT or
/// SIGTERM) stops it within a batch, its checkpoint saved. Returns the exit
/// status: 0, [`JOB_FAILED`] or [`JOB_CANCELLED`].
pub fn run_job(path: &Path, token: &CancellationToken, out: Box<dyn Write + Send>) -> u8 {
    let events = EventWriter(Arc::new(Mutex::new(out)));
    let (event, status) = match train(path, token, &events) {
        Ok(summary) => (JobEvent::Completed { summary }, 0),
        Err(error) => match Cancelled::find_in(&*error) {
            Some(stop) => (
                JobEvent::Cancelled {
                    stage: stop.stage.to_string(),
                },
                JOB_CANCELLED,
            ),
            None => (
                JobEvent::Failed {
                    error: error_chain(&*error),
                },
                JOB_FAILED,
            ),
        },
    };
    match events.write(&event) {
        Ok(()) => status,
        // Nobody can hear how it ended: say it failed.
        Err(_) => JOB_FAILED,
    }
}

fn train(
    path: &Path,
    token: &CancellationToken,
    events: &EventWriter,
) -> Result<TrainingSummary, orchestrator_core::BoxError> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| format!("cannot read the job file {}: {error}", path.display()))?;
    let job: JobFile = serde_json::from_str(&text).map_err(|error| {
        format!(
            "the job file {} is not a training job: {error}",
            path.display()
        )
    })?;
    let request = TrainingRequest::new(job.strategy, job.start, job.end, job.options)?;
    let mut checkpoints = job.checkpoint.map(|path| {
        let events = events.clone();
        Checkpoints {
            path,
            resume_from: job.resume_from,
            on_saved: Arc::new(move |saved: &SavedCheckpoint| {
                // A lost announcement loses nothing: the file is on disk.
                let _ = events.write(&JobEvent::Checkpoint {
                    path: saved.path.clone(),
                    bytes: saved.bytes,
                    epoch: saved.epoch,
                    batch: saved.batch,
                    took_seconds: saved.took.as_secs_f64(),
                });
            }),
        }
    });
    let mut report = |state| {
        let _ = events.write(&progress_event(state));
    };
    Ok(local_trainer::LocalTrainer.run(
        &request,
        &job.directories,
        checkpoints.as_mut(),
        token,
        &mut report,
    )?)
}

/// `state` as the job reports it, stamped with the node's clock.
fn progress_event(mut state: ProgressState) -> JobEvent {
    state.updated_at = Some(SystemTime::now());
    JobEvent::Progress { state }
}

/// Writes events whole, one line each, flushed: the training thread and
/// the checkpoint writer both write.
#[derive(Clone)]
struct EventWriter(Arc<Mutex<Box<dyn Write + Send>>>);

impl EventWriter {
    fn write(&self, event: &JobEvent) -> io::Result<()> {
        let mut line = serde_json::to_vec(event).map_err(io::Error::other)?;
        line.push(b'\n');
        let mut out = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        out.write_all(&line)?;
        out.flush()
    }
}

/// Reads the events a job has written so far, keeping a partial last line
/// for the next read.
#[derive(Debug, Default)]
pub(crate) struct EventReader {
    read: u64,
    partial: Vec<u8>,
}

impl EventReader {
    /// The events written to `path` since the last call; none while the
    /// file does not exist yet. A line that is not an event is logged and
    /// skipped.
    pub(crate) fn read_new(&mut self, path: &Path) -> io::Result<Vec<JobEvent>> {
        use std::io::{Read, Seek, SeekFrom};
        let mut file = match std::fs::File::open(path) {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(error),
        };
        file.seek(SeekFrom::Start(self.read))?;
        let read = file.read_to_end(&mut self.partial)?;
        self.read += read as u64;
        let complete = match self.partial.iter().rposition(|&byte| byte == b'\n') {
            Some(last) => last + 1,
            None => return Ok(Vec::new()),
        };
        let lines: Vec<u8> = self.partial.drain(..complete).collect();
        Ok(lines
            .split(|&byte| byte == b'\n')
            .filter(|line| !line.is_empty())
            .filter_map(|line| match serde_json::from_slice(line) {
                Ok(event) => Some(event),
                Err(error) => {
                    tracing::warn!(path = %path.display(), %error, "a line of a job's output is not an event; skipped");
                    None
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_read_whole_lines_at_a_time_across_partial_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stdout.log");
        let mut reader = EventReader::default();
        assert_eq!(reader.read_new(&path).unwrap(), Vec::new());

        let failed = JobEvent::Failed {
            error: "no data".to_owned(),
        };
        let cancelled = JobEvent::Cancelled {
            stage: "training".to_owned(),
        };
        let mut text = serde_json::to_string(&failed).unwrap();
        text.push('\n');
        let second = serde_json::to_string(&cancelled).unwrap();
        let (head, tail) = second.split_at(10);
        std::fs::write(&path, format!("{text}{head}")).unwrap();
        assert_eq!(reader.read_new(&path).unwrap(), vec![failed]);

        std::fs::write(&path, format!("{text}{head}{tail}\nnot json\n")).unwrap();
        assert_eq!(reader.read_new(&path).unwrap(), vec![cancelled]);
        assert_eq!(reader.read_new(&path).unwrap(), Vec::new());
    }

    #[test]
    fn progress_carries_the_time_the_node_wrote_it() {
        let before = SystemTime::now();
        let line = serde_json::to_string(&progress_event(ProgressState::default())).unwrap();
        let after = SystemTime::now();
        let JobEvent::Progress { state } = serde_json::from_str(&line).unwrap() else {
            panic!("{line}")
        };
        let at = state.updated_at.expect("stamped");
        assert!(
            before <= at && at <= after,
            "{at:?} not in {before:?}..{after:?}"
        );
    }

    #[test]
    fn a_job_file_that_is_not_one_fails_the_job_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("job.json");
        std::fs::write(&path, "{}").unwrap();
        let out = dir.path().join("out");
        let file = std::fs::File::create(&out).unwrap();
        let status = run_job(&path, &CancellationToken::new(), Box::new(file));
        assert_eq!(status, JOB_FAILED);
        let events = EventReader::default().read_new(&out).unwrap();
        let [JobEvent::Failed { error }] = &events[..] else {
            panic!("{events:?}")
        };
        assert!(error.contains(&path.display().to_string()), "{error}");
        assert!(error.contains("is not a training job"), "{error}");
    }
}
