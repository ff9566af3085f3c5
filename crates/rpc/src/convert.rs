//! Wire ⇄ core conversions. Core to wire cannot fail, except for an
//! operation whose stored result is not its kind's type ([`ResultError`]);
//! wire to core checks what the type system of protobuf cannot (known enum
//! values, valid ids, JSON fields) and names the field that was wrong.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use orchestrator_core::{
    CancelReason, Checkpoint, Operation, OperationId, OperationKind, OperationStatus,
};
use progress::{DataContext, Items, ProgressContext, ProgressState, Step, TrainingContext};
use strategy::{
    Backend, RequestError, StrategyConfig, StrategySource, TrainRequest, TrainingOptions,
    TrainingRequest,
};

use crate::proto;
use crate::proto::cancel_reason::Kind as ReasonKind;

mod results;

pub use results::{ResultError, operation_result};

/// A wire message that does not make a valid core value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field} in a message from the peer: {message}")]
pub struct WireError {
    /// The field, as `message.field`.
    pub field: &'static str,
    pub message: String,
}

impl WireError {
    fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

impl From<WireError> for tonic::Status {
    fn from(err: WireError) -> Self {
        tonic::Status::invalid_argument(err.to_string())
    }
}

/// A UTC time as a protobuf timestamp.
pub fn timestamp(time: DateTime<Utc>) -> prost_types::Timestamp {
    SystemTime::from(time).into()
}

/// A protobuf timestamp as a UTC time; `field` names it in the error.
pub fn datetime(
    stamp: prost_types::Timestamp,
    field: &'static str,
) -> Result<DateTime<Utc>, WireError> {
    DateTime::from_timestamp(
        stamp.seconds,
        u32::try_from(stamp.nanos).unwrap_or(u32::MAX),
    )
    .ok_or_else(|| WireError::new(field, format!("{stamp} is not a representable time")))
}

fn system_time(
    stamp: prost_types::Timestamp,
    field: &'static str,
) -> Result<SystemTime, WireError> {
    SystemTime::try_from(stamp)
        .map_err(|err| WireError::new(field, format!("not a representable time: {err}")))
}

impl From<Step> for proto::Step {
    fn from(step: Step) -> Self {
        Self {
            current: step.current,
            total: step.total,
        }
    }
}

impl From<proto::Step> for Step {
    fn from(step: proto::Step) -> Self {
        Step::new(step.current, step.total)
    }
}

impl From<&TrainingContext> for proto::TrainingContext {
    fn from(context: &TrainingContext) -> Self {
        Self {
            model_type: context.model_type.clone(),
            symbols: context.symbols.clone(),
            timeframes: context.timeframes.clone(),
            epoch: context.epoch.map(Into::into),
            batch: context.batch.map(Into::into),
            train_loss: context.train_loss,
            train_accuracy: context.train_accuracy,
            val_loss: context.val_loss,
            val_accuracy: context.val_accuracy,
            samples_per_second: context.samples_per_second,
        }
    }
}

impl From<proto::TrainingContext> for TrainingContext {
    fn from(context: proto::TrainingContext) -> Self {
        Self {
            model_type: context.model_type,
            symbols: context.symbols,
            timeframes: context.timeframes,
            epoch: context.epoch.map(Into::into),
            batch: context.batch.map(Into::into),
            train_loss: context.train_loss,
            train_accuracy: context.train_accuracy,
            val_loss: context.val_loss,
            val_accuracy: context.val_accuracy,
            samples_per_second: context.samples_per_second,
        }
    }
}

impl From<&DataContext> for proto::DataContext {
    fn from(context: &DataContext) -> Self {
        Self {
            symbol: context.symbol.clone(),
            timeframe: context.timeframe.clone(),
            mode: context.mode.clone(),
            segment: context.segment.map(Into::into),
            bars_loaded: context.bars_loaded,
        }
    }
}

impl From<proto::DataContext> for DataContext {
    fn from(context: proto::DataContext) -> Self {
        Self {
            symbol: context.symbol,
            timeframe: context.timeframe,
            mode: context.mode,
            segment: context.segment.map(Into::into),
            bars_loaded: context.bars_loaded,
        }
    }
}

impl From<&ProgressState> for proto::Progress {
    fn from(state: &ProgressState) -> Self {
        use proto::progress::Context;
        Self {
            percentage: state.percentage,
            message: state.message.clone(),
            step: state.step.map(Into::into),
            items: state.items.map(|items| proto::Items {
                processed: items.processed,
                total: items.total,
            }),
            // An ETA too long for protobuf (beyond 10 000 years) is as good as unknown.
            eta: state
                .eta
                .and_then(|eta| prost_types::Duration::try_from(eta).ok()),
            started_at: state.started_at.map(Into::into),
            updated_at: state.updated_at.map(Into::into),
            context: match &state.context {
                ProgressContext::None => None,
                ProgressContext::Training(context) => Some(Context::Training(context.into())),
                ProgressContext::Data(context) => Some(Context::Data(context.into())),
            },
        }
    }
}

impl TryFrom<proto::Progress> for ProgressState {
    type Error = WireError;

