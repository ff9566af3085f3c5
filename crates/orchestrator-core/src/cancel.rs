//! The project's one cancellation type: a cheap, cloneable token that carries why it was cancelled.

use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use serde::{Deserialize, Serialize};

/// Why an operation was asked to stop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "note", rename_all = "snake_case")]
pub enum CancelReason {
    /// A person asked for it (Ctrl-C, `trdr ops cancel`), with an optional note.
    UserRequest(Option<String>),
    /// The process hosting the work is shutting down.
    Shutdown,
    /// The work ran past its time limit.
    Timeout,
    /// The remote host running the work went away.
    HostLost,
}

impl fmt::Display for CancelReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CancelReason::UserRequest(None) => f.write_str("cancelled by user"),
            CancelReason::UserRequest(Some(note)) => write!(f, "cancelled by user: {note}"),
            CancelReason::Shutdown => f.write_str("service shutting down"),
            CancelReason::Timeout => f.write_str("timed out"),
            CancelReason::HostLost => f.write_str("host lost"),
        }
    }
}

/// The error work returns when it stops because its token was cancelled.
///
/// Operations whose work ends with this error (anywhere in its error chain)
/// finish with status `cancelled`, never `failed`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason} (stopped during {stage})")]
pub struct Cancelled {
    pub reason: CancelReason,
    /// The pipeline stage that noticed the cancellation.
    pub stage: Cow<'static, str>,
}

impl Cancelled {
    /// The `Cancelled` in `error`'s chain, if the error is a stop.
    pub fn find_in<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a Cancelled> {
        std::iter::successors(Some(error), |error| error.source())
            .find_map(|error| error.downcast_ref::<Cancelled>())
    }
}

/// A cancellation signal shared by every layer of one operation.
///
/// Wraps [`tokio_util::sync::CancellationToken`] (which wakes async waiters)
/// and adds the reason, which doubles as a lock-free flag: tokio-util's own
/// `is_cancelled` takes a mutex, too costly for a check at every batch.
/// Clones share state; [`child`](Self::child) tokens are cancelled with their
/// parent but not the other way round.
#[derive(Clone, Default)]
pub struct CancellationToken {
    inner: tokio_util::sync::CancellationToken,
    reason: Arc<ReasonCell>,
}

/// Set once, when the token itself is cancelled; a token is cancelled when
/// its own cell or an ancestor's is set.
#[derive(Default)]
struct ReasonCell {
    own: OnceLock<CancelReason>,
    parent: Option<Arc<ReasonCell>>,
    /// Held while the reason is set and during a [`commit`](CancellationToken::commit),
    /// so the two never interleave; `true` once a commit has begun.
    committed: Mutex<bool>,
}

impl ReasonCell {
    #[inline]
    fn get(&self) -> Option<&CancelReason> {
        self.own
            .get()
            .or_else(|| self.parent.as_deref().and_then(ReasonCell::get))
    }
}

impl CancellationToken {
    pub fn new() -> Self {
        Self::default()
    }

    /// A token cancelled whenever `self` is, which can also be cancelled alone.
    pub fn child(&self) -> Self {
        Self {
            inner: self.inner.child_token(),
            reason: Arc::new(ReasonCell {
                own: OnceLock::new(),
                parent: Some(Arc::clone(&self.reason)),
                committed: Mutex::default(),
            }),
        }
    }

    /// Cancels this token and its children. The first reason given wins.
    ///
    /// Waits for a [`commit`](Self::commit) in progress to finish.
    pub fn cancel(&self, reason: CancelReason) {
        {
            let _no_commit = lock(&self.reason.committed);
            if !self.is_cancelled() {
                // A racing cancel may set it first; then that reason stands.
                let _ = self.reason.own.set(reason);
            }
        }
        self.inner.cancel();
    }

