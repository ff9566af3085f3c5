//! `TrainingAdapter`: routes one training request to the local trainer (on a
//! thread of its own) or to a training host. Nothing is global: the
//! request, the directories, the operation's token and its progress
//! reporter are passed in.
//!
//! On a host (`USE_TRAINING_HOST_SERVICE=true`, `TRAINING_HOST_SERVICE_URL`)
//! the request travels as it is (its strategy as JSON), the host's progress
//! events become the operation's progress, a cancel is forwarded to the
//! host, and the finished model is fetched into the local models folder as
//! the next free version, so the summary's `model_path` is a local path.
//! The host reads its own data folder.
//!
//! ```no_run
//! use orchestrator_core::{HostServiceConfig, OperationKind, OperationsService};
//! use training_adapter::{Directories, TrainingAdapter, TrainingRequest};
//!
//! # async fn demo(request: TrainingRequest) -> Result<(), Box<dyn std::error::Error>> {
//! let adapter = TrainingAdapter::new(&HostServiceConfig::local("TRAINING"));
//! let operations = OperationsService::in_memory();
//! let context = operations.create(OperationKind::Training, serde_json::json!({}), None)?;
//! let directories = Directories { data: "data".into(), models: "models".into() };
//! let summary = adapter.train(request, directories, None, context.token, context.progress).await?;
//! println!("model saved in {}", summary.model_path.display());
//! # Ok(())
//! # }
//! ```

use host_client::{ConnectOptions, HostEndpoint, HostKind, TrainingHostClient};
use local_trainer::{ArtifactError, PendingArtifact};
use orchestrator_core::{
    BoxError, CancellationToken, HostServiceConfig, ProgressReporter, ServiceAdapter,
};

pub use host_client::{HostError, RemoteStop, RemoteTrainingError};
pub use local_trainer::{
    Backend, Checkpoints, Directories, Metrics, PipelineError, SavedCheckpoint, TrainError,
    TrainingOptions, TrainingRequest, TrainingSummary, resume_strategy,
};

/// Why a training routed by the adapter did not produce a model.
#[derive(Debug, thiserror::Error)]
pub enum AdapterError {
    /// The trainer's own error says which step failed.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    /// The host was not reachable or was lost, refused the training, or the
    /// training failed or was cancelled there (the message names the URL).
    #[error(transparent)]
    Host(#[from] RemoteTrainingError),
    #[error("cannot install the model trained on the host at {url}")]
    Install {
        url: String,
        #[source]
        source: ArtifactError,
    },
    #[error(
        "cannot resume from {} on the training host at {url}: checkpoints do not travel to hosts yet; \
         resume it where trainings run locally",
        path.display()
    )]
    ResumeOnHost {
        url: String,
        path: std::path::PathBuf,
    },
}

/// Where trainings run. How many run at once is the caller's business: the
/// training manager admits them (one limit, in one place).
#[derive(Debug, Clone)]
pub struct TrainingAdapter {
    host: Option<TrainingHostClient>,
}

impl TrainingAdapter {
    /// Trains locally unless `config` selects a host (then the auth token
    /// comes from `TRDR_AUTH_TOKEN`).
    pub fn new(config: &HostServiceConfig) -> Self {
        Self {
            host: config.url().map(|url| {
                TrainingHostClient::new(HostEndpoint::new(
                    HostKind::Training,
                    url,
                    ConnectOptions::from_env(),
                ))
            }),
        }
    }

    /// Runs one training to its end. Local trainings run on a blocking
    /// thread, burn's loop being blocking; the async caller is never
    /// blocked. Cancelling `token` stops the training loop within a batch,
    /// locally or on the host.
    ///
    /// A local training saves and resumes `checkpoints`. A host keeps its
    /// own and they are not fetched yet, so `checkpoints` are not used on
    /// a host, and a resume is refused there.
    pub async fn train(
        &self,
        request: TrainingRequest,
        directories: Directories,
        checkpoints: Option<Checkpoints>,
        token: CancellationToken,
        progress: ProgressReporter,
    ) -> Result<TrainingSummary, AdapterError> {
        if let Some(host) = &self.host {
            if let Some(path) = checkpoints.and_then(|checkpoints| checkpoints.resume_from) {
                return Err(AdapterError::ResumeOnHost {
                    url: host.endpoint().url().to_owned(),
                    path,
                });
            }
            return train_on_host(host, &request, &directories, &token, &progress).await;
        }
        let run = tokio::task::spawn_blocking(move || {
            let mut report = |state| progress.report(state);
            let mut checkpoints = checkpoints;
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
}

/// Trains on `host`, then installs its model in the local models folder.
async fn train_on_host(
    host: &TrainingHostClient,
    request: &TrainingRequest,
    directories: &Directories,
    token: &CancellationToken,
    progress: &ProgressReporter,
) -> Result<TrainingSummary, AdapterError> {
    let done = host
        .train(request, token, |state| progress.report(state))
        .await?;
    let url = host.endpoint().url();
    let mut summary = done.summary;
    let install = |source| AdapterError::Install {
        url: url.to_owned(),
        source,
    };
    let pending =
        PendingArtifact::create(&directories.models, request.strategy()).map_err(install)?;
    host.fetch_artifact(&done.session_id, pending.path(), token)
        .await?;
    summary.model_path = pending.commit(token).map_err(install)?;
    Ok(summary)
}

impl ServiceAdapter for TrainingAdapter {
    fn name(&self) -> &str {
        if self.host.is_some() {
            "training-host"
        } else {
            "local-trainer"
        }
    }

    async fn health(&self) -> Result<(), BoxError> {
        match &self.host {
            None => Ok(()),
            Some(host) => Ok(host
                .endpoint()
                .check_reachable(&CancellationToken::new())
                .await?),
        }
    }
}
