//! Technical indicators over bar series, and the value each one feeds to its fuzzy sets.
//!
//! Every function returns one value per input element, aligned with it, and
//! `f64::NAN` where the indicator is still warming up. Inputs are expected to
//! be finite, except for a leading run of NaN (the warm-up of another
//! indicator), which the moving averages skip. A period of 0 gives only NaN.
//!
//! Conventions, where the literature differs:
//! - [`ema`] is seeded with the [`sma`] of its first `period` values.
//! - [`rsi`], [`atr`] and [`adx`] use Wilder's smoothing
//!   (`avg = (avg * (n - 1) + x) / n`), each seeded with a simple mean.
//! - [`bollinger`] bands use the population standard deviation.
//!
//! # Fuzzy inputs
//!
//! What an indicator feeds to its fuzzy sets (and, without sets, to the
//! model directly) is chosen to be comparable across symbols and price levels
//! where the indicator allows it:
//!
//! | indicator | fuzzy input |
//! | --- | --- |
//! | RSI | RSI, 0..100 |
//! | SMA, EMA | close / average (around 1.0) |
//! | Bollinger bands | close / middle band (around 1.0) |
//! | MACD | histogram: MACD line − signal line, in price units |
//! | ATR | ATR / close, a fraction of the price |
//! | ADX | ADX, 0..100 (+DI and −DI are not fed) |
//! | Stochastic | %K, 0..100 (%D is not fed) |
//! | ROC | percent change over `period` bars |
//!
//! "close" is always the bar's own close, whatever the indicator's `source`.
//! ATR, ADX and Stochastic read high, low and close and ignore `source`.

use market_data::Bar;

use crate::{IndicatorConfig, IndicatorKind, PriceSource, StrategyError};

/// One price of each bar.
pub fn prices(bars: &[Bar], source: PriceSource) -> Vec<f64> {
    let pick: fn(&Bar) -> f64 = match source {
        PriceSource::Open => |bar| bar.open,
        PriceSource::High => |bar| bar.high,
        PriceSource::Low => |bar| bar.low,
        PriceSource::Close => |bar| bar.close,
    };
    bars.iter().map(pick).collect()
}

/// Index of the first finite value, or `values.len()`.
fn first_finite(values: &[f64]) -> usize {
    values
        .iter()
        .position(|v| v.is_finite())
        .unwrap_or(values.len())
}

/// Simple moving average: the mean of the last `period` values, from the
/// `period`-th value on.
pub fn sma(values: &[f64], period: usize) -> Vec<f64> {
    let mut out = vec![f64::NAN; values.len()];
    let start = first_finite(values);
    if period == 0 || values.len() < start + period {
        return out;
    }
    let mut sum: f64 = values[start..start + period].iter().sum();
    out[start + period - 1] = sum / period as f64;
    for i in start + period..values.len() {
        sum += values[i] - values[i - period];
        out[i] = sum / period as f64;
    }
    out
}

/// Exponential moving average with `alpha = 2 / (period + 1)`, seeded with the
/// simple average of the first `period` values (so it starts where [`sma`] does).
pub fn ema(values: &[f64], period: usize) -> Vec<f64> {
    let mut out = vec![f64::NAN; values.len()];
    let start = first_finite(values);
    if period == 0 || values.len() < start + period {
        return out;
    }
    let alpha = 2.0 / (period as f64 + 1.0);
    let mut average = values[start..start + period].iter().sum::<f64>() / period as f64;
    out[start + period - 1] = average;
    for i in start + period..values.len() {
        average += alpha * (values[i] - average);
        out[i] = average;
    }
    out
}

