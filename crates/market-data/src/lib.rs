//! OHLCV market data: bars, the local CSV store, validation, import,
//! resampling, and `DataManager`.

mod bar;
mod error;
mod gaps;
mod import;
mod manager;
mod resample;
mod store;
mod timeframe;
mod validate;

pub use bar::{Bar, InvalidSymbol, Symbol};
pub use error::DataError;
pub use gaps::{Gap, GapKind, GapReport, find_gaps};
pub use import::{MergeStats, merge_bars, read_import_file};
pub use manager::{
    BarSource, DATA_SERVICE, DEFAULT_DATA_HOST_URL, DEFAULT_SEGMENT_BARS, DataAdapter, DataManager,
    LoadMode, LoadRequest, LoadSummary, LoadedSeries,
};
pub use resample::resample;
pub use store::{LocalStore, SeriesInfo, SeriesReader};
pub use timeframe::{Timeframe, UnknownTimeframe};
