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

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use chrono::Utc;
use orchestrator_core::{
    Checkpoint, ConfigError, HostServiceConfig, Operation, OperationError, OperationId,
    OperationKind, OperationStatus, OperationsService, ServiceOrchestrator, error_chain,
};
use progress::{ProgressRenderer, TrainingProgressRenderer};
use serde::{Deserialize, Serialize};
use strategy::{StrategyConfig, StrategyError, with_overrides};
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;
use training_adapter::{
    Checkpoints, SavedCheckpoint, TrainError, TrainingAdapter, TrainingJob, TrainingOptions,
    TrainingRequest, resume_strategy,
};

pub use strategy::{Directories, StrategySource, TrainRequest};
pub use training_adapter::{Backend, Executor, TrainingSummary};

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
    /// The operation cannot be resumed; the message says why.
    #[error("{0}")]
    NotResumable(String),
}

/// Trains strategies as managed `training` operations.
#[derive(Debug)]
pub struct TrainingManager {
    operations: OperationsService,
    adapter: TrainingAdapter,
    config: HostServiceConfig,
    tasks: TaskTracker,
    admission: Arc<Semaphore>,
    /// The stopped operations a resume is continuing right now.
    resuming: Arc<Mutex<HashSet<OperationId>>>,
}

impl TrainingManager {
    /// At most `max_concurrent` (at least one) trainings run at once; later
    /// ones stay `pending` and start in the order they were submitted.
    pub fn new(
        operations: OperationsService,
        config: HostServiceConfig,
        max_concurrent: usize,
    ) -> Self {
        let adapter = TrainingAdapter::new(&config);
        Self::with_adapter(operations, config, adapter, max_concurrent)
    }

    /// Trains through `executor`, an executor of the program's own (a
    /// cluster's scheduler); otherwise as [`new`](Self::new).
    pub fn with_executor(
        operations: OperationsService,
        executor: Arc<dyn Executor>,
        max_concurrent: usize,
    ) -> Self {
        let config = HostServiceConfig::executor(TRAINING_SERVICE, executor.name());
        let adapter = TrainingAdapter::with_executor(executor);
        Self::with_adapter(operations, config, adapter, max_concurrent)
    }

