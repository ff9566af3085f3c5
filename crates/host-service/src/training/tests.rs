//! `GetStatus` on a host with no sessions: capacity, backends, shutdown;
//! which backend a request gets. The count of sessions, with real
//! trainings, is in `tests/it/status.rs`.

use tonic::Code;

use super::*;

fn host(max_concurrent: usize) -> Arc<Host> {
    host_on(max_concurrent, Backend::Flex)
}

fn host_on(max_concurrent: usize, backend: Backend) -> Arc<Host> {
    // No session runs here, so nothing is read or written.
    Arc::new(Host::new(
        "data".into(),
        "models".into(),
        max_concurrent,
        backend,
    ))
}

async fn get_status(host: &Arc<Host>) -> Result<proto::HostStatus, Status> {
    TrainingService::new(Arc::clone(host))
        .get_status(Request::new(proto::GetStatusRequest {}))
        .await
        .map(Response::into_inner)
}

#[tokio::test]
async fn the_capacity_is_the_admission_limit_and_the_cpu_backends_are_offered() {
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

#[tokio::test]
async fn a_request_trains_on_the_hosts_default_unless_it_names_a_backend_the_host_offers() {
    let host = host_on(1, Backend::NdArray);
    let status = get_status(&host).await.unwrap();
    assert_eq!(status.backends, ["ndarray", "flex"], "the default first");

    let strategy_file = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../strategies/eurusd_mlp.yaml"
    );
    let strategy = strategy::StrategyConfig::from_file(strategy_file.as_ref()).unwrap();
    let on = |backend| {
        let options = strategy::TrainingOptions {
            backend,
            ..strategy::TrainingOptions::default()
        };
        let request = TrainingRequest::new(strategy.clone(), None, None, options).unwrap();
        host.on_backend(request)
            .map(|request| request.options().backend)
    };
    assert_eq!(on(None).unwrap(), Some(Backend::NdArray));
    assert_eq!(on(Some(Backend::Flex)).unwrap(), Some(Backend::Flex));
    let refused = on(Some(Backend::Wgpu)).unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert_eq!(
        refused.message(),
        "this training host trains on ndarray, flex, not wgpu (start it with `--backend wgpu` \
         on a build and machine that have it)"
    );
}
