//! Reference values: published tables where they exist (Wilder RSI and EMA
//! examples as printed by StockCharts' ChartSchool), otherwise computed by hand
//! (exact fractions) on small sets.

use chrono::{DateTime, Duration, TimeZone, Utc};
use market_data::Bar;

use super::*;

/// Asserts `actual` is NaN exactly where `expected` is `None` and within
/// `tolerance` elsewhere.
#[track_caller]
fn assert_series(actual: &[f64], expected: &[Option<f64>], tolerance: f64) {
    assert_eq!(actual.len(), expected.len(), "length");
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        match e {
            None => assert!(a.is_nan(), "[{i}]: expected NaN, got {a}"),
            Some(e) => assert!(
                (a - e).abs() <= tolerance,
                "[{i}]: expected {e}, got {a} (tolerance {tolerance})"
            ),
        }
    }
}

/// Bitwise equality, NaN equal to NaN.
fn same(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

fn warm_up(count: usize, values: &[f64]) -> Vec<Option<f64>> {
    std::iter::repeat_n(None, count)
        .chain(values.iter().copied().map(Some))
        .collect()
}

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap()
}

/// Bars from (high, low, close); open is the previous close.
fn bars(hlc: &[(f64, f64, f64)]) -> Vec<Bar> {
    let mut open = hlc[0].2;
    hlc.iter()
        .enumerate()
        .map(|(i, &(high, low, close))| {
            let bar = Bar {
                timestamp: start() + Duration::hours(i as i64),
                open,
                high,
                low,
                close,
                volume: 1.0,
            };
            open = close;
            bar
        })
        .collect()
}

/// A small set with a gap up (bar 4) and a gap down (bar 5).
fn small_bars() -> Vec<Bar> {
    bars(&[
        (10.0, 8.0, 9.0),
        (11.0, 9.0, 10.5),
        (12.0, 10.0, 11.0),
        (11.5, 9.5, 10.0),
        (13.0, 12.0, 12.5),
        (12.5, 10.0, 10.5),
        (10.5, 8.5, 10.0),
        (12.0, 10.0, 11.5),
        (13.0, 11.0, 12.5),
        (12.5, 11.5, 11.5),
    ])
}

/// Closes of the RSI example in Wilder's style as published by StockCharts
/// ("Relative Strength Index (RSI)", ChartSchool), with its printed RSI(14).
#[test]
fn rsi_matches_the_published_wilder_example() {
    let closes = [
        44.3389, 44.0902, 44.1497, 43.6124, 44.3278, 44.8264, 45.0955, 45.4245, 45.8433, 46.0826,
        45.8931, 46.0328, 45.6140, 46.2820, 46.2820, 46.0028, 46.0328, 46.4116, 46.2222, 45.6439,
        46.2122, 46.2521, 45.7137, 46.4515, 45.7835, 45.3548, 44.0288, 44.1783, 44.2181, 44.5672,
        43.4205, 42.6628, 43.1314,
    ];
    let published = [
        70.53, 66.32, 66.55, 69.41, 66.36, 57.97, 62.93, 63.26, 56.06, 62.38, 54.71, 50.42, 39.99,
        41.46, 41.87, 45.46, 37.30, 33.08, 37.77,
    ];
    // Printed to two decimals.
    assert_series(&rsi(&closes, 14), &warm_up(14, &published), 0.005 + 1e-9);
}

#[test]
fn rsi_edge_cases() {
    let rising: Vec<f64> = (0..10).map(f64::from).collect();
    assert_series(&rsi(&rising, 3), &warm_up(3, &[100.0; 7]), 0.0);
    assert_series(&rsi(&[5.0; 6], 3), &warm_up(3, &[50.0; 3]), 0.0);
    let falling: Vec<f64> = (0..6).map(|i| 10.0 - f64::from(i)).collect();
    assert_series(&rsi(&falling, 3), &warm_up(3, &[0.0; 3]), 0.0);
    assert!(rsi(&[1.0, 2.0, 3.0], 3).iter().all(|v| v.is_nan()));
    assert!(rsi(&[1.0, 2.0, 3.0], 0).iter().all(|v| v.is_nan()));
}

