//! [`HostEndpoint`]: where a host is and how to connect to it. Connection
//! set-up is retried with back-off until a deadline; calls themselves are
//! never retried, since they start work on the host.

use std::time::Duration;

use orchestrator_core::{CancellationToken, error_chain};
use rpc::Secret;
use rpc::auth::{AUTH_TOKEN_ENV, SendToken};
use tokio::time::Instant;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use crate::{HostError, HostKind};

/// A connected channel that adds the auth token to every call.
pub(crate) type Connection = InterceptedService<Channel, SendToken>;

/// How to connect to a host.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Total time for setting up the connection, retries included: a host
    /// that is down fails a call within about this long.
    pub connect_deadline: Duration,
    /// How often to ping the host over HTTP/2 while a call runs.
    pub keepalive_interval: Duration,
    /// How long a ping may go unanswered before the host counts as lost.
    pub keepalive_timeout: Duration,
    /// Sent as `authorization: Bearer <token>` when set.
    pub auth_token: Option<Secret>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            connect_deadline: Duration::from_millis(1500),
            keepalive_interval: Duration::from_secs(1),
            keepalive_timeout: Duration::from_secs(2),
            auth_token: None,
        }
    }
}

impl ConnectOptions {
    /// The defaults, with the auth token from `TRDR_AUTH_TOKEN` if set.
    pub fn from_env() -> Self {
        Self {
            auth_token: std::env::var(AUTH_TOKEN_ENV).ok().and_then(Secret::new),
            ..Self::default()
        }
    }

    /// For an operations server (`trdr serve`): 2 s to connect, and pings
    /// every 30 s, enough to notice a vanished server under a long watch
    /// without waking an idle connection every second.
    pub fn operations_server() -> Self {
        Self {
            connect_deadline: Duration::from_secs(2),
            keepalive_interval: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(20),
            auth_token: None,
        }
    }
}

/// A host at a URL (`http://host:port`; a bare `host:port` means http).
#[derive(Debug, Clone)]
pub struct HostEndpoint {
    kind: HostKind,
    url: String,
    options: ConnectOptions,
}

/// First pause between connection attempts; doubled up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_millis(400);

