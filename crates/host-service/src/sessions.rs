//! Training sessions: their state, the registry that keeps them (finished
//! ones too, up to a bound) and the wire form of a session.
//!
//! Each session's state lives in a `watch` channel: the trainer's progress
//! replaces the latest snapshot without ever waiting for a reader, and every
//! event stream or `CancelTraining` call follows the channel.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use chrono::{DateTime, Utc};
use orchestrator_core::{CancelReason, CancellationToken};
use progress::ProgressState;
use rpc::proto;
use tokio::sync::watch;

/// Finished sessions kept for `GetSession`/`ListSessions`; older ones are
/// forgotten. Unfinished sessions are never dropped.
pub(crate) const KEPT_FINISHED: usize = 1000;

/// Where a session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Waiting,
    Running,
    Completed,
    Failed,
    Cancelled,
}

impl Status {
    pub(crate) fn is_finished(self) -> bool {
        matches!(self, Status::Completed | Status::Failed | Status::Cancelled)
    }
}

impl From<Status> for proto::SessionStatus {
    fn from(status: Status) -> Self {
        match status {
            Status::Waiting => proto::SessionStatus::Waiting,
            Status::Running => proto::SessionStatus::Running,
            Status::Completed => proto::SessionStatus::Completed,
            Status::Failed => proto::SessionStatus::Failed,
            Status::Cancelled => proto::SessionStatus::Cancelled,
        }
    }
}

/// How a session ended.
#[derive(Debug, Clone)]
pub(crate) enum Outcome {
    Completed {
        summary_json: String,
        model_path: PathBuf,
    },
    Failed(String),
    Cancelled {
        reason: CancelReason,
        stage: String,
    },
}

impl Outcome {
    fn status(&self) -> Status {
        match self {
            Outcome::Completed { .. } => Status::Completed,
            Outcome::Failed(_) => Status::Failed,
            Outcome::Cancelled { .. } => Status::Cancelled,
        }
    }

    /// The final event of the session's stream.
    pub(crate) fn event(&self) -> proto::training_event::Event {
        use proto::training_event::Event;
        match self {
            Outcome::Completed { summary_json, .. } => Event::Completed(proto::Completed {
                summary_json: summary_json.clone(),
            }),
            Outcome::Failed(message) => Event::Failed(proto::Failed {
                message: message.clone(),
            }),
            Outcome::Cancelled { reason, stage } => Event::Cancelled(proto::Cancelled {
                reason: Some(reason.into()),
                stage: stage.clone(),
            }),
        }
    }
}

/// The changing part of a session.
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    pub(crate) status: Status,
    pub(crate) progress: ProgressState,
    pub(crate) outcome: Option<Outcome>,
    pub(crate) finished_at: Option<DateTime<Utc>>,
}

/// One training session.
#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) id: String,
    pub(crate) strategy: String,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) token: CancellationToken,
    state: watch::Sender<Snapshot>,
}

