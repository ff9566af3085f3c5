//! The crate's error type: every variant names the file, line or series at fault.

use std::path::PathBuf;

use orchestrator_core::Cancelled;

use crate::{InvalidSymbol, Symbol, Timeframe, UnknownTimeframe};

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A row or the header of a CSV file is wrong. `line` is 1-based and
    /// counts the header.
    #[error("{}:{line}: {message}", path.display())]
    Invalid {
        path: PathBuf,
        line: usize,
        message: String,
    },
    /// An import file whose layout is not recognised, or does not fit the
    /// mapping given: the message names what was found.
    #[error("{}:{line}: {message}", path.display())]
    UnknownLayout {
        path: PathBuf,
        line: usize,
        message: String,
    },
    /// A whole file is wrong (empty, no usable header...).
    #[error("{}: {message}", path.display())]
    InvalidFile { path: PathBuf, message: String },
    #[error("no data for {symbol} {timeframe}: {} does not exist", path.display())]
    NotFound {
        symbol: Symbol,
        timeframe: Timeframe,
        path: PathBuf,
    },
    /// The data directory itself is missing (listing needs it to exist).
    #[error("data directory {} does not exist", path.display())]
    MissingDataDir { path: PathBuf },
    #[error("{}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Symbol(#[from] InvalidSymbol),
    #[error(transparent)]
    Timeframe(#[from] UnknownTimeframe),
    #[error("cannot build {to} bars from {from} bars: {reason}")]
    Resample {
        from: Timeframe,
        to: Timeframe,
        reason: &'static str,
    },
    /// A fetching load mode was asked for, but this process has no data
    /// host to fetch from.
    #[error(
        "loading in {mode} mode needs a data host (set USE_DATA_HOST_SERVICE=true and \
         DATA_HOST_SERVICE_URL), or use --mode local"
    )]
    NoDataHost { mode: &'static str },
    /// The data host could not give the bars; the source names the host.
    #[error("fetching {symbol} {timeframe} bars")]
    Remote {
        symbol: Symbol,
        timeframe: Timeframe,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Not `transparent`: the orchestrator finds `Cancelled` in the source
    /// chain to end the operation `cancelled` rather than `failed`.
    #[error("{0}")]
    Cancelled(#[from] Cancelled),
}

impl DataError {
    pub(crate) fn invalid(
        path: impl Into<PathBuf>,
        line: usize,
        message: impl Into<String>,
    ) -> Self {
        DataError::Invalid {
            path: path.into(),
            line,
            message: message.into(),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            source,
        }
    }
}
