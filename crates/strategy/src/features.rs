//! Feature steps: for every base bar, the fuzzy memberships of each indicator
//! on each timeframe, with higher timeframes aligned without look-ahead.
//!
//! A step holds, in this order:
//! 1. for each timeframe, the base one first and then the others in the
//!    strategy's order,
//! 2. for each indicator, in the strategy's order,
//! 3. one membership degree per fuzzy set of the indicator, in file order,
//!    named `{feature_id}.{set}` on the base timeframe and
//!    `{feature_id}.{set}@{timeframe}` on the others. An indicator without
//!    fuzzy sets contributes its fuzzy input itself (see
//!    [`crate::indicators`]), named `{feature_id}` or `{feature_id}@{timeframe}`,
//!    so nothing the strategy asks for is computed in vain;
//! 4. with `include_price_context`, three values of the base bar:
//!    `price.log_return` (ln of close over the previous bar's close),
//!    `price.range` ((high − low) / close) and `price.body`
//!    ((close − open) / close).
//!
//! Alignment: a base bar opening at `t` closes at `t + base duration`; it sees
//! the latest bar of another timeframe whose close (open + its duration) is at
//! or before that. The still-forming higher bar is never used, so a step
//! depends only on bars closed by the time its own bar closes.

use market_data::{Bar, Symbol, Timeframe};

use crate::indicators::fuzzy_input;
use crate::{FuzzySet, Membership, StrategyConfig, StrategyError};

/// Names of the price-context features, in step order.
pub(crate) const PRICE_CONTEXT: [&str; 3] = ["price.log_return", "price.range", "price.body"];

/// The timeframes in step order: base first, then the others as configured,
/// each once.
pub(crate) fn timeframe_order(config: &StrategyConfig) -> Vec<Timeframe> {
    let base = config.training_data.base_timeframe;
    let mut order = vec![base];
    for &tf in &config.training_data.timeframes {
        if !order.contains(&tf) {
            order.push(tf);
        }
    }
    order
}

/// The fuzzy sets of `feature_id`; empty when it has none.
fn sets_of<'a>(config: &'a StrategyConfig, feature_id: &str) -> &'a [FuzzySet] {
    config
        .fuzzy_sets
        .iter()
        .find(|sets| sets.feature_id == feature_id)
        .map_or(&[], |sets| &sets.sets)
}

/// The name of every feature of a step, in step order.
pub(crate) fn feature_names(config: &StrategyConfig) -> Vec<String> {
    let base = config.training_data.base_timeframe;
    let mut names = Vec::new();
    for tf in timeframe_order(config) {
        let suffix = if tf == base {
            String::new()
        } else {
            format!("@{tf}")
        };
        for indicator in &config.indicators {
            let id = &indicator.feature_id;
            let sets = sets_of(config, id);
            if sets.is_empty() {
                names.push(format!("{id}{suffix}"));
            }
            for set in sets {
                names.push(format!("{id}.{}{suffix}", set.name));
            }
        }
    }
    if config.model.include_price_context {
        names.extend(PRICE_CONTEXT.iter().map(|name| (*name).to_owned()));
    }
    names
}

