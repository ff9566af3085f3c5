//! The training client against a scripted fake host served on loopback.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use orchestrator_core::CancelReason;
use progress::{ProgressContext, Step, TrainingContext};
use rpc::auth::RequireToken;
use rpc::proto::training_host_server::{TrainingHost, TrainingHostServer};
use tokio_stream::{Stream, StreamExt};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

use super::*;
use crate::{ConnectOptions, HostKind};

/// Awaits `future`, failing the test if it never ends: a deadline that turns
/// a hang into a failure, far above any real wait (how fast a cancel or a
/// lost host is noticed is measured by `cargo xtask bench host`).
async fn finishes<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), future)
        .await
        .expect("still running after 60 s")
}

type EventStream = Pin<Box<dyn Stream<Item = Result<proto::TrainingEvent, Status>> + Send>>;
type ChunkStream = Pin<Box<dyn Stream<Item = Result<proto::ArtifactChunk, Status>> + Send>>;
type CheckpointStream = Pin<Box<dyn Stream<Item = Result<proto::CheckpointChunk, Status>> + Send>>;

/// A host that answers every call from a script.
#[derive(Clone, Default)]
struct FakeHost {
    /// Sent in order by `StartTraining`.
    events: Vec<Event>,
    /// Keep the event stream open after the script, as a long training does.
    then_wait: bool,
    /// Never answer `CancelTraining`, as a host that hangs.
    ignore_cancel: bool,
    /// How long the session takes to end once `CancelTraining` arrives.
    cancel_delay: Duration,
    /// The session's status in the answer to `CancelTraining`; `None`: cancelled.
    cancel_answer: Option<proto::SessionStatus>,
    cancels: Arc<Mutex<Vec<proto::CancelTrainingRequest>>>,
    artifact: Vec<proto::ArtifactChunk>,
    /// The session's checkpoint; none (`FAILED_PRECONDITION`) when empty.
    checkpoint: Vec<proto::CheckpointChunk>,
    /// Every `StartTraining` request, in order.
    started: Arc<Mutex<Vec<proto::StartTrainingRequest>>>,
    /// The chunks of every upload.
    uploads: Arc<Mutex<Vec<Vec<proto::UploadCheckpointChunk>>>>,
    /// The answer to an upload; `None`: `upload-1.ckpt` with the bytes
    /// received.
    upload_answer: Option<Result<proto::UploadCheckpointResponse, Status>>,
    /// The answer to `GetStatus`; `None`: never answer, as a host that hangs.
    status: Option<proto::HostStatus>,
}

#[tonic::async_trait]
impl TrainingHost for FakeHost {
    type StartTrainingStream = EventStream;
    type FetchArtifactStream = ChunkStream;
    type FetchCheckpointStream = CheckpointStream;

    async fn start_training(
        &self,
        request: Request<proto::StartTrainingRequest>,
    ) -> Result<Response<EventStream>, Status> {
        self.started.lock().unwrap().push(request.into_inner());
        let events = self
            .events
            .clone()
            .into_iter()
            .map(|event| Ok(proto::TrainingEvent { event: Some(event) }));
        let events = tokio_stream::iter(events);
        Ok(Response::new(if self.then_wait {
            Box::pin(events.chain(tokio_stream::pending()))
        } else {
            Box::pin(events)
        }))
    }

