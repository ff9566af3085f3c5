//! `trdr slurm-job FILE`: what a training's Slurm batch job runs on its
//! node (the Slurm executor of `trdr serve --executor slurm` writes FILE
//! and submits the job). Trains the request in FILE and writes its typed
//! events as NDJSON to stdout, the job's output file that `trdr serve`
//! follows. SIGINT or SIGTERM (`scancel --full --signal=INT`, plain
//! `scancel`, a time limit) stops the training within a batch, its
//! checkpoint saved.

use std::path::PathBuf;

use clap::Args;
use orchestrator_core::{CancelReason, CancellationToken};

/// Run one training of `trdr serve --executor slurm` inside its Slurm job
/// (not for interactive use).
#[derive(Debug, Args)]
pub(crate) struct SlurmJobArgs {
    /// The job file the executor wrote in the job's folder.
    #[arg(value_name = "FILE")]
    job_file: PathBuf,
}

pub(crate) async fn run(args: SlurmJobArgs) -> anyhow::Result<u8> {
    let token = CancellationToken::new();
    let stop = crate::listen::shutdown_signal()?;
    let training = tokio::task::spawn_blocking({
        let token = token.clone();
        move || {
            training_adapter::slurm::run_job(&args.job_file, &token, Box::new(std::io::stdout()))
        }
    });
    tokio::pin!(training);
    let joined = tokio::select! {
        joined = &mut training => joined,
        () = stop => {
            token.cancel(CancelReason::UserRequest(Some("the Slurm job was signalled".to_owned())));
            training.await
        }
    };
    Ok(joined?)
}
