//! Wire ⇄ core for the results of operations: strategy's [`TrainingSummary`]
//! and market-data's [`LoadSummary`], and an operation's result, whose type
//! its kind gives.
//!
//! The operations store keeps a result as JSON whatever its kind, so on
//! the way out the JSON is read as the kind's type and converted, and on
//! the way in the typed message is converted and rendered as JSON again.

use std::fmt::Display;
use std::path::PathBuf;
use std::str::FromStr;

use market_data::{BarSource, FetchSummary, Gap, GapKind, GapReport, LoadSummary};
use orchestrator_core::{Operation, OperationKind};
use progress::EpochPoint;
use strategy::{
    Baseline, ClassMetrics, EpochMetrics, Label, Metrics, ModelKind, PhaseSeconds, Quality,
    SplitLabels, SplitSizes, TrainingReport, TrainingSummary,
};

use super::{WireError, datetime, timestamp};
use crate::proto;
use crate::proto::operation::Result as WireResult;

/// The field an operation's result travels in.
const RESULT_FIELD: &str = "Operation.result";

/// An operation whose stored result is not the result type of its kind, so
/// it has no wire form (a record written by a different trdr, or a bug).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the result of {kind} operation {id} is not a {kind} result: {message}")]
pub struct ResultError {
    pub id: String,
    pub kind: OperationKind,
    /// Always `Operation.result`: where the result would have travelled.
    pub field: &'static str,
    pub message: String,
}

/// The typed result of `operation`, read from its JSON; `None` when it has
/// none (yet).
pub fn operation_result(operation: &Operation) -> Result<Option<WireResult>, ResultError> {
    let Some(json) = &operation.result else {
        return Ok(None);
    };
    let error = |message: String| ResultError {
        id: operation.id.to_string(),
        kind: operation.kind,
        field: RESULT_FIELD,
        message,
    };
    let result = match operation.kind {
        OperationKind::Training => {
            let summary: TrainingSummary =
                serde_json::from_value(json.clone()).map_err(|err| error(err.to_string()))?;
            WireResult::Training((&summary).into())
        }
        OperationKind::DataLoad => {
            let summary: LoadSummary =
                serde_json::from_value(json.clone()).map_err(|err| error(err.to_string()))?;
            WireResult::DataLoad((&summary).into())
        }
        // A kind added to the core needs its result type on the wire too.
        _ => {
            return Err(error(
                "the wire has no result type for this kind".to_owned(),
            ));
        }
    };
    Ok(Some(result))
}

/// An operation's result from the wire, checked against its kind and
/// rendered as the JSON the store keeps.
pub(super) fn result_json(
    kind: OperationKind,
    wire: WireResult,
) -> Result<serde_json::Value, WireError> {
    let json = match (kind, wire) {
        (OperationKind::Training, WireResult::Training(summary)) => {
            serde_json::to_value(TrainingSummary::try_from(summary)?)
        }
        (OperationKind::DataLoad, WireResult::DataLoad(summary)) => {
            serde_json::to_value(LoadSummary::try_from(summary)?)
        }
        (kind, wire) => {
            let carried = match wire {
                WireResult::Training(_) => "a training summary",
                WireResult::DataLoad(_) => "a data load summary",
            };
            return Err(WireError::new(
                RESULT_FIELD,
                format!("a {kind} operation with {carried}"),
            ));
        }
    };
    Ok(json.expect("a summary is plain data with string keys and always encodes"))
}

fn required<T>(value: Option<T>, field: &'static str) -> Result<T, WireError> {
    value.ok_or_else(|| WireError::new(field, "missing"))
}

fn count(value: u64, field: &'static str) -> Result<usize, WireError> {
    usize::try_from(value).map_err(|_| WireError::new(field, format!("{value} is too large")))
}

