//! `TrainingAdapter`: routes one training request to the local trainer (on a
//! thread of its own, behind a semaphore bounding concurrent trainings) or
//! to a training host. Nothing is global: the request, the operation's
//! token and its progress reporter are passed in.
//!
//! ```no_run
//! use orchestrator_core::{HostServiceConfig, OperationKind, OperationsService};
//! use training_adapter::{TrainingAdapter, TrainingRequest};
//!
//! # async fn demo(request: TrainingRequest) -> Result<(), Box<dyn std::error::Error>> {
//! let adapter = TrainingAdapter::new(&HostServiceConfig::local("TRAINING"), 1);
//! let operations = OperationsService::in_memory();
//! let context = operations.create(OperationKind::Training, serde_json::json!({}), None)?;
//! let summary = adapter.train(request, context.token, context.progress).await?;
//! println!("model saved in {}", summary.model_path.display());
//! # Ok(())
//! # }
//! ```

use std::sync::Arc;

use orchestrator_core::{
    BoxError, CancellationToken, Cancelled, HostServiceConfig, ProgressReporter, ServiceAdapter,
};
use progress::ProgressState;
use tokio::sync::Semaphore;

pub use local_trainer::{
    Backend, Metrics, PipelineError, TrainOptions, TrainingRequest, TrainingSummary,
};

/// Why a training routed by the adapter did not produce a model.
#[derive(Debug, thiserror::Error)]
pub enum AdapterError {
    #[error("training failed")]
    Pipeline(#[from] PipelineError),
    #[error(
        "training host {url}: training on a host service is not supported yet; \
         unset USE_TRAINING_HOST_SERVICE to train locally"
    )]
    HostUnavailable { url: String },
    #[error("training cancelled while waiting for a free training slot")]
    Cancelled(#[from] Cancelled),
}

/// Where trainings run.
#[derive(Debug, Clone)]
pub struct TrainingAdapter {
    host_url: Option<String>,
    /// Permits for concurrent local trainings: each one keeps CPU cores busy.
    slots: Arc<Semaphore>,
}

impl TrainingAdapter {
    /// Trains locally unless `config` selects a host; at most
    /// `max_concurrent` local trainings run at once (at least one).
    pub fn new(config: &HostServiceConfig, max_concurrent: usize) -> Self {
        Self {
            host_url: config.url().map(str::to_owned),
            slots: Arc::new(Semaphore::new(max_concurrent.max(1))),
        }
    }

    /// Runs one training to its end. Local trainings run on a blocking
    /// thread; the async caller is never blocked. Cancelling `token` stops
    /// the training loop within a batch.
    pub async fn train(
        &self,
        request: TrainingRequest,
        token: CancellationToken,
        progress: ProgressReporter,
    ) -> Result<TrainingSummary, AdapterError> {
        if let Some(url) = &self.host_url {
            return Err(AdapterError::HostUnavailable { url: url.clone() });
        }
        let slot = match Arc::clone(&self.slots).try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                progress.report(ProgressState {
                    message: "Waiting for a free training slot".to_owned(),
                    ..ProgressState::default()
                });
                let waiting = Arc::clone(&self.slots).acquire_owned();
                token
                    .run_until_cancelled("waiting for a training slot", waiting)
                    .await?
                    .expect("the training semaphore is never closed")
            }
        };
        let run = tokio::task::spawn_blocking(move || {
            // The slot is released when the training thread ends, not before.
            let _slot = slot;
            local_trainer::LocalTrainer.run(&request, &token, &mut |state| progress.report(state))
        });
        match run.await {
            Ok(outcome) => Ok(outcome?),
            // Keep the panic a panic: the orchestrator records it as a failure.
            Err(join) => std::panic::resume_unwind(join.into_panic()),
        }
    }
}

impl ServiceAdapter for TrainingAdapter {
    fn name(&self) -> &str {
        if self.host_url.is_some() {
            "training-host"
        } else {
            "local-trainer"
        }
    }

    async fn health(&self) -> Result<(), BoxError> {
        match &self.host_url {
            None => Ok(()),
            Some(url) => Err(format!(
                "the training host client is not built yet; {url} cannot be reached from trdr"
            )
            .into()),
        }
    }
}