impl HostEndpoint {
    pub fn new(kind: HostKind, url: impl Into<String>, options: ConnectOptions) -> Self {
        let url = url.into();
        let url = if url.contains("://") {
            url
        } else {
            format!("http://{url}")
        };
        Self { kind, url, options }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn kind(&self) -> HostKind {
        self.kind
    }

    /// Whether the host is this machine (`localhost` or a loopback
    /// address): the only place a token kept on this machine may be sent.
    pub fn is_loopback(&self) -> bool {
        let Ok(uri) = self.url.parse::<tonic::codegen::http::Uri>() else {
            return false;
        };
        let Some(host) = uri.host() else {
            return false;
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        host.eq_ignore_ascii_case("localhost")
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }

    /// Connects and disconnects: an error here names why calls would fail.
    pub async fn check_reachable(&self, token: &CancellationToken) -> Result<(), HostError> {
        self.connect(token).await.map(drop)
    }

    /// A connection, or `None` when `token` was cancelled first. Retries
    /// refused or timed-out attempts with back-off until the deadline.
    pub(crate) async fn connect(
        &self,
        token: &CancellationToken,
    ) -> Result<Option<Connection>, HostError> {
        let endpoint = self.endpoint()?;
        let auth = SendToken::new(self.options.auth_token.as_ref().map(Secret::expose)).map_err(
            |err| HostError::BadUrl {
                kind: self.kind,
                url: self.url.clone(),
                reason: format!("{err} ({AUTH_TOKEN_ENV})"),
            },
        )?;
        let deadline = Instant::now() + self.options.connect_deadline;
        let mut backoff = FIRST_BACKOFF;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let attempt = endpoint
                .clone()
                .connect_timeout(remaining.max(Duration::from_millis(1)));
            // The deadline also bounds a peer that accepts TCP but never
            // answers the HTTP/2 handshake (connect_timeout covers TCP only).
            let last_error = tokio::select! {
                () = token.cancelled() => return Ok(None),
                connected = attempt.connect() => match connected {
                    Ok(channel) => return Ok(Some(InterceptedService::new(channel, auth))),
                    Err(err) => error_chain(&err),
                },
                () = tokio::time::sleep_until(deadline) => "no answer to the connection set-up".to_owned(),
            };
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(HostError::Unreachable {
                    kind: self.kind,
                    url: self.url.clone(),
                    reason: format!(
                        "{last_error} (gave up after {:.1} s)",
                        self.options.connect_deadline.as_secs_f64()
                    ),
                });
            }
            tracing::debug!(url = %self.url, error = %last_error, "connecting again");
            tokio::select! {
                () = token.cancelled() => return Ok(None),
                () = tokio::time::sleep(backoff.min(remaining)) => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// The error a failed call to this host stands for.
    pub(crate) fn status_error(&self, status: &tonic::Status) -> HostError {
        HostError::from_status(self.kind, &self.url, status)
    }

    fn endpoint(&self) -> Result<Endpoint, HostError> {
        let endpoint =
            Endpoint::from_shared(self.url.clone()).map_err(|err| HostError::BadUrl {
                kind: self.kind,
                url: self.url.clone(),
                reason: error_chain(&err),
            })?;
        Ok(endpoint
            .tcp_nodelay(true)
            .http2_keep_alive_interval(self.options.keepalive_interval)
            .keep_alive_timeout(self.options.keepalive_timeout)
            .keep_alive_while_idle(true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn free_port() -> u16 {
        // Bound and released: nothing listens there afterwards.
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    // Paused time: the retries and the deadline run on tokio's clock, so
    // the deadline is checked exactly and nothing is waited for.
    #[tokio::test(start_paused = true)]
    async fn a_host_that_is_down_fails_at_the_deadline_naming_the_url() {
        let url = format!("http://127.0.0.1:{}", free_port());
        let options = ConnectOptions::default();
        let deadline = options.connect_deadline;
        let endpoint = HostEndpoint::new(HostKind::Training, &url, options);
        let checking =
            tokio::spawn(async move { endpoint.check_reachable(&CancellationToken::new()).await });
        tokio::time::advance(deadline - Duration::from_millis(1)).await;
        assert!(!checking.is_finished(), "gave up before the deadline");
        tokio::time::advance(Duration::from_millis(2)).await;
        let error = checking.await.unwrap().unwrap_err();
        assert!(matches!(error, HostError::Unreachable { .. }), "{error:?}");
        assert!(
            error
                .to_string()
                .starts_with(&format!("training host at {url} is not reachable"))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn cancelling_stops_connecting_at_once() {
        let endpoint = HostEndpoint::new(
            HostKind::Data,
            format!("127.0.0.1:{}", free_port()),
            ConnectOptions::default(),
        );
        let token = CancellationToken::new();
        token.cancel(orchestrator_core::CancelReason::UserRequest(None));
        // On paused time a retry's backoff would move the clock past this.
        let connected = tokio::time::timeout(Duration::from_millis(1), endpoint.connect(&token))
            .await
            .expect("a cancelled connect returns without retrying");
        assert!(connected.unwrap().is_none());
    }

    #[test]
    fn only_this_machine_is_loopback() {
        let loopback = |url: &str| {
            HostEndpoint::new(HostKind::Operations, url, ConnectOptions::default()).is_loopback()
        };
        assert!(loopback("http://127.0.0.1:50051"));
        assert!(loopback("127.1.2.3:1"));
        assert!(loopback("http://[::1]:50051"));
        assert!(loopback("http://LocalHost:50051"));
        assert!(!loopback("http://gpu-box:50051"));
        assert!(!loopback("http://10.0.0.7:50051"));
        assert!(!loopback("http://localhost.example.com:50051"));
    }

    #[test]
    fn the_token_stays_out_of_debug_output() {
        let options = ConnectOptions {
            auth_token: Secret::new("s3cret"),
            ..ConnectOptions::default()
        };
        let debug = format!("{options:?}");
        assert!(debug.contains("auth_token: Some(<set>)"), "{debug}");
        assert!(!debug.contains("s3cret"), "{debug}");
    }

    #[test]
    fn a_bare_address_means_http_and_a_broken_url_is_named() {
        let endpoint = HostEndpoint::new(HostKind::Data, "localhost:1", ConnectOptions::default());
        assert_eq!(endpoint.url(), "http://localhost:1");
        let broken =
            HostEndpoint::new(HostKind::Data, "http://bad host", ConnectOptions::default());
        let error = broken.endpoint().unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("data host URL \"http://bad host\" is not valid")
        );
    }
}
