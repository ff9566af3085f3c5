//! The `TrainingHost` service: one session per `StartTraining` call, a
//! `LocalTrainer` on a thread of its own per running session, at most
//! `max_concurrent` of them at once (the others wait in line).

use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::{Duration, SystemTime};

use local_trainer::{Backend, LocalTrainer, PipelineError, TrainOptions, TrainingRequest};
use orchestrator_core::{CancelReason, CancellationToken, Cancelled, error_chain};
use progress::{ProgressRenderer, ProgressState, TrainingProgressRenderer};
use rpc::proto::training_event::Event;
use rpc::proto::{self, training_host_server::TrainingHost};
use strategy::StrategyConfig;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};
use tokio_stream::Stream;
use tokio_stream::wrappers::{ReceiverStream, WatchStream};
use tokio_util::task::TaskTracker;
use tonic::{Request, Response, Status};

use crate::artifact;
use crate::sessions::{Outcome, Registry, Session, Snapshot, Status as SessionStatus};

/// The note of the cancel when a caller drops its event stream.
pub(crate) const CALLER_WENT_AWAY: &str = "the caller went away";

/// What every session of one host shares.
#[derive(Debug)]
pub(crate) struct Host {
    registry: Registry,
    slots: Arc<Semaphore>,
    /// Every session's token is a child: cancelling it stops them all.
    root: CancellationToken,
    /// Tracks the task driving each session, so shutdown can wait for them.
    tracker: TaskTracker,
    data_dir: PathBuf,
    models_dir: PathBuf,
}

impl Host {
    pub(crate) fn new(data_dir: PathBuf, models_dir: PathBuf, max_concurrent: usize) -> Self {
        Self {
            registry: Registry::default(),
            slots: Arc::new(Semaphore::new(max_concurrent.max(1))),
            root: CancellationToken::new(),
            tracker: TaskTracker::new(),
            data_dir,
            models_dir,
        }
    }

    /// Cancels every waiting and running session and waits until each has
    /// ended (its trainer thread has returned).
    pub(crate) async fn shutdown(&self) {
        self.root.cancel(CancelReason::Shutdown);
        self.slots.close();
        self.tracker.close();
        self.tracker.wait().await;
    }

    /// Tells each waiting session its place in the line.
    fn refresh_waiting(&self) {
        for (index, session) in self.registry.waiting().iter().enumerate() {
            session.set_waiting_message(waiting_message(index + 1));
        }
    }
}

fn waiting_message(position: usize) -> String {
    format!("waiting for a free training slot (position {position} in line)")
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

    fn session(&self, id: &str) -> Result<Arc<Session>, Status> {
        self.host.registry.get(id).ok_or_else(|| {
            Status::not_found(format!(
                "no training session {id:?} on this host (finished sessions are kept \
                 until {} newer ones have finished)",
                crate::sessions::KEPT_FINISHED
            ))
        })
    }
}

#[tonic::async_trait]
impl TrainingHost for TrainingService {
    type StartTrainingStream = EventStream;
    type FetchArtifactStream = ReceiverStream<Result<proto::ArtifactChunk, Status>>;

    async fn start_training(
        &self,
        request: Request<proto::StartTrainingRequest>,
    ) -> Result<Response<Self::StartTrainingStream>, Status> {
        let training = training_request(
            request.into_inner(),
            &self.host.data_dir,
            &self.host.models_dir,
        )?;
        if self.host.root.is_cancelled() {
            return Err(Status::unavailable(
                "the training host is shutting down and takes no new trainings",
            ));
        }
        let permit = Arc::clone(&self.host.slots).try_acquire_owned().ok();
        let (status, progress) = match permit {
            Some(_) => (SessionStatus::Running, starting_progress()),
            None => (SessionStatus::Waiting, ProgressState::default()),
        };
        let session = self.host.registry.create(
            training.strategy.name.clone(),
            self.host.root.child(),
            status,
            progress,
        );
        self.host.refresh_waiting();
        tracing::info!(
            session = %session.id,
            strategy = %session.strategy,
            waiting = permit.is_none(),
            "training session accepted"
        );
        let stream = EventStream::new(&session);
        self.host
            .tracker
            .spawn(drive(Arc::clone(&self.host), session, permit, training));
        Ok(Response::new(stream))
    }