    async fn cancel_training(
        &self,
        request: Request<proto::CancelTrainingRequest>,
    ) -> Result<Response<proto::Session>, Status> {
        let request = request.into_inner();
        self.cancels.lock().unwrap().push(request.clone());
        if self.ignore_cancel {
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(self.cancel_delay).await;
        let status = self
            .cancel_answer
            .unwrap_or(proto::SessionStatus::Cancelled);
        Ok(Response::new(proto::Session {
            session_id: request.session_id,
            status: status.into(),
            ..proto::Session::default()
        }))
    }

    async fn get_session(
        &self,
        _request: Request<proto::GetSessionRequest>,
    ) -> Result<Response<proto::Session>, Status> {
        Err(Status::unimplemented("not scripted"))
    }

    async fn list_sessions(
        &self,
        _request: Request<proto::ListSessionsRequest>,
    ) -> Result<Response<proto::ListSessionsResponse>, Status> {
        Err(Status::unimplemented("not scripted"))
    }

    async fn fetch_artifact(
        &self,
        _request: Request<proto::FetchArtifactRequest>,
    ) -> Result<Response<ChunkStream>, Status> {
        Ok(Response::new(Box::pin(tokio_stream::iter(
            self.artifact.clone().into_iter().map(Ok),
        ))))
    }

    async fn fetch_checkpoint(
        &self,
        _request: Request<proto::FetchCheckpointRequest>,
    ) -> Result<Response<CheckpointStream>, Status> {
        if self.checkpoint.is_empty() {
            return Err(Status::failed_precondition(
                "session sess_1 has no checkpoint",
            ));
        }
        Ok(Response::new(Box::pin(tokio_stream::iter(
            self.checkpoint.clone().into_iter().map(Ok),
        ))))
    }

    async fn upload_checkpoint(
        &self,
        request: Request<tonic::Streaming<proto::UploadCheckpointChunk>>,
    ) -> Result<Response<proto::UploadCheckpointResponse>, Status> {
        let mut chunks = request.into_inner();
        let mut received = Vec::new();
        while let Some(chunk) = chunks.message().await? {
            received.push(chunk);
        }
        let bytes = received.iter().map(|c| c.data.len() as u64).sum();
        self.uploads.lock().unwrap().push(received);
        match self.upload_answer.clone() {
            Some(answer) => answer.map(Response::new),
            None => Ok(Response::new(proto::UploadCheckpointResponse {
                name: "upload-1.ckpt".to_owned(),
                bytes,
            })),
        }
    }

    async fn get_status(
        &self,
        _request: Request<proto::GetStatusRequest>,
    ) -> Result<Response<proto::HostStatus>, Status> {
        match self.status.clone() {
            Some(status) => Ok(Response::new(status)),
            None => std::future::pending().await,
        }
    }
}

/// The fake host, served by a runtime of its own so that [`kill`](Self::kill)
/// can drop its connections at once, as a killed process would.
struct Running {
    url: String,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Running {
    fn start(host: FakeHost, auth_token: Option<&str>) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let auth = RequireToken::new(auth_token);
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            Server::builder()
                .add_service(InterceptedService::new(TrainingHostServer::new(host), auth))
                .serve_with_incoming(TcpIncoming::from(listener))
                .await
                .unwrap();
        });
        Self {
            url: format!("http://{addr}"),
            runtime: Some(runtime),
        }
    }

    fn client(&self) -> TrainingHostClient {
        client_at(&self.url, None)
    }

    fn kill(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.kill();
    }
}

fn client_at(url: &str, auth_token: Option<&str>) -> TrainingHostClient {
    TrainingHostClient::new(HostEndpoint::new(
        HostKind::Training,
        url,
        ConnectOptions {
            auth_token: auth_token.and_then(rpc::Secret::new),
            ..ConnectOptions::default()
        },
    ))
}

fn accepted() -> Event {
    Event::Accepted(proto::Accepted {
        session_id: "sess_1".to_owned(),
    })
}

fn epoch(current: u32) -> ProgressState {
    ProgressState {
        percentage: f64::from(current) * 10.0,
        message: format!("epoch {current}"),
        context: ProgressContext::Training(TrainingContext {
            epoch: Some(Step::new(current, 10)),
            ..TrainingContext::default()
        }),
        ..ProgressState::default()
    }
}

fn progress(state: &ProgressState) -> Event {
    Event::Progress(proto::Progress::from(state))
}

fn request() -> TrainingRequest {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../strategies/eurusd_mlp.yaml"
    );
    let strategy = strategy::StrategyConfig::from_file(std::path::Path::new(path)).unwrap();
    TrainingRequest::new(strategy, None, None, strategy::TrainingOptions::default()).unwrap()
}

