//! Strategy files and everything between bars and a model's inputs:
//! indicators, fuzzy memberships, features, labels, splits and scaling.

mod config;
mod dataset;
mod error;

pub use config::{
    Activation, DataSplit, FuzzySet, IndicatorConfig, IndicatorFuzzySets, IndicatorKind, LabelConfig,
    Membership, ModelConfig, ModelKind, Optimizer, PriceSource, StrategyConfig, TrainingData,
};
pub use dataset::{FeatureLayout, Label, PreparedData, Samples, Scaler};
pub use error::StrategyError;
