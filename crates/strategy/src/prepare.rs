//! From bars to [`PreparedData`]: labelled feature windows per symbol, then the
//! chronological split, balancing across symbols, and scaling fitted on the
//! training split.
//!
//! A trainer calls [`build_symbol_samples`] once per symbol (the slow part,
//! so it can check for cancellation in between) and then [`assemble`].
//! Nothing here is random: the same strategy and bars give the same data.

use chrono::{DateTime, Utc};
use market_data::{Bar, Symbol, Timeframe};

use crate::features::{feature_names, feature_table, find_series};
use crate::labels::zigzag;
use crate::{
    DataSplit, FeatureLayout, Label, LabelConfig, PreparedData, Samples, Scaler, StrategyConfig,
    StrategyError,
};

/// The labelled windows of one symbol, oldest first, before splitting.
#[derive(Debug, Clone, PartialEq)]
pub struct SymbolSamples {
    symbol: Symbol,
    layout: FeatureLayout,
    /// `[len, window, width]`, row-major, unscaled.
    features: Vec<f32>,
    labels: Vec<Label>,
    timestamps: Vec<DateTime<Utc>>,
    /// Base-bar index of each sample's current bar.
    bars: Vec<usize>,
    /// Base-bar index of the last close each label was decided by.
    label_ends: Vec<usize>,
}

impl SymbolSamples {
    pub fn symbol(&self) -> &Symbol {
        &self.symbol
    }