    fn try_from(wire: proto::Progress) -> Result<Self, Self::Error> {
        use proto::progress::Context;
        Ok(Self {
            percentage: wire.percentage,
            message: wire.message,
            step: wire.step.map(Into::into),
            items: wire.items.map(|items| Items {
                processed: items.processed,
                total: items.total,
            }),
            eta: wire
                .eta
                .map(|eta| {
                    Duration::try_from(eta)
                        .map_err(|err| WireError::new("Progress.eta", err.to_string()))
                })
                .transpose()?,
            started_at: wire
                .started_at
                .map(|at| system_time(at, "Progress.started_at"))
                .transpose()?,
            updated_at: wire
                .updated_at
                .map(|at| system_time(at, "Progress.updated_at"))
                .transpose()?,
            context: match wire.context {
                None => ProgressContext::None,
                Some(Context::Training(context)) => ProgressContext::Training(context.into()),
                Some(Context::Data(context)) => ProgressContext::Data(context.into()),
            },
        })
    }
}

impl From<&CancelReason> for proto::CancelReason {
    fn from(reason: &CancelReason) -> Self {
        let (kind, note) = match reason {
            CancelReason::UserRequest(note) => (ReasonKind::UserRequest, note.clone()),
            CancelReason::Shutdown => (ReasonKind::Shutdown, None),
            CancelReason::Timeout => (ReasonKind::Timeout, None),
            CancelReason::HostLost => (ReasonKind::HostLost, None),
        };
        Self {
            kind: kind.into(),
            note,
        }
    }
}

impl From<proto::CancelReason> for CancelReason {
    /// A kind this build does not know (a newer peer) reads as a user
    /// request: somebody asked for the stop, and the note is kept.
    fn from(reason: proto::CancelReason) -> Self {
        match reason.kind() {
            ReasonKind::Shutdown => CancelReason::Shutdown,
            ReasonKind::Timeout => CancelReason::Timeout,
            ReasonKind::HostLost => CancelReason::HostLost,
            ReasonKind::UserRequest | ReasonKind::Unspecified => {
                CancelReason::UserRequest(reason.note)
            }
        }
    }
}

impl From<OperationKind> for proto::OperationKind {
    fn from(kind: OperationKind) -> Self {
        match kind {
            OperationKind::DataLoad => proto::OperationKind::DataLoad,
            OperationKind::Training => proto::OperationKind::Training,
            // `OperationKind` is non-exhaustive; a kind added there must be
            // added to the proto as well, which this arm reminds of.
            _ => proto::OperationKind::Unspecified,
        }
    }
}

impl TryFrom<proto::OperationKind> for OperationKind {
    type Error = WireError;
    fn try_from(kind: proto::OperationKind) -> Result<Self, Self::Error> {
        match kind {
            proto::OperationKind::DataLoad => Ok(OperationKind::DataLoad),
            proto::OperationKind::Training => Ok(OperationKind::Training),
            proto::OperationKind::Unspecified => {
                Err(WireError::new("Operation.kind", "unspecified"))
            }
        }
    }
}

impl From<OperationStatus> for proto::OperationStatus {
    fn from(status: OperationStatus) -> Self {
        match status {
            OperationStatus::Pending => proto::OperationStatus::Pending,
            OperationStatus::Running => proto::OperationStatus::Running,
            OperationStatus::Completed => proto::OperationStatus::Completed,
            OperationStatus::Failed => proto::OperationStatus::Failed,
            OperationStatus::Cancelled => proto::OperationStatus::Cancelled,
        }
    }
}

impl TryFrom<proto::OperationStatus> for OperationStatus {
    type Error = WireError;
    fn try_from(status: proto::OperationStatus) -> Result<Self, Self::Error> {
        Ok(match status {
            proto::OperationStatus::Pending => OperationStatus::Pending,
            proto::OperationStatus::Running => OperationStatus::Running,
            proto::OperationStatus::Completed => OperationStatus::Completed,
            proto::OperationStatus::Failed => OperationStatus::Failed,
            proto::OperationStatus::Cancelled => OperationStatus::Cancelled,
            proto::OperationStatus::Unspecified => {
                return Err(WireError::new("Operation.status", "unspecified"));
            }
        })
    }
}

impl From<&Checkpoint> for proto::Checkpoint {
    fn from(checkpoint: &Checkpoint) -> Self {
        Self {
            path: checkpoint.path.clone(),
            bytes: checkpoint.bytes,
            epoch: checkpoint.epoch,
            batch: checkpoint.batch,
            saved_at: Some(timestamp(checkpoint.saved_at)),
        }
    }
}

impl TryFrom<proto::Checkpoint> for Checkpoint {
    type Error = WireError;

