//! The result of a training, as plain data: what was trained, how the
//! training went epoch by epoch, and how the model scored on the test split.
//!
//! It lives here, beside the request, rather than in the trainer: it is
//! what every route hands back (the local trainer makes it, the training
//! host sends it, the operations store keeps it as JSON, `rpc` converts it
//! to and from the wire), and none of them needs burn to hold one. Its JSON
//! form is what artifacts (`metrics.json`) and operation records hold, so
//! it does not change.

mod metrics;
mod quality;

use std::path::PathBuf;

use market_data::{Symbol, Timeframe};
use serde::{Deserialize, Deserializer, Serialize};

pub use self::metrics::{Baseline, ClassMetrics, Metrics};
pub use self::quality::{Quality, SplitLabels};
use crate::{Backend, ModelKind};

/// The result summary of a training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingSummary {
    pub strategy: String,
    pub model_type: ModelKind,
    pub symbols: Vec<Symbol>,
    pub timeframes: Vec<Timeframe>,
    pub backend: Backend,
    /// What ran it: `cpu`, or the GPU adapter and its graphics API;
    /// empty in summaries older than it.
    #[serde(default)]
    pub device: String,
    pub model_path: PathBuf,
    pub metrics: Metrics,
    /// What the test figures mean; empty in summaries older than it.
    #[serde(default)]
    pub quality: Quality,
    pub report: TrainingReport,
    pub samples: SplitSizes,
    pub features_per_bar: usize,
    pub phase_seconds: PhaseSeconds,
}

/// How long each step took, in seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct PhaseSeconds {
    pub load_data: f64,
    pub build_features: f64,
    pub train: f64,
    pub evaluate_and_save: f64,
}

/// Samples per split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitSizes {
    pub train: usize,
    pub validation: usize,
    pub test: usize,
}

/// How a training went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingReport {
    pub seed: u64,
    pub epochs_run: usize,
    /// The epoch whose weights were kept: the lowest validation loss (the
    /// lowest training loss when there is no validation split).
    pub best_epoch: usize,
    pub best_val_loss: Option<f64>,
    /// Whether early stopping ended the training before its last epoch.
    pub stopped_early: bool,
    pub history: Vec<EpochMetrics>,
}

/// What one epoch achieved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// 1-based.
    pub epoch: usize,
    /// Mean cross-entropy over the epoch's batches, weighted by batch size
    /// (with dropout active, as trained); NaN when the training diverged.
    #[serde(deserialize_with = "nan_from_null")]
    pub train_loss: f64,
    pub train_accuracy: f64,
    /// `None` when the validation split is empty.
    pub val_loss: Option<f64>,
    pub val_accuracy: Option<f64>,
    /// Training samples per second of wall time (excluding validation).
    pub samples_per_second: f64,
}

/// A number JSON wrote as `null`: serde_json writes NaN (a loss that
/// diverged) so, JSON having no NaN, and it must read back.
fn nan_from_null<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(deserializer)?.unwrap_or(f64::NAN))
}

#[cfg(test)]
mod tests {
    use expect_test::expect;

    use super::*;
    use crate::Label::{Buy, Hold, Sell};

    #[test]
    fn a_diverged_loss_survives_the_json_round_trip() {
        let epoch = EpochMetrics {
            epoch: 1,
            train_loss: f64::NAN,
            train_accuracy: 0.3,
            val_loss: None,
            val_accuracy: None,
            samples_per_second: 1000.0,
        };
        let json = serde_json::to_string(&epoch).unwrap();
        assert!(json.contains(r#""train_loss":null"#), "{json}");
        let back: EpochMetrics = serde_json::from_str(&json).unwrap();
        assert!(back.train_loss.is_nan());
    }

    /// Artifacts (`metrics.json`, `manifest.json`) and operation records
    /// hold this JSON: a change of shape must be a decision, not an accident.
    #[test]
    fn json_shape() {
        let summary = TrainingSummary {
            strategy: "eurusd_mlp".into(),
            model_type: ModelKind::Lstm,
            symbols: vec!["EURUSD".parse().unwrap()],
            timeframes: vec![Timeframe::H1, Timeframe::H4],
            backend: Backend::NdArray,
            device: "cpu".into(),
            model_path: "models/eurusd_mlp/EURUSD_1h-4h_v2".into(),
            metrics: Metrics::from_predictions(&[Buy, Hold], &[Buy, Sell], &[Hold]),
            quality: Quality {
                balanced_accuracy: 0.5,
                kappa: 0.0,
                labels: SplitLabels {
                    train: [3, 4, 1],
                    validation: [1, 1, 0],
                    test: [1, 1, 0],
                },
                val_test_gap: Some(0.25),
                verdict: "no better than always HOLD".into(),
                warnings: vec![],
            },
            report: TrainingReport {
                seed: 42,
                epochs_run: 2,
                best_epoch: 1,
                best_val_loss: Some(0.5),
                stopped_early: true,
                history: vec![
                    EpochMetrics {
                        epoch: 1,
                        train_loss: 1.25,
                        train_accuracy: 0.5,
                        val_loss: Some(0.5),
                        val_accuracy: Some(0.75),
                        samples_per_second: 1000.0,
                    },
                    EpochMetrics {
                        epoch: 2,
                        train_loss: 1.0,
                        train_accuracy: 0.625,
                        val_loss: None,
                        val_accuracy: None,
                        samples_per_second: 2000.0,
                    },
                ],
            },
            samples: SplitSizes {
                train: 8,
                validation: 2,
                test: 2,
            },
            features_per_bar: 17,
            phase_seconds: PhaseSeconds {
                load_data: 0.25,
                build_features: 0.125,
                train: 1.5,
                evaluate_and_save: 0.0625,
            },
        };
        let json = serde_json::to_string(&summary).unwrap();
        expect![[r#"{"strategy":"eurusd_mlp","model_type":"lstm","symbols":["EURUSD"],"timeframes":["1h","4h"],"backend":"ndarray","device":"cpu","model_path":"models/eurusd_mlp/EURUSD_1h-4h_v2","metrics":{"samples":2,"accuracy":0.5,"per_class":[{"class":"BUY","precision":1.0,"recall":1.0,"f1":1.0,"support":1},{"class":"HOLD","precision":0.0,"recall":0.0,"f1":0.0,"support":1},{"class":"SELL","precision":0.0,"recall":0.0,"f1":0.0,"support":0}],"macro_f1":0.3333333333333333,"confusion_matrix":[[1,0,0],[0,0,1],[0,0,0]],"baseline":{"class":"HOLD","accuracy":0.5}},"quality":{"balanced_accuracy":0.5,"kappa":0.0,"labels":{"train":[3,4,1],"validation":[1,1,0],"test":[1,1,0]},"val_test_gap":0.25,"verdict":"no better than always HOLD","warnings":[]},"report":{"seed":42,"epochs_run":2,"best_epoch":1,"best_val_loss":0.5,"stopped_early":true,"history":[{"epoch":1,"train_loss":1.25,"train_accuracy":0.5,"val_loss":0.5,"val_accuracy":0.75,"samples_per_second":1000.0},{"epoch":2,"train_loss":1.0,"train_accuracy":0.625,"val_loss":null,"val_accuracy":null,"samples_per_second":2000.0}]},"samples":{"train":8,"validation":2,"test":2},"features_per_bar":17,"phase_seconds":{"load_data":0.25,"build_features":0.125,"train":1.5,"evaluate_and_save":0.0625}}"#]].assert_eq(&json);
        assert_eq!(
            serde_json::from_str::<TrainingSummary>(&json).unwrap(),
            summary
        );
    }
}
