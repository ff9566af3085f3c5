//! The last words of a command that followed an operation: its result, or
//! one line saying how it was cancelled or why it failed; and the exit code.

use orchestrator_core::{CancelReason, Operation, OperationStatus};
use progress::{ProgressContext, ProgressState};

use crate::exit::{EXIT_CANCELLED, EXIT_FAILURE};

/// Prints how an operation ended and gives the exit code: 0 completed,
/// 1 failed, 130 cancelled. JSON mode has printed the final event already.
pub(crate) fn report_outcome(
    operation: &Operation,
    json: bool,
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
            }
            Ok(EXIT_CANCELLED as u8)
        }
        _ => {
            if !json {
                eprintln!("{}", failed_line(operation));
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