/// Wilder's relative strength index, 0..100, from value `period` on (it needs
/// `period` changes). The first average gain and loss are the plain means of
/// the first `period` changes. With no loss in the average it is 100, with
/// neither gain nor loss 50.
pub fn rsi(values: &[f64], period: usize) -> Vec<f64> {
    let mut out = vec![f64::NAN; values.len()];
    if period == 0 || values.len() <= period {
        return out;
    }
    let n = period as f64;
    let (mut gain, mut loss) = (0.0, 0.0);
    for i in 1..=period {
        let change = values[i] - values[i - 1];
        gain += change.max(0.0);
        loss += (-change).max(0.0);
    }
    gain /= n;
    loss /= n;
    out[period] = rsi_value(gain, loss);
    for i in period + 1..values.len() {
        let change = values[i] - values[i - 1];
        gain = (gain * (n - 1.0) + change.max(0.0)) / n;
        loss = (loss * (n - 1.0) + (-change).max(0.0)) / n;
        out[i] = rsi_value(gain, loss);
    }
    out
}

fn rsi_value(gain: f64, loss: f64) -> f64 {
    if loss == 0.0 {
        if gain == 0.0 { 50.0 } else { 100.0 }
    } else {
        100.0 - 100.0 / (1.0 + gain / loss)
    }
}

/// The three lines of [`macd`].
#[derive(Debug, Clone, PartialEq)]
pub struct Macd {
    /// Fast EMA − slow EMA.
    pub line: Vec<f64>,
    /// EMA of the line over `signal_period`, starting once the line has
    /// `signal_period` values.
    pub signal: Vec<f64>,
    /// Line − signal: the value fed to fuzzy sets.
    pub histogram: Vec<f64>,
}

/// Moving average convergence/divergence (usually 12, 26, 9).
pub fn macd(values: &[f64], fast: usize, slow: usize, signal_period: usize) -> Macd {
    let fast = ema(values, fast);
    let slow = ema(values, slow);
    let line: Vec<f64> = fast.iter().zip(&slow).map(|(f, s)| f - s).collect();
    let signal = ema(&line, signal_period);
    let histogram = line.iter().zip(&signal).map(|(l, s)| l - s).collect();
    Macd {
        line,
        signal,
        histogram,
    }
}

/// Each bar's true range: the largest of high − low, |high − previous close|
/// and |low − previous close|; the first bar, having no previous close, uses
/// high − low.
pub fn true_range(bars: &[Bar]) -> Vec<f64> {
    let mut out = Vec::with_capacity(bars.len());
    let mut previous_close: Option<f64> = None;
    for bar in bars {
        let range = bar.high - bar.low;
        out.push(match previous_close {
            None => range,
            Some(close) => range
                .max((bar.high - close).abs())
                .max((bar.low - close).abs()),
        });
        previous_close = Some(bar.close);
    }
    out
}

/// Wilder's average true range, in price units, from bar `period - 1` on: the
/// mean of the first `period` true ranges (the first being high − low), then
/// Wilder-smoothed.
pub fn atr(bars: &[Bar], period: usize) -> Vec<f64> {
    let ranges = true_range(bars);
    let mut out = vec![f64::NAN; bars.len()];
    if period == 0 || bars.len() < period {
        return out;
    }
    let n = period as f64;
    let mut average = ranges[..period].iter().sum::<f64>() / n;
    out[period - 1] = average;
    for i in period..bars.len() {
        average = (average * (n - 1.0) + ranges[i]) / n;
        out[i] = average;
    }
    out
}

/// The lines of [`adx`].
#[derive(Debug, Clone, PartialEq)]
pub struct Adx {
    /// +DI, 0..100, from bar `period` on.
    pub plus_di: Vec<f64>,
    /// −DI, 0..100, from bar `period` on.
    pub minus_di: Vec<f64>,
    /// ADX, 0..100, from bar `2 * period - 1` on: the value fed to fuzzy sets.
    pub adx: Vec<f64>,
}