/// A host's summary: the fields a trainer fills, its model path the host's.
fn summary() -> TrainingSummary {
    serde_json::from_value(serde_json::json!({
        "strategy": "demo",
        "model_type": "mlp",
        "symbols": ["EURUSD"],
        "timeframes": ["1h"],
        "backend": "flex",
        "model_path": "/srv/models/demo/EURUSD_1h_v1",
        "metrics": {
            "samples": 2, "accuracy": 0.5, "macro_f1": 0.33,
            "per_class": [
                { "class": "BUY", "precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1 },
                { "class": "HOLD", "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0 },
                { "class": "SELL", "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1 }
            ],
            "confusion_matrix": [[1, 0, 0], [0, 0, 0], [0, 1, 0]],
            "baseline": { "class": "SELL", "accuracy": 0.5 }
        },
        "report": {
            "seed": 42, "epochs_run": 1, "best_epoch": 1, "best_val_loss": null,
            "stopped_early": false,
            "history": [{ "epoch": 1, "train_loss": 1.1, "train_accuracy": 0.4,
                          "val_loss": null, "val_accuracy": null, "samples_per_second": 900.0 }]
        },
        "samples": { "train": 8, "validation": 0, "test": 2 },
        "features_per_bar": 3,
        "phase_seconds": { "load_data": 0.0, "build_features": 0.0, "train": 0.1, "evaluate_and_save": 0.0 }
    }))
    .unwrap()
}

fn completed(summary: Option<proto::TrainingSummary>) -> Event {
    Event::Completed(proto::Completed { summary })
}

fn user_cancel() -> CancelReason {
    CancelReason::UserRequest(Some("enough".to_owned()))
}

#[track_caller]
fn assert_cancelled(err: &RemoteTrainingError) -> &RemoteStop {
    let RemoteTrainingError::Cancelled {
        stop, cancelled, ..
    } = err
    else {
        panic!("not a cancellation: {err:?}");
    };
    // The operation finds the cancellation in the error's chain.
    let source = std::error::Error::source(err).unwrap();
    assert_eq!(source.downcast_ref::<Cancelled>(), Some(cancelled));
    stop
}

#[tokio::test]
async fn progress_events_arrive_as_progress_states_then_the_completion() {
    let states = [epoch(1), epoch(2), epoch(3)];
    let host = Running::start(
        FakeHost {
            events: [accepted()]
                .into_iter()
                .chain(states.iter().map(progress))
                .chain([completed(Some((&summary()).into()))])
                .collect(),
            ..FakeHost::default()
        },
        None,
    );
    let mut seen = Vec::new();
    let done = host
        .client()
        .train(&request(), &CancellationToken::new(), |update| {
            if let RemoteUpdate::Progress(state) = update {
                seen.push(state);
            }
        })
        .await
        .unwrap();
    assert_eq!(seen, states);
    assert_eq!(
        done,
        RemoteCompletion {
            session_id: "sess_1".to_owned(),
            summary: summary(),
        }
    );
}

#[tokio::test]
async fn a_completion_without_a_valid_summary_is_a_protocol_error() {
    let mut bad_backend = proto::TrainingSummary::from(&summary());
    bad_backend.backend = "gpu".to_owned();
    for (event, expected) in [
        (completed(None), "completed without a summary"),
        (
            completed(Some(bad_backend)),
            "invalid TrainingSummary.backend",
        ),
    ] {
        let host = Running::start(
            FakeHost {
                events: vec![accepted(), event],
                ..FakeHost::default()
            },
            None,
        );
        let err = host
            .client()
            .train(&request(), &CancellationToken::new(), |_| {})
            .await
            .unwrap_err();
        assert!(
            matches!(err, RemoteTrainingError::Host(HostError::Protocol { .. })),
            "{err:?}"
        );
        assert!(err.to_string().contains(expected), "{err}");
    }
}

#[tokio::test]
async fn a_failure_or_cancellation_on_the_host_is_reported_as_such() {
    let failing = Running::start(
        FakeHost {
            events: vec![
                accepted(),
                Event::Failed(proto::Failed {
                    message: "loading data: no EURUSD_1h.csv".to_owned(),
                }),
            ],
            ..FakeHost::default()
        },
        None,
    );
    let err = failing
        .client()
        .train(&request(), &CancellationToken::new(), |_| {})
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "training on the host at {} failed: loading data: no EURUSD_1h.csv",
            failing.url
        )
    );

    // Cancelled there by someone else (another caller's CancelTraining).
    let cancelled_there = Running::start(
        FakeHost {
            events: vec![
                accepted(),
                Event::Cancelled(proto::Cancelled {
                    reason: Some(proto::CancelReason::from(&user_cancel())),
                    stage: "training".to_owned(),
                }),
            ],
            ..FakeHost::default()
        },
        None,
    );
    let err = cancelled_there
        .client()
        .train(&request(), &CancellationToken::new(), |_| {})
        .await
        .unwrap_err();
    assert_eq!(assert_cancelled(&err), &RemoteStop::Confirmed);
    let RemoteTrainingError::Cancelled { cancelled, .. } = &err else {
        unreachable!()
    };
    assert_eq!(cancelled.reason, user_cancel());
    assert_eq!(cancelled.stage, "training on the host");
}

#[tokio::test]
async fn a_host_that_shuts_down_mid_training_fails_it_rather_than_cancelling_it() {
    let shutting_down = Running::start(
        FakeHost {
            events: vec![
                accepted(),
                progress(&epoch(1)),
                Event::Cancelled(proto::Cancelled {
                    reason: Some(proto::CancelReason::from(&CancelReason::Shutdown)),
                    stage: "training".to_owned(),
                }),
            ],
            ..FakeHost::default()
        },
        None,
    );
    let err = shutting_down
        .client()
        .train(&request(), &CancellationToken::new(), |_| {})
        .await
        .unwrap_err();
    assert!(
        matches!(err, RemoteTrainingError::HostShutDown { .. }),
        "{err:?}"
    );
    // Nothing in the chain says cancelled, so the operation ends `failed`.
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&err);
    while let Some(error) = source {
        assert!(!error.is::<Cancelled>(), "{err:?}");
        source = error.source();
    }
    assert_eq!(
        err.to_string(),
        format!(
            "training host shut down: {} stopped the training during training",
            shutting_down.url
        )
    );
}

