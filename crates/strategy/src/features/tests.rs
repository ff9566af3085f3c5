//! Feature steps: names, contents, alignment, and the proof that no step sees a later bar.

use market_data::{Timeframe, resample};

use super::testing::{bars_from_closes, config, sample_bars, symbol, wave_closes};
use super::*;
use crate::indicators;
use crate::{IndicatorKind, PriceSource};

const H1: Timeframe = Timeframe::H1;
const H4: Timeframe = Timeframe::H4;

#[test]
fn names_follow_timeframes_then_indicators_then_sets() {
    let mut config = config(&["EURUSD"], &[H1, H4]);
    config.model.include_price_context = true;
    assert_eq!(
        feature_names(&config),
        [
            "rsi.oversold",
            "rsi.neutral",
            "rsi.overbought",
            "sma_20.below",
            "sma_20.above",
            "macd",
            "rsi.oversold@4h",
            "rsi.neutral@4h",
            "rsi.overbought@4h",
            "sma_20.below@4h",
            "sma_20.above@4h",
            "macd@4h",
            "price.log_return",
            "price.range",
            "price.body",
        ]
    );
    // The base timeframe comes first wherever it is listed.
    config.training_data.timeframes = vec![H4, H1, H4];
    assert_eq!(timeframe_order(&config), [H1, H4]);
}

#[test]
fn steps_hold_memberships_raw_inputs_and_price_context() {
    let mut config = config(&["X"], &[H1]);
    config.model.include_price_context = true;
    let bars = bars_from_closes(H1, &wave_closes(200, 0.0));
    let table = feature_table(&config, &symbol("X"), &[(H1, &bars)]).unwrap();
    assert_eq!(table.width, 9);
    assert_eq!(table.values.len(), 200 * 9);

    let rsi = indicators::rsi(&indicators::prices(&bars, PriceSource::Close), 14);
    let sma = indicators::sma(&indicators::prices(&bars, PriceSource::Close), 20);
    let macd = indicators::macd(&indicators::prices(&bars, PriceSource::Close), 12, 26, 9);
    let rsi_sets = &config.fuzzy_sets[0].sets;
    let sma_sets = &config.fuzzy_sets[1].sets;
    for i in [40, 77, 199] {
        let row = table.row(i);
        for (k, set) in rsi_sets.iter().enumerate() {
            assert_eq!(row[k], set.membership.evaluate(rsi[i]));
        }
        let ratio = bars[i].close / sma[i];
        assert_eq!(row[3], sma_sets[0].membership.evaluate(ratio));
        assert_eq!(row[4], sma_sets[1].membership.evaluate(ratio));
        assert_eq!(row[5], macd.histogram[i]);
        let (bar, previous) = (bars[i], bars[i - 1]);
        assert_eq!(row[6], (bar.close / previous.close).ln());
        assert_eq!(row[7], (bar.high - bar.low) / bar.close);
        assert_eq!(row[8], (bar.close - bar.open) / bar.close);
    }
    // Memberships are degrees; they sum to about 1 where the sets overlap well.
    assert!(table.row(100)[..3].iter().all(|m| (0.0..=1.0).contains(m)));
    // Warm-up: RSI from bar 14, MACD's histogram from bar 33, the return from bar 1.
    assert!(table.row(13)[0].is_nan() && table.row(14)[0].is_finite());
    assert!(table.row(32)[5].is_nan() && table.row(33)[5].is_finite());
    assert!(table.row(0)[6].is_nan() && table.row(1)[6].is_finite());
}

#[test]
fn higher_timeframes_use_only_closed_bars() {
    // Base 1h from 00:00; 4h bars from 00:00 close at 04:00, 08:00, ...
    let base = bars_from_closes(H1, &[1.0; 10]);
    let higher = bars_from_closes(H4, &[1.0; 3]);
    let aligned = align(&base, H1, &higher, H4);
    // Base bars 00..02 close before 04:00; 03 closes at 04:00 exactly.
    assert_eq!(
        aligned,
        [
            None,
            None,
            None,
            Some(0),
            Some(0),
            Some(0),
            Some(0),
            Some(1),
            Some(1),
            Some(1)
        ]
    );
    // A gap in the higher series: the last closed bar stays in use.
    let sparse = [higher[0], higher[2]];
    assert_eq!(
        align(&base, H1, &sparse, H4)[7..],
        [Some(0), Some(0), Some(0)]
    );
}

fn eurusd(config: &StrategyConfig, base: &[Bar]) -> FeatureTable {
    let higher = resample(base, H1, H4).unwrap();
    feature_table(config, &symbol("EURUSD"), &[(H1, base), (H4, &higher)]).unwrap()
}

