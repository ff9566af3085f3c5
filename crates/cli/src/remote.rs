//! The client side of `trdr serve`: `--server URL` (or `TRDR_SERVER`) makes
//! `trdr train` (and its `--resume`), `trdr data load` and `trdr ops` talk to
//! a server instead of the embedded store.

use anyhow::anyhow;
use host_client::{
    ConnectOptions, HostEndpoint, HostError, HostKind, OperationWatch, OperationsClient,
};
use orchestrator_core::{CancelReason, Operation, OperationId};
use progress::EpochPoint;
use rpc::Secret;
use rpc::proto;

use crate::Global;
use crate::display::{OperationDisplay, OutputMode};
use crate::follow::{OnInterrupt, Snapshots, follow_snapshots};

/// The environment variable `--server` falls back to.
pub(crate) const SERVER_ENV: &str = "TRDR_SERVER";

/// A connection to the operations API of one `trdr serve`.
#[derive(Debug, Clone)]
pub(crate) struct Remote {
    client: OperationsClient,
}

impl Remote {
    /// Connects to `url` (`http://` is assumed without a scheme), sending the
    /// token of `TRDR_AUTH_TOKEN` when it is set, else, to a server on this
    /// machine, the one a local `trdr serve` keeps in the state directory.
    pub(crate) async fn connect(url: &str) -> anyhow::Result<Self> {
        let mut options = ConnectOptions {
            auth_token: ConnectOptions::from_env().auth_token,
            ..ConnectOptions::operations_server()
        };
        let endpoint = HostEndpoint::new(HostKind::Operations, url, options.clone());
        // The local server's token never goes to another machine.
        if options.auth_token.is_none() && endpoint.is_loopback() {
            options.auth_token = crate::token::path()
                .ok()
                .and_then(|path| crate::token::read_for_client(&path))
                .and_then(Secret::new);
        }
        let client = OperationsClient::connect(url, options)
            .await
            .map_err(|error| refused(error, "connect"))?;
        Ok(Self { client })
    }

    pub(crate) async fn start_training(
        &mut self,
        request: proto::StartTrainingOperationRequest,
    ) -> anyhow::Result<Operation> {
        let reply = self.client.start_training(request).await;
        reply.map_err(|error| refused(error, "start the training"))
    }

    pub(crate) async fn start_data_load(
        &mut self,
        request: proto::StartDataLoadRequest,
    ) -> anyhow::Result<Operation> {
        let reply = self.client.start_data_load(request).await;
        reply.map_err(|error| refused(error, "start the data load"))
    }

    pub(crate) async fn get(&mut self, id: &str) -> anyhow::Result<Operation> {
        let reply = self.client.get(id).await;
        reply.map_err(|error| refused(error, "get the operation"))
    }

    /// The finished epochs of a training, in order.
    pub(crate) async fn metrics(&mut self, id: &str) -> anyhow::Result<Vec<EpochPoint>> {
        let reply = self.client.metrics(id).await;
        reply.map_err(|error| refused(error, "get the operation's metrics"))
    }

    /// One page of operations, with the number matching and the number active.
    pub(crate) async fn list(
        &mut self,
        request: proto::ListOperationsRequest,
    ) -> anyhow::Result<(Vec<Operation>, u64, u64)> {
        let page = self
            .client
            .list(request)
            .await
            .map_err(|error| refused(error, "list operations"))?;
        Ok((page.operations, page.total, page.active))
    }

    pub(crate) async fn cancel(
        &mut self,
        id: &str,
        reason: Option<String>,
    ) -> anyhow::Result<Operation> {
        let reply = self.client.cancel(id, reason).await;
        reply.map_err(|error| refused(error, "cancel the operation"))
    }

    /// Asks the server to continue the stopped training `id`; the new operation.
    pub(crate) async fn resume(&self, id: &str) -> anyhow::Result<Operation> {
        match self.client.resume(id).await {
            Ok(operation) => Ok(operation),
            // Unlike a cancel, a resume left unanswered may still have
            // started a training: say where to look.
            Err(HostError::NoAnswer { url, waited, .. }) => Err(anyhow!(
                "the server did not answer within {} s; the training may have been resumed \
                 anyway (trdr ops list --server {url} shows it)",
                waited.as_secs()
            )),
            Err(error) => Err(refused(error, "resume the training")),
        }
    }

