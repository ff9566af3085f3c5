//! Test-split metrics: accuracy, per-class precision/recall/F1, the confusion
//! matrix and the majority-class baseline a model has to beat.

use serde::{Deserialize, Serialize};

use crate::Label;

/// How well a model classifies a labelled split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Samples evaluated.
    pub samples: usize,
    /// Fraction of samples classified correctly.
    pub accuracy: f64,
    /// One entry per class, in class order (BUY, HOLD, SELL).
    pub per_class: Vec<ClassMetrics>,
    /// Unweighted mean of the per-class F1 scores.
    pub macro_f1: f64,
    /// `confusion_matrix[actual][predicted]`, classes in BUY, HOLD, SELL order.
    pub confusion_matrix: [[u64; Label::COUNT]; Label::COUNT],
    pub baseline: Baseline,
}

/// Precision, recall and F1 of one class; 0 where undefined (nothing predicted
/// or nothing present).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    /// `BUY`, `HOLD` or `SELL`.
    pub class: String,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Samples of this class in the split.
    pub support: u64,
}

/// Always predicting the most frequent class of the training split (the
/// lowest class index on a tie): the accuracy a model must beat to have
/// learned anything.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    pub class: String,
    pub accuracy: f64,
}

impl Metrics {
    /// Metrics of `predicted` against `actual`, with the baseline taken from
    /// `train_labels`.
    ///
    /// # Panics
    ///
    /// When `actual` and `predicted` differ in length.
    pub fn from_predictions(actual: &[Label], predicted: &[Label], train_labels: &[Label]) -> Self {
        assert_eq!(
            actual.len(),
            predicted.len(),
            "one prediction per labelled sample"
        );
        let mut confusion = [[0u64; Label::COUNT]; Label::COUNT];
        for (&truth, &guess) in actual.iter().zip(predicted) {
            confusion[truth.index()][guess.index()] += 1;
        }
        let correct: u64 = (0..Label::COUNT).map(|class| confusion[class][class]).sum();
        let per_class: Vec<ClassMetrics> = Label::ALL
            .into_iter()
            .map(|label| {
                let class = label.index();
                let hits = confusion[class][class];
                let support: u64 = confusion[class].iter().sum();
                let predicted: u64 = confusion.iter().map(|row| row[class]).sum();
                let precision = ratio(hits, predicted);
                let recall = ratio(hits, support);
                let f1 = if precision + recall > 0.0 {
                    2.0 * precision * recall / (precision + recall)
                } else {
                    0.0
                };
                ClassMetrics {
                    class: label.name().to_owned(),
                    precision,
                    recall,
                    f1,
                    support,
                }
            })
            .collect();
        let macro_f1 = per_class.iter().map(|class| class.f1).sum::<f64>() / Label::COUNT as f64;
        let majority = majority_class(train_labels);
        let baseline_hits = actual.iter().filter(|&&label| label == majority).count();
        Self {
            samples: actual.len(),
            accuracy: ratio(correct, actual.len() as u64),
            per_class,
            macro_f1,
            confusion_matrix: confusion,
            baseline: Baseline {
                class: majority.name().to_owned(),
                accuracy: ratio(baseline_hits as u64, actual.len() as u64),
            },
        }
    }
}

/// The most frequent label (the lowest class index on a tie, HOLD when empty).
fn majority_class(labels: &[Label]) -> Label {
    if labels.is_empty() {
        return Label::Hold;
    }
    let mut counts = [0usize; Label::COUNT];
    for label in labels {
        counts[label.index()] += 1;
    }
    let mut best = Label::Buy;
    for label in Label::ALL {
        if counts[label.index()] > counts[best.index()] {
            best = label;
        }
    }
    best
}

fn ratio(numerator: u64, denominator: u64) -> f64 {
    if denominator == 0 {
        0.0
    } else {
        numerator as f64 / denominator as f64
    }
}

#[cfg(test)]
mod tests {
    use expect_test::expect;

    use crate::Label::{Buy, Hold, Sell};

    use super::*;

    #[test]
    fn counts_and_scores_by_hand() {
        let actual = [Buy, Buy, Hold, Hold, Hold, Sell];
        let predicted = [Buy, Hold, Hold, Hold, Sell, Buy];
        let train = [Hold, Hold, Buy, Sell, Sell];
        let metrics = Metrics::from_predictions(&actual, &predicted, &train);

        assert_eq!(metrics.samples, 6);
        assert_eq!(metrics.accuracy, 3.0 / 6.0);
        assert_eq!(metrics.confusion_matrix, [[1, 1, 0], [0, 2, 1], [1, 0, 0]]);
        let buy = &metrics.per_class[0];
        assert_eq!((buy.precision, buy.recall, buy.f1), (0.5, 0.5, 0.5));
        let hold = &metrics.per_class[1];
        assert_eq!((hold.precision, hold.recall), (2.0 / 3.0, 2.0 / 3.0));
        // Nothing predicted SELL correctly: everything is 0, not NaN.
        let sell = &metrics.per_class[2];
        assert_eq!(
            (sell.precision, sell.recall, sell.f1, sell.support),
            (0.0, 0.0, 0.0, 1)
        );
        // HOLD and SELL tie in the training split: the lower index wins.
        assert_eq!(metrics.baseline.class, "HOLD");
        assert_eq!(metrics.baseline.accuracy, 0.5);
    }

    #[test]
    fn json_shape() {
        let metrics = Metrics::from_predictions(&[Buy, Sell], &[Buy, Hold], &[Sell]);
        expect![[r#"
            {
              "samples": 2,
              "accuracy": 0.5,
              "per_class": [
                {
                  "class": "BUY",
                  "precision": 1.0,
                  "recall": 1.0,
                  "f1": 1.0,
                  "support": 1
                },
                {
                  "class": "HOLD",
                  "precision": 0.0,
                  "recall": 0.0,
                  "f1": 0.0,
                  "support": 0
                },
                {
                  "class": "SELL",
                  "precision": 0.0,
                  "recall": 0.0,
                  "f1": 0.0,
                  "support": 1
                }
              ],
              "macro_f1": 0.3333333333333333,
              "confusion_matrix": [
                [
                  1,
                  0,
                  0
                ],
                [
                  0,
                  0,
                  0
                ],
                [
                  0,
                  1,
                  0
                ]
              ],
              "baseline": {
                "class": "SELL",
                "accuracy": 0.5
              }
            }"#]]
        .assert_eq(&serde_json::to_string_pretty(&metrics).unwrap());
    }
}
