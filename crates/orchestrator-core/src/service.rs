//! `OperationsService`: registers operations, moves them through their
//! states, fans out progress to watchers and cancels them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use chrono::Utc;
use progress::{EtaEstimator, ProgressRenderer, ProgressState};
use tokio::sync::watch;

#[cfg(feature = "sqlite")]
use crate::store::SqliteStore;
use crate::store::{InMemoryStore, OperationStore, StoreError};
use crate::{
    CancelReason, CancellationToken, Cancelled, Checkpoint, ListFilter, Operation, OperationId,
    OperationKind, OperationPage, OperationStatus,
};

/// Why an operations request could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum OperationError {
    #[error("no operation with id {0}")]
    NotFound(OperationId),
    #[error(
        "operation {id} is already {status}; only pending or running operations can be {action}"
    )]
    AlreadyFinished {
        id: OperationId,
        status: OperationStatus,
        action: &'static str,
    },
    #[error("operation {id} is {status} in another process; it can only be changed there")]
    OwnedElsewhere {
        id: OperationId,
        status: OperationStatus,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Whether a state change took effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Applied,
    /// The operation had already reached this terminal status; nothing changed.
    Ignored(OperationStatus),
}

/// What a piece of work is handed when its operation starts.
#[derive(Debug, Clone)]
pub struct OperationContext {
    pub id: OperationId,
    /// Cancelled when the operation is cancelled; pass it down every layer.
    pub token: CancellationToken,
    pub progress: ProgressReporter,
    /// Tells when the work really starts, and where.
    pub start: StartReporter,
}

/// Registers operations and tracks them from creation to a terminal state.
///
/// Cheap to clone; clones share everything.
#[derive(Debug, Clone)]
pub struct OperationsService {
    inner: Arc<Inner>,
    cancel_grace: Duration,
}

#[derive(Debug)]
struct Inner {
    store: Box<dyn OperationStore>,
    /// Operations not yet finished, with their live state.
    live: Mutex<HashMap<OperationId, Arc<LiveOperation>>>,
    /// Finished operations whose final record the store refused: saved again
    /// before every later write, and read from here until then. Should the
    /// process stop first, the store's orphan rule marks them `failed`.
    unsaved: Mutex<HashMap<OperationId, Operation>>,
}

#[derive(Debug)]
struct LiveOperation {
    /// The current snapshot, published to watchers. Its lock is held only to
    /// swap values, never across a store write, so a progress report never
    /// waits on the store.
    snapshot: watch::Sender<Operation>,
    /// Serialises state changes (check, save, publish), so racing
    /// transitions apply one at a time and the first terminal state wins.
    transitions: Mutex<()>,
    token: CancellationToken,
    renderer: Option<Arc<dyn ProgressRenderer>>,
    created: (Instant, SystemTime),
    eta: Mutex<EtaEstimator>,
    /// Its work runs while it is `pending`, queued again elsewhere, and
    /// starts it through [`StartReporter::running`]: a cancel then waits
    /// for the work, as for a running operation.
    queued_elsewhere: AtomicBool,
}

impl OperationsService {
    /// How long managed work may take to stop after a cancel request, unless
    /// the service is built [`with_cancel_grace`](Self::with_cancel_grace).
    pub const DEFAULT_CANCEL_GRACE: Duration = Duration::from_secs(30);

    pub fn new(store: impl OperationStore + 'static) -> Self {
        Self {
            inner: Arc::new(Inner {
                store: Box::new(store),
                live: Mutex::default(),
                unsaved: Mutex::default(),
            }),
            cancel_grace: Self::DEFAULT_CANCEL_GRACE,
        }
    }

    /// A service whose operations are forgotten when the process exits.
    pub fn in_memory() -> Self {
        Self::new(InMemoryStore::new())
    }

    /// A service whose operations are kept in the SQLite file at `path`
    /// (the `sqlite` feature, on by default).
    #[cfg(feature = "sqlite")]
    pub fn open_sqlite(path: impl Into<std::path::PathBuf>) -> Result<Self, StoreError> {
        Ok(Self::new(SqliteStore::open(path)?))
    }

