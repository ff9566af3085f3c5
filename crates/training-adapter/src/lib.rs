//! `TrainingAdapter`: runs one training through an [`Executor`], the one
//! small interface of where trainings run. A request does not know where it
//! runs: the manager, the progress, the cancel-request rule and the display
//! are the same for every executor. Nothing is global: the request, the
//! directories, the operation's token, progress reporter and start reporter
//! travel in a [`TrainingJob`].
//!
//! Built in: [`LocalExecutor`] (in this process, on a thread of its own),
//! [`HostExecutor`] (a `trdr host-service` over gRPC, chosen by
//! `USE_TRAINING_HOST_SERVICE` and `TRAINING_HOST_SERVICE_URL`),
//! [`HostPool`] (the least loaded of several hosts with a free slot,
//! `TRAINING_HOST_SERVICE_URLS`), and [`slurm::SlurmExecutor`] (a batch job
//! on a Slurm cluster, which the program builds from its options and hands
//! to [`TrainingAdapter::with_executor`], as any executor of its own).
//!
//! ```no_run
//! use orchestrator_core::{HostServiceConfig, OperationKind, OperationsService};
//! use training_adapter::{Directories, TrainingAdapter, TrainingJob, TrainingRequest};
//!
//! # async fn demo(request: TrainingRequest) -> Result<(), Box<dyn std::error::Error>> {
//! let adapter = TrainingAdapter::new(&HostServiceConfig::local("TRAINING"));
//! let operations = OperationsService::in_memory();
//! let context = operations.create(OperationKind::Training, serde_json::json!({}), None)?;
//! let directories = Directories { data: "data".into(), models: "models".into() };
//! let summary = adapter.train(TrainingJob::new(request, directories, context)).await?;
//! println!("model saved in {}", summary.model_path.display());
//! # Ok(())
//! # }
//! ```

mod host;
mod local;
mod pool;
pub mod slurm;

use std::fmt;
use std::sync::Arc;

use local_trainer::ArtifactError;
use orchestrator_core::{
    AdapterMode, BoxError, CancellationToken, HostServiceConfig, OperationContext,
    ProgressReporter, ServiceAdapter, StartReporter,
};

pub use host::HostExecutor;
pub use host_client::{HostError, RemoteStop, RemoteTrainingError};
pub use local::LocalExecutor;
pub use local_trainer::{
    Backend, Checkpoints, Directories, Metrics, PipelineError, SavedCheckpoint, TrainError,
    TrainingOptions, TrainingRequest, TrainingSummary, resume_strategy,
};
pub use pool::HostPool;

/// Why a training handed to an executor did not produce a model.
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
    /// An executor of another crate failed; its error says why. A stop on
    /// request carries [`orchestrator_core::Cancelled`] in its chain. The
    /// error is the source itself (not `transparent`, which would skip it),
    /// so a `Cancelled` here is found.
    #[error("{0}")]
    Executor(#[source] BoxError),
}

/// One training, with everything its executor needs and nothing global.
#[derive(Debug)]
pub struct TrainingJob {
    pub request: TrainingRequest,
    /// Where this machine keeps its data and models: the finished model
    /// lands in `directories.models` whatever ran it.
    pub directories: Directories,
    /// Where to save checkpoints, and the one to continue from.
    pub checkpoints: Option<Checkpoints>,
    /// Cancelled when the operation is: the executor stops the training
    /// loop within a batch, wherever it runs, and returns `Cancelled`.
    pub token: CancellationToken,
    pub progress: ProgressReporter,
    /// The executor says here when the training really runs, and where;
    /// until then the operation stays `pending` with the reason it gives.
    pub start: StartReporter,
}

impl TrainingJob {
    /// The job of the operation `context`, without checkpoints.
    pub fn new(
        request: TrainingRequest,
        directories: Directories,
        context: OperationContext,
    ) -> Self {
        Self {
            request,
            directories,
            checkpoints: None,
            token: context.token,
            progress: context.progress,
            start: context.start,
        }
    }

    pub fn with_checkpoints(mut self, checkpoints: Checkpoints) -> Self {
        self.checkpoints = Some(checkpoints);
        self
    }
}

/// Where trainings run. An executor runs one job to its end: the summary,
/// with `model_path` a path in the job's models folder, or why not.
///
/// It keeps the rules every route keeps: progress goes to `job.progress`
/// as typed states; `job.start.running(where)` once the training runs (a
/// queued job stays `pending` meanwhile, saying why through
/// `job.start.waiting`); a cancelled `job.token` stops the training within
/// a batch and the executor returns only once it has stopped, with
/// [`orchestrator_core::Cancelled`] in its error; checkpoints land at
/// `checkpoints.path` and are reported to `checkpoints.on_saved`.
#[async_trait::async_trait]
pub trait Executor: Send + Sync + fmt::Debug {
    /// A short name for logs and the service's configuration.
    fn name(&self) -> &str;

    async fn train(&self, job: TrainingJob) -> Result<TrainingSummary, AdapterError>;

    /// Whether trainings can run now: the host answers, the cluster's
    /// scheduler is reachable.
    async fn health(&self) -> Result<(), BoxError>;
}

/// Runs trainings through one executor. How many run at once is the
/// caller's business: the training manager admits them (one limit, in one
/// place).
#[derive(Debug, Clone)]
pub struct TrainingAdapter {
    executor: Arc<dyn Executor>,
}

impl TrainingAdapter {
    /// Trains locally unless `config` selects a host or a pool of hosts
    /// (then the auth token comes from `TRDR_AUTH_TOKEN`).
    ///
    /// # Panics
    ///
    /// If `config` names an executor of the program's own
    /// ([`AdapterMode::Executor`]): the program builds it, and hands it to
    /// [`with_executor`](Self::with_executor).
    pub fn new(config: &HostServiceConfig) -> Self {
        match &config.mode {
            AdapterMode::Local => Self::with_executor(Arc::new(LocalExecutor)),
            AdapterMode::Host { url } => Self::with_executor(Arc::new(HostExecutor::new(url))),
            AdapterMode::Hosts { urls } => Self::with_executor(Arc::new(HostPool::new(urls))),
            AdapterMode::Executor { name } => {
                panic!("the executor {name:?} is the program's own: build it and use with_executor")
            }
        }
    }

    pub fn with_executor(executor: Arc<dyn Executor>) -> Self {
        Self { executor }
    }

    /// Runs one training to its end; cancelling `job.token` stops it
    /// within a batch, wherever it runs.
    pub async fn train(&self, job: TrainingJob) -> Result<TrainingSummary, AdapterError> {
        self.executor.train(job).await
    }
}

impl ServiceAdapter for TrainingAdapter {
    fn name(&self) -> &str {
        self.executor.name()
    }

    async fn health(&self) -> Result<(), BoxError> {
        self.executor.health().await
    }
}