/// Bitwise equality, NaN equal to NaN.
fn same(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

#[test]
fn changing_a_base_bar_changes_no_earlier_step() {
    let mut config = config(&["EURUSD"], &[H1, H4]);
    config.model.include_price_context = true;
    let bars = sample_bars("EURUSD", H1);
    let original = eurusd(&config, &bars);
    // Bars at every offset inside their 4h bar, and at the very end.
    for k in [1000, 1001, 1002, 1003, 2500, bars.len() - 1] {
        let mut changed = bars.clone();
        changed[k].close *= 1.02;
        changed[k].high = changed[k].high.max(changed[k].close);
        // The 4h bars are rebuilt from the changed hours, as a live feed would.
        let perturbed = eurusd(&config, &changed);
        let width = original.width;
        assert!(
            same(
                &original.values[..k * width],
                &perturbed.values[..k * width]
            ),
            "a step before bar {k} changed"
        );
        assert!(
            !same(original.row(k), perturbed.row(k)),
            "bar {k} changed nothing at all"
        );
    }
}

#[test]
fn changing_a_higher_bar_changes_no_step_that_closed_before_it() {
    let config = config(&["EURUSD"], &[H1, H4]);
    let base = sample_bars("EURUSD", H1);
    let higher = resample(&base, H1, H4).unwrap();
    let symbol = symbol("EURUSD");
    let table = |higher: &[Bar]| feature_table(&config, &symbol, &[(H1, &base), (H4, higher)]);
    let original = table(&higher).unwrap();
    for m in [300, 301, 900, higher.len() - 1] {
        let mut changed = higher.clone();
        changed[m].close *= 1.02;
        changed[m].high = changed[m].high.max(changed[m].close);
        let perturbed = table(&changed).unwrap();
        let closes_at = changed[m].timestamp + H4.duration();
        let mut seen = false;
        for (i, bar) in base.iter().enumerate() {
            let (before, after) = (original.row(i), perturbed.row(i));
            if bar.timestamp + H1.duration() < closes_at {
                assert!(
                    same(before, after),
                    "step {i} saw 4h bar {m} before it closed"
                );
            } else if !seen {
                seen = true;
                assert!(!same(before, after), "4h bar {m} never reached step {i}");
            }
        }
    }
}

#[test]
fn missing_or_empty_series_are_errors() {
    let config = config(&["EURUSD"], &[H1, H4]);
    let bars = bars_from_closes(H1, &wave_closes(50, 0.0));
    let err = feature_table(&config, &symbol("EURUSD"), &[(H1, &bars)]).unwrap_err();
    assert_eq!(err.to_string(), "no bars given for EURUSD 4h");
    let err = feature_table(&config, &symbol("EURUSD"), &[(H1, &bars), (H4, &[])]).unwrap_err();
    assert_eq!(err.to_string(), "no bars given for EURUSD 4h");
}

#[test]
fn inconsistent_strategies_are_errors() {
    let bars = bars_from_closes(H1, &wave_closes(50, 0.0));
    let run = |config: &StrategyConfig| {
        feature_table(config, &symbol("X"), &[(H1, &bars)])
            .unwrap_err()
            .to_string()
    };

    let mut twice = config(&["X"], &[H1]);
    twice.indicators[2].feature_id = "rsi".to_owned();
    assert_eq!(
        run(&twice),
        r#"indicators[2].feature_id: "rsi" is used by an earlier indicator too"#
    );

    let mut orphan = config(&["X"], &[H1]);
    orphan.fuzzy_sets[1].feature_id = "ema".to_owned();
    assert_eq!(
        run(&orphan),
        "fuzzy_sets.ema: no indicator has this feature_id"
    );

    let mut unordered = config(&["X"], &[H1]);
    unordered.fuzzy_sets[0].sets[1].membership = Membership::Triangular {
        a: 50.0,
        b: 25.0,
        c: 75.0,
    };
    assert_eq!(
        run(&unordered),
        "fuzzy_sets.rsi.neutral: Triangular { a: 50.0, b: 25.0, c: 75.0 }: parameters must be finite and ascending (sigma >= 0)"
    );

    let mut no_period = config(&["X"], &[H1]);
    no_period
        .indicators
        .push(super::testing::indicator(IndicatorKind::Roc, "roc"));
    no_period.indicators[3].period = None;
    assert_eq!(run(&no_period), "indicators[3].period: roc: missing");
}

#[test]
fn a_lower_timeframe_aligns_to_its_last_closed_bar() {
    // Not the usual set-up, but well defined: the last 1h bar of each 4h bar.
    let base = bars_from_closes(H4, &[1.0; 3]);
    let lower = bars_from_closes(H1, &[1.0; 12]);
    assert_eq!(align(&base, H4, &lower, H1), [Some(3), Some(7), Some(11)]);
}