    async fn cancel_training(
        &self,
        request: Request<proto::CancelTrainingRequest>,
    ) -> Result<Response<proto::Session>, Status> {
        let request = request.into_inner();
        let session = self.session(&request.session_id)?;
        // A finished session is answered unchanged: the end is final.
        if !session.snapshot().status.is_finished() {
            let reason = request
                .reason
                .map_or(CancelReason::UserRequest(None), CancelReason::from);
            tracing::info!(session = %session.id, %reason, "cancelling a training session");
            session.token.cancel(reason);
            let mut updates = session.subscribe();
            let ended = updates.wait_for(|snapshot| snapshot.status.is_finished());
            // The trainer stops within one batch. Past the window, the answer
            // says RUNNING (the caller counts that as unconfirmed) and the
            // stream tells the end.
            let _ = tokio::time::timeout(rpc::CANCEL_CONFIRM_WINDOW, ended).await;
        }
        Ok(Response::new(session.to_proto()))
    }

    async fn get_session(
        &self,
        request: Request<proto::GetSessionRequest>,
    ) -> Result<Response<proto::Session>, Status> {
        let session = self.session(&request.into_inner().session_id)?;
        Ok(Response::new(session.to_proto()))
    }

    async fn list_sessions(
        &self,
        _request: Request<proto::ListSessionsRequest>,
    ) -> Result<Response<proto::ListSessionsResponse>, Status> {
        let sessions = self
            .host
            .registry
            .list()
            .iter()
            .map(|session| session.to_proto())
            .collect();
        Ok(Response::new(proto::ListSessionsResponse { sessions }))
    }

    async fn fetch_artifact(
        &self,
        request: Request<proto::FetchArtifactRequest>,
    ) -> Result<Response<Self::FetchArtifactStream>, Status> {
        let session = self.session(&request.into_inner().session_id)?;
        let snapshot = session.snapshot();
        let Some(Outcome::Completed { model_path, .. }) = snapshot.outcome else {
            let state = match snapshot.status {
                SessionStatus::Waiting => "is waiting",
                SessionStatus::Running => "is still running",
                SessionStatus::Failed => "failed",
                SessionStatus::Cancelled => "was cancelled",
                SessionStatus::Completed => "completed",
            };
            return Err(Status::failed_precondition(format!(
                "session {} {state}; only a completed session has an artifact",
                session.id
            )));
        };
        Ok(Response::new(
            artifact::stream(&session.id, model_path).await?,
        ))
    }
}

/// The trainer's request, from the wire request and the host's directories.
/// Checks a `StartTraining` request and turns it into the trainer's
/// request for the host's folders; errors name the field.
pub(crate) fn training_request(
    request: proto::StartTrainingRequest,
    data_dir: &Path,
    models_dir: &Path,
) -> Result<TrainingRequest, Status> {
    let strategy: StrategyConfig = serde_json::from_str(&request.strategy_json).map_err(|err| {
        Status::invalid_argument(format!(
            "StartTrainingRequest.strategy_json is not a valid strategy: {err}"
        ))
    })?;
    let start = request
        .start
        .map(|at| rpc::datetime(at, "StartTrainingRequest.start"))
        .transpose()?;
    let end = request
        .end
        .map(|at| rpc::datetime(at, "StartTrainingRequest.end"))
        .transpose()?;
    if let (Some(start), Some(end)) = (start, end)
        && start > end
    {
        return Err(Status::invalid_argument(format!(
            "StartTrainingRequest.start ({start}) is after StartTrainingRequest.end ({end})"
        )));
    }
    let options = request.options.unwrap_or_default();
    let backend = match options.backend.as_str() {
        "" => Backend::default(),
        name => name.parse().map_err(|err: local_trainer::UnknownBackend| {
            Status::invalid_argument(format!("TrainingOptions.backend: {err}"))
        })?,
    };
    let epochs_override = match options.epochs {
        Some(0) => {
            return Err(Status::invalid_argument(
                "TrainingOptions.epochs must be at least 1 (leave it unset for the strategy's)",
            ));
        }
        epochs => epochs.map(|epochs| epochs as usize),
    };
    let defaults = TrainOptions::default();
    Ok(TrainingRequest {
        strategy,
        // The caller applied its overrides before sending the strategy.
        symbols: None,
        timeframes: None,
        start,
        end,
        data_dir: data_dir.to_owned(),
        models_dir: models_dir.to_owned(),
        options: TrainOptions {
            backend,
            epochs_override,
            check_every_batches: match options.check_every_batches {
                0 => defaults.check_every_batches,
                every => every as usize,
            },
            progress_interval: match options.progress_interval_ms {
                0 => defaults.progress_interval,
                ms => Duration::from_millis(u64::from(ms)),
            },
            ..defaults
        },
    })
}

