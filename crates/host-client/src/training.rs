//! [`TrainingHostClient`]: runs one training on a training host, turning its
//! events into progress of the local operation and forwarding cancellation
//! (an explicit `CancelTraining`, then dropping the event stream), and
//! fetches the checkpoints it announces and the finished model's files; it
//! also uploads a checkpoint for a training there to continue from, and
//! asks the host what it can take ([`HostStatus`]).

use std::fmt;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use orchestrator_core::{CancelReason, CancellationToken, Cancelled};
use progress::ProgressState;
use rpc::proto;
use rpc::proto::training_event::Event;
use rpc::proto::training_host_client::TrainingHostClient as GrpcClient;
use strategy::{Backend, TrainingRequest, TrainingSummary};
use tonic::Streaming;

use crate::endpoint::Connection;
use crate::{HostEndpoint, HostError};

/// How long an explicit `CancelTraining` may take before the local operation
/// ends anyway, with the remote stop unconfirmed: the host's confirmation
/// window and the answer's way back, so a host that needed its whole window
/// is still heard.
const CANCEL_TIMEOUT: Duration =
    rpc::CANCEL_CONFIRM_WINDOW.saturating_add(Duration::from_millis(500));

/// How long a host may take to answer `GetStatus`, which it answers from
/// memory: a host that stopped answering is not waited for, so one hung
/// host does not hold up a choice among several.
pub const STATUS_DEADLINE: Duration = Duration::from_secs(2);

/// The most bytes a fetched checkpoint may have: it is held in memory
/// until it is whole.
const MAX_CHECKPOINT_BYTES: usize = rpc::MAX_CHECKPOINT_BYTES as usize;

/// The most bytes one uploaded checkpoint chunk carries, as in the host's
/// own chunks.
const UPLOAD_CHUNK_BYTES: usize = 1024 * 1024;

/// Chunks read ahead of a slow upload.
const UPLOAD_READ_AHEAD: usize = 4;

/// What a training host can take and how much of it is taken, as
/// [`TrainingHostClient::status`] found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostStatus {
    /// Trainings the host runs at once (at least 1); later ones wait for a
    /// free slot.
    pub capacity: u32,
    /// Sessions waiting or running there now; one that ended is not
    /// counted. May exceed `capacity`: the rest wait.
    pub running: u32,
    /// The backends the host trains on, of those this trdr knows.
    pub backends: Vec<Backend>,
    /// The version of the host's trdr.
    pub version: String,
}

impl HostStatus {
    /// Trainings the host would start at once; 0 when a new one would wait.
    pub fn free_slots(&self) -> u32 {
        self.capacity.saturating_sub(self.running)
    }

    /// `running / capacity`: below 1 the host has a free slot, above 1
    /// trainings wait there.
    pub fn load(&self) -> f64 {
        f64::from(self.running) / f64::from(self.capacity.max(1))
    }

    pub fn supports(&self, backend: Backend) -> bool {
        self.backends.contains(&backend)
    }
}

/// What a training on the host tells while it runs.
#[derive(Debug, Clone, PartialEq)]
#[expect(
    clippy::large_enum_variant,
    reason = "one update at a time goes by value to a callback; boxing would allocate for every \
              progress event"
)]
pub enum RemoteUpdate {
    /// The host accepted the training as the session `session_id`.
    Accepted {
        session_id: String,
    },
    Progress(ProgressState),
    /// The session saved a checkpoint on the host;
    /// [`TrainingHostClient::fetch_checkpoint`] brings it over.
    Checkpoint(RemoteCheckpoint),
}

/// A checkpoint a session saved on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteCheckpoint {
    /// The epoch the state is in (from 1).
    pub epoch: u32,
    /// Batches of that epoch done: all of them at the end of an epoch.
    pub batch: u32,
    pub bytes: u64,
}

impl From<proto::CheckpointSaved> for RemoteCheckpoint {
    fn from(saved: proto::CheckpointSaved) -> Self {
        Self {
            epoch: saved.epoch,
            batch: saved.batch,
            bytes: saved.bytes,
        }
    }
}