    /// Registers a new `pending` operation.
    ///
    /// `renderer` turns each progress update into its message; without one the
    /// producer's own message is kept.
    pub fn create(
        &self,
        kind: OperationKind,
        params: serde_json::Value,
        renderer: Option<Arc<dyn ProgressRenderer>>,
    ) -> Result<OperationContext, OperationError> {
        let operation = Operation::new(kind, params, Utc::now());
        self.save_unsaved();
        self.inner.store.insert(&operation)?;
        let id = operation.id.clone();
        let token = CancellationToken::new();
        let live = Arc::new(LiveOperation {
            snapshot: watch::Sender::new(operation),
            transitions: Mutex::default(),
            token: token.clone(),
            renderer,
            created: (Instant::now(), SystemTime::now()),
            eta: Mutex::default(),
            queued_elsewhere: AtomicBool::new(false),
        });
        self.live().insert(id.clone(), Arc::clone(&live));
        Ok(OperationContext {
            start: StartReporter {
                operations: self.clone(),
                id: id.clone(),
                progress: ProgressReporter {
                    live: Arc::clone(&live),
                },
            },
            id,
            token,
            progress: ProgressReporter { live },
        })
    }

    /// `pending → running`.
    pub fn start(&self, id: &OperationId) -> Result<Transition, OperationError> {
        self.transition(id, |op| {
            if op.status == OperationStatus::Pending {
                op.status = OperationStatus::Running;
                op.started_at = Some(Utc::now());
            }
        })
    }

    /// Hands a `pending` operation to work that queues it elsewhere before
    /// it runs (see [`StartReporter`]): from now on a cancel is a request the
    /// work answers. Ignored if it has finished (cancelled while waiting
    /// for admission).
    pub(crate) fn queue_elsewhere(&self, id: &OperationId) -> Result<Transition, OperationError> {
        let Some(live) = self.live_operation(id) else {
            return match self.not_live(id, "started") {
                OperationError::AlreadyFinished { status, .. } => Ok(Transition::Ignored(status)),
                error => Err(error),
            };
        };
        let _serialised = lock(&live.transitions);
        let status = live.snapshot.borrow().status;
        if status.is_terminal() {
            return Ok(Transition::Ignored(status));
        }
        live.queued_elsewhere.store(true, Ordering::Release);
        Ok(Transition::Applied)
    }

    /// Finishes the operation as `completed` with its result summary.
    pub fn complete(
        &self,
        id: &OperationId,
        result: serde_json::Value,
    ) -> Result<Transition, OperationError> {
        self.transition(id, |op| {
            op.status = OperationStatus::Completed;
            op.result = Some(result);
        })
    }

    /// Finishes the operation as `failed` with its error.
    pub fn fail(&self, id: &OperationId, error: String) -> Result<Transition, OperationError> {
        self.transition(id, |op| {
            op.status = OperationStatus::Failed;
            op.error = Some(error);
        })
    }

    /// Asks the operation to stop: records the request (reason and time)
    /// and cancels the operation's token, so its work stops at its next check.
    ///
    /// A `pending` operation ends `cancelled` at once, as nothing runs yet,
    /// unless its work is queued elsewhere (see
    /// [`ServiceOrchestrator::defers_start`](crate::ServiceOrchestrator::defers_start)):
    /// that one is treated as running.
    /// A `running` one stays running, with the request visible, until its
    /// work returns; then it ends `cancelled`, or `completed` if the work
    /// finished before it saw the request (see
    /// [`ServiceOrchestrator::start_managed_operation`](crate::ServiceOrchestrator::start_managed_operation),
    /// which also gives up on work that does not stop within
    /// [`cancel_grace`](Self::cancel_grace)). A repeated request changes
    /// nothing. Returns the operation as it stands after the request; errors
    /// if it is unknown or already finished.
    pub fn cancel(
        &self,
        id: &OperationId,
        reason: CancelReason,
    ) -> Result<Operation, OperationError> {
        let Some(live) = self.live_operation(id) else {
            return Err(self.not_live(id, "cancelled"));
        };
        let _serialised = lock(&live.transitions);
        let mut next = live.snapshot.borrow().clone();
        if next.status.is_terminal() {
            return Err(already_finished(id, next.status, "cancelled"));
        }
        if next.cancel_requested() {
            return Ok(next);
        }
        next.cancel_reason = Some(reason.clone());
        next.cancel_requested_at = Some(Utc::now());
        if next.status == OperationStatus::Pending && !live.queued_elsewhere.load(Ordering::Acquire)
        {
            next.status = OperationStatus::Cancelled;
            next.error = Some("before it started".to_owned());
        }
        let operation = self.apply(id, &live, next)?;
        live.token.cancel(reason);
        Ok(operation)
    }

