//! The progress snapshot every operation publishes, and its typed contexts.

use std::fmt;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

/// One snapshot of an operation's progress.
///
/// Producers fill the structured fields; `message` is rendered from them by a
/// [`ProgressRenderer`](crate::ProgressRenderer), so no consumer ever has to
/// parse it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProgressState {
    /// Overall completion, 0.0 to 100.0.
    pub percentage: f64,
    /// Human-readable line rendered from the structured fields.
    pub message: String,
    /// The pipeline phase, shown as `[current/total]`.
    pub step: Option<Step>,
    /// Items processed out of a total (bars, samples, batches...).
    pub items: Option<Items>,
    /// Estimated time left; `None` means unknown.
    pub eta: Option<Duration>,
    pub started_at: Option<SystemTime>,
    pub updated_at: Option<SystemTime>,
    pub context: ProgressContext,
}

/// A position `current` out of `total`, 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub current: u32,
    pub total: u32,
}

impl Step {
    /// Position `current` out of `total`.
    pub const fn new(current: u32, total: u32) -> Self {
        Self { current, total }
    }
}

/// Writes `current/total`, the form every rendered line uses.
impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.current, self.total)
    }
}

/// Items processed out of an optional known total.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Items {
    pub processed: u64,
    pub total: Option<u64>,
}

/// What the progress is about, with the fields that matter for that kind of work.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ProgressContext {
    #[default]
    None,
    Training(TrainingContext),
    Data(DataContext),
}

/// Structured state of a model training.
///
/// A training reports the end of every epoch with `batch` at its total (and
/// the epoch's validation figures), and only then: that report is the
/// epoch's point of the history ([`ProgressState::finished_epoch`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainingContext {
    /// Model architecture as shown to users, e.g. `MLP`.
    pub model_type: Option<String>,
    pub symbols: Vec<String>,
    pub timeframes: Vec<String>,
    pub epoch: Option<Step>,
    pub batch: Option<Step>,
    pub train_loss: Option<f64>,
    pub train_accuracy: Option<f64>,
    pub val_loss: Option<f64>,
    pub val_accuracy: Option<f64>,
    pub samples_per_second: Option<f64>,
}

/// One finished epoch of a training, as its end was reported: a point of
/// the curves a training draws.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochPoint {
    /// 1-based.
    pub epoch: u32,
    pub train_loss: Option<f64>,
    pub train_accuracy: Option<f64>,
    pub val_loss: Option<f64>,
    pub val_accuracy: Option<f64>,
    pub samples_per_second: Option<f64>,
    /// Seconds from the start of the work to the end of the epoch.
    pub elapsed_seconds: Option<f64>,
}

impl ProgressState {
    /// The epoch whose end this state reports, if it reports one: a
    /// training context whose batch is at its total.
    pub fn finished_epoch(&self) -> Option<EpochPoint> {
        let ProgressContext::Training(context) = &self.context else {
            return None;
        };
        let (epoch, batch) = (context.epoch?, context.batch?);
        if batch.current != batch.total || epoch.current == 0 {
            return None;
        }
        let elapsed_seconds = match (self.started_at, self.updated_at) {
            (Some(start), Some(now)) => now.duration_since(start).ok().map(|d| d.as_secs_f64()),
            _ => None,
        };
        Some(EpochPoint {
            epoch: epoch.current,
            train_loss: context.train_loss,
            train_accuracy: context.train_accuracy,
            val_loss: context.val_loss,
            val_accuracy: context.val_accuracy,
            samples_per_second: context.samples_per_second,
            elapsed_seconds,
        })
    }
}