/// A session's checkpoint file, fetched whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedCheckpoint {
    /// Which checkpoint the session had recorded when the fetch began; the
    /// content is that one or one saved since (each save replaces the
    /// file whole on the host, and the content is one whole file).
    pub checkpoint: RemoteCheckpoint,
    pub content: Vec<u8>,
}

/// A training the host completed.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteCompletion {
    /// Names the session for [`TrainingHostClient::fetch_artifact`].
    pub session_id: String,
    /// The trainer's result summary; its model path is the host's.
    pub summary: TrainingSummary,
}

/// What became of the host's side of a cancelled training.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteStop {
    /// Nothing ran on the host (cancelled before the training started, or
    /// while fetching files).
    NothingRunning,
    /// The host said the session ended: its answer to the cancel request,
    /// or the end of its event stream.
    Confirmed,
    /// The host did not answer; the training there stops when it notices the
    /// closed event stream, if it is still alive.
    NotConfirmed(String),
}

impl fmt::Display for RemoteStop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RemoteStop::NothingRunning => f.write_str("nothing was running on the host"),
            RemoteStop::Confirmed => f.write_str("the host confirmed the stop"),
            RemoteStop::NotConfirmed(why) => {
                write!(f, "the remote stop was not confirmed: {why}")
            }
        }
    }
}

