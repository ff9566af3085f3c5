//! The operation model: ids, kinds, statuses and the record every store keeps.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use progress::{EpochPoint, ProgressState};
use serde::{Deserialize, Serialize};

use crate::CancelReason;

/// `op_{kind}_{YYYYmmdd_HHMMSS}_{8 hex}`, e.g. `op_training_20261128_171500_0a1b2c3d`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct OperationId(String);

impl OperationId {
    /// A fresh id for an operation of `kind` created at `at`.
    pub fn generate(kind: &OperationKind, at: DateTime<Utc>) -> Self {
        Self(format!(
            "op_{}_{}_{:08x}",
            kind.as_str(),
            at.format("%Y%m%d_%H%M%S"),
            fastrand::u32(..)
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The id text was not `op_{kind}_{YYYYmmdd_HHMMSS}_{8 hex}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid operation id {0:?}: expected op_{{kind}}_{{YYYYmmdd_HHMMSS}}_{{8 hex digits}}")]
pub struct InvalidOperationId(pub String);

impl FromStr for OperationId {
    type Err = InvalidOperationId;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidOperationId(text.to_owned());
        let rest = text.strip_prefix("op_").ok_or_else(invalid)?;
        // The kind may itself contain underscores (`data_load`), so split from the right.
        let mut parts = rest.rsplitn(4, '_');
        let (hex, time, date, kind) = (
            parts.next().ok_or_else(invalid)?,
            parts.next().ok_or_else(invalid)?,
            parts.next().ok_or_else(invalid)?,
            parts.next().ok_or_else(invalid)?,
        );
        let valid = hex.len() == 8
            && hex.bytes().all(|b| b.is_ascii_hexdigit())
            && date.len() == 8
            && date.bytes().all(|b| b.is_ascii_digit())
            && time.len() == 6
            && time.bytes().all(|b| b.is_ascii_digit())
            && OperationKind::from_str(kind).is_ok();
        if valid {
            Ok(Self(text.to_owned()))
        } else {
            Err(invalid())
        }
    }
}

impl TryFrom<String> for OperationId {
    type Error = InvalidOperationId;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl From<OperationId> for String {
    fn from(id: OperationId) -> Self {
        id.0
    }
}

impl fmt::Display for OperationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What kind of work an operation runs. New kinds are added here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum OperationKind {
    DataLoad,
    Training,
}

impl OperationKind {
    pub const ALL: [OperationKind; 2] = [OperationKind::DataLoad, OperationKind::Training];

    pub fn as_str(&self) -> &'static str {
        match self {
            OperationKind::DataLoad => "data_load",
            OperationKind::Training => "training",
        }
    }
}

impl fmt::Display for OperationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text named no known operation kind or status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?}; expected one of: {expected}")]
pub struct UnknownName {
    pub what: &'static str,
    pub value: String,
    pub expected: String,
}

impl FromStr for OperationKind {
    type Err = UnknownName;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        parse_name("operation kind", text, &Self::ALL, Self::as_str)
    }
}

/// `pending → running → completed | failed | cancelled`; the last three are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperationStatus {
    Pending,
    Running,
    Completed,
    Failed,
    Cancelled,
}

impl OperationStatus {
    pub const ALL: [OperationStatus; 5] = [
        OperationStatus::Pending,
        OperationStatus::Running,
        OperationStatus::Completed,
        OperationStatus::Failed,
        OperationStatus::Cancelled,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            OperationStatus::Pending => "pending",
            OperationStatus::Running => "running",
            OperationStatus::Completed => "completed",
            OperationStatus::Failed => "failed",
            OperationStatus::Cancelled => "cancelled",
        }
    }

    /// Whether the status can never change again.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            OperationStatus::Completed | OperationStatus::Failed | OperationStatus::Cancelled
        )
    }
}

impl fmt::Display for OperationStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OperationStatus {
    type Err = UnknownName;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        parse_name("operation status", text, &Self::ALL, Self::as_str)
    }
}

fn parse_name<T: Copy>(
    what: &'static str,
    text: &str,
    all: &[T],
    name: fn(&T) -> &'static str,
) -> Result<T, UnknownName> {
    all.iter()
        .find(|candidate| name(candidate).eq_ignore_ascii_case(text.trim()))
        .copied()
        .ok_or_else(|| UnknownName {
            what,
            value: text.to_owned(),
            expected: all.iter().map(name).collect::<Vec<_>>().join(", "),
        })
}

/// Everything known about one operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Operation {
    pub id: OperationId,
    pub kind: OperationKind,
    pub status: OperationStatus,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// The request that started it, as given.
    pub params: serde_json::Value,
    /// The latest progress snapshot.
    pub progress: ProgressState,
    /// The result summary of a completed operation.
    pub result: Option<serde_json::Value>,
    /// Why a failed operation failed. For a cancelled one, how it ended, as
    /// words that follow "cancelled": `during training` (where the work
    /// stopped), `before it started`, or why the service stopped waiting.
    pub error: Option<String>,
    /// Why the operation was asked to stop. Set with the request and kept
    /// whatever the outcome: on a `completed` operation, the request came
    /// too late, after the work had finished.
    pub cancel_reason: Option<CancelReason>,
    /// When a stop was requested. A `running` operation stays running, and
    /// counted as active, until its work returns.
    #[serde(default)]
    pub cancel_requested_at: Option<DateTime<Utc>>,
    /// The latest state its work saved to continue from, if it saves any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<Checkpoint>,
    /// Every finished epoch of a training, in order, as reported: the
    /// points of its curves (see [`ProgressState::finished_epoch`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub epochs: Vec<EpochPoint>,
    /// Where the work runs or ran, in its executor's words (`local`, a
    /// host's URL, a cluster job), once it has started there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runs_on: Option<String>,
}

/// Where an operation's work saved the state it can continue from, and
/// how far it had got: a training's position is its epoch and the batches
/// of that epoch done.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The file, on the machine that runs the work.
    pub path: String,
    pub bytes: u64,
    /// The epoch the state is in (from 1).
    pub epoch: u32,
    /// Batches of that epoch done: all of them at the end of an epoch.
    pub batch: u32,
    pub saved_at: DateTime<Utc>,
}

impl Operation {
    /// A new `pending` operation.
    pub fn new(kind: OperationKind, params: serde_json::Value, now: DateTime<Utc>) -> Self {
        Self {
            id: OperationId::generate(&kind, now),
            kind,
            status: OperationStatus::Pending,
            created_at: now,
            started_at: None,
            finished_at: None,
            params,
            progress: ProgressState::default(),
            result: None,
            error: None,
            cancel_reason: None,
            cancel_requested_at: None,
            checkpoint: None,
            epochs: Vec::new(),
            runs_on: None,
        }
    }

    /// Whether a stop was requested, whatever came of it.
    pub fn cancel_requested(&self) -> bool {
        self.cancel_requested_at.is_some()
    }

    /// The stage a cancelled operation's work reported when it stopped
    /// (its [`Cancelled`](crate::Cancelled)'s), if it stopped on its own.
    pub fn stopped_during(&self) -> Option<&str> {
        if self.status != OperationStatus::Cancelled {
            return None;
        }
        self.error.as_deref()?.strip_prefix(STOPPED_DURING)
    }
}

/// How the note of a cancelled operation whose work stopped begins, before
/// the stage.
pub(crate) const STOPPED_DURING: &str = "during ";

/// Which operations [`list`](crate::OperationsService::list) returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListFilter {
    /// Only these statuses; empty means any.
    pub statuses: Vec<OperationStatus>,
    pub kind: Option<OperationKind>,
    /// Only `pending` and `running` operations.
    pub active_only: bool,
    /// At most this many; `None` means all.
    pub limit: Option<usize>,
    pub offset: usize,
}

impl ListFilter {
    pub fn matches(&self, operation: &Operation) -> bool {
        (self.statuses.is_empty() || self.statuses.contains(&operation.status))
            && self.kind.is_none_or(|kind| kind == operation.kind)
            && !(self.active_only && operation.status.is_terminal())
    }
}

/// One page of a listing, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct OperationPage {
    pub operations: Vec<Operation>,
    /// How many operations match the filter, across all pages.
    pub total: usize,
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn ids_have_the_documented_format_and_parse_back() {
        let at = Utc.with_ymd_and_hms(2026, 11, 28, 17, 15, 0).unwrap();
        let id = OperationId::generate(&OperationKind::DataLoad, at);
        let text = id.to_string();
        assert!(text.starts_with("op_data_load_20261128_171500_"), "{text}");
        assert_eq!(text.len(), "op_data_load_20261128_171500_".len() + 8);
        assert_eq!(text.parse::<OperationId>(), Ok(id));
        assert!(
            "op_training_20261128_171500_0a1b2c3d"
                .parse::<OperationId>()
                .is_ok()
        );
    }

    #[test]
    fn malformed_ids_are_rejected() {
        for bad in [
            "",
            "op_",
            "training_20261128_171500_0a1b2c3d",
            "op_training_20261128_171500_0a1b2c3",
            "op_training_20261128_171500_0a1b2c3g",
            "op_training_2026112_171500_0a1b2c3d",
            "op_bogus_20261128_171500_0a1b2c3d",
            "op_20261128_171500_0a1b2c3d",
        ] {
            assert!(bad.parse::<OperationId>().is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn names_parse_case_insensitively_and_errors_list_choices() {
        assert_eq!("Running".parse(), Ok(OperationStatus::Running));
        assert_eq!("data_load".parse(), Ok(OperationKind::DataLoad));
        let err = "done".parse::<OperationStatus>().unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"unknown operation status "done"; expected one of: pending, running, completed, failed, cancelled"#
        );
    }

    #[test]
    fn only_completed_failed_cancelled_are_terminal() {
        let terminal: Vec<_> = OperationStatus::ALL
            .into_iter()
            .filter(OperationStatus::is_terminal)
            .collect();
        assert_eq!(
            terminal,
            [
                OperationStatus::Completed,
                OperationStatus::Failed,
                OperationStatus::Cancelled
            ]
        );
    }
}