    /// Records the state the operation's work saved to continue from,
    /// replacing the previous one, or that none is left (`None`: the work
    /// removed it). Saved to the store before it returns, so a work that
    /// stops next leaves a record that points to it; ignored once the
    /// operation has finished.
    pub fn set_checkpoint(
        &self,
        id: &OperationId,
        checkpoint: Option<Checkpoint>,
    ) -> Result<Transition, OperationError> {
        self.transition(id, |op| op.checkpoint = checkpoint)
    }

    /// Finishes the operation as `cancelled` now that its work has stopped:
    /// `stop` is the work's own error, which says where. Its reason is kept
    /// unless a request gave one first.
    pub fn stopped(
        &self,
        id: &OperationId,
        stop: &Cancelled,
    ) -> Result<Transition, OperationError> {
        let note = format!("{}{}", crate::operation::STOPPED_DURING, stop.stage);
        self.end_cancelled(id, stop.reason.clone(), note)
    }

    /// Finishes the operation as `cancelled` with `note` saying how it
    /// ended; `reason` applies when no request gave one.
    pub(crate) fn end_cancelled(
        &self,
        id: &OperationId,
        reason: CancelReason,
        note: String,
    ) -> Result<Transition, OperationError> {
        self.transition(id, |op| {
            op.status = OperationStatus::Cancelled;
            op.cancel_reason.get_or_insert(reason);
            op.error = Some(note);
        })
    }

    /// How long managed work may take to stop after a cancel request before
    /// its operation ends `cancelled` without it.
    pub fn cancel_grace(&self) -> Duration {
        self.cancel_grace
    }

    /// The same service, giving up on work `grace` after a cancel request
    /// (default 30 s).
    pub fn with_cancel_grace(mut self, grace: Duration) -> Self {
        self.cancel_grace = grace;
        self
    }

    /// Requests a stop of every pending or running operation, e.g. on
    /// shutdown, returning those that were asked.
    pub fn cancel_active(&self, reason: CancelReason) -> Vec<OperationId> {
        let ids: Vec<OperationId> = self.live().keys().cloned().collect();
        ids.into_iter()
            .filter(|id| self.cancel(id, reason.clone()).is_ok())
            .collect()
    }

    /// The latest snapshot of one operation.
    pub fn get(&self, id: &OperationId) -> Result<Operation, OperationError> {
        if let Some(live) = self.live_operation(id) {
            return Ok(live.snapshot.borrow().clone());
        }
        if let Some(operation) = lock(&self.inner.unsaved).get(id) {
            return Ok(operation.clone());
        }
        self.inner
            .store
            .get(id)?
            .ok_or_else(|| OperationError::NotFound(id.clone()))
    }

    /// Operations matching `filter`, newest first, with live progress.
    pub fn list(&self, filter: &ListFilter) -> Result<OperationPage, OperationError> {
        let mut page = self.inner.store.list(filter)?;
        for operation in &mut page.operations {
            if let Some(live) = self.live_operation(&operation.id) {
                *operation = live.snapshot.borrow().clone();
            } else if let Some(unsaved) = lock(&self.inner.unsaved).get(&operation.id) {
                *operation = unsaved.clone();
            }
        }
        Ok(page)
    }

    /// A stream of snapshots of `id`, ending after its terminal snapshot.
    pub fn watch(&self, id: &OperationId) -> Result<OperationWatch, OperationError> {
        let receiver = match self.live_operation(id) {
            Some(live) => live.snapshot.subscribe(),
            // Already finished: a stream of its one final snapshot.
            None => watch::channel(self.get(id)?).1,
        };
        Ok(OperationWatch {
            receiver,
            first: true,
            finished: false,
        })
    }

