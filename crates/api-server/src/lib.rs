//! The operations API server behind `trdr serve`: trainings and data loads
//! over gRPC, watched and cancelled from any terminal.
//!
//! One [`OperationsService`] over a SQLite store is shared by a
//! `TrainingManager` and a `DataManager`; the `trdr.v1.Operations` service
//! starts, lists, streams and cancels their operations. History survives
//! restarts: operations a dead process left running are marked `failed`
//! when the store is opened. The health (`grpc.health.v1`) and reflection
//! services are served beside it; with an auth token, only `Operations`
//! calls need it. With a second listener, [`serve`] also serves the
//! dashboard: live pages and a JSON API with Server-Sent Events over the
//! same operations, behind the same token.
//!
//! ```no_run
//! use api_server::{ServerOptions, serve};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! println!("listening on {}", listener.local_addr()?);
//! let options = ServerOptions::new("operations.db");
//! // Stops accepting work on Ctrl-C, cancels what runs, waits, returns.
//! serve(listener, options, async {
//!     let _ = tokio::signal::ctrl_c().await;
//! })
//! .await?;
//! # Ok(())
//! # }
//! ```
//!
//! [`OperationsService`]: orchestrator_core::OperationsService

mod chart;
#[cfg(any(test, fuzzing))]
pub mod fuzzing;
mod http;
mod service;
mod strategies;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use market_data::LocalStore;
use orchestrator_core::store::StoreError;
use orchestrator_core::{CancelReason, ConfigError, OperationsService, ServiceOrchestrator};
use rpc::Secret;
use rpc::proto::operations_server::OperationsServer;
use rpc::server::{KeepAlive, ServerBuilder};
use training_manager::{Executor, TrainingManager};

pub use crate::chart::training_chart;
use crate::service::OperationsApi;

/// Where `trdr serve` listens: the gRPC API, and the dashboard when asked.
#[derive(Debug)]
pub struct Listeners {
    pub grpc: tokio::net::TcpListener,
    /// The dashboard's HTTP listener (`trdr serve --http`).
    pub dashboard: Option<tokio::net::TcpListener>,
}

/// The gRPC API alone.
impl From<tokio::net::TcpListener> for Listeners {
    fn from(grpc: tokio::net::TcpListener) -> Self {
        Self {
            grpc,
            dashboard: None,
        }
    }
}

/// How `trdr serve` is set up.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// The SQLite operations store (created when missing).
    pub db: PathBuf,
    /// The only place a client may name a strategy file in; clients
    /// elsewhere send the strategy's text.
    pub strategies_dir: PathBuf,
    /// The local data store trainings and loads read.
    pub data_dir: PathBuf,
    /// Where trainings write their model artifacts.
    pub models_dir: PathBuf,
    /// Trainings beyond this many stay `pending` and start in order.
    pub max_concurrent_trainings: usize,
    /// Calls to `Operations` must carry this token; `None` accepts all.
    pub auth_token: Option<Secret>,
    /// How long a cancelled operation's work may take to stop before the
    /// operation ends `cancelled` without it (shutdown waits as long).
    pub cancel_grace: Duration,
    /// Where trainings run, when the program chose (a cluster's
    /// scheduler); `None`: in this process, or on the host services the
    /// environment selects (`USE_TRAINING_HOST_SERVICE`).
    pub executor: Option<Arc<dyn Executor>>,
}

