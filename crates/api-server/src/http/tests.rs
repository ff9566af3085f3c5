//! The dashboard through its router (no socket): auth refusals, the JSON
//! API's errors, and the event feed's backfill and live order.

use axum::body::Body;
use http_body_util::BodyExt as _;
use orchestrator_core::HostServiceConfig;
use progress::{ProgressState, TrainingContext};
use tower::ServiceExt as _;

use super::*;

const TOKEN: &str = "s3cret";
const EPOCHS: u32 = 40;

/// The router over an in-memory store, with `token` required (or none).
fn dashboard(token: Option<&str>) -> (Router, OperationsService) {
    let operations = OperationsService::in_memory();
    let training = Arc::new(TrainingManager::new(
        operations.clone(),
        HostServiceConfig::local(training_manager::TRAINING_SERVICE),
        1,
    ));
    let dashboard = Dashboard::new(operations.clone(), training, Gate::default(), token);
    (router(dashboard), operations)
}

/// The progress a training reports at the end of `epoch`.
fn epoch_end(epoch: u32) -> ProgressState {
    ProgressState {
        percentage: f64::from(epoch) * 100.0 / f64::from(EPOCHS),
        context: ProgressContext::Training(TrainingContext {
            epoch: Some(Step::new(epoch, EPOCHS)),
            batch: Some(Step::new(8, 8)),
            train_loss: Some(1.0 / f64::from(epoch)),
            ..TrainingContext::default()
        }),
        ..ProgressState::default()
    }
}

/// The progress a training reports halfway through `epoch`: no epoch's end.
fn mid_epoch(epoch: u32) -> ProgressState {
    let mut state = epoch_end(epoch);
    if let ProgressContext::Training(context) = &mut state.context {
        context.batch = Some(Step::new(4, 8));
    }
    state
}

/// A running training that has finished `epochs` epochs.
fn running_training(
    operations: &OperationsService,
    epochs: u32,
) -> orchestrator_core::OperationContext {
    let context = operations
        .create(OperationKind::Training, serde_json::json!({}), None)
        .unwrap();
    operations.start(&context.id).unwrap();
    for epoch in 1..=epochs {
        context.progress.report(epoch_end(epoch));
    }
    context
}

/// A training completed after `epochs` epochs.
fn completed_training(operations: &OperationsService, epochs: u32) -> OperationId {
    let context = running_training(operations, epochs);
    operations
        .complete(&context.id, serde_json::json!({ "strategy": "demo" }))
        .unwrap();
    context.id
}

async fn send(router: &Router, method: &str, uri: &str, headers: &[(&str, &str)]) -> Response {
    let mut request = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    router
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap()
}

/// The status and whole body of a response (a stream's, once it ends).
async fn read(response: Response) -> (StatusCode, String) {
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

async fn get(router: &Router, uri: &str, headers: &[(&str, &str)]) -> (StatusCode, String) {
    read(send(router, "GET", uri, headers).await).await
}

const BEARER: (&str, &str) = ("authorization", "Bearer s3cret");

#[tokio::test]
async fn pages_api_and_events_need_the_token_as_a_header_or_the_login_cookie() {
    let (router, operations) = dashboard(Some(TOKEN));
    let id = completed_training(&operations, 3);
    let cookie = ("cookie", "theme=dark; trdr_token=s3cret");
    for uri in [
        "/".to_owned(),
        format!("/operations/{id}"),
        "/api/operations".to_owned(),
        format!("/api/operations/{id}"),
        format!("/api/operations/{id}/metrics"),
        format!("/api/operations/{id}/chart.svg"),
        format!("/api/operations/{id}/events"),
    ] {
        for refused in [
            &[][..],
            &[("authorization", "Bearer wrong")],
            &[("authorization", "s3cret")],
            &[("cookie", "trdr_token=wrong")],
        ] {
            let (status, body) = get(&router, &uri, refused).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{uri} {refused:?}: {body}"
            );
            assert!(!body.contains(TOKEN), "{uri}: {body}");
            if uri.starts_with("/api/") {
                assert!(
                    body.contains("Authorization: Bearer TOKEN"),
                    "{uri}: {body}"
                );
            } else {
                // A page answers with the login form, coming back here.
                assert!(
                    body.contains("<form method=\"post\" action=\"/login\""),
                    "{body}"
                );
                assert!(body.contains(&format!("value=\"{uri}\"")), "{body}");
            }
        }
        for admitted in [BEARER, cookie] {
            let (status, body) = get(&router, &uri, &[admitted]).await;
            assert_eq!(status, StatusCode::OK, "{uri} {admitted:?}: {body}");
        }
    }
    // Cancelling is refused before the operation is even looked at.
    let refused = send(
        &router,
        "POST",
        &format!("/api/operations/{id}/cancel"),
        &[],
    )
    .await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(refused.headers()[header::WWW_AUTHENTICATE], "Bearer");
}

