//! Samples, splits, balancing and scaling, on synthetic waves and the shipped EURUSD hours.

use chrono::Duration;
use market_data::Timeframe;

use super::*;
use crate::features::testing::{bars_from_closes, config, sample_bars, symbol, wave_closes};
use crate::features::{FeatureTable, feature_table};
use crate::zigzag_labels;

const H1: Timeframe = Timeframe::H1;
const H4: Timeframe = Timeframe::H4;

fn build(config: &StrategyConfig, name: &str, bars: Vec<Bar>) -> SymbolSamples {
    build_symbol_samples(config, &symbol(name), &[(H1, bars)]).unwrap()
}

fn wave(len: usize, phase: f64) -> Vec<Bar> {
    bars_from_closes(H1, &wave_closes(len, phase))
}

#[test]
fn samples_are_windows_of_steps_oldest_first_with_their_labels() {
    let config = config(&["X"], &[H1]);
    let bars = wave(300, 0.0);
    let samples = build(&config, "X", bars.clone());
    let table: FeatureTable = feature_table(&config, &symbol("X"), &[(H1, &bars)]).unwrap();
    let closes: Vec<f64> = bars.iter().map(|bar| bar.close).collect();
    let labels = zigzag_labels(&closes, 0.005, 20);

    let window = 4; // lookback 3 + the current bar
    assert_eq!(samples.layout().window, window);
    assert_eq!(samples.layout().width(), 6);
    // MACD's histogram is the last to warm up (bar 33); the first window
    // ends 3 bars later. Labels run out within the last 20 bars, though a
    // few of those bars may still see a decisive move.
    let first = 33 + 3;
    let ends: Vec<usize> = (first..bars.len())
        .filter(|&i| labels[i].is_some())
        .collect();
    assert!(ends.len() < bars.len() - first && ends.len() > bars.len() - first - 20);
    let expected_times: Vec<_> = ends.iter().map(|&i| bars[i].timestamp).collect();
    assert_eq!(samples.timestamps(), expected_times);
    let last = *ends.last().unwrap();
    for (k, i) in [(0, first), (50, first + 50), (samples.len() - 1, last)] {
        let sample = samples.sample(k);
        for (step, row) in (i + 1 - window..=i).enumerate() {
            let expected: Vec<f32> = table.row(row).iter().map(|&v| v as f32).collect();
            assert_eq!(sample[step * 6..(step + 1) * 6], expected[..], "sample {k}");
        }
        assert_eq!(Some(samples.labels()[k]), labels[i]);
    }
    assert!(samples.features().iter().all(|v| v.is_finite()));
    let counts = samples.label_counts();
    assert_eq!(counts.iter().sum::<usize>(), samples.len());
    assert!(counts.iter().all(|&c| c > 0), "{counts:?}");
}

