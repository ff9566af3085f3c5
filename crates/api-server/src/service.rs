//! The `trdr.v1.Operations` gRPC service: requests checked and turned into
//! manager calls, core errors turned into gRPC statuses that name what was
//! wrong.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use market_data::{DataManager, LoadMode, LoadRequest};
use orchestrator_core::{
    CancelReason, ListFilter, Operation, OperationError, OperationId, OperationKind,
    OperationStatus, OperationsService, error_chain,
};
use rpc::proto;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use training_manager::{
    Directories, StrategySource, TrainRequest, TrainingManager, TrainingManagerError,
};

use crate::strategies::{self, NameError};

/// A watcher gets at most one snapshot per interval (the latest): plenty for
/// a live display, and it keeps a hundred watchers from costing the training
/// CPU time. A change of status waits at most this long.
pub(crate) const WATCH_INTERVAL: Duration = Duration::from_millis(100);

/// Lets work in until shutdown begins. Registration happens under the read
/// lock, so once `close` returns no new operation can slip past the
/// shutdown's cancel.
#[derive(Debug, Clone, Default)]
pub(crate) struct Gate(Arc<RwLock<bool>>);

impl Gate {
    pub(crate) fn close(&self) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = true;
    }

    pub(crate) fn admit<T>(
        &self,
        register: impl FnOnce() -> Result<T, Status>,
    ) -> Result<T, Status> {
        let closed = self.0.read().unwrap_or_else(PoisonError::into_inner);
        if *closed {
            return Err(Status::unavailable(
                "the server is shutting down and accepts no new operations",
            ));
        }
        register()
    }
}

/// The service state: the managers share one operations store.
#[derive(Debug)]
pub(crate) struct OperationsApi {
    operations: OperationsService,
    training: Arc<TrainingManager>,
    data: Arc<DataManager>,
    strategies_dir: PathBuf,
    data_dir: PathBuf,
    models_dir: PathBuf,
    gate: Gate,
}

impl OperationsApi {
    pub(crate) fn new(
        operations: OperationsService,
        training: Arc<TrainingManager>,
        data: Arc<DataManager>,
        strategies_dir: PathBuf,
        data_dir: PathBuf,
        models_dir: PathBuf,
    ) -> Self {
        Self {
            operations,
            training,
            data,
            strategies_dir,
            data_dir,
            models_dir,
            gate: Gate::default(),
        }
    }

    pub(crate) fn gate(&self) -> Gate {
        self.gate.clone()
    }

    fn snapshot(&self, id: &OperationId) -> Result<Response<proto::Operation>, Status> {
        let operation = self.operations.get(id).map_err(operation_status)?;
        Ok(Response::new(wire_operation(&operation)?))
    }

    fn train_request(
        &self,
        wire: proto::StartTrainingOperationRequest,
    ) -> Result<TrainRequest, Status> {
        train_request(wire, &self.strategies_dir)
    }

    /// Where this server's trainings read and write.
    fn directories(&self) -> Directories {
        Directories {
            data: self.data_dir.clone(),
            models: self.models_dir.clone(),
        }
    }
}

/// Checks a `StartTraining` request and turns it into the manager's
/// request; nothing is registered yet. The only file a request can name is
/// a strategy inside `strategies_dir` (see [`strategies::resolve`]); data
/// and models go to the server's own directories.
pub(crate) fn train_request(
    wire: proto::StartTrainingOperationRequest,
    strategies_dir: &Path,
) -> Result<TrainRequest, Status> {
    let mut request = TrainRequest::try_from(wire)?;
    if let StrategySource::Named(name) = &request.strategy {
        let path = strategies::resolve(strategies_dir, name).map_err(name_status)?;
        request.strategy = StrategySource::File(path);
    }
    Ok(request)
}

/// Checks a `StartDataLoad` request and turns it into the manager's request.
pub(crate) fn load_request(wire: proto::StartDataLoadRequest) -> Result<LoadRequest, Status> {
    Ok(LoadRequest {
        symbol: parse_field("symbol", &wire.symbol)?,
        timeframe: parse_field("timeframe", &wire.timeframe)?,
        start: time(wire.start, "StartDataLoadRequest.start")?,
        end: time(wire.end, "StartDataLoadRequest.end")?,
        mode: if wire.mode.is_empty() {
            LoadMode::default()
        } else {
            parse_field("mode", &wire.mode)?
        },
    })
}

