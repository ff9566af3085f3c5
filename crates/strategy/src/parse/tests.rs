//! Tests of strategy file parsing: a full file, every kind of error with its
//! exact message, warnings, names in any case, and garbage that must not panic.

use std::path::{Path, PathBuf};

use market_data::{Symbol, Timeframe};

use super::parse_strategy;
use crate::config::{
    Activation, CheckpointPolicy, DataSplit, FuzzySet, IndicatorConfig, IndicatorFuzzySets,
    IndicatorKind, LabelConfig, Membership, ModelConfig, ModelKind, Optimizer, PriceSource,
    StrategyConfig, TrainingData,
};
use crate::error::StrategyError;

const FULL: &str = r#"# A complete strategy, every section filled in.
name: "eurusd_mlp"
description: "RSI and MACD on EURUSD"
version: "2.0"
training_data:
  symbols: {mode: multi_symbol, list: [EURUSD, BTCUSD]}
  timeframes: {mode: multi_timeframe, list: [4h, 1h], base_timeframe: 1h}
  history_required: 200
indicators:
  - {name: rsi, period: 14, source: close, feature_id: rsi_14}
  - {name: macd, fast_period: 12, slow_period: 26, signal_period: 9}
  - {name: BollingerBands, period: 20, std_dev: 2}
  - {name: stoch, k_period: 14, d_period: 3}
  - {name: sma, period: 50, source: high}
  - {name: ema}
  - {name: atr}
  - {name: adx, period: 21}
  - {name: roc, period: 12, source: open}
fuzzy_sets:
  rsi_14:
    oversold: {type: triangular, parameters: [0, 20, 35]}
    neutral: [30, 50, 70]
    overbought: {type: trapezoidal, parameters: [65, 80, 100, 100]}
    mid: {type: gaussian, parameters: [50, 10]}
  macd:
    negative: [-10, -5, 0, 0]
    positive: [0, 5, 10]
model:
  type: mlp
  symbol_embedding_dim: 4
  architecture: {hidden_layers: [32, 16], activation: relu, output_activation: softmax, dropout: 0.2}
  features: {include_price_context: false, lookback_periods: 2, scale_features: true}
  training:
    learning_rate: 0.001
    batch_size: 32
    epochs: 20
    optimizer: adam
    seed: 7
    early_stopping: {enabled: true, patience: 5, min_delta: 0.001}
training:
  method: supervised
  labels: {source: zigzag, zigzag_threshold: 0.02, label_lookahead: 20}
  data_split: {train: 0.7, validation: 0.15, test: 0.15}
"#;

fn file() -> &'static Path {
    Path::new("strategies/t.yaml")
}

fn symbol(text: &str) -> Symbol {
    text.parse().unwrap()
}

fn indicator(kind: IndicatorKind, feature_id: &str) -> IndicatorConfig {
    IndicatorConfig {
        kind,
        feature_id: feature_id.to_owned(),
        period: None,
        fast_period: None,
        slow_period: None,
        signal_period: None,
        k_period: None,
        d_period: None,
        std_dev: None,
        source: PriceSource::Close,
    }
}

fn set(name: &str, membership: Membership) -> FuzzySet {
    FuzzySet {
        name: name.to_owned(),
        membership,
    }
}

