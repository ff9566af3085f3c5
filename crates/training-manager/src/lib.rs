//! `TrainingManager`: a training is a managed operation, exactly as a data
//! load is. It is a [`ServiceOrchestrator`] over the [`TrainingAdapter`]:
//! it reads the strategy, builds the request and the training context
//! (model type, symbols, timeframes), and hands both to the adapter with the
//! operation's token and progress reporter. It never trains itself.
//!
//! ```no_run
//! use orchestrator_core::OperationsService;
//! use training_manager::{Directories, StrategySource, TrainRequest, TrainingManager};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let operations = OperationsService::in_memory();
//! let manager = TrainingManager::from_env(operations.clone())?;
//! let request = TrainRequest::new(StrategySource::File("strategies/eurusd_mlp.yaml".into()));
//! let directories = Directories { data: "data".into(), models: "models".into() };
//! let id = manager.train_multi_symbol_strategy(request, directories)?;
//! let mut watch = operations.watch(&id)?;
//! while let Some(snapshot) = watch.next().await {
//!     // e.g. "Training MLP model on EURUSD [1h] [epoch 3/30] (batch 41/67) [3/4]"
//!     let _ = snapshot.progress.message;
//! }
//! # Ok(())
//! # }
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

use orchestrator_core::{
    ConfigError, HostServiceConfig, OperationError, OperationId, OperationKind, OperationsService,
    ServiceOrchestrator,
};
use progress::{ProgressRenderer, TrainingProgressRenderer};
use serde::Serialize;
use strategy::{StrategyConfig, StrategyError, with_overrides};
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;
use training_adapter::{TrainingAdapter, TrainingOptions, TrainingRequest};

pub use strategy::{Directories, StrategySource, TrainRequest};
pub use training_adapter::{Backend, TrainingSummary};

/// The service prefix: `USE_TRAINING_HOST_SERVICE`, `TRAINING_HOST_SERVICE_URL`.
pub const TRAINING_SERVICE: &str = "TRAINING";
/// Where the training host listens unless `TRAINING_HOST_SERVICE_URL` says otherwise.
pub const DEFAULT_TRAINING_HOST_URL: &str = "http://127.0.0.1:50052";