#[tokio::test]
async fn the_login_form_sets_an_http_only_strict_cookie_for_the_right_token_only() {
    let (router, _) = dashboard(Some(TOKEN));
    let login = |form: &'static str| {
        router.clone().oneshot(
            Request::builder()
                .method("POST")
                .uri("/login")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from(form))
                .unwrap(),
        )
    };
    let refused = login("token=wrong&next=%2F").await.unwrap();
    assert!(refused.headers().get(header::SET_COOKIE).is_none());
    let (status, body) = read(refused).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body.contains("Wrong token."), "{body}");

    let admitted = login("token=s3cret&next=%2F%3Fstatus%3Drunning")
        .await
        .unwrap();
    assert_eq!(admitted.status(), StatusCode::SEE_OTHER);
    assert_eq!(admitted.headers()[header::LOCATION], "/?status=running");
    assert_eq!(
        admitted.headers()[header::SET_COOKIE],
        "trdr_token=s3cret; HttpOnly; SameSite=Strict; Path=/"
    );
    // Never sent elsewhere.
    let elsewhere = login("token=s3cret&next=%2F%2Fevil.example").await.unwrap();
    assert_eq!(elsewhere.headers()[header::LOCATION], "/");
}

#[tokio::test]
async fn without_a_token_everything_is_open() {
    let (router, operations) = dashboard(None);
    let id = completed_training(&operations, 2);
    let (status, body) = get(&router, "/api/operations", &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let listed: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(listed["total"], 1);
    assert_eq!(listed["operations"][0]["id"], id.as_str());
    assert_eq!(listed["operations"][0]["epochs_run"], 2);
    let (status, _) = get(&router, "/", &[]).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn bad_ids_are_400_naming_the_field_unknown_ones_404_and_finished_ones_409() {
    let (router, operations) = dashboard(None);
    for uri in [
        "/api/operations/nonsense",
        "/api/operations/..%2F..%2Fetc%2Fpasswd/metrics",
        "/api/operations/nonsense/events",
        "/operations/nonsense",
    ] {
        let (status, body) = get(&router, uri, &[]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
        assert!(body.contains("id: invalid operation id"), "{uri}: {body}");
    }
    let unknown = "op_training_20200101_000000_deadbeef";
    for uri in [
        format!("/api/operations/{unknown}"),
        format!("/api/operations/{unknown}/chart.svg"),
        format!("/operations/{unknown}"),
    ] {
        let (status, body) = get(&router, &uri, &[]).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}: {body}");
        assert!(body.contains(unknown), "{body}");
    }
    let (status, body) = get(&router, "/api/operations?status=sleeping", &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("status: unknown operation status"), "{body}");
    let (status, body) = get(&router, "/api/operations?colour=red", &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("colour: unknown parameter"), "{body}");
    let (status, _) = get(&router, "/no/such/page", &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let finished = completed_training(&operations, 1);
    let (status, body) = read(
        send(
            &router,
            "POST",
            &format!("/api/operations/{finished}/cancel"),
            &[],
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body.contains("is already completed"), "{body}");
    // Completed: nothing left to resume.
    let (status, body) = read(
        send(
            &router,
            "POST",
            &format!("/api/operations/{finished}/resume"),
            &[],
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body.contains("cannot resume"), "{body}");
}

#[tokio::test]
async fn a_running_operation_is_listed_by_status_and_cancelled_with_a_post() {
    let (router, operations) = dashboard(None);
    let running = running_training(&operations, 2);
    completed_training(&operations, 1);
    let (_, body) = get(&router, "/api/operations?status=running", &[]).await;
    let listed: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(listed["total"], 1, "{body}");
    assert_eq!(listed["operations"][0]["id"], running.id.as_str());
    assert_eq!(listed["operations"][0]["status"], "running");

    let (status, body) = read(
        send(
            &router,
            "POST",
            &format!("/api/operations/{}/cancel", running.id),
            &[],
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let answered: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answered["stopping"], true, "{body}");
    assert!(running.token.is_cancelled());

    let (_, body) = get(
        &router,
        &format!("/api/operations/{}/metrics", running.id),
        &[],
    )
    .await;
    let metrics: serde_json::Value = serde_json::from_str(&body).unwrap();
    let epochs: Vec<_> = metrics["epochs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|point| point["epoch"].as_u64().unwrap())
        .collect();
    assert_eq!(epochs, [1, 2]);
}

/// The epochs of `feed` until it sends anything else, which is returned too.
async fn epochs_until_other(feed: &mut mpsc::Receiver<Feed>) -> (Vec<u32>, Feed) {
    let mut epochs = Vec::new();
    loop {
        match feed.recv().await.expect("the feed ended early") {
            Feed::Epoch(point) => epochs.push(point.epoch),
            other => return (epochs, other),
        }
    }
}

#[tokio::test]
async fn the_feed_backfills_the_epochs_so_far_then_sends_each_new_one_once_in_order() {
    let operations = OperationsService::in_memory();
    let work = running_training(&operations, 3);
    let mut feed = feed(operations.watch(&work.id).unwrap());

    let (backfill, first) = epochs_until_other(&mut feed).await;
    assert_eq!(backfill, [1, 2, 3]);
    assert!(matches!(first, Feed::Snapshot(_)), "{first:?}");

    // Many epochs in one go coalesce into one snapshot of the watch
    // channel; the feed still sends each.
    for epoch in 4..=20 {
        work.progress.report(mid_epoch(epoch));
        work.progress.report(epoch_end(epoch));
    }
    let (coalesced, next) = epochs_until_other(&mut feed).await;
    assert_eq!(coalesced, (4..=20).collect::<Vec<_>>());
    assert!(matches!(next, Feed::Snapshot(_)), "{next:?}");

    // Then live, as fast as the work goes, to its end.
    let id = work.id.clone();
    let reporting = {
        let operations = operations.clone();
        tokio::spawn(async move {
            for epoch in 21..=EPOCHS {
                work.progress.report(mid_epoch(epoch));
                tokio::task::yield_now().await;
                work.progress.report(epoch_end(epoch));
                tokio::task::yield_now().await;
            }
            operations.complete(&id, serde_json::json!({})).unwrap();
        })
    };
    let mut live = Vec::new();
    let end = loop {
        match feed.recv().await.expect("the feed ended before its end") {
            Feed::Epoch(point) => live.push(point.epoch),
            Feed::Snapshot(_) => {}
            Feed::End(operation) => break operation,
        }
    };
    reporting.await.unwrap();
    assert_eq!(live, (21..=EPOCHS).collect::<Vec<_>>());
    assert_eq!(end.status, OperationStatus::Completed);
    assert!(feed.recv().await.is_none(), "nothing after the end");
}

#[tokio::test]
async fn the_event_stream_names_its_events_and_ends_after_the_terminal_one() {
    let (router, operations) = dashboard(Some(TOKEN));
    let id = completed_training(&operations, 2);
    let response = send(
        &router,
        "GET",
        &format!("/api/operations/{id}/events"),
        &[BEARER],
    )
    .await;
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/event-stream"
    );
    let (_, body) = read(response).await;
    let events: Vec<&str> = body
        .lines()
        .filter_map(|line| line.strip_prefix("event: "))
        .collect();
    assert_eq!(events, ["epoch", "epoch", "end"], "{body}");
    assert!(body.contains("id: 2\n"), "{body}");
    let end = body
        .split("event: end\ndata: ")
        .nth(1)
        .and_then(|rest| rest.lines().next())
        .unwrap();
    let end: serde_json::Value = serde_json::from_str(end).unwrap();
    assert_eq!(end["status"], "completed");
    assert_eq!(end["result"]["strategy"], "demo");
    assert_eq!(end["epochs_run"], 2);
}

#[tokio::test]
async fn the_chart_draws_one_point_per_finished_epoch() {
    let (router, operations) = dashboard(None);
    let id = completed_training(&operations, 5);
    let response = send(
        &router,
        "GET",
        &format!("/api/operations/{id}/chart.svg"),
        &[],
    )
    .await;
    assert_eq!(response.headers()[header::CONTENT_TYPE], "image/svg+xml");
    let (_, svg) = read(response).await;
    let points = svg
        .split("data-series=\"train loss\"")
        .nth(1)
        .and_then(|rest| rest.split("points=\"").nth(1))
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no train loss series in {svg}"));
    assert_eq!(points.split_whitespace().count(), 5, "{points}");
}

#[test]
fn the_login_form_returns_only_to_this_server() {
    assert_eq!(local_path("/operations/x"), "/operations/x");
    assert_eq!(local_path("https://evil.example"), "/");
    assert_eq!(local_path("//evil.example"), "/");
    assert_eq!(local_path("/\\evil.example"), "/");
    assert_eq!(local_path(""), "/");
}
