//! `trdr host-service`: the training host, so another trdr process can run
//! its trainings (and read bars) on this machine over gRPC.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use host_service::HostOptions;
use rpc::auth::AUTH_TOKEN_ENV;

use crate::Global;

/// Serve the training host (gRPC `TrainingHost` and `DataHost`).
///
/// Runs each training a client sends on this machine, with this machine's
/// --data-dir and --models-dir, streams its progress back, and stops it when
/// the client cancels or goes away. Trainings beyond --max-concurrent wait
/// for a free slot. Also serves the bars of the data store, the standard gRPC
/// health service and server reflection.
///
/// Prints `listening on ADDRESS` once it accepts connections. SIGTERM or
/// Ctrl-C cancels every training, waits for them to stop, and exits 0.
/// Clients reach it with USE_TRAINING_HOST_SERVICE=true and
/// TRAINING_HOST_SERVICE_URL=http://ADDRESS, and to its bars with
/// USE_DATA_HOST_SERVICE=true and DATA_HOST_SERVICE_URL=http://ADDRESS.
#[derive(Debug, Args)]
pub(crate) struct HostServiceArgs {
    /// Address to listen on; port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:50052", value_name = "ADDR")]
    listen: SocketAddr,
    /// Where model artifacts are written [default: $TRDR_MODELS_DIR, else ./models]
    #[arg(long, value_name = "DIR")]
    models_dir: Option<PathBuf>,
    /// Trainings that may run at once; later ones wait for a free slot.
    #[arg(long, default_value_t = 1, value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..))]
    max_concurrent: u16,
    /// Require this token from every client (clients set TRDR_AUTH_TOKEN).
    #[arg(long, env = AUTH_TOKEN_ENV, hide_env_values = true, value_name = "TOKEN")]
    auth_token: Option<String>,
    /// What trainings run on unless they name a backend: flex, ndarray, or
    /// a GPU backend of a build with its feature (wgpu, cuda). A GPU is
    /// opened before the host serves (it fails naming what is missing) and
    /// offered besides the CPU backends. wgpu takes the default adapter
    /// (CUBECL_WGPU_DEFAULT_DEVICE overrides it); cuda the first device
    /// (CUDA_VISIBLE_DEVICES chooses it).
    #[arg(long, default_value_t = host_service::Backend::Flex, value_name = "BACKEND")]
    backend: host_service::Backend,
}

pub(crate) async fn run(args: HostServiceArgs, global: &Global) -> anyhow::Result<u8> {
    let auth_token = args.auth_token.and_then(rpc::Secret::new);
    let (listener, address) = crate::listen::bind(
        args.listen,
        auth_token.as_ref().map(rpc::Secret::expose),
        "run trainings and read the data",
    )
    .await?;
    let options = HostOptions {
        data_dir: global.data_dir.clone(),
        models_dir: crate::train::models_dir(args.models_dir),
        max_concurrent: usize::from(args.max_concurrent),
        auth_token,
        backend: args.backend,
    };
    let signals = crate::listen::announce(address)?;

    host_service::serve(listener, options, signals).await?;
    Ok(0)
}
