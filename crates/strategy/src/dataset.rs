//! The model-ready samples a strategy produces: windows of features with
//! labels, split in time order, scaled with statistics of the training split.

use chrono::{DateTime, Utc};
use market_data::Symbol;
use serde::{Deserialize, Serialize};

/// A sample's class. The discriminant is the class index a model predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[repr(u8)]
pub enum Label {
    Buy = 0,
    Hold = 1,
    Sell = 2,
}

impl Label {
    pub const COUNT: usize = 3;
    pub const ALL: [Label; 3] = [Label::Buy, Label::Hold, Label::Sell];

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn from_index(index: usize) -> Option<Label> {
        Self::ALL.get(index).copied()
    }

    pub fn name(self) -> &'static str {
        match self {
            Label::Buy => "BUY",
            Label::Hold => "HOLD",
            Label::Sell => "SELL",
        }
    }
}

/// What one feature step holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureLayout {
    /// Bars per sample: the current one and `lookback_periods` before it,
    /// oldest first.
    pub window: usize,
    /// One name per feature of a step, e.g. `rsi.oversold` or `rsi.oversold@4h`.
    pub names: Vec<String>,
}

impl FeatureLayout {
    /// Features per step.
    pub fn width(&self) -> usize {
        self.names.len()
    }

    /// Values per sample (`window * width`).
    pub fn sample_len(&self) -> usize {
        self.window * self.width()
    }
}

/// Samples in one contiguous layout, ready to become tensors.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Samples {
    /// `[len, window, width]`, row-major.
    pub features: Vec<f32>,
    pub labels: Vec<Label>,
    /// Index into [`PreparedData::symbols`].
    pub symbol_ids: Vec<u32>,
    /// The time of each sample's current (last) bar.
    pub timestamps: Vec<DateTime<Utc>>,
}

impl Samples {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// Per-feature standardisation fitted on the training split only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scaler {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

/// Everything a trainer needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreparedData {
    pub layout: FeatureLayout,
    pub symbols: Vec<Symbol>,
    pub train: Samples,
    pub validation: Samples,
    pub test: Samples,
    /// Already applied to the three splits; kept to scale new data the same way.
    pub scaler: Option<Scaler>,
}
