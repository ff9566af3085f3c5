//! Whether a model learned anything: figures the class balance cannot
//! flatter (balanced accuracy, Cohen's kappa), the labels of every split,
//! how far validation and test disagree, and a one-line verdict.

use serde::{Deserialize, Serialize};

use super::{Metrics, TrainingReport};
use crate::Label;

/// A test accuracy this close to the baseline (or below) is no better than it.
const BASELINE_MARGIN: f64 = 0.01;
/// A kappa at or below this is chance agreement.
const CHANCE_KAPPA: f64 = 0.02;
/// Validation and test accuracies further apart than this are warned about.
const GAP_WARNING: f64 = 0.05;

/// An honest reading of a trained model's test figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Quality {
    /// The mean of the per-class recalls over the classes present in the
    /// test split: 1/3 for any constant guess.
    pub balanced_accuracy: f64,
    /// Cohen's kappa: agreement with the labels beyond what chance, at the
    /// same class frequencies, gives; 0 for any constant guess, 1 perfect.
    pub kappa: f64,
    pub labels: SplitLabels,
    /// The kept epoch's validation accuracy minus the test accuracy, when
    /// there was a validation split.
    pub val_test_gap: Option<f64>,
    /// E.g. `no better than always HOLD`, or `beats always HOLD by 6.2
    /// points (kappa 0.094)`.
    pub verdict: String,
    /// What a reader should distrust, in words (e.g. a large val–test gap).
    pub warnings: Vec<String>,
}

/// How many samples of each class (BUY, HOLD, SELL) every split holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitLabels {
    pub train: [u64; Label::COUNT],
    pub validation: [u64; Label::COUNT],
    pub test: [u64; Label::COUNT],
}

impl SplitLabels {
    /// Counts per class of each split's labels.
    pub fn count(train: &[Label], validation: &[Label], test: &[Label]) -> Self {
        let count = |labels: &[Label]| {
            let mut counts = [0; Label::COUNT];
            for label in labels {
                counts[label.index()] += 1;
            }
            counts
        };
        Self {
            train: count(train),
            validation: count(validation),
            test: count(test),
        }
    }
}