/// Wilder's directional movement system.
///
/// From the second bar on: +DM = high − previous high and −DM = previous low −
/// low, each kept only when it is positive and the larger of the two; TR as in
/// [`true_range`]. TR, +DM and −DM are averaged with Wilder's smoothing,
/// seeded with the mean of their first `period` values (bars 1..=period), and
/// ±DI = 100 · DM / TR (0 when TR is 0). DX = 100 · |+DI − −DI| / (+DI + −DI)
/// (0 when both are 0); ADX is DX averaged the same way, seeded with the mean
/// of the first `period` DX values.
pub fn adx(bars: &[Bar], period: usize) -> Adx {
    let len = bars.len();
    let mut out = Adx {
        plus_di: vec![f64::NAN; len],
        minus_di: vec![f64::NAN; len],
        adx: vec![f64::NAN; len],
    };
    if period == 0 || len <= period {
        return out;
    }
    let n = period as f64;
    let movement = |i: usize| {
        let (bar, previous) = (&bars[i], &bars[i - 1]);
        let up = bar.high - previous.high;
        let down = previous.low - bar.low;
        let plus = if up > down && up > 0.0 { up } else { 0.0 };
        let minus = if down > up && down > 0.0 { down } else { 0.0 };
        let range = (bar.high - bar.low)
            .max((bar.high - previous.close).abs())
            .max((bar.low - previous.close).abs());
        (range, plus, minus)
    };

    let (mut range, mut plus, mut minus) = (0.0, 0.0, 0.0);
    for i in 1..=period {
        let (r, p, m) = movement(i);
        range += r;
        plus += p;
        minus += m;
    }
    range /= n;
    plus /= n;
    minus /= n;

    let mut dx_sum = 0.0;
    let mut adx = 0.0;
    for i in period..len {
        if i > period {
            let (r, p, m) = movement(i);
            range = (range * (n - 1.0) + r) / n;
            plus = (plus * (n - 1.0) + p) / n;
            minus = (minus * (n - 1.0) + m) / n;
        }
        let (plus_di, minus_di) = if range == 0.0 {
            (0.0, 0.0)
        } else {
            (100.0 * plus / range, 100.0 * minus / range)
        };
        out.plus_di[i] = plus_di;
        out.minus_di[i] = minus_di;
        let di_sum = plus_di + minus_di;
        let dx = if di_sum == 0.0 {
            0.0
        } else {
            100.0 * (plus_di - minus_di).abs() / di_sum
        };
        // DX values seen so far, this one included.
        let count = i - period + 1;
        if count < period {
            dx_sum += dx;
        } else if count == period {
            adx = (dx_sum + dx) / n;
            out.adx[i] = adx;
        } else {
            adx = (adx * (n - 1.0) + dx) / n;
            out.adx[i] = adx;
        }
    }
    out
}

/// The bands of [`bollinger`].
#[derive(Debug, Clone, PartialEq)]
pub struct Bollinger {
    /// The simple moving average; close / middle is fed to fuzzy sets.
    pub middle: Vec<f64>,
    pub upper: Vec<f64>,
    pub lower: Vec<f64>,
}

/// Bollinger bands: the [`sma`] over `period` values ± `width` population
/// standard deviations of the same values.
pub fn bollinger(values: &[f64], period: usize, width: f64) -> Bollinger {
    let middle = sma(values, period);
    let mut upper = vec![f64::NAN; values.len()];
    let mut lower = vec![f64::NAN; values.len()];
    for (i, &mean) in middle.iter().enumerate() {
        if mean.is_nan() {
            continue;
        }
        // Two passes over the window: exact even when the spread is tiny
        // next to the price (a running sum of squares would cancel).
        let window = &values[i + 1 - period..=i];
        let variance = window.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / period as f64;
        let spread = width * variance.sqrt();
        upper[i] = mean + spread;
        lower[i] = mean - spread;
    }
    Bollinger {
        middle,
        upper,
        lower,
    }
}

/// The lines of [`stochastic`].
#[derive(Debug, Clone, PartialEq)]
pub struct Stochastic {
    /// %K, 0..100, from bar `k_period - 1` on: the value fed to fuzzy sets.
    pub k: Vec<f64>,
    /// %D: the [`sma`] of %K over `d_period`.
    pub d: Vec<f64>,
}

