//! The follow loop over a scripted snapshot source and scripted interrupts,
//! on tokio's paused clock: a cancel request that never comes back is given
//! up after [`CANCEL_TIMEOUT`] of (virtual) time, and a second interrupt
//! leaves while the request is still on its way.

use anyhow::anyhow;
use orchestrator_core::{OperationKind, OperationStatus};
use tokio::sync::mpsc;

use super::*;
use crate::display::OutputMode;

/// How a scripted server answers the cancel request.
#[derive(Debug, Clone, Copy)]
enum Answer {
    /// Accepts it; the operation then ends `cancelled`.
    Accept,
    /// Refuses it.
    Refuse,
    /// Never answers, as a server that hangs.
    Never,
}

/// Snapshots sent by the test (or by an accepted cancel), and a scripted
/// answer to the cancel request.
struct Scripted {
    snapshots: mpsc::UnboundedReceiver<Operation>,
    /// Kept so that `next` waits (as a live stream does) rather than ends.
    sender: mpsc::UnboundedSender<Operation>,
    answer: Answer,
    /// Every cancel request, as it starts.
    requested: mpsc::UnboundedSender<CancelReason>,
    running: Operation,
}

impl Scripted {
    fn new(answer: Answer) -> (Self, mpsc::UnboundedReceiver<CancelReason>) {
        let (sender, snapshots) = mpsc::unbounded_channel();
        let (requested, requests) = mpsc::unbounded_channel();
        let running = operation(OperationStatus::Running);
        sender.send(running.clone()).unwrap();
        let scripted = Self {
            snapshots,
            sender,
            answer,
            requested,
            running,
        };
        (scripted, requests)
    }
}

impl Snapshots for Scripted {
    async fn next(&mut self) -> anyhow::Result<Option<Operation>> {
        Ok(self.snapshots.recv().await)
    }

    fn cancel(&self, reason: CancelReason) -> impl Future<Output = anyhow::Result<()>> + 'static {
        let answer = self.answer;
        let sender = self.sender.clone();
        let requested = self.requested.clone();
        let mut cancelled = self.running.clone();
        cancelled.status = OperationStatus::Cancelled;
        cancelled.cancel_reason = Some(reason.clone());
        async move {
            requested.send(reason).unwrap();
            match answer {
                Answer::Accept => {
                    sender.send(cancelled).unwrap();
                    Ok(())
                }
                Answer::Refuse => Err(anyhow!("the server refused")),
                Answer::Never => std::future::pending().await,
            }
        }
    }
}

/// Interrupts sent by the test.
struct ScriptedInterrupts(mpsc::UnboundedReceiver<CancelReason>);

impl InterruptSource for ScriptedInterrupts {
    async fn next(&mut self) -> CancelReason {
        match self.0.recv().await {
            Some(reason) => reason,
            None => std::future::pending().await,
        }
    }
}

fn operation(status: OperationStatus) -> Operation {
    let mut operation = Operation::new(
        OperationKind::Training,
        serde_json::Value::Null,
        chrono::DateTime::UNIX_EPOCH,
    );
    operation.status = status;
    operation
}

fn ctrl_c() -> CancelReason {
    CancelReason::UserRequest(Some("interrupted (Ctrl-C)".to_owned()))
}

/// Nothing here waits this long unless the loop hangs; then the test fails
/// rather than hangs (the paused clock gets there at once).
const HANG: Duration = Duration::from_secs(3600);

/// Runs the loop with `interrupts` already sent.
async fn follow_with(
    snapshots: &mut Scripted,
    interrupts: &[CancelReason],
    on_interrupt: OnInterrupt,
) -> Followed {
    let (sender, receiver) = mpsc::unbounded_channel();
    for reason in interrupts {
        sender.send(reason.clone()).unwrap();
    }
    let mut interrupts = ScriptedInterrupts(receiver);
    let mut display = OperationDisplay::new(OutputMode::Json);
    let id = snapshots.running.id.clone();
    let followed = follow_until(snapshots, &mut interrupts, &id, &mut display, on_interrupt);
    tokio::time::timeout(HANG, followed)
        .await
        .expect("the follow loop hung")
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_cancel_the_server_never_answers_is_given_up_after_the_deadline() {
    let (mut snapshots, mut requests) = Scripted::new(Answer::Never);
    let followed = follow_with(&mut snapshots, &[ctrl_c()], OnInterrupt::Cancel).await;

    let Followed::Left(Left::CancelUnconfirmed(why)) = followed else {
        panic!("{followed:?}");
    };
    assert_eq!(why, "the server did not answer within 2 s");
    assert_eq!(requests.try_recv().unwrap(), ctrl_c());
}

#[tokio::test(start_paused = true)]
async fn a_second_interrupt_leaves_at_once_while_the_cancel_is_on_its_way() {
    let (mut snapshots, mut requests) = Scripted::new(Answer::Never);
    let (interrupt, interrupts) = mpsc::unbounded_channel();
    let mut interrupts = ScriptedInterrupts(interrupts);
    let mut display = OperationDisplay::new(OutputMode::Json);
    let id = snapshots.running.id.clone();
    let followed = follow_until(
        &mut snapshots,
        &mut interrupts,
        &id,
        &mut display,
        OnInterrupt::Cancel,
    );
    tokio::pin!(followed);

    interrupt.send(ctrl_c()).unwrap();
    tokio::select! {
        followed = &mut followed => panic!("ended before the cancel was sent: {followed:?}"),
        reason = requests.recv() => assert_eq!(reason, Some(ctrl_c())),
    }
    // The request is on its way and will never come back.
    interrupt.send(ctrl_c()).unwrap();
    let followed = tokio::time::timeout(HANG, followed)
        .await
        .expect("the second interrupt was not heard")
        .unwrap();

    assert!(
        matches!(followed, Followed::Left(Left::InterruptedAgain)),
        "{followed:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_refused_cancel_is_reported_as_not_confirmed() {
    let (mut snapshots, _requests) = Scripted::new(Answer::Refuse);
    let followed = follow_with(&mut snapshots, &[ctrl_c()], OnInterrupt::Cancel).await;
    let Followed::Left(Left::CancelUnconfirmed(why)) = followed else {
        panic!("{followed:?}");
    };
    assert_eq!(why, "the server refused");
}

#[tokio::test(start_paused = true)]
async fn an_accepted_cancel_is_followed_to_the_cancelled_end() {
    let (mut snapshots, _requests) = Scripted::new(Answer::Accept);
    let followed = follow_with(&mut snapshots, &[ctrl_c()], OnInterrupt::Cancel).await;
    let Followed::Ended(operation) = followed else {
        panic!("{followed:?}");
    };
    assert_eq!(operation.status, OperationStatus::Cancelled);
    assert_eq!(operation.cancel_reason, Some(ctrl_c()));
}

#[tokio::test(start_paused = true)]
async fn a_detached_watch_leaves_at_the_first_interrupt_without_cancelling() {
    let (mut snapshots, mut requests) = Scripted::new(Answer::Accept);
    let followed = follow_with(&mut snapshots, &[ctrl_c()], OnInterrupt::Detach).await;
    assert!(
        matches!(followed, Followed::Left(Left::Detached)),
        "{followed:?}"
    );
    assert!(requests.try_recv().is_err());
}
