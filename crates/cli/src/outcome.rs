//! The last words of a command that followed an operation: its result, or
//! one line saying how it was cancelled or why it failed (and, for a
//! training that saved a checkpoint, how to continue it); and the exit code.

use orchestrator_core::{CancelReason, Operation, OperationKind, OperationStatus};
use progress::{ProgressContext, ProgressState};

use crate::exit::{EXIT_CANCELLED, EXIT_FAILURE};

/// Prints how an operation ended and gives the exit code: 0 completed,
/// 1 failed, 130 cancelled. JSON mode has printed the final event already.
/// `server` is the `--server` it was followed through, for the command that
/// resumes it.
pub(crate) fn report_outcome(
    operation: &Operation,
    json: bool,
    server: Option<&str>,
    print_result: impl FnOnce(&serde_json::Value) -> anyhow::Result<()>,
) -> anyhow::Result<u8> {
    match operation.status {
        OperationStatus::Completed => {
            if !json {
                print_result(
                    operation
                        .result
                        .as_ref()
                        .unwrap_or(&serde_json::Value::Null),
                )?;
                if let Some(note) = too_late_note(operation) {
                    eprintln!("{note}");
                }
            }
            Ok(0)
        }
        OperationStatus::Cancelled => {
            if !json {
                eprintln!("{}", cancelled_line(operation));
                print_resume_hint(operation, server);
            }
            Ok(EXIT_CANCELLED as u8)
        }
        _ => {
            if !json {
                eprintln!("{}", failed_line(operation));
                print_resume_hint(operation, server);
            }
            Ok(EXIT_FAILURE as u8)
        }
    }
}

/// `Cancelled op_… during training (epoch 5/12, batch 96/110): interrupted (Ctrl-C)`:
/// how it ended (the operation's note), where its progress was, and why.
pub(crate) fn cancelled_line(operation: &Operation) -> String {
    let mut line = format!("Cancelled {}", operation.id);
    if let Some(how) = &operation.error {
        line.push(' ');
        line.push_str(how);
    }
    if let Some(position) = position(&operation.progress) {
        line.push_str(&format!(" ({position})"));
    }
    if let Some(reason) = &operation.cancel_reason {
        line.push_str(": ");
        line.push_str(&why(reason));
    }
    line
}

/// `error: operation op_… failed: …`.
pub(crate) fn failed_line(operation: &Operation) -> String {
    format!(
        "error: operation {} failed: {}",
        operation.id,
        operation.error.as_deref().unwrap_or("no error recorded")
    )
}

/// Said after the result of an operation that completed although a stop
/// was requested: the request came after the work had finished.
pub(crate) fn too_late_note(operation: &Operation) -> Option<String> {
    let requested = operation.cancel_requested_at?;
    Some(format!(
        "The stop requested at {} came too late: {} had already finished, and its result stands.",
        requested.format("%H:%M:%S UTC"),
        operation.id
    ))
}

fn print_resume_hint(operation: &Operation, server: Option<&str>) {
    if let Some(hint) = resume_hint(operation, server) {
        eprintln!("{hint}");
    }
}

/// `checkpoint saved at epoch 3, batch 12; continue with: trdr train
/// --resume op_…`: said after a training that stopped (cancelled or failed)
/// with a checkpoint, so the work done is not lost to someone who does not
/// know it can be resumed.
pub(crate) fn resume_hint(operation: &Operation, server: Option<&str>) -> Option<String> {
    let stopped = matches!(
        operation.status,
        OperationStatus::Cancelled | OperationStatus::Failed
    );
    if operation.kind != OperationKind::Training || !stopped {
        return None;
    }
    let checkpoint = operation.checkpoint.as_ref()?;
    let mut line = format!(
        "checkpoint saved at epoch {}, batch {}; continue with: trdr train --resume {}",
        checkpoint.epoch, checkpoint.batch, operation.id
    );
    if let Some(server) = server {
        line.push_str(" --server ");
        line.push_str(server);
    }
    Some(line)
}

/// Where the work was when it stopped, from its last progress.
fn position(progress: &ProgressState) -> Option<String> {
    match &progress.context {
        ProgressContext::Training(training) => {
            let steps: Vec<String> = [("epoch", training.epoch), ("batch", training.batch)]
                .into_iter()
                .filter_map(|(name, step)| {
                    step.map(|step| format!("{name} {}/{}", step.current, step.total))
                })
                .collect();
            (!steps.is_empty()).then(|| steps.join(", "))
        }
        ProgressContext::Data(data) if data.bars_loaded > 0 => {
            Some(format!("{} bars loaded", data.bars_loaded))
        }
        _ => None,
    }
}

/// Why, without repeating that it was cancelled.
fn why(reason: &CancelReason) -> String {
    match reason {
        CancelReason::UserRequest(Some(note)) => note.clone(),
        CancelReason::UserRequest(None) => "requested by the user".to_owned(),
        CancelReason::Shutdown => "the service shut down".to_owned(),
        CancelReason::Timeout => "time limit reached".to_owned(),
        CancelReason::HostLost => "the training host was lost".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone as _, Utc};
    use expect_test::expect;
    use orchestrator_core::Checkpoint;

    use super::*;

    fn stopped_training(status: OperationStatus) -> Operation {
        let at = Utc.with_ymd_and_hms(2026, 11, 30, 2, 40, 0).unwrap();
        let mut operation = Operation::new(OperationKind::Training, serde_json::json!({}), at);
        operation.id = "op_training_20261130_024000_0a1b2c3d".parse().unwrap();
        operation.status = status;
        operation.checkpoint = Some(Checkpoint {
            path: "models/.checkpoints/op_training_20261130_024000_0a1b2c3d.ckpt".into(),
            bytes: 1_234_567,
            epoch: 3,
            batch: 12,
            saved_at: at + chrono::Duration::seconds(1),
        });
        operation
    }

    #[test]
    fn a_stopped_training_with_a_checkpoint_says_how_to_continue_it() {
        let cancelled = stopped_training(OperationStatus::Cancelled);
        expect!["checkpoint saved at epoch 3, batch 12; continue with: trdr train --resume op_training_20261130_024000_0a1b2c3d"]
            .assert_eq(&resume_hint(&cancelled, None).unwrap());
        let failed = stopped_training(OperationStatus::Failed);
        expect!["checkpoint saved at epoch 3, batch 12; continue with: trdr train --resume op_training_20261130_024000_0a1b2c3d --server http://127.0.0.1:50051"]
            .assert_eq(&resume_hint(&failed, Some("http://127.0.0.1:50051")).unwrap());
    }

    #[test]
    fn nothing_is_said_about_resuming_without_a_checkpoint_or_after_a_completed_training() {
        let mut without = stopped_training(OperationStatus::Cancelled);
        without.checkpoint = None;
        assert_eq!(resume_hint(&without, None), None);
        let completed = stopped_training(OperationStatus::Completed);
        assert_eq!(resume_hint(&completed, None), None);
    }
}
