//! `DataManager` and its `DataAdapter`: loading a series as a managed
//! operation with per-segment progress and cancellation.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use orchestrator_core::{
    BoxError, CancellationToken, ConfigError, HostServiceConfig, OperationContext, OperationError,
    OperationId, OperationKind, OperationsService, ProgressReporter, ServiceAdapter,
    ServiceOrchestrator,
};
use progress::{
    DataContext, DataProgressRenderer, Items, ProgressContext, ProgressRenderer, ProgressState,
    Step,
};
use serde::{Deserialize, Serialize};
use tokio_util::task::TaskTracker;

use crate::remote::{FetchSummary, RemoteBars, fetch_into_store};
use crate::{
    Bar, BarSource, DataError, GapReport, LocalStore, Symbol, Timeframe, find_gaps, resample,
};

/// The service prefix: `USE_DATA_HOST_SERVICE`, `DATA_HOST_SERVICE_URL`.
pub const DATA_SERVICE: &str = "DATA";
/// Where the data host listens unless `DATA_HOST_SERVICE_URL` says otherwise.
pub const DEFAULT_DATA_HOST_URL: &str = "http://127.0.0.1:50052";
/// Bars read between two progress updates and cancellation checks.
pub const DEFAULT_SEGMENT_BARS: usize = 10_000;

/// How a load gets its bars. With the local adapter all four read the store;
/// with the host adapter `tail`, `backfill` and `full` first fetch the
/// missing bars from the data host into the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadMode {
    #[default]
    Local,
    /// Newer bars than the store has.
    Tail,
    /// Older bars than the store has.
    Backfill,
    /// Everything in the requested range.
    Full,
}

impl LoadMode {
    pub fn as_str(self) -> &'static str {
        match self {
            LoadMode::Local => "local",
            LoadMode::Tail => "tail",
            LoadMode::Backfill => "backfill",
            LoadMode::Full => "full",
        }
    }
}

impl std::fmt::Display for LoadMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for LoadMode {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        [
            LoadMode::Local,
            LoadMode::Tail,
            LoadMode::Backfill,
            LoadMode::Full,
        ]
        .into_iter()
        .find(|mode| mode.as_str().eq_ignore_ascii_case(text.trim()))
        .ok_or_else(|| {
            format!("unknown load mode {text:?}; expected local, tail, backfill or full")
        })
    }
}

/// What to load.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadRequest {
    pub symbol: Symbol,
    pub timeframe: Timeframe,
    /// First bar to keep (inclusive).
    pub start: Option<DateTime<Utc>>,
    /// Last bar to keep (inclusive).
    pub end: Option<DateTime<Utc>>,
    #[serde(default)]
    pub mode: LoadMode,
}

/// The result summary of a load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadSummary {
    pub symbol: Symbol,
    pub timeframe: Timeframe,
    pub mode: LoadMode,
    pub bars: usize,
    pub first: Option<DateTime<Utc>>,
    pub last: Option<DateTime<Utc>>,
    pub source: BarSource,
    pub gaps: GapReport,
    /// What a fetching mode took from the data host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fetched: Option<FetchSummary>,
}

/// Bars with their summary.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedSeries {
    pub bars: Vec<Bar>,
    pub summary: LoadSummary,
}

/// Where loads are served from: the local store, after fetching missing
/// bars from a data host for the fetching modes in host mode.
#[derive(Debug, Clone)]
pub struct DataAdapter {
    store: LocalStore,
    host_url: Option<String>,
    remote: Option<Arc<dyn RemoteBars>>,
    segment_bars: usize,
}

/// Share of the progress bar the fetch takes before the store is read.
const FETCH_SHARE: f64 = 50.0;

impl DataAdapter {
    /// Serves from `store`. In host mode (`config`), fetching modes also need
    /// a remote: see [`with_remote`](Self::with_remote).
    pub fn new(store: LocalStore, config: &HostServiceConfig) -> Self {
        Self {
            store,
            host_url: config.url().map(str::to_owned),
            remote: None,
            segment_bars: DEFAULT_SEGMENT_BARS,
        }
    }

    /// Fetches the missing bars of `tail`, `backfill` and `full` loads from
    /// `remote` (in host mode).
    pub fn with_remote(mut self, remote: Arc<dyn RemoteBars>) -> Self {
        self.remote = Some(remote);
        self
    }

    pub fn store(&self) -> &LocalStore {
        &self.store
    }

