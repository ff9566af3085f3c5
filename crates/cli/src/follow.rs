//! Following an operation to its end: shows every snapshot, and turns Ctrl-C
//! (or SIGTERM) into a cancel of the operation. The snapshots come from an
//! in-process [`OperationWatch`] or from a server's `WatchOperation` stream
//! (see [`Snapshots`]); the display and the exit codes are the same.
//!
//! The cancel request runs beside the snapshots and the signals, never in
//! their way: a second Ctrl-C leaves at once even while the request is on
//! its way, and a request not answered within [`CANCEL_TIMEOUT`] (a server
//! that stopped answering) ends the wait with exit 130, saying so.

use std::pin::Pin;
use std::time::Duration;

use anyhow::Context as _;
use orchestrator_core::{
    CancelReason, Operation, OperationError, OperationId, OperationWatch, OperationsService,
};
use tokio::time::error::Elapsed;

use crate::display::OperationDisplay;
use crate::exit::EXIT_CANCELLED;

/// A source of snapshots of one operation, and the way to cancel it.
pub(crate) trait Snapshots {
    /// The next snapshot; `None` once the source has nothing more to say.
    async fn next(&mut self) -> anyhow::Result<Option<Operation>>;
    /// A request to cancel the operation; a finished one is no error (its
    /// terminal snapshot follows). The request does not borrow the source,
    /// so snapshots keep coming while it is on its way.
    fn cancel(&self, reason: CancelReason) -> impl Future<Output = anyhow::Result<()>> + 'static;
}

/// How long the cancel request may take before the CLI stops waiting for
/// the operation: a server that stopped answering is not waited for. The
/// operations client's own deadline on the cancel call; kept here too for
/// every snapshot source, and for the `GetOperation` that may follow a
/// failed cancel.
pub(crate) const CANCEL_TIMEOUT: Duration = host_client::CANCEL_DEADLINE;

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

    fn cancel(&self, reason: CancelReason) -> impl Future<Output = anyhow::Result<()>> + 'static {
        let operations = self.operations.clone();
        let id = self.id.clone();
        async move {
            match operations.cancel(&id, reason) {
                Ok(_) | Err(OperationError::AlreadyFinished { .. }) => Ok(()),
                Err(error) => Err(error.into()),
            }
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
/// With [`OnInterrupt::Detach`] an interrupt exits with 130 at once; so does
/// a second interrupt, or a cancel request that fails or is not answered
/// within [`CANCEL_TIMEOUT`].
pub(crate) async fn follow_snapshots(
    snapshots: &mut impl Snapshots,
    id: &OperationId,
    display: &mut OperationDisplay,
    on_interrupt: OnInterrupt,
) -> anyhow::Result<Operation> {
    let mut interrupts = Interrupts::new()?;
    let left = match follow_until(snapshots, &mut interrupts, id, display, on_interrupt).await? {
        Followed::Ended(operation) => return Ok(*operation),
        Followed::Left(left) => left,
    };
    display.finish();
    match left {
        Left::Detached => {
            eprintln!("Stopped watching {id}; it goes on (trdr ops cancel {id} stops it).");
        }
        Left::InterruptedAgain => eprintln!("Interrupted again: exiting without waiting."),
        Left::CancelUnconfirmed(why) => eprintln!(
            "The cancel of {id} was not confirmed ({why}); it may still be running \
             (trdr ops show {id} tells)."
        ),
    }
    std::process::exit(EXIT_CANCELLED);
}

/// How following ended.
#[derive(Debug)]
enum Followed {
    /// The operation ended: its terminal snapshot.
    Ended(Box<Operation>),
    /// The user stopped waiting before the end.
    Left(Left),
}

/// Why the CLI stopped waiting for the end (exit 130).
#[derive(Debug)]
enum Left {
    /// An interrupt while detachable: the operation goes on.
    Detached,
    /// A second interrupt after the cancel.
    InterruptedAgain,
    /// The cancel request failed or got no answer in time; why.
    CancelUnconfirmed(String),
}

/// The follow loop, over any snapshot source and interrupt source.
async fn follow_until(
    snapshots: &mut impl Snapshots,
    interrupts: &mut impl InterruptSource,
    id: &OperationId,
    display: &mut OperationDisplay,
    on_interrupt: OnInterrupt,
) -> anyhow::Result<Followed> {
    type CancelRequest = Pin<Box<dyn Future<Output = Result<anyhow::Result<()>, Elapsed>>>>;
    let mut cancelling = false;
    let mut request: Option<CancelRequest> = None;
    loop {
        tokio::select! {
            snapshot = snapshots.next() => {
                let operation = snapshot?.with_context(|| format!("operation {id} vanished while being watched"))?;
                display.show(&operation);
                if operation.status.is_terminal() {
                    display.finish();
                    return Ok(Followed::Ended(Box::new(operation)));
                }
            }
            reason = interrupts.next() => {
                if on_interrupt == OnInterrupt::Detach {
                    return Ok(Followed::Left(Left::Detached));
                }
                if cancelling {
                    return Ok(Followed::Left(Left::InterruptedAgain));
                }
                cancelling = true;
                display.note(&format!("Cancelling {id}... (press Ctrl-C again to quit at once)"));
                request = Some(Box::pin(tokio::time::timeout(CANCEL_TIMEOUT, snapshots.cancel(reason))));
            }
            answer = async { request.as_mut().expect("polled only while a request is on its way").await }, if request.is_some() => {
                request = None;
                let why = match answer {
                    // Accepted: the terminal snapshot follows.
                    Ok(Ok(())) => continue,
                    Ok(Err(error)) => format!("{error:#}"),
                    Err(Elapsed { .. }) => format!(
                        "the server did not answer within {} s",
                        CANCEL_TIMEOUT.as_secs()
                    ),
                };
                return Ok(Followed::Left(Left::CancelUnconfirmed(why)));
            }
        }
    }
}

/// Where the follow loop's interrupts come from: the process's signals
/// ([`Interrupts`]), or a test's script.
trait InterruptSource {
    /// The next interrupt, as the reason for the cancel it asks for.
    async fn next(&mut self) -> CancelReason;
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
}

impl InterruptSource for Interrupts {
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

#[cfg(test)]
mod tests;