/// Why a remote training or an artifact fetch gave no result.
///
/// A cancellation keeps the [`Cancelled`] as its source, so the operation
/// that ran it ends `cancelled`.
#[derive(Debug, thiserror::Error)]
pub enum RemoteTrainingError {
    /// The host could not be reached, was lost, or refused the call.
    #[error(transparent)]
    Host(#[from] HostError),
    /// The training ran on the host and failed there.
    #[error("training on the host at {url} failed: {message}")]
    Failed { url: String, message: String },
    /// The host shut down and stopped the training itself, which nobody
    /// here asked for: a failure, not a cancellation.
    #[error("training host shut down: {url} stopped the training during {stage}")]
    HostShutDown { url: String, stage: String },
    /// Cancelled locally or on the host.
    #[error("training on the host at {url} cancelled; {stop}")]
    Cancelled {
        url: String,
        stop: RemoteStop,
        #[source]
        cancelled: Cancelled,
    },
    /// A fetched file could not be written.
    #[error("cannot write {path} fetched from the host")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A checkpoint could not be read to be sent to the host.
    #[error("cannot upload {path} to the host")]
    Upload {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The client of one training host.
///
/// ```no_run
/// use host_client::{ConnectOptions, HostEndpoint, HostKind, RemoteUpdate, TrainingHostClient};
/// use orchestrator_core::CancellationToken;
/// use strategy::TrainingRequest;
///
/// # async fn demo(request: TrainingRequest) -> Result<(), host_client::RemoteTrainingError> {
/// let host = TrainingHostClient::new(HostEndpoint::new(
///     HostKind::Training,
///     "http://127.0.0.1:50052",
///     ConnectOptions::from_env(),
/// ));
/// let token = CancellationToken::new();
/// let done = host
///     .train(&request, &token, |update| {
///         if let RemoteUpdate::Progress(state) = update {
///             println!("{}", state.message);
///         }
///     })
///     .await?;
/// let dir = std::path::Path::new("incoming");
/// host.fetch_artifact(&done.session_id, dir, &token).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct TrainingHostClient {
    endpoint: HostEndpoint,
    /// [`CANCEL_TIMEOUT`]; shorter in tests of a host that never answers.
    cancel_timeout: Duration,
    /// [`STATUS_DEADLINE`]; shorter in tests of a host that never answers.
    status_timeout: Duration,
}

impl TrainingHostClient {
    pub fn new(endpoint: HostEndpoint) -> Self {
        Self {
            endpoint,
            cancel_timeout: CANCEL_TIMEOUT,
            status_timeout: STATUS_DEADLINE,
        }
    }

    pub fn endpoint(&self) -> &HostEndpoint {
        &self.endpoint
    }

    /// Runs `request` on the host until it completes, fails or is cancelled,
    /// handing what it tells (the session's id, progress, checkpoints
    /// saved there) to `on_update`, which must not block: the stream waits
    /// for it.
    ///
    /// Cancelling `token` sends `CancelTraining` (answered within
    /// [`rpc::CANCEL_CONFIRM_WINDOW`] or not waited for), closes the event
    /// stream and returns [`RemoteTrainingError::Cancelled`] saying whether
    /// the host confirmed the session ended. A connection that breaks
    /// mid-training is [`HostError::Lost`]; a host that shuts down
    /// mid-training is [`RemoteTrainingError::HostShutDown`].
    pub async fn train(
        &self,
        request: &TrainingRequest,
        token: &CancellationToken,
        on_update: impl FnMut(RemoteUpdate) + Send,
    ) -> Result<RemoteCompletion, RemoteTrainingError> {
        self.start(proto::StartTrainingRequest::from(request), token, on_update)
            .await
    }

    /// As [`train`](Self::train), continuing from the checkpoint the host
    /// keeps as `uploaded`, the name [`upload_checkpoint`](Self::upload_checkpoint)
    /// returned; the host removes it once the training completes.
    pub async fn train_from(
        &self,
        request: &TrainingRequest,
        uploaded: &str,
        token: &CancellationToken,
        on_update: impl FnMut(RemoteUpdate) + Send,
    ) -> Result<RemoteCompletion, RemoteTrainingError> {
        let request = proto::StartTrainingRequest {
            resume_checkpoint: Some(uploaded.to_owned()),
            ..proto::StartTrainingRequest::from(request)
        };
        self.start(request, token, on_update).await
    }

    async fn start(
        &self,
        request: proto::StartTrainingRequest,
        token: &CancellationToken,
        mut on_update: impl FnMut(RemoteUpdate) + Send,
    ) -> Result<RemoteCompletion, RemoteTrainingError> {
        let Some(mut client) = self.client(token).await? else {
            return Err(self.cancelled(token, "connecting", RemoteStop::NothingRunning));
        };
        let started = tokio::select! {
            biased;
            () = token.cancelled() => {
                // The call is dropped here; the host cancels a session whose
                // stream goes away, but no session id came back to confirm it.
                return Err(self.cancelled(
                    token,
                    "starting the training on the host",
                    RemoteStop::NotConfirmed("the host had not accepted the training yet".to_owned()),
                ));
            }
            started = client.start_training(request) => started,
        };
        let mut events = started
            .map_err(|status| self.endpoint.status_error(&status))?
            .into_inner();
        let mut session_id = None;
        loop {
            let event = tokio::select! {
                biased;
                () = token.cancelled() => {
                    let stop = self.cancel_remote(&client, session_id.as_deref(), token).await;
                    drop(events);
                    return Err(self.cancelled(token, "training on the host", stop));
                }
                event = events.message() => event,
            };
            match self.on_event(event, &mut session_id, token, &mut on_update)? {
                Some(completion) => return Ok(completion),
                None => continue,
            }
        }
    }

    /// Asks the host what it can take: its capacity, the sessions waiting
    /// or running there, its backends and version. A host that is down
    /// fails within the connect deadline ([`HostError::Unreachable`]), one
    /// that does not answer within [`STATUS_DEADLINE`] is
    /// [`HostError::NoAnswer`], and a host shutting down answers
    /// [`HostError::Lost`]; each names the host's URL. Cancelling `token`
    /// returns [`HostError::Cancelled`] at once. Backend names this trdr
    /// does not know (a newer host's) are left out.
    pub async fn status(&self, token: &CancellationToken) -> Result<HostStatus, HostError> {
        const STAGE: &str = "asking the training host for its status";
        let cancelled = || HostError::Cancelled {
            kind: self.endpoint.kind(),
            url: self.endpoint.url().to_owned(),
            cancelled: token.cancelled_error(STAGE),
        };
        let Some(mut client) = self.client(token).await? else {
            return Err(cancelled());
        };
        let call = tokio::time::timeout(
            self.status_timeout,
            client.get_status(proto::GetStatusRequest {}),
        );
        let status = token
            .run_until_cancelled(STAGE, call)
            .await
            .map_err(|_| cancelled())?
            .map_err(|_elapsed| HostError::NoAnswer {
                kind: self.endpoint.kind(),
                url: self.endpoint.url().to_owned(),
                waited: self.status_timeout,
            })?
            .map_err(|status| self.endpoint.status_error(&status))?
            .into_inner();
        self.host_status(status)
    }

    /// Streams the files of a completed session's artifact into `into_dir`
    /// (which must exist) and returns their names. Every file name must be
    /// a plain name and every chunk must continue its file where the last
    /// one ended; anything else is refused as a protocol error.
    pub async fn fetch_artifact(
        &self,
        session_id: &str,
        into_dir: &Path,
        token: &CancellationToken,
    ) -> Result<Vec<String>, RemoteTrainingError> {
        const STAGE: &str = "fetching the model from the host";
        let Some(mut client) = self.client(token).await? else {
            return Err(self.cancelled(token, STAGE, RemoteStop::NothingRunning));
        };
        let request = proto::FetchArtifactRequest {
            session_id: session_id.to_owned(),
        };
        let cancelled = || self.cancelled(token, STAGE, RemoteStop::NothingRunning);
        let mut chunks: Streaming<proto::ArtifactChunk> = token
            .run_until_cancelled(STAGE, client.fetch_artifact(request))
            .await
            .map_err(|_| cancelled())?
            .map_err(|status| self.endpoint.status_error(&status))?
            .into_inner();
        let mut files = Vec::new();
        let mut open: Option<OpenFile> = None;
        loop {
            let chunk = token
                .run_until_cancelled(STAGE, chunks.message())
                .await
                .map_err(|_| cancelled())?
                .map_err(|status| self.endpoint.status_error(&status))?;
            let Some(chunk) = chunk else { break };
            let file = match open.take() {
                Some(file) if file.name == chunk.file => file,
                Some(file) => {
                    return Err(self.protocol(format!(
                        "artifact file {:?} ended without its last chunk",
                        file.name
                    )));
                }
                None => {
                    if files.contains(&chunk.file) {
                        return Err(
                            self.protocol(format!("artifact file {:?} sent twice", chunk.file))
                        );
                    }
                    OpenFile::create(into_dir, &chunk.file).map_err(|err| self.chunk_error(err))?
                }
            };
            let file = file.append(&chunk).map_err(|err| self.chunk_error(err))?;
            if chunk.last {
                file.finish().map_err(|err| self.chunk_error(err))?;
                files.push(chunk.file);
            } else {
                open = Some(file);
            }
        }
        if let Some(file) = open {
            return Err(self.protocol(format!(
                "the artifact ended before the last chunk of {:?}",
                file.name
            )));
        }
        if files.is_empty() {
            return Err(self.protocol(format!("session {session_id} sent no artifact files")));
        }
        Ok(files)
    }

    /// Fetches the checkpoint the session `session_id` last saved, whole;
    /// `None` when it has none (it saved none yet, or it completed, which
    /// removes it). The chunks must continue where the last one ended and
    /// end with one marked last, within 1 GiB (it is held in memory); anything
    /// else is refused as a protocol error.
    pub async fn fetch_checkpoint(
        &self,
        session_id: &str,
        token: &CancellationToken,
    ) -> Result<Option<FetchedCheckpoint>, RemoteTrainingError> {
        const STAGE: &str = "fetching a checkpoint from the host";
        let Some(mut client) = self.client(token).await? else {
            return Err(self.cancelled(token, STAGE, RemoteStop::NothingRunning));
        };
        let request = proto::FetchCheckpointRequest {
            session_id: session_id.to_owned(),
        };
        let cancelled = || self.cancelled(token, STAGE, RemoteStop::NothingRunning);
        let started = token
            .run_until_cancelled(STAGE, client.fetch_checkpoint(request))
            .await
            .map_err(|_| cancelled())?;
        let mut chunks: Streaming<proto::CheckpointChunk> = match started {
            Ok(response) => response.into_inner(),
            Err(status) if status.code() == tonic::Code::FailedPrecondition => return Ok(None),
            Err(status) => return Err(self.endpoint.status_error(&status).into()),
        };
        let mut checkpoint = None;
        let mut content = Vec::new();
        loop {
            let chunk = token
                .run_until_cancelled(STAGE, chunks.message())
                .await
                .map_err(|_| cancelled())?
                .map_err(|status| self.endpoint.status_error(&status))?
                .ok_or_else(|| {
                    self.protocol(format!(
                        "the checkpoint of session {session_id} ended before its last chunk"
                    ))
                })?;
            if chunk.offset != content.len() as u64 {
                return Err(self.protocol(format!(
                    "a checkpoint chunk at offset {} after {} bytes",
                    chunk.offset,
                    content.len()
                )));
            }
            if content.len() + chunk.data.len() > MAX_CHECKPOINT_BYTES {
                return Err(self.protocol(format!(
                    "the checkpoint of session {session_id} is larger than \
                     {MAX_CHECKPOINT_BYTES} bytes"
                )));
            }
            if chunk.offset == 0 {
                checkpoint = chunk.checkpoint.map(RemoteCheckpoint::from);
            }
            content.extend_from_slice(&chunk.data);
            if chunk.last {
                break;
            }
        }
        let checkpoint = checkpoint.ok_or_else(|| {
            self.protocol("the first checkpoint chunk does not say which checkpoint".to_owned())
        })?;
        Ok(Some(FetchedCheckpoint {
            checkpoint,
            content,
        }))
    }

    /// Sends the checkpoint file at `path` to the host, which keeps it in
    /// its checkpoints folder for [`train_from`](Self::train_from), and
    /// returns the name the host chose for it. The file goes in chunks read
    /// as they are sent, offsets contiguous and the last marked; it may
    /// have at most 1 GiB ([`rpc::MAX_CHECKPOINT_BYTES`]). Connecting is
    /// bounded by the connect deadline and the call by keep-alive, so a
    /// host that is gone fails it within seconds. The host's answer must
    /// be one plain file name and the bytes sent, or it is a protocol
    /// error.
    pub async fn upload_checkpoint(
        &self,
        path: &Path,
        token: &CancellationToken,
    ) -> Result<String, RemoteTrainingError> {
        const STAGE: &str = "uploading the checkpoint to the host";
        let unreadable = |source| RemoteTrainingError::Upload {
            path: path.to_owned(),
            source,
        };
        let opened = {
            let path = path.to_owned();
            tokio::task::spawn_blocking(move || open_upload(&path)).await
        };
        let (file, bytes) = match opened {
            Ok(opened) => opened.map_err(unreadable)?,
            Err(join) => return Err(unreadable(std::io::Error::other(join))),
        };
        let Some(mut client) = self.client(token).await? else {
            return Err(self.cancelled(token, STAGE, RemoteStop::NothingRunning));
        };
        let (sender, receiver) = tokio::sync::mpsc::channel(UPLOAD_READ_AHEAD);
        let reader = tokio::task::spawn_blocking(move || send_file(file, &sender));
        let call = client.upload_checkpoint(tokio_stream::wrappers::ReceiverStream::new(receiver));
        // Dropping the call on a cancel ends the upload; the host keeps
        // nothing of an upload that did not end with its last chunk.
        let answered = token
            .run_until_cancelled(STAGE, call)
            .await
            .map_err(|_| self.cancelled(token, STAGE, RemoteStop::NothingRunning))?;
        // A read that failed sent no last chunk, so the host refused the
        // upload; the read's error is what went wrong.
        let sent = match reader.await {
            Ok(read) => read.map_err(unreadable)?,
            Err(join) => return Err(unreadable(std::io::Error::other(join))),
        };
        let answer = answered
            .map_err(|status| self.endpoint.status_error(&status))?
            .into_inner();
        if answer.bytes != sent || sent != bytes {
            return Err(self.protocol(format!(
                "the host kept {} bytes of a checkpoint of {bytes}, {sent} sent",
                answer.bytes
            )));
        }
        let name = rpc::CheckpointName::parse(&answer.name, "UploadCheckpointResponse.name")
            .map_err(|err| self.protocol(err.to_string()))?;
        tracing::debug!(url = %self.endpoint.url(), path = %path.display(), %name, bytes, "checkpoint uploaded");
        Ok(name.as_str().to_owned())
    }

    /// A client on a fresh connection; `None` when `token` was cancelled first.
    async fn client(
        &self,
        token: &CancellationToken,
    ) -> Result<Option<GrpcClient<Connection>>, HostError> {
        Ok(self.endpoint.connect(token).await?.map(|connection| {
            GrpcClient::new(connection)
                .max_decoding_message_size(rpc::MAX_MESSAGE_BYTES)
                .max_encoding_message_size(rpc::MAX_MESSAGE_BYTES)
        }))
    }

    /// Handles one read of the event stream: `Some` once the training completed.
    fn on_event(
        &self,
        event: Result<Option<proto::TrainingEvent>, tonic::Status>,
        session_id: &mut Option<String>,
        token: &CancellationToken,
        on_update: &mut impl FnMut(RemoteUpdate),
    ) -> Result<Option<RemoteCompletion>, RemoteTrainingError> {
        let event = match event {
            Ok(Some(event)) => event.event,
            Ok(None) => {
                return Err(HostError::Lost {
                    kind: self.endpoint.kind(),
                    url: self.endpoint.url().to_owned(),
                    reason: "the event stream ended before the training did".to_owned(),
                }
                .into());
            }
            Err(status) => return Err(self.endpoint.status_error(&status).into()),
        };
        match event {
            Some(Event::Accepted(accepted)) => {
                tracing::debug!(url = %self.endpoint.url(), session = %accepted.session_id, "training accepted");
                *session_id = Some(accepted.session_id.clone());
                on_update(RemoteUpdate::Accepted {
                    session_id: accepted.session_id,
                });
            }
            Some(Event::Progress(progress)) => {
                let state = ProgressState::try_from(progress)
                    .map_err(|err| self.protocol(format!("progress: {err}")))?;
                on_update(RemoteUpdate::Progress(state));
            }
            Some(Event::CheckpointSaved(saved)) => {
                on_update(RemoteUpdate::Checkpoint(saved.into()));
            }
            Some(Event::Completed(completed)) => {
                let session_id = session_id.take().ok_or_else(|| {
                    self.protocol("completed before accepting the training".to_owned())
                })?;
                let summary = completed
                    .summary
                    .ok_or_else(|| self.protocol("completed without a summary".to_owned()))
                    .and_then(|summary| {
                        TrainingSummary::try_from(summary)
                            .map_err(|err| self.protocol(format!("summary: {err}")))
                    })?;
                return Ok(Some(RemoteCompletion {
                    session_id,
                    summary,
                }));
            }
            Some(Event::Failed(failed)) => {
                return Err(RemoteTrainingError::Failed {
                    url: self.endpoint.url().to_owned(),
                    message: failed.message,
                });
            }
            Some(Event::Cancelled(cancelled)) => {
                let reason = cancelled
                    .reason
                    .map_or(CancelReason::Shutdown, CancelReason::from);
                // The host's own shutdown, not a cancel asked for here.
                if reason == CancelReason::Shutdown && !token.is_cancelled() {
                    return Err(RemoteTrainingError::HostShutDown {
                        url: self.endpoint.url().to_owned(),
                        stage: cancelled.stage,
                    });
                }
                return Err(RemoteTrainingError::Cancelled {
                    url: self.endpoint.url().to_owned(),
                    stop: RemoteStop::Confirmed,
                    cancelled: Cancelled {
                        reason,
                        stage: format!("{} on the host", cancelled.stage).into(),
                    },
                });
            }
            None => {
                return Err(
                    self.protocol("an event of a kind this client does not know".to_owned())
                );
            }
        }
        Ok(None)
    }

    /// Asks the host to stop `session_id`, on a new call over the same
    /// connection, waiting at most [`CANCEL_TIMEOUT`]. Confirmed only when
    /// the host's answer says the session ended.
    async fn cancel_remote(
        &self,
        client: &GrpcClient<Connection>,
        session_id: Option<&str>,
        token: &CancellationToken,
    ) -> RemoteStop {
        let Some(session_id) = session_id else {
            return RemoteStop::NotConfirmed(
                "the host had not accepted the training yet".to_owned(),
            );
        };
        let request = proto::CancelTrainingRequest {
            session_id: session_id.to_owned(),
            reason: Some(proto::CancelReason::from(
                &token.reason().unwrap_or(CancelReason::UserRequest(None)),
            )),
        };
        let mut client = client.clone();
        match tokio::time::timeout(self.cancel_timeout, client.cancel_training(request)).await {
            Ok(Ok(session)) => match session.into_inner().status() {
                proto::SessionStatus::Cancelled
                | proto::SessionStatus::Completed
                | proto::SessionStatus::Failed => RemoteStop::Confirmed,
                proto::SessionStatus::Waiting | proto::SessionStatus::Running => {
                    RemoteStop::NotConfirmed(format!(
                        "{} answered the cancel request with the session still running",
                        self.endpoint.url()
                    ))
                }
                proto::SessionStatus::Unspecified => RemoteStop::NotConfirmed(format!(
                    "{} answered the cancel request without the session's status",
                    self.endpoint.url()
                )),
            },
            Ok(Err(status)) => {
                RemoteStop::NotConfirmed(self.endpoint.status_error(&status).to_string())
            }
            Err(_elapsed) => RemoteStop::NotConfirmed(format!(
                "{} did not answer the cancel request within {} s",
                self.endpoint.url(),
                self.cancel_timeout.as_secs_f64()
            )),
        }
    }

    fn cancelled(
        &self,
        token: &CancellationToken,
        stage: &'static str,
        stop: RemoteStop,
    ) -> RemoteTrainingError {
        // The operation records where the work stopped from the stage, so an
        // unconfirmed stop is said there: the training may still run.
        let cancelled = match &stop {
            RemoteStop::NotConfirmed(_) => token.cancelled_error(format!("{stage}; {stop}")),
            RemoteStop::NothingRunning | RemoteStop::Confirmed => token.cancelled_error(stage),
        };
        RemoteTrainingError::Cancelled {
            url: self.endpoint.url().to_owned(),
            stop,
            cancelled,
        }
    }

    fn host_status(&self, status: proto::HostStatus) -> Result<HostStatus, HostError> {
        if status.capacity == 0 {
            return Err(HostError::Protocol {
                kind: self.endpoint.kind(),
                url: self.endpoint.url().to_owned(),
                message: "a status with capacity 0 (a host runs at least one training)".to_owned(),
            });
        }
        let backends = status
            .backends
            .iter()
            .filter_map(|name| match name.parse::<Backend>() {
                Ok(backend) => Some(backend),
                Err(unknown) => {
                    tracing::debug!(url = %self.endpoint.url(), %unknown, "backend left out");
                    None
                }
            })
            .collect();
        Ok(HostStatus {
            capacity: status.capacity,
            running: status.running,
            backends,
            version: status.version,
        })
    }

    fn protocol(&self, message: String) -> RemoteTrainingError {
        HostError::Protocol {
            kind: self.endpoint.kind(),
            url: self.endpoint.url().to_owned(),
            message,
        }
        .into()
    }

    fn chunk_error(&self, err: ChunkError) -> RemoteTrainingError {
        match err {
            ChunkError::Invalid(message) => self.protocol(message),
            ChunkError::Io { path, source } => RemoteTrainingError::Io { path, source },
        }
    }
}

/// Why a chunk was not written.
enum ChunkError {
    Invalid(String),
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A fetched file being written.
struct OpenFile {
    name: String,
    path: PathBuf,
    file: File,
    written: u64,
}

impl OpenFile {
    fn create(dir: &Path, name: &str) -> Result<Self, ChunkError> {
        if !is_plain_name(name) {
            return Err(ChunkError::Invalid(format!(
                "artifact file name {name:?} is not a plain file name"
            )));
        }
        let path = dir.join(name);
        // `create_new`: a name sent twice never overwrites what came first.
        let file = File::create_new(&path).map_err(|source| ChunkError::Io {
            path: path.clone(),
            source,
        })?;
        Ok(Self {
            name: name.to_owned(),
            path,
            file,
            written: 0,
        })
    }

    fn append(mut self, chunk: &proto::ArtifactChunk) -> Result<Self, ChunkError> {
        if chunk.offset != self.written {
            return Err(ChunkError::Invalid(format!(
                "artifact file {:?}: a chunk at offset {} after {} bytes",
                self.name, chunk.offset, self.written
            )));
        }
        self.file
            .write_all(&chunk.data)
            .map_err(|source| ChunkError::Io {
                path: self.path.clone(),
                source,
            })?;
        self.written += chunk.data.len() as u64;
        Ok(self)
    }

    fn finish(self) -> Result<(), ChunkError> {
        self.file.sync_all().map_err(|source| ChunkError::Io {
            path: self.path,
            source,
        })
    }
}

/// Opens the checkpoint at `path` to upload it, with its size; a file
/// larger than a host takes is refused before anything is sent.
fn open_upload(path: &Path) -> std::io::Result<(File, u64)> {
    let file = File::open(path)?;
    let metadata = file.metadata()?;
    if !metadata.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    if metadata.len() > rpc::MAX_CHECKPOINT_BYTES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::FileTooLarge,
            format!(
                "{} bytes; a training host takes at most {}",
                metadata.len(),
                rpc::MAX_CHECKPOINT_BYTES
            ),
        ));
    }
    Ok((file, metadata.len()))
}

