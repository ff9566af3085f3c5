//! The client side of `trdr serve`: `--server URL` (or `TRDR_SERVER`) makes
//! `trdr train`, `trdr data load` and `trdr ops` talk to a server instead of
//! the embedded store.

use std::time::Duration;

use anyhow::{Context as _, anyhow};
use orchestrator_core::{CancelReason, Operation, OperationId};
use rpc::auth::{AUTH_TOKEN_ENV, SendToken};
use rpc::proto;
use rpc::proto::operations_client::OperationsClient;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use crate::Global;
use crate::display::{OperationDisplay, OutputMode};
use crate::follow::{OnInterrupt, Snapshots, follow_snapshots};

/// The environment variable `--server` falls back to.
pub(crate) const SERVER_ENV: &str = "TRDR_SERVER";

/// A server that is down is reported this fast, never waited for.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// A connection to the operations API of one `trdr serve`.
#[derive(Debug, Clone)]
pub(crate) struct Remote {
    client: OperationsClient<InterceptedService<Channel, SendToken>>,
    url: String,
}

impl Remote {
    /// Connects to `url` (`http://` is assumed without a scheme), sending the
    /// token of `TRDR_AUTH_TOKEN` when it is set, else, to a server on this
    /// machine, the one a local `trdr serve` keeps in the state directory.
    pub(crate) async fn connect(url: &str) -> anyhow::Result<Self> {
        let url = if url.contains("://") {
            url.to_owned()
        } else {
            format!("http://{url}")
        };
        let endpoint = Endpoint::from_shared(url.clone())
            .with_context(|| format!("{url} is not a server URL"))?;
        let token = match std::env::var(AUTH_TOKEN_ENV).ok().filter(|t| !t.is_empty()) {
            Some(token) => Some(token),
            // The local server's token never goes to another machine.
            None if is_loopback(endpoint.uri()) => crate::token::path()
                .ok()
                .and_then(|path| crate::token::read_for_client(&path)),
            None => None,
        };
        let token = SendToken::new(token.as_deref())
            .with_context(|| format!("invalid {AUTH_TOKEN_ENV}"))?;
        let endpoint = endpoint
            .connect_timeout(CONNECT_TIMEOUT)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_while_idle(true)
            .tcp_nodelay(true);
        // The outer timeout also covers a peer that accepts TCP but never
        // answers the HTTP/2 handshake.
        let channel = tokio::time::timeout(CONNECT_TIMEOUT * 2, endpoint.connect())
            .await
            .map_err(|_| anyhow!("timed out"))
            .and_then(|connected| connected.map_err(anyhow::Error::from))
            .with_context(|| format!("cannot connect to the trdr server at {url}"))?;
        let client = OperationsClient::with_interceptor(channel, token)
            .max_decoding_message_size(rpc::MAX_MESSAGE_BYTES)
            .max_encoding_message_size(rpc::MAX_MESSAGE_BYTES);
        Ok(Self { client, url })
    }

    pub(crate) async fn start_training(
        &mut self,
        request: proto::StartTrainingOperationRequest,
    ) -> anyhow::Result<Operation> {
        let reply = self.client.start_training(request).await;
        self.operation(reply, "start the training")
    }

    pub(crate) async fn start_data_load(
        &mut self,
        request: proto::StartDataLoadRequest,
    ) -> anyhow::Result<Operation> {
        let reply = self.client.start_data_load(request).await;
        self.operation(reply, "start the data load")
    }

    pub(crate) async fn get(&mut self, id: &str) -> anyhow::Result<Operation> {
        let reply = self
            .client
            .get_operation(proto::GetOperationRequest { id: id.to_owned() })
            .await;
        self.operation(reply, "get the operation")
    }

    /// One page of operations, with the number matching and the number active.
    pub(crate) async fn list(
        &mut self,
        request: proto::ListOperationsRequest,
    ) -> anyhow::Result<(Vec<Operation>, u64, u64)> {
        let reply = self
            .client
            .list_operations(request)
            .await
            .map_err(|status| self.refused(&status, "list operations"))?
            .into_inner();
        let operations = reply
            .operations
            .into_iter()
            .map(Operation::try_from)
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("unreadable reply from {}", self.url))?;
        Ok((operations, reply.total, reply.active))
    }

    pub(crate) async fn cancel(
        &mut self,
        id: &str,
        reason: Option<String>,
    ) -> anyhow::Result<Operation> {
        let reply = self
            .client
            .cancel_operation(proto::CancelOperationRequest {
                id: id.to_owned(),
                reason,
            })
            .await;
        self.operation(reply, "cancel the operation")
    }

    /// The server's stream of snapshots of `id`.
    pub(crate) async fn watch(&mut self, id: &str) -> anyhow::Result<RemoteSnapshots> {
        let stream = self
            .client
            .watch_operation(proto::WatchOperationRequest { id: id.to_owned() })
            .await
            .map_err(|status| self.refused(&status, "watch the operation"))?
            .into_inner();
        Ok(RemoteSnapshots {
            remote: self.clone(),
            id: id.to_owned(),
            stream,
        })
    }

    fn operation(
        &self,
        reply: Result<tonic::Response<proto::Operation>, tonic::Status>,
        what: &str,
    ) -> anyhow::Result<Operation> {
        let wire = reply.map_err(|status| self.refused(&status, what))?;
        Operation::try_from(wire.into_inner())
            .with_context(|| format!("unreadable reply from {}", self.url))
    }

    /// The server's message is meant for people; the code adds nothing to it
    /// except when the server could not be reached at all.
    fn refused(&self, status: &tonic::Status, what: &str) -> anyhow::Error {
        match status.code() {
            tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Internal => anyhow!(
                "cannot {what} on the trdr server at {}: {}",
                self.url,
                status.message()
            ),
            _ => anyhow!("{}", status.message()),
        }
    }
}

/// `WatchOperation` as a source for [`follow_snapshots`]; cancelling sends
/// `CancelOperation`.
#[derive(Debug)]
pub(crate) struct RemoteSnapshots {
    remote: Remote,
    id: String,
    stream: tonic::Streaming<proto::Operation>,
}

impl Snapshots for RemoteSnapshots {
    async fn next(&mut self) -> anyhow::Result<Option<Operation>> {
        let url = &self.remote.url;
        let Some(wire) = self
            .stream
            .message()
            .await
            .map_err(|status| self.remote.refused(&status, "watch the operation"))?
        else {
            return Ok(None);
        };
        Ok(Some(Operation::try_from(wire).with_context(|| {
            format!("unreadable snapshot from {url}")
        })?))
    }

    fn cancel(&self, reason: CancelReason) -> impl Future<Output = anyhow::Result<()>> + 'static {
        let mut remote = self.remote.clone();
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

/// Whether `uri` names this machine: `localhost` or a loopback address.
fn is_loopback(uri: &tonic::codegen::http::Uri) -> bool {
    let Some(host) = uri.host() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_machine_gets_the_local_token() {
        let loopback = |url: &str| is_loopback(&url.parse().unwrap());
        assert!(loopback("http://127.0.0.1:50051"));
        assert!(loopback("http://127.1.2.3:1"));
        assert!(loopback("http://[::1]:50051"));
        assert!(loopback("http://LocalHost:50051"));
        assert!(!loopback("http://gpu-box:50051"));
        assert!(!loopback("http://10.0.0.7:50051"));
        assert!(!loopback("http://localhost.example.com:50051"));
    }
}
