//! `trdr serve`: the operations API server, so trainings and data loads can
//! be submitted, watched and cancelled from any terminal.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use api_server::ServerOptions;
use clap::Args;
use orchestrator_core::OperationsService;
use rpc::auth::AUTH_TOKEN_ENV;

use crate::Global;
use crate::embedded;

/// Serve the operations API (gRPC) for `--server` clients.
///
/// Prints `listening on ADDRESS` once it accepts connections. Trainings
/// beyond --max-concurrent-trainings wait `pending` and start in order.
/// SIGTERM or Ctrl-C stops accepting work, cancels running operations, waits
/// for them to end, and exits 0. Operations left running by a server that
/// died are marked failed when it starts again.
///
/// Every client needs a token. Without --auth-token, the server makes one
/// at its first start in the state directory ($TRDR_STATE_DIR/auth-token,
/// else in the user data dir), readable by this user only, and reuses it;
/// this user's trdr clients read it from there, other users are refused.
/// --no-auth accepts every client.
///
/// The server opens no file a client names, except strategies inside
/// --strategies-dir: `trdr train --server` sends the strategy's text.
///
/// --http also serves the dashboard (live pages and a JSON API with
/// Server-Sent Events, behind the same token) and prints `dashboard on
/// http://ADDRESS` after the `listening on` line.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on; port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:50051", value_name = "ADDR")]
    listen: SocketAddr,
    /// Also serve the web dashboard on this address; port 0 picks a free one
    /// [default address: 127.0.0.1:8080]
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:8080")]
    http: Option<SocketAddr>,
    /// The operations database [default: the embedded store,
    /// $TRDR_STATE_DIR/operations.db or the user data dir]
    #[arg(long, value_name = "PATH")]
    db: Option<PathBuf>,
    /// Trainings that may run at once; later ones wait `pending`.
    #[arg(long, default_value_t = 1, value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..))]
    max_concurrent_trainings: u16,
    /// Where model artifacts are written [default: $TRDR_MODELS_DIR, else ./models]
    #[arg(long, value_name = "DIR")]
    models_dir: Option<PathBuf>,
    /// The only directory a client may name a strategy file in; clients send
    /// other strategies as text [default: $TRDR_STRATEGIES_DIR, else
    /// ./strategies]
    #[arg(long, value_name = "DIR")]
    strategies_dir: Option<PathBuf>,
    /// Require this token from every client (clients set TRDR_AUTH_TOKEN)
    /// [default: $TRDR_AUTH_TOKEN, else the token in the state directory's
    /// auth-token file, made at first start]
    #[arg(long, value_name = "TOKEN")]
    auth_token: Option<String>,
    /// Accept every client without a token (anyone who can connect may start,
    /// watch and cancel work); TRDR_AUTH_TOKEN is ignored.
    #[arg(long, conflicts_with = "auth_token")]
    no_auth: bool,
    /// Seconds a cancelled operation's work may take to stop; after that the
    /// operation ends `cancelled` without it and anything it still produces
    /// is discarded. Shutdown waits at most this long.
    #[arg(long, value_name = "SECONDS", default_value_t = OperationsService::DEFAULT_CANCEL_GRACE.as_secs())]
    cancel_grace: u64,
}

/// How clients are checked. No `Debug`: it holds the token.
enum Auth {
    Off,
    Given(String),
    File(String, PathBuf),
}

impl Auth {
    fn resolve(args: &ServeArgs) -> anyhow::Result<Self> {
        if args.no_auth {
            return Ok(Self::Off);
        }
        // The variable is read here, not by clap, so that --no-auth can set
        // aside a token exported for clients, yet not one given as a flag.
        let given = args
            .auth_token
            .clone()
            .or_else(|| std::env::var(AUTH_TOKEN_ENV).ok())
            .filter(|token| !token.is_empty());
        if let Some(token) = given {
            return Ok(Self::Given(token));
        }
        let path = crate::token::path()?;
        let token = crate::token::load_or_create(&path)?;
        Ok(Self::File(token, path))
    }

    fn token(&self) -> Option<&str> {
        match self {
            Self::Off => None,
            Self::Given(token) | Self::File(token, _) => Some(token),
        }
    }
}

pub(crate) async fn run(args: ServeArgs, global: &Global) -> anyhow::Result<u8> {
    // Before anything is opened: a token file others can read stops here.
    let auth = Auth::resolve(&args)?;
    let db = match args.db {
        Some(db) => db,
        None => embedded::operations_db()?,
    };
    let (listener, address) =
        crate::listen::bind(args.listen, auth.token(), "start and cancel work").await?;
    let dashboard = match args.http {
        Some(http) => {
            Some(crate::listen::bind(http, auth.token(), "watch, cancel and resume work").await?)
        }
        None => None,
    };
    let options = ServerOptions {
        db,
        strategies_dir: strategies_dir(args.strategies_dir),
        data_dir: global.data_dir.clone(),
        models_dir: crate::train::models_dir(args.models_dir),
        max_concurrent_trainings: usize::from(args.max_concurrent_trainings),
        auth_token: auth.token().and_then(rpc::Secret::new),
        cancel_grace: Duration::from_secs(args.cancel_grace),
    };
    match &auth {
        Auth::Off => tracing::warn!(
            ?options,
            "starting the operations server with authentication off (--no-auth): \
             anyone who can connect can start, watch and cancel work"
        ),
        Auth::Given(_) => tracing::info!(
            ?options,
            "starting the operations server; clients need the token given"
        ),
        Auth::File(_, path) => tracing::info!(
            ?options,
            token_file = %path.display(),
            "starting the operations server; clients need the token in the token \
             file (this user's trdr clients read it there)"
        ),
    }
    let signals = crate::listen::announce(address)?;
    let dashboard = match dashboard {
        Some((listener, address)) => {
            announce_dashboard(address)?;
            Some(listener)
        }
        None => None,
    };
    let listeners = api_server::Listeners {
        grpc: listener,
        dashboard,
    };
    api_server::serve(listeners, options, signals).await?;
    Ok(0)
}

/// The line after `listening on` that scripts and tests read the
/// dashboard's address from.
fn announce_dashboard(address: SocketAddr) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "dashboard on http://{address}").context("cannot write to stdout")?;
    stdout.flush().context("cannot write to stdout")
}

/// `--strategies-dir`, else `$TRDR_STRATEGIES_DIR`, else `./strategies`.
fn strategies_dir(flag: Option<PathBuf>) -> PathBuf {
    flag.or_else(|| {
        std::env::var_os("TRDR_STRATEGIES_DIR")
            .filter(|dir| !dir.is_empty())
            .map(PathBuf::from)
    })
    .unwrap_or_else(|| PathBuf::from("strategies"))
}