/// Structured state of a market-data load.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DataContext {
    pub symbol: Option<String>,
    pub timeframe: Option<String>,
    /// Load mode, e.g. `local`, `tail`, `backfill`, `full`.
    pub mode: Option<String>,
    pub segment: Option<Step>,
    pub bars_loaded: u64,
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use expect_test::expect;

    use super::*;

    fn training_state() -> ProgressState {
        ProgressState {
            percentage: 37.5,
            message: "Training MLP model on AAPL [1H] [epoch 15/50] (batch 342/500) [2/4]"
                .to_owned(),
            step: Some(Step::new(2, 4)),
            items: Some(Items {
                processed: 342,
                total: Some(500),
            }),
            eta: Some(Duration::from_millis(125_500)),
            started_at: Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
            updated_at: Some(UNIX_EPOCH + Duration::from_secs(1_700_000_125)),
            context: ProgressContext::Training(TrainingContext {
                model_type: Some("MLP".to_owned()),
                symbols: vec!["AAPL".to_owned()],
                timeframes: vec!["1H".to_owned()],
                epoch: Some(Step::new(15, 50)),
                batch: Some(Step::new(342, 500)),
                train_loss: Some(0.42),
                train_accuracy: Some(0.875),
                val_loss: None,
                val_accuracy: None,
                samples_per_second: Some(1024.0),
            }),
        }
    }

    #[test]
    fn only_the_report_of_an_epochs_end_is_a_point_of_the_history() {
        let mut state = training_state();
        assert_eq!(state.finished_epoch(), None, "batch 342/500 is mid-epoch");
        let ProgressContext::Training(context) = &mut state.context else {
            unreachable!()
        };
        context.batch = Some(Step::new(500, 500));
        context.val_loss = Some(0.9);
        let point = state.finished_epoch().unwrap();
        assert_eq!(point.epoch, 15);
        assert_eq!(point.val_loss, Some(0.9));
        assert_eq!(point.elapsed_seconds, Some(125.0));
        assert_eq!(ProgressState::default().finished_epoch(), None);
    }

    #[test]
    fn json_round_trip() {
        let state = training_state();
        let json = serde_json::to_string(&state).unwrap();
        let back: ProgressState = serde_json::from_str(&json).unwrap();
        assert_eq!(back, state);

        let data = ProgressState {
            context: ProgressContext::Data(DataContext {
                symbol: Some("EURUSD".to_owned()),
                bars_loaded: u64::MAX,
                ..DataContext::default()
            }),
            ..ProgressState::default()
        };
        let json = serde_json::to_string(&data).unwrap();
        assert_eq!(serde_json::from_str::<ProgressState>(&json).unwrap(), data);
    }

    #[test]
    fn json_shape() {
        let json = serde_json::to_string_pretty(&training_state()).unwrap();
        expect![[r#"
            {
              "percentage": 37.5,
              "message": "Training MLP model on AAPL [1H] [epoch 15/50] (batch 342/500) [2/4]",
              "step": {
                "current": 2,
                "total": 4
              },
              "items": {
                "processed": 342,
                "total": 500
              },
              "eta": {
                "secs": 125,
                "nanos": 500000000
              },
              "started_at": {
                "secs_since_epoch": 1700000000,
                "nanos_since_epoch": 0
              },
              "updated_at": {
                "secs_since_epoch": 1700000125,
                "nanos_since_epoch": 0
              },
              "context": {
                "kind": "training",
                "model_type": "MLP",
                "symbols": [
                  "AAPL"
                ],
                "timeframes": [
                  "1H"
                ],
                "epoch": {
                  "current": 15,
                  "total": 50
                },
                "batch": {
                  "current": 342,
                  "total": 500
                },
                "train_loss": 0.42,
                "train_accuracy": 0.875,
                "val_loss": null,
                "val_accuracy": null,
                "samples_per_second": 1024.0
              }
            }"#]]
        .assert_eq(&json);
    }

    #[test]
    fn empty_state_json_shape() {
        let json = serde_json::to_string(&ProgressState::default()).unwrap();
        expect![[r#"{"percentage":0.0,"message":"","step":null,"items":null,"eta":null,"started_at":null,"updated_at":null,"context":{"kind":"none"}}"#]].assert_eq(&json);
    }

    #[test]
    fn step_displays_as_a_fraction() {
        expect![[r#"3/10"#]].assert_eq(&Step::new(3, 10).to_string());
    }
}