    fn with_adapter(
        operations: OperationsService,
        config: HostServiceConfig,
        adapter: TrainingAdapter,
        max_concurrent: usize,
    ) -> Self {
        Self {
            adapter,
            operations,
            config,
            tasks: TaskTracker::new(),
            admission: Arc::new(Semaphore::new(max_concurrent.max(1))),
            resuming: Arc::default(),
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
            request.with_checkpoint_overrides(strategy),
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
        let params = record_json(&request, &directories)?;
        Ok(self.start(training, directories, params, None)?)
    }

    /// Starts a request another trdr checked and sent (as the training host
    /// receives them) as a training operation; returns at once. The record
    /// names the strategy and the options. With `resume_from`, a checkpoint
    /// in `directories`' checkpoints folder (one the sender uploaded), the
    /// training continues from it, and removes it once it completes.
    pub fn train(
        &self,
        request: TrainingRequest,
        directories: Directories,
        resume_from: Option<PathBuf>,
    ) -> Result<OperationId, OperationError> {
        let params = serde_json::json!({
            "strategy": request.strategy().name,
            "start": request.start(),
            "end": request.end(),
            "options": request.options(),
        });
        let resume = resume_from.map(|from| Resume { from, _claim: None });
        self.start(request, directories, params, resume)
    }

    /// Continues a stopped (cancelled or failed) training from its
    /// checkpoint as a new operation, whose record names the old one
    /// (`resumed_from`); returns at once.
    ///
    /// It trains the strategy the checkpoint was trained on, on the data
    /// the stopped training read, so it ends exactly as the stopped
    /// training would have. Refused, saying why, when the operation
    /// completed or is still live, has no checkpoint (or its file is gone),
    /// is being resumed already, or its strategy file has changed since;
    /// a change of the data is refused by the training itself.
    pub fn resume(&self, id: &OperationId) -> Result<OperationId, TrainingManagerError> {
        let refuse =
            |why: String| TrainingManagerError::NotResumable(format!("cannot resume {id}: {why}"));
        let (record, path) = resumable(self.operations.get(id)?).map_err(refuse)?;
        let directories = Directories {
            data: record.data_dir,
            models: record.models_dir,
        };
        let request = record.request;
        let current = match &request.strategy {
            StrategySource::File(file) => Some(
                with_overrides(
                    StrategyConfig::from_file(file)?,
                    request.symbols.clone(),
                    request.timeframes.clone(),
                )
                .map_err(|error| refuse(error.to_string()))?,
            ),
            // A strategy sent as text is only in the checkpoint now.
            StrategySource::Text { .. } | StrategySource::Named(_) => None,
        };
        let (strategy, trained_on) =
            resume_strategy(&path, current.as_ref()).map_err(|error| match error {
                // The reason alone: the operation is named already.
                TrainError::Resume { reason, .. } => refuse(reason),
                other => refuse(error_chain(&other)),
            })?;
        // The checkpoint keeps no policy: the stopped run's overrides apply again.
        let strategy = request.with_checkpoint_overrides(strategy);
        let options = TrainingOptions {
            // The checkpoint's backend: a checkpoint continues only on it.
            backend: Some(trained_on),
            epochs: request.epochs,
            ..TrainingOptions::default()
        };
        let training = TrainingRequest::new(strategy, request.start, request.end, options)
            .map_err(|error| refuse(error.to_string()))?;

        let Some(claim) = Resuming::claim(&self.resuming, id) else {
            return Err(refuse("it is being resumed already".to_owned()));
        };
        let mut params = record_json(&request, &directories)?;
        params["resumed_from"] = serde_json::json!(id);
        let resume = Resume {
            from: path,
            _claim: Some(claim),
        };
        Ok(self.start(training, directories, params, Some(resume))?)
    }

    fn start(
        &self,
        request: TrainingRequest,
        directories: Directories,
        params: serde_json::Value,
        resume: Option<Resume>,
    ) -> Result<OperationId, OperationError> {
        let adapter = self.adapter.clone();
        let operations = self.operations.clone();
        self.start_managed_operation(OperationKind::Training, params, move |context| async move {
            let id = context.id.clone();
            let path = checkpoints_dir(&directories.models).join(format!("{}.ckpt", context.id));
            let resume_from = resume.as_ref().map(|resume| resume.from.clone());
            let checkpoints = Checkpoints {
                path: path.clone(),
                resume_from: resume_from.clone(),
                on_saved: record_checkpoints(operations.clone(), id.clone()),
            };
            let job = TrainingJob::new(request, directories, context).with_checkpoints(checkpoints);
            let summary = adapter.train(job).await?;
            // Done: nothing is left to resume, of this run or the one it continued.
            for finished in std::iter::once(path).chain(resume_from) {
                remove_checkpoint(&finished);
            }
            if let Err(error) = operations.set_checkpoint(&id, None) {
                tracing::warn!(operation = %id, error = %error_chain(&error), "cannot record that the checkpoint is gone");
            }
            drop(resume);
            Ok::<_, training_adapter::AdapterError>(summary)
        })
    }
}

/// Where a training keeps its checkpoints: `.checkpoints` in its models
/// directory, one file per operation.
pub fn checkpoints_dir(models: &Path) -> PathBuf {
    models.join(".checkpoints")
}

/// The record and checkpoint file of `stopped` if it is a training that
/// can be resumed; why not otherwise. Only a file where this manager puts
/// checkpoints is accepted.
fn resumable(stopped: Operation) -> Result<(StoredRecord, PathBuf), String> {
    if stopped.kind != OperationKind::Training {
        return Err(format!(
            "it is a {} operation; only trainings resume",
            stopped.kind
        ));
    }
    match stopped.status {
        OperationStatus::Completed => {
            return Err("it completed; there is nothing left to train".to_owned());
        }
        OperationStatus::Pending | OperationStatus::Running => {
            return Err(format!(
                "it is still {}; cancel it first, or let it finish",
                stopped.status
            ));
        }
        OperationStatus::Failed | OperationStatus::Cancelled => {}
    }
    let Some(checkpoint) = stopped.checkpoint else {
        return Err(
            "it has no checkpoint: it stopped before its first batch, or on a training host \
             before a checkpoint came back from it"
                .to_owned(),
        );
    };
    let record: StoredRecord = serde_json::from_value(stopped.params)
        .map_err(|error| format!("its record is not a training request: {error}"))?;
    let path = PathBuf::from(&checkpoint.path);
    if path.parent() != Some(checkpoints_dir(&record.models_dir).as_path()) {
        return Err(format!(
            "its checkpoint {} is not in its models directory's checkpoints",
            path.display()
        ));
    }
    if !path.is_file() {
        return Err(format!(
            "its checkpoint {} is gone: resumed to completion since, or pruned",
            path.display()
        ));
    }
    Ok((record, path))
}

/// Checkpoints [`prune_checkpoints`] removed, and those it kept because
/// their training is still live.
#[derive(Debug, Default, PartialEq, Eq, Serialize)]
pub struct Pruned {
    /// Each removed file and its size.
    pub removed: Vec<(PathBuf, u64)>,
    pub kept_live: Vec<PathBuf>,
}

/// Removes the checkpoints in `models`' checkpoints folder last written
/// more than `older_than` ago (and leftovers of interrupted writes): those
/// of stopped trainings nobody resumed. A checkpoint whose training is
/// still pending or running in `operations` is kept, however old.
///
/// A pruned training can no longer be resumed (`resume` says so).
pub fn prune_checkpoints(
    operations: &OperationsService,
    models: &Path,
    older_than: std::time::Duration,
) -> std::io::Result<Pruned> {
    let dir = checkpoints_dir(models);
    let mut pruned = Pruned::default();
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(pruned),
        Err(error) => return Err(error),
    };
    let now = std::time::SystemTime::now();
    for entry in entries {
        let entry = entry?;
        let metadata = entry.metadata()?;
        let age = now.duration_since(metadata.modified()?).unwrap_or_default();
        if !metadata.is_file() || age <= older_than {
            continue;
        }
        let path = entry.path();
        let live = path
            .file_stem()
            .and_then(|stem| stem.to_str())
            .and_then(|stem| stem.parse::<OperationId>().ok())
            .and_then(|id| operations.get(&id).ok())
            .is_some_and(|operation| !operation.status.is_terminal());
        if live {
            pruned.kept_live.push(path);
        } else {
            std::fs::remove_file(&path)?;
            pruned.removed.push((path, metadata.len()));
        }
    }
    pruned.removed.sort();
    Ok(pruned)
}

