//! The training host in-process on `127.0.0.1:0`, driven by the generated
//! gRPC clients: trainings that complete, fail, wait, are cancelled or
//! dropped; artifacts; bars; auth; shutdown; the host's status, read by
//! `host-client` as a caller choosing among hosts does.

mod data;
mod reflection;
mod status;
mod training;

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use host_service::{HostOptions, HostServiceError, serve};
use rpc::auth::SendToken;
use rpc::proto::data_host_client::DataHostClient;
use rpc::proto::training_host_client::TrainingHostClient;
use rpc::proto::{self, training_event::Event};
use strategy::StrategyConfig;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// Longest wait for anything; generous because CI machines are small and busy.
const WAIT: Duration = Duration::from_secs(120);

type Training = TrainingHostClient<InterceptedService<Channel, SendToken>>;
type Data = DataHostClient<InterceptedService<Channel, SendToken>>;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A host running in this process until `stop` (or the end of the test).
struct TestHost {
    addr: SocketAddr,
    models: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    server: JoinHandle<Result<(), HostServiceError>>,
}

impl TestHost {
    /// The repo's sample data, fresh models folder, one slot, no token.
    async fn start() -> Self {
        Self::start_with(root().join("data"), 1, None).await
    }

    async fn start_with(data_dir: PathBuf, max_concurrent: usize, token: Option<&str>) -> Self {
        let models = tempfile::tempdir().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let options = HostOptions {
            data_dir,
            models_dir: models.path().to_owned(),
            max_concurrent,
            auth_token: token.and_then(rpc::Secret::new),
            backend: host_service::Backend::Flex,
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, options, async {
            let _ = stopped.await;
        }));
        Self {
            addr,
            models,
            stop: Some(stop),
            server,
        }
    }

    async fn channel(&self) -> Channel {
        tonic::transport::Endpoint::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    async fn training(&self) -> Training {
        self.training_with(None).await
    }

    async fn training_with(&self, token: Option<&str>) -> Training {
        TrainingHostClient::with_interceptor(self.channel().await, SendToken::new(token).unwrap())
    }

    async fn data_with(&self, token: Option<&str>) -> Data {
        DataHostClient::with_interceptor(self.channel().await, SendToken::new(token).unwrap())
    }

    /// Triggers the shutdown and waits for the server to stop.
    async fn stop(mut self) -> Result<(), HostServiceError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        within(&mut self.server).await.unwrap()
    }
}

async fn within<F: Future + Unpin>(future: F) -> F::Output {
    tokio::time::timeout(WAIT, future)
        .await
        .expect("timed out waiting")
}

/// The repo's EURUSD MLP example, without early stopping so long trainings stay long.
fn strategy() -> StrategyConfig {
    let mut strategy =
        StrategyConfig::from_file(&root().join("strategies/eurusd_mlp.yaml")).unwrap();
    strategy.model.early_stopping_patience = None;
    strategy
}

fn start_request(strategy: &StrategyConfig, epochs: u32) -> proto::StartTrainingRequest {
    proto::StartTrainingRequest {
        strategy_json: serde_json::to_string(strategy).unwrap(),
        start: None,
        end: None,
        options: Some(proto::TrainingOptions {
            backend: "flex".to_owned(),
            epochs: Some(epochs),
            check_every_batches: 0,
            progress_interval_ms: 1,
        }),
        resume_checkpoint: None,
    }
}

/// A training far too long to finish during a test.
fn long_request() -> proto::StartTrainingRequest {
    start_request(&strategy(), 100_000)
}

async fn next_event(stream: &mut tonic::Streaming<proto::TrainingEvent>) -> Event {
    within(Box::pin(stream.message()))
        .await
        .expect("the stream failed")
        .expect("the stream ended early")
        .event
        .expect("an event")
}

/// Starts a training and returns its id and stream, after `Accepted`.
async fn start(
    client: &mut Training,
    request: proto::StartTrainingRequest,
) -> (String, tonic::Streaming<proto::TrainingEvent>) {
    let mut stream = client.start_training(request).await.unwrap().into_inner();
    match next_event(&mut stream).await {
        Event::Accepted(accepted) => (accepted.session_id, stream),
        other => panic!("the first event is not Accepted: {other:?}"),
    }
}

/// Reads events until one shows the trainer inside an epoch.
async fn until_training(stream: &mut tonic::Streaming<proto::TrainingEvent>) {
    loop {
        if let Event::Progress(progress) = next_event(stream).await
            && let Some(proto::progress::Context::Training(context)) = progress.context
            && context.epoch.is_some()
        {
            return;
        }
    }
}

/// Reads events until the end of the stream, returning the final one.
async fn final_event(stream: &mut tonic::Streaming<proto::TrainingEvent>) -> Event {
    loop {
        match next_event(stream).await {
            Event::Progress(_) | Event::CheckpointSaved(_) => {}
            end => {
                let after = within(Box::pin(stream.message())).await.unwrap();
                assert!(after.is_none(), "an event after the end: {after:?}");
                return end;
            }
        }
    }
}

async fn session(client: &mut Training, id: &str) -> proto::Session {
    client
        .get_session(proto::GetSessionRequest {
            session_id: id.to_owned(),
        })
        .await
        .unwrap()
        .into_inner()
}

/// Polls until the session has ended (the host notices a dropped stream
/// asynchronously, so there is no event to wait on).
async fn until_finished(client: &mut Training, id: &str) -> proto::Session {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let session = session(client, id).await;
        if !matches!(
            session.status(),
            proto::SessionStatus::Waiting | proto::SessionStatus::Running
        ) {
            return session;
        }
        assert!(tokio::time::Instant::now() < deadline, "{id} never ended");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn user_request(note: &str) -> proto::CancelReason {
    proto::CancelReason {
        kind: proto::cancel_reason::Kind::UserRequest.into(),
        note: Some(note.to_owned()),
    }
}

async fn cancel(client: &mut Training, id: &str, note: &str) -> proto::Session {
    client
        .cancel_training(proto::CancelTrainingRequest {
            session_id: id.to_owned(),
            reason: Some(user_request(note)),
        })
        .await
        .unwrap()
        .into_inner()
}
