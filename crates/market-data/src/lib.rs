//! OHLCV market data: bars, the local CSV store, validation, import,
//! resampling, and `DataManager`.
//!
//! A [`LocalStore`] keeps one CSV file per series
//! (`{dir}/{SYMBOL}_{timeframe}.csv`); every read is validated with errors
//! naming file and line, every write is atomic. [`DataManager`] loads a
//! series as a managed operation (see `orchestrator-core`) with per-segment
//! progress and cancellation.
//!
//! ```
//! use market_data::{LocalStore, Symbol, Timeframe, find_gaps, resample};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data");
//! let store = LocalStore::new(dir);
//! let symbol: Symbol = "EURUSD".parse()?;
//! let hourly = store.read(&symbol, "1H".parse()?)?;
//! assert_eq!(hourly.len(), 6225);
//!
//! let daily = resample(&hourly, Timeframe::H1, Timeframe::D1)?;
//! let gaps = find_gaps(&daily, Timeframe::D1);
//! assert_eq!(gaps.holes().count(), 0);
//! # Ok(())
//! # }
//! ```

mod bar;
mod error;
#[cfg(any(test, fuzzing))]
pub mod fuzzing;
mod gaps;
mod import;
mod manager;
mod remote;
mod resample;
mod store;
mod timeframe;
mod validate;

pub use bar::{Bar, InvalidSymbol, Symbol};
pub use error::DataError;
pub use gaps::{Gap, GapKind, GapReport, find_gaps};
pub use import::{
    ColumnMap, ColumnRef, EpochUnit, ImportOptions, Imported, InvalidImportOption, MergeStats,
    TimeFormat, TimestampColumns, Timezone, merge_bars, read_import_file,
};
pub use manager::{
    DATA_SERVICE, DEFAULT_DATA_HOST_URL, DEFAULT_SEGMENT_BARS, DataAdapter, DataManager, LoadMode,
    LoadRequest, LoadSummary, LoadedSeries,
};
pub use remote::{BarBatch, FetchRange, FetchSummary, RemoteBars};
pub use resample::resample;
pub use store::{BarSource, LocalStore, SeriesInfo, SeriesReader};
pub use timeframe::{Timeframe, UnknownTimeframe};