impl Session {
    pub(crate) fn snapshot(&self) -> Snapshot {
        self.state.borrow().clone()
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<Snapshot> {
        self.state.subscribe()
    }

    /// Replaces the latest progress; never waits for readers.
    pub(crate) fn report(&self, progress: ProgressState) {
        self.state.send_if_modified(|snapshot| {
            // A late report after the end is ignored: the end is final.
            if snapshot.status.is_finished() {
                return false;
            }
            snapshot.progress = progress;
            true
        });
    }

    /// Says where a waiting session is in the line; no change, no event.
    pub(crate) fn set_waiting_message(&self, message: String) {
        self.state.send_if_modified(|snapshot| {
            if snapshot.status != Status::Waiting || snapshot.progress.message == message {
                return false;
            }
            snapshot.progress = ProgressState {
                message,
                ..ProgressState::default()
            };
            true
        });
    }

    pub(crate) fn set_running(&self) {
        self.state.send_if_modified(|snapshot| {
            if snapshot.status != Status::Waiting {
                return false;
            }
            snapshot.status = Status::Running;
            snapshot.progress.started_at = Some(SystemTime::now());
            true
        });
    }

    /// Records how the session ended; the first end wins.
    pub(crate) fn finish(&self, outcome: Outcome) {
        self.state.send_if_modified(|snapshot| {
            if snapshot.status.is_finished() {
                return false;
            }
            snapshot.status = outcome.status();
            snapshot.finished_at = Some(Utc::now());
            snapshot.outcome = Some(outcome);
            true
        });
    }

    pub(crate) fn to_proto(&self) -> proto::Session {
        let snapshot = self.state.borrow();
        let (error, cancel_reason) = match &snapshot.outcome {
            Some(Outcome::Failed(message)) => (Some(message.clone()), None),
            Some(Outcome::Cancelled { reason, .. }) => (None, Some(reason.into())),
            Some(Outcome::Completed { .. }) | None => (None, None),
        };
        proto::Session {
            session_id: self.id.clone(),
            status: proto::SessionStatus::from(snapshot.status).into(),
            strategy: self.strategy.clone(),
            created_at: Some(rpc::timestamp(self.created_at)),
            finished_at: snapshot.finished_at.map(rpc::timestamp),
            progress: Some((&snapshot.progress).into()),
            error,
            cancel_reason,
        }
    }
}

/// Every session of this host, oldest first.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    sessions: Mutex<VecDeque<Arc<Session>>>,
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, VecDeque<Arc<Session>>> {
        // A panic while holding the lock cannot leave the list half-changed
        // (each change is one push or remove), so a poisoned lock is usable.
        self.sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers a new session with a fresh id.
    pub(crate) fn create(
        &self,
        strategy: String,
        token: CancellationToken,
        status: Status,
        progress: ProgressState,
    ) -> Arc<Session> {
        let mut sessions = self.lock();
        let id = loop {
            let id = format!("sess_{:08x}", fastrand::u32(..));
            if !sessions.iter().any(|session| session.id == id) {
                break id;
            }
        };
        let (state, _) = watch::channel(Snapshot {
            status,
            progress,
            outcome: None,
            finished_at: None,
        });
        let session = Arc::new(Session {
            id,
            strategy,
            created_at: Utc::now(),
            token,
            state,
        });
        sessions.push_back(Arc::clone(&session));
        session
    }

    pub(crate) fn get(&self, id: &str) -> Option<Arc<Session>> {
        self.lock().iter().find(|session| session.id == id).cloned()
    }

    /// Newest first.
    pub(crate) fn list(&self) -> Vec<Arc<Session>> {
        self.lock().iter().rev().cloned().collect()
    }

    /// The waiting sessions, oldest (first in line) first.
    pub(crate) fn waiting(&self) -> Vec<Arc<Session>> {
        self.lock()
            .iter()
            .filter(|session| session.state.borrow().status == Status::Waiting)
            .cloned()
            .collect()
    }

    /// Forgets the oldest finished sessions beyond [`KEPT_FINISHED`].
    pub(crate) fn trim(&self) {
        let mut sessions = self.lock();
        let finished = |session: &Arc<Session>| session.state.borrow().status.is_finished();
        let mut excess = sessions
            .iter()
            .filter(|session| finished(session))
            .count()
            .saturating_sub(KEPT_FINISHED);
        sessions.retain(|session| {
            if excess > 0 && finished(session) {
                excess -= 1;
                false
            } else {
                true
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry_with(count: usize) -> Registry {
        let registry = Registry::default();
        for index in 0..count {
            registry.create(
                format!("s{index}"),
                CancellationToken::new(),
                Status::Waiting,
                ProgressState::default(),
            );
        }
        registry
    }

    #[test]
    fn sessions_are_listed_newest_first_with_distinct_ids() {
        let registry = registry_with(3);
        let list = registry.list();
        let names: Vec<_> = list.iter().map(|s| s.strategy.as_str()).collect();
        assert_eq!(names, ["s2", "s1", "s0"]);
        assert!(
            list.iter()
                .all(|s| s.id.starts_with("sess_") && s.id.len() == 13)
        );
        assert_ne!(list[0].id, list[1].id);
        assert_eq!(registry.get(&list[1].id).unwrap().strategy, "s1");
        assert!(registry.get("sess_nothere").is_none());
    }

    #[test]
    fn the_first_end_is_final_and_late_progress_is_ignored() {
        let registry = registry_with(1);
        let session = registry.list().remove(0);
        session.set_running();
        session.finish(Outcome::Failed("boom".into()));
        session.finish(Outcome::Cancelled {
            reason: CancelReason::Shutdown,
            stage: "late".into(),
        });
        session.report(ProgressState {
            percentage: 50.0,
            ..ProgressState::default()
        });
        let snapshot = session.snapshot();
        assert_eq!(snapshot.status, Status::Failed);
        assert_eq!(snapshot.progress.percentage, 0.0);
        let wire = session.to_proto();
        assert_eq!(wire.status(), proto::SessionStatus::Failed);
        assert_eq!(wire.error.as_deref(), Some("boom"));
        assert!(wire.finished_at.is_some());
    }

    #[test]
    fn trimming_drops_only_the_oldest_finished_sessions() {
        let registry = registry_with(KEPT_FINISHED + 3);
        let all = registry.list();
        // The oldest session stays unfinished; all others finish.
        let oldest = all.last().unwrap().id.clone();
        for session in &all[..all.len() - 1] {
            session.finish(Outcome::Failed("x".into()));
        }
        registry.trim();
        let kept = registry.list();
        assert_eq!(kept.len(), KEPT_FINISHED + 1);
        assert!(registry.get(&oldest).is_some(), "unfinished sessions stay");
        // The two oldest finished ones went.
        assert!(registry.get(&all[all.len() - 2].id).is_none());
        assert!(registry.get(&all[all.len() - 3].id).is_none());
        assert!(registry.get(&all[0].id).is_some());
    }
}
