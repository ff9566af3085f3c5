//! Where messages go, and the fields of a mapping: which keys were read,
//! so the others can be reported as unknown.

use std::path::Path;

use super::Result;
use super::values::mapping;
use super::yaml::{Entry, Node, Pos, Value, cut};
use crate::error::StrategyError;

/// Where messages go: the file name for errors, and the warnings so far.
#[derive(Debug)]
pub(super) struct Reader<'f> {
    pub(super) file: &'f Path,
    /// Where each warning points, for sorting, and its text.
    pub(super) warnings: Vec<(Pos, String)>,
}

impl Reader<'_> {
    pub(super) fn invalid(
        &self,
        pos: Pos,
        key_path: &str,
        message: impl Into<String>,
    ) -> StrategyError {
        StrategyError::Invalid {
            file: self.file.to_owned(),
            line: pos.line,
            column: pos.column,
            key_path: shown_path(key_path),
            message: message.into(),
        }
    }

    fn warn(&mut self, pos: Pos, key_path: &str, message: &str) {
        let text = format!(
            "{}:{}:{}: {}: {message}",
            self.file.display(),
            pos.line,
            pos.column,
            shown_path(key_path)
        );
        self.warnings.push((pos, text));
    }

    /// "expected X, found Y" at `node`.
    pub(super) fn expected(&self, node: &Node, path: &str, expected: &str) -> StrategyError {
        self.invalid(
            node.pos,
            path,
            format!("expected {expected}, found {}", node.describe()),
        )
    }
}

/// The top of the document has no key; messages call it `(document)`.
fn shown_path(key_path: &str) -> String {
    if key_path.is_empty() {
        "(document)".to_owned()
    } else {
        key_path.to_owned()
    }
}

/// `parent.key`; a long key is cut, as paths are only for messages.
pub(super) fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        cut(key)
    } else {
        format!("{parent}.{}", cut(key))
    }
}

/// A mapping being read: hands out values by key and remembers which keys
/// were used, so the rest can be reported.
#[derive(Debug)]
pub(super) struct Fields<'n> {
    path: String,
    pub(super) pos: Pos,
    entries: &'n [Entry],
    used: Vec<bool>,
}

impl<'n> Fields<'n> {
    pub(super) fn of(reader: &Reader<'_>, node: &'n Node, path: &str) -> Result<Fields<'n>> {
        let entries = mapping(reader, node, path)?;
        Ok(Fields {
            path: path.to_owned(),
            pos: node.pos,
            entries,
            used: vec![false; entries.len()],
        })
    }

    pub(super) fn path_of(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// The value of `key`, present even when null.
    fn entry(&mut self, key: &str) -> Option<&'n Node> {
        let index = self.entries.iter().position(|entry| entry.key == key)?;
        self.used[index] = true;
        Some(&self.entries[index].value)
    }

    /// The value of an optional key; absent and null are the same.
    pub(super) fn get(&mut self, key: &str) -> Option<&'n Node> {
        self.entry(key)
            .filter(|node| !matches!(node.value, Value::Null))
    }

    /// The value of a required key; when it is absent the error points at
    /// this mapping.
    pub(super) fn require(&mut self, reader: &Reader<'_>, key: &str) -> Result<&'n Node> {
        self.entry(key)
            .ok_or_else(|| reader.invalid(self.pos, &self.path_of(key), "required key is missing"))
    }

    /// Reports every key not read.
    pub(super) fn finish(self, reader: &mut Reader<'_>) {
        self.finish_with(reader, "unknown key, ignored");
    }

    pub(super) fn finish_with(self, reader: &mut Reader<'_>, message: &str) {
        for (entry, used) in self.entries.iter().zip(self.used) {
            if !used {
                reader.warn(entry.key_pos, &join(&self.path, &entry.key), message);
            }
        }
    }
}