#[tokio::test]
async fn cancelling_sends_cancel_training_and_ends_confirmed() {
    let fake = FakeHost {
        events: vec![accepted(), progress(&epoch(1))],
        then_wait: true,
        ..FakeHost::default()
    };
    let cancels = Arc::clone(&fake.cancels);
    let host = Running::start(fake, None);
    let token = CancellationToken::new();
    let err = host
        .client()
        .train(&request(), &token, |_| token.cancel(user_cancel()))
        .await
        .unwrap_err();

    assert_eq!(assert_cancelled(&err), &RemoteStop::Confirmed);
    let cancels = cancels.lock().unwrap().clone();
    assert_eq!(cancels.len(), 1);
    assert_eq!(cancels[0].session_id, "sess_1");
    assert_eq!(
        CancelReason::from(cancels[0].reason.clone().unwrap()),
        user_cancel()
    );
    assert!(
        err.to_string()
            .ends_with("cancelled; the host confirmed the stop"),
        "{err}"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn cancelling_after_the_host_died_ends_promptly_unconfirmed() {
    let mut host = Running::start(
        FakeHost {
            events: vec![accepted(), progress(&epoch(1))],
            then_wait: true,
            ..FakeHost::default()
        },
        None,
    );
    let token = CancellationToken::new();
    let (seen, mut progressed) = tokio::sync::mpsc::unbounded_channel();
    let client = host.client();
    let request = request();
    let training = client.train(&request, &token, move |update| {
        if let RemoteUpdate::Progress(state) = update {
            let _ = seen.send(state);
        }
    });
    tokio::pin!(training);
    tokio::select! {
        outcome = &mut training => panic!("ended before cancelling: {outcome:?}"),
        _ = progressed.recv() => {}
    }
    // The training is not polled between these two, so it sees the
    // cancellation before it could notice the host is gone.
    host.kill();
    token.cancel(user_cancel());
    let err = finishes(training).await.unwrap_err();

    let stop = assert_cancelled(&err);
    assert!(matches!(stop, RemoteStop::NotConfirmed(_)), "{stop:?}");
    assert!(
        err.to_string()
            .contains("the remote stop was not confirmed: "),
        "{err}"
    );
}

#[tokio::test]
async fn a_host_that_never_answers_the_cancel_is_not_waited_for() {
    let host = Running::start(
        FakeHost {
            events: vec![accepted(), progress(&epoch(1))],
            then_wait: true,
            ignore_cancel: true,
            ..FakeHost::default()
        },
        None,
    );
    let token = CancellationToken::new();
    let mut client = host.client();
    // The real window is seconds; the rule is the same.
    client.cancel_timeout = Duration::from_millis(100);
    let err = client
        .train(&request(), &token, |_| token.cancel(user_cancel()))
        .await
        .unwrap_err();
    assert_eq!(
        assert_cancelled(&err),
        &RemoteStop::NotConfirmed(format!(
            "{} did not answer the cancel request within 0.1 s",
            host.url
        ))
    );
}

#[test]
fn the_client_waits_for_the_cancel_answer_as_long_as_the_host_waits_to_give_it() {
    assert!(CANCEL_TIMEOUT > rpc::CANCEL_CONFIRM_WINDOW);
    assert_eq!(
        client_at("http://127.0.0.1:1", None).cancel_timeout,
        CANCEL_TIMEOUT
    );
}

#[tokio::test]
async fn a_host_that_stops_the_training_within_its_window_confirms_the_stop() {
    let host = Running::start(
        FakeHost {
            events: vec![accepted(), progress(&epoch(1))],
            then_wait: true,
            // The trainer on the host takes a while to reach its next check.
            cancel_delay: Duration::from_millis(1500),
            ..FakeHost::default()
        },
        None,
    );
    let token = CancellationToken::new();
    let err = host
        .client()
        .train(&request(), &token, |_| token.cancel(user_cancel()))
        .await
        .unwrap_err();
    assert_eq!(assert_cancelled(&err), &RemoteStop::Confirmed);
}

#[tokio::test]
async fn an_answer_that_says_the_session_still_runs_is_not_a_confirmation() {
    for status in [proto::SessionStatus::Running, proto::SessionStatus::Waiting] {
        let host = Running::start(
            FakeHost {
                events: vec![accepted(), progress(&epoch(1))],
                then_wait: true,
                cancel_answer: Some(status),
                ..FakeHost::default()
            },
            None,
        );
        let token = CancellationToken::new();
        let err = host
            .client()
            .train(&request(), &token, |_| token.cancel(user_cancel()))
            .await
            .unwrap_err();
        assert_eq!(
            assert_cancelled(&err),
            &RemoteStop::NotConfirmed(format!(
                "{} answered the cancel request with the session still running",
                host.url
            )),
            "{status:?}"
        );
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_host_that_dies_mid_training_is_lost() {
    let mut host = Running::start(
        FakeHost {
            events: vec![accepted(), progress(&epoch(1))],
            then_wait: true,
            ..FakeHost::default()
        },
        None,
    );
    let (seen, mut progressed) = tokio::sync::mpsc::unbounded_channel();
    let client = host.client();
    let request = request();
    let token = CancellationToken::new();
    let training = client.train(&request, &token, move |update| {
        if let RemoteUpdate::Progress(state) = update {
            let _ = seen.send(state);
        }
    });
    tokio::pin!(training);
    tokio::select! {
        outcome = &mut training => panic!("ended before the host died: {outcome:?}"),
        _ = progressed.recv() => {}
    }
    host.kill();
    let err = finishes(training).await.unwrap_err();

    assert!(
        matches!(err, RemoteTrainingError::Host(HostError::Lost { .. })),
        "{err:?}"
    );
    assert!(
        err.to_string().starts_with(&format!(
            "training host lost: {} stopped answering",
            host.url
        )),
        "{err}"
    );
}

#[tokio::test]
async fn a_host_that_is_not_running_is_unreachable_and_a_wrong_token_is_refused() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", free.local_addr().unwrap());
    drop(free);
    let err = finishes(client_at(&url, None).train(&request(), &CancellationToken::new(), |_| {}))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            RemoteTrainingError::Host(HostError::Unreachable { .. })
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains(&url), "{err}");

    let host = Running::start(
        FakeHost {
            events: vec![accepted()],
            ..FakeHost::default()
        },
        Some("secret"),
    );
    let err = client_at(&host.url, Some("guess"))
        .train(&request(), &CancellationToken::new(), |_| {})
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            RemoteTrainingError::Host(HostError::Unauthenticated { .. })
        ),
        "{err:?}"
    );
}

