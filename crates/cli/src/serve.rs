//! `trdr serve`: the operations API server, so trainings and data loads can
//! be submitted, watched and cancelled from any terminal.

use std::net::SocketAddr;
use std::path::PathBuf;

use api_server::ServerOptions;
use clap::Args;
use rpc::auth::AUTH_TOKEN_ENV;

use crate::Global;
use crate::embedded;

/// Serve the operations API over gRPC.
///
/// Prints `listening on ADDRESS` once it accepts connections. Trainings
/// beyond --max-concurrent-trainings wait `pending` and start in order.
/// SIGTERM or Ctrl-C stops accepting work, cancels running operations, waits
/// for them to end, and exits 0. Operations left running by a server that
/// died are marked failed when it starts again.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on; port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:50051", value_name = "ADDR")]
    listen: SocketAddr,
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
    /// Require this token from every client (clients set TRDR_AUTH_TOKEN).
    #[arg(long, env = AUTH_TOKEN_ENV, hide_env_values = true, value_name = "TOKEN")]
    auth_token: Option<String>,
}

pub(crate) async fn run(args: ServeArgs, global: &Global) -> anyhow::Result<u8> {
    let db = match args.db {
        Some(db) => db,
        None => embedded::operations_db()?,
    };
    let auth_token = args.auth_token.filter(|token| !token.is_empty());
    let (listener, address) =
        crate::listen::bind(args.listen, auth_token.as_deref(), "start and cancel work").await?;
    let options = ServerOptions {
        db,
        data_dir: global.data_dir.clone(),
        models_dir: crate::train::models_dir(args.models_dir),
        max_concurrent_trainings: usize::from(args.max_concurrent_trainings),
        auth_token,
    };
    tracing::info!(?options, "starting the operations server");
    let signals = crate::listen::announce(address)?;
    api_server::serve(listener, options, signals).await?;
    Ok(0)
}
