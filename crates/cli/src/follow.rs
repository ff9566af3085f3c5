//! Following an operation to its end: shows every snapshot, and turns Ctrl-C
//! (or SIGTERM) into a cancel of the operation. The snapshots come from an
//! in-process [`OperationWatch`] or from a server's `WatchOperation` stream
//! (see [`Snapshots`]); the display and the exit codes are the same.

use std::time::Duration;

use anyhow::Context as _;
use orchestrator_core::{
    CancelReason, Operation, OperationError, OperationId, OperationStatus, OperationWatch,
    OperationsService,
};

use crate::display::OperationDisplay;
use crate::exit::{EXIT_CANCELLED, EXIT_FAILURE};

/// A source of snapshots of one operation, and the way to cancel it.
pub(crate) trait Snapshots {
    /// The next snapshot; `None` once the source has nothing more to say.
    async fn next(&mut self) -> anyhow::Result<Option<Operation>>;
    /// Asks for the operation to be cancelled; a finished one is no error
    /// (its terminal snapshot follows).
    async fn cancel(&mut self, reason: CancelReason) -> anyhow::Result<()>;
}

/// What the first Ctrl-C does while following.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnInterrupt {
    /// Cancel the operation and wait until it reports `cancelled`.
    Cancel,
    /// Stop watching at once; the operation goes on.
    Detach,
}

/// Snapshots of an operation in this process's operations service.
///
/// An operation run by another process sharing the store has no live state
/// here: its changes of status are polled from the store instead.
#[derive(Debug)]
pub(crate) struct LocalSnapshots {
    operations: OperationsService,
    id: OperationId,
    watch: OperationWatch,
    last: Option<Operation>,
    polling: bool,
}

/// How often the store is read for an operation another process runs.
const POLL_INTERVAL: Duration = Duration::from_millis(500);

impl LocalSnapshots {
    pub(crate) fn new(operations: &OperationsService, id: &OperationId) -> anyhow::Result<Self> {
        Ok(Self {
            watch: operations.watch(id)?,
            operations: operations.clone(),
            id: id.clone(),
            last: None,
            polling: false,
        })
    }
}

impl Snapshots for LocalSnapshots {
    async fn next(&mut self) -> anyhow::Result<Option<Operation>> {
        if !self.polling {
            match self.watch.next().await {
                Some(snapshot) => {
                    self.last = Some(snapshot.clone());
                    return Ok(Some(snapshot));
                }
                None if self.last.as_ref().is_some_and(|op| op.status.is_terminal()) => {
                    return Ok(None);
                }
                // Not live here: another process runs it.
                None => self.polling = true,
            }
        }
        loop {
            if self.last.as_ref().is_some_and(|op| op.status.is_terminal()) {
                return Ok(None);
            }
            tokio::time::sleep(POLL_INTERVAL).await;
            let snapshot = self.operations.get(&self.id)?;
            if self.last.as_ref() != Some(&snapshot) {
                self.last = Some(snapshot.clone());
                return Ok(Some(snapshot));
            }
        }
    }

    async fn cancel(&mut self, reason: CancelReason) -> anyhow::Result<()> {
        match self.operations.cancel(&self.id, reason) {
            Ok(()) | Err(OperationError::AlreadyFinished { .. }) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }
}

/// Shows `id` until it ends and returns its terminal snapshot. The first
/// interrupt cancels the operation and keeps watching until it reports
/// `cancelled`; a second one exits at once.
pub(crate) async fn follow(
    operations: &OperationsService,
    id: &OperationId,
    display: &mut OperationDisplay,
) -> anyhow::Result<Operation> {
    let mut snapshots = LocalSnapshots::new(operations, id)?;
    follow_snapshots(&mut snapshots, id, display, OnInterrupt::Cancel).await
}

/// Shows the snapshots of `id` until its terminal one, which it returns.
/// With [`OnInterrupt::Detach`] an interrupt exits with 130 at once.
pub(crate) async fn follow_snapshots(
    snapshots: &mut impl Snapshots,
    id: &OperationId,
    display: &mut OperationDisplay,
    on_interrupt: OnInterrupt,
) -> anyhow::Result<Operation> {
    let mut interrupts = Interrupts::new()?;
    let mut cancelling = false;
    loop {
        tokio::select! {
            snapshot = snapshots.next() => {
                let operation = snapshot?.with_context(|| format!("operation {id} vanished while being watched"))?;
                display.show(&operation);
                if operation.status.is_terminal() {
                    display.finish();
                    return Ok(operation);
                }
            }
            reason = interrupts.next() => {
                if cancelling || on_interrupt == OnInterrupt::Detach {
                    display.finish();
                    if on_interrupt == OnInterrupt::Detach {
                        eprintln!("Stopped watching {id}; it goes on (trdr ops cancel {id} stops it).");
                    } else {
                        eprintln!("Interrupted again: exiting without waiting.");
                    }
                    std::process::exit(EXIT_CANCELLED);
                }
                cancelling = true;
                display.note(&format!("Cancelling {id}... (press Ctrl-C again to quit at once)"));
                snapshots.cancel(reason).await?;
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
                match &operation.error {
                    // How the work stopped, e.g. that a remote stop was not confirmed.
                    Some(note) => eprintln!("Cancelled {}: {reason} ({note})", operation.id),
                    None => eprintln!("Cancelled {}: {reason}", operation.id),
                }
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
