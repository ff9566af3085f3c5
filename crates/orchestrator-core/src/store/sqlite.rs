//! An operations store in a SQLite file, shared safely by several processes.
//!
//! Each process that opens the store holds an exclusive OS lock on its own
//! owner file beside the database. On open, operations left `pending` or
//! `running` by an owner whose lock is free (its process is gone) are marked
//! `failed`: they were interrupted, and are never silently lost.

use std::fs::{self, File, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use chrono::Utc;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};

use super::{OperationStore, StoreError};
use crate::{ListFilter, Operation, OperationId, OperationPage, OperationStatus};

/// The error recorded on operations whose process stopped while running them.
pub const INTERRUPTED: &str = "interrupted: the process running it stopped";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS operations (
    id         TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    status     TEXT NOT NULL,
    created_us INTEGER NOT NULL,
    owner      TEXT NOT NULL,
    record     TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS operations_by_created ON operations (created_us DESC, id DESC);
CREATE INDEX IF NOT EXISTS operations_by_status ON operations (status);
";

/// Operations kept in a SQLite database (WAL mode), surviving the process.
#[derive(Debug)]
pub struct SqliteStore {
    path: PathBuf,
    connection: Mutex<Connection>,
    owner: String,
    // Held for the life of the store: a locked owner file means "alive".
    _owner_lock: File,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and fails the
    /// operations that dead processes left unfinished.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let path = path.into();
        let io_error = |source| StoreError::Io {
            path: path.clone(),
            source,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent).map_err(io_error)?;
        }
        let owners_dir = owners_dir(&path);
        fs::create_dir_all(&owners_dir).map_err(io_error)?;
        let owner = format!("{:016x}", fastrand::u64(..));
        let owner_lock = lock_new_owner_file(&owners_dir, &owner).map_err(io_error)?;

        let sqlite_error = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let connection = Connection::open(&path).map_err(sqlite_error)?;
        connection
            .execute_batch(
                "PRAGMA journal_mode = WAL;
                 PRAGMA synchronous = NORMAL;
                 PRAGMA busy_timeout = 5000;",
            )
            .map_err(sqlite_error)?;
        connection.execute_batch(SCHEMA).map_err(sqlite_error)?;

        let store = Self {
            path,
            connection: Mutex::new(connection),
            owner,
            _owner_lock: owner_lock,
        };
        store.fail_orphans()?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn connection(&self) -> MutexGuard<'_, Connection> {
        // rusqlite leaves the connection usable after a panic mid-call.
        self.connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn sqlite_error(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    fn decode(&self, id: &str, record: &str) -> Result<Operation, StoreError> {
        serde_json::from_str(record).map_err(|source| StoreError::Corrupt {
            path: self.path.clone(),
            id: id.to_owned(),
            source,
        })
    }

    fn encode(operation: &Operation) -> String {
        serde_json::to_string(operation).expect("an Operation always serialises to JSON")
    }

    /// Marks `failed` every unfinished operation whose owner process is gone.
    fn fail_orphans(&self) -> Result<(), StoreError> {
        let owners_dir = owners_dir(&self.path);
        let connection = self.connection();
        let owners: Vec<String> = connection
            .prepare(
                "SELECT DISTINCT owner FROM operations
                 WHERE status IN ('pending', 'running') AND owner != ?1",
            )
            .and_then(|mut statement| {
                statement
                    .query_map([&self.owner], |row| row.get(0))?
                    .collect()
            })
            .map_err(|e| self.sqlite_error(e))?;

        for owner in owners
            .iter()
            .filter(|owner| !owner_alive(&owners_dir, owner))
        {
            let orphans: Vec<(String, String)> = connection
                .prepare(
                    "SELECT id, record FROM operations
                     WHERE owner = ?1 AND status IN ('pending', 'running')",
                )
                .and_then(|mut statement| {
                    statement
                        .query_map([owner], |row| Ok((row.get(0)?, row.get(1)?)))?
                        .collect()
                })
                .map_err(|e| self.sqlite_error(e))?;
            for (id, record) in orphans {
                let mut operation = self.decode(&id, &record)?;
                operation.status = OperationStatus::Failed;
                operation.error = Some(INTERRUPTED.to_owned());
                operation.finished_at = Some(Utc::now());
                connection
                    .execute(
                        "UPDATE operations SET status = ?2, record = ?3
                         WHERE id = ?1 AND status IN ('pending', 'running')",
                        params![id, operation.status.as_str(), Self::encode(&operation)],
                    )
                    .map_err(|e| self.sqlite_error(e))?;
                tracing::warn!(operation = %id, "marked failed: its process stopped while running it");
            }
        }
        remove_stale_owner_files(&owners_dir, &self.owner);
        Ok(())
    }
}

impl OperationStore for SqliteStore {
    fn insert(&self, operation: &Operation) -> Result<(), StoreError> {
        let inserted = self
            .connection()
            .execute(
                "INSERT OR IGNORE INTO operations (id, kind, status, created_us, owner, record)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    operation.id.as_str(),
                    operation.kind.as_str(),
                    operation.status.as_str(),
                    operation.created_at.timestamp_micros(),
                    self.owner,
                    Self::encode(operation),
                ],
            )
            .map_err(|e| self.sqlite_error(e))?;
        if inserted == 0 {
            return Err(StoreError::Duplicate(operation.id.clone()));
        }
        Ok(())
    }

    fn save(&self, operation: &Operation) -> Result<(), StoreError> {
        self.connection()
            .execute(
                "UPDATE operations SET status = ?2, record = ?3
                 WHERE id = ?1 AND status IN ('pending', 'running')",
                params![
                    operation.id.as_str(),
                    operation.status.as_str(),
                    Self::encode(operation),
                ],
            )
            .map_err(|e| self.sqlite_error(e))?;
        Ok(())
    }

    fn get(&self, id: &OperationId) -> Result<Option<Operation>, StoreError> {
        let record: Option<String> = self
            .connection()
            .query_row(
                "SELECT record FROM operations WHERE id = ?1",
                [id.as_str()],
                |row| row.get(0),
            )
            .optional()
            .map_err(|e| self.sqlite_error(e))?;
        record
            .map(|record| self.decode(id.as_str(), &record))
            .transpose()
    }

    fn list(&self, filter: &ListFilter) -> Result<OperationPage, StoreError> {
        let mut conditions = Vec::new();
        let mut values: Vec<String> = Vec::new();
        if !filter.statuses.is_empty() {
            let placeholders = vec!["?"; filter.statuses.len()].join(", ");
            conditions.push(format!("status IN ({placeholders})"));
            values.extend(filter.statuses.iter().map(|s| s.as_str().to_owned()));
        }
        if let Some(kind) = filter.kind {
            conditions.push("kind = ?".to_owned());
            values.push(kind.as_str().to_owned());
        }
        if filter.active_only {
            conditions.push("status IN ('pending', 'running')".to_owned());
        }
        let where_clause = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        // SQLite reads LIMIT -1 as "no limit".
        let limit = filter
            .limit
            .map_or(-1, |limit| i64::try_from(limit).unwrap_or(i64::MAX));
        let offset = i64::try_from(filter.offset).unwrap_or(i64::MAX);

        let connection = self.connection();
        let total: i64 = connection
            .query_row(
                &format!("SELECT COUNT(*) FROM operations {where_clause}"),
                params_from_iter(&values),
                |row| row.get(0),
            )
            .map_err(|e| self.sqlite_error(e))?;
        let rows: Vec<(String, String)> = connection
            .prepare(&format!(
                "SELECT id, record FROM operations {where_clause}
                 ORDER BY created_us DESC, id DESC LIMIT {limit} OFFSET {offset}"
            ))
            .and_then(|mut statement| {
                statement
                    .query_map(params_from_iter(&values), |row| {
                        Ok((row.get(0)?, row.get(1)?))
                    })?
                    .collect()
            })
            .map_err(|e| self.sqlite_error(e))?;
        drop(connection);

        let operations = rows
            .iter()
            .map(|(id, record)| self.decode(id, record))
            .collect::<Result<_, _>>()?;
        Ok(OperationPage {
            operations,
            total: usize::try_from(total).unwrap_or(0),
        })
    }
}

