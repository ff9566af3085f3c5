//! The wire form of a session, which is a training operation of the host.

use orchestrator_core::{Operation, OperationStatus};
use rpc::proto;
use rpc::proto::operation::Result as WireResult;
use rpc::proto::training_event::Event;

/// Where a session that never started stopped.
const WAITING: &str = "waiting for a training slot";

pub(crate) fn to_proto(operation: &Operation) -> proto::Session {
    let status = match operation.status {
        OperationStatus::Pending => proto::SessionStatus::Waiting,
        OperationStatus::Running => proto::SessionStatus::Running,
        OperationStatus::Completed => proto::SessionStatus::Completed,
        OperationStatus::Failed => proto::SessionStatus::Failed,
        OperationStatus::Cancelled => proto::SessionStatus::Cancelled,
    };
    let ended = |wanted| operation.status == wanted;
    proto::Session {
        session_id: operation.id.to_string(),
        status: status.into(),
        strategy: strategy_name(operation),
        created_at: Some(rpc::timestamp(operation.created_at)),
        finished_at: operation.finished_at.map(rpc::timestamp),
        progress: Some((&operation.progress).into()),
        error: operation
            .error
            .clone()
            .filter(|_| ended(OperationStatus::Failed)),
        cancel_reason: operation
            .cancel_reason
            .as_ref()
            .filter(|_| ended(OperationStatus::Cancelled))
            .map(Into::into),
    }
}

/// The last event of a finished session's stream; `None` while it runs.
pub(crate) fn final_event(operation: &Operation) -> Option<Event> {
    Some(match operation.status {
        OperationStatus::Pending | OperationStatus::Running => return None,
        OperationStatus::Completed => match rpc::operation_result(operation) {
            Ok(Some(WireResult::Training(summary))) => Event::Completed(proto::Completed {
                summary: Some(summary),
            }),
            // The trainer always returns a summary: without a readable one the
            // caller has no result, so the session failed.
            Ok(_) => Event::Failed(proto::Failed {
                message: "the training completed without a result summary".to_owned(),
            }),
            Err(err) => Event::Failed(proto::Failed {
                message: err.to_string(),
            }),
        },
        OperationStatus::Failed => Event::Failed(proto::Failed {
            message: operation.error.clone().unwrap_or_default(),
        }),
        OperationStatus::Cancelled => Event::Cancelled(proto::Cancelled {
            reason: operation.cancel_reason.as_ref().map(Into::into),
            stage: stopped_at(operation),
        }),
    })
}

/// Where a cancelled session stopped: the trainer's stage, else how the
/// operation ended.
fn stopped_at(operation: &Operation) -> String {
    if operation.started_at.is_none() {
        return WAITING.to_owned();
    }
    match operation.stopped_during() {
        Some(stage) => stage.to_owned(),
        None => operation.error.clone().unwrap_or_default(),
    }
}

/// The strategy's name, as the training recorded it.
fn strategy_name(operation: &Operation) -> String {
    operation.params["strategy"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use orchestrator_core::{CancelReason, OperationKind};

    use super::*;

    fn session(status: OperationStatus) -> Operation {
        let mut operation = Operation::new(
            OperationKind::Training,
            serde_json::json!({ "strategy": "eurusd_mlp" }),
            Utc::now(),
        );
        operation.status = status;
        operation
    }

    #[test]
    fn a_session_carries_only_the_fields_of_how_it_ended() {
        let mut failed = session(OperationStatus::Failed);
        failed.error = Some("boom".into());
        let wire = to_proto(&failed);
        assert_eq!(wire.status(), proto::SessionStatus::Failed);
        assert_eq!(wire.strategy, "eurusd_mlp");
        assert_eq!(wire.error.as_deref(), Some("boom"));
        assert_eq!(wire.cancel_reason, None);

        // A stop requested too late leaves a completed session completed.
        let mut completed = session(OperationStatus::Completed);
        completed.cancel_reason = Some(CancelReason::UserRequest(None));
        let wire = to_proto(&completed);
        assert_eq!(wire.status(), proto::SessionStatus::Completed);
        assert_eq!(wire.cancel_reason, None);
        assert_eq!(final_event(&session(OperationStatus::Running)), None);
        assert_eq!(
            to_proto(&session(OperationStatus::Pending)).status(),
            proto::SessionStatus::Waiting
        );
    }

    #[test]
    fn a_completion_without_a_readable_summary_ends_the_stream_as_a_failure() {
        // (A real summary's way is the integration test's: it trains one.)
        let failure = |operation: &Operation| match final_event(operation) {
            Some(Event::Failed(failed)) => failed.message,
            other => panic!("not failed: {other:?}"),
        };
        let mut completed = session(OperationStatus::Completed);
        assert_eq!(
            failure(&completed),
            "the training completed without a result summary"
        );
        completed.result = Some(serde_json::json!({ "accuracy": 0.6 }));
        let message = failure(&completed);
        assert!(
            message.contains("is not a training result: missing field `strategy`")
                && message.contains(&completed.id.to_string()),
            "{message}"
        );
    }

    #[test]
    fn a_cancelled_session_says_where_it_stopped() {
        let stage = |operation: &Operation| match final_event(operation) {
            Some(Event::Cancelled(cancelled)) => cancelled.stage,
            other => panic!("not cancelled: {other:?}"),
        };
        let mut waiting = session(OperationStatus::Cancelled);
        waiting.error = Some("before it started".into());
        assert_eq!(stage(&waiting), WAITING);

        let mut stopped = session(OperationStatus::Cancelled);
        stopped.started_at = Some(Utc::now());
        stopped.error = Some("during training".into());
        assert_eq!(stage(&stopped), "training");

        stopped.error =
            Some("without its work, which was still running 30s after the request".into());
        assert_eq!(
            stage(&stopped),
            "without its work, which was still running 30s after the request"
        );
    }
}