    fn try_from(wire: proto::Checkpoint) -> Result<Self, Self::Error> {
        Ok(Self {
            path: wire.path,
            bytes: wire.bytes,
            epoch: wire.epoch,
            batch: wire.batch,
            saved_at: datetime(
                wire.saved_at
                    .ok_or_else(|| WireError::new("Checkpoint.saved_at", "missing"))?,
                "Checkpoint.saved_at",
            )?,
        })
    }
}

/// A training host's announcement of a session's checkpoint: how far it
/// got and how large it is; the file stays on the host (`FetchCheckpoint`).
impl From<&Checkpoint> for proto::CheckpointSaved {
    fn from(checkpoint: &Checkpoint) -> Self {
        Self {
            epoch: checkpoint.epoch,
            batch: checkpoint.batch,
            bytes: checkpoint.bytes,
        }
    }
}

/// An operation as it travels: its result as the typed message of its
/// kind. Fails only when the stored result is not that type.
impl TryFrom<&Operation> for proto::Operation {
    type Error = ResultError;

    fn try_from(operation: &Operation) -> Result<Self, Self::Error> {
        Ok(Self {
            id: operation.id.to_string(),
            kind: proto::OperationKind::from(operation.kind).into(),
            status: proto::OperationStatus::from(operation.status).into(),
            created_at: Some(timestamp(operation.created_at)),
            started_at: operation.started_at.map(timestamp),
            finished_at: operation.finished_at.map(timestamp),
            params_json: operation.params.to_string(),
            progress: Some((&operation.progress).into()),
            result: operation_result(operation)?,
            error: operation.error.clone(),
            cancel_reason: operation.cancel_reason.as_ref().map(Into::into),
            cancel_requested_at: operation.cancel_requested_at.map(timestamp),
            checkpoint: operation.checkpoint.as_ref().map(Into::into),
            runs_on: operation.runs_on.clone(),
        })
    }
}

impl TryFrom<proto::Operation> for Operation {
    type Error = WireError;

    fn try_from(wire: proto::Operation) -> Result<Self, Self::Error> {
        let kind = proto::OperationKind::try_from(wire.kind)
            .map_err(|_| WireError::new("Operation.kind", format!("unknown value {}", wire.kind)))?
            .try_into()?;
        let status = proto::OperationStatus::try_from(wire.status)
            .map_err(|_| {
                WireError::new("Operation.status", format!("unknown value {}", wire.status))
            })?
            .try_into()?;
        let json = |field: &'static str, text: &str| {
            serde_json::from_str(text).map_err(|err| WireError::new(field, err.to_string()))
        };
        Ok(Self {
            id: wire
                .id
                .parse::<OperationId>()
                .map_err(|err| WireError::new("Operation.id", err.to_string()))?,
            kind,
            status,
            created_at: datetime(
                wire.created_at
                    .ok_or_else(|| WireError::new("Operation.created_at", "missing"))?,
                "Operation.created_at",
            )?,
            started_at: wire
                .started_at
                .map(|at| datetime(at, "Operation.started_at"))
                .transpose()?,
            finished_at: wire
                .finished_at
                .map(|at| datetime(at, "Operation.finished_at"))
                .transpose()?,
            params: json("Operation.params_json", &wire.params_json)?,
            progress: wire
                .progress
                .map(ProgressState::try_from)
                .transpose()?
                .unwrap_or_default(),
            result: wire
                .result
                .map(|result| results::result_json(kind, result))
                .transpose()?,
            error: wire.error,
            cancel_reason: wire.cancel_reason.map(Into::into),
            cancel_requested_at: wire
                .cancel_requested_at
                .map(|at| datetime(at, "Operation.cancel_requested_at"))
                .transpose()?,
            checkpoint: wire.checkpoint.map(Checkpoint::try_from).transpose()?,
            // The curves travel apart (`GetOperationMetrics`), so a watcher
            // is not sent a growing list with every snapshot.
            epochs: Vec::new(),
            runs_on: wire.runs_on,
        })
    }
}