fn starting_progress() -> ProgressState {
    ProgressState {
        message: "starting the training".to_owned(),
        started_at: Some(SystemTime::now()),
        ..ProgressState::default()
    }
}

/// Runs one session to its end: waits for a slot (unless it has one),
/// trains, records the outcome.
async fn drive(
    host: Arc<Host>,
    session: Arc<Session>,
    permit: Option<OwnedSemaphorePermit>,
    request: TrainingRequest,
) {
    let permit = match permit {
        Some(permit) => permit,
        None => {
            let acquired = tokio::select! {
                biased;
                () = session.token.cancelled() => None,
                // Err only once shutdown closed the slots, which also cancels the token.
                permit = Arc::clone(&host.slots).acquire_owned() => permit.ok(),
            };
            let Some(permit) = acquired else {
                finish(
                    &host,
                    &session,
                    cancelled(&session.token, "waiting for a training slot"),
                );
                return;
            };
            session.set_running();
            permit
        }
    };
    host.refresh_waiting();
    let outcome = train(&session, request).await;
    drop(permit);
    finish(&host, &session, outcome);
}

fn finish(host: &Host, session: &Session, outcome: Outcome) {
    match &outcome {
        Outcome::Completed { model_path, .. } => {
            tracing::info!(session = %session.id, model = %model_path.display(), "training completed");
        }
        Outcome::Failed(message) => {
            tracing::warn!(session = %session.id, %message, "training failed");
        }
        Outcome::Cancelled { reason, stage } => {
            tracing::info!(session = %session.id, %reason, %stage, "training cancelled");
        }
    }
    session.finish(outcome);
    host.refresh_waiting();
    host.registry.trim();
}

/// Runs the trainer on a thread of its own and waits for its result
/// without blocking the runtime.
async fn train(session: &Arc<Session>, request: TrainingRequest) -> Outcome {
    let (sender, result) = oneshot::channel();
    let worker = Arc::clone(session);
    let spawned = std::thread::Builder::new()
        .name(format!("train-{}", session.id))
        .spawn(move || {
            let started = SystemTime::now();
            let mut report = |mut state: ProgressState| {
                state.message = TrainingProgressRenderer.render(&state);
                state.started_at = Some(started);
                state.updated_at = Some(SystemTime::now());
                worker.report(state);
            };
            let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
                LocalTrainer.run(&request, &worker.token, &mut report)
            }));
            // The receiver is gone only if the runtime is: nobody is left to tell.
            let _ = sender.send(outcome);
        });
    if let Err(err) = spawned {
        return Outcome::Failed(format!("cannot start a training thread: {err}"));
    }
    match result.await {
        Ok(Ok(Ok(summary))) => match serde_json::to_string(&summary) {
            Ok(summary_json) => Outcome::Completed {
                summary_json,
                model_path: summary.model_path,
            },
            Err(err) => Outcome::Failed(format!("cannot encode the training summary: {err}")),
        },
        Ok(Ok(Err(error))) => outcome_of(&error, &session.token),
        Ok(Err(payload)) => Outcome::Failed(format!(
            "the trainer panicked: {}",
            panic_message(payload.as_ref())
        )),
        Err(_) => Outcome::Failed("the training thread ended without a result".to_owned()),
    }
}

