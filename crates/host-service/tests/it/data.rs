//! `DataHost`: the stored series and their bars.

use chrono::{DateTime, Duration, TimeZone, Utc};
use market_data::{Bar, LocalStore, Timeframe};
use rpc::proto;
use tokio_stream::StreamExt;
use tonic::Code;

use crate::*;

fn bars(count: usize) -> Vec<Bar> {
    let start = Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0).unwrap();
    (0..count)
        .map(|index| {
            let price = 100.0 + (index % 97) as f64 * 0.25;
            Bar {
                timestamp: start + Duration::hours(index as i64),
                open: price,
                high: price + 1.0,
                low: price - 1.0,
                close: price + 0.5,
                volume: index as f64,
            }
        })
        .collect()
}

async fn fetch(
    client: &mut Data,
    symbol: &str,
    timeframe: &str,
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
) -> Result<Vec<proto::BarBatch>, tonic::Status> {
    let stream = client
        .fetch_bars(proto::FetchBarsRequest {
            symbol: symbol.to_owned(),
            timeframe: timeframe.to_owned(),
            start: start.map(rpc::timestamp),
            end: end.map(rpc::timestamp),
        })
        .await?
        .into_inner();
    within(Box::pin(stream.collect::<Result<Vec<_>, _>>())).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_bars_returns_exactly_the_stored_bars_in_range_in_batches() {
    let data = tempfile::tempdir().unwrap();
    let stored = bars(25_000);
    LocalStore::new(data.path())
        .write(&"TEST".parse().unwrap(), Timeframe::H1, &stored)
        .unwrap();
    let host = TestHost::start_with(data.path().to_owned(), 1, None).await;
    let mut client = host.data_with(None).await;

    let series = client
        .list_series(proto::ListSeriesRequest {})
        .await
        .unwrap()
        .into_inner()
        .series;
    assert_eq!(series.len(), 1);
    assert_eq!(
        (
            series[0].symbol.as_str(),
            series[0].timeframe.as_str(),
            series[0].bars
        ),
        ("TEST", "1h", 25_000)
    );
    assert_eq!(series[0].first, Some(rpc::timestamp(stored[0].timestamp)));

    // Inclusive bounds: bars 100 ..= 20_099.
    let start = stored[100].timestamp;
    let end = stored[20_099].timestamp;
    let batches = fetch(&mut client, "TEST", "1H", Some(start), Some(end))
        .await
        .unwrap();
    let sizes: Vec<_> = batches.iter().map(|b| b.bars.len()).collect();
    assert_eq!(sizes, [10_000, 10_000]);
    assert!(batches.iter().all(|b| b.total_bars == 20_000));
    let received: Vec<_> = batches.into_iter().flat_map(|b| b.bars).collect();
    let expected: Vec<_> = stored[100..=20_099]
        .iter()
        .map(|bar| proto::Bar {
            time_ms: bar.timestamp.timestamp_millis(),
            open: bar.open,
            high: bar.high,
            low: bar.low,
            close: bar.close,
            volume: bar.volume,
        })
        .collect();
    assert_eq!(received, expected);

    let all = fetch(&mut client, "TEST", "1h", None, None).await.unwrap();
    assert_eq!(all.iter().map(|b| b.bars.len()).sum::<usize>(), 25_000);

    // Nothing in range: one empty batch that says so.
    let later = stored[24_999].timestamp + Duration::days(1);
    let none = fetch(&mut client, "TEST", "1h", Some(later), None)
        .await
        .unwrap();
    assert_eq!(
        none,
        [proto::BarBatch {
            bars: vec![],
            total_bars: 0
        }]
    );
    host.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_or_missing_series_are_refused_naming_what_is_wrong() {
    let host = TestHost::start().await;
    let mut client = host.data_with(None).await;

    let missing = fetch(&mut client, "NODATA", "1h", None, None)
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    assert!(missing.message().contains("NODATA_1h.csv"), "{missing:?}");

    let symbol = fetch(&mut client, "../etc", "1h", None, None)
        .await
        .unwrap_err();
    assert_eq!(symbol.code(), Code::InvalidArgument);
    assert!(symbol.message().contains("symbol") && symbol.message().contains("../etc"));

    let timeframe = fetch(&mut client, "EURUSD", "2h", None, None)
        .await
        .unwrap_err();
    assert_eq!(timeframe.code(), Code::InvalidArgument);
    assert!(timeframe.message().contains("timeframe") && timeframe.message().contains("2h"));

    let now = Utc::now();
    let backwards = fetch(
        &mut client,
        "EURUSD",
        "1h",
        Some(now),
        Some(now - Duration::days(1)),
    )
    .await
    .unwrap_err();
    assert_eq!(backwards.code(), Code::InvalidArgument);
    host.stop().await.unwrap();
}
