//! [`ServerBuilder`]: how every trdr server is set up, so both servers
//! offer the same things: the standard health service, server reflection
//! in both versions (v1, and v1alpha, the only one Python's
//! grpcio-reflection and older tools speak), the auth token on trdr's own
//! services, TCP no-delay and HTTP/2 keep-alive pings.

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use tonic::body::Body;
use tonic::codegen::Service;
use tonic::codegen::http::{Request, Response};
use tonic::server::NamedService;
use tonic::service::RoutesBuilder;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::Secret;
use crate::auth::RequireToken;

/// The standard health service's name.
const HEALTH: &str = "grpc.health.v1.Health";

/// HTTP/2 keep-alive of a server: how often it pings a connection and how
/// long it waits for the answer before it drops the connection, so a
/// client that vanished without closing it frees what it held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeepAlive {
    pub interval: Duration,
    pub timeout: Duration,
}

/// A trdr server being set up: [`add_service`](Self::add_service) each of
/// its services, then [`serve`](Self::serve).
pub struct ServerBuilder {
    keep_alive: KeepAlive,
    auth: RequireToken,
    routes: RoutesBuilder,
    health: HealthReporter,
    services: Vec<&'static str>,
}

impl std::fmt::Debug for ServerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerBuilder")
            .field("keep_alive", &self.keep_alive)
            .field("auth", &self.auth)
            .field("services", &self.services)
            .finish_non_exhaustive()
    }
}

impl ServerBuilder {
    /// A server with health and reflection (which need no token); the
    /// services added later need `auth_token` when it is set.
    pub fn new(auth_token: Option<&Secret>, keep_alive: KeepAlive) -> Self {
        let (health, health_service) = tonic_health::server::health_reporter();
        let mut routes = RoutesBuilder::default();
        routes.add_service(health_service);
        Self {
            keep_alive,
            auth: RequireToken::new(auth_token.map(Secret::expose)),
            routes,
            health,
            services: Vec::new(),
        }
    }

    /// Adds a trdr service behind the auth token; health reports it
    /// `SERVING` once [`serve`](Self::serve) starts.
    pub fn add_service<S>(mut self, service: S) -> Self
    where
        S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>
            + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.services.push(S::NAME);
        self.routes
            .add_service(InterceptedService::new(service, self.auth.clone()));
        self
    }

    /// The health of the services added so far, to report them stopping.
    pub fn health(&self) -> Health {
        Health {
            reporter: self.health.clone(),
            services: self.services.clone(),
        }
    }

    /// Serves on `listener` until `shutdown` completes, then until the
    /// calls in flight (watch streams included) have ended.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), tonic::transport::Error> {
        self.health().set(ServingStatus::Serving).await;
        let mut routes = self.routes;
        let reflection = || {
            // What this server serves, not every service the descriptors
            // define; both reflection versions list both.
            self.services
                .iter()
                .chain(&[
                    HEALTH,
                    "grpc.reflection.v1.ServerReflection",
                    "grpc.reflection.v1alpha.ServerReflection",
                ])
                .fold(
                    tonic_reflection::server::Builder::configure()
                        .include_reflection_service(false)
                        .register_encoded_file_descriptor_set(crate::FILE_DESCRIPTOR_SET)
                        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
                        .register_encoded_file_descriptor_set(
                            tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
                        )
                        .register_encoded_file_descriptor_set(
                            tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
                        ),
                    |builder, name| builder.with_service_name(*name),
                )
        };
        routes
            .add_service(
                reflection()
                    .build_v1()
                    .expect("the descriptors compiled into rpc are valid"),
            )
            .add_service(
                reflection()
                    .build_v1alpha()
                    .expect("the descriptors compiled into rpc are valid"),
            );
        Server::builder()
            .http2_keepalive_interval(Some(self.keep_alive.interval))
            .http2_keepalive_timeout(Some(self.keep_alive.timeout))
            .add_routes(routes.routes())
            // The builder's TCP options do not reach a listener bound by
            // the caller; without no-delay, small replies (a cancel's
            // answer) wait ~40 ms for a delayed ACK.
            .serve_with_incoming_shutdown(
                TcpIncoming::from(listener).with_nodelay(Some(true)),
                shutdown,
            )
            .await
    }
}

/// The health status of a server's own services.
#[derive(Debug, Clone)]
pub struct Health {
    reporter: HealthReporter,
    services: Vec<&'static str>,
}

impl Health {
    /// Reports every service `NOT_SERVING`, as a server shutting down does.
    pub async fn set_not_serving(&self) {
        self.set(ServingStatus::NotServing).await;
    }

    async fn set(&self, status: ServingStatus) {
        for service in &self.services {
            self.reporter.set_service_status(*service, status).await;
        }
    }
}