    pub fn layout(&self) -> &FeatureLayout {
        &self.layout
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// `[len, window, width]`, row-major, unscaled.
    pub fn features(&self) -> &[f32] {
        &self.features
    }

    pub fn labels(&self) -> &[Label] {
        &self.labels
    }

    /// The opening time of each sample's current (last) bar, ascending.
    pub fn timestamps(&self) -> &[DateTime<Utc>] {
        &self.timestamps
    }

    /// How many samples have each label, indexed by [`Label::index`].
    pub fn label_counts(&self) -> [usize; Label::COUNT] {
        let mut counts = [0; Label::COUNT];
        for label in &self.labels {
            counts[label.index()] += 1;
        }
        counts
    }

    fn sample(&self, index: usize) -> &[f32] {
        let len = self.layout.sample_len();
        &self.features[index * len..(index + 1) * len]
    }
}

/// Builds the labelled windows of `symbol` from its bars of each configured
/// timeframe (`series`, oldest first, as the store reads them).
///
/// A sample is the feature steps of a base bar and the `lookback_periods`
/// bars before it, oldest first, labelled by [`crate::zigzag_labels`] on the
/// base closes. Bars are skipped where any step of their window has a
/// non-finite value (indicator warm-up, no higher bar closed yet) or where
/// the label cannot be decided within the data.
///
/// A step holds, for each timeframe (the base one first, then the others in
/// the strategy's order), for each indicator (in the strategy's order), one
/// membership degree per fuzzy set, named `{feature_id}.{set}` on the base
/// timeframe and `{feature_id}.{set}@{timeframe}` on the others; an
/// indicator without fuzzy sets gives its fuzzy input itself (named
/// `{feature_id}` or `{feature_id}@{timeframe}`; see [`crate::indicators`]
/// for what each indicator feeds). With `include_price_context` the step
/// ends with `price.log_return` (ln of close over the previous close),
/// `price.range` ((high − low) / close) and `price.body` ((close − open) /
/// close) of the base bar.
///
/// Other timeframes are aligned without look-ahead: a base bar sees the
/// latest bar of another timeframe that has closed (open + duration) by the
/// time the base bar closes, never the one still forming.
///
/// # Errors
/// [`StrategyError::MissingSeries`] when a configured timeframe has no bars,
/// [`StrategyError::InvalidSetting`] for an unusable strategy value (a
/// missing period, unordered fuzzy set, threshold not in `(0, 1)`...), and
/// [`StrategyError::NotEnoughData`] when not a single sample results.
pub fn build_symbol_samples(
    config: &StrategyConfig,
    symbol: &Symbol,
    series: &[(Timeframe, Vec<Bar>)],
) -> Result<SymbolSamples, StrategyError> {
    let LabelConfig {
        zigzag_threshold: threshold,
        label_lookahead: lookahead,
    } = config.labels;
    if !(threshold > 0.0 && threshold < 1.0) {
        return Err(StrategyError::InvalidSetting {
            key_path: "training.labels.zigzag_threshold".to_owned(),
            message: format!("{threshold} is not a fraction between 0 and 1"),
        });
    }
    if lookahead == 0 {
        return Err(StrategyError::InvalidSetting {
            key_path: "training.labels.label_lookahead".to_owned(),
            message: "must be at least 1".to_owned(),
        });
    }

    let series: Vec<(Timeframe, &[Bar])> = series
        .iter()
        .map(|(tf, bars)| (*tf, bars.as_slice()))
        .collect();
    let table = feature_table(config, symbol, &series)?;
    let base_tf = config.training_data.base_timeframe;
    let base = find_series(&series, symbol, base_tf)?;
    let closes: Vec<f64> = base.iter().map(|bar| bar.close).collect();
    let labels = zigzag(&closes, threshold, lookahead);
    let window = config.model.lookback_periods + 1;

    // A sample ends at bar i when the `window` rows up to i are all usable.
    let mut usable_run = 0;
    let mut usable_rows = 0;
    let mut ends = Vec::new();
    for (i, label) in labels.iter().enumerate() {
        let usable = table
            .row(i)
            .iter()
            .all(|&v| v.is_finite() && (v as f32).is_finite());
        usable_run = if usable { usable_run + 1 } else { 0 };
        usable_rows += usize::from(usable);
        if usable_run >= window && label.is_some() {
            ends.push(i);
        }
    }
    if ends.is_empty() {
        let labelled = labels.iter().filter(|l| l.is_some()).count();
        return Err(StrategyError::NotEnoughData {
            symbol: symbol.clone(),
            timeframe: base_tf,
            message: format!(
                "no sample from {} bars: {usable_rows} have every feature (indicators \
                 need warm-up), a window takes {window} such bars in a row, and \
                 {labelled} have a label (the last {lookahead} may not)",
                base.len()
            ),
        });
    }

    let layout = FeatureLayout {
        window,
        names: feature_names(config),
    };
    let mut features = Vec::with_capacity(ends.len() * layout.sample_len());
    let mut sample_labels = Vec::with_capacity(ends.len());
    let mut timestamps = Vec::with_capacity(ends.len());
    let mut label_ends = Vec::with_capacity(ends.len());
    for &i in &ends {
        for row in i + 1 - window..=i {
            features.extend(table.row(row).iter().map(|&v| v as f32));
        }
        let labelled = labels[i].expect("only labelled bars end a sample");
        sample_labels.push(labelled.label);
        label_ends.push(labelled.decided_at);
        timestamps.push(base[i].timestamp);
    }
    Ok(SymbolSamples {
        symbol: symbol.clone(),
        layout,
        features,
        labels: sample_labels,
        timestamps,
        bars: ends,
        label_ends,
    })
}

/// Splits, balances, combines and scales the samples of every symbol.
///
/// - **Split**, per symbol and in time order: the first `train` fraction of
///   its samples (fractions are taken relative to their sum), then
///   `validation`, then the rest for test. Samples whose label depends on a
///   close at or after the first bar of the next split are dropped from the
///   end of train and validation (at most `label_lookahead` each), so no
///   label reaches into a later split's bars.
/// - **Balance**, with several symbols and in the train split only: every
///   symbol keeps as many train samples as the smallest non-empty one,
///   taken at an even stride so they still span its whole train period
///   (indices `k * n / m` for `k < m`). Validation and test are kept whole.
/// - **Combine**: per split, the symbols' samples one after the other, in
///   the order of `training_data.symbols`, each in time order.
///   `PreparedData::symbols` is that list (a symbol not in it is appended);
///   `symbol_ids` index it.
/// - **Scale**, with `scale_features`: per feature, the mean and population
///   standard deviation over every step of every train sample, applied to
///   all three splits. A deviation that is 0 (or below f32 resolution of the
///   mean) counts as 1.
///
/// # Panics
/// When the samples were built with different feature layouts (that is,
/// from different strategies).
pub fn assemble(config: &StrategyConfig, per_symbol: Vec<SymbolSamples>) -> PreparedData {
    let layout = per_symbol.first().map_or_else(
        || FeatureLayout {
            window: config.model.lookback_periods + 1,
            names: feature_names(config),
        },
        |samples| samples.layout.clone(),
    );
    let mut symbols = config.training_data.symbols.clone();
    for samples in &per_symbol {
        assert_eq!(
            samples.layout, layout,
            "{}: samples of one strategy must share a layout",
            samples.symbol
        );
        if !symbols.contains(&samples.symbol) {
            symbols.push(samples.symbol.clone());
        }
    }
    let mut per_symbol: Vec<(u32, SymbolSamples)> = per_symbol
        .into_iter()
        .map(|samples| {
            let id = symbols
                .iter()
                .position(|s| *s == samples.symbol)
                .expect("added above");
            (u32::try_from(id).expect("fewer than 2^32 symbols"), samples)
        })
        .collect();
    per_symbol.sort_by_key(|(id, _)| *id);

    let mut splits: Vec<[Vec<usize>; 3]> = per_symbol
        .iter()
        .map(|(_, samples)| split(samples, &config.data_split))
        .collect();
    if splits.len() > 1 {
        let smallest = splits
            .iter()
            .map(|[train, ..]| train.len())
            .filter(|&len| len > 0)
            .min();
        if let Some(smallest) = smallest {
            for [train, ..] in &mut splits {
                *train = downsample(train, smallest);
            }
        }
    }

    let mut out = [Samples::default(), Samples::default(), Samples::default()];
    for ((id, samples), indices) in per_symbol.iter().zip(&splits) {
        for (split, indices) in out.iter_mut().zip(indices) {
            for &i in indices {
                split.features.extend_from_slice(samples.sample(i));
                split.labels.push(samples.labels[i]);
                split.symbol_ids.push(*id);
                split.timestamps.push(samples.timestamps[i]);
            }
        }
    }
    let [mut train, mut validation, mut test] = out;

    let scaler = config.model.scale_features.then(|| {
        let scaler = Scaler::fit(&train.features, layout.width());
        for split in [&mut train, &mut validation, &mut test] {
            scaler.apply(&mut split.features);
        }
        scaler
    });
    PreparedData {
        layout,
        symbols,
        train,
        validation,
        test,
        scaler,
    }
}

/// The sample indices of train, validation and test, purged at the boundaries.
fn split(samples: &SymbolSamples, fractions: &DataSplit) -> [Vec<usize>; 3] {
    let n = samples.len();
    let total = fractions.train + fractions.validation + fractions.test;
    let boundary = |fraction: f64| -> usize {
        if total > 0.0 {
            // Rounded to the nearest sample; NaN (a NaN fraction) casts to 0.
            ((n as f64 * fraction / total).round() as usize).min(n)
        } else {
            n
        }
    };
    let train_end = boundary(fractions.train);
    let validation_end = boundary(fractions.train + fractions.validation).max(train_end);
    // Keeps the samples of `range` whose labels end before the next split's first bar.
    let purged = |range: std::ops::Range<usize>| -> Vec<usize> {
        let next_bar = samples.bars.get(range.end).copied().unwrap_or(usize::MAX);
        range
            .filter(|&i| samples.label_ends[i] < next_bar)
            .collect()
    };
    [
        purged(0..train_end),
        purged(train_end..validation_end),
        (validation_end..n).collect(),
    ]
}

/// `keep` of `indices` at an even stride, in order.
fn downsample(indices: &[usize], keep: usize) -> Vec<usize> {
    let n = indices.len();
    if n <= keep {
        return indices.to_vec();
    }
    (0..keep).map(|k| indices[k * n / keep]).collect()
}

impl Scaler {
    /// Fits per-feature standardisation on `features`, rows of `width`
    /// values (every step of every sample). A deviation that is 0, or below
    /// the resolution of f32 next to the mean (a constant column read back
    /// with rounding noise), becomes 1; with no rows, means are 0 and
    /// deviations 1.
    pub fn fit(features: &[f32], width: usize) -> Scaler {
        let rows = features.len().checked_div(width).unwrap_or(0);
        let mut sum = vec![0.0_f64; width];
        for row in features.chunks_exact(width.max(1)) {
            for (s, &v) in sum.iter_mut().zip(row) {
                *s += f64::from(v);
            }
        }
        let mean: Vec<f64> = sum
            .iter()
            .map(|s| if rows == 0 { 0.0 } else { s / rows as f64 })
            .collect();
        let mut squares = vec![0.0_f64; width];
        for row in features.chunks_exact(width.max(1)) {
            for ((s, &v), m) in squares.iter_mut().zip(row).zip(&mean) {
                let d = f64::from(v) - m;
                *s += d * d;
            }
        }
        let std = squares
            .iter()
            .zip(&mean)
            .map(|(s, m)| {
                let std = if rows == 0 {
                    0.0
                } else {
                    (s / rows as f64).sqrt()
                };
                if std > f64::from(f32::EPSILON) * m.abs() && std > 0.0 {
                    std as f32
                } else {
                    1.0
                }
            })
            .collect();
        Scaler {
            mean: mean.iter().map(|&m| m as f32).collect(),
            std,
        }
    }

    /// Standardises `features` in place: rows of [`Scaler::mean`]`.len()`
    /// values, each becoming `(value - mean) / std`.
    pub fn apply(&self, features: &mut [f32]) {
        let width = self.mean.len();
        if width == 0 {
            return;
        }
        for row in features.chunks_exact_mut(width) {
            for ((v, &m), &s) in row.iter_mut().zip(&self.mean).zip(&self.std) {
                *v = ((f64::from(*v) - f64::from(m)) / f64::from(s)) as f32;
            }
        }
    }
}

#[cfg(test)]
mod tests;
