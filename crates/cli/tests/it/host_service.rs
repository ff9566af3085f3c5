//! `trdr host-service` end to end: a real host process driven by the
//! generated gRPC clients, stopped with SIGTERM mid-training.

use std::time::Duration;

use rpc::auth::SendToken;
use rpc::proto::data_host_client::DataHostClient;
use rpc::proto::training_host_client::TrainingHostClient;
use rpc::proto::{self, training_event::Event};
use tokio_stream::{Stream, StreamExt as _};

use super::*;

/// Generous: CI machines are small and busy.
const WAIT: Duration = Duration::from_secs(120);

fn host(state: &Path, models: &Path, token: &str) -> Listening {
    let mut command = trdr(state);
    command
        .env("TRDR_AUTH_TOKEN", token)
        .args(["host-service", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(sample_data())
        .arg("--models-dir")
        .arg(models);
    Listening::start(command)
}

async fn next_event<E: std::fmt::Debug>(
    stream: &mut (impl Stream<Item = Result<proto::TrainingEvent, E>> + Unpin),
) -> Option<Event> {
    tokio::time::timeout(WAIT, stream.next())
        .await
        .expect("timed out waiting for an event")
        .map(|event| event.unwrap().event.expect("an event"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_service_trains_serves_bars_and_stops_cleanly_on_sigterm() {
    let state = tempfile::tempdir().unwrap();
    let models = tempfile::tempdir().unwrap();
    let mut host = host(state.path(), models.path(), "s3cret");
    let token = SendToken::new(Some("s3cret")).unwrap();

    // The token comes from TRDR_AUTH_TOKEN.
    let mut data = DataHostClient::connect(host.url.clone()).await.unwrap();
    let refused = data
        .list_series(proto::ListSeriesRequest {})
        .await
        .unwrap_err();
    assert!(
        refused.message().contains("needs an auth token"),
        "{refused:?}"
    );

    // The bars of the sample data, all of them.
    let mut batches = data
        .fetch_bars(token.request(proto::FetchBarsRequest {
            symbol: "EURUSD".into(),
            timeframe: "1h".into(),
            start: None,
            end: None,
        }))
        .await
        .unwrap()
        .into_inner();
    let mut received = 0;
    while let Some(batch) = batches.message().await.unwrap() {
        received += batch.bars.len();
    }
    let stored = std::fs::read_to_string(sample_data().join("EURUSD_1h.csv"))
        .unwrap()
        .lines()
        .count()
        - 1;
    assert_eq!(received, stored);

    // A training far too long to finish, stopped by SIGTERM.
    let mut strategy =
        strategy::StrategyConfig::from_file(&repo().join("strategies/eurusd_mlp.yaml")).unwrap();
    strategy.model.early_stopping_patience = None;
    let mut training = TrainingHostClient::connect(host.url.clone()).await.unwrap();
    let mut events = training
        .start_training(token.request(proto::StartTrainingRequest {
            strategy_json: serde_json::to_string(&strategy).unwrap(),
            start: None,
            end: None,
            options: Some(proto::TrainingOptions {
                epochs: Some(100_000),
                progress_interval_ms: 1,
                ..proto::TrainingOptions::default()
            }),
            resume_checkpoint: None,
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(matches!(
        next_event(&mut events).await,
        Some(Event::Accepted(_))
    ));
    loop {
        if let Some(Event::Progress(progress)) = next_event(&mut events).await
            && let Some(proto::progress::Context::Training(context)) = progress.context
            && context.epoch.is_some()
        {
            break;
        }
    }

    host.signal("-TERM");
    let end = loop {
        match next_event(&mut events).await {
            Some(Event::Progress(_) | Event::CheckpointSaved(_)) => {}
            end => break end,
        }
    };
    let Some(Event::Cancelled(cancelled)) = end else {
        panic!("not cancelled: {end:?}");
    };
    assert_eq!(
        cancelled.reason.unwrap().kind(),
        proto::cancel_reason::Kind::Shutdown
    );
    let status = tokio::task::spawn_blocking(move || host.wait())
        .await
        .unwrap();
    assert_eq!(status.code(), Some(0));
}
