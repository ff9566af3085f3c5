//! Where operations are kept: the store trait, its in-memory implementation
//! and, with the `sqlite` feature (on by default), a SQLite file.

#[cfg(feature = "sqlite")]
mod sqlite;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};

#[cfg(feature = "sqlite")]
pub use sqlite::{INTERRUPTED, SqliteStore};

use crate::{ListFilter, Operation, OperationId, OperationPage};

/// Keeps operation records.
///
/// Implementations must be quick (memory, or a local SQLite file): the
/// service calls them inline on state transitions. Progress updates never
/// reach the store; the latest progress is saved with each transition.
pub trait OperationStore: Send + Sync + std::fmt::Debug {
    /// Adds a new operation; fails if its id is taken.
    fn insert(&self, operation: &Operation) -> Result<(), StoreError>;
    /// Replaces the record of an operation that is not yet finished. A record
    /// already in a terminal state is left as it is: terminal states are final.
    fn save(&self, operation: &Operation) -> Result<(), StoreError>;
    fn get(&self, id: &OperationId) -> Result<Option<Operation>, StoreError>;
    /// The operations matching `filter`, newest first, with the total count.
    fn list(&self, filter: &ListFilter) -> Result<OperationPage, StoreError>;
}

/// A store could not read or write an operation.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("operation {0} already exists")]
    Duplicate(OperationId),
    #[cfg(feature = "sqlite")]
    #[error("operations database {path}")]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("operations database {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("operations database {path}: record of {id} is unreadable")]
    Corrupt {
        path: PathBuf,
        id: String,
        #[source]
        source: serde_json::Error,
    },
}

/// A store that lives and dies with the process.
#[derive(Debug, Default)]
pub struct InMemoryStore {
    operations: Mutex<HashMap<OperationId, Operation>>,
    /// Finished operations beyond this many are forgotten, oldest first.
    keep_finished: Option<usize>,
}

impl InMemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// A store for a long-lived process: it keeps every unfinished operation
    /// and the newest `limit` finished ones.
    pub fn keeping_finished(limit: usize) -> Self {
        Self {
            keep_finished: Some(limit),
            ..Self::default()
        }
    }

    /// Forgets the oldest finished operations beyond `limit`.
    fn forget_beyond(operations: &mut HashMap<OperationId, Operation>, limit: usize) {
        let mut finished: Vec<&Operation> = operations
            .values()
            .filter(|op| op.status.is_terminal())
            .collect();
        if finished.len() <= limit {
            return;
        }
        finished.sort_unstable_by(|a, b| newest_first(a, b));
        let forgotten: Vec<OperationId> =
            finished[limit..].iter().map(|op| op.id.clone()).collect();
        for id in forgotten {
            operations.remove(&id);
        }
    }

    fn operations(&self) -> std::sync::MutexGuard<'_, HashMap<OperationId, Operation>> {
        // A panic while holding the lock cannot leave a map entry half-written.
        self.operations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl OperationStore for InMemoryStore {
    fn insert(&self, operation: &Operation) -> Result<(), StoreError> {
        let mut operations = self.operations();
        if operations.contains_key(&operation.id) {
            return Err(StoreError::Duplicate(operation.id.clone()));
        }
        operations.insert(operation.id.clone(), operation.clone());
        Ok(())
    }

    fn save(&self, operation: &Operation) -> Result<(), StoreError> {
        let mut operations = self.operations();
        if let Some(stored) = operations.get_mut(&operation.id)
            && !stored.status.is_terminal()
        {
            *stored = operation.clone();
            if let (true, Some(limit)) = (operation.status.is_terminal(), self.keep_finished) {
                Self::forget_beyond(&mut operations, limit);
            }
        }
        Ok(())
    }

    fn get(&self, id: &OperationId) -> Result<Option<Operation>, StoreError> {
        Ok(self.operations().get(id).cloned())
    }

    fn list(&self, filter: &ListFilter) -> Result<OperationPage, StoreError> {
        let operations = self.operations();
        let mut matching: Vec<&Operation> = operations
            .values()
            .filter(|op| filter.matches(op))
            .collect();
        let total = matching.len();
        matching.sort_unstable_by(|a, b| newest_first(a, b));
        let operations = matching
            .into_iter()
            .skip(filter.offset)
            .take(filter.limit.unwrap_or(usize::MAX))
            .cloned()
            .collect();
        Ok(OperationPage { operations, total })
    }
}