/// Checks a `ListOperations` request and turns it into the store's filter.
pub(crate) fn list_filter(wire: &proto::ListOperationsRequest) -> Result<ListFilter, Status> {
    let statuses = wire
        .statuses
        .iter()
        .map(|&status| {
            proto::OperationStatus::try_from(status)
                .ok()
                .and_then(|status| OperationStatus::try_from(status).ok())
                .ok_or_else(|| {
                    Status::invalid_argument(format!("statuses: unknown status {status}"))
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let kind = wire
        .kind
        .map(|kind| {
            proto::OperationKind::try_from(kind)
                .ok()
                .and_then(|kind| OperationKind::try_from(kind).ok())
                .ok_or_else(|| Status::invalid_argument(format!("kind: unknown kind {kind}")))
        })
        .transpose()?;
    Ok(ListFilter {
        statuses,
        kind,
        active_only: wire.active_only,
        limit: (wire.limit > 0).then_some(wire.limit as usize),
        offset: wire.offset as usize,
    })
}

/// The id and note of a `CancelOperation` request; a blank note is none.
pub(crate) fn cancel_request(
    wire: proto::CancelOperationRequest,
) -> Result<(OperationId, CancelReason), Status> {
    let id = parse_id(&wire.id)?;
    let note = wire.reason.filter(|reason| !reason.trim().is_empty());
    Ok((id, CancelReason::UserRequest(note)))
}

#[tonic::async_trait]
impl proto::operations_server::Operations for OperationsApi {
    async fn start_training(
        &self,
        request: Request<proto::StartTrainingOperationRequest>,
    ) -> Result<Response<proto::Operation>, Status> {
        let request = self.train_request(request.into_inner())?;
        let id = self.gate.admit(|| {
            self.training
                .train_multi_symbol_strategy(request, self.directories())
                .map_err(training_status)
        })?;
        tracing::info!(operation = %id, "training submitted");
        self.snapshot(&id)
    }

    async fn start_data_load(
        &self,
        request: Request<proto::StartDataLoadRequest>,
    ) -> Result<Response<proto::Operation>, Status> {
        let request = load_request(request.into_inner())?;
        let id = self
            .gate
            .admit(|| self.data.load(request).map_err(operation_status))?;
        tracing::info!(operation = %id, "data load submitted");
        self.snapshot(&id)
    }

    async fn get_operation(
        &self,
        request: Request<proto::GetOperationRequest>,
    ) -> Result<Response<proto::Operation>, Status> {
        self.snapshot(&parse_id(&request.into_inner().id)?)
    }

    async fn list_operations(
        &self,
        request: Request<proto::ListOperationsRequest>,
    ) -> Result<Response<proto::ListOperationsResponse>, Status> {
        let filter = list_filter(&request.into_inner())?;
        let page = self.operations.list(&filter).map_err(operation_status)?;
        // Counted in the store, so operations of other processes sharing it count too.
        let active = self
            .operations
            .list(&ListFilter {
                active_only: true,
                limit: Some(0),
                ..ListFilter::default()
            })
            .map_err(operation_status)?
            .total;
        Ok(Response::new(proto::ListOperationsResponse {
            operations: page
                .operations
                .iter()
                .map(wire_operation)
                .collect::<Result<_, _>>()?,
            total: page.total as u64,
            active: active as u64,
        }))
    }

    type WatchOperationStream = ReceiverStream<Result<proto::Operation, Status>>;

    async fn watch_operation(
        &self,
        request: Request<proto::WatchOperationRequest>,
    ) -> Result<Response<Self::WatchOperationStream>, Status> {
        let id = parse_id(&request.into_inner().id)?;
        let mut watch = self.operations.watch(&id).map_err(operation_status)?;
        // Room for one snapshot: while the client is slow, the watch channel
        // coalesces, so the client gets the latest state, never a backlog.
        let (sender, receiver) = mpsc::channel(1);
        tokio::spawn(async move {
            loop {
                let snapshot = tokio::select! {
                    snapshot = watch.next() => snapshot,
                    // A client that hung up should not keep the task waiting
                    // on an operation that may run for hours.
                    () = sender.closed() => break,
                };
                let Some(snapshot) = snapshot else { break };
                let terminal = snapshot.status.is_terminal();
                if sender.send(wire_operation(&snapshot)).await.is_err() || terminal {
                    break;
                }
                // Updates meanwhile coalesce in the watch channel.
                tokio::select! {
                    () = tokio::time::sleep(WATCH_INTERVAL) => {}
                    () = sender.closed() => break,
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(receiver)))
    }

    async fn cancel_operation(
        &self,
        request: Request<proto::CancelOperationRequest>,
    ) -> Result<Response<proto::Operation>, Status> {
        let (id, reason) = cancel_request(request.into_inner())?;
        self.operations
            .cancel(&id, reason)
            .map_err(operation_status)?;
        tracing::info!(operation = %id, "stop requested");
        self.snapshot(&id)
    }

    async fn get_operation_metrics(
        &self,
        request: Request<proto::GetOperationRequest>,
    ) -> Result<Response<proto::OperationMetrics>, Status> {
        let id = parse_id(&request.into_inner().id)?;
        let operation = self.operations.get(&id).map_err(operation_status)?;
        Ok(Response::new(proto::OperationMetrics {
            id: id.to_string(),
            epochs: operation.epochs.iter().map(Into::into).collect(),
        }))
    }

    async fn resume_operation(
        &self,
        request: Request<proto::ResumeOperationRequest>,
    ) -> Result<Response<proto::Operation>, Status> {
        let stopped = parse_id(&request.into_inner().id)?;
        // A resume starts a training: the same gate as `StartTraining`.
        let id = self
            .gate
            .admit(|| self.training.resume(&stopped).map_err(training_status))?;
        tracing::info!(operation = %id, resumed_from = %stopped, "training resumed");
        self.snapshot(&id)
    }
}

pub(crate) fn parse_id(text: &str) -> Result<OperationId, Status> {
    text.parse()
        .map_err(|error| Status::invalid_argument(format!("id: {error}")))
}

fn parse_field<T>(field: &str, text: &str) -> Result<T, Status>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    text.parse()
        .map_err(|error| Status::invalid_argument(format!("{field}: {error}")))
}

fn time(
    stamp: Option<prost_types::Timestamp>,
    field: &'static str,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, Status> {
    Ok(stamp.map(|stamp| rpc::datetime(stamp, field)).transpose()?)
}

/// An operation as it travels, its result typed by its kind. A stored
/// result that is not its kind's type is this server's fault (or another
/// trdr's, sharing the store): `INTERNAL`, naming the operation.
fn wire_operation(operation: &Operation) -> Result<proto::Operation, Status> {
    proto::Operation::try_from(operation).map_err(|error| {
        tracing::error!(%error, "an operation's result cannot be sent");
        Status::internal(error.to_string())
    })
}

pub(crate) fn operation_status(error: OperationError) -> Status {
    match &error {
        OperationError::NotFound(_) => Status::not_found(error.to_string()),
        OperationError::AlreadyFinished { .. } | OperationError::OwnedElsewhere { .. } => {
            Status::failed_precondition(error.to_string())
        }
        OperationError::Store(_) => {
            tracing::error!(error = %error_chain(&error), "operations store failed");
            Status::internal(error_chain(&error))
        }
    }
}

fn name_status(error: NameError) -> Status {
    match error {
        NameError::NotFound { .. } | NameError::NoDirectory { .. } => {
            Status::not_found(error.to_string())
        }
        NameError::Empty
        | NameError::TooLong
        | NameError::Outside { .. }
        | NameError::NotAFile { .. } => Status::invalid_argument(error.to_string()),
    }
}

pub(crate) fn training_status(error: TrainingManagerError) -> Status {
    match error {
        TrainingManagerError::Operation(error) => operation_status(error),
        TrainingManagerError::Strategy(_) | TrainingManagerError::InvalidRequest(_) => {
            Status::invalid_argument(error_chain(&error))
        }
        // The request is well formed; the operation is not in a state to resume.
        TrainingManagerError::NotResumable(why) => Status::failed_precondition(why),
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn core_errors_become_statuses_that_name_the_operation() {
        let id: OperationId = "op_training_20200101_000000_deadbeef".parse().unwrap();
        let missing = operation_status(OperationError::NotFound(id.clone()));
        assert_eq!(missing.code(), tonic::Code::NotFound);
        assert!(missing.message().contains(id.as_str()));
        let finished = operation_status(OperationError::AlreadyFinished {
            id,
            status: OperationStatus::Completed,
            action: "cancelled",
        });
        assert_eq!(finished.code(), tonic::Code::FailedPrecondition);
        assert!(finished.message().contains("already completed"));
        assert_eq!(
            parse_id("nonsense").unwrap_err().code(),
            tonic::Code::InvalidArgument
        );
    }

    #[test]
    fn a_training_that_cannot_be_resumed_is_a_failed_precondition_saying_why() {
        let id: OperationId = "op_training_20200101_000000_deadbeef".parse().unwrap();
        let why = format!("{id} completed: there is nothing left to train");
        let refused = training_status(TrainingManagerError::NotResumable(why.clone()));
        assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
        assert_eq!(refused.message(), why);
        let missing = training_status(OperationError::NotFound(id.clone()).into());
        assert_eq!(missing.code(), tonic::Code::NotFound);
        assert!(missing.message().contains(id.as_str()), "{missing:?}");
    }

    #[test]
    fn a_stored_result_that_is_not_its_kinds_type_is_an_internal_error_naming_the_operation() {
        let mut operation = Operation::new(
            OperationKind::Training,
            Default::default(),
            chrono::Utc::now(),
        );
        operation.status = OperationStatus::Completed;
        // JSON `null`: no training summary.
        operation.result = Some(Default::default());
        let status = wire_operation(&operation).unwrap_err();
        assert_eq!(status.code(), tonic::Code::Internal);
        assert!(
            status.message().contains(operation.id.as_str()),
            "{}",
            status.message()
        );
        // Without a result there is nothing to read.
        operation.result = None;
        assert_eq!(wire_operation(&operation).unwrap().result, None);
    }

    #[test]
    fn a_strategy_is_text_or_a_name_in_the_strategies_dir() {
        use proto::start_training_operation_request::Strategy;
        let checked = |strategy| {
            let wire = proto::StartTrainingOperationRequest {
                strategy,
                ..Default::default()
            };
            train_request(wire, Path::new("."))
        };
        let refused = |strategy, wanted: &str| {
            let status = checked(strategy).unwrap_err();
            assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
            assert!(status.message().contains(wanted), "{status:?}");
        };
        refused(None, "StartTrainingOperationRequest.strategy");
        refused(
            Some(Strategy::StrategyName("/etc/passwd".to_owned())),
            "strategy_name \"/etc/passwd\" is refused: it is absolute",
        );

        // Text is taken as it is (the manager parses it); a name is
        // resolved in the strategies directory.
        let text = proto::StrategyText {
            yaml: "name: t\n".to_owned(),
            origin: "t.yaml".to_owned(),
        };
        let request = checked(Some(Strategy::StrategyText(text))).unwrap();
        assert_eq!(
            request.strategy,
            StrategySource::Text {
                origin: "t.yaml".to_owned(),
                yaml: "name: t\n".to_owned(),
            }
        );
        let request = checked(Some(Strategy::StrategyName("Cargo.toml".to_owned()))).unwrap();
        assert_eq!(
            request.strategy,
            StrategySource::File(Path::new("Cargo.toml").canonicalize().unwrap())
        );
    }

    #[test]
    fn a_closed_gate_refuses_new_work() {
        let gate = Gate::default();
        assert_eq!(gate.admit(|| Ok(1)).unwrap(), 1);
        gate.close();
        let refused = gate.admit(|| Ok(2)).unwrap_err();
        assert_eq!(refused.code(), tonic::Code::Unavailable);
    }
}