impl Quality {
    /// Reads `metrics` (test split) against its baseline, and against the
    /// validation accuracy of the epoch `report` kept.
    pub fn assess(metrics: &Metrics, report: &TrainingReport, labels: SplitLabels) -> Self {
        let confusion = &metrics.confusion_matrix;
        let total: u64 = confusion.iter().flatten().sum();
        let actual = |class: usize| confusion[class].iter().sum::<u64>();
        let predicted = |class: usize| confusion.iter().map(|row| row[class]).sum::<u64>();
        let present: Vec<usize> = (0..Label::COUNT)
            .filter(|&class| actual(class) > 0)
            .collect();
        let balanced_accuracy = if present.is_empty() {
            0.0
        } else {
            present
                .iter()
                .map(|&class| confusion[class][class] as f64 / actual(class) as f64)
                .sum::<f64>()
                / present.len() as f64
        };
        let kappa = if total == 0 {
            0.0
        } else {
            let n = total as f64;
            let observed = (0..Label::COUNT)
                .map(|class| confusion[class][class])
                .sum::<u64>() as f64
                / n;
            let chance = (0..Label::COUNT)
                .map(|class| actual(class) as f64 * predicted(class) as f64)
                .sum::<f64>()
                / (n * n);
            if chance >= 1.0 {
                0.0
            } else {
                (observed - chance) / (1.0 - chance)
            }
        };

        let baseline = &metrics.baseline;
        let lead = metrics.accuracy - baseline.accuracy;
        // A hair of tolerance: 0.51 - 0.50 is a little over 0.01 in floats.
        let verdict = if kappa <= CHANCE_KAPPA || lead <= BASELINE_MARGIN + 1e-9 {
            format!("no better than always {}", baseline.class)
        } else {
            format!(
                "beats always {} by {:.1} points (kappa {kappa:.3})",
                baseline.class,
                lead * 100.0
            )
        };
        let kept_val_accuracy = report
            .history
            .iter()
            .find(|epoch| epoch.epoch == report.best_epoch)
            .and_then(|epoch| epoch.val_accuracy);
        let val_test_gap = kept_val_accuracy.map(|val| val - metrics.accuracy);
        let mut warnings = Vec::new();
        if let (Some(gap), Some(val)) = (val_test_gap, kept_val_accuracy)
            && gap.abs() > GAP_WARNING
        {
            warnings.push(format!(
                "validation accuracy {:.1}% and test accuracy {:.1}% are {:.1} points apart: \
                 the validation split does not predict how the model does on new data",
                val * 100.0,
                metrics.accuracy * 100.0,
                gap.abs() * 100.0
            ));
        }
        Self {
            balanced_accuracy,
            kappa,
            labels,
            val_test_gap,
            verdict,
            warnings,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EpochMetrics;
    use crate::Label::{Buy, Hold, Sell};

    fn report(best_val_accuracy: Option<f64>) -> TrainingReport {
        TrainingReport {
            seed: 1,
            epochs_run: 1,
            best_epoch: 1,
            best_val_loss: best_val_accuracy.map(|_| 1.0),
            stopped_early: false,
            history: vec![EpochMetrics {
                epoch: 1,
                train_loss: 1.0,
                train_accuracy: 0.5,
                val_loss: best_val_accuracy.map(|_| 1.0),
                val_accuracy: best_val_accuracy,
                samples_per_second: 1.0,
            }],
        }
    }

    #[test]
    fn a_majority_class_predictor_is_called_what_it_is() {
        // 60 % HOLD in the test split, the model always says HOLD: its
        // accuracy equals the baseline's, and the class balance cannot hide it.
        let actual: Vec<_> = [Buy, Sell].repeat(2).into_iter().chain([Hold; 6]).collect();
        let metrics = Metrics::from_predictions(&actual, &[Hold; 10], &[Hold, Hold, Buy]);
        let labels = SplitLabels::count(&[Hold, Hold, Buy], &[], &actual);
        let quality = Quality::assess(&metrics, &report(None), labels);
        assert_eq!(metrics.accuracy, 0.6);
        assert_eq!(quality.kappa, 0.0);
        assert_eq!(quality.balanced_accuracy, 1.0 / 3.0);
        assert_eq!(quality.verdict, "no better than always HOLD");
        assert_eq!(quality.labels.test, [2, 6, 2]);
        assert_eq!(quality.val_test_gap, None);
        assert!(quality.warnings.is_empty());
    }

    #[test]
    fn a_model_that_learned_gets_its_lead_and_kappa_and_a_large_gap_is_warned() {
        // Test: 4 BUY, 4 HOLD, 2 SELL; 8 right.
        let actual = [Buy, Buy, Buy, Buy, Hold, Hold, Hold, Hold, Sell, Sell];
        let predicted = [Buy, Buy, Buy, Hold, Hold, Hold, Hold, Buy, Sell, Sell];
        let metrics = Metrics::from_predictions(&actual, &predicted, &[Hold]);
        let quality = Quality::assess(&metrics, &report(Some(0.9)), SplitLabels::default());
        // Chance agreement: (4·4 + 4·4 + 2·2) / 100 = 0.36; kappa (0.8 - 0.36) / 0.64.
        assert!((quality.kappa - 0.6875).abs() < 1e-12, "{}", quality.kappa);
        assert!((quality.balanced_accuracy - (0.75 + 0.75 + 1.0) / 3.0).abs() < 1e-12);
        assert_eq!(
            quality.verdict,
            "beats always HOLD by 40.0 points (kappa 0.688)"
        );
        assert!((quality.val_test_gap.unwrap() - 0.1).abs() < 1e-12);
        assert_eq!(
            quality.warnings,
            [
                "validation accuracy 90.0% and test accuracy 80.0% are 10.0 points apart: \
              the validation split does not predict how the model does on new data"
            ]
        );
    }

    #[test]
    fn a_lead_within_a_point_of_the_baseline_is_no_lead() {
        // 100 samples, baseline HOLD right 50 times; the model is right 51 times.
        let mut actual = vec![Hold; 50];
        actual.extend([Buy; 50]);
        let mut predicted = vec![Hold; 50];
        predicted.extend([Buy; 1]);
        predicted.extend([Sell; 49]);
        let metrics = Metrics::from_predictions(&actual, &predicted, &[Hold]);
        let quality = Quality::assess(&metrics, &report(None), SplitLabels::default());
        assert!(quality.kappa > CHANCE_KAPPA, "{}", quality.kappa);
        assert_eq!(quality.verdict, "no better than always HOLD");
    }
}
