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
/// --executor slurm runs each training as a batch job on the Slurm cluster
/// that SLURM_CONF (or Slurm's own lookup) names: the job runs this trdr
/// binary on a node, which must see the data, models and jobs folders at
/// the same paths (a shared file system). Progress and cancel work as for
/// a local training; a queued job keeps its training `pending` with
/// Slurm's reason.
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
    /// Where trainings run: `local` (in this process, or on the host
    /// services USE_TRAINING_HOST_SERVICE selects) or `slurm` (a batch job
    /// each on a Slurm cluster)
    #[arg(long, value_enum, default_value_t = ExecutorKind::Local)]
    executor: ExecutorKind,
    /// The Slurm partition to submit to [default: the cluster's default]
    #[arg(long, value_name = "NAME", requires_if("slurm", "executor"))]
    partition: Option<String>,
    /// One more sbatch argument for every training job, e.g.
    /// --sbatch-arg=--time=2:00:00 (repeat it for more)
    #[arg(long = "sbatch-arg", value_name = "ARG", allow_hyphen_values = true)]
    sbatch_args: Vec<String>,
    /// Submit a Slurm job lost with its node (or to its time limit, or
    /// preempted) again from its last checkpoint, at most N times
    #[arg(long, value_name = "N", default_value_t = 0)]
    requeue_on_node_failure: u32,
    /// Where each Slurm job gets a folder (its job file, script and logs);
    /// on a file system the nodes share [default: MODELS_DIR/.slurm-jobs]
    #[arg(long, value_name = "DIR")]
    slurm_jobs_dir: Option<PathBuf>,
}

/// Where `trdr serve` runs trainings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ExecutorKind {
    Local,
    Slurm,
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
    let db = match args.db.clone() {
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
    let models_dir = crate::train::models_dir(args.models_dir.clone());
    let executor = match args.executor {
        ExecutorKind::Local => None,
        ExecutorKind::Slurm => Some(slurm_executor(&args, &models_dir)?),
    };
    let options = ServerOptions {
        db,
        strategies_dir: strategies_dir(args.strategies_dir),
        data_dir: global.data_dir.clone(),
        models_dir,
        max_concurrent_trainings: usize::from(args.max_concurrent_trainings),
        auth_token: auth.token().and_then(rpc::Secret::new),
        cancel_grace: Duration::from_secs(args.cancel_grace),
        executor,
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

/// The Slurm executor `--executor slurm` and its flags describe; its jobs
/// run this very binary.
fn slurm_executor(
    args: &ServeArgs,
    models_dir: &std::path::Path,
) -> anyhow::Result<std::sync::Arc<dyn training_manager::Executor>> {
    use training_adapter::slurm::{SlurmExecutor, SlurmOptions};
    let trdr =
        std::env::current_exe().context("cannot find this trdr binary for the Slurm jobs")?;
    let jobs_dir = args
        .slurm_jobs_dir
        .clone()
        .unwrap_or_else(|| models_dir.join(".slurm-jobs"));
    let mut options = SlurmOptions::new(trdr, std::path::absolute(&jobs_dir)?);
    options.partition = args.partition.clone();
    options.sbatch_args = args.sbatch_args.clone();
    options.requeue_on_node_failure = args.requeue_on_node_failure;
    Ok(std::sync::Arc::new(SlurmExecutor::new(options)))
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