fn chunk(file: &str, offset: u64, data: &[u8], last: bool) -> proto::ArtifactChunk {
    proto::ArtifactChunk {
        file: file.to_owned(),
        offset,
        data: data.to_vec(),
        last,
    }
}

async fn fetch(
    artifact: Vec<proto::ArtifactChunk>,
    into: &Path,
) -> Result<Vec<String>, RemoteTrainingError> {
    let host = Running::start(
        FakeHost {
            artifact,
            ..FakeHost::default()
        },
        None,
    );
    host.client()
        .fetch_artifact("sess_1", into, &CancellationToken::new())
        .await
}

#[tokio::test]
async fn artifact_files_arrive_whole_in_the_folder() {
    let dir = tempfile::tempdir().unwrap();
    let files = fetch(
        vec![
            chunk("model.bpk", 0, b"abc", false),
            chunk("model.bpk", 3, b"def", true),
            chunk("manifest.json", 0, b"{}", true),
        ],
        dir.path(),
    )
    .await
    .unwrap();
    assert_eq!(files, ["model.bpk", "manifest.json"]);
    assert_eq!(
        std::fs::read(dir.path().join("model.bpk")).unwrap(),
        b"abcdef"
    );
    assert_eq!(
        std::fs::read(dir.path().join("manifest.json")).unwrap(),
        b"{}"
    );
}

