//! Bars kept elsewhere: the [`RemoteBars`] trait the fetching load modes
//! (`tail`, `backfill`, `full`) pull from, and the merge of what they fetch
//! into the local store.
//!
//! The data host client (crate `host-client`) implements the trait over
//! gRPC, so this crate stays free of networking: the process that builds a
//! [`DataManager`](crate::DataManager) hands it a remote with
//! [`with_remote`](crate::DataManager::with_remote).

use std::fmt;

use chrono::{DateTime, TimeDelta, Utc};
use orchestrator_core::CancellationToken;
use serde::{Deserialize, Serialize};

use crate::{
    Bar, DataError, LoadMode, LoadRequest, LocalStore, MergeStats, Symbol, Timeframe, merge_bars,
};

/// The bars one fetch asks for: `[start, end]`, each bound optional.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchRange {
    pub symbol: Symbol,
    pub timeframe: Timeframe,
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
}

/// A batch of fetched bars, oldest first, and how many the whole answer holds.
#[derive(Debug, Clone, PartialEq)]
pub struct BarBatch {
    pub bars: Vec<Bar>,
    pub total_bars: u64,
}

/// A source of bars outside this process.
pub trait RemoteBars: Send + Sync + fmt::Debug {
    /// Where the bars come from (a URL), for messages and summaries.
    fn location(&self) -> &str;

    /// Fetches `range`, handing each batch to `on_batch` in order. Blocking:
    /// it runs on the load's own thread. Stops with
    /// [`DataError::Cancelled`] soon after `token` is cancelled; a failure of
    /// the remote is [`DataError::Remote`].
    fn fetch(
        &self,
        range: &FetchRange,
        token: &CancellationToken,
        on_batch: &mut dyn FnMut(BarBatch) -> Result<(), DataError>,
    ) -> Result<(), DataError>;
}

/// What a fetching load took from the remote and changed in the store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FetchSummary {
    /// The remote's location.
    pub from: String,
    /// Bars the remote sent.
    pub received: usize,
    /// How they changed the stored series.
    pub added: usize,
    pub replaced: usize,
    pub unchanged: usize,
}

/// The range a fetching mode asks for, given the stored series: `tail`
/// wants what follows the last stored bar, `backfill` what precedes the
/// first, `full` everything requested. `None` for `local`.
pub(crate) fn fetch_range(request: &LoadRequest, stored: &[Bar]) -> Option<FetchRange> {
    let range = |start, end| FetchRange {
        symbol: request.symbol.clone(),
        timeframe: request.timeframe,
        start,
        end,
    };
    // The smallest step between two bar times: timestamps are whole milliseconds at most.
    let just = TimeDelta::milliseconds(1);
    match request.mode {
        LoadMode::Local => None,
        LoadMode::Full => Some(range(request.start, request.end)),
        LoadMode::Tail => {
            let after_last = stored.last().map(|bar| bar.timestamp + just);
            Some(range(later(request.start, after_last), request.end))
        }
        LoadMode::Backfill => {
            let before_first = stored.first().map(|bar| bar.timestamp - just);
            Some(range(request.start, earlier(request.end, before_first)))
        }
    }
}

fn later(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    a.max(b)
}