    /// Runs `install`, the step that makes the work's result permanent (e.g.
    /// renaming a finished model into place), unless the token is cancelled.
    ///
    /// The check and `install` are one step for [`cancel`](Self::cancel): a
    /// cancel that races the commit waits until `install` has returned. So a
    /// cancelled token never sees a commit begin, and work that committed
    /// knows no cancel came before it. [`committed`](Self::committed) tells
    /// the operation's owner, e.g. not to give up on work that is installing
    /// its result.
    pub fn commit<R>(
        &self,
        stage: &'static str,
        install: impl FnOnce() -> R,
    ) -> Result<R, Cancelled> {
        // Root first, the order every commit takes, so two commits on
        // related tokens cannot deadlock.
        let mut cells = vec![&*self.reason];
        while let Some(parent) = cells[cells.len() - 1].parent.as_deref() {
            cells.push(parent);
        }
        let mut guards: Vec<MutexGuard<'_, bool>> = cells
            .iter()
            .rev()
            .map(|cell| lock(&cell.committed))
            .collect();
        self.check(stage)?;
        for committed in &mut guards {
            **committed = true;
        }
        Ok(install())
    }

    /// Whether a [`commit`](Self::commit) has begun on this token or a child.
    pub fn committed(&self) -> bool {
        *lock(&self.reason.committed)
    }

    /// A synchronous, lock- and allocation-free check for hot loops: one
    /// atomic load per level of parent tokens.
    #[inline]
    pub fn is_cancelled(&self) -> bool {
        self.reason.get().is_some()
    }

    /// Why the token was cancelled, if it was.
    pub fn reason(&self) -> Option<CancelReason> {
        self.reason.get().cloned()
    }

    /// `Err(Cancelled)` naming `stage` if the token was cancelled.
    #[inline]
    pub fn check(&self, stage: &'static str) -> Result<(), Cancelled> {
        if self.is_cancelled() {
            Err(self.cancelled_error(stage))
        } else {
            Ok(())
        }
    }

    /// The error describing this token's cancellation at `stage`.
    pub fn cancelled_error(&self, stage: impl Into<Cow<'static, str>>) -> Cancelled {
        Cancelled {
            // Only asked of a cancelled token; a default keeps it total.
            reason: self.reason().unwrap_or(CancelReason::Shutdown),
            stage: stage.into(),
        }
    }

    /// Completes when the token is cancelled.
    pub async fn cancelled(&self) {
        self.inner.cancelled().await;
    }

    /// Runs `work` until it finishes or the token is cancelled, whichever is first.
    ///
    /// Dropping `work` on cancellation only stops *async* work; blocking code
    /// must poll [`check`](Self::check) itself.
    pub async fn run_until_cancelled<F: Future>(
        &self,
        stage: &'static str,
        work: F,
    ) -> Result<F::Output, Cancelled> {
        tokio::select! {
            biased;
            () = self.cancelled() => Err(self.cancelled_error(stage)),
            output = work => Ok(output),
        }
    }
}

