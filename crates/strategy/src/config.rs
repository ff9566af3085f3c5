//! The strategy file, as typed values: what to train on, which features, which model.

use std::path::PathBuf;

use market_data::{Symbol, Timeframe};
use serde::{Deserialize, Serialize};

/// A whole strategy file (format version "2.0" of the original system).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StrategyConfig {
    pub name: String,
    pub description: Option<String>,
    /// The file it was read from, if any (for messages and artifacts).
    pub source: Option<PathBuf>,
    pub training_data: TrainingData,
    /// In file order; feature order follows it.
    pub indicators: Vec<IndicatorConfig>,
    /// Per indicator (by its [`IndicatorConfig::feature_id`]), the named sets in file order.
    pub fuzzy_sets: Vec<IndicatorFuzzySets>,
    pub model: ModelConfig,
    pub labels: LabelConfig,
    pub data_split: DataSplit,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingData {
    /// One symbol in `single` mode, several in `multi_symbol` mode.
    pub symbols: Vec<Symbol>,
    /// One timeframe in `single` mode, several in `multi_timeframe` mode;
    /// always contains `base_timeframe`.
    pub timeframes: Vec<Timeframe>,
    /// The timeframe samples are taken at; higher timeframes are aligned to it.
    pub base_timeframe: Timeframe,
}

/// Which indicator to compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IndicatorKind {
    Rsi,
    Sma,
    Ema,
    Macd,
    Atr,
    Adx,
    BollingerBands,
    Stochastic,
    Roc,
}

/// The price an indicator reads (`source:` in files).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PriceSource {
    Open,
    High,
    Low,
    #[default]
    Close,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndicatorConfig {
    pub kind: IndicatorKind,
    /// The name fuzzy sets refer to: `feature_id` from the file, else the
    /// indicator's name as written, lower-cased (e.g. `rsi`).
    pub feature_id: String,
    /// `period` (RSI, SMA, EMA, ATR, ADX, Bollinger bands, ROC).
    pub period: Option<usize>,
    /// MACD.
    pub fast_period: Option<usize>,
    pub slow_period: Option<usize>,
    pub signal_period: Option<usize>,
    /// Stochastic.
    pub k_period: Option<usize>,
    pub d_period: Option<usize>,
    /// Bollinger bands width, from `std_dev` or `multiplier`.
    pub std_dev: Option<f64>,
    pub source: PriceSource,
}

/// The fuzzy sets of one indicator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndicatorFuzzySets {
    /// Matches an [`IndicatorConfig::feature_id`].
    pub feature_id: String,
    pub sets: Vec<FuzzySet>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FuzzySet {
    pub name: String,
    pub membership: Membership,
}

/// A membership function over the indicator's value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Membership {
    /// Rises from `a` to 1 at `b`, falls to 0 at `c`.
    Triangular {
        a: f64,
        b: f64,
        c: f64,
    },
    /// Rises from `a` to 1 at `b`, stays 1 until `c`, falls to 0 at `d`.
    Trapezoidal {
        a: f64,
        b: f64,
        c: f64,
        d: f64,
    },
    Gaussian {
        mean: f64,
        sigma: f64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    Mlp,
    Cnn,
    Lstm,
}

impl ModelKind {
    /// As shown to users: `MLP`, `CNN`, `LSTM`.
    pub fn display_name(self) -> &'static str {
        match self {
            ModelKind::Mlp => "MLP",
            ModelKind::Cnn => "CNN",
            ModelKind::Lstm => "LSTM",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    Relu,
    Tanh,
    Sigmoid,
    LeakyRelu,
    Gelu,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Optimizer {
    Adam,
    Sgd,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub kind: ModelKind,
    /// `architecture.hidden_layers`: units per layer (MLP), channels per
    /// convolution (CNN), hidden size per stacked layer (LSTM).
    pub hidden_layers: Vec<usize>,
    pub activation: Activation,
    pub dropout: f64,
    /// `features.lookback_periods`: how many past bars besides the current one.
    pub lookback_periods: usize,
    pub scale_features: bool,
    /// `features.include_price_context`: add returns/range of the base bars.
    pub include_price_context: bool,
    /// `symbol_embedding_dim`: learned per-symbol embedding size; 0 = none.
    pub symbol_embedding_dim: usize,
    pub learning_rate: f64,
    pub batch_size: usize,
    pub epochs: usize,
    pub optimizer: Optimizer,
    /// `early_stopping.patience` in epochs, when early stopping is on.
    pub early_stopping_patience: Option<usize>,
    /// `training.seed` (default 42): same strategy, data and seed give the same model.
    pub seed: u64,
    /// `training.checkpoint`: when the training saves the state it can
    /// continue from.
    #[serde(default)]
    pub checkpoint: CheckpointPolicy,
}

/// When a training saves its state to continue from, besides always when
/// it stops early (cancel, shutdown, a failure after its first batch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointPolicy {
    /// At the end of every this many epochs; 0: not at epoch ends.
    pub every_epochs: usize,
    /// Inside an epoch too, at the first batch boundary this many seconds
    /// after the last save, so a long epoch never risks more; 0: not
    /// inside epochs.
    pub every_seconds: u64,
}

impl Default for CheckpointPolicy {
    /// Every epoch, and at most 5 minutes of work unsaved inside a long one.
    fn default() -> Self {
        Self {
            every_epochs: 1,
            every_seconds: 300,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LabelConfig {
    /// Minimum relative move of a zigzag leg, e.g. 0.02 for 2 %.
    pub zigzag_threshold: f64,
    /// How many bars ahead a label may look.
    pub label_lookahead: usize,
}

/// Fractions of the samples, in time order: train, then validation, then test.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DataSplit {
    pub train: f64,
    pub validation: f64,
    pub test: f64,
}