fn earlier(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Fetches what `request`'s mode is missing from `remote`, merges it into
/// the stored series (incoming bars win) and writes the series atomically.
/// Nothing is written when the fetch fails or is cancelled.
/// `on_progress(received, total)` follows each batch.
pub(crate) fn fetch_into_store(
    store: &LocalStore,
    remote: &dyn RemoteBars,
    request: &LoadRequest,
    token: &CancellationToken,
    on_progress: &mut dyn FnMut(usize, u64),
) -> Result<FetchSummary, DataError> {
    let stored = if store.exists(&request.symbol, request.timeframe) {
        store.read(&request.symbol, request.timeframe)?
    } else {
        Vec::new()
    };
    let Some(range) = fetch_range(request, &stored) else {
        return Ok(FetchSummary {
            from: remote.location().to_owned(),
            received: 0,
            added: 0,
            replaced: 0,
            unchanged: 0,
        });
    };
    let mut incoming: Vec<Bar> = Vec::new();
    remote.fetch(&range, token, &mut |batch| {
        incoming.extend(batch.bars);
        on_progress(incoming.len(), batch.total_bars);
        token.check("fetching bars")?;
        Ok(())
    })?;
    token.check("merging bars")?;
    let received = incoming.len();
    let (
        merged,
        MergeStats {
            added,
            replaced,
            unchanged,
            ..
        },
    ) = merge_bars(stored, incoming);
    if added + replaced > 0 {
        token.check("writing bars")?;
        store.write(&request.symbol, request.timeframe, &merged)?;
    }
    Ok(FetchSummary {
        from: remote.location().to_owned(),
        received,
        added,
        replaced,
        unchanged,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 1, 2, hour, 0, 0).unwrap()
    }

    fn bar(hour: u32, close: f64) -> Bar {
        Bar {
            timestamp: at(hour),
            open: close,
            high: close + 1.0,
            low: close - 1.0,
            close,
            volume: 10.0,
        }
    }

    /// A remote holding `bars`, answering ranges in batches of `batch`.
    #[derive(Debug)]
    pub(crate) struct FakeRemote {
        bars: Vec<Bar>,
        batch: usize,
        asked: std::sync::Mutex<Vec<FetchRange>>,
    }

    impl FakeRemote {
        pub(crate) fn new(bars: Vec<Bar>) -> Self {
            Self {
                bars,
                batch: 1000,
                asked: std::sync::Mutex::default(),
            }
        }
    }

    impl RemoteBars for FakeRemote {
        fn location(&self) -> &str {
            "fake://remote"
        }

        fn fetch(
            &self,
            range: &FetchRange,
            token: &CancellationToken,
            on_batch: &mut dyn FnMut(BarBatch) -> Result<(), DataError>,
        ) -> Result<(), DataError> {
            self.asked.lock().unwrap().push(range.clone());
            let wanted: Vec<Bar> = self
                .bars
                .iter()
                .filter(|bar| range.start.is_none_or(|start| bar.timestamp >= start))
                .filter(|bar| range.end.is_none_or(|end| bar.timestamp <= end))
                .cloned()
                .collect();
            for chunk in wanted.chunks(self.batch) {
                token.check("fake fetch")?;
                on_batch(BarBatch {
                    bars: chunk.to_vec(),
                    total_bars: wanted.len() as u64,
                })?;
            }
            Ok(())
        }
    }

    fn setup(stored: &[Bar], remote: &[Bar]) -> (tempfile::TempDir, LocalStore, FakeRemote) {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path());
        if !stored.is_empty() {
            store
                .write(&"EURUSD".parse().unwrap(), Timeframe::H1, stored)
                .unwrap();
        }
        let remote = FakeRemote {
            batch: 2,
            ..FakeRemote::new(remote.to_vec())
        };
        (dir, store, remote)
    }

    fn request(mode: LoadMode) -> LoadRequest {
        LoadRequest {
            symbol: "EURUSD".parse().unwrap(),
            timeframe: Timeframe::H1,
            start: None,
            end: None,
            mode,
        }
    }

    #[test]
    fn tail_fetches_only_what_follows_the_stored_series() {
        let remote_bars: Vec<Bar> = (0..8).map(|h| bar(h, 100.0 + f64::from(h))).collect();
        let (_dir, store, remote) = setup(&remote_bars[..5], &remote_bars);
        let mut progress = Vec::new();
        let summary = fetch_into_store(
            &store,
            &remote,
            &request(LoadMode::Tail),
            &CancellationToken::new(),
            &mut |received, total| progress.push((received, total)),
        )
        .unwrap();
        assert_eq!(
            remote.asked.lock().unwrap()[0].start,
            Some(at(4) + TimeDelta::milliseconds(1))
        );
        assert_eq!(
            (summary.received, summary.added, summary.replaced),
            (3, 3, 0)
        );
        assert_eq!(progress, [(2, 3), (3, 3)]);
        let series = store
            .read(&"EURUSD".parse().unwrap(), Timeframe::H1)
            .unwrap();
        assert_eq!(series, remote_bars);
    }

    #[test]
    fn backfill_fetches_only_what_precedes_it_and_full_replaces_changed_bars() {
        let remote_bars: Vec<Bar> = (0..6).map(|h| bar(h, 100.0)).collect();
        let (_dir, store, remote) = setup(&[bar(3, 100.0), bar(4, 99.0)], &remote_bars);
        let backfill = fetch_into_store(
            &store,
            &remote,
            &request(LoadMode::Backfill),
            &CancellationToken::new(),
            &mut |_, _| {},
        )
        .unwrap();
        assert_eq!((backfill.received, backfill.added), (3, 3));
        let full = fetch_into_store(
            &store,
            &remote,
            &request(LoadMode::Full),
            &CancellationToken::new(),
            &mut |_, _| {},
        )
        .unwrap();
        assert_eq!(
            (full.received, full.added, full.replaced, full.unchanged),
            (6, 1, 1, 4)
        );
        let series = store
            .read(&"EURUSD".parse().unwrap(), Timeframe::H1)
            .unwrap();
        assert_eq!(series, remote_bars);
    }

    #[test]
    fn a_cancelled_fetch_leaves_the_store_untouched() {
        let remote_bars: Vec<Bar> = (0..8).map(|h| bar(h, 100.0)).collect();
        let (dir, store, remote) = setup(&remote_bars[..2], &remote_bars);
        let path = dir.path().join("EURUSD_1h.csv");
        let before = std::fs::read(&path).unwrap();
        let token = CancellationToken::new();
        let error = fetch_into_store(
            &store,
            &remote,
            &request(LoadMode::Tail),
            &token,
            &mut |_, _| {
                token.cancel(orchestrator_core::CancelReason::UserRequest(None));
            },
        )
        .unwrap_err();
        assert!(matches!(error, DataError::Cancelled(_)), "{error}");
        assert_eq!(std::fs::read(&path).unwrap(), before);
    }

    #[test]
    fn tail_of_a_series_the_store_lacks_fetches_everything_requested() {
        let (_dir, store, remote) = setup(&[], &[bar(1, 1.0)]);
        let mut tail = request(LoadMode::Tail);
        tail.start = Some(at(0));
        fetch_into_store(
            &store,
            &remote,
            &tail,
            &CancellationToken::new(),
            &mut |_, _| {},
        )
        .unwrap();
        assert_eq!(remote.asked.lock().unwrap()[0].start, Some(at(0)));
        assert_eq!(
            store
                .read(&"EURUSD".parse().unwrap(), Timeframe::H1)
                .unwrap(),
            [bar(1, 1.0)]
        );
    }
}
