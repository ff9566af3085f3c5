//! Strategies and bars for the crate's tests, built in code.

use chrono::{DateTime, TimeZone, Utc};
use market_data::{Bar, LocalStore, Symbol, Timeframe};

use crate::{
    Activation, CheckpointPolicy, DataSplit, FuzzySet, IndicatorConfig, IndicatorFuzzySets,
    IndicatorKind, LabelConfig, Membership, ModelConfig, ModelKind, Optimizer, PriceSource,
    StrategyConfig, TrainingData,
};

pub(crate) fn symbol(name: &str) -> Symbol {
    name.parse().unwrap()
}

pub(crate) fn indicator(kind: IndicatorKind, feature_id: &str) -> IndicatorConfig {
    IndicatorConfig {
        kind,
        feature_id: feature_id.to_owned(),
        period: Some(14),
        fast_period: Some(12),
        slow_period: Some(26),
        signal_period: Some(9),
        k_period: Some(14),
        d_period: Some(3),
        std_dev: Some(2.0),
        source: PriceSource::Close,
    }
}

pub(crate) fn sets(feature_id: &str, sets: &[(&str, Membership)]) -> IndicatorFuzzySets {
    IndicatorFuzzySets {
        feature_id: feature_id.to_owned(),
        sets: sets
            .iter()
            .map(|(name, membership)| FuzzySet {
                name: (*name).to_owned(),
                membership: *membership,
            })
            .collect(),
    }
}

fn tri(a: f64, b: f64, c: f64) -> Membership {
    Membership::Triangular { a, b, c }
}

/// RSI and SMA ratio with fuzzy sets, MACD without (so raw); one symbol,
/// base timeframe only; no price context; threshold 0.5 %, lookahead 20.
pub(crate) fn config(symbols: &[&str], timeframes: &[Timeframe]) -> StrategyConfig {
    let mut sma = indicator(IndicatorKind::Sma, "sma_20");
    sma.period = Some(20);
    StrategyConfig {
        name: "test".to_owned(),
        description: None,
        source: None,
        training_data: TrainingData {
            symbols: symbols.iter().map(|s| symbol(s)).collect(),
            timeframes: timeframes.to_vec(),
            base_timeframe: timeframes[0],
        },
        indicators: vec![
            indicator(IndicatorKind::Rsi, "rsi"),
            sma,
            indicator(IndicatorKind::Macd, "macd"),
        ],
        fuzzy_sets: vec![
            sets(
                "rsi",
                &[
                    ("oversold", tri(0.0, 0.0, 35.0)),
                    ("neutral", tri(25.0, 50.0, 75.0)),
                    ("overbought", tri(65.0, 100.0, 100.0)),
                ],
            ),
            sets(
                "sma_20",
                &[
                    ("below", tri(0.99, 0.99, 1.0)),
                    ("above", tri(1.0, 1.01, 1.01)),
                ],
            ),
        ],
        model: ModelConfig {
            kind: ModelKind::Mlp,
            hidden_layers: vec![16],
            activation: Activation::Relu,
            dropout: 0.0,
            lookback_periods: 3,
            scale_features: true,
            include_price_context: false,
            symbol_embedding_dim: 0,
            learning_rate: 0.001,
            batch_size: 32,
            epochs: 1,
            optimizer: Optimizer::Adam,
            early_stopping_patience: None,
            seed: 42,
            checkpoint: CheckpointPolicy::default(),
        },
        labels: LabelConfig {
            zigzag_threshold: 0.005,
            label_lookahead: 20,
        },
        data_split: DataSplit {
            train: 0.7,
            validation: 0.15,
            test: 0.15,
        },
    }
}

pub(crate) fn data_dir() -> &'static str {
    concat!(env!("CARGO_MANIFEST_DIR"), "/../../data")
}

/// A shipped sample series.
pub(crate) fn sample_bars(name: &str, timeframe: Timeframe) -> Vec<Bar> {
    LocalStore::new(data_dir())
        .read(&symbol(name), timeframe)
        .unwrap()
}

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap()
}

/// `closes.len()` consecutive bars of `timeframe` from 2024-01-01, each
/// opening at the previous close, 0.1 % above and below.
pub(crate) fn bars_from_closes(timeframe: Timeframe, closes: &[f64]) -> Vec<Bar> {
    let mut open = closes.first().copied().unwrap_or(1.0);
    closes
        .iter()
        .enumerate()
        .map(|(i, &close)| {
            let bar = Bar {
                timestamp: start() + timeframe.duration() * i as i32,
                open,
                high: open.max(close) * 1.001,
                low: open.min(close) * 0.999,
                close,
                volume: 1.0,
            };
            open = close;
            bar
        })
        .collect()
}

/// A wave whose swings grow and fade: deterministic, with moves large
/// enough for BUY and SELL and quiet stretches for HOLD.
pub(crate) fn wave_closes(len: usize, phase: f64) -> Vec<f64> {
    (0..len)
        .map(|i| {
            let t = i as f64 + phase;
            let swing = 0.03 * (t / 40.0).sin().powi(2);
            100.0 * (1.0 + swing * (t / 9.0).sin() + 0.001 * (t / 2.3).cos())
        })
        .collect()
}