    /// The server's stream of snapshots of `id`.
    pub(crate) async fn watch(&mut self, id: &str) -> anyhow::Result<RemoteSnapshots> {
        let watch = self
            .client
            .watch(id)
            .await
            .map_err(|error| refused(error, "watch the operation"))?;
        Ok(RemoteSnapshots {
            id: id.to_owned(),
            watch,
        })
    }
}

/// The server's message is meant for people: a request it refused reads as
/// its words alone; a server that cannot be reached, or failed, is named.
fn refused(error: HostError, what: &str) -> anyhow::Error {
    match error {
        HostError::Rejected { message, .. } | HostError::Unauthenticated { message, .. } => {
            anyhow!(message)
        }
        HostError::Unreachable { url, reason, .. } => {
            anyhow!("cannot connect to the trdr server at {url}: {reason}")
        }
        HostError::NoAnswer { waited, .. } => {
            anyhow!("the server did not answer within {} s", waited.as_secs())
        }
        other => anyhow::Error::new(other).context(format!("cannot {what}")),
    }
}

/// `WatchOperation` as a source for [`follow_snapshots`]; cancelling sends
/// `CancelOperation`.
#[derive(Debug)]
pub(crate) struct RemoteSnapshots {
    id: String,
    watch: OperationWatch,
}

impl Snapshots for RemoteSnapshots {
    async fn next(&mut self) -> anyhow::Result<Option<Operation>> {
        let next = self.watch.next().await;
        next.map_err(|error| refused(error, "watch the operation"))
    }

    fn cancel(&self, reason: CancelReason) -> impl Future<Output = anyhow::Result<()>> + 'static {
        let mut remote = Remote {
            client: self.watch.client(),
        };
        let id = self.id.clone();
        async move {
            let note = match reason {
                CancelReason::UserRequest(note) => note,
                other => Some(other.to_string()),
            };
            match remote.cancel(&id, note).await {
                Ok(_) => Ok(()),
                // Finished meanwhile: its terminal snapshot is on its way.
                Err(_) if remote.get(&id).await?.status.is_terminal() => Ok(()),
                Err(error) => Err(error),
            }
        }
    }
}

/// Submits a training and follows it like the embedded mode does.
pub(crate) async fn train(
    server: &str,
    request: proto::StartTrainingOperationRequest,
    global: &Global,
) -> anyhow::Result<Operation> {
    let mut remote = Remote::connect(server).await?;
    let operation = remote.start_training(request).await?;
    follow_remote(&mut remote, &operation.id, global).await
}

/// Resumes the stopped training `id` on the server and follows the new
/// operation like [`train`] does.
pub(crate) async fn resume(
    server: &str,
    id: &OperationId,
    global: &Global,
) -> anyhow::Result<Operation> {
    let mut remote = Remote::connect(server).await?;
    let operation = remote.resume(id.as_str()).await?;
    follow_remote(&mut remote, &operation.id, global).await
}

/// Submits a data load and follows it like the embedded mode does.
pub(crate) async fn load(
    server: &str,
    request: proto::StartDataLoadRequest,
    global: &Global,
) -> anyhow::Result<Operation> {
    let mut remote = Remote::connect(server).await?;
    let operation = remote.start_data_load(request).await?;
    follow_remote(&mut remote, &operation.id, global).await
}

async fn follow_remote(
    remote: &mut Remote,
    id: &OperationId,
    global: &Global,
) -> anyhow::Result<Operation> {
    let mut snapshots = remote.watch(id.as_str()).await?;
    let mut display = OperationDisplay::new(OutputMode::detect(global.json));
    follow_snapshots(&mut snapshots, id, &mut display, OnInterrupt::Cancel).await
}

/// `path` made absolute (and canonical when it exists here): where a
/// strategy sent as text was read, as the server's messages and operation
/// record name it.
pub(crate) fn server_path(path: &std::path::Path) -> String {
    std::fs::canonicalize(path)
        .or_else(|_| std::path::absolute(path))
        .unwrap_or_else(|_| path.to_path_buf())
        .to_string_lossy()
        .into_owned()
}