    /// How many operations are pending or running.
    pub fn active_count(&self) -> usize {
        // An operation that just ended stays live until its record is saved.
        self.live()
            .values()
            .filter(|live| !live.snapshot.borrow().status.is_terminal())
            .count()
    }

    fn live(&self) -> MutexGuard<'_, HashMap<OperationId, Arc<LiveOperation>>> {
        lock(&self.inner.live)
    }

    /// Saves the final records the store refused before, keeping those it
    /// still refuses.
    fn save_unsaved(&self) {
        lock(&self.inner.unsaved).retain(|_, operation| self.inner.store.save(operation).is_err());
    }

    fn live_operation(&self, id: &OperationId) -> Option<Arc<LiveOperation>> {
        self.live().get(id).cloned()
    }

    /// Why `id`, which has no live state here, cannot be changed.
    fn not_live(&self, id: &OperationId, action: &'static str) -> OperationError {
        match self.get(id) {
            Ok(operation) if operation.status.is_terminal() => {
                already_finished(id, operation.status, action)
            }
            Ok(operation) => OperationError::OwnedElsewhere {
                id: id.clone(),
                status: operation.status,
            },
            Err(error) => error,
        }
    }

    /// Applies `change` unless the operation is finished; see [`apply`](Self::apply).
    ///
    /// Transitions of one operation are serialised, so racing ones apply one
    /// at a time and the first terminal state wins.
    fn transition(
        &self,
        id: &OperationId,
        change: impl FnOnce(&mut Operation),
    ) -> Result<Transition, OperationError> {
        let Some(live) = self.live_operation(id) else {
            return match self.not_live(id, "changed") {
                OperationError::AlreadyFinished { status, .. } => Ok(Transition::Ignored(status)),
                error => Err(error),
            };
        };
        let _serialised = lock(&live.transitions);
        let mut next = live.snapshot.borrow().clone();
        if next.status.is_terminal() {
            return Ok(Transition::Ignored(next.status));
        }
        change(&mut next);
        self.apply(id, &live, next)?;
        Ok(Transition::Applied)
    }

    /// Saves and publishes `next`, the operation's new state; the caller
    /// holds its `transitions` lock. The store is written without holding
    /// the snapshot's lock, so progress reports never wait on it, and the
    /// newest reported progress is kept.
    ///
    /// A state that leaves the operation live is saved first and not
    /// applied if the store refuses it. A terminal state is published to
    /// watchers first and then saved: a store that refuses it cannot keep
    /// the operation live, so the failure is logged and the record saved
    /// again at the next write (see `unsaved`).
    fn apply(
        &self,
        id: &OperationId,
        live: &LiveOperation,
        mut next: Operation,
    ) -> Result<Operation, OperationError> {
        self.save_unsaved();
        if !next.status.is_terminal() {
            self.inner.store.save(&next)?;
            return Ok(publish(live, next));
        }
        next.finished_at = Some(Utc::now());
        let last = publish(live, next);
        if let Err(error) = self.inner.store.save(&last) {
            tracing::error!(
                operation = %id,
                status = %last.status,
                error = %crate::error_chain(&error),
                "could not save the final state; it is kept in memory and saved at the next write"
            );
            lock(&self.inner.unsaved).insert(id.clone(), last.clone());
        }
        self.live().remove(id);
        Ok(last)
    }
}

fn already_finished(
    id: &OperationId,
    status: OperationStatus,
    action: &'static str,
) -> OperationError {
    OperationError::AlreadyFinished {
        id: id.clone(),
        status,
        action,
    }
}

/// Makes `next` the operation's snapshot, with the newest progress and
/// epochs (reported while `next` was being saved, perhaps), and returns what
/// was published.
fn publish(live: &LiveOperation, mut next: Operation) -> Operation {
    live.snapshot.send_modify(|current| {
        next.progress = std::mem::take(&mut current.progress);
        next.epochs = std::mem::take(&mut current.epochs);
        *current = next;
    });
    live.snapshot.borrow().clone()
}