fn parsed<T>(text: &str, field: &'static str) -> Result<T, WireError>
where
    T: FromStr,
    T::Err: Display,
{
    text.parse()
        .map_err(|err: T::Err| WireError::new(field, err.to_string()))
}

fn names<T: ToString>(values: &[T]) -> Vec<String> {
    values.iter().map(ToString::to_string).collect()
}

impl From<&TrainingSummary> for proto::TrainingSummary {
    fn from(summary: &TrainingSummary) -> Self {
        Self {
            strategy: summary.strategy.clone(),
            model_type: proto::ModelKind::from(summary.model_type).into(),
            symbols: names(&summary.symbols),
            timeframes: names(&summary.timeframes),
            backend: summary.backend.as_str().to_owned(),
            device: summary.device.clone(),
            // A path that is not UTF-8 travels with replacement characters.
            model_path: summary.model_path.to_string_lossy().into_owned(),
            metrics: Some((&summary.metrics).into()),
            report: Some((&summary.report).into()),
            samples: Some(summary.samples.into()),
            features_per_bar: summary.features_per_bar as u64,
            phase_seconds: Some(summary.phase_seconds.into()),
            quality: Some((&summary.quality).into()),
        }
    }
}

impl From<&Quality> for proto::Quality {
    fn from(quality: &Quality) -> Self {
        let counts =
            |[buy, hold, sell]: [u64; Label::COUNT]| Some(proto::LabelCounts { buy, hold, sell });
        Self {
            balanced_accuracy: quality.balanced_accuracy,
            kappa: quality.kappa,
            train_labels: counts(quality.labels.train),
            validation_labels: counts(quality.labels.validation),
            test_labels: counts(quality.labels.test),
            val_test_gap: quality.val_test_gap,
            verdict: quality.verdict.clone(),
            warnings: quality.warnings.clone(),
        }
    }
}

impl From<proto::Quality> for Quality {
    fn from(wire: proto::Quality) -> Self {
        let counts = |wire: Option<proto::LabelCounts>| {
            wire.map_or([0; Label::COUNT], |counts| {
                [counts.buy, counts.hold, counts.sell]
            })
        };
        Self {
            balanced_accuracy: wire.balanced_accuracy,
            kappa: wire.kappa,
            labels: SplitLabels {
                train: counts(wire.train_labels),
                validation: counts(wire.validation_labels),
                test: counts(wire.test_labels),
            },
            val_test_gap: wire.val_test_gap,
            verdict: wire.verdict,
            warnings: wire.warnings,
        }
    }
}

impl TryFrom<proto::TrainingSummary> for TrainingSummary {
    type Error = WireError;

    fn try_from(wire: proto::TrainingSummary) -> Result<Self, Self::Error> {
        let model_type = proto::ModelKind::try_from(wire.model_type).map_err(|_| {
            WireError::new(
                "TrainingSummary.model_type",
                format!("unknown value {}", wire.model_type),
            )
        })?;
        Ok(Self {
            strategy: wire.strategy,
            model_type: model_type.try_into()?,
            symbols: wire
                .symbols
                .iter()
                .map(|symbol| parsed(symbol, "TrainingSummary.symbols"))
                .collect::<Result<_, _>>()?,
            timeframes: wire
                .timeframes
                .iter()
                .map(|timeframe| parsed(timeframe, "TrainingSummary.timeframes"))
                .collect::<Result<_, _>>()?,
            backend: parsed(&wire.backend, "TrainingSummary.backend")?,
            device: wire.device,
            model_path: PathBuf::from(wire.model_path),
            metrics: required(wire.metrics, "TrainingSummary.metrics")?.try_into()?,
            report: required(wire.report, "TrainingSummary.report")?.try_into()?,
            samples: required(wire.samples, "TrainingSummary.samples")?.try_into()?,
            features_per_bar: count(wire.features_per_bar, "TrainingSummary.features_per_bar")?,
            phase_seconds: required(wire.phase_seconds, "TrainingSummary.phase_seconds")?.into(),
            // A summary from before the reading was made has none.
            quality: wire.quality.map(Quality::from).unwrap_or_default(),
        })
    }
}

impl From<ModelKind> for proto::ModelKind {
    fn from(kind: ModelKind) -> Self {
        match kind {
            ModelKind::Mlp => proto::ModelKind::Mlp,
            ModelKind::Cnn => proto::ModelKind::Cnn,
            ModelKind::Lstm => proto::ModelKind::Lstm,
        }
    }
}

impl TryFrom<proto::ModelKind> for ModelKind {
    type Error = WireError;

    fn try_from(kind: proto::ModelKind) -> Result<Self, Self::Error> {
        match kind {
            proto::ModelKind::Mlp => Ok(ModelKind::Mlp),
            proto::ModelKind::Cnn => Ok(ModelKind::Cnn),
            proto::ModelKind::Lstm => Ok(ModelKind::Lstm),
            proto::ModelKind::Unspecified => {
                Err(WireError::new("TrainingSummary.model_type", "unspecified"))
            }
        }
    }
}

impl From<&Metrics> for proto::Metrics {
    fn from(metrics: &Metrics) -> Self {
        Self {
            samples: metrics.samples as u64,
            accuracy: metrics.accuracy,
            per_class: metrics
                .per_class
                .iter()
                .map(|class| proto::ClassMetrics {
                    class: class.class.clone(),
                    precision: class.precision,
                    recall: class.recall,
                    f1: class.f1,
                    support: class.support,
                })
                .collect(),
            macro_f1: metrics.macro_f1,
            confusion_matrix: metrics
                .confusion_matrix
                .iter()
                .map(|row| proto::ConfusionRow {
                    predicted: row.to_vec(),
                })
                .collect(),
            baseline: Some(proto::Baseline {
                class: metrics.baseline.class.clone(),
                accuracy: metrics.baseline.accuracy,
            }),
        }
    }
}

impl TryFrom<proto::Metrics> for Metrics {
    type Error = WireError;

    fn try_from(wire: proto::Metrics) -> Result<Self, Self::Error> {
        let shape = || {
            WireError::new(
                "Metrics.confusion_matrix",
                format!(
                    "expected {n} rows of {n} counts, got {:?}",
                    wire.confusion_matrix
                        .iter()
                        .map(|row| row.predicted.len())
                        .collect::<Vec<_>>(),
                    n = Label::COUNT,
                ),
            )
        };
        let mut confusion_matrix = [[0; Label::COUNT]; Label::COUNT];
        if wire.confusion_matrix.len() != Label::COUNT {
            return Err(shape());
        }
        for (row, wire_row) in confusion_matrix.iter_mut().zip(&wire.confusion_matrix) {
            *row = wire_row
                .predicted
                .as_slice()
                .try_into()
                .map_err(|_| shape())?;
        }
        let baseline = required(wire.baseline, "Metrics.baseline")?;
        Ok(Self {
            samples: count(wire.samples, "Metrics.samples")?,
            accuracy: wire.accuracy,
            per_class: wire
                .per_class
                .into_iter()
                .map(|class| ClassMetrics {
                    class: class.class,
                    precision: class.precision,
                    recall: class.recall,
                    f1: class.f1,
                    support: class.support,
                })
                .collect(),
            macro_f1: wire.macro_f1,
            confusion_matrix,
            baseline: Baseline {
                class: baseline.class,
                accuracy: baseline.accuracy,
            },
        })
    }
}

impl From<&TrainingReport> for proto::TrainingReport {
    fn from(report: &TrainingReport) -> Self {
        Self {
            seed: report.seed,
            epochs_run: report.epochs_run as u64,
            best_epoch: report.best_epoch as u64,
            best_val_loss: report.best_val_loss,
            stopped_early: report.stopped_early,
            history: report
                .history
                .iter()
                .map(|epoch| proto::EpochMetrics {
                    epoch: epoch.epoch as u64,
                    train_loss: epoch.train_loss,
                    train_accuracy: epoch.train_accuracy,
                    val_loss: epoch.val_loss,
                    val_accuracy: epoch.val_accuracy,
                    samples_per_second: epoch.samples_per_second,
                })
                .collect(),
        }
    }
}

impl TryFrom<proto::TrainingReport> for TrainingReport {
    type Error = WireError;

    fn try_from(wire: proto::TrainingReport) -> Result<Self, Self::Error> {
        Ok(Self {
            seed: wire.seed,
            epochs_run: count(wire.epochs_run, "TrainingReport.epochs_run")?,
            best_epoch: count(wire.best_epoch, "TrainingReport.best_epoch")?,
            best_val_loss: wire.best_val_loss,
            stopped_early: wire.stopped_early,
            history: wire
                .history
                .into_iter()
                .map(|epoch| {
                    Ok(EpochMetrics {
                        epoch: count(epoch.epoch, "EpochMetrics.epoch")?,
                        train_loss: epoch.train_loss,
                        train_accuracy: epoch.train_accuracy,
                        val_loss: epoch.val_loss,
                        val_accuracy: epoch.val_accuracy,
                        samples_per_second: epoch.samples_per_second,
                    })
                })
                .collect::<Result<_, WireError>>()?,
        })
    }
}

impl From<SplitSizes> for proto::SplitSizes {
    fn from(sizes: SplitSizes) -> Self {
        Self {
            train: sizes.train as u64,
            validation: sizes.validation as u64,
            test: sizes.test as u64,
        }
    }
}

impl TryFrom<proto::SplitSizes> for SplitSizes {
    type Error = WireError;

    fn try_from(wire: proto::SplitSizes) -> Result<Self, Self::Error> {
        Ok(Self {
            train: count(wire.train, "SplitSizes.train")?,
            validation: count(wire.validation, "SplitSizes.validation")?,
            test: count(wire.test, "SplitSizes.test")?,
        })
    }
}

impl From<PhaseSeconds> for proto::PhaseSeconds {
    fn from(phases: PhaseSeconds) -> Self {
        Self {
            load_data: phases.load_data,
            build_features: phases.build_features,
            train: phases.train,
            evaluate_and_save: phases.evaluate_and_save,
        }
    }
}

impl From<proto::PhaseSeconds> for PhaseSeconds {
    fn from(wire: proto::PhaseSeconds) -> Self {
        Self {
            load_data: wire.load_data,
            build_features: wire.build_features,
            train: wire.train,
            evaluate_and_save: wire.evaluate_and_save,
        }
    }
}

impl From<&LoadSummary> for proto::LoadSummary {
    fn from(summary: &LoadSummary) -> Self {
        let (path, resampled_from) = match &summary.source {
            BarSource::Store { path } => (path, None),
            BarSource::Resampled { from, path } => (path, Some(from.to_string())),
        };
        Self {
            symbol: summary.symbol.to_string(),
            timeframe: summary.timeframe.to_string(),
            mode: summary.mode.as_str().to_owned(),
            bars: summary.bars as u64,
            first: summary.first.map(timestamp),
            last: summary.last.map(timestamp),
            source: Some(proto::BarSource {
                path: path.to_string_lossy().into_owned(),
                resampled_from,
            }),
            gaps: Some((&summary.gaps).into()),
            fetched: summary.fetched.as_ref().map(|fetched| proto::FetchSummary {
                from: fetched.from.clone(),
                received: fetched.received as u64,
                added: fetched.added as u64,
                replaced: fetched.replaced as u64,
                unchanged: fetched.unchanged as u64,
            }),
        }
    }
}

impl TryFrom<proto::LoadSummary> for LoadSummary {
    type Error = WireError;

    fn try_from(wire: proto::LoadSummary) -> Result<Self, Self::Error> {
        let source = required(wire.source, "LoadSummary.source")?;
        let path = PathBuf::from(source.path);
        Ok(Self {
            symbol: parsed(&wire.symbol, "LoadSummary.symbol")?,
            timeframe: parsed(&wire.timeframe, "LoadSummary.timeframe")?,
            mode: parsed(&wire.mode, "LoadSummary.mode")?,
            bars: count(wire.bars, "LoadSummary.bars")?,
            first: wire
                .first
                .map(|at| datetime(at, "LoadSummary.first"))
                .transpose()?,
            last: wire
                .last
                .map(|at| datetime(at, "LoadSummary.last"))
                .transpose()?,
            source: match source.resampled_from {
                None => BarSource::Store { path },
                Some(from) => BarSource::Resampled {
                    from: parsed(&from, "BarSource.resampled_from")?,
                    path,
                },
            },
            gaps: required(wire.gaps, "LoadSummary.gaps")?.try_into()?,
            fetched: wire
                .fetched
                .map(|fetched| {
                    Ok::<_, WireError>(FetchSummary {
                        from: fetched.from,
                        received: count(fetched.received, "FetchSummary.received")?,
                        added: count(fetched.added, "FetchSummary.added")?,
                        replaced: count(fetched.replaced, "FetchSummary.replaced")?,
                        unchanged: count(fetched.unchanged, "FetchSummary.unchanged")?,
                    })
                })
                .transpose()?,
        })
    }
}

impl From<&GapReport> for proto::GapReport {
    fn from(report: &GapReport) -> Self {
        Self {
            gaps: report
                .gaps
                .iter()
                .map(|gap| proto::Gap {
                    from: Some(timestamp(gap.from)),
                    to: Some(timestamp(gap.to)),
                    missing_bars: gap.missing_bars,
                    kind: proto::GapKind::from(gap.kind).into(),
                })
                .collect(),
            weekend: report.weekend as u64,
            closures: report.closures as u64,
            holes: report.holes as u64,
            missing_bars: report.missing_bars,
        }
    }
}

impl TryFrom<proto::GapReport> for GapReport {
    type Error = WireError;

    fn try_from(wire: proto::GapReport) -> Result<Self, Self::Error> {
        Ok(Self {
            gaps: wire
                .gaps
                .into_iter()
                .map(Gap::try_from)
                .collect::<Result<_, _>>()?,
            weekend: count(wire.weekend, "GapReport.weekend")?,
            closures: count(wire.closures, "GapReport.closures")?,
            holes: count(wire.holes, "GapReport.holes")?,
            missing_bars: wire.missing_bars,
        })
    }
}

impl TryFrom<proto::Gap> for Gap {
    type Error = WireError;

    fn try_from(wire: proto::Gap) -> Result<Self, Self::Error> {
        let kind = match proto::GapKind::try_from(wire.kind) {
            Ok(proto::GapKind::Weekend) => GapKind::Weekend,
            Ok(proto::GapKind::Closure) => GapKind::Closure,
            Ok(proto::GapKind::Hole) => GapKind::Hole,
            Ok(proto::GapKind::Unspecified) => {
                return Err(WireError::new("Gap.kind", "unspecified"));
            }
            Err(_) => {
                return Err(WireError::new(
                    "Gap.kind",
                    format!("unknown value {}", wire.kind),
                ));
            }
        };
        Ok(Self {
            from: datetime(required(wire.from, "Gap.from")?, "Gap.from")?,
            to: datetime(required(wire.to, "Gap.to")?, "Gap.to")?,
            missing_bars: wire.missing_bars,
            kind,
        })
    }
}

impl From<GapKind> for proto::GapKind {
    fn from(kind: GapKind) -> Self {
        match kind {
            GapKind::Weekend => proto::GapKind::Weekend,
            GapKind::Closure => proto::GapKind::Closure,
            GapKind::Hole => proto::GapKind::Hole,
        }
    }
}

/// An epoch of a training's curves, to and from the wire: plain numbers,
/// nothing to check.
impl From<&EpochPoint> for proto::EpochPoint {
    fn from(point: &EpochPoint) -> Self {
        Self {
            epoch: point.epoch,
            train_loss: point.train_loss,
            train_accuracy: point.train_accuracy,
            val_loss: point.val_loss,
            val_accuracy: point.val_accuracy,
            samples_per_second: point.samples_per_second,
            elapsed_seconds: point.elapsed_seconds,
        }
    }
}

impl From<proto::EpochPoint> for EpochPoint {
    fn from(wire: proto::EpochPoint) -> Self {
        Self {
            epoch: wire.epoch,
            train_loss: wire.train_loss,
            train_accuracy: wire.train_accuracy,
            val_loss: wire.val_loss,
            val_accuracy: wire.val_accuracy,
            samples_per_second: wire.samples_per_second,
            elapsed_seconds: wire.elapsed_seconds,
        }
    }
}

#[cfg(test)]
mod tests;
