//! The `TrainingHost` service: each `StartTraining` call is a training
//! operation of the host's own `TrainingManager` (over an in-memory
//! [`OperationsService`]), so it runs exactly as a local training does:
//! admission, the cancel-request rule, panic capture, terminal states. A
//! session is an operation; its id is the operation's.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use orchestrator_core::store::InMemoryStore;
use orchestrator_core::{
    CancelReason, Checkpoint, HostServiceConfig, ListFilter, Operation, OperationError,
    OperationId, OperationKind, OperationStatus, OperationsService, ServiceOrchestrator,
};
use progress::ProgressState;
use rpc::proto::{self, training_host_server::TrainingHost};
use strategy::{Backend, Directories, TrainingRequest, TrainingSummary};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use training_manager::TrainingManager;

use crate::artifact;
use crate::checkpoint;
use crate::sessions;

/// The note of the cancel when a caller drops its event stream.
pub(crate) const CALLER_WENT_AWAY: &str = "the caller went away";

/// Finished sessions kept for `GetSession`/`ListSessions`; older ones are
/// forgotten. Unfinished sessions are never dropped.
pub(crate) const KEPT_FINISHED: usize = 1000;

/// The host's trainings: a [`TrainingManager`] training locally, the same
/// one `trdr train` and `trdr serve` use, over an in-memory operations
/// service.
#[derive(Debug)]
pub(crate) struct Host {
    manager: TrainingManager,
    /// The manager's admission limit: trainings that run at once.
    capacity: usize,
    /// What sessions can train on, the default (for a request that names
    /// none) first: the backend the host was started on, then the CPU ones.
    backends: Vec<Backend>,
    shutting_down: AtomicBool,
    directories: Directories,
}

impl Host {
    /// At most `max_concurrent` trainings run at once (0 counts as 1, as
    /// in the manager); later ones wait. A request that names no backend
    /// trains on `backend`, which the caller has opened.
    pub(crate) fn new(
        data_dir: PathBuf,
        models_dir: PathBuf,
        max_concurrent: usize,
        backend: Backend,
    ) -> Self {
        let operations = OperationsService::new(InMemoryStore::keeping_finished(KEPT_FINISHED));
        let local = HostServiceConfig::local(training_manager::TRAINING_SERVICE);
        let cpu = Backend::CPU.into_iter().filter(|&other| other != backend);
        Self {
            manager: TrainingManager::new(operations, local, max_concurrent),
            capacity: max_concurrent.max(1),
            backends: std::iter::once(backend).chain(cpu).collect(),
            shutting_down: AtomicBool::new(false),
            directories: Directories {
                data: data_dir,
                models: models_dir,
            },
        }
    }

    fn checkpoints_dir(&self) -> PathBuf {
        training_manager::checkpoints_dir(&self.directories.models)
    }

    fn operations(&self) -> &OperationsService {
        self.manager.operations()
    }