/// The training request as the host client sends it: the strategy as JSON
/// of the parsed, checked strategy (overrides applied), so the host trains
/// exactly what the caller checked.
impl From<&TrainingRequest> for proto::StartTrainingRequest {
    fn from(request: &TrainingRequest) -> Self {
        let options = request.options();
        Self {
            strategy_json: serde_json::to_string(request.strategy())
                .expect("a strategy is plain data with string keys and always encodes"),
            start: request.start().map(timestamp),
            end: request.end().map(timestamp),
            options: Some(proto::TrainingOptions {
                backend: wire_backend(options.backend),
                epochs: options.epochs,
                check_every_batches: options.check_every_batches,
                // 0 means the host's default: ask for at least 1 ms.
                progress_interval_ms: u32::try_from(options.progress_interval.as_millis())
                    .unwrap_or(u32::MAX)
                    .max(1),
            }),
            resume_checkpoint: None,
        }
    }
}

/// The training request as the host receives it, checked once by
/// [`TrainingRequest::new`]; unset options take the defaults.
impl TryFrom<proto::StartTrainingRequest> for TrainingRequest {
    type Error = WireError;

    fn try_from(wire: proto::StartTrainingRequest) -> Result<Self, Self::Error> {
        let strategy: StrategyConfig =
            serde_json::from_str(&wire.strategy_json).map_err(|err| {
                WireError::new(
                    "StartTrainingRequest.strategy_json",
                    format!("not a valid strategy: {err}"),
                )
            })?;
        let start = wire
            .start
            .map(|at| datetime(at, "StartTrainingRequest.start"))
            .transpose()?;
        let end = wire
            .end
            .map(|at| datetime(at, "StartTrainingRequest.end"))
            .transpose()?;
        let wire_options = wire.options.unwrap_or_default();
        let defaults = TrainingOptions::default();
        let options = TrainingOptions {
            backend: backend(&wire_options.backend, "TrainingOptions.backend")?,
            epochs: wire_options.epochs,
            check_every_batches: match wire_options.check_every_batches {
                0 => defaults.check_every_batches,
                every => every,
            },
            progress_interval: match wire_options.progress_interval_ms {
                0 => defaults.progress_interval,
                ms => Duration::from_millis(u64::from(ms)),
            },
        };
        TrainingRequest::new(strategy, start, end, options).map_err(|err| {
            let field = match err {
                RequestError::NoEpochs => "TrainingOptions.epochs",
                RequestError::NoCheckInterval => "TrainingOptions.check_every_batches",
                RequestError::StartAfterEnd { .. } => "StartTrainingRequest.start",
                RequestError::NoSymbols | RequestError::NoTimeframes => {
                    "StartTrainingRequest.strategy_json"
                }
            };
            WireError::new(field, err.to_string())
        })
    }
}

/// The name of a checkpoint in a training host's checkpoints folder, as
/// its `UploadCheckpoint` answered it: one plain file name, never a path,
/// so a caller can name nothing outside that folder (nor a hidden file,
/// which an upload under way is).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CheckpointName(String);

/// Longer names are refused: no file system takes them.
const MAX_NAME_BYTES: usize = 255;