/// The 10-day SMA and EMA example published by StockCharts ("Moving
/// Averages - Simple and Exponential", ChartSchool), printed to two decimals.
#[test]
fn sma_and_ema_match_the_published_example() {
    let closes = [
        22.27, 22.19, 22.08, 22.17, 22.18, 22.13, 22.23, 22.43, 22.24, 22.29, 22.15, 22.39, 22.38,
        22.61, 23.36, 24.05, 23.75, 23.83, 23.95, 23.63, 23.82, 23.87, 23.65, 23.19, 23.10, 23.33,
        22.68, 23.10, 22.40, 22.17,
    ];
    let published_sma = [
        22.22, 22.21, 22.23, 22.26, 22.31, 22.42, 22.61, 22.77, 22.91, 23.08, 23.21, 23.38, 23.53,
        23.65, 23.71, 23.69, 23.61, 23.51, 23.43, 23.28, 23.13,
    ];
    let published_ema = [
        22.22, 22.21, 22.24, 22.27, 22.33, 22.52, 22.80, 22.97, 23.13, 23.28, 23.34, 23.43, 23.51,
        23.54, 23.47, 23.40, 23.39, 23.26, 23.23, 23.08, 22.92,
    ];
    // The published table rounds its intermediate values too: allow a cent.
    assert_series(&sma(&closes, 10), &warm_up(9, &published_sma), 0.01);
    assert_series(&ema(&closes, 10), &warm_up(9, &published_ema), 0.01);
}

#[test]
fn sma_and_ema_by_hand() {
    let values = [1.0, 2.0, 3.0, 4.0, 5.0, 10.0];
    assert_series(
        &sma(&values, 3),
        &warm_up(2, &[2.0, 3.0, 4.0, 19.0 / 3.0]),
        1e-12,
    );
    // alpha = 0.5, seeded with (1 + 2 + 3) / 3.
    assert_series(&ema(&values, 3), &warm_up(2, &[2.0, 3.0, 4.0, 7.0]), 1e-12);
    // A leading warm-up is skipped.
    let nan = f64::NAN;
    assert_series(
        &ema(&[nan, nan, 1.0, 2.0, 3.0, 4.0], 3),
        &warm_up(4, &[2.0, 3.0]),
        1e-12,
    );
    assert_series(
        &sma(&[nan, 1.0, 2.0, 3.0], 2),
        &warm_up(2, &[1.5, 2.5]),
        1e-12,
    );
    assert!(sma(&values, 7).iter().all(|v| v.is_nan()));
    assert!(ema(&values, 0).iter().all(|v| v.is_nan()));
}

/// On a straight line an SMA-seeded EMA(n) lags the price by exactly
/// `(n - 1) / 2` steps, so MACD(12, 26, 9) settles at once on
/// `(25 - 11) / 2 * slope` with a zero histogram.
#[test]
fn macd_on_a_straight_line() {
    let values: Vec<f64> = (0..60).map(|i| 100.0 + 0.5 * f64::from(i)).collect();
    let macd = macd(&values, 12, 26, 9);
    assert_series(&macd.line, &warm_up(25, &[3.5; 35]), 1e-9);
    assert_series(&macd.signal, &warm_up(33, &[3.5; 27]), 1e-9);
    assert_series(&macd.histogram, &warm_up(33, &[0.0; 27]), 1e-9);
}

#[test]
fn macd_by_hand() {
    let closes: Vec<f64> = small_bars().iter().map(|bar| bar.close).collect();
    let macd = macd(&closes, 2, 3, 2);
    // At bar 2: EMA(2) = 127 / 12, EMA(3) = 61 / 6 (both seeded), line 5 / 12.
    assert_series(
        &macd.line,
        &warm_up(
            2,
            &[
                5.0 / 12.0,
                1.0 / 9.0,
                95.0 / 216.0,
                19.0 / 1296.0,
                -1123.0 / 7776.0,
                5935.0 / 46656.0,
                83069.0 / 279936.0,
                99799.0 / 1679616.0,
            ],
        ),
        1e-12,
    );
    assert_series(
        &macd.histogram,
        &warm_up(
            3,
            &[
                -11.0 / 72.0,
                19.0 / 324.0,
                -475.0 / 3888.0,
                -3.0 / 32.0,
                8299.0 / 139968.0,
                64057.0 / 839808.0,
                -90167.0 / 1679616.0,
            ],
        ),
        1e-12,
    );
}