#[test]
fn a_full_file_reads_into_the_expected_config() {
    let parsed = parse_strategy(FULL, file()).unwrap();
    assert_eq!(parsed.warnings, Vec::<String>::new());

    let expected = StrategyConfig {
        name: "eurusd_mlp".to_owned(),
        description: Some("RSI and MACD on EURUSD".to_owned()),
        source: None,
        training_data: TrainingData {
            symbols: vec![symbol("EURUSD"), symbol("BTCUSD")],
            timeframes: vec![Timeframe::H4, Timeframe::H1],
            base_timeframe: Timeframe::H1,
        },
        indicators: vec![
            IndicatorConfig {
                period: Some(14),
                ..indicator(IndicatorKind::Rsi, "rsi_14")
            },
            IndicatorConfig {
                fast_period: Some(12),
                slow_period: Some(26),
                signal_period: Some(9),
                ..indicator(IndicatorKind::Macd, "macd")
            },
            IndicatorConfig {
                period: Some(20),
                std_dev: Some(2.0),
                ..indicator(IndicatorKind::BollingerBands, "bollingerbands")
            },
            IndicatorConfig {
                k_period: Some(14),
                d_period: Some(3),
                ..indicator(IndicatorKind::Stochastic, "stoch")
            },
            IndicatorConfig {
                period: Some(50),
                source: PriceSource::High,
                ..indicator(IndicatorKind::Sma, "sma")
            },
            IndicatorConfig {
                period: Some(20),
                ..indicator(IndicatorKind::Ema, "ema")
            },
            IndicatorConfig {
                period: Some(14),
                ..indicator(IndicatorKind::Atr, "atr")
            },
            IndicatorConfig {
                period: Some(21),
                ..indicator(IndicatorKind::Adx, "adx")
            },
            IndicatorConfig {
                period: Some(12),
                source: PriceSource::Open,
                ..indicator(IndicatorKind::Roc, "roc")
            },
        ],
        fuzzy_sets: vec![
            IndicatorFuzzySets {
                feature_id: "rsi_14".to_owned(),
                sets: vec![
                    set(
                        "oversold",
                        Membership::Triangular {
                            a: 0.0,
                            b: 20.0,
                            c: 35.0,
                        },
                    ),
                    set(
                        "neutral",
                        Membership::Triangular {
                            a: 30.0,
                            b: 50.0,
                            c: 70.0,
                        },
                    ),
                    set(
                        "overbought",
                        Membership::Trapezoidal {
                            a: 65.0,
                            b: 80.0,
                            c: 100.0,
                            d: 100.0,
                        },
                    ),
                    set(
                        "mid",
                        Membership::Gaussian {
                            mean: 50.0,
                            sigma: 10.0,
                        },
                    ),
                ],
            },
            IndicatorFuzzySets {
                feature_id: "macd".to_owned(),
                sets: vec![
                    set(
                        "negative",
                        Membership::Trapezoidal {
                            a: -10.0,
                            b: -5.0,
                            c: 0.0,
                            d: 0.0,
                        },
                    ),
                    set(
                        "positive",
                        Membership::Triangular {
                            a: 0.0,
                            b: 5.0,
                            c: 10.0,
                        },
                    ),
                ],
            },
        ],
        model: ModelConfig {
            kind: ModelKind::Mlp,
            hidden_layers: vec![32, 16],
            activation: Activation::Relu,
            dropout: 0.2,
            lookback_periods: 2,
            scale_features: true,
            include_price_context: false,
            symbol_embedding_dim: 4,
            learning_rate: 0.001,
            batch_size: 32,
            epochs: 20,
            optimizer: Optimizer::Adam,
            early_stopping_patience: Some(5),
            seed: 7,
            checkpoint: CheckpointPolicy::default(),
        },
        labels: LabelConfig {
            zigzag_threshold: 0.02,
            label_lookahead: 20,
        },
        data_split: DataSplit {
            train: 0.7,
            validation: 0.15,
            test: 0.15,
        },
    };
    assert_eq!(parsed.config, expected);
}

/// The smallest valid strategy; line numbers matter to the error table.
const BASE: &str = "\
name: t
training_data:
  symbols: {mode: single, symbol: EURUSD}
  timeframes: {mode: single, timeframe: 1h}
indicators:
  - {name: rsi, period: 14}
  - {name: macd}
fuzzy_sets:
  rsi:
    low: [0, 30, 50]
model:
  type: mlp
  architecture: {hidden_layers: [8]}
  training: {learning_rate: 0.01, batch_size: 4, epochs: 2}
training:
  labels: {zigzag_threshold: 0.02, label_lookahead: 5}
  data_split: {train: 0.7, validation: 0.15, test: 0.15}
";

/// `BASE` with some lines (1-based) replaced.
fn edited(replacements: &[(usize, &str)]) -> String {
    let mut lines: Vec<&str> = BASE.lines().collect();
    for (line, text) in replacements {
        lines[line - 1] = text;
    }
    lines.join("\n") + "\n"
}

#[test]
fn the_minimal_file_gets_the_documented_defaults() {
    let parsed = parse_strategy(BASE, file()).unwrap();
    assert_eq!(parsed.warnings, Vec::<String>::new());
    let config = parsed.config;
    assert_eq!(config.description, None);
    assert_eq!(
        config.training_data,
        TrainingData {
            symbols: vec![symbol("EURUSD")],
            timeframes: vec![Timeframe::H1],
            base_timeframe: Timeframe::H1,
        }
    );
    assert_eq!(
        config.indicators[1],
        IndicatorConfig {
            fast_period: Some(12),
            slow_period: Some(26),
            signal_period: Some(9),
            ..indicator(IndicatorKind::Macd, "macd")
        }
    );
    let model = config.model;
    assert_eq!(model.activation, Activation::Relu);
    assert_eq!(model.dropout, 0.0);
    assert_eq!(model.lookback_periods, 0);
    assert!(model.scale_features);
    assert!(!model.include_price_context);
    assert_eq!(model.symbol_embedding_dim, 0);
    assert_eq!(model.optimizer, Optimizer::Adam);
    assert_eq!(model.seed, 42);
    assert_eq!(model.early_stopping_patience, None);
    assert_eq!(model.checkpoint, CheckpointPolicy::default());
}

