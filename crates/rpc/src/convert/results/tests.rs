//! Round trips of every result type, and refusals naming the field.

use chrono::{TimeZone, Utc};
use market_data::LoadMode;
use orchestrator_core::OperationStatus;
use serde_json::json;

use super::*;

/// A summary with every field set to a value of its own, both kinds of
/// epoch (with and without validation) and a matrix that is not symmetric.
fn training_summary() -> TrainingSummary {
    serde_json::from_value(json!({
        "strategy": "multi_cnn",
        "model_type": "cnn",
        "symbols": ["EURUSD", "BTCUSD"],
        "timeframes": ["1h", "4h"],
        "backend": "ndarray",
        "model_path": "models/multi_cnn/EURUSD-BTCUSD_1h-4h_v3",
        "metrics": {
            "samples": 924,
            "accuracy": 0.5341,
            "per_class": [
                { "class": "BUY", "precision": 0.308, "recall": 0.015, "f1": 0.028, "support": 270 },
                { "class": "HOLD", "precision": 0.537, "recall": 0.988, "f1": 0.696, "support": 495 },
                { "class": "SELL", "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 159 }
            ],
            "macro_f1": 0.2413,
            "confusion_matrix": [[4, 266, 0], [6, 489, 0], [3, 156, 0]],
            "baseline": { "class": "HOLD", "accuracy": 0.5357 }
        },
        "report": {
            "seed": 42,
            "epochs_run": 2,
            "best_epoch": 1,
            "best_val_loss": 1.0913,
            "stopped_early": true,
            "history": [
                { "epoch": 1, "train_loss": 1.1208, "train_accuracy": 0.203, "val_loss": 1.0913, "val_accuracy": 0.467, "samples_per_second": 40136.5 },
                { "epoch": 2, "train_loss": 1.0614, "train_accuracy": 0.433, "val_loss": null, "val_accuracy": null, "samples_per_second": 497882.0 }
            ]
        },
        "samples": { "train": 4312, "validation": 924, "test": 925 },
        "features_per_bar": 17,
        "phase_seconds": { "load_data": 0.004, "build_features": 0.002, "train": 0.061, "evaluate_and_save": 0.003 },
        "quality": {
            "balanced_accuracy": 0.3344,
            "kappa": 0.0031,
            "labels": { "train": [1203, 2411, 698], "validation": [270, 495, 159], "test": [271, 494, 160] },
            "val_test_gap": -0.0671,
            "verdict": "no better than always HOLD",
            "warnings": ["validation accuracy 46.7% and test accuracy 53.4% are 6.7 points apart"]
        }
    }))
    .unwrap()
}

fn load_summary() -> LoadSummary {
    let at = |day, hour| Utc.with_ymd_and_hms(2024, 3, day, hour, 0, 0).unwrap();
    LoadSummary {
        symbol: "EURUSD".parse().unwrap(),
        timeframe: "4h".parse().unwrap(),
        mode: LoadMode::Tail,
        bars: 1_234,
        first: Some(at(1, 0)),
        last: Some(at(29, 20)),
        source: BarSource::Resampled {
            from: "1h".parse().unwrap(),
            path: "data/EURUSD_1h.csv".into(),
        },
        gaps: GapReport {
            gaps: vec![
                Gap {
                    from: at(1, 20),
                    to: at(3, 20),
                    missing_bars: 11,
                    kind: GapKind::Weekend,
                },
                Gap {
                    from: at(12, 4),
                    to: at(12, 16),
                    missing_bars: 2,
                    kind: GapKind::Hole,
                },
            ],
            weekend: 1,
            closures: 0,
            holes: 1,
            missing_bars: 13,
        },
        fetched: Some(FetchSummary {
            from: "http://data-host:50052".into(),
            received: 300,
            added: 280,
            replaced: 15,
            unchanged: 5,
        }),
    }
}

#[test]
fn a_training_summary_survives_the_wire() {
    let summary = training_summary();
    let wire = proto::TrainingSummary::from(&summary);
    assert_eq!(TrainingSummary::try_from(wire).unwrap(), summary);
}

#[test]
fn a_bad_training_summary_is_refused_naming_the_field() {
    let good = proto::TrainingSummary::from(&training_summary());
    type Spoil = fn(&mut proto::TrainingSummary);
    let cases: [(Spoil, &str); 13] = [
        (|wire| wire.model_type = 0, "TrainingSummary.model_type"),
        (|wire| wire.model_type = 9, "TrainingSummary.model_type"),
        (
            |wire| wire.symbols.push("../etc".into()),
            "TrainingSummary.symbols",
        ),
        (
            |wire| wire.timeframes = vec!["2h".into()],
            "TrainingSummary.timeframes",
        ),
        (
            |wire| wire.backend = "gpu".into(),
            "TrainingSummary.backend",
        ),
        (|wire| wire.metrics = None, "TrainingSummary.metrics"),
        (|wire| wire.report = None, "TrainingSummary.report"),
        (|wire| wire.samples = None, "TrainingSummary.samples"),
        (
            |wire| wire.phase_seconds = None,
            "TrainingSummary.phase_seconds",
        ),
        (
            |wire| wire.metrics.as_mut().unwrap().baseline = None,
            "Metrics.baseline",
        ),
        (
            |wire| {
                wire.metrics.as_mut().unwrap().confusion_matrix.pop();
            },
            "Metrics.confusion_matrix",
        ),
        (
            |wire| {
                wire.metrics.as_mut().unwrap().confusion_matrix[1]
                    .predicted
                    .push(7);
            },
            "Metrics.confusion_matrix",
        ),
        (
            |wire| wire.metrics.as_mut().unwrap().confusion_matrix.clear(),
            "Metrics.confusion_matrix",
        ),
    ];
    for (spoil, field) in cases {
        let mut wire = good.clone();
        spoil(&mut wire);
        let err = TrainingSummary::try_from(wire).unwrap_err();
        assert_eq!(err.field, field, "{err}");
    }
}

#[test]
fn a_load_summary_survives_the_wire_from_either_source() {
    let resampled = load_summary();
    let stored = LoadSummary {
        source: BarSource::Store {
            path: "data/EURUSD_4h.csv".into(),
        },
        mode: LoadMode::Local,
        first: None,
        last: None,
        gaps: GapReport::default(),
        fetched: None,
        ..load_summary()
    };
    for summary in [resampled, stored] {
        let wire = proto::LoadSummary::from(&summary);
        assert_eq!(LoadSummary::try_from(wire).unwrap(), summary);
    }
}

#[test]
fn a_bad_load_summary_is_refused_naming_the_field() {
    let good = proto::LoadSummary::from(&load_summary());
    type Spoil = fn(&mut proto::LoadSummary);
    let cases: [(Spoil, &str); 8] = [
        (|wire| wire.symbol = String::new(), "LoadSummary.symbol"),
        (|wire| wire.timeframe = "2h".into(), "LoadSummary.timeframe"),
        (|wire| wire.mode = "sideways".into(), "LoadSummary.mode"),
        (|wire| wire.source = None, "LoadSummary.source"),
        (
            |wire| wire.source.as_mut().unwrap().resampled_from = Some("7m".into()),
            "BarSource.resampled_from",
        ),
        (|wire| wire.gaps = None, "LoadSummary.gaps"),
        (
            |wire| wire.gaps.as_mut().unwrap().gaps[0].kind = 0,
            "Gap.kind",
        ),
        (
            |wire| wire.gaps.as_mut().unwrap().gaps[1].to = None,
            "Gap.to",
        ),
    ];
    for (spoil, field) in cases {
        let mut wire = good.clone();
        spoil(&mut wire);
        let err = LoadSummary::try_from(wire).unwrap_err();
        assert_eq!(err.field, field, "{err}");
    }
}

fn completed(kind: OperationKind, result: serde_json::Value) -> Operation {
    let at = Utc.with_ymd_and_hms(2026, 11, 28, 9, 30, 0).unwrap();
    let mut operation = Operation::new(kind, json!({}), at);
    operation.status = OperationStatus::Completed;
    operation.result = Some(result);
    operation
}

#[test]
fn each_kind_travels_with_its_typed_result_and_comes_back_as_the_same_json() {
    let training = completed(
        OperationKind::Training,
        serde_json::to_value(training_summary()).unwrap(),
    );
    let load = completed(
        OperationKind::DataLoad,
        serde_json::to_value(load_summary()).unwrap(),
    );
    for operation in [training, load] {
        let wire = proto::Operation::try_from(&operation).unwrap();
        match (&wire.result, operation.kind) {
            (Some(WireResult::Training(summary)), OperationKind::Training) => {
                assert_eq!(summary.strategy, "multi_cnn");
            }
            (Some(WireResult::DataLoad(summary)), OperationKind::DataLoad) => {
                assert_eq!(summary.bars, 1_234);
            }
            (other, kind) => panic!("a {kind} operation carried {other:?}"),
        }
        // The JSON that comes back is the JSON the store holds, field for field.
        assert_eq!(Operation::try_from(wire).unwrap(), operation);
    }
}

#[test]
fn a_stored_result_that_is_not_its_kinds_type_has_no_wire_form() {
    let operation = completed(OperationKind::Training, json!({ "accuracy": 0.53 }));
    let err = proto::Operation::try_from(&operation).unwrap_err();
    assert_eq!(err.field, "Operation.result");
    assert_eq!(err.kind, OperationKind::Training);
    assert!(err.to_string().contains(&operation.id.to_string()), "{err}");

    // A data load's summary is no training's.
    let swapped = completed(
        OperationKind::Training,
        serde_json::to_value(load_summary()).unwrap(),
    );
    assert_eq!(
        proto::Operation::try_from(&swapped).unwrap_err().field,
        "Operation.result"
    );
}

#[test]
fn a_result_from_the_peer_must_be_its_kinds_and_valid() {
    let load = completed(
        OperationKind::DataLoad,
        serde_json::to_value(load_summary()).unwrap(),
    );
    let mut wire = proto::Operation::try_from(&load).unwrap();
    wire.result = Some(WireResult::Training(proto::TrainingSummary::from(
        &training_summary(),
    )));
    let err = Operation::try_from(wire.clone()).unwrap_err();
    assert_eq!(err.field, "Operation.result", "{err}");

    // A result of the right kind is checked like any summary.
    let mut bad = proto::LoadSummary::from(&load_summary());
    bad.mode = "sideways".into();
    wire.result = Some(WireResult::DataLoad(bad));
    assert_eq!(
        Operation::try_from(wire).unwrap_err().field,
        "LoadSummary.mode"
    );
}