/// Locks `mutex`; every value behind these locks is whole between
/// statements, so a panic elsewhere cannot leave one half-written.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Publishes progress of one operation. Never blocks on watchers: each
/// update replaces the previous one (latest value wins), except that the
/// report of an epoch's end also adds the epoch to the operation's
/// `epochs`, kept in the store with its next state change.
#[derive(Debug, Clone)]
pub struct ProgressReporter {
    live: Arc<LiveOperation>,
}

impl ProgressReporter {
    /// Publishes `state` as the operation's latest progress.
    ///
    /// Fills in the timestamps, the ETA when the producer left it empty, and
    /// the message from the operation's renderer. Ignored once the operation
    /// has finished.
    pub fn report(&self, mut state: ProgressState) {
        let live = &*self.live;
        let (created_instant, created_time) = live.created;
        if state.eta.is_none() {
            let fraction = state.percentage / 100.0;
            state.eta = lock(&live.eta).observe(created_instant.elapsed(), fraction);
        }
        state.started_at.get_or_insert(created_time);
        state.updated_at = Some(SystemTime::now());
        if let Some(renderer) = &live.renderer {
            state.message = renderer.render(&state);
        }
        let finished_epoch = state.finished_epoch();
        live.snapshot.send_if_modified(|operation| {
            if operation.status.is_terminal() {
                return false;
            }
            // Each epoch once, in order, whatever else is reported.
            if let Some(point) = finished_epoch
                && operation
                    .epochs
                    .last()
                    .is_none_or(|last| last.epoch < point.epoch)
            {
                operation.epochs.push(point);
            }
            operation.progress = state;
            true
        });
    }
}

/// Tells an operation's record when and where its work really runs.
///
/// Work handed over by an orchestrator that
/// [defers the start](crate::ServiceOrchestrator::defers_start) waits in a
/// queue of its own first (a busy pool of hosts, a cluster's scheduler):
/// the operation stays `pending`, saying why with [`waiting`](Self::waiting),
/// until [`running`](Self::running). For other work the operation is
/// running already, and `running` only records where.
#[derive(Debug, Clone)]
pub struct StartReporter {
    operations: OperationsService,
    id: OperationId,
    progress: ProgressReporter,
}

impl StartReporter {
    /// `pending → running` (if it is still pending), and records where the
    /// work runs: `local`, a host, a cluster job. Called again (work moved
    /// elsewhere, say requeued), it records the new place. Ignored once the
    /// operation has finished; a store that refuses it is logged, the
    /// work goes on.
    pub fn running(&self, on: impl Into<String>) {
        let on = on.into();
        let started = self.operations.transition(&self.id, |op| {
            if op.status == OperationStatus::Pending {
                op.status = OperationStatus::Running;
                op.started_at = Some(Utc::now());
            }
            op.runs_on = Some(on);
        });
        if let Err(error) = started {
            tracing::warn!(operation = %self.id, error = %crate::error_chain(&error), "cannot record that the operation runs");
        }
    }

    /// Why a `pending` operation still waits (`queued on the cluster:
    /// Resources`), as its progress message.
    pub fn waiting(&self, why: impl Into<String>) {
        self.progress.report(ProgressState {
            message: why.into(),
            ..ProgressState::default()
        });
    }
}

/// Snapshots of one operation as it changes. Intermediate snapshots may be
/// skipped when the watcher is slower than the producer; the terminal one
/// never is.
#[derive(Debug)]
pub struct OperationWatch {
    receiver: watch::Receiver<Operation>,
    first: bool,
    finished: bool,
}

impl OperationWatch {
    /// The next snapshot, or `None` after the terminal one.
    pub async fn next(&mut self) -> Option<Operation> {
        if self.finished {
            return None;
        }
        if !std::mem::take(&mut self.first) && self.receiver.changed().await.is_err() {
            // The operation finished and its live state was dropped; its last
            // snapshot is the terminal one unless we have just seen it.
            let last = self.receiver.borrow().clone();
            self.finished = true;
            return last.status.is_terminal().then_some(last);
        }
        let snapshot = self.receiver.borrow_and_update().clone();
        self.finished = snapshot.status.is_terminal();
        Some(snapshot)
    }
}

#[cfg(test)]
mod tests;
