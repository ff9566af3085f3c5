//! The `DataHost` service: the series of the host's data store and their
//! bars, oldest first, in batches.

use std::path::PathBuf;

use chrono::{DateTime, Utc};

use market_data::{Bar, DataError, LocalStore, Symbol, Timeframe};
use rpc::proto::{self, data_host_server::DataHost};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

/// Bars per `BarBatch`: about 0.5 MB on the wire, far below the message limit.
pub(crate) const BATCH_BARS: usize = 10_000;

/// The `DataHost` gRPC service over one data directory.
#[derive(Debug, Clone)]
pub(crate) struct DataService {
    store: LocalStore,
}

impl DataService {
    pub(crate) fn new(data_dir: PathBuf) -> Self {
        Self {
            store: LocalStore::new(data_dir),
        }
    }

    /// Runs blocking store work off the async threads.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(LocalStore) -> Result<T, DataError> + Send + 'static,
    ) -> Result<T, Status> {
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || work(store)).await {
            Ok(result) => result.map_err(status_of),
            Err(err) => Err(Status::internal(format!(
                "reading the data store stopped: {err}"
            ))),
        }
    }
}

/// The status a store error answers with; the message keeps the path.
fn status_of(error: DataError) -> Status {
    let message = error.to_string();
    match error {
        DataError::NotFound { .. } | DataError::MissingDataDir { .. } => Status::not_found(message),
        DataError::Symbol(_) | DataError::Timeframe(_) => Status::invalid_argument(message),
        DataError::Invalid { .. } | DataError::InvalidFile { .. } => {
            Status::failed_precondition(format!("the host's data is invalid: {message}"))
        }
        DataError::Cancelled(_) => Status::cancelled(message),
        _ => Status::internal(message),
    }
}

/// A checked `FetchBars` request.
#[derive(Debug)]
pub(crate) struct FetchRequest {
    pub(crate) symbol: Symbol,
    pub(crate) timeframe: Timeframe,
    pub(crate) start: Option<DateTime<Utc>>,
    pub(crate) end: Option<DateTime<Utc>>,
}

/// Checks a `FetchBars` request; errors name the field.
pub(crate) fn fetch_request(request: proto::FetchBarsRequest) -> Result<FetchRequest, Status> {
    let symbol: Symbol = request
        .symbol
        .parse()
        .map_err(|err| Status::invalid_argument(format!("FetchBarsRequest.symbol: {err}")))?;
    let timeframe: Timeframe = request
        .timeframe
        .parse()
        .map_err(|err| Status::invalid_argument(format!("FetchBarsRequest.timeframe: {err}")))?;
    let start = request
        .start
        .map(|at| rpc::datetime(at, "FetchBarsRequest.start"))
        .transpose()?;
    let end = request
        .end
        .map(|at| rpc::datetime(at, "FetchBarsRequest.end"))
        .transpose()?;
    if let (Some(start), Some(end)) = (start, end)
        && start > end
    {
        return Err(Status::invalid_argument(format!(
            "FetchBarsRequest.start ({start}) is after FetchBarsRequest.end ({end})"
        )));
    }
    Ok(FetchRequest {
        symbol,
        timeframe,
        start,
        end,
    })
}

#[tonic::async_trait]
impl DataHost for DataService {
    type FetchBarsStream = ReceiverStream<Result<proto::BarBatch, Status>>;

    async fn list_series(
        &self,
        _request: Request<proto::ListSeriesRequest>,
    ) -> Result<Response<proto::ListSeriesResponse>, Status> {
        let series = self.blocking(|store| store.list()).await?;
        let series = series
            .into_iter()
            .map(|info| proto::SeriesInfo {
                symbol: info.symbol.to_string(),
                timeframe: info.timeframe.to_string(),
                bars: info.bars as u64,
                first: Some(rpc::timestamp(info.first)),
                last: Some(rpc::timestamp(info.last)),
            })
            .collect();
        Ok(Response::new(proto::ListSeriesResponse { series }))
    }

    async fn fetch_bars(
        &self,
        request: Request<proto::FetchBarsRequest>,
    ) -> Result<Response<Self::FetchBarsStream>, Status> {
        let FetchRequest {
            symbol,
            timeframe,
            start,
            end,
        } = fetch_request(request.into_inner())?;
        let mut bars = self
            .blocking(move |store| store.read(&symbol, timeframe))
            .await?;
        bars.retain(|bar| {
            start.is_none_or(|start| bar.timestamp >= start)
                && end.is_none_or(|end| bar.timestamp <= end)
        });

        let total_bars = bars.len() as u64;
        let (sender, receiver) = mpsc::channel(2);
        tokio::spawn(async move {
            // An empty answer is one empty batch, so the caller still learns the total.
            let batches: Vec<&[Bar]> = if bars.is_empty() {
                vec![&[]]
            } else {
                bars.chunks(BATCH_BARS).collect()
            };
            for batch in batches {
                let batch = proto::BarBatch {
                    bars: batch.iter().map(wire_bar).collect(),
                    total_bars,
                };
                if sender.send(Ok(batch)).await.is_err() {
                    // The caller went away.
                    return;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(receiver)))
    }
}

fn wire_bar(bar: &Bar) -> proto::Bar {
    proto::Bar {
        time_ms: bar.timestamp.timestamp_millis(),
        open: bar.open,
        high: bar.high,
        low: bar.low,
        close: bar.close,
        volume: bar.volume,
    }
}