fn owners_dir(database: &Path) -> PathBuf {
    let mut name = database.file_name().unwrap_or_default().to_os_string();
    name.push(".owners");
    database.with_file_name(name)
}

/// Creates `{owner}.lock`, locked from the moment it carries its final name,
/// so no other process can ever see it unlocked while this one lives.
fn lock_new_owner_file(owners_dir: &Path, owner: &str) -> std::io::Result<File> {
    let staging = owners_dir.join(format!("{owner}.lock.new"));
    let file = File::create(&staging)?;
    file.lock()?;
    fs::rename(&staging, owners_dir.join(format!("{owner}.lock")))?;
    Ok(file)
}

fn owner_alive(owners_dir: &Path, owner: &str) -> bool {
    let Ok(file) = File::open(owners_dir.join(format!("{owner}.lock"))) else {
        return false;
    };
    match file.try_lock() {
        Ok(()) => false,
        Err(TryLockError::WouldBlock) => true,
        // Cannot tell: assume alive rather than fail someone's live work.
        Err(TryLockError::Error(_)) => true,
    }
}

/// Removes owner files whose processes are gone (best effort).
fn remove_stale_owner_files(owners_dir: &Path, own: &str) {
    let Ok(entries) = fs::read_dir(owners_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(owner) = name.to_str().and_then(|n| n.strip_suffix(".lock")) else {
            continue;
        };
        if owner != own && !owner_alive(owners_dir, owner) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::OperationKind;
    use crate::store::tests::store_contract;

    #[test]
    fn sqlite_store_meets_the_contract() {
        let dir = tempfile::tempdir().unwrap();
        store_contract(&SqliteStore::open(dir.path().join("ops.db")).unwrap());
    }

    #[test]
    fn operations_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/ops.db");
        let mut op = Operation::new(OperationKind::Training, serde_json::json!({}), Utc::now());
        {
            let store = SqliteStore::open(&path).unwrap();
            store.insert(&op).unwrap();
            op.status = OperationStatus::Completed;
            op.result = Some(serde_json::json!({ "accuracy": 0.61 }));
            store.save(&op).unwrap();
        }
        let reopened = SqliteStore::open(&path).unwrap();
        assert_eq!(reopened.get(&op.id).unwrap(), Some(op));
    }

    #[test]
    fn orphans_of_a_dead_process_are_failed_but_a_live_ones_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ops.db");
        let dead = SqliteStore::open(&path).unwrap();
        let live = SqliteStore::open(&path).unwrap();
        let mut orphan = Operation::new(OperationKind::Training, serde_json::json!({}), Utc::now());
        orphan.status = OperationStatus::Running;
        dead.insert(&orphan).unwrap();
        let running = Operation::new(OperationKind::DataLoad, serde_json::json!({}), Utc::now());
        live.insert(&running).unwrap();
        // Dropping the store releases its owner lock, as a process exit does.
        drop(dead);

        let fresh = SqliteStore::open(&path).unwrap();
        let failed = fresh.get(&orphan.id).unwrap().unwrap();
        assert_eq!(failed.status, OperationStatus::Failed);
        assert_eq!(failed.error.as_deref(), Some(INTERRUPTED));
        assert!(failed.finished_at.is_some());
        assert_eq!(
            fresh.get(&running.id).unwrap().unwrap().status,
            OperationStatus::Pending,
            "an operation of a live process must not be touched"
        );
        // The dead owner's lock file was cleaned up; the live ones remain.
        let mut owner_files: Vec<_> = fs::read_dir(owners_dir(&path))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        owner_files.sort();
        let mut expected = vec![
            format!("{}.lock", live.owner),
            format!("{}.lock", fresh.owner),
        ];
        expected.sort();
        assert_eq!(owner_files, expected);
    }

    #[test]
    fn unopenable_path_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        fs::write(&blocker, "not a directory").unwrap();
        let err = SqliteStore::open(blocker.join("ops.db")).unwrap_err();
        assert!(
            err.to_string().contains(&*blocker.to_string_lossy()),
            "{err}"
        );
    }
}