    /// Loads one series, blocking; checks `token` between segments and
    /// reports a [`DataContext`] after each.
    pub fn load(
        &self,
        request: &LoadRequest,
        token: &CancellationToken,
        progress: &ProgressReporter,
    ) -> Result<LoadedSeries, DataError> {
        let report_from = |start: f64, span: f64| {
            move |bars: usize, segment: u32, segments: u32, fraction: f64| {
                progress.report(ProgressState {
                    percentage: start + span * fraction,
                    items: Some(Items {
                        processed: bars as u64,
                        total: None,
                    }),
                    context: ProgressContext::Data(DataContext {
                        symbol: Some(request.symbol.to_string()),
                        timeframe: Some(request.timeframe.to_string()),
                        mode: Some(request.mode.to_string()),
                        segment: (segments > 0).then(|| Step::new(segment, segments)),
                        bars_loaded: bars as u64,
                    }),
                    ..ProgressState::default()
                });
            }
        };
        let fetched = self.fetch_missing(request, token, &report_from(0.0, FETCH_SHARE))?;
        let report = if fetched.is_some() {
            report_from(FETCH_SHARE, 100.0 - FETCH_SHARE)
        } else {
            report_from(0.0, 100.0)
        };

        let source = self.store.source_for(&request.symbol, request.timeframe)?;
        let source_timeframe = source.timeframe(request.timeframe);
        let mut reader = self.store.open(&request.symbol, source_timeframe)?;
        let mut bars: Vec<Bar> = Vec::new();
        let mut segment = 0u32;
        report(0, 0, 0, 0.0);
        loop {
            token.check("reading bars")?;
            let Some(chunk) = reader.next_segment(self.segment_bars)? else {
                break;
            };
            segment += 1;
            bars.extend(chunk.into_iter().filter(|bar| in_range(bar, request)));
            let fraction = reader.bytes_read() as f64 / reader.total_bytes().max(1) as f64;
            // Segments so far, scaled up by the bytes still unread.
            let estimated_segments =
                ((f64::from(segment) / fraction.max(f64::EPSILON)).ceil() as u32).max(segment);
            report(bars.len(), segment, estimated_segments, fraction);
        }
        token.check("resampling")?;
        if source_timeframe != request.timeframe {
            bars = resample(&bars, source_timeframe, request.timeframe)?;
        }
        token.check("finding gaps")?;
        let gaps = find_gaps(&bars, request.timeframe);
        report(bars.len(), segment, segment, 1.0);
        let summary = LoadSummary {
            symbol: request.symbol.clone(),
            timeframe: request.timeframe,
            mode: request.mode,
            bars: bars.len(),
            first: bars.first().map(|bar| bar.timestamp),
            last: bars.last().map(|bar| bar.timestamp),
            source,
            gaps,
            fetched,
        };
        Ok(LoadedSeries { bars, summary })
    }

    /// For a fetching mode in host mode, brings the missing bars from the
    /// remote into the store, reporting each batch as a segment.
    fn fetch_missing(
        &self,
        request: &LoadRequest,
        token: &CancellationToken,
        report: &dyn Fn(usize, u32, u32, f64),
    ) -> Result<Option<FetchSummary>, DataError> {
        if request.mode == LoadMode::Local || self.host_url.is_none() {
            return Ok(None);
        }
        let Some(remote) = &self.remote else {
            return Err(DataError::NoDataHost {
                mode: request.mode.as_str(),
            });
        };
        let mut batches = 0u32;
        let summary = fetch_into_store(
            &self.store,
            remote.as_ref(),
            request,
            token,
            &mut |received, total| {
                batches += 1;
                // Batches so far, scaled up by the share of bars still to come.
                let fraction = received as f64 / total.max(1) as f64;
                let estimated =
                    ((f64::from(batches) / fraction.max(f64::EPSILON)).ceil() as u32).max(batches);
                report(received, batches, estimated, fraction.min(1.0));
            },
        )?;
        Ok(Some(summary))
    }
}

fn in_range(bar: &Bar, request: &LoadRequest) -> bool {
    request.start.is_none_or(|start| bar.timestamp >= start)
        && request.end.is_none_or(|end| bar.timestamp <= end)
}

impl ServiceAdapter for DataAdapter {
    fn name(&self) -> &str {
        if self.remote.is_some() {
            "data-host"
        } else {
            "local-store"
        }
    }

    async fn health(&self) -> Result<(), BoxError> {
        if let (Some(url), None) = (&self.host_url, &self.remote) {
            return Err(format!("no data host client for {url} in this process").into());
        }
        let dir = self.store.dir();
        match std::fs::metadata(dir) {
            Ok(meta) if meta.is_dir() => Ok(()),
            Ok(_) => Err(format!("data directory {} is not a directory", dir.display()).into()),
            Err(error) => Err(format!("data directory {}: {error}", dir.display()).into()),
        }
    }
}