impl ServerOptions {
    /// The store at `db`, strategies in `./strategies`, data in `./data`,
    /// models to `./models`, one training at a time, no token, 30 s for
    /// cancelled work to stop.
    pub fn new(db: impl Into<PathBuf>) -> Self {
        Self {
            db: db.into(),
            strategies_dir: PathBuf::from("strategies"),
            data_dir: PathBuf::from("data"),
            models_dir: PathBuf::from("models"),
            max_concurrent_trainings: 1,
            auth_token: None,
            cancel_grace: OperationsService::DEFAULT_CANCEL_GRACE,
            executor: None,
        }
    }
}

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ApiServerError {
    #[error("cannot open the operations store {}", path.display())]
    Store { path: PathBuf, source: StoreError },
    #[error("invalid host service configuration")]
    Config(#[from] ConfigError),
    #[error("the gRPC server failed")]
    Transport(#[from] tonic::transport::Error),
    #[error("the dashboard's HTTP server failed")]
    Dashboard(#[source] std::io::Error),
}

/// Pings idle connections so a vanished client (a closed laptop, a dropped
/// network) frees its watch streams instead of holding them forever.
const KEEP_ALIVE: KeepAlive = KeepAlive {
    interval: Duration::from_secs(30),
    timeout: Duration::from_secs(10),
};

/// Serves the operations API on `listeners` (a `TcpListener` is the gRPC
/// one alone) until `shutdown` completes, then stops accepting work (new
/// `Start*` calls get `UNAVAILABLE`), cancels the running operations, waits
/// for them to end `cancelled`, and returns.
pub async fn serve(
    listeners: impl Into<Listeners>,
    options: ServerOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ApiServerError> {
    let Listeners {
        grpc: listener,
        dashboard,
    } = listeners.into();
    let operations = OperationsService::open_sqlite(&options.db)
        .map_err(|source| ApiServerError::Store {
            path: options.db.clone(),
            source,
        })?
        .with_cancel_grace(options.cancel_grace);
    let training = Arc::new(match options.executor.clone() {
        Some(executor) => TrainingManager::with_executor(
            operations.clone(),
            executor,
            options.max_concurrent_trainings,
        ),
        None => TrainingManager::new(
            operations.clone(),
            orchestrator_core::HostServiceConfig::from_env(
                training_manager::TRAINING_SERVICE,
                training_manager::DEFAULT_TRAINING_HOST_URL,
            )?,
            options.max_concurrent_trainings,
        ),
    });
    let data = Arc::new(host_client::data_manager_from_env(
        operations.clone(),
        LocalStore::new(&options.data_dir),
    )?);
    let api = OperationsApi::new(
        operations.clone(),
        Arc::clone(&training),
        Arc::clone(&data),
        options.strategies_dir.clone(),
        options.data_dir.clone(),
        options.models_dir.clone(),
    );
    let gate = api.gate();
    let (stop_dashboard, dashboard_stopped) = tokio::sync::oneshot::channel::<()>();
    let dashboard = dashboard.map(|listener| {
        let router = http::router(http::Dashboard::new(
            operations.clone(),
            Arc::clone(&training),
            gate.clone(),
            options.auth_token.as_ref().map(Secret::expose),
        ));
        tokio::spawn(
            axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = dashboard_stopped.await;
                })
                .into_future(),
        )
    });

    let operations_server = OperationsServer::new(api)
        .max_decoding_message_size(rpc::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(rpc::MAX_MESSAGE_BYTES);
    let server =
        ServerBuilder::new(options.auth_token.as_ref(), KEEP_ALIVE).add_service(operations_server);
    let health = server.health();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = server.serve(listener, async {
        let _ = stopped.await;
    });
    tokio::pin!(server);
    tracing::info!(db = %options.db.display(), "operations server ready");

    tokio::select! {
        result = &mut server => return result.map_err(Into::into),
        () = shutdown => {}
    }

    // The server keeps serving while operations wind down, so watchers see
    // them end `cancelled`; only new work is refused.
    gate.close();
    health.set_not_serving().await;
    let stopping = operations.cancel_active(CancelReason::Shutdown);
    tracing::info!(
        operations = stopping.len(),
        grace = ?operations.cancel_grace(),
        "shutting down: asked running operations to stop; waiting for them, at most the grace period"
    );
    tokio::join!(training.drain(), data.drain());
    let _ = stop.send(());
    // Every event stream has had its `end` by now: the operations ended.
    let _ = stop_dashboard.send(());
    server.await?;
    if let Some(dashboard) = dashboard {
        match dashboard.await {
            Ok(served) => served.map_err(ApiServerError::Dashboard)?,
            Err(panicked) => std::panic::resume_unwind(panicked.into_panic()),
        }
    }
    tracing::info!("operations server stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use rpc::testing::{ReflectionVersion, reflect};

    use super::*;

    /// Reflection in both versions, as `grpcurl` (v1) and Python's
    /// grpcio-reflection (v1alpha) ask: the server lists and describes its
    /// services without the token `Operations` needs.
    #[tokio::test]
    async fn reflection_v1_and_v1alpha_list_and_describe_the_operations_api() {
        let dir = tempfile::tempdir().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let options = ServerOptions {
            auth_token: Secret::new("s3cret"),
            ..ServerOptions::new(dir.path().join("operations.db"))
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, options, async {
            let _ = stopped.await;
        }));
        for version in [ReflectionVersion::V1, ReflectionVersion::V1Alpha] {
            let (mut services, file) = reflect(&url, version, "trdr.v1.Operations").await.unwrap();
            services.sort();
            assert_eq!(
                services,
                [
                    "grpc.health.v1.Health",
                    "grpc.reflection.v1.ServerReflection",
                    "grpc.reflection.v1alpha.ServerReflection",
                    "trdr.v1.Operations",
                ],
                "{version:?}"
            );
            assert_eq!(file, "trdr/v1/operations.proto", "{version:?}");
        }
        stop.send(()).unwrap();
        server.await.unwrap().unwrap();
    }

    #[test]
    fn the_token_stays_out_of_debug_output() {
        let options = ServerOptions {
            auth_token: Secret::new("s3cret"),
            ..ServerOptions::new("operations.db")
        };
        let debug = format!("{options:?}");
        assert!(debug.contains("auth_token: Some(<set>)"), "{debug}");
        assert!(!debug.contains("s3cret"), "{debug}");
    }
}
