//! What both servers (`trdr serve`, `trdr host-service`) do around serving:
//! bind with a warning when exposed without a token, announce the address,
//! and turn Ctrl-C or SIGTERM into a graceful shutdown.

use std::io::Write as _;
use std::net::SocketAddr;

use anyhow::Context as _;
use tokio::net::TcpListener;

/// Binds `address` (port 0 picks a free one). `exposes` says what a client
/// could do, for the warning when binding beyond loopback without a token.
pub(crate) async fn bind(
    address: SocketAddr,
    auth_token: Option<&str>,
    exposes: &str,
) -> anyhow::Result<(TcpListener, SocketAddr)> {
    if !address.ip().is_loopback() && auth_token.is_none() {
        tracing::warn!(
            %address,
            "listening beyond loopback without an auth token: anyone who can reach it can {exposes}"
        );
    }
    let listener = TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address}"))?;
    let bound = listener
        .local_addr()
        .context("cannot read the bound address")?;
    Ok((listener, bound))
}

/// Installs the shutdown signal listeners, then prints `listening on
/// ADDRESS`, the one line scripts and tests wait for: a signal sent as soon
/// as they see it is not lost. The future completes on Ctrl-C or SIGTERM.
pub(crate) fn announce(address: SocketAddr) -> anyhow::Result<impl Future<Output = ()>> {
    let signals = shutdown_signal()?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on {address}").context("cannot write to stdout")?;
    stdout.flush().context("cannot write to stdout")?;
    Ok(signals)
}

/// Completes on Ctrl-C or SIGTERM.
pub(crate) fn shutdown_signal() -> anyhow::Result<impl Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt()).context("cannot listen for Ctrl-C")?;
        let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
            tracing::info!("shutdown requested");
        })
    }
    #[cfg(not(unix))]
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutdown requested");
    })
}
