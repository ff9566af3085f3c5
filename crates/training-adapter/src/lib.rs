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
//! Each checkpoint the host announces is fetched into the local checkpoint
//! file and recorded as a local one would be, so a training stopped or
//! lost on the host resumes here; a resume routed to a host uploads the
//! local checkpoint first, and the host's session continues from it. The
//! host reads its own data folder.
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

use std::time::Instant;

use host_client::{ConnectOptions, HostEndpoint, HostKind, RemoteUpdate, TrainingHostClient};
use local_trainer::{ArtifactError, PendingArtifact};
use orchestrator_core::{
    BoxError, CancelReason, CancellationToken, HostServiceConfig, ProgressReporter, ServiceAdapter,
    error_chain,
};
use tokio::sync::watch;

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
    /// A local training saves and resumes `checkpoints`. On a host, the
    /// checkpoint to resume from is uploaded first and the host's session
    /// continues from it; each checkpoint the host saves is fetched into
    /// `checkpoints.path` and reported to `checkpoints.on_saved`.
    pub async fn train(
        &self,
        request: TrainingRequest,
        directories: Directories,
        checkpoints: Option<Checkpoints>,
        token: CancellationToken,
        progress: ProgressReporter,
    ) -> Result<TrainingSummary, AdapterError> {
        if let Some(host) = &self.host {
            return train_on_host(host, &request, &directories, checkpoints, &token, &progress)
                .await;
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

/// Trains on `host` (first uploading the checkpoint to resume from, if
/// any), bringing each checkpoint it announces over into `checkpoints`,
/// then installs its model in the local models folder.
async fn train_on_host(
    host: &TrainingHostClient,
    request: &TrainingRequest,
    directories: &Directories,
    checkpoints: Option<Checkpoints>,
    token: &CancellationToken,
    progress: &ProgressReporter,
) -> Result<TrainingSummary, AdapterError> {
    let resume_from = checkpoints.as_ref().and_then(|c| c.resume_from.as_deref());
    let uploaded = match resume_from {
        Some(path) => Some(host.upload_checkpoint(path, token).await?),
        None => None,
    };
    let fetcher = checkpoints.map(|checkpoints| CheckpointFetcher::start(host, checkpoints));
    let on_update = |update| match (update, &fetcher) {
        (RemoteUpdate::Progress(state), _) => progress.report(state),
        (RemoteUpdate::Accepted { session_id }, Some(fetcher)) => fetcher.follow(session_id),
        (RemoteUpdate::Checkpoint(_), Some(fetcher)) => fetcher.fetch_newest(),
        (RemoteUpdate::Accepted { .. } | RemoteUpdate::Checkpoint(_), None) => {}
    };
    let trained = match &uploaded {
        Some(name) => host.train_from(request, name, token, on_update).await,
        None => host.train(request, token, on_update).await,
    };
    let done = match trained {
        Ok(done) => {
            // The host removed its checkpoint; the manager removes ours.
            if let Some(fetcher) = fetcher {
                fetcher.abandon().await;
            }
            done
        }
        Err(error) => {
            if let Some(fetcher) = fetcher {
                // A confirmed stop saved a checkpoint where the training
                // stopped, announced after this side stopped listening.
                if let RemoteTrainingError::Cancelled {
                    stop: RemoteStop::Confirmed,
                    ..
                } = error
                {
                    fetcher.fetch_newest();
                }
                fetcher.finish().await;
            }
            return Err(error.into());
        }
    };
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

/// Brings the checkpoints of a session on a host over into the local
/// checkpoint file, on a task of its own so that the event stream never
/// waits for a fetch. One fetch at a time: announcements that arrive
/// during one are folded into one fetch of the newest afterwards.
struct CheckpointFetcher {
    /// The session, once the host accepted the training; marked changed
    /// when a newer checkpoint is wanted.
    wanted: watch::Sender<Option<String>>,
    /// Cancels a fetch that is no longer needed.
    abandoned: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl CheckpointFetcher {
    fn start(host: &TrainingHostClient, checkpoints: Checkpoints) -> Self {
        let (wanted, session) = watch::channel(None);
        let abandoned = CancellationToken::new();
        let task = tokio::spawn(fetch_each(
            host.clone(),
            checkpoints,
            session,
            abandoned.clone(),
        ));
        Self {
            wanted,
            abandoned,
            task,
        }
    }

    fn follow(&self, session_id: String) {
        // Known now, fetched once a checkpoint is announced.
        self.wanted.send_if_modified(|session| {
            *session = Some(session_id);
            false
        });
    }

    fn fetch_newest(&self) {
        self.wanted.send_modify(|_| {});
    }

    /// Waits for the fetch under way and the one wanted after it: each is
    /// bounded by the host client's connect deadline and keep-alive, so a
    /// host that is gone fails them within seconds.
    async fn finish(self) {
        drop(self.wanted);
        // A panic in `on_saved` is the callback's; the training has ended.
        let _ = self.task.await;
    }

    /// Stops fetching: what is being written still lands, and is reported,
    /// before this returns.
    async fn abandon(self) {
        self.abandoned.cancel(CancelReason::UserRequest(Some(
            "the training completed; its checkpoints are not needed".to_owned(),
        )));
        self.finish().await;
    }
}

/// Fetches the newest checkpoint of the session each time one is wanted,
/// writes it atomically to `checkpoints.path` and reports it. A failure is
/// logged; the training goes on.
async fn fetch_each(
    host: TrainingHostClient,
    checkpoints: Checkpoints,
    mut wanted: watch::Receiver<Option<String>>,
    abandoned: CancellationToken,
) {
    let url = host.endpoint().url().to_owned();
    while wanted.changed().await.is_ok() && !abandoned.is_cancelled() {
        let Some(session_id) = wanted.borrow_and_update().clone() else {
            continue;
        };
        let started = Instant::now();
        let fetched = match host.fetch_checkpoint(&session_id, &abandoned).await {
            Ok(Some(fetched)) => fetched,
            Ok(None) => {
                tracing::debug!(%url, session = %session_id, "the session has no checkpoint to fetch");
                continue;
            }
            Err(_) if abandoned.is_cancelled() => return,
            Err(error) => {
                tracing::warn!(%url, session = %session_id, error = %error_chain(&error), "cannot fetch a checkpoint from the training host; the training goes on");
                continue;
            }
        };
        let path = checkpoints.path.clone();
        let on_saved = std::sync::Arc::clone(&checkpoints.on_saved);
        let written = tokio::task::spawn_blocking(move || {
            local_trainer::replace_atomically(&path, &fetched.content)?;
            on_saved(&SavedCheckpoint {
                bytes: fetched.content.len() as u64,
                path,
                epoch: fetched.checkpoint.epoch as usize,
                batch: fetched.checkpoint.batch as usize,
                took: started.elapsed(),
            });
            Ok::<_, std::io::Error>(())
        })
        .await;
        // A panic in `on_saved` is the callback's, as in a local training.
        if let Ok(Err(error)) = written {
            tracing::warn!(
                path = %checkpoints.path.display(),
                %error,
                "cannot write a checkpoint fetched from the training host; the training goes on"
            );
        }
    }
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