/// Loads market data as managed operations (`data_load`).
#[derive(Debug)]
pub struct DataManager {
    operations: OperationsService,
    adapter: Arc<DataAdapter>,
    config: HostServiceConfig,
    tasks: TaskTracker,
}

impl DataManager {
    pub fn new(
        operations: OperationsService,
        store: LocalStore,
        config: HostServiceConfig,
    ) -> Self {
        Self {
            adapter: Arc::new(DataAdapter::new(store, &config)),
            operations,
            config,
            tasks: TaskTracker::new(),
        }
    }

    /// Adapter mode from `USE_DATA_HOST_SERVICE` / `DATA_HOST_SERVICE_URL`.
    pub fn from_env(operations: OperationsService, store: LocalStore) -> Result<Self, ConfigError> {
        let config = HostServiceConfig::from_env(DATA_SERVICE, DEFAULT_DATA_HOST_URL)?;
        Ok(Self::new(operations, store, config))
    }

    /// Fetches the missing bars of `tail`, `backfill` and `full` loads from
    /// `remote` when in host mode (see [`DataAdapter::with_remote`]).
    pub fn with_remote(mut self, remote: Arc<dyn RemoteBars>) -> Self {
        let adapter = Arc::make_mut(&mut self.adapter);
        adapter.remote = Some(remote);
        self
    }

    /// How many bars each segment holds (fewer means more progress updates).
    pub fn with_segment_bars(mut self, bars: usize) -> Self {
        Arc::make_mut(&mut self.adapter).segment_bars = bars.max(1);
        self
    }

    /// Starts loading a series; the operation's result is its [`LoadSummary`].
    pub fn load(&self, request: LoadRequest) -> Result<OperationId, OperationError> {
        let params = serde_json::to_value(&request).expect("a load request serialises to JSON");
        let adapter = Arc::clone(&self.adapter);
        self.start_managed_operation(
            OperationKind::DataLoad,
            params,
            move |context: OperationContext| async move {
                tokio::task::spawn_blocking(move || {
                    adapter
                        .load(&request, &context.token, &context.progress)
                        .map(|loaded| loaded.summary)
                })
                .await
                .unwrap_or_else(|join| std::panic::resume_unwind(join.into_panic()))
                .map_err(BoxError::from)
            },
        )
    }
}

impl ServiceOrchestrator for DataManager {
    type Adapter = DataAdapter;