/// Checks what the features rely on and a parsed file may still get wrong
/// when a strategy is built in code: unique feature ids, fuzzy sets that
/// name an indicator, ordered membership parameters.
fn check(config: &StrategyConfig) -> Result<(), StrategyError> {
    let invalid =
        |key_path: String, message: String| StrategyError::InvalidSetting { key_path, message };
    for (i, indicator) in config.indicators.iter().enumerate() {
        let id = &indicator.feature_id;
        if config.indicators[..i]
            .iter()
            .any(|other| &other.feature_id == id)
        {
            return Err(invalid(
                format!("indicators[{i}].feature_id"),
                format!("{id:?} is used by an earlier indicator too"),
            ));
        }
    }
    for (i, sets) in config.fuzzy_sets.iter().enumerate() {
        let id = &sets.feature_id;
        if !config.indicators.iter().any(|ind| &ind.feature_id == id) {
            return Err(invalid(
                format!("fuzzy_sets.{id}"),
                "no indicator has this feature_id".to_owned(),
            ));
        }
        if config.fuzzy_sets[..i]
            .iter()
            .any(|other| &other.feature_id == id)
        {
            return Err(invalid(
                format!("fuzzy_sets.{id}"),
                "given twice".to_owned(),
            ));
        }
        for set in &sets.sets {
            let ordered = match set.membership {
                Membership::Triangular { a, b, c } => is_ordered(&[a, b, c]),
                Membership::Trapezoidal { a, b, c, d } => is_ordered(&[a, b, c, d]),
                Membership::Gaussian { mean, sigma } => mean.is_finite() && sigma >= 0.0,
            };
            if !ordered {
                return Err(invalid(
                    format!("fuzzy_sets.{id}.{}", set.name),
                    format!(
                        "{:?}: parameters must be finite and ascending (sigma >= 0)",
                        set.membership
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn is_ordered(values: &[f64]) -> bool {
    values.iter().all(|v| v.is_finite()) && values.windows(2).all(|w| w[0] <= w[1])
}

/// Feature steps of one symbol: one row of `width` values per base bar,
/// NaN where an indicator is warming up or no higher bar has closed yet.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FeatureTable {
    pub(crate) width: usize,
    /// Row-major.
    pub(crate) values: Vec<f64>,
}

impl FeatureTable {
    pub(crate) fn row(&self, index: usize) -> &[f64] {
        &self.values[index * self.width..(index + 1) * self.width]
    }
}

/// The series of `timeframe` in `series`, non-empty.
pub(crate) fn find_series<'a>(
    series: &[(Timeframe, &'a [Bar])],
    symbol: &Symbol,
    timeframe: Timeframe,
) -> Result<&'a [Bar], StrategyError> {
    series
        .iter()
        .find(|(tf, bars)| *tf == timeframe && !bars.is_empty())
        .map(|(_, bars)| *bars)
        .ok_or_else(|| StrategyError::MissingSeries {
            symbol: symbol.clone(),
            timeframe,
        })
}

/// Computes the feature steps of `symbol`, one row per bar of the base
/// timeframe. `series` holds each configured timeframe's bars, oldest first.
pub(crate) fn feature_table(
    config: &StrategyConfig,
    symbol: &Symbol,
    series: &[(Timeframe, &[Bar])],
) -> Result<FeatureTable, StrategyError> {
    check(config)?;
    let base_tf = config.training_data.base_timeframe;
    let base = find_series(series, symbol, base_tf)?;
    let width = feature_names(config).len();
    let mut values = vec![f64::NAN; base.len() * width];
    let mut column = 0;

    for tf in timeframe_order(config) {
        let bars = find_series(series, symbol, tf)?;
        let aligned = if tf == base_tf {
            (0..base.len()).map(Some).collect()
        } else {
            align(base, base_tf, bars, tf)
        };
        for (index, indicator) in config.indicators.iter().enumerate() {
            let input = fuzzy_input(indicator, index, bars)?;
            let sets = sets_of(config, &indicator.feature_id);
            for (row, source) in aligned.iter().enumerate() {
                let x = source.map_or(f64::NAN, |j| input[j]);
                let out = &mut values[row * width + column..];
                if sets.is_empty() {
                    out[0] = x;
                } else {
                    for (slot, set) in out.iter_mut().zip(sets) {
                        *slot = set.membership.evaluate(x);
                    }
                }
            }
            column += sets.len().max(1);
        }
    }

    if config.model.include_price_context {
        let mut previous_close = f64::NAN;
        for (row, bar) in base.iter().enumerate() {
            let out = &mut values[row * width + column..row * width + column + PRICE_CONTEXT.len()];
            out[0] = (bar.close / previous_close).ln();
            out[1] = (bar.high - bar.low) / bar.close;
            out[2] = (bar.close - bar.open) / bar.close;
            previous_close = bar.close;
        }
        column += PRICE_CONTEXT.len();
    }
    debug_assert_eq!(column, width);
    Ok(FeatureTable { width, values })
}

/// For each base bar, the index of the latest `other` bar closed when the
/// base bar closes, if any. Both series oldest first.
fn align(
    base: &[Bar],
    base_tf: Timeframe,
    other: &[Bar],
    other_tf: Timeframe,
) -> Vec<Option<usize>> {
    let (base_len, other_len) = (base_tf.duration(), other_tf.duration());
    let mut closed = 0; // how many `other` bars have closed so far
    base.iter()
        .map(|bar| {
            let close = bar.timestamp + base_len;
            while closed < other.len() && other[closed].timestamp + other_len <= close {
                closed += 1;
            }
            closed.checked_sub(1)
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod testing;

#[cfg(test)]
mod tests;