#[test]
fn atr_by_hand() {
    let bars = small_bars();
    assert_series(
        &true_range(&bars),
        &[2.0, 2.0, 2.0, 2.0, 3.0, 2.5, 2.0, 2.0, 2.0, 1.0].map(Some),
        0.0,
    );
    // First ATR: (2 + 2 + 2) / 3; then (prev * 2 + TR) / 3.
    assert_series(
        &atr(&bars, 3),
        &warm_up(
            2,
            &[
                2.0,
                2.0,
                7.0 / 3.0,
                43.0 / 18.0,
                61.0 / 27.0,
                176.0 / 81.0,
                514.0 / 243.0,
                1271.0 / 729.0,
            ],
        ),
        1e-12,
    );
}

#[test]
fn adx_by_hand() {
    let adx = adx(&small_bars(), 3);
    // Bar 3: TR 2 + 2 + 2, +DM 1 + 1 + 0, -DM 0 + 0 + 0.5.
    assert_series(
        &adx.plus_di,
        &warm_up(
            3,
            &[
                100.0 / 3.0,
                40.476190476190,
                26.356589147287,
                18.579234972678,
                35.890151515152,
                40.337224383917,
                32.625229478101,
            ],
        ),
        1e-9,
    );
    assert_series(
        &adx.minus_di,
        &warm_up(
            3,
            &[
                25.0 / 3.0,
                4.761904761905,
                31.007751937984,
                43.989071038251,
                30.492424242424,
                20.881971465629,
                16.889588250721,
            ],
        ),
        1e-9,
    );
    // DX 60, 78.947..., 8.108...; ADX = their mean, then Wilder-smoothed.
    assert_series(
        &adx.adx,
        &warm_up(
            5,
            &[
                49.018492176387,
                46.216112688188,
                33.521155486847,
                32.940657330215,
                32.553658559126,
            ],
        ),
        1e-9,
    );
}

#[test]
fn bollinger_by_hand() {
    // The textbook population standard deviation example: mean 5, sigma 2.
    let values = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0, 11.0];
    let bands = bollinger(&values, 8, 2.5);
    assert_series(&bands.middle, &warm_up(7, &[5.0, 6.125]), 1e-12);
    // Second window: variance 349 / 8 - 6.125^2 = 6.109375.
    let sigma = 6.109375_f64.sqrt();
    assert_series(
        &bands.upper,
        &warm_up(7, &[10.0, 6.125 + 2.5 * sigma]),
        1e-12,
    );
    assert_series(
        &bands.lower,
        &warm_up(7, &[0.0, 6.125 - 2.5 * sigma]),
        1e-12,
    );
}

#[test]
fn stochastic_by_hand() {
    let stochastic = stochastic(&small_bars(), 3, 2);
    // Bar 2: (11 - 8) / (12 - 8); bar 3: (10 - 9) / (12 - 9); bar 4: (12.5 - 9.5) / (13 - 9.5).
    let k = [
        75.0,
        100.0 / 3.0,
        600.0 / 7.0,
        200.0 / 7.0,
        100.0 / 3.0,
        75.0,
        800.0 / 9.0,
        50.0,
    ];
    assert_series(&stochastic.k, &warm_up(2, &k), 1e-12);
    let d: Vec<f64> = k.windows(2).map(|w| (w[0] + w[1]) / 2.0).collect();
    assert_series(&stochastic.d, &warm_up(3, &d), 1e-12);
    // A flat window sits in the middle.
    let flat = bars(&[(1.0, 1.0, 1.0); 3]);
    assert_series(
        &super::stochastic(&flat, 2, 1).k,
        &[None, Some(50.0), Some(50.0)],
        0.0,
    );
}

#[test]
fn roc_by_hand() {
    let values = [9.0, 10.5, 11.0, 10.0, 0.0, 5.0, 10.0];
    // The last one has 0 two bars back: no percent change.
    let expected = [
        None,
        None,
        Some(200.0 / 9.0),
        Some(-100.0 / 21.0),
        Some(-100.0),
        Some(-50.0),
        None,
    ];
    assert_series(&roc(&values, 2), &expected, 1e-12);
}

