//! The crate's error type: every variant names the file, key path or series at fault.

use std::path::PathBuf;

use market_data::{Symbol, Timeframe};

#[derive(Debug, thiserror::Error)]
pub enum StrategyError {
    #[error("{}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The YAML itself is malformed, or a key is missing or of the wrong type.
    /// `key_path` is dotted, e.g. `model.training.batch_size` or `indicators[2].period`.
    #[error("{}:{line}:{column}: {key_path}: {message}", file.display())]
    Invalid {
        file: PathBuf,
        line: usize,
        column: usize,
        key_path: String,
        message: String,
    },
    /// Not enough bars to build any sample.
    #[error("{symbol} {timeframe}: {message}")]
    NotEnoughData {
        symbol: Symbol,
        timeframe: Timeframe,
        message: String,
    },
    /// A series the strategy needs was not given.
    #[error("no bars given for {symbol} {timeframe}")]
    MissingSeries {
        symbol: Symbol,
        timeframe: Timeframe,
    },
    /// A value of an already parsed strategy cannot be used (checked again
    /// when features are built, for strategies not read from a file).
    /// `key_path` as in [`StrategyError::Invalid`].
    #[error("{key_path}: {message}")]
    InvalidSetting { key_path: String, message: String },
}