/// Locks `mutex`; the flag behind it is whole between statements, so a
/// panic in a commit cannot leave it half-written.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl fmt::Debug for CancellationToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancellationToken")
            .field("cancelled", &self.is_cancelled())
            .field("reason", &self.reason())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    #[test]
    fn check_reports_reason_and_stage() {
        let token = CancellationToken::new();
        assert_eq!(token.check("loading"), Ok(()));
        assert_eq!(token.reason(), None);

        token.cancel(CancelReason::UserRequest(Some("enough".into())));
        let err = token.check("batch").unwrap_err();
        assert_eq!(err.reason, CancelReason::UserRequest(Some("enough".into())));
        assert_eq!(err.stage, "batch");
        assert_eq!(
            err.to_string(),
            "cancelled by user: enough (stopped during batch)"
        );
    }

    #[test]
    fn first_reason_wins() {
        let token = CancellationToken::new();
        token.cancel(CancelReason::Timeout);
        token.cancel(CancelReason::Shutdown);
        assert_eq!(token.reason(), Some(CancelReason::Timeout));
    }

    #[test]
    fn child_follows_parent_but_not_the_reverse() {
        let parent = CancellationToken::new();
        let child = parent.child();
        let sibling = parent.child();

        child.cancel(CancelReason::HostLost);
        assert!(child.is_cancelled());
        assert!(!parent.is_cancelled());
        assert!(!sibling.is_cancelled());

        parent.cancel(CancelReason::Shutdown);
        assert_eq!(sibling.reason(), Some(CancelReason::Shutdown));
        // The child was already cancelled: its own reason stands.
        assert_eq!(child.reason(), Some(CancelReason::HostLost));
        assert_eq!(parent.child().reason(), Some(CancelReason::Shutdown));
    }

    #[test]
    fn clones_share_state() {
        let token = CancellationToken::new();
        let clone = token.clone();
        clone.cancel(CancelReason::Timeout);
        assert!(token.is_cancelled());
    }

    #[test]
    fn blocking_loop_on_another_thread_stops_before_finishing() {
        const TOTAL: u64 = u64::MAX;
        let token = CancellationToken::new();
        let done = Arc::new(AtomicU64::new(0));
        let worker = {
            let token = token.clone();
            let done = Arc::clone(&done);
            std::thread::spawn(move || -> Result<(), Cancelled> {
                for _ in 0..TOTAL {
                    token.check("counting")?;
                    done.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            })
        };
        while done.load(Ordering::Relaxed) < 1000 {
            std::thread::yield_now();
        }
        token.cancel(CancelReason::UserRequest(None));
        let err = worker.join().unwrap().unwrap_err();
        assert_eq!(err.stage, "counting");
        assert!(done.load(Ordering::Relaxed) < TOTAL);
    }

    #[test]
    fn a_commit_runs_only_on_a_live_token_and_is_remembered_up_the_chain() {
        let operation = CancellationToken::new();
        let work = operation.child();
        assert!(!operation.committed());
        assert_eq!(work.commit("installing", || 7), Ok(7));
        assert!(work.committed() && operation.committed());

        let cancelled = CancellationToken::new();
        let child = cancelled.child();
        cancelled.cancel(CancelReason::Timeout);
        let refused = child.commit("installing", || unreachable!("ran after the cancel"));
        assert_eq!(refused.unwrap_err().stage, "installing");
        assert!(!cancelled.committed());
    }

    #[test]
    fn an_install_never_sees_a_cancel_that_raced_it() {
        for _ in 0..200 {
            let token = CancellationToken::new();
            let (release, wait_release) = std::sync::mpsc::channel::<()>();
            let committer = {
                let token = token.clone();
                std::thread::spawn(move || {
                    token.commit("installing", || {
                        wait_release.recv().unwrap();
                        // A cancel racing this install has waited for it.
                        std::thread::yield_now();
                        token.is_cancelled()
                    })
                })
            };
            let canceller = {
                let token = token.clone();
                std::thread::spawn(move || token.cancel(CancelReason::Shutdown))
            };
            // A refused commit never runs its install, which drops the receiver.
            let _ = release.send(());
            canceller.join().unwrap();
            match committer.join().unwrap() {
                Ok(saw_cancel) => assert!(!saw_cancel, "the cancel applied during the install"),
                Err(refused) => assert_eq!(refused.reason, CancelReason::Shutdown),
            }
            assert!(token.is_cancelled());
        }
    }

    #[tokio::test]
    async fn cancelled_future_wakes_and_run_until_cancelled_stops_pending_work() {
        let token = CancellationToken::new();
        let waiter = tokio::spawn({
            let token = token.clone();
            async move {
                token
                    .run_until_cancelled("waiting", std::future::pending::<()>())
                    .await
            }
        });
        // The test runtime has one thread: this lets the waiter reach its
        // await before the cancel (either order must end the same way).
        tokio::task::yield_now().await;
        token.cancel(CancelReason::Shutdown);
        let err = waiter.await.unwrap().unwrap_err();
        assert_eq!(err.reason, CancelReason::Shutdown);
        assert_eq!(
            token.run_until_cancelled("again", async { 1 }).await,
            Err(token.cancelled_error("again"))
        );
    }
}