#[tokio::test]
async fn artifact_chunks_that_leave_the_folder_or_skip_bytes_are_refused() {
    let outer = tempfile::tempdir().unwrap();
    let into = outer.path().join("artifact");
    std::fs::create_dir(&into).unwrap();
    for (chunks, expected) in [
        (
            vec![chunk("../escaped", 0, b"x", true)],
            "is not a plain file name",
        ),
        (
            vec![chunk("a/b", 0, b"x", true)],
            "is not a plain file name",
        ),
        (vec![chunk("..", 0, b"x", true)], "is not a plain file name"),
        (
            vec![
                chunk("model.bpk", 0, b"abc", false),
                chunk("model.bpk", 4, b"e", true),
            ],
            "a chunk at offset 4 after 3 bytes",
        ),
        (
            vec![chunk("model.bpk", 0, b"abc", false)],
            "ended before the last chunk",
        ),
    ] {
        let err = fetch(chunks, &into).await.unwrap_err();
        assert!(
            matches!(err, RemoteTrainingError::Host(HostError::Protocol { .. })),
            "{err:?}"
        );
        assert!(err.to_string().contains(expected), "{err}");
        let _ = std::fs::remove_file(into.join("model.bpk"));
    }
    assert!(!outer.path().join("escaped").exists());
}

fn saved(epoch: u32, batch: u32) -> proto::CheckpointSaved {
    proto::CheckpointSaved {
        epoch,
        batch,
        bytes: 6,
    }
}

#[tokio::test]
async fn the_session_and_each_checkpoint_saved_on_the_host_are_told_in_order() {
    let host = Running::start(
        FakeHost {
            events: vec![
                accepted(),
                progress(&epoch(1)),
                Event::CheckpointSaved(saved(1, 40)),
                progress(&epoch(2)),
                Event::CheckpointSaved(saved(2, 40)),
                completed(Some((&summary()).into())),
            ],
            ..FakeHost::default()
        },
        None,
    );
    let mut updates = Vec::new();
    host.client()
        .train(&request(), &CancellationToken::new(), |update| {
            updates.push(update);
        })
        .await
        .unwrap();
    let checkpoint = |epoch| {
        RemoteUpdate::Checkpoint(RemoteCheckpoint {
            epoch,
            batch: 40,
            bytes: 6,
        })
    };
    assert_eq!(
        updates,
        [
            RemoteUpdate::Accepted {
                session_id: "sess_1".to_owned()
            },
            RemoteUpdate::Progress(epoch(1)),
            checkpoint(1),
            RemoteUpdate::Progress(epoch(2)),
            checkpoint(2),
        ]
    );
}

fn checkpoint_chunk(offset: u64, data: &[u8], last: bool) -> proto::CheckpointChunk {
    proto::CheckpointChunk {
        checkpoint: (offset == 0).then(|| saved(3, 7)),
        offset,
        data: data.to_vec(),
        last,
    }
}

async fn fetch_checkpoint(
    checkpoint: Vec<proto::CheckpointChunk>,
) -> Result<Option<FetchedCheckpoint>, RemoteTrainingError> {
    let host = Running::start(
        FakeHost {
            checkpoint,
            ..FakeHost::default()
        },
        None,
    );
    host.client()
        .fetch_checkpoint("sess_1", &CancellationToken::new())
        .await
}

#[tokio::test]
async fn a_checkpoint_arrives_whole_saying_which_it_is_or_not_at_all() {
    let fetched = fetch_checkpoint(vec![
        checkpoint_chunk(0, b"abc", false),
        checkpoint_chunk(3, b"def", true),
    ])
    .await
    .unwrap();
    assert_eq!(
        fetched,
        Some(FetchedCheckpoint {
            checkpoint: RemoteCheckpoint {
                epoch: 3,
                batch: 7,
                bytes: 6
            },
            content: b"abcdef".to_vec(),
        })
    );
    // The host says the session has none.
    assert_eq!(fetch_checkpoint(Vec::new()).await.unwrap(), None);
}

