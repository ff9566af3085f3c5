//! Following an operation to its end: shows every snapshot, and turns Ctrl-C
//! (or SIGTERM) into a cancel of the operation.

use anyhow::Context as _;
use orchestrator_core::{CancelReason, Operation, OperationError, OperationId, OperationsService};

use crate::display::OperationDisplay;
use crate::exit::EXIT_CANCELLED;

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
