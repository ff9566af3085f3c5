//! [`DataHostClient`]: fetches bars from a data host for the fetching load
//! modes, as market-data's [`RemoteBars`].

use std::sync::Arc;

use chrono::{DateTime, Utc};
use market_data::{Bar, BarBatch, DataError, DataManager, FetchRange, LocalStore, RemoteBars};
use orchestrator_core::{CancellationToken, ConfigError, OperationsService, ServiceOrchestrator};
use rpc::proto::data_host_client::DataHostClient as WireClient;
use rpc::proto::{self, FetchBarsRequest};

use crate::{ConnectOptions, HostEndpoint, HostError, HostKind};

/// The client of a data host (served by `trdr host-service`).
#[derive(Debug, Clone)]
pub struct DataHostClient {
    endpoint: HostEndpoint,
}

impl DataHostClient {
    pub fn new(url: impl Into<String>, options: ConnectOptions) -> Self {
        Self {
            endpoint: HostEndpoint::new(HostKind::Data, url, options),
        }
    }

    pub fn url(&self) -> &str {
        self.endpoint.url()
    }

    /// Streams the bars of `range`, oldest first, to `on_batch`; stops soon
    /// after `token` is cancelled, with [`DataError::Cancelled`].
    pub async fn fetch_bars(
        &self,
        range: &FetchRange,
        token: &CancellationToken,
        on_batch: &mut dyn FnMut(BarBatch) -> Result<(), DataError>,
    ) -> Result<(), DataError> {
        const STAGE: &str = "fetching bars";
        let remote_error = |error: HostError| DataError::Remote {
            symbol: range.symbol.clone(),
            timeframe: range.timeframe,
            source: Box::new(error),
        };
        let Some(connection) = self.endpoint.connect(token).await.map_err(remote_error)? else {
            return Err(token.cancelled_error(STAGE).into());
        };
        let mut client = WireClient::new(connection)
            .max_decoding_message_size(rpc::MAX_MESSAGE_BYTES)
            .max_encoding_message_size(rpc::MAX_MESSAGE_BYTES);
        let request = FetchBarsRequest {
            symbol: range.symbol.to_string(),
            timeframe: range.timeframe.to_string(),
            start: range.start.map(rpc::timestamp),
            end: range.end.map(rpc::timestamp),
        };
        let mut stream = tokio::select! {
            () = token.cancelled() => return Err(token.cancelled_error(STAGE).into()),
            answer = client.fetch_bars(request) => answer
                .map_err(|status| remote_error(self.endpoint.status_error(&status)))?
                .into_inner(),
        };
        loop {
            let batch = tokio::select! {
                () = token.cancelled() => return Err(token.cancelled_error(STAGE).into()),
                message = stream.message() => message
                    .map_err(|status| remote_error(self.endpoint.status_error(&status)))?,
            };
            let Some(batch) = batch else {
                return Ok(());
            };
            let bars = batch
                .bars
                .into_iter()
                .map(|bar| self.bar(bar))
                .collect::<Result<Vec<_>, _>>()
                .map_err(remote_error)?;
            on_batch(BarBatch {
                bars,
                total_bars: batch.total_bars,
            })?;
        }
    }

    fn bar(&self, bar: proto::Bar) -> Result<Bar, HostError> {
        let timestamp: DateTime<Utc> =
            DateTime::from_timestamp_millis(bar.time_ms).ok_or_else(|| HostError::Protocol {
                kind: HostKind::Data,
                url: self.url().to_owned(),
                message: format!("bar time {} ms is out of range", bar.time_ms),
            })?;
        Ok(Bar {
            timestamp,
            open: bar.open,
            high: bar.high,
            low: bar.low,
            close: bar.close,
            volume: bar.volume,
        })
    }
}

impl RemoteBars for DataHostClient {
    fn location(&self) -> &str {
        self.url()
    }

    /// Blocks on [`fetch_bars`](Self::fetch_bars). Call it where blocking is
    /// allowed inside a Tokio runtime, such as the blocking thread a
    /// `DataManager` load runs on.
    fn fetch(
        &self,
        range: &FetchRange,
        token: &CancellationToken,
        on_batch: &mut dyn FnMut(BarBatch) -> Result<(), DataError>,
    ) -> Result<(), DataError> {
        tokio::runtime::Handle::current().block_on(self.fetch_bars(range, token, on_batch))
    }
}

/// [`DataManager::from_env`], with a [`DataHostClient`] attached when the
/// environment selects a data host (`USE_DATA_HOST_SERVICE`), so `tail`,
/// `backfill` and `full` loads fetch from it.
pub fn data_manager_from_env(
    operations: OperationsService,
    store: LocalStore,
) -> Result<DataManager, ConfigError> {
    let manager = DataManager::from_env(operations, store)?;
    let remote = manager
        .host_config()
        .url()
        .map(|url| Arc::new(DataHostClient::new(url, ConnectOptions::from_env())));
    Ok(match remote {
        Some(remote) => manager.with_remote(remote),
        None => manager,
    })
}