    /// Asks every waiting and running session to stop and waits until each
    /// has ended (its trainer has returned, or its grace period ended).
    pub(crate) async fn shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
        self.operations().cancel_active(CancelReason::Shutdown);
        self.manager.drain().await;
    }

    /// `UNAVAILABLE` once shutdown began: the host takes no new trainings.
    fn refuse_when_shutting_down(&self) -> Result<(), Status> {
        if self.shutting_down.load(Ordering::SeqCst) {
            return Err(Status::unavailable(
                "the training host is shutting down and takes no new trainings",
            ));
        }
        Ok(())
    }

    /// What the host can take and how much of it is taken. `running` counts
    /// the operations that are pending or running: those hold a slot or
    /// wait for one. An operation ends (cancelled, failed, completed)
    /// before the manager frees its slot, so a freed slot is never
    /// counted; a stop that was asked for is counted until the trainer
    /// has stopped (or its grace period ended), as long as it holds the
    /// slot.
    fn status(&self) -> proto::HostStatus {
        let saturating = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        proto::HostStatus {
            capacity: saturating(self.capacity),
            running: saturating(self.operations().active_count()),
            backends: self
                .backends
                .iter()
                .map(|backend| backend.as_str().to_owned())
                .collect(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }

    /// `request` on the host's default backend unless it names one;
    /// `FAILED_PRECONDITION` for a backend the host does not offer.
    fn on_backend(&self, request: TrainingRequest) -> Result<TrainingRequest, Status> {
        let default = self.backends[0];
        let asked = request.options().backend.unwrap_or(default);
        if self.backends.contains(&asked) {
            return Ok(request.with_default_backend(default));
        }
        let offered: Vec<&str> = self.backends.iter().map(|b| b.as_str()).collect();
        Err(Status::failed_precondition(format!(
            "this training host trains on {}, not {asked} (start it with `--backend {asked}` \
             on a build and machine that have it)",
            offered.join(", ")
        )))
    }

    fn session(&self, id: &str) -> Result<Operation, Status> {
        let not_found = || {
            Status::not_found(format!(
                "no training session {id:?} on this host (finished sessions are kept \
                 until {KEPT_FINISHED} newer ones have finished)"
            ))
        };
        let id: OperationId = id.parse().map_err(|_| not_found())?;
        self.operations().get(&id).map_err(|_| not_found())
    }

    /// The events of one session: `Accepted`, the latest progress whenever
    /// it changes (a slow reader skips intermediate snapshots) and each
    /// checkpoint it records (`CheckpointSaved`, before the progress of the
    /// same snapshot, so the end comes after the last one), then the end. A
    /// caller that drops the stream before the end cancels the session.
    fn events(
        self: &Arc<Self>,
        id: OperationId,
    ) -> Result<ReceiverStream<Result<proto::TrainingEvent, Status>>, OperationError> {
        use proto::training_event::Event;
        let mut watch = self.operations().watch(&id)?;
        let (sender, receiver) = mpsc::channel(4);
        let host = Arc::clone(self);
        self.manager.tasks().spawn(async move {
            let event = |event| Ok(proto::TrainingEvent { event: Some(event) });
            let accepted = Event::Accepted(proto::Accepted {
                session_id: id.to_string(),
            });
            if sender.send(event(accepted)).await.is_err() {
                return host.caller_went_away(&id);
            }
            let mut announced: Option<Checkpoint> = None;
            let mut reported: Option<ProgressState> = None;
            loop {
                let snapshot = tokio::select! {
                    () = sender.closed() => return host.caller_went_away(&id),
                    snapshot = watch.next() => snapshot,
                };
                let Some(operation) = snapshot else { return };
                if operation.checkpoint != announced {
                    announced.clone_from(&operation.checkpoint);
                    // `None`: a completed training removed its checkpoint.
                    if let Some(saved) = &announced
                        && sender
                            .send(event(Event::CheckpointSaved(saved.into())))
                            .await
                            .is_err()
                    {
                        return host.caller_went_away(&id);
                    }
                }
                let next = match sessions::final_event(&operation) {
                    Some(end) => {
                        // Gone or not, the caller has nothing more to hear.
                        let _ = sender.send(event(end)).await;
                        return;
                    }
                    // A snapshot that changed only its checkpoint.
                    None if reported.as_ref() == Some(&operation.progress) => continue,
                    None => Event::Progress((&operation.progress).into()),
                };
                reported = Some(operation.progress);
                if sender.send(event(next)).await.is_err() {
                    return host.caller_went_away(&id);
                }
            }
        });
        Ok(ReceiverStream::new(receiver))
    }

    fn caller_went_away(&self, id: &OperationId) {
        let reason = CancelReason::UserRequest(Some(CALLER_WENT_AWAY.to_owned()));
        // Finished already: nothing to stop.
        let _ = self.operations().cancel(id, reason);
    }
}

/// The `TrainingHost` gRPC service.
#[derive(Debug, Clone)]
pub(crate) struct TrainingService {
    host: Arc<Host>,
}

impl TrainingService {
    pub(crate) fn new(host: Arc<Host>) -> Self {
        Self { host }
    }
}

#[tonic::async_trait]
impl TrainingHost for TrainingService {
    type StartTrainingStream = ReceiverStream<Result<proto::TrainingEvent, Status>>;
    type FetchArtifactStream = ReceiverStream<Result<proto::ArtifactChunk, Status>>;
    type FetchCheckpointStream = ReceiverStream<Result<proto::CheckpointChunk, Status>>;

    async fn start_training(
        &self,
        request: Request<proto::StartTrainingRequest>,
    ) -> Result<Response<Self::StartTrainingStream>, Status> {
        let request = request.into_inner();
        let resume = rpc::resume_checkpoint(&request)?;
        let training = self.host.on_backend(TrainingRequest::try_from(request)?)?;
        let resume_from = match &resume {
            Some(name) => Some(checkpoint::uploaded(name, &self.host.checkpoints_dir()).await?),
            None => None,
        };
        self.host.refuse_when_shutting_down()?;
        let strategy = training.strategy().name.clone();
        let id = self
            .host
            .manager
            .train(training, self.host.directories.clone(), resume_from)
            .map_err(internal)?;
        tracing::info!(session = %id, %strategy, resume_checkpoint = ?resume.as_ref().map(rpc::CheckpointName::as_str), "training session accepted");
        let events = self.host.events(id).map_err(internal)?;
        Ok(Response::new(events))
    }

    async fn cancel_training(
        &self,
        request: Request<proto::CancelTrainingRequest>,
    ) -> Result<Response<proto::Session>, Status> {
        let request = request.into_inner();
        let session = self.host.session(&request.session_id)?;
        // A finished session is answered unchanged: the end is final.
        if !session.status.is_terminal() {
            let reason = request
                .reason
                .map_or(CancelReason::UserRequest(None), CancelReason::from);
            tracing::info!(session = %session.id, %reason, "stop of a training session requested");
            if let Ok(mut watch) = self
                .host
                .operations()
                .cancel(&session.id, reason)
                .and_then(|_| self.host.operations().watch(&session.id))
            {
                let ended = async { while watch.next().await.is_some() {} };
                // The trainer stops within one batch. Past the window, the
                // answer says RUNNING (the caller counts that as
                // unconfirmed) and the stream tells the end.
                let _ = tokio::time::timeout(rpc::CANCEL_CONFIRM_WINDOW, ended).await;
            }
        }
        let session = self.host.session(&request.session_id)?;
        Ok(Response::new(sessions::to_proto(&session)))
    }

    async fn get_session(
        &self,
        request: Request<proto::GetSessionRequest>,
    ) -> Result<Response<proto::Session>, Status> {
        let session = self.host.session(&request.into_inner().session_id)?;
        Ok(Response::new(sessions::to_proto(&session)))
    }

    async fn list_sessions(
        &self,
        _request: Request<proto::ListSessionsRequest>,
    ) -> Result<Response<proto::ListSessionsResponse>, Status> {
        let filter = ListFilter {
            kind: Some(OperationKind::Training),
            ..ListFilter::default()
        };
        let page = self.host.operations().list(&filter).map_err(internal)?;
        let sessions = page.operations.iter().map(sessions::to_proto).collect();
        Ok(Response::new(proto::ListSessionsResponse { sessions }))
    }

    async fn fetch_artifact(
        &self,
        request: Request<proto::FetchArtifactRequest>,
    ) -> Result<Response<Self::FetchArtifactStream>, Status> {
        let session = self.host.session(&request.into_inner().session_id)?;
        let summary = match (session.status, &session.result) {
            (OperationStatus::Completed, Some(result)) => {
                serde_json::from_value::<TrainingSummary>(result.clone()).map_err(|err| {
                    Status::internal(format!("the session's summary is unreadable: {err}"))
                })?
            }
            (status, _) => {
                let state = match status {
                    OperationStatus::Pending => "is waiting",
                    OperationStatus::Running => "is still running",
                    OperationStatus::Failed => "failed",
                    OperationStatus::Cancelled => "was cancelled",
                    OperationStatus::Completed => "completed without a summary",
                };
                return Err(Status::failed_precondition(format!(
                    "session {} {state}; only a completed session has an artifact",
                    session.id
                )));
            }
        };
        Ok(Response::new(
            artifact::stream(session.id.as_str(), summary.model_path).await?,
        ))
    }

    async fn fetch_checkpoint(
        &self,
        request: Request<proto::FetchCheckpointRequest>,
    ) -> Result<Response<Self::FetchCheckpointStream>, Status> {
        let session = self.host.session(&request.into_inner().session_id)?;
        let Some(saved) = &session.checkpoint else {
            let why = match session.status {
                OperationStatus::Completed => "it completed, which removes its checkpoint",
                _ => "it has not saved one (a training saves one at each epoch's end)",
            };
            return Err(Status::failed_precondition(format!(
                "session {} has no checkpoint: {why}",
                session.id
            )));
        };
        Ok(Response::new(
            checkpoint::stream(&session.id, saved, &self.host.checkpoints_dir()).await?,
        ))
    }

    async fn upload_checkpoint(
        &self,
        request: Request<tonic::Streaming<proto::UploadCheckpointChunk>>,
    ) -> Result<Response<proto::UploadCheckpointResponse>, Status> {
        let chunks = request.into_inner();
        Ok(Response::new(
            checkpoint::receive(
                chunks,
                &self.host.checkpoints_dir(),
                rpc::MAX_CHECKPOINT_BYTES,
            )
            .await?,
        ))
    }

    async fn get_status(
        &self,
        _request: Request<proto::GetStatusRequest>,
    ) -> Result<Response<proto::HostStatus>, Status> {
        self.host.refuse_when_shutting_down()?;
        Ok(Response::new(self.host.status()))
    }
}

/// The host's own operations service failed (its in-memory store cannot,
/// short of a bug).
fn internal(error: OperationError) -> Status {
    Status::internal(orchestrator_core::error_chain(&error))
}

#[cfg(test)]
mod tests;
