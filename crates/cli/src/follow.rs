//! Following an operation to its end: shows every snapshot, and turns Ctrl-C
//! (or SIGTERM) into a cancel of the operation.

use anyhow::Context as _;
use orchestrator_core::{
    CancelReason, Operation, OperationError, OperationId, OperationStatus, OperationsService,
};

use crate::display::OperationDisplay;
use crate::exit::{EXIT_CANCELLED, EXIT_FAILURE};

/// Shows `id` until it ends and returns its terminal snapshot. The first
/// interrupt cancels the operation and keeps watching until it reports
/// `cancelled`; a second one exits at once.
pub(crate) async fn follow(
    operations: &OperationsService,
    id: &OperationId,
    display: &mut OperationDisplay,
) -> anyhow::Result<Operation> {
    let mut watch = operations.watch(id)?;
    let mut interrupts = Interrupts::new()?;
    let mut cancelling = false;
    loop {
        tokio::select! {
            snapshot = watch.next() => {
                let operation = snapshot.with_context(|| format!("operation {id} vanished while being watched"))?;
                display.show(&operation);
                if operation.status.is_terminal() {
                    display.finish();
                    return Ok(operation);
                }
            }
            reason = interrupts.next() => {
                if cancelling {
                    display.finish();
                    eprintln!("Interrupted again: exiting without waiting.");
                    std::process::exit(EXIT_CANCELLED);
                }
                cancelling = true;
                display.note(&format!("Cancelling {id}... (press Ctrl-C again to quit at once)"));
                match operations.cancel(id, reason) {
                    // It finished on its own meanwhile: its snapshot follows.
                    Ok(()) | Err(OperationError::AlreadyFinished { .. }) => {}
                    Err(error) => return Err(error.into()),
                }
            }
        }
    }
}

/// Ctrl-C, and on Unix SIGTERM, as cancel reasons. The listeners live as
/// long as the follow loop, so a signal arriving between two snapshots is
/// kept, not lost.
struct Interrupts {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl Interrupts {
    fn new() -> anyhow::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Self {
                interrupt: signal(SignalKind::interrupt()).context("cannot listen for Ctrl-C")?,
                terminate: signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    async fn next(&mut self) -> CancelReason {
        let interrupted = CancelReason::UserRequest(Some("interrupted (Ctrl-C)".into()));
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.interrupt.recv() => interrupted,
                _ = self.terminate.recv() => CancelReason::Shutdown,
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            interrupted
        }
    }
}

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
            }
            Ok(0)
        }
        OperationStatus::Cancelled => {
            if !json {
                let reason = operation
                    .cancel_reason
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default();
                eprintln!("Cancelled {}: {reason}", operation.id);
            }
            Ok(EXIT_CANCELLED as u8)
        }
        _ => {
            if !json {
                eprintln!(
                    "error: operation {} failed: {}",
                    operation.id,
                    operation.error.as_deref().unwrap_or("no error recorded")
                );
            }
            Ok(EXIT_FAILURE as u8)
        }
    }
}
