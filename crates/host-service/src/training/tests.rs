//! `GetStatus` on a host with no sessions: capacity, backends, shutdown.
//! The count of sessions, with real trainings, is in `tests/it/status.rs`.

use tonic::Code;

use super::*;

fn host(max_concurrent: usize) -> Arc<Host> {
    // No session runs here, so nothing is read or written.
    Arc::new(Host::new("data".into(), "models".into(), max_concurrent))
}

async fn get_status(host: &Arc<Host>) -> Result<proto::HostStatus, Status> {
    TrainingService::new(Arc::clone(host))
        .get_status(Request::new(proto::GetStatusRequest {}))
        .await
        .map(Response::into_inner)
}

#[tokio::test]
async fn the_capacity_is_the_admission_limit_and_every_backend_is_offered() {
    let status = get_status(&host(3)).await.unwrap();
    assert_eq!(
        status,
        proto::HostStatus {
            capacity: 3,
            running: 0,
            backends: vec!["flex".to_owned(), "ndarray".to_owned()],
            version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    );
    // As the manager admits one training when told none.
    assert_eq!(get_status(&host(0)).await.unwrap().capacity, 1);
}

#[tokio::test]
async fn a_host_shutting_down_answers_unavailable() {
    let host = host(1);
    host.shutdown().await;
    let error = get_status(&host).await.unwrap_err();
    assert_eq!(error.code(), Code::Unavailable, "{error:?}");
    assert!(error.message().contains("shutting down"), "{error:?}");
}