/// A `Cancelled` anywhere in the chain, or any error once the token was
/// cancelled, is a cancellation; anything else a failure with its chain.
fn outcome_of(error: &PipelineError, token: &CancellationToken) -> Outcome {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(err) = source {
        if let Some(cancelled) = err.downcast_ref::<Cancelled>() {
            return Outcome::Cancelled {
                reason: cancelled.reason.clone(),
                stage: cancelled.stage.to_string(),
            };
        }
        source = err.source();
    }
    if token.is_cancelled() {
        return cancelled(token, "training");
    }
    Outcome::Failed(error_chain(error))
}

fn cancelled(token: &CancellationToken, stage: &str) -> Outcome {
    Outcome::Cancelled {
        // Without a reason the token was not cancelled: only shutdown closes the slots.
        reason: token.reason().unwrap_or(CancelReason::Shutdown),
        stage: stage.to_owned(),
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

/// The events of one session: `Accepted`, the latest progress whenever it
/// changes (a slow reader skips intermediate snapshots), then the end.
/// Dropped before the end, it cancels the session.
#[derive(Debug)]
pub(crate) struct EventStream {
    accepted: Option<proto::TrainingEvent>,
    updates: WatchStream<Snapshot>,
    ended: bool,
    session: Arc<Session>,
}

impl EventStream {
    fn new(session: &Arc<Session>) -> Self {
        Self {
            accepted: Some(proto::TrainingEvent {
                event: Some(Event::Accepted(proto::Accepted {
                    session_id: session.id.clone(),
                })),
            }),
            updates: WatchStream::new(session.subscribe()),
            ended: false,
            session: Arc::clone(session),
        }
    }
}

impl Stream for EventStream {
    type Item = Result<proto::TrainingEvent, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if let Some(accepted) = this.accepted.take() {
            return Poll::Ready(Some(Ok(accepted)));
        }
        if this.ended {
            return Poll::Ready(None);
        }
        let Some(snapshot) = ready!(Pin::new(&mut this.updates).poll_next(cx)) else {
            this.ended = true;
            return Poll::Ready(None);
        };
        let event = match &snapshot.outcome {
            Some(outcome) => {
                this.ended = true;
                outcome.event()
            }
            None => Event::Progress((&snapshot.progress).into()),
        };
        Poll::Ready(Some(Ok(proto::TrainingEvent { event: Some(event) })))
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        if !self.ended {
            self.session
                .token
                .cancel(CancelReason::UserRequest(Some(CALLER_WENT_AWAY.to_owned())));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cancelled_in_the_chain_or_a_cancelled_token_is_a_cancellation() {
        let token = CancellationToken::new();
        let error = PipelineError::Cancelled(Cancelled {
            reason: CancelReason::Timeout,
            stage: "loading data".into(),
        });
        let Outcome::Cancelled { reason, stage } = outcome_of(&error, &token) else {
            panic!("not cancelled");
        };
        assert_eq!(
            (reason, stage.as_str()),
            (CancelReason::Timeout, "loading data")
        );

        let error = PipelineError::Data(market_data::DataError::MissingDataDir {
            path: "/nowhere".into(),
        });
        let Outcome::Failed(message) = outcome_of(&error, &token) else {
            panic!("not failed");
        };
        assert_eq!(
            message,
            "loading data: data directory /nowhere does not exist"
        );

        token.cancel(CancelReason::Shutdown);
        assert!(matches!(
            outcome_of(&error, &token),
            Outcome::Cancelled {
                reason: CancelReason::Shutdown,
                ..
            }
        ));
    }

    #[test]
    fn panic_messages_are_read_from_str_and_string_payloads() {
        assert_eq!(panic_message(&"static"), "static");
        assert_eq!(panic_message(&String::from("owned")), "owned");
        assert_eq!(panic_message(&42_u8), "(no message)");
    }
}