#[test]
fn default_periods_are_stored_explicitly() {
    let text = edited(&[
        (
            6,
            "  - {name: bbands}\n  - {name: stoch}\n  - {name: sma}\n  - {name: ema}",
        ),
        (
            7,
            "  - {name: atr}\n  - {name: adx}\n  - {name: roc}\n  - {name: rsi}",
        ),
        (9, "  bbands:"),
    ]);
    let config = parse_strategy(&text, file()).unwrap().config;
    let summary: Vec<_> = config
        .indicators
        .iter()
        .map(|i| {
            (
                i.feature_id.as_str(),
                i.period,
                i.k_period,
                i.d_period,
                i.std_dev,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("bbands", Some(20), None, None, Some(2.0)),
            ("stoch", None, Some(14), Some(3), None),
            ("sma", Some(20), None, None, None),
            ("ema", Some(20), None, None, None),
            ("atr", Some(14), None, None, None),
            ("adx", Some(14), None, None, None),
            ("roc", Some(10), None, None, None),
            ("rsi", Some(14), None, None, None),
        ]
    );
}

fn error_of(text: &str) -> String {
    match parse_strategy(text, file()) {
        Ok(_) => "parsed without error".to_owned(),
        Err(error) => {
            assert!(matches!(error, StrategyError::Invalid { .. }), "{error:?}");
            error.to_string()
        }
    }
}

#[test]
fn malformed_strategies_give_exact_errors() {
    let cases: Vec<(String, &str)> = vec![
        // YAML syntax
        (
            edited(&[(6, "  - {name: rsi, period: 14")]),
            "strategies/t.yaml:8:1: indicators[0]: invalid YAML: invalid indentation",
        ),
        (
            edited(&[(2, "training_data: : x")]),
            "strategies/t.yaml:2:16: training_data: invalid YAML: \
             mapping values are not allowed in this context",
        ),
        (
            edited(&[(12, "  type: mlp\n  type: cnn")]),
            "strategies/t.yaml:13:3: model.type: duplicate key \"type\" (first at line 12)",
        ),
        (
            String::new(),
            "strategies/t.yaml:1:1: (document): the file holds no YAML document; expected a strategy mapping",
        ),
        (
            "- a\n- b\n".to_owned(),
            "strategies/t.yaml:1:1: (document): expected a mapping, found a list",
        ),
        (
            BASE.to_owned() + "---\nname: u\n",
            "strategies/t.yaml:18:1: (document): a strategy file holds one YAML document, found a second one",
        ),
        (
            edited(&[(1, "name: t\nversion: \"3.0\"")]),
            "strategies/t.yaml:2:10: version: unsupported format version \"3.0\"; \
             expected 2.0 (or 1.x)",
        ),
        // missing required keys point at the parent mapping
        (
            edited(&[(1, "description: t")]),
            "strategies/t.yaml:1:1: name: required key is missing",
        ),
        (
            edited(&[(14, "  training: {learning_rate: 0.01, batch_size: 4}")]),
            "strategies/t.yaml:14:13: model.training.epochs: required key is missing",
        ),
        (
            edited(&[(16, "  labels: {zigzag_threshold: 0.02}")]),
            "strategies/t.yaml:16:11: training.labels.label_lookahead: required key is missing",
        ),
        (
            edited(&[(17, "  splits: {train: 0.7, validation: 0.15, test: 0.15}")]),
            "strategies/t.yaml:16:3: training.data_split: required key is missing",
        ),
        // wrong types and ranges
        (
            edited(&[(
                14,
                "  training: {learning_rate: 0.01, batch_size: abc, epochs: 2}",
            )]),
            "strategies/t.yaml:14:47: model.training.batch_size: \
             expected a positive integer, found string \"abc\"",
        ),
        (
            edited(&[(
                14,
                "  training: {learning_rate: 0.01, batch_size: 0, epochs: 2}",
            )]),
            "strategies/t.yaml:14:47: model.training.batch_size: \
             expected a positive integer, found integer 0",
        ),
        (
            edited(&[(
                14,
                "  training: {learning_rate: 0.01, batch_size: 4, epochs: 0}",
            )]),
            "strategies/t.yaml:14:58: model.training.epochs: \
             expected a positive integer, found integer 0",
        ),
        (
            edited(&[(
                14,
                "  training: {learning_rate: 0, batch_size: 4, epochs: 2}",
            )]),
            "strategies/t.yaml:14:29: model.training.learning_rate: \
             expected a number > 0, found integer 0",
        ),
        (
            edited(&[(13, "  architecture: {hidden_layers: [8], dropout: 1.0}")]),
            "strategies/t.yaml:13:47: model.architecture.dropout: \
             expected a number in [0, 1), found number 1.0",
        ),
        (
            edited(&[(13, "  architecture: {hidden_layers: [8, -1]}")]),
            "strategies/t.yaml:13:37: model.architecture.hidden_layers[1]: \
             expected a positive integer, found integer -1",
        ),
        (
            edited(&[(6, "  - {name: rsi, period: 14.5}")]),
            "strategies/t.yaml:6:25: indicators[0].period: \
             expected a positive integer, found number 14.5",
        ),
        // unknown names
        (
            edited(&[(7, "  - {name: cci}")]),
            "strategies/t.yaml:7:12: indicators[1].name: unknown indicator \"cci\"; \
             known indicators: rsi, sma, ema, macd, atr, adx, bbands, bollinger_bands, \
             bollingerbands, stoch, stochastic, roc",
        ),
        (
            edited(&[(12, "  type: xgboost")]),
            "strategies/t.yaml:12:9: model.type: unknown model type \"xgboost\"; \
             expected one of mlp, cnn, lstm",
        ),
        (
            edited(&[(
                14,
                "  training: {learning_rate: 0.01, batch_size: 4, epochs: 2, optimizer: rmsprop}",
            )]),
            "strategies/t.yaml:14:72: model.training.optimizer: unknown optimizer \"rmsprop\"; \
             expected one of adam, sgd",
        ),
        (
            edited(&[(
                13,
                "  architecture: {hidden_layers: [8], activation: swish}",
            )]),
            "strategies/t.yaml:13:50: model.architecture.activation: unknown activation \
             \"swish\"; expected one of relu, tanh, sigmoid, leaky_relu, leakyrelu, gelu",
        ),
        (
            edited(&[(3, "  symbols: {mode: double, symbol: EURUSD}")]),
            "strategies/t.yaml:3:19: training_data.symbols.mode: unknown mode \"double\"; \
             expected one of single, single_symbol, multi_symbol, multi",
        ),
        (
            edited(&[(6, "  - {name: rsi, source: hlc3}")]),
            "strategies/t.yaml:6:25: indicators[0].source: unknown price source \"hlc3\"; \
             expected one of open, high, low, close",
        ),
        // fuzzy sets
        (
            edited(&[(9, "  stoch:")]),
            "strategies/t.yaml:9:3: fuzzy_sets.stoch: no indicator has feature_id \"stoch\"; \
             known feature_ids: rsi, macd",
        ),
        (
            edited(&[(10, "    low: {type: triangular, parameters: [0, 30]}")]),
            "strategies/t.yaml:10:41: fuzzy_sets.rsi.low.parameters: \
             triangular takes 3 parameters [a, b, c], found 2",
        ),
        (
            edited(&[(10, "    low: [0, 30]")]),
            "strategies/t.yaml:10:10: fuzzy_sets.rsi.low: \
             expected 3 numbers (triangular) or 4 (trapezoidal), found 2",
        ),
        (
            edited(&[(10, "    low: [0, 60, 50]")]),
            "strategies/t.yaml:10:10: fuzzy_sets.rsi.low: \
             triangular parameters must be ascending (a <= b <= c, a < c), found [0, 60, 50]",
        ),
        (
            edited(&[(
                10,
                "    low: {type: trapezoidal, parameters: [0, 10, 5, 20]}",
            )]),
            "strategies/t.yaml:10:42: fuzzy_sets.rsi.low.parameters: \
             trapezoidal parameters must be ascending (a <= b <= c <= d, a < d), found [0, 10, 5, 20]",
        ),
        (
            edited(&[(10, "    low: {type: gaussian, parameters: [50, 0]}")]),
            "strategies/t.yaml:10:39: fuzzy_sets.rsi.low.parameters: \
             gaussian sigma must be > 0, found 0",
        ),
        (
            edited(&[(10, "    low: {type: bell, parameters: [1, 2]}")]),
            "strategies/t.yaml:10:17: fuzzy_sets.rsi.low.type: unknown membership type \
             \"bell\"; expected one of triangular, trapezoidal, gaussian",
        ),
        (
            edited(&[(10, "    low: [0, x, 50]")]),
            "strategies/t.yaml:10:14: fuzzy_sets.rsi.low[1]: expected a number, found string \"x\"",
        ),
        (
            edited(&[(8, "fuzzy_sets: {}"), (9, "# none"), (10, "# none")]),
            "strategies/t.yaml:8:13: fuzzy_sets: the strategy has no features: define at least \
             one fuzzy set (or set model.features.include_price_context: true)",
        ),
        // data split
        (
            edited(&[(
                17,
                "  data_split: {train: 0.7, validation: 0.15, test: 0.25}",
            )]),
            "strategies/t.yaml:17:15: training.data_split: \
             train + validation + test must be 1, found 1.1",
        ),
        (
            edited(&[(
                17,
                "  data_split: {train: 0.7, validation: -0.15, test: 0.45}",
            )]),
            "strategies/t.yaml:17:40: training.data_split.validation: \
             expected a number >= 0, found number -0.15",
        ),
        // symbols and timeframes
        (
            edited(&[(3, "  symbols: {mode: single, symbol: EUR/USD}")]),
            "strategies/t.yaml:3:35: training_data.symbols.symbol: invalid symbol \"EUR/USD\": \
             use only letters, digits, '.', '_' and '-' (not only dots)",
        ),
        (
            edited(&[(4, "  timeframes: {mode: single, timeframe: 2h}")]),
            "strategies/t.yaml:4:41: training_data.timeframes.timeframe: unknown timeframe \
             \"2h\"; expected one of 1m, 5m, 15m, 30m, 1h, 4h, 1d, 1w",
        ),
        (
            edited(&[(3, "  symbols: {mode: single, list: [EURUSD, BTCUSD]}")]),
            "strategies/t.yaml:3:33: training_data.symbols.list: mode single takes one symbol \
             (symbol: ...); use mode multi_symbol for a list",
        ),
        (
            edited(&[(3, "  symbols: {mode: multi_symbol}")]),
            "strategies/t.yaml:3:12: training_data.symbols.list: required key is missing",
        ),
        (
            edited(&[(
                4,
                "  timeframes: {mode: multi_timeframe, list: [1h, 4h], base_timeframe: 1d}",
            )]),
            "strategies/t.yaml:4:71: training_data.timeframes.base_timeframe: \
             base_timeframe 1d is not among the timeframes (1h, 4h)",
        ),
        // indicators
        (
            edited(&[(7, "  - {name: RSI}")]),
            "strategies/t.yaml:7:12: indicators[1].name: duplicate feature_id \"rsi\" \
             (also that of indicators[0]); give the indicator its own feature_id",
        ),
        (
            edited(&[(5, "indicators: []"), (6, "# none"), (7, "# none")]),
            "strategies/t.yaml:5:13: indicators: expected a non-empty list of indicators, \
             found a list",
        ),
        (
            edited(&[(7, "  - {name: macd, fast_period: 30}")]),
            "strategies/t.yaml:7:31: indicators[1].fast_period: \
             fast_period (30) must be less than slow_period (26)",
        ),
        (
            edited(&[(12, "  type: mlp\n  architecture: {hidden_layers: [8]}\n")]),
            "strategies/t.yaml:15:3: model.architecture: duplicate key \"architecture\" (first at line 13)",
        ),
    ];
    let mut failures = Vec::new();
    for (index, (text, expected)) in cases.iter().enumerate() {
        let actual = error_of(text);
        if actual != *expected {
            failures.push(format!(
                "case {index}:\n  expected: {expected}\n  actual:   {actual}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn unknown_keys_are_warnings_naming_their_path() {
    let text = edited(&[
        (1, "name: t\nscope: universal"),
        (7, "  - {name: macd, period: 3}"),
        (
            14,
            "  training: {learning_rate: 0.01, batch_size: 4, epochs: 2, loss: focal}",
        ),
    ]) + "decisions:\n  output_format: classification\n";
    let parsed = parse_strategy(&text, file()).unwrap();
    assert_eq!(
        parsed.warnings,
        [
            "strategies/t.yaml:2:1: scope: unknown key, ignored",
            "strategies/t.yaml:8:18: indicators[1].period: not a parameter of macd, ignored",
            "strategies/t.yaml:15:61: model.training.loss: unknown key, ignored",
            "strategies/t.yaml:19:1: decisions: unknown key, ignored",
        ]
    );
}

#[test]
fn names_are_read_in_any_case_and_through_aliases() {
    let text = edited(&[
        (
            6,
            "  - {name: BollingerBands}\n  - {name: bollinger_bands, feature_id: bb_2, multiplier: 2.5}\n  - {name: BBANDS, feature_id: bb_3}",
        ),
        (
            7,
            "  - {name: Stochastic}\n  - {name: STOCH, feature_id: ADX_14}\n  - {name: Rsi, source: CLOSE}",
        ),
        (9, "  adx_14:"),
        (12, "  type: LSTM"),
        (
            13,
            "  architecture: {hidden_layers: [8], activation: Leaky_ReLU, output_activation: Softmax}",
        ),
        (
            14,
            "  training: {learning_rate: 0.01, batch_size: 4, epochs: 2, optimizer: SGD}",
        ),
        (3, "  symbols: {mode: single_symbol, list: [EURUSD]}"),
        (4, "  timeframes: {mode: MULTI, list: [1d, 4H]}"),
    ]);
    let config = parse_strategy(&text, file()).unwrap().config;
    let kinds: Vec<_> = config
        .indicators
        .iter()
        .map(|i| (i.kind, i.feature_id.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            (IndicatorKind::BollingerBands, "bollingerbands"),
            (IndicatorKind::BollingerBands, "bb_2"),
            (IndicatorKind::BollingerBands, "bb_3"),
            (IndicatorKind::Stochastic, "stochastic"),
            (IndicatorKind::Stochastic, "ADX_14"),
            (IndicatorKind::Rsi, "rsi"),
        ]
    );
    assert_eq!(config.indicators[1].std_dev, Some(2.5));
    // The fuzzy sets key `adx_14` finds the feature_id `ADX_14`.
    assert_eq!(config.fuzzy_sets[0].feature_id, "ADX_14");
    assert_eq!(config.model.kind, ModelKind::Lstm);
    assert_eq!(config.model.activation, Activation::LeakyRelu);
    assert_eq!(config.model.optimizer, Optimizer::Sgd);
    assert_eq!(config.training_data.symbols, [symbol("EURUSD")]);
    assert_eq!(
        config.training_data.timeframes,
        [Timeframe::D1, Timeframe::H4]
    );
    // Multi mode without base_timeframe: the shortest one.
    assert_eq!(config.training_data.base_timeframe, Timeframe::H4);
}

#[test]
fn fuzzy_sets_follow_the_indicator_order() {
    let text = edited(&[(9, "  macd: {up: [0, 1, 2]}\n  rsi:")]);
    let config = parse_strategy(&text, file()).unwrap().config;
    let ids: Vec<_> = config
        .fuzzy_sets
        .iter()
        .map(|f| f.feature_id.as_str())
        .collect();
    assert_eq!(ids, ["rsi", "macd"]);
}

#[test]
fn the_checkpoint_policy_is_read_and_checked() {
    let with = |checkpoint: &str| {
        edited(&[(
            14,
            &format!(
                "  training: {{learning_rate: 0.01, batch_size: 4, epochs: 2, checkpoint: {checkpoint}}}"
            ),
        )])
    };
    let policy = parse_strategy(&with("{every_epochs: 5}"), file())
        .unwrap()
        .config
        .model
        .checkpoint;
    assert_eq!(
        policy,
        CheckpointPolicy {
            every_epochs: 5,
            ..CheckpointPolicy::default()
        }
    );
    let off = parse_strategy(&with("{every_epochs: 0, every_seconds: 0}"), file()).unwrap();
    assert_eq!(
        off.config.model.checkpoint,
        CheckpointPolicy {
            every_epochs: 0,
            every_seconds: 0
        }
    );
    let error = parse_strategy(&with("{every_seconds: -5}"), file()).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("model.training.checkpoint.every_seconds"),
        "{error}"
    );
}

#[test]
fn yaml_scalars_follow_the_core_schema() {
    // `!!str`, quotes, hex and exponents; an anchor and its alias.
    let text = edited(&[
        (1, "name: !!str 123"),
        (10, "    low: &low [0, 3.0e1, 0x32]\n    copy: *low"),
        (
            14,
            "  training: {learning_rate: 1e-3, batch_size: 0o10, epochs: 2, seed: 0}",
        ),
    ]);
    let config = parse_strategy(&text, file()).unwrap().config;
    assert_eq!(config.name, "123");
    let low = Membership::Triangular {
        a: 0.0,
        b: 30.0,
        c: 50.0,
    };
    assert_eq!(
        config.fuzzy_sets[0].sets,
        [set("low", low), set("copy", low)]
    );
    assert_eq!(config.model.learning_rate, 0.001);
    assert_eq!(config.model.batch_size, 8);
    assert_eq!(config.model.seed, 0);

    let quoted = edited(&[(
        14,
        "  training: {learning_rate: 0.01, batch_size: \"4\", epochs: 2}",
    )]);
    assert_eq!(
        error_of(&quoted),
        "strategies/t.yaml:14:47: model.training.batch_size: \
         expected a positive integer, found string \"4\""
    );
}

#[test]
fn from_file_sets_the_source_and_reports_io_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.yaml");
    std::fs::write(&path, FULL).unwrap();
    let config = StrategyConfig::from_file(&path).unwrap();
    assert_eq!(config.source, Some(path.clone()));
    assert_eq!(config.name, "eurusd_mlp");

    let missing = dir.path().join("missing.yaml");
    let error = StrategyConfig::from_file(&missing).unwrap_err();
    assert!(
        matches!(&error, StrategyError::Io { path, .. } if *path == missing),
        "{error:?}"
    );

    let from_str = StrategyConfig::from_yaml_str(FULL, Path::new("x.yaml")).unwrap();
    assert_eq!(from_str.source, None::<PathBuf>);
}

#[test]
fn an_excerpt_is_escaped_and_cut_after_sixty_characters() {
    use super::yaml::{EXCERPT_CHARS, excerpt};
    assert_eq!(EXCERPT_CHARS, 60);
    assert_eq!(excerpt("abc"), "\"abc\"");
    assert_eq!(excerpt("tab\there \"q\"\n"), "\"tab\\there \\\"q\\\"\\n\"");
    let sixty = "x".repeat(60);
    assert_eq!(excerpt(&sixty), format!("{sixty:?}"));
    assert_eq!(excerpt(&format!("{sixty}y")), format!("{sixty:?}…"));
    // Cut between characters, never inside one.
    let wide = "é".repeat(100);
    assert_eq!(excerpt(&wide), format!("{:?}…", "é".repeat(60)));
    // Escapes are counted after the cut: control characters cannot smuggle
    // a longer excerpt.
    let controls = "\u{1b}".repeat(100);
    assert_eq!(excerpt(&controls), format!("{:?}…", "\u{1b}".repeat(60)));
}

#[test]
fn a_file_that_is_no_strategy_comes_back_as_an_excerpt_only() {
    // What /etc/passwd looks like to the parser: one plain scalar whose lines
    // YAML folds with spaces.
    let passwd = "root:x:0:0:root:/root:/bin/bash\n\
                  daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n\
                  alice:x:1000:1000:TOP-SECRET-LINE:/home/alice:/bin/sh\n";
    let error = error_of(passwd);
    assert_eq!(
        error,
        "strategies/t.yaml:1:1: (document): expected a mapping, found string \
         \"root:x:0:0:root:/root:/bin/bash daemon:x:1:1:daemon:/usr/sbi\"…"
    );
    assert!(!error.contains("TOP-SECRET"), "{error}");

    // Every message quoting a value quotes an excerpt: a name, a symbol
    // (through its own error type), a key.
    let long = "A".repeat(500);
    for text in [
        edited(&[(12, &format!("  type: {long}"))]),
        edited(&[(3, &format!("  symbols: {{mode: single, symbol: {long}!}}"))]),
        edited(&[(6, &format!("  - {{name: {long}}}"))]),
        edited(&[(12, &format!("  type: mlp\n  {long}: 1\n  {long}: 2"))]),
    ] {
        let error = error_of(&text);
        assert!(error.contains(&format!("{:?}…", &long[..60])), "{error}");
        assert!(!error.contains(&long[..61]), "{error}");
    }
}

#[test]
fn hostile_yaml_is_refused_with_a_message() {
    let deep = error_of(&("- ".repeat(100_000) + "x"));
    assert!(
        deep.starts_with("strategies/t.yaml:1:129: [0][0][0]")
            && deep.ends_with(": nested deeper than 64 levels"),
        "{deep}"
    );

    let mut laughs = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n".to_owned();
    for level in 1..8 {
        let items = vec![format!("*a{}", level - 1); 10].join(", ");
        laughs.push_str(&format!("a{level}: &a{level} [{items}]\n"));
    }
    assert_eq!(
        error_of(&laughs),
        "strategies/t.yaml:6:45: a5[7]: too many YAML nodes (more than 1000000, aliases expanded)"
    );
}

/// A small deterministic generator, so the garbage is the same every run.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) as usize
    }
}

#[test]
fn garbage_never_panics() {
    let mut inputs: Vec<String> = [
        "",
        " ",
        "\n",
        "~",
        "null",
        "[",
        "]",
        "{",
        "}",
        ":",
        "- -",
        "? ? ?",
        "&a *a",
        "*a",
        "&a [*a]",
        "!!int x",
        "!!float [1]",
        "a: !!binary x",
        "\u{feff}name: x",
        "\0",
        "\t\t:",
        "'unterminated",
        "\"\\x\"",
        "|\n x",
        ">-\n",
        "%YAML 1.2\n---\n",
        "--- |\n  a\n...",
        "a: [1, 2",
        "a: {b: [c: d]}",
        "name: [x]",
        "name: x\nindicators: 5",
        "name: x\nindicators: [5, null, [1]]",
        "name: x\nfuzzy_sets: [1]",
        "name: x\ntraining_data: {symbols: {mode: single, list: 7}}",
        "99999999999999999999999: 1",
        "name: 1e999",
        "name: .nan",
        "name: x\nmodel: {training: {seed: -1}}",
    ]
    .iter()
    .map(|text| (*text).to_owned())
    .collect();
    inputs.push("- ".repeat(100_000) + "x");
    inputs.push("[".repeat(100_000));
    inputs.push("{a: ".repeat(100_000));
    inputs.push(" a:\n".repeat(10_000));
    let mut nested = String::new();
    for depth in 0..200 {
        nested.push_str(&" ".repeat(depth));
        nested.push_str("a:\n");
    }
    inputs.push(nested);
    // A billion laughs: each level refers to the previous one ten times.
    let mut laughs = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n".to_owned();
    for level in 1..12 {
        let previous = format!("*a{}", level - 1);
        let items = [previous.as_str(); 10].join(", ");
        laughs.push_str(&format!("a{level}: &a{level} [{items}]\n"));
    }
    inputs.push(laughs);
    // Deep through aliases: each anchor nests the previous one deeper.
    let mut deep_alias = "a0: &a0 [[[[[[[[[[x]]]]]]]]]]\n".to_owned();
    for level in 1..40 {
        deep_alias.push_str(&format!(
            "a{level}: &a{level} [[[[[[[[[[*a{}]]]]]]]]]]\n",
            level - 1
        ));
    }
    inputs.push(deep_alias);

    // Mutations of valid files: lines dropped, swapped, cut and spliced.
    let mut random = Lcg(7);
    for source in [FULL, BASE] {
        let lines: Vec<&str> = source.lines().collect();
        for _ in 0..400 {
            let mut mutated = lines.clone();
            match random.next() % 4 {
                0 => {
                    mutated.remove(random.next() % mutated.len());
                }
                1 => {
                    let (a, b) = (random.next() % mutated.len(), random.next() % mutated.len());
                    mutated.swap(a, b);
                }
                2 => {
                    let index = random.next() % mutated.len();
                    let line = mutated[index];
                    let cut = line
                        .char_indices()
                        .map(|(at, _)| at)
                        .nth(random.next() % line.chars().count().max(1))
                        .unwrap_or(0);
                    mutated[index] = &line[..cut];
                }
                _ => {
                    let index = random.next() % mutated.len();
                    let other = lines[random.next() % lines.len()];
                    mutated.insert(index, other.trim_start());
                }
            }
            inputs.push(mutated.join("\n"));
        }
        // Every prefix of the file.
        for end in (0..source.len()).filter(|end| source.is_char_boundary(*end)) {
            inputs.push(source[..end].to_owned());
        }
    }

    for input in &inputs {
        // Ok or Err are both fine; errors must name a real position.
        if let Err(StrategyError::Invalid { line, column, .. }) = parse_strategy(input, file()) {
            assert!(line >= 1 && column >= 1, "{input:?}");
        }
    }
}