#[test]
fn too_little_data_or_a_missing_series_is_an_error() {
    let config = config(&["X"], &[H1]);
    let err = build_symbol_samples(&config, &symbol("X"), &[(H1, wave(40, 0.0))]).unwrap_err();
    assert!(
        matches!(err, StrategyError::NotEnoughData { .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "X 1h: no sample from 40 bars: 7 have every feature (indicators need warm-up), \
         a window takes 4 such bars in a row, and 36 have a label (the last 20 may not)"
    );

    let err = build_symbol_samples(&config, &symbol("X"), &[(H4, wave(400, 0.0))]).unwrap_err();
    assert_eq!(err.to_string(), "no bars given for X 1h");
    let multi = super::super::features::testing::config(&["X"], &[H1, H4]);
    let err = build_symbol_samples(&multi, &symbol("X"), &[(H1, wave(400, 0.0))]).unwrap_err();
    assert!(matches!(
        err,
        StrategyError::MissingSeries { timeframe: H4, .. }
    ));
}

#[test]
fn unusable_label_settings_are_errors() {
    let mut config = config(&["X"], &[H1]);
    config.labels.zigzag_threshold = 0.0;
    let err = build_symbol_samples(&config, &symbol("X"), &[(H1, wave(400, 0.0))]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "training.labels.zigzag_threshold: 0 is not a fraction between 0 and 1"
    );
    config.labels.zigzag_threshold = 0.01;
    config.labels.label_lookahead = 0;
    let err = build_symbol_samples(&config, &symbol("X"), &[(H1, wave(400, 0.0))]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "training.labels.label_lookahead: must be at least 1"
    );
}

/// Splits of one symbol, unscaled, so values can be traced back.
fn unscaled(names: &[&str]) -> StrategyConfig {
    let mut config = config(names, &[H1]);
    config.model.scale_features = false;
    config
}

#[test]
fn splits_are_chronological_and_purged_at_the_boundaries() {
    let config = unscaled(&["X"]);
    let samples = build(&config, "X", wave(1000, 0.0));
    let n = samples.len();
    let data = assemble(&config, vec![samples.clone()]);

    // Boundaries at 70 % and 85 % of the samples.
    let (train_end, validation_end) = (
        (n as f64 * 0.7).round() as usize,
        (n as f64 * 0.85).round() as usize,
    );
    let ts = samples.timestamps();
    assert_eq!(data.test.timestamps, ts[validation_end..]);
    assert_eq!(data.validation.timestamps[0], ts[train_end]);
    assert_eq!(data.train.timestamps[0], ts[0]);
    for split in [&data.train, &data.validation, &data.test] {
        assert!(split.timestamps.windows(2).all(|w| w[0] < w[1]));
        assert!(split.symbol_ids.iter().all(|&id| id == 0));
        assert_eq!(split.features.len(), split.len() * data.layout.sample_len());
    }
    assert!(data.train.timestamps.last() < data.validation.timestamps.first());
    assert!(data.validation.timestamps.last() < data.test.timestamps.first());

    // The dropped train samples are exactly those whose label needs a close
    // of the first validation bar or later.
    let first_validation_bar = samples.bars[train_end];
    let kept: Vec<_> = (0..train_end)
        .filter(|&i| samples.label_ends[i] < first_validation_bar)
        .collect();
    assert!(train_end - kept.len() <= 20 && kept.len() < train_end);
    assert_eq!(data.train.len(), kept.len());
    let first_test_bar = samples.bars[validation_end];
    assert!(data.validation.len() < validation_end - train_end);
    for (split, next_bar) in [
        (&data.train, first_validation_bar),
        (&data.validation, first_test_bar),
    ] {
        for t in &split.timestamps {
            let i = ts.iter().position(|s| s == t).unwrap();
            assert!(samples.label_ends[i] < next_bar);
        }
    }
    // Features and labels travel with their samples.
    let last_train = kept[kept.len() - 1];
    let len = data.layout.sample_len();
    assert_eq!(
        data.train.features[(kept.len() - 1) * len..],
        *samples.sample(last_train)
    );
    assert_eq!(
        data.train.labels.last(),
        Some(&samples.labels()[last_train])
    );
    assert_eq!(data.scaler, None);
}

#[test]
fn fractions_are_relative_to_their_sum() {
    let mut config = unscaled(&["X"]);
    config.data_split = DataSplit {
        train: 2.0,
        validation: 0.0,
        test: 2.0,
    };
    let samples = build(&config, "X", wave(600, 0.0));
    let n = samples.len();
    let data = assemble(&config, vec![samples]);
    assert!(data.validation.is_empty());
    assert_eq!(data.test.len(), n - (n as f64 / 2.0).round() as usize);
}

#[test]
fn train_is_balanced_across_symbols_and_the_rest_is_not() {
    let config = unscaled(&["SMALL", "BIG"]);
    let small = build(&config, "SMALL", wave(500, 3.0));
    let big = build(&config, "BIG", wave(1500, 0.0));
    // Given in another order than the strategy's: ids still follow it.
    let data = assemble(&config, vec![big.clone(), small.clone()]);
    assert_eq!(data.symbols, [symbol("SMALL"), symbol("BIG")]);

    let count = |samples: &Samples, id| samples.symbol_ids.iter().filter(|&&s| s == id).count();
    let small_train = count(&data.train, 0);
    assert!(small_train > 200, "{small_train}");
    assert_eq!(count(&data.train, 1), small_train);
    // Validation and test keep every sample of each symbol.
    let [_, small_validation, small_test] = split(&small, &config.data_split);
    let [big_train, big_validation, big_test] = split(&big, &config.data_split);
    assert_eq!(count(&data.validation, 0), small_validation.len());
    assert_eq!(count(&data.validation, 1), big_validation.len());
    assert_eq!(count(&data.test, 0), small_test.len());
    assert_eq!(count(&data.test, 1), big_test.len());
    // Symbols one after the other, each in time order.
    let ids = &data.train.symbol_ids;
    assert!(ids.windows(2).all(|w| w[0] <= w[1]));
    let big_times = &data.train.timestamps[small_train..];
    assert!(big_times.windows(2).all(|w| w[0] < w[1]));
    // The big symbol's train samples are spread over its whole train period.
    let big_ts = big.timestamps();
    assert_eq!(big_times[0], big_ts[big_train[0]]);
    let last_kept = *big_times.last().unwrap();
    let last_train = big_ts[*big_train.last().unwrap()];
    assert!(
        last_train - last_kept < Duration::hours(5),
        "{last_kept} {last_train}"
    );
    // Deterministic.
    assert_eq!(assemble(&config, vec![small, big]), data);
}

#[test]
fn downsampling_takes_an_even_stride() {
    assert_eq!(downsample(&[10, 11, 12, 13, 14, 15], 3), [10, 12, 14]);
    assert_eq!(downsample(&[10, 11, 12, 13, 14], 2), [10, 12]);
    assert_eq!(downsample(&[1, 2], 5), [1, 2]);
}

#[test]
fn the_scaler_is_fitted_on_train_only_and_applied_to_every_split() {
    let mut config = config(&["X"], &[H1]);
    config.model.include_price_context = true;
    let samples = build(&config, "X", wave(800, 0.0));
    let data = assemble(&config, vec![samples.clone()]);
    let scaler = data.scaler.clone().expect("scale_features is on");
    let width = data.layout.width();
    assert_eq!(scaler.mean.len(), width);

    // Train features are standardised per column over every step.
    let rows = data.train.features.len() / width;
    for column in 0..width {
        let values: Vec<f64> = data
            .train
            .features
            .iter()
            .skip(column)
            .step_by(width)
            .map(|&v| f64::from(v))
            .collect();
        assert_eq!(values.len(), rows);
        let mean = values.iter().sum::<f64>() / rows as f64;
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / rows as f64;
        assert!(
            mean.abs() < 1e-4,
            "{}: mean {mean}",
            data.layout.names[column]
        );
        // A column constant over train (a set never reached) stays unscaled.
        assert!(
            (var - 1.0).abs() < 1e-3 || (var == 0.0 && scaler.std[column] == 1.0),
            "{}: variance {var}",
            data.layout.names[column]
        );
    }

    // Changing samples of the test split changes nothing in the scaler.
    let mut changed = samples.clone();
    let test_start = changed.len() - data.test.len();
    let sample_len = changed.layout.sample_len();
    for value in &mut changed.features[test_start * sample_len..] {
        *value = *value * 3.0 + 7.0;
    }
    let again = assemble(&config, vec![changed]);
    assert_eq!(again.scaler, data.scaler);
    assert_eq!(again.train, data.train);
    assert_eq!(again.validation, data.validation);
    assert_ne!(again.test, data.test);

    // The same transform was applied to the other splits.
    let unscaled = assemble(&unscaled_like(&config), vec![samples]);
    for (scaled, raw) in [
        (&data.validation, &unscaled.validation),
        (&data.test, &unscaled.test),
    ] {
        for (i, (s, r)) in scaled.features.iter().zip(&raw.features).enumerate() {
            let column = i % width;
            let expected =
                (f64::from(*r) - f64::from(scaler.mean[column])) / f64::from(scaler.std[column]);
            assert!((f64::from(*s) - expected).abs() < 1e-4 * expected.abs().max(1.0));
        }
    }
}

fn unscaled_like(config: &StrategyConfig) -> StrategyConfig {
    let mut config = config.clone();
    config.model.scale_features = false;
    config
}

#[test]
fn scaler_edge_cases() {
    // Two columns: constant, and 1, 3.
    let scaler = Scaler::fit(&[5.0, 1.0, 5.0, 3.0], 2);
    assert_eq!(scaler.mean, [5.0, 2.0]);
    assert_eq!(scaler.std, [1.0, 1.0]);
    let mut values = [5.0, 1.0, 6.0, 4.0];
    scaler.apply(&mut values);
    assert_eq!(values, [0.0, -1.0, 1.0, 2.0]);
    let empty = Scaler::fit(&[], 2);
    assert_eq!(empty.mean, [0.0, 0.0]);
    assert_eq!(empty.std, [1.0, 1.0]);
    // A constant column with rounding noise is still constant.
    let noisy = Scaler::fit(&[1.1, 1.1_f32.next_up(), 1.1], 1);
    assert_eq!(noisy.std, [1.0]);
}

#[test]
fn no_symbols_give_empty_splits_with_the_strategy_layout() {
    let config = config(&["X"], &[H1, H4]);
    let data = assemble(&config, Vec::new());
    assert_eq!(data.layout.window, 4);
    assert_eq!(data.layout.width(), 12);
    assert!(data.train.is_empty() && data.validation.is_empty() && data.test.is_empty());
}

/// The shipped EURUSD hours with 4h bars resampled from them.
#[test]
fn eurusd_sample_data_gives_every_class() {
    let config = config(&["EURUSD"], &[H1, H4]);
    let hours = sample_bars("EURUSD", H1);
    let four_hours = market_data::resample(&hours, H1, H4).unwrap();
    let samples = build_symbol_samples(
        &config,
        &symbol("EURUSD"),
        &[(H1, hours.clone()), (H4, four_hours)],
    )
    .unwrap();
    let counts = samples.label_counts();
    // 6225 bars, less the 4h MACD warm-up (34 4h bars, ~130 hours), the
    // window and the undecided tail.
    assert!((5900..6225).contains(&samples.len()), "{}", samples.len());
    assert_eq!(counts, [1079, 4251, 749], "BUY, HOLD, SELL");

    let data = assemble(&config, vec![samples]);
    for split in [&data.train, &data.validation, &data.test] {
        assert!(split.len() > 500);
        assert!(split.features.iter().all(|v| v.is_finite()));
    }
    let train_counts =
        Label::ALL.map(|label| data.train.labels.iter().filter(|&&l| l == label).count());
    assert!(train_counts.iter().all(|&c| c > 300), "{train_counts:?}");
}