#[tokio::test]
async fn checkpoint_chunks_that_skip_bytes_stop_short_or_do_not_say_which_are_refused() {
    let anonymous = proto::CheckpointChunk {
        checkpoint: None,
        ..checkpoint_chunk(0, b"abc", true)
    };
    for (chunks, expected) in [
        (
            vec![
                checkpoint_chunk(0, b"abc", false),
                checkpoint_chunk(4, b"e", true),
            ],
            "a checkpoint chunk at offset 4 after 3 bytes",
        ),
        (
            vec![checkpoint_chunk(0, b"abc", false)],
            "ended before its last chunk",
        ),
        (vec![anonymous], "does not say which checkpoint"),
    ] {
        let err = fetch_checkpoint(chunks).await.unwrap_err();
        assert!(
            matches!(err, RemoteTrainingError::Host(HostError::Protocol { .. })),
            "{err:?}"
        );
        assert!(err.to_string().contains(expected), "{err}");
    }
}

#[tokio::test]
async fn a_checkpoint_is_uploaded_in_order_and_the_training_continues_from_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("op.ckpt");
    let content: Vec<u8> = (0..UPLOAD_CHUNK_BYTES * 2 + 3)
        .map(|i| (i % 251) as u8)
        .collect();
    std::fs::write(&path, &content).unwrap();
    let fake = FakeHost {
        events: vec![accepted(), completed(Some((&summary()).into()))],
        ..FakeHost::default()
    };
    let (uploads, started) = (Arc::clone(&fake.uploads), Arc::clone(&fake.started));
    let host = Running::start(fake, None);
    let client = host.client();
    let token = CancellationToken::new();

    let name = finishes(client.upload_checkpoint(&path, &token))
        .await
        .unwrap();
    assert_eq!(name, "upload-1.ckpt");
    let uploads = uploads.lock().unwrap().clone();
    let shape: Vec<_> = uploads[0]
        .iter()
        .map(|c| (c.offset, c.data.len(), c.last))
        .collect();
    let chunk = UPLOAD_CHUNK_BYTES as u64;
    assert_eq!(
        shape,
        [
            (0, UPLOAD_CHUNK_BYTES, false),
            (chunk, UPLOAD_CHUNK_BYTES, false),
            (2 * chunk, 3, true)
        ]
    );
    let rebuilt: Vec<u8> = uploads[0].iter().flat_map(|c| c.data.clone()).collect();
    assert_eq!(rebuilt, content);

    finishes(client.train_from(&request(), &name, &token, |_| {}))
        .await
        .unwrap();
    finishes(client.train(&request(), &token, |_| {}))
        .await
        .unwrap();
    let started = started.lock().unwrap().clone();
    let resumes: Vec<_> = started
        .iter()
        .map(|s| s.resume_checkpoint.clone())
        .collect();
    assert_eq!(resumes, [Some(name), None]);
}

#[tokio::test]
async fn an_empty_checkpoint_is_one_empty_chunk_marked_last() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.ckpt");
    std::fs::write(&path, b"").unwrap();
    let fake = FakeHost::default();
    let uploads = Arc::clone(&fake.uploads);
    let host = Running::start(fake, None);
    finishes(
        host.client()
            .upload_checkpoint(&path, &CancellationToken::new()),
    )
    .await
    .unwrap();
    assert_eq!(
        uploads.lock().unwrap()[0],
        [proto::UploadCheckpointChunk {
            offset: 0,
            data: Vec::new(),
            last: true
        }]
    );
}

#[tokio::test]
async fn an_upload_answer_that_is_a_path_or_miscounts_or_a_refusal_fails_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("op.ckpt");
    std::fs::write(&path, b"checkpoint").unwrap();
    let answer = |name: &str, bytes| {
        Some(Ok(proto::UploadCheckpointResponse {
            name: name.to_owned(),
            bytes,
        }))
    };
    let cases = [
        (answer("../op.ckpt", 10), "UploadCheckpointResponse.name"),
        (
            answer("upload-1.ckpt", 9),
            "kept 9 bytes of a checkpoint of 10",
        ),
        (
            Some(Err(Status::invalid_argument("UploadCheckpoint: too large"))),
            "rejected the request: UploadCheckpoint: too large",
        ),
    ];
    for (upload_answer, why) in cases {
        let host = Running::start(
            FakeHost {
                upload_answer,
                ..FakeHost::default()
            },
            None,
        );
        let err = finishes(
            host.client()
                .upload_checkpoint(&path, &CancellationToken::new()),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, RemoteTrainingError::Host(_)), "{err:?}");
        assert!(err.to_string().contains(why), "{why}: {err}");
    }
}