fn config(kind: IndicatorKind) -> IndicatorConfig {
    IndicatorConfig {
        kind,
        feature_id: "x".to_owned(),
        period: Some(3),
        fast_period: Some(2),
        slow_period: Some(3),
        signal_period: Some(2),
        k_period: Some(3),
        d_period: Some(2),
        std_dev: Some(2.0),
        source: PriceSource::Close,
    }
}

#[test]
fn fuzzy_inputs_are_scale_free_where_the_indicator_allows() {
    let bars = small_bars();
    let input = |kind| fuzzy_input(&config(kind), 0, &bars).unwrap();
    let closes: Vec<f64> = bars.iter().map(|bar| bar.close).collect();

    // Price levels: close / average.
    let sma3 = sma(&closes, 3);
    assert_series(
        &input(IndicatorKind::Sma)[..4],
        &warm_up(2, &[11.0 / sma3[2], 10.0 / sma3[3]]),
        1e-12,
    );
    assert!(same(
        &input(IndicatorKind::BollingerBands),
        &input(IndicatorKind::Sma)
    ));
    let ema3 = ema(&closes, 3);
    assert_eq!(input(IndicatorKind::Ema)[9], 11.5 / ema3[9]);
    // ATR as a fraction of the close.
    assert_eq!(input(IndicatorKind::Atr)[2], 2.0 / 11.0);
    // Oscillators as they are.
    assert!(same(&input(IndicatorKind::Rsi), &rsi(&closes, 3)));
    assert!(same(
        &input(IndicatorKind::Macd),
        &macd(&closes, 2, 3, 2).histogram
    ));
    assert!(same(&input(IndicatorKind::Adx), &adx(&bars, 3).adx));
    assert!(same(
        &input(IndicatorKind::Stochastic),
        &stochastic(&bars, 3, 2).k
    ));
    assert!(same(&input(IndicatorKind::Roc), &roc(&closes, 3)));

    // Scaling every price scales nothing but MACD.
    let scaled: Vec<Bar> = bars
        .iter()
        .map(|bar| Bar {
            open: bar.open * 1000.0,
            high: bar.high * 1000.0,
            low: bar.low * 1000.0,
            close: bar.close * 1000.0,
            ..*bar
        })
        .collect();
    for kind in [
        IndicatorKind::Rsi,
        IndicatorKind::Sma,
        IndicatorKind::Ema,
        IndicatorKind::Atr,
        IndicatorKind::Adx,
        IndicatorKind::BollingerBands,
        IndicatorKind::Stochastic,
        IndicatorKind::Roc,
    ] {
        let plain = input(kind);
        let big = fuzzy_input(&config(kind), 0, &scaled).unwrap();
        for (p, b) in plain.iter().zip(&big) {
            assert!(
                (p.is_nan() && b.is_nan()) || (p - b).abs() <= 1e-9 * p.abs().max(1.0),
                "{kind:?}: {p} vs {b}"
            );
        }
    }
}

#[test]
fn sources_pick_the_price() {
    let bars = small_bars();
    let mut high_sma = config(IndicatorKind::Sma);
    high_sma.source = PriceSource::High;
    let highs = prices(&bars, PriceSource::High);
    assert_eq!(highs[..3], [10.0, 11.0, 12.0]);
    assert_eq!(prices(&bars, PriceSource::Open)[1], 9.0);
    assert_eq!(prices(&bars, PriceSource::Low)[1], 9.0);
    // The ratio is still taken against the close.
    assert_eq!(fuzzy_input(&high_sma, 0, &bars).unwrap()[2], 11.0 / 11.0);
}

#[test]
fn unusable_parameters_are_errors_naming_the_key() {
    let bars = small_bars();
    let mut missing = config(IndicatorKind::Macd);
    missing.slow_period = None;
    let err = fuzzy_input(&missing, 4, &bars).unwrap_err();
    assert_eq!(err.to_string(), "indicators[4].slow_period: x: missing");
    let mut zero = config(IndicatorKind::Rsi);
    zero.period = Some(0);
    let err = fuzzy_input(&zero, 1, &bars).unwrap_err();
    assert_eq!(
        err.to_string(),
        "indicators[1].period: x: must be at least 1"
    );
}