/// Records each checkpoint the training of `id` saves in its operation.
fn record_checkpoints(
    operations: OperationsService,
    id: OperationId,
) -> Arc<dyn Fn(&SavedCheckpoint) + Send + Sync> {
    Arc::new(move |saved| {
        let checkpoint = Checkpoint {
            path: saved.path.to_string_lossy().into_owned(),
            bytes: saved.bytes,
            epoch: u32::try_from(saved.epoch).unwrap_or(u32::MAX),
            batch: u32::try_from(saved.batch).unwrap_or(u32::MAX),
            saved_at: Utc::now(),
        };
        if let Err(error) = operations.set_checkpoint(&id, Some(checkpoint)) {
            tracing::warn!(operation = %id, error = %error_chain(&error), "cannot record a checkpoint");
        }
    })
}

fn remove_checkpoint(path: &Path) {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => tracing::warn!(
            path = %path.display(),
            error = %error,
            "cannot remove the checkpoint of a finished training"
        ),
    }
}

/// A resume under way: the checkpoint it continues from, and its claim on
/// the stopped operation when that is one of this manager's.
struct Resume {
    from: PathBuf,
    /// Held until the resumed work ends.
    _claim: Option<Resuming>,
}

/// The claim of one resume on its stopped operation, released when the
/// resumed work ends: a second resume of the same checkpoint is refused
/// while the first runs.
struct Resuming {
    claims: Arc<Mutex<HashSet<OperationId>>>,
    id: OperationId,
}

impl Resuming {
    fn claim(claims: &Arc<Mutex<HashSet<OperationId>>>, id: &OperationId) -> Option<Self> {
        let mut held = claims.lock().unwrap_or_else(PoisonError::into_inner);
        held.insert(id.clone()).then(|| Self {
            claims: Arc::clone(claims),
            id: id.clone(),
        })
    }
}

impl Drop for Resuming {
    fn drop(&mut self) {
        self.claims
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.id);
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

/// The record as stored, read back for a resume.
#[derive(Deserialize)]
struct StoredRecord {
    #[serde(flatten)]
    request: TrainRequest,
    data_dir: PathBuf,
    models_dir: PathBuf,
}

fn record_json(
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
    // A training may wait again where it runs (a busy pool, a cluster's
    // queue); its executor says when it runs.
    fn defers_start(&self) -> bool {
        true
    }
}