/// Why a training could not be started.
#[derive(Debug, thiserror::Error)]
pub enum TrainingManagerError {
    #[error("cannot read the strategy")]
    Strategy(#[from] StrategyError),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("cannot register the training")]
    Operation(#[from] OperationError),
}

/// Trains strategies as managed `training` operations.
#[derive(Debug)]
pub struct TrainingManager {
    operations: OperationsService,
    adapter: TrainingAdapter,
    config: HostServiceConfig,
    tasks: TaskTracker,
    admission: Arc<Semaphore>,
}

impl TrainingManager {
    /// At most `max_concurrent` (at least one) trainings run at once; later
    /// ones stay `pending` and start in the order they were submitted.
    pub fn new(
        operations: OperationsService,
        config: HostServiceConfig,
        max_concurrent: usize,
    ) -> Self {
        Self {
            adapter: TrainingAdapter::new(&config),
            operations,
            config,
            tasks: TaskTracker::new(),
            admission: Arc::new(Semaphore::new(max_concurrent.max(1))),
        }
    }

    /// Adapter mode from `USE_TRAINING_HOST_SERVICE` / `TRAINING_HOST_SERVICE_URL`;
    /// one local training at a time.
    pub fn from_env(operations: OperationsService) -> Result<Self, ConfigError> {
        let config = HostServiceConfig::from_env(TRAINING_SERVICE, DEFAULT_TRAINING_HOST_URL)?;
        Ok(Self::new(operations, config, 1))
    }

    /// Reads the strategy and starts training it; returns the operation at
    /// once. A bad strategy or request fails here, before any operation is
    /// registered. The operation's result is a [`TrainingSummary`].
    pub fn train_multi_symbol_strategy(
        &self,
        request: TrainRequest,
        directories: Directories,
    ) -> Result<OperationId, TrainingManagerError> {
        let strategy = match &request.strategy {
            StrategySource::File(path) => StrategyConfig::from_file(path)?,
            StrategySource::Text { origin, yaml } => {
                let mut config = StrategyConfig::from_yaml_str(yaml, Path::new(origin))?;
                config.source = Some(PathBuf::from(origin));
                config
            }
            StrategySource::Named(name) => {
                return Err(TrainingManagerError::InvalidRequest(format!(
                    "the strategy name {name:?} names a file in a server's strategies \
                     directory; resolve it there first"
                )));
            }
        };
        let invalid =
            |error: strategy::RequestError| TrainingManagerError::InvalidRequest(error.to_string());
        let strategy = with_overrides(
            strategy,
            request.symbols.clone(),
            request.timeframes.clone(),
        )
        .map_err(invalid)?;
        let options = TrainingOptions {
            backend: request.backend,
            epochs: request.epochs,
            ..TrainingOptions::default()
        };
        let training =
            TrainingRequest::new(strategy, request.start, request.end, options).map_err(invalid)?;
        let params = record(&request, &directories)?;
        Ok(self.start(training, directories, params)?)
    }

    /// Starts a request another trdr checked and sent (as the training host
    /// receives them) as a training operation; returns at once. The record
    /// names the strategy and the options.
    pub fn train(
        &self,
        request: TrainingRequest,
        directories: Directories,
    ) -> Result<OperationId, OperationError> {
        let params = serde_json::json!({
            "strategy": request.strategy().name,
            "start": request.start(),
            "end": request.end(),
            "options": request.options(),
        });
        self.start(request, directories, params)
    }

    fn start(
        &self,
        request: TrainingRequest,
        directories: Directories,
        params: serde_json::Value,
    ) -> Result<OperationId, OperationError> {
        let adapter = self.adapter.clone();
        self.start_managed_operation(OperationKind::Training, params, move |context| async move {
            adapter
                .train(request, directories, context.token, context.progress)
                .await
        })
    }
}

/// The operation's record of a training: the request as given and where
/// it reads and writes.
#[derive(Serialize)]
struct Record<'a> {
    #[serde(flatten)]
    request: &'a TrainRequest,
    data_dir: &'a Path,
    models_dir: &'a Path,
}

fn record(
    request: &TrainRequest,
    directories: &Directories,
) -> Result<serde_json::Value, TrainingManagerError> {
    // Records keep paths as JSON text, which a path that is not UTF-8
    // cannot be written in without loss.
    let strategy_file = match &request.strategy {
        StrategySource::File(path) => Some(("strategy path", path)),
        StrategySource::Text { .. } | StrategySource::Named(_) => None,
    };
    for (what, path) in strategy_file.into_iter().chain([
        ("data directory", &directories.data),
        ("models directory", &directories.models),
    ]) {
        if path.to_str().is_none() {
            return Err(TrainingManagerError::InvalidRequest(format!(
                "the {what} {} is not valid UTF-8; operation records keep paths as text",
                path.display()
            )));
        }
    }
    let record = Record {
        request,
        data_dir: &directories.data,
        models_dir: &directories.models,
    };
    serde_json::to_value(record).map_err(|error| {
        TrainingManagerError::InvalidRequest(format!("the request cannot be recorded: {error}"))
    })
}

impl ServiceOrchestrator for TrainingManager {
    type Adapter = TrainingAdapter;

    fn operations(&self) -> &OperationsService {
        &self.operations
    }
    fn adapter(&self) -> &TrainingAdapter {
        &self.adapter
    }
    fn host_config(&self) -> &HostServiceConfig {
        &self.config
    }
    fn renderer(&self) -> Arc<dyn ProgressRenderer> {
        Arc::new(TrainingProgressRenderer)
    }
    fn tasks(&self) -> &TaskTracker {
        &self.tasks
    }
    // Waiting trainings stay `pending` (visible as queued to every watcher).
    fn admission(&self) -> Option<&Arc<Semaphore>> {
        Some(&self.admission)
    }
}