/// Sends `file` in chunks, offsets contiguous, the last one marked (an
/// empty file is one empty chunk); returns the bytes sent. Stops early
/// when the call ended (its answer says why); a read error stops it
/// without a last chunk, so the host keeps nothing.
fn send_file(
    mut file: File,
    sender: &tokio::sync::mpsc::Sender<proto::UploadCheckpointChunk>,
) -> std::io::Result<u64> {
    let mut read_chunk = || {
        let mut chunk = Vec::with_capacity(UPLOAD_CHUNK_BYTES);
        std::io::Read::by_ref(&mut file)
            .take(UPLOAD_CHUNK_BYTES as u64)
            .read_to_end(&mut chunk)
            .map(|_| chunk)
    };
    let mut offset = 0;
    let mut current = read_chunk()?;
    loop {
        // Read one chunk ahead to know whether this one is the last.
        let next = if current.len() < UPLOAD_CHUNK_BYTES {
            Vec::new()
        } else {
            read_chunk()?
        };
        let last = next.is_empty();
        let len = current.len() as u64;
        let chunk = proto::UploadCheckpointChunk {
            offset,
            data: current,
            last,
        };
        if sender.blocking_send(chunk).is_err() {
            return Ok(offset);
        }
        offset += len;
        if last {
            return Ok(offset);
        }
        current = next;
    }
}

/// One path component that stays inside its folder and is not hidden.
fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && !name
            .chars()
            .any(|c| matches!(c, '/' | '\\' | ':') || c.is_control())
}

#[cfg(test)]
mod tests;