    fn operations(&self) -> &OperationsService {
        &self.operations
    }
    fn adapter(&self) -> &DataAdapter {
        &self.adapter
    }
    fn host_config(&self) -> &HostServiceConfig {
        &self.config
    }
    fn renderer(&self) -> Arc<dyn ProgressRenderer> {
        Arc::new(DataProgressRenderer)
    }
    fn tasks(&self) -> &TaskTracker {
        &self.tasks
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use orchestrator_core::{CancelReason, Operation, OperationStatus};

    use super::*;

    fn sample_store() -> LocalStore {
        LocalStore::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data"))
    }

    fn request(symbol: &str, timeframe: Timeframe) -> LoadRequest {
        LoadRequest {
            symbol: symbol.parse().unwrap(),
            timeframe,
            start: None,
            end: None,
            mode: LoadMode::Local,
        }
    }

    async fn run_to_end(manager: &DataManager, request: LoadRequest) -> Vec<Operation> {
        let id = manager.load(request).unwrap();
        let mut watch = manager.operations().watch(&id).unwrap();
        let mut snapshots = Vec::new();
        while let Some(snapshot) = watch.next().await {
            snapshots.push(snapshot);
        }
        snapshots
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_load_reports_segments_and_returns_its_summary() {
        let manager = DataManager::new(
            OperationsService::in_memory(),
            sample_store(),
            HostServiceConfig::local(DATA_SERVICE),
        )
        .with_segment_bars(1000);
        let snapshots = run_to_end(&manager, request("EURUSD", Timeframe::H1)).await;
        let done = snapshots.last().unwrap();
        assert_eq!(done.status, OperationStatus::Completed, "{:?}", done.error);
        let summary: LoadSummary = serde_json::from_value(done.result.clone().unwrap()).unwrap();
        assert_eq!(summary.bars, 6225);
        assert_eq!(
            (
                summary.gaps.weekend,
                summary.gaps.closures,
                summary.gaps.holes
            ),
            (51, 1, 0)
        );
        let ProgressContext::Data(context) = &done.progress.context else {
            panic!("not a data context: {:?}", done.progress.context)
        };
        assert_eq!(context.segment, Some(Step::new(7, 7)));
        assert_eq!(context.bars_loaded, 6225);
        assert_eq!(
            done.progress.message,
            "Loading EURUSD [1h] (local) [segment 7/7] 6225 bars ETA 0s"
        );
    }

    #[tokio::test]
    async fn a_date_range_and_a_missing_timeframe_are_served() {
        let manager = DataManager::new(
            OperationsService::in_memory(),
            sample_store(),
            HostServiceConfig::local(DATA_SERVICE),
        );
        let mut weekly = request("SP500", Timeframe::W1);
        weekly.start = Some("2018-01-01T00:00:00Z".parse().unwrap());
        weekly.end = Some("2018-12-31T23:59:59Z".parse().unwrap());
        let done = run_to_end(&manager, weekly).await.pop().unwrap();
        let summary: LoadSummary = serde_json::from_value(done.result.unwrap()).unwrap();
        assert!(matches!(
            summary.source,
            BarSource::Resampled {
                from: Timeframe::D1,
                ..
            }
        ));
        assert_eq!(summary.first, Some("2018-01-01T00:00:00Z".parse().unwrap()));
        assert_eq!(summary.bars, 53);
    }

    #[test]
    fn cancelling_stops_between_segments() {
        let operations = OperationsService::in_memory();
        let context = operations
            .create(OperationKind::DataLoad, serde_json::json!({}), None)
            .unwrap();
        let adapter = DataAdapter {
            segment_bars: 100,
            ..DataAdapter::new(sample_store(), &HostServiceConfig::local(DATA_SERVICE))
        };
        context.token.cancel(CancelReason::UserRequest(None));
        let error = adapter
            .load(
                &request("BTCUSD", Timeframe::H1),
                &context.token,
                &context.progress,
            )
            .unwrap_err();
        assert!(
            matches!(&error, DataError::Cancelled(cancelled) if cancelled.stage == "reading bars"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn fetching_modes_on_a_data_host_without_a_client_fail_with_a_clear_message() {
        let config = HostServiceConfig::host(DATA_SERVICE, "http://127.0.0.1:9").unwrap();
        let manager = DataManager::new(OperationsService::in_memory(), sample_store(), config);
        let mut tail = request("EURUSD", Timeframe::H1);
        tail.mode = LoadMode::Tail;
        let done = run_to_end(&manager, tail).await.pop().unwrap();
        assert_eq!(done.status, OperationStatus::Failed);
        assert_eq!(
            done.error.as_deref(),
            Some(
                "loading in tail mode needs a data host (set USE_DATA_HOST_SERVICE=true and \
                 DATA_HOST_SERVICE_URL), or use --mode local"
            )
        );
        assert!(!manager.health_check().await.healthy);
    }

    #[tokio::test]
    async fn a_tail_load_on_a_data_host_fetches_the_missing_bars_then_reads_the_store() {
        let host_bars = sample_store()
            .read(&"EURUSD".parse().unwrap(), Timeframe::H1)
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path());
        let stored = host_bars.len() - 2500;
        store
            .write(
                &"EURUSD".parse().unwrap(),
                Timeframe::H1,
                &host_bars[..stored],
            )
            .unwrap();
        let config = HostServiceConfig::host(DATA_SERVICE, "http://127.0.0.1:9").unwrap();
        let manager = DataManager::new(OperationsService::in_memory(), store.clone(), config)
            .with_remote(Arc::new(crate::remote::tests::FakeRemote::new(
                host_bars.clone(),
            )));
        let mut tail = request("EURUSD", Timeframe::H1);
        tail.mode = LoadMode::Tail;
        let snapshots = run_to_end(&manager, tail).await;
        let done = snapshots.last().unwrap();
        assert_eq!(done.status, OperationStatus::Completed, "{:?}", done.error);
        let summary: LoadSummary = serde_json::from_value(done.result.clone().unwrap()).unwrap();
        let fetched = summary.fetched.unwrap();
        assert_eq!((fetched.received, fetched.added), (2500, 2500));
        assert_eq!(summary.bars, host_bars.len());
        assert_eq!(
            store
                .read(&"EURUSD".parse().unwrap(), Timeframe::H1)
                .unwrap(),
            host_bars
        );
        assert!(manager.health_check().await.healthy);
    }

    #[test]
    fn load_modes_parse_in_any_case() {
        assert_eq!("Backfill".parse(), Ok(LoadMode::Backfill));
        assert_eq!(
            "sideways".parse::<LoadMode>(),
            Err(
                r#"unknown load mode "sideways"; expected local, tail, backfill or full"#
                    .to_owned()
            )
        );
    }
}
