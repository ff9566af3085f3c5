//! The host executor: trains on a `trdr host-service` over gRPC. The
//! host pool runs each of its trainings through the same
//! [`train_on_host`].

use std::time::Instant;

use host_client::{ConnectOptions, HostEndpoint, HostKind, RemoteUpdate, TrainingHostClient};
use local_trainer::PendingArtifact;
use orchestrator_core::{BoxError, CancelReason, CancellationToken, error_chain};
use tokio::sync::watch;

use crate::{
    AdapterError, Checkpoints, Executor, RemoteStop, RemoteTrainingError, SavedCheckpoint,
    TrainingJob, TrainingSummary,
};

/// Runs each training on one training host. The request travels as it is
/// (its strategy as JSON), the host's progress events become the
/// operation's progress, a cancel is forwarded to the host, and the
/// finished model is fetched into the local models folder as the next free
/// version, so the summary's `model_path` is local. Each checkpoint the
/// host announces is fetched into the local checkpoint file and recorded
/// as a local one would be; a resume uploads the local checkpoint first.
/// The host reads its own data folder.
#[derive(Debug, Clone)]
pub struct HostExecutor {
    host: TrainingHostClient,
}

impl HostExecutor {
    /// The host at `url`; the auth token comes from `TRDR_AUTH_TOKEN`.
    pub fn new(url: &str) -> Self {
        Self {
            host: training_host(url),
        }
    }
}

/// The client of the training host at `url`, with the auth token from
/// `TRDR_AUTH_TOKEN`.
pub(crate) fn training_host(url: &str) -> TrainingHostClient {
    TrainingHostClient::new(HostEndpoint::new(
        HostKind::Training,
        url,
        ConnectOptions::from_env(),
    ))
}

#[async_trait::async_trait]
impl Executor for HostExecutor {
    fn name(&self) -> &str {
        "training-host"
    }

    async fn train(&self, job: TrainingJob) -> Result<TrainingSummary, AdapterError> {
        train_on_host(&self.host, job).await
    }

    async fn health(&self) -> Result<(), BoxError> {
        Ok(self
            .host
            .endpoint()
            .check_reachable(&CancellationToken::new())
            .await?)
    }
}

/// Trains `job` on `host` (first uploading the checkpoint to resume from,
/// if any), bringing each checkpoint it announces over into the job's
/// checkpoints, then installs its model in the local models folder. The
/// operation runs on the host's URL once the host accepts the training.
pub(crate) async fn train_on_host(
    host: &TrainingHostClient,
    job: TrainingJob,
) -> Result<TrainingSummary, AdapterError> {
    let TrainingJob {
        request,
        directories,
        checkpoints,
        token,
        progress,
        start,
    } = job;
    let token = &token;
    let resume_from = checkpoints.as_ref().and_then(|c| c.resume_from.as_deref());
    let uploaded = match resume_from {
        Some(path) => Some(host.upload_checkpoint(path, token).await?),
        None => None,
    };
    let fetcher = checkpoints.map(|checkpoints| CheckpointFetcher::start(host, checkpoints));
    let on_update = |update| match update {
        RemoteUpdate::Progress(state) => progress.report(state),
        RemoteUpdate::Accepted { session_id } => {
            start.running(host.endpoint().url());
            if let Some(fetcher) = &fetcher {
                fetcher.follow(session_id);
            }
        }
        RemoteUpdate::Checkpoint(_) => {
            if let Some(fetcher) = &fetcher {
                fetcher.fetch_newest();
            }
        }
    };
    let trained = match &uploaded {
        Some(name) => host.train_from(&request, name, token, on_update).await,
        None => host.train(&request, token, on_update).await,
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
