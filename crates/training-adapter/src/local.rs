//! The local executor: trains in this process, on a blocking thread.

use orchestrator_core::BoxError;

use crate::{AdapterError, Executor, TrainingJob, TrainingSummary};

/// Runs each training in this process, on a blocking thread of its own
/// (burn's loop blocks; the async caller never does). It saves and resumes
/// the job's checkpoints itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalExecutor;

#[async_trait::async_trait]
impl Executor for LocalExecutor {
    fn name(&self) -> &str {
        "local-trainer"
    }

    async fn train(&self, job: TrainingJob) -> Result<TrainingSummary, AdapterError> {
        job.start.running("local");
        let run = tokio::task::spawn_blocking(move || {
            let TrainingJob {
                request,
                directories,
                mut checkpoints,
                token,
                progress,
                start: _,
            } = job;
            let mut report = |state| progress.report(state);
            local_trainer::LocalTrainer.run(
                &request,
                &directories,
                checkpoints.as_mut(),
                &token,
                &mut report,
            )
        });
        match run.await {
            Ok(outcome) => Ok(outcome?),
            // Keep the panic a panic: the orchestrator records it as a failure.
            Err(join) => std::panic::resume_unwind(join.into_panic()),
        }
    }

    async fn health(&self) -> Result<(), BoxError> {
        Ok(())
    }
}