/// The stochastic oscillator: %K = 100 · (close − lowest low) / (highest high −
/// lowest low) over the last `k_period` bars, 50 when that range is 0.
pub fn stochastic(bars: &[Bar], k_period: usize, d_period: usize) -> Stochastic {
    let mut k = vec![f64::NAN; bars.len()];
    if k_period > 0 {
        for i in k_period.saturating_sub(1)..bars.len() {
            let window = &bars[i + 1 - k_period..=i];
            let (low, high) = window
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(low, high), bar| {
                    (low.min(bar.low), high.max(bar.high))
                });
            k[i] = if high > low {
                100.0 * (bars[i].close - low) / (high - low)
            } else {
                50.0
            };
        }
    }
    let d = sma(&k, d_period);
    Stochastic { k, d }
}

/// Rate of change: 100 · (value − value `period` bars ago) / value `period`
/// bars ago, from value `period` on; NaN where the older value is 0.
pub fn roc(values: &[f64], period: usize) -> Vec<f64> {
    let mut out = vec![f64::NAN; values.len()];
    if period == 0 {
        return out;
    }
    for i in period..values.len() {
        let before = values[i - period];
        if before != 0.0 {
            out[i] = 100.0 * (values[i] - before) / before;
        }
    }
    out
}

/// The value `config` feeds to its fuzzy sets for each bar (see the module
/// docs). `index` is the indicator's position in the strategy, for errors.
pub(crate) fn fuzzy_input(
    config: &IndicatorConfig,
    index: usize,
    bars: &[Bar],
) -> Result<Vec<f64>, StrategyError> {
    let period = |value: Option<usize>, key: &str| -> Result<usize, StrategyError> {
        match value {
            Some(period) if period > 0 => Ok(period),
            Some(_) => Err(StrategyError::InvalidSetting {
                key_path: format!("indicators[{index}].{key}"),
                message: format!("{}: must be at least 1", config.feature_id),
            }),
            None => Err(StrategyError::InvalidSetting {
                key_path: format!("indicators[{index}].{key}"),
                message: format!("{}: missing", config.feature_id),
            }),
        }
    };
    let source = || prices(bars, config.source);
    let over_close = |average: Vec<f64>| -> Vec<f64> {
        bars.iter()
            .zip(average)
            .map(|(bar, average)| bar.close / average)
            .collect()
    };
    Ok(match config.kind {
        IndicatorKind::Rsi => rsi(&source(), period(config.period, "period")?),
        IndicatorKind::Sma => over_close(sma(&source(), period(config.period, "period")?)),
        IndicatorKind::Ema => over_close(ema(&source(), period(config.period, "period")?)),
        // The middle band is the SMA; the bands' width does not enter the ratio.
        IndicatorKind::BollingerBands => {
            over_close(sma(&source(), period(config.period, "period")?))
        }
        IndicatorKind::Macd => {
            let fast = period(config.fast_period, "fast_period")?;
            let slow = period(config.slow_period, "slow_period")?;
            let signal = period(config.signal_period, "signal_period")?;
            macd(&source(), fast, slow, signal).histogram
        }
        IndicatorKind::Atr => {
            let atr = atr(bars, period(config.period, "period")?);
            bars.iter()
                .zip(atr)
                .map(|(bar, atr)| atr / bar.close)
                .collect()
        }
        IndicatorKind::Adx => adx(bars, period(config.period, "period")?).adx,
        IndicatorKind::Stochastic => {
            let k_period = period(config.k_period, "k_period")?;
            let d_period = period(config.d_period, "d_period")?;
            stochastic(bars, k_period, d_period).k
        }
        IndicatorKind::Roc => roc(&source(), period(config.period, "period")?),
    })
}

#[cfg(test)]
mod tests;