impl CheckpointName {
    /// Checks `name`, the value of `field`.
    pub fn parse(name: &str, field: &'static str) -> Result<Self, WireError> {
        let refuse = |why: &str| WireError::new(field, format!("{name:?} {why}"));
        if name.is_empty() {
            return Err(WireError::new(field, "empty"));
        }
        if name.len() > MAX_NAME_BYTES {
            return Err(WireError::new(
                field,
                format!("a name of {} bytes; at most {MAX_NAME_BYTES}", name.len()),
            ));
        }
        if name.starts_with('.') {
            return Err(refuse("starts with a dot; a checkpoint's name does not"));
        }
        if name
            .chars()
            .any(|c| matches!(c, '/' | '\\' | ':') || c.is_control())
        {
            return Err(refuse(
                "is not a plain file name (a separator or a control character)",
            ));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CheckpointName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The checkpoint a training sent to a host continues from, if any: the
/// name in `StartTrainingRequest.resume_checkpoint`, checked.
pub fn resume_checkpoint(
    wire: &proto::StartTrainingRequest,
) -> Result<Option<CheckpointName>, WireError> {
    wire.resume_checkpoint
        .as_deref()
        .map(|name| CheckpointName::parse(name, "StartTrainingRequest.resume_checkpoint"))
        .transpose()
}

/// Longer origins of a strategy text are refused: an origin is a file name
/// for messages, not a place for data.
const MAX_ORIGIN_BYTES: usize = 1024;
/// Larger strategy texts are refused unparsed: the examples are about 2 KiB,
/// and the parse runs on the server's request path.
const MAX_STRATEGY_BYTES: usize = 1024 * 1024;

/// A training as a client of `trdr serve` submits it. A `Named` strategy
/// (and a `File` one: a server opens no client path, so a client that
/// means its own file sends its text, see `StrategySource::read`) goes as
/// a name in the server's strategies directory.
impl From<&TrainRequest> for proto::StartTrainingOperationRequest {
    fn from(request: &TrainRequest) -> Self {
        use proto::start_training_operation_request::Strategy;
        let strategy = match &request.strategy {
            StrategySource::Text { origin, yaml } => Strategy::StrategyText(proto::StrategyText {
                yaml: yaml.clone(),
                origin: origin.clone(),
            }),
            StrategySource::Named(name) => Strategy::StrategyName(name.clone()),
            StrategySource::File(path) => Strategy::StrategyName(path.display().to_string()),
        };
        Self {
            strategy: Some(strategy),
            // Empty keeps the strategy's own.
            symbols: request
                .symbols
                .iter()
                .flatten()
                .map(ToString::to_string)
                .collect(),
            timeframes: request
                .timeframes
                .iter()
                .flatten()
                .map(ToString::to_string)
                .collect(),
            start: request.start.map(timestamp),
            end: request.end.map(timestamp),
            epochs: request.epochs,
            backend: wire_backend(request.backend),
            checkpoint_every_epochs: request.checkpoint_every_epochs,
            checkpoint_every_seconds: request.checkpoint_every_seconds,
        }
    }
}

/// A submitted training as `trdr serve` receives it; a strategy name stays
/// a `Named` source for the server to resolve in its own directory.
impl TryFrom<proto::StartTrainingOperationRequest> for TrainRequest {
    type Error = WireError;

    fn try_from(wire: proto::StartTrainingOperationRequest) -> Result<Self, Self::Error> {
        use proto::start_training_operation_request::Strategy;
        let strategy = match wire.strategy {
            None => {
                return Err(WireError::new(
                    "StartTrainingOperationRequest.strategy",
                    "give strategy_text (the YAML) or strategy_name (a file in the server's \
                     strategies directory)",
                ));
            }
            Some(Strategy::StrategyName(name)) => StrategySource::Named(name),
            Some(Strategy::StrategyText(text)) => {
                if text.yaml.len() > MAX_STRATEGY_BYTES {
                    return Err(WireError::new(
                        "StrategyText.yaml",
                        format!("larger than {} KiB", MAX_STRATEGY_BYTES / 1024),
                    ));
                }
                if text.origin.len() > MAX_ORIGIN_BYTES {
                    return Err(WireError::new(
                        "StrategyText.origin",
                        format!("longer than {MAX_ORIGIN_BYTES} bytes"),
                    ));
                }
                let origin = if text.origin.trim().is_empty() {
                    "(strategy text)".to_owned()
                } else {
                    text.origin
                };
                StrategySource::Text {
                    origin,
                    yaml: text.yaml,
                }
            }
        };
        let backend = backend(&wire.backend, "StartTrainingOperationRequest.backend")?;
        Ok(Self {
            strategy,
            symbols: list("StartTrainingOperationRequest.symbols", &wire.symbols)?,
            timeframes: list("StartTrainingOperationRequest.timeframes", &wire.timeframes)?,
            start: wire
                .start
                .map(|at| datetime(at, "StartTrainingOperationRequest.start"))
                .transpose()?,
            end: wire
                .end
                .map(|at| datetime(at, "StartTrainingOperationRequest.end"))
                .transpose()?,
            epochs: wire.epochs,
            backend,
            checkpoint_every_epochs: wire.checkpoint_every_epochs,
            checkpoint_every_seconds: wire.checkpoint_every_seconds,
        })
    }
}

/// A backend on the wire: empty when the request leaves the choice to the
/// machine that trains.
fn wire_backend(backend: Option<Backend>) -> String {
    backend.map(Backend::as_str).unwrap_or_default().to_owned()
}

/// The backend `name` asks for; `None` for an empty name.
fn backend(name: &str, field: &'static str) -> Result<Option<Backend>, WireError> {
    if name.is_empty() {
        return Ok(None);
    }
    name.parse()
        .map(Some)
        .map_err(|err: strategy::UnknownBackend| WireError::new(field, err.to_string()))
}

/// `None` for an empty list: the strategy's own values are kept. An item
/// that does not parse is named by its position.
fn list<T>(field: &'static str, items: &[String]) -> Result<Option<Vec<T>>, WireError>
where
    T: FromStr,
    T::Err: fmt::Display,
{
    if items.is_empty() {
        return Ok(None);
    }
    items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            item.parse()
                .map_err(|err| WireError::new(field, format!("item {index}: {err}")))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use chrono::TimeZone;
    use serde_json::json;

    use super::*;

    fn full_progress() -> ProgressState {
        ProgressState {
            percentage: 61.5,
            message: "Training LSTM model on BTCUSD [1h] [epoch 3/10] (batch 7/40) [3/4]".into(),
            step: Some(Step::new(3, 4)),
            items: Some(Items {
                processed: 7,
                total: Some(40),
            }),
            eta: Some(Duration::from_millis(12_345)),
            started_at: Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
            updated_at: Some(UNIX_EPOCH + Duration::new(1_700_000_012, 5_000)),
            context: ProgressContext::Training(TrainingContext {
                model_type: Some("LSTM".into()),
                symbols: vec!["BTCUSD".into(), "EURUSD".into()],
                timeframes: vec!["1h".into()],
                epoch: Some(Step::new(3, 10)),
                batch: Some(Step::new(7, 40)),
                train_loss: Some(0.91),
                train_accuracy: Some(0.52),
                val_loss: None,
                val_accuracy: Some(0.49),
                samples_per_second: Some(81_000.0),
            }),
        }
    }

    #[test]
    fn progress_of_every_context_survives_the_wire() {
        let data = ProgressState {
            context: ProgressContext::Data(DataContext {
                symbol: Some("EURUSD".into()),
                timeframe: Some("1h".into()),
                mode: Some("tail".into()),
                segment: Some(Step::new(2, 5)),
                bars_loaded: 20_000,
            }),
            ..ProgressState::default()
        };
        for state in [full_progress(), data, ProgressState::default()] {
            let wire = proto::Progress::from(&state);
            assert_eq!(ProgressState::try_from(wire).unwrap(), state);
        }
    }

    #[test]
    fn a_negative_eta_from_the_peer_names_the_field() {
        let mut wire = proto::Progress::from(&full_progress());
        wire.eta = Some(prost_types::Duration {
            seconds: -1,
            nanos: 0,
        });
        assert_eq!(
            ProgressState::try_from(wire).unwrap_err().field,
            "Progress.eta"
        );
    }

    #[test]
    fn every_cancel_reason_survives_the_wire() {
        for reason in [
            CancelReason::UserRequest(None),
            CancelReason::UserRequest(Some("wrong symbol".into())),
            CancelReason::Shutdown,
            CancelReason::Timeout,
            CancelReason::HostLost,
        ] {
            assert_eq!(
                CancelReason::from(proto::CancelReason::from(&reason)),
                reason
            );
        }
    }

    fn training_request() -> TrainingRequest {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../strategies/eurusd_mlp.yaml"
        );
        let strategy = StrategyConfig::from_file(std::path::Path::new(path)).unwrap();
        let options = TrainingOptions {
            backend: Some(strategy::Backend::NdArray),
            epochs: Some(7),
            check_every_batches: 4,
            progress_interval: Duration::from_millis(250),
        };
        let start = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
        TrainingRequest::new(strategy, Some(start), None, options).unwrap()
    }

    #[test]
    fn a_submitted_training_survives_the_wire_and_names_a_bad_item_by_position() {
        let request = TrainRequest {
            symbols: Some(vec!["EURUSD".parse().unwrap(), "GBPUSD".parse().unwrap()]),
            timeframes: Some(vec!["1h".parse().unwrap()]),
            start: Some(Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap()),
            epochs: Some(3),
            backend: Some(Backend::NdArray),
            checkpoint_every_epochs: Some(5),
            checkpoint_every_seconds: Some(0),
            ..TrainRequest::new(StrategySource::Text {
                origin: "eurusd_mlp.yaml".into(),
                yaml: "name: t\n".into(),
            })
        };
        let wire = proto::StartTrainingOperationRequest::from(&request);
        assert_eq!(TrainRequest::try_from(wire.clone()).unwrap(), request);

        // Empty lists keep the strategy's own.
        let bare = proto::StartTrainingOperationRequest {
            symbols: Vec::new(),
            ..wire.clone()
        };
        assert_eq!(TrainRequest::try_from(bare).unwrap().symbols, None);
        let bad = proto::StartTrainingOperationRequest {
            symbols: vec!["EURUSD".into(), "..".into()],
            ..wire
        };
        let error = TrainRequest::try_from(bad).unwrap_err();
        assert_eq!(error.field, "StartTrainingOperationRequest.symbols");
        assert!(error.message.starts_with("item 1: "), "{error}");
    }

    #[test]
    fn a_training_request_survives_the_wire() {
        let request = training_request();
        let wire = proto::StartTrainingRequest::from(&request);
        assert_eq!(TrainingRequest::try_from(wire).unwrap(), request);
    }

    #[test]
    fn a_bad_training_request_is_refused_naming_the_field() {
        let good = proto::StartTrainingRequest::from(&training_request());
        type Spoil = fn(&mut proto::StartTrainingRequest);
        let cases: [(Spoil, &str); 4] = [
            (
                |wire| wire.strategy_json = "{}".into(),
                "StartTrainingRequest.strategy_json",
            ),
            (
                |wire| wire.options.as_mut().unwrap().backend = "gpu".into(),
                "TrainingOptions.backend",
            ),
            (
                |wire| wire.options.as_mut().unwrap().epochs = Some(0),
                "TrainingOptions.epochs",
            ),
            (
                |wire| {
                    wire.end = Some(timestamp(
                        Utc.with_ymd_and_hms(2023, 1, 1, 0, 0, 0).unwrap(),
                    ))
                },
                "StartTrainingRequest.start",
            ),
        ];
        for (spoil, field) in cases {
            let mut wire = good.clone();
            spoil(&mut wire);
            assert_eq!(TrainingRequest::try_from(wire).unwrap_err().field, field);
        }
        // Unset options are the defaults, not errors.
        let bare = proto::StartTrainingRequest {
            options: None,
            ..good
        };
        let defaults = TrainingRequest::try_from(bare).unwrap();
        assert_eq!(*defaults.options(), TrainingOptions::default());
    }

    #[test]
    fn a_resume_checkpoint_is_one_plain_name_and_a_bad_one_names_the_field() {
        let mut wire = proto::StartTrainingRequest::from(&training_request());
        assert_eq!(wire.resume_checkpoint, None);
        assert_eq!(resume_checkpoint(&wire).unwrap(), None);
        for name in ["upload-00c0ffee00c0ffee.ckpt", "op_training_1.ckpt", "a..b"] {
            wire.resume_checkpoint = Some(name.to_owned());
            let parsed = resume_checkpoint(&wire).unwrap().unwrap();
            assert_eq!(parsed.as_str(), name);
            // The rest of the request is read as before.
            assert_eq!(
                TrainingRequest::try_from(wire.clone()).unwrap(),
                training_request()
            );
        }
        let long = "x".repeat(256);
        for name in [
            "",
            ".",
            "..",
            "../secret",
            "/etc/passwd",
            "sub/file.ckpt",
            "..\\up.ckpt",
            ".upload-1.ckpt.part",
            "c:file",
            "line\nbreak",
            &long,
        ] {
            wire.resume_checkpoint = Some(name.to_owned());
            let error = resume_checkpoint(&wire).unwrap_err();
            assert_eq!(
                error.field, "StartTrainingRequest.resume_checkpoint",
                "{name:?}"
            );
            assert_eq!(
                tonic::Status::from(error).code(),
                tonic::Code::InvalidArgument
            );
        }
    }

    #[test]
    fn an_operation_survives_the_wire_with_and_without_a_checkpoint() {
        let at = Utc.with_ymd_and_hms(2026, 11, 28, 9, 30, 0).unwrap();
        let mut operation = Operation::new(
            OperationKind::Training,
            json!({"strategy": "strategies/eurusd_mlp.yaml", "epochs": 3}),
            at,
        );
        operation.status = OperationStatus::Cancelled;
        operation.started_at = Some(at + chrono::Duration::seconds(1));
        operation.finished_at = Some(at + chrono::Duration::milliseconds(2_500));
        operation.progress = full_progress();
        // Results of every kind: see `results::tests`.
        operation.error = Some("stopped".into());
        operation.cancel_reason = Some(CancelReason::UserRequest(Some("ctrl-c".into())));
        operation.cancel_requested_at = Some(at + chrono::Duration::seconds(2));
        let wire = proto::Operation::try_from(&operation).unwrap();
        assert_eq!(wire.checkpoint, None);
        assert_eq!(Operation::try_from(wire).unwrap(), operation);

        operation.checkpoint = Some(Checkpoint {
            path: "/models/.checkpoints/op_training.ckpt".into(),
            bytes: 1_234_567,
            epoch: 3,
            batch: 12,
            saved_at: at + chrono::Duration::milliseconds(1_900),
        });
        let wire = proto::Operation::try_from(&operation).unwrap();
        assert_eq!(Operation::try_from(wire).unwrap(), operation);
    }

    #[test]
    fn a_checkpoint_is_announced_without_the_hosts_path() {
        let checkpoint = Checkpoint {
            path: "/host/models/.checkpoints/op_training.ckpt".into(),
            bytes: 1_234_567,
            epoch: 3,
            batch: 12,
            saved_at: Utc::now(),
        };
        assert_eq!(
            proto::CheckpointSaved::from(&checkpoint),
            proto::CheckpointSaved {
                epoch: 3,
                batch: 12,
                bytes: 1_234_567,
            }
        );
    }

    #[test]
    fn a_bad_operation_from_the_peer_names_the_field() {
        let operation = Operation::new(OperationKind::DataLoad, json!({}), Utc::now());
        let good = proto::Operation::try_from(&operation).unwrap();
        type Spoil = fn(&mut proto::Operation);
        let cases: [(Spoil, &str); 6] = [
            (|op| op.id = "op_nope".into(), "Operation.id"),
            (|op| op.kind = 99, "Operation.kind"),
            (|op| op.status = 0, "Operation.status"),
            (|op| op.created_at = None, "Operation.created_at"),
            (|op| op.params_json = "{".into(), "Operation.params_json"),
            (
                |op| op.checkpoint = Some(proto::Checkpoint::default()),
                "Checkpoint.saved_at",
            ),
        ];
        for (spoil, field) in cases {
            let mut wire = good.clone();
            spoil(&mut wire);
            assert_eq!(Operation::try_from(wire).unwrap_err().field, field);
        }
    }

    #[test]
    fn timestamps_round_trip_and_bad_ones_are_named() {
        let at = Utc.with_ymd_and_hms(2024, 2, 29, 23, 59, 59).unwrap()
            + chrono::Duration::nanoseconds(123);
        assert_eq!(datetime(timestamp(at), "x").unwrap(), at);
        let absurd = prost_types::Timestamp {
            seconds: i64::MAX,
            nanos: 0,
        };
        assert_eq!(
            datetime(absurd, "Request.start").unwrap_err().field,
            "Request.start"
        );
    }
}
