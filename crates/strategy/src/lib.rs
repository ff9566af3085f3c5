//! Strategy files and everything between bars and a model's inputs:
//! indicators, fuzzy memberships, features, labels, splits and scaling.
//!
//! A strategy YAML (format "2.0") becomes a typed [`StrategyConfig`]; errors
//! name the file, line, column and key path. [`build_symbol_samples`] turns
//! one symbol's bars into labelled feature windows (multi-timeframe features
//! use a higher-timeframe bar only once it has closed), and [`assemble`]
//! splits them in time order, balances symbols and scales with statistics
//! of the training split only. No burn here: features and labels are
//! testable without a model.
//!
//! ```
//! use std::path::Path;
//! use market_data::LocalStore;
//! use strategy::{StrategyConfig, assemble, build_symbol_samples};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
//! let config = StrategyConfig::from_file(&root.join("strategies/eurusd_mlp.yaml"))?;
//! let store = LocalStore::new(root.join("data"));
//!
//! let symbol = &config.training_data.symbols[0];
//! let timeframe = config.training_data.base_timeframe;
//! let bars = store.read(symbol, timeframe)?;
//! let samples = build_symbol_samples(&config, symbol, &[(timeframe, bars)])?;
//! let data = assemble(&config, vec![samples]);
//!
//! assert!(data.train.len() > data.test.len());
//! assert!(data.train.timestamps.last() < data.validation.timestamps.first());
//! assert_eq!(data.train.features.len(), data.train.len() * data.layout.sample_len());
//! # Ok(())
//! # }
//! ```

mod config;
mod dataset;
mod error;
mod features;
#[cfg(any(test, fuzzing))]
pub mod fuzzing;
mod fuzzy;
pub mod indicators;
mod labels;
mod parse;
mod prepare;
mod request;
mod summary;

pub use config::{
    Activation, CheckpointPolicy, DataSplit, FuzzySet, IndicatorConfig, IndicatorFuzzySets,
    IndicatorKind, LabelConfig, Membership, ModelConfig, ModelKind, Optimizer, PriceSource,
    StrategyConfig, TrainingData,
};
pub use dataset::{FeatureLayout, Label, PreparedData, Samples, Scaler};
pub use error::StrategyError;
pub use labels::zigzag_labels;
pub use parse::{ParsedStrategy, parse_strategy};
pub use prepare::{SymbolSamples, assemble, build_symbol_samples};
pub use request::{
    Backend, Directories, RequestError, StrategySource, TrainRequest, TrainingOptions,
    TrainingRequest, UnknownBackend, with_overrides,
};
pub use summary::{
    Baseline, ClassMetrics, EpochMetrics, Metrics, PhaseSeconds, Quality, SplitLabels, SplitSizes,
    TrainingReport, TrainingSummary,
};