#[tokio::test]
async fn a_checkpoint_that_cannot_be_read_is_named_and_nothing_is_sent() {
    let fake = FakeHost::default();
    let uploads = Arc::clone(&fake.uploads);
    let host = Running::start(fake, None);
    let dir = tempfile::tempdir().unwrap();
    for path in [dir.path().join("gone.ckpt"), dir.path().to_owned()] {
        let err = finishes(
            host.client()
                .upload_checkpoint(&path, &CancellationToken::new()),
        )
        .await
        .unwrap_err();
        let RemoteTrainingError::Upload { path: named, .. } = &err else {
            panic!("not an upload error: {err:?}");
        };
        assert_eq!(named, &path);
    }
    assert!(uploads.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_cancelled_upload_ends_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("op.ckpt");
    std::fs::write(&path, b"checkpoint").unwrap();
    let host = Running::start(FakeHost::default(), None);
    let token = CancellationToken::new();
    token.cancel(user_cancel());
    let err = finishes(host.client().upload_checkpoint(&path, &token))
        .await
        .unwrap_err();
    assert_eq!(assert_cancelled(&err), &RemoteStop::NothingRunning);
}

fn host_status(capacity: u32, running: u32, backends: &[&str]) -> proto::HostStatus {
    proto::HostStatus {
        capacity,
        running,
        backends: backends.iter().map(|&name| name.to_owned()).collect(),
        version: "9.9.9".to_owned(),
    }
}

#[tokio::test]
async fn the_status_is_typed_and_backends_this_trdr_does_not_know_are_left_out() {
    let host = Running::start(
        FakeHost {
            status: Some(host_status(4, 6, &["flex", "tpu", "ndarray"])),
            ..FakeHost::default()
        },
        None,
    );
    let status = finishes(host.client().status(&CancellationToken::new()))
        .await
        .unwrap();
    assert_eq!(
        status,
        HostStatus {
            capacity: 4,
            running: 6,
            backends: vec![Backend::Flex, Backend::NdArray],
            version: "9.9.9".to_owned(),
        }
    );
    // Two wait behind the four that run.
    assert_eq!(status.free_slots(), 0);
    assert!((status.load() - 1.5).abs() < f64::EPSILON);
    assert!(status.supports(Backend::NdArray));

    let half = HostStatus {
        running: 2,
        ..status
    };
    assert_eq!(half.free_slots(), 2);
    assert!((half.load() - 0.5).abs() < f64::EPSILON);
}

#[tokio::test]
async fn a_status_without_capacity_is_a_protocol_error() {
    let host = Running::start(
        FakeHost {
            status: Some(host_status(0, 0, &["flex"])),
            ..FakeHost::default()
        },
        None,
    );
    let err = finishes(host.client().status(&CancellationToken::new()))
        .await
        .unwrap_err();
    assert!(matches!(err, HostError::Protocol { .. }), "{err:?}");
    assert_eq!(err.url(), host.url);
}

#[tokio::test]
async fn a_host_that_never_answers_the_status_is_not_waited_for() {
    let host = Running::start(FakeHost::default(), None);
    let mut client = host.client();
    // The real deadline is seconds; the rule is the same.
    client.status_timeout = Duration::from_millis(100);
    let err = finishes(client.status(&CancellationToken::new()))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        HostError::NoAnswer {
            kind: HostKind::Training,
            url: host.url.clone(),
            waited: Duration::from_millis(100),
        }
    );
    assert_eq!(
        client_at("http://127.0.0.1:1", None).status_timeout,
        STATUS_DEADLINE
    );
}

#[tokio::test]
async fn a_status_asked_with_a_cancelled_token_ends_cancelled_naming_the_host() {
    let host = Running::start(FakeHost::default(), None);
    let token = CancellationToken::new();
    token.cancel(user_cancel());
    let err = finishes(host.client().status(&token)).await.unwrap_err();
    let HostError::Cancelled { url, cancelled, .. } = &err else {
        panic!("not cancelled: {err:?}");
    };
    assert_eq!(url, &host.url);
    assert_eq!(cancelled.reason, user_cancel());
    // The operation that asked finds the cancellation in the chain.
    let source = std::error::Error::source(&err).unwrap();
    assert!(source.downcast_ref::<Cancelled>().is_some(), "{err:?}");
}
