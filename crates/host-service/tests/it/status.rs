//! `GetStatus` through `host_client::TrainingHostClient::status`: the
//! capacity, the sessions that occupy or wait for a slot (and not those
//! that ended), auth, and a host that is down.

use host_client::{ConnectOptions, HostEndpoint, HostError, HostKind, HostStatus};
use orchestrator_core::CancellationToken;
use strategy::Backend;
use tonic::Code;

use super::*;

fn status_client(host: &TestHost, token: Option<&str>) -> host_client::TrainingHostClient {
    host_client::TrainingHostClient::new(HostEndpoint::new(
        HostKind::Training,
        format!("http://{}", host.addr),
        ConnectOptions {
            auth_token: token.and_then(rpc::Secret::new),
            ..ConnectOptions::default()
        },
    ))
}

async fn running(client: &host_client::TrainingHostClient) -> u32 {
    within(Box::pin(client.status(&CancellationToken::new())))
        .await
        .unwrap()
        .running
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_counts_waiting_and_running_sessions_and_not_ended_ones() {
    let host = TestHost::start().await;
    let status = status_client(&host, None);
    let idle = within(Box::pin(status.status(&CancellationToken::new())))
        .await
        .unwrap();
    assert_eq!(
        idle,
        HostStatus {
            capacity: 1,
            running: 0,
            backends: vec![Backend::Flex, Backend::NdArray],
            version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    );
    assert_eq!(idle.free_slots(), 1);

    let mut client = host.training().await;
    let (first, mut first_stream) = start(&mut client, long_request()).await;
    until_training(&mut first_stream).await;
    assert_eq!(running(&status).await, 1);

    // The second waits for the one slot, and counts: load 2.
    let (second, mut second_stream) = start(&mut client, long_request()).await;
    let now = within(Box::pin(status.status(&CancellationToken::new())))
        .await
        .unwrap();
    assert_eq!((now.running, now.free_slots()), (2, 0));
    assert!((now.load() - 2.0).abs() < f64::EPSILON, "{now:?}");

    // Cancelled while waiting, it ends at once and no longer counts.
    cancel(&mut client, &second, "not now").await;
    assert!(matches!(
        final_event(&mut second_stream).await,
        Event::Cancelled(_)
    ));
    assert_eq!(running(&status).await, 1);

    cancel(&mut client, &first, "done").await;
    assert!(matches!(
        final_event(&mut first_stream).await,
        Event::Cancelled(_)
    ));
    assert_eq!(running(&status).await, 0);

    // A training that completes frees its slot too.
    let (_, mut short) = start(&mut client, start_request(&strategy(), 1)).await;
    assert!(matches!(final_event(&mut short).await, Event::Completed(_)));
    assert_eq!(running(&status).await, 0);
    host.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_capacity_is_the_host_s_max_concurrent() {
    let host = TestHost::start_with(root().join("data"), 3, None).await;
    let status = within(Box::pin(
        status_client(&host, None).status(&CancellationToken::new()),
    ))
    .await
    .unwrap();
    assert_eq!((status.capacity, status.running), (3, 0));
    host.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_needs_the_host_s_token() {
    let host = TestHost::start_with(root().join("data"), 1, Some("s3cret")).await;
    for token in [None, Some("wrong")] {
        let error = host
            .training_with(token)
            .await
            .get_status(proto::GetStatusRequest {})
            .await
            .unwrap_err();
        assert_eq!(error.code(), Code::Unauthenticated, "{token:?}");

        let error = within(Box::pin(
            status_client(&host, token).status(&CancellationToken::new()),
        ))
        .await
        .unwrap_err();
        assert!(
            matches!(error, HostError::Unauthenticated { .. }),
            "{error:?}"
        );
        assert_eq!(error.url(), format!("http://{}", host.addr));
    }
    let status = within(Box::pin(
        status_client(&host, Some("s3cret")).status(&CancellationToken::new()),
    ))
    .await
    .unwrap();
    assert_eq!(status.capacity, 1);
    host.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_is_down_fails_the_status_within_the_connect_deadline_naming_it() {
    let host = TestHost::start().await;
    let client = status_client(&host, None);
    let url = format!("http://{}", host.addr);
    host.stop().await.unwrap();

    // A guard against a hang, not a measurement: the deadline itself is
    // checked on tokio's clock in host-client's endpoint tests.
    let bound = ConnectOptions::default().connect_deadline + Duration::from_secs(5);
    let error = tokio::time::timeout(bound, client.status(&CancellationToken::new()))
        .await
        .expect("a host that is down fails within the connect deadline")
        .unwrap_err();
    assert!(matches!(error, HostError::Unreachable { .. }), "{error:?}");
    assert!(
        error
            .to_string()
            .starts_with(&format!("training host at {url} is not reachable")),
        "{error}"
    );
}