/// The listing order every store uses: newest first, ties broken by id.
pub(crate) fn newest_first(a: &Operation, b: &Operation) -> std::cmp::Ordering {
    b.created_at
        .cmp(&a.created_at)
        .then_with(|| b.id.cmp(&a.id))
}

#[cfg(test)]
pub(crate) mod tests {
    use chrono::{Duration, TimeZone, Utc};

    use super::*;
    use crate::{OperationKind, OperationStatus};

    /// Behaviour every store must have; run against each implementation.
    pub(crate) fn store_contract(store: &dyn OperationStore) {
        let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let ops: Vec<Operation> = (0..5)
            .map(|i| {
                let kind = if i % 2 == 0 {
                    OperationKind::Training
                } else {
                    OperationKind::DataLoad
                };
                Operation::new(
                    kind,
                    serde_json::json!({ "i": i }),
                    t0 + Duration::seconds(i),
                )
            })
            .collect();
        for op in &ops {
            store.insert(op).unwrap();
        }
        assert!(matches!(
            store.insert(&ops[0]),
            Err(StoreError::Duplicate(id)) if id == ops[0].id
        ));

        // Newest first, paging, totals.
        let page = store
            .list(&ListFilter {
                limit: Some(2),
                offset: 1,
                ..ListFilter::default()
            })
            .unwrap();
        assert_eq!(page.total, 5);
        let ids: Vec<_> = page.operations.iter().map(|op| op.id.clone()).collect();
        assert_eq!(ids, [ops[3].id.clone(), ops[2].id.clone()]);

        // Save applies until a terminal state, then never again.
        let mut done = ops[0].clone();
        done.status = OperationStatus::Completed;
        done.result = Some(serde_json::json!({ "ok": true }));
        store.save(&done).unwrap();
        let mut late = ops[0].clone();
        late.status = OperationStatus::Running;
        store.save(&late).unwrap();
        assert_eq!(store.get(&ops[0].id).unwrap(), Some(done.clone()));

        // Filters.
        let training = store
            .list(&ListFilter {
                kind: Some(OperationKind::Training),
                ..ListFilter::default()
            })
            .unwrap();
        assert_eq!(training.total, 3);
        let active = store
            .list(&ListFilter {
                active_only: true,
                ..ListFilter::default()
            })
            .unwrap();
        assert_eq!(active.total, 4);
        let completed = store
            .list(&ListFilter {
                statuses: vec![OperationStatus::Completed],
                ..ListFilter::default()
            })
            .unwrap();
        assert_eq!(completed.operations.len(), 1);
        assert_eq!(completed.operations[0].id, ops[0].id);

        let unknown = "op_training_20000101_000000_00000000".parse().unwrap();
        assert_eq!(store.get(&unknown).unwrap(), None);

        // A cancel request is kept while the operation runs on.
        let mut requested = ops[1].clone();
        requested.status = OperationStatus::Running;
        requested.cancel_reason = Some(crate::CancelReason::UserRequest(Some("enough".into())));
        requested.cancel_requested_at = Some(t0 + Duration::seconds(60));
        store.save(&requested).unwrap();
        assert_eq!(store.get(&ops[1].id).unwrap(), Some(requested));
    }

    #[test]
    fn in_memory_store_meets_the_contract() {
        store_contract(&InMemoryStore::new());
        store_contract(&InMemoryStore::keeping_finished(10));
    }

    #[test]
    fn a_bounded_store_forgets_the_oldest_finished_operations_only() {
        let store = InMemoryStore::keeping_finished(2);
        let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let ops: Vec<Operation> = (0..5)
            .map(|i| {
                let op = Operation::new(
                    OperationKind::Training,
                    serde_json::json!({}),
                    t0 + Duration::seconds(i),
                );
                store.insert(&op).unwrap();
                op
            })
            .collect();
        // The oldest stays unfinished; the other four finish.
        for op in &ops[1..] {
            let mut done = op.clone();
            done.status = OperationStatus::Completed;
            store.save(&done).unwrap();
        }
        let kept: Vec<_> = ops
            .iter()
            .map(|op| store.get(&op.id).unwrap().is_some())
            .collect();
        assert_eq!(kept, [true, false, false, true, true]);
    }
}
