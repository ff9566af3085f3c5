//! Typed values: a node read as a mapping, list, text, boolean, integer,
//! number or one of a set of names, with the message that says what was
//! expected where.

use std::fmt::Display;
use std::str::FromStr;

use super::Result;
use super::reader::Reader;
use super::yaml::{Entry, Node, Value, excerpt};

pub(super) fn mapping<'n>(reader: &Reader<'_>, node: &'n Node, path: &str) -> Result<&'n [Entry]> {
    match &node.value {
        Value::Map(entries) => Ok(entries),
        _ => Err(reader.expected(node, path, "a mapping")),
    }
}

pub(super) fn list<'n>(reader: &Reader<'_>, node: &'n Node, path: &str) -> Result<&'n [Node]> {
    match &node.value {
        Value::Seq(items) => Ok(items),
        _ => Err(reader.expected(node, path, "a list")),
    }
}

pub(super) fn non_empty_list<'n>(
    reader: &Reader<'_>,
    node: &'n Node,
    path: &str,
    what: &str,
) -> Result<&'n [Node]> {
    let items = list(reader, node, path)?;
    if items.is_empty() {
        return Err(reader.expected(node, path, &format!("a non-empty list of {what}")));
    }
    Ok(items)
}

/// A string; numbers are taken as written (`symbol: 7203`).
pub(super) fn text(reader: &Reader<'_>, node: &Node, path: &str) -> Result<String> {
    match &node.value {
        Value::Str(text) | Value::Int(_, text) | Value::Float(_, text) => Ok(text.clone()),
        _ => Err(reader.expected(node, path, "a string")),
    }
}

pub(super) fn non_empty_text(reader: &Reader<'_>, node: &Node, path: &str) -> Result<String> {
    let value = text(reader, node, path)?;
    if value.trim().is_empty() {
        return Err(reader.expected(node, path, "a non-empty string"));
    }
    Ok(value)
}

pub(super) fn boolean(reader: &Reader<'_>, node: &Node, path: &str) -> Result<bool> {
    match node.value {
        Value::Bool(value, _) => Ok(value),
        _ => Err(reader.expected(node, path, "true or false")),
    }
}

/// An integer of at least `min`.
pub(super) fn integer(reader: &Reader<'_>, node: &Node, path: &str, min: u64) -> Result<u64> {
    let expected = if min == 1 {
        "a positive integer".to_owned()
    } else {
        format!("an integer >= {min}")
    };
    match node.value {
        Value::Int(value, _) => u64::try_from(value)
            .ok()
            .filter(|value| *value >= min)
            .ok_or_else(|| reader.expected(node, path, &expected)),
        _ => Err(reader.expected(node, path, &expected)),
    }
}

pub(super) fn count(reader: &Reader<'_>, node: &Node, path: &str, min: u64) -> Result<usize> {
    let value = integer(reader, node, path, min)?;
    usize::try_from(value).map_err(|_| reader.invalid(node.pos, path, "integer is too large"))
}

/// A finite number (integers included) that passes `check`, described by
/// `expected` when it does not.
pub(super) fn number(
    reader: &Reader<'_>,
    node: &Node,
    path: &str,
    expected: &str,
    check: impl Fn(f64) -> bool,
) -> Result<f64> {
    let value = match node.value {
        // Integers in files are small; the conversion is exact for them.
        Value::Int(value, _) => value as f64,
        Value::Float(value, _) => value,
        _ => return Err(reader.expected(node, path, expected)),
    };
    if value.is_finite() && check(value) {
        Ok(value)
    } else {
        Err(reader.expected(node, path, expected))
    }
}

/// One of a few names, in any case; `what` names the thing in the message.
pub(super) fn choice<T: Copy>(
    reader: &Reader<'_>,
    node: &Node,
    path: &str,
    what: &str,
    options: &[(&str, T)],
) -> Result<T> {
    let written = text(reader, node, path)?;
    let wanted = written.trim().to_ascii_lowercase();
    options
        .iter()
        .find(|(name, _)| *name == wanted)
        .map(|(_, value)| *value)
        .ok_or_else(|| {
            let names: Vec<&str> = options.iter().map(|(name, _)| *name).collect();
            reader.invalid(
                node.pos,
                path,
                format!(
                    "unknown {what} {}; expected one of {}",
                    excerpt(&written),
                    names.join(", ")
                ),
            )
        })
}

/// A value parsed by its type's `FromStr`, whose error becomes the message.
pub(super) fn parsed<T>(reader: &Reader<'_>, node: &Node, path: &str) -> Result<T>
where
    T: FromStr,
    T::Err: Display,
{
    let written = text(reader, node, path)?;
    written.parse().map_err(|error: T::Err| {
        // Those errors quote the whole value (`{:?}`); this one quotes an excerpt.
        let message = error
            .to_string()
            .replace(&format!("{written:?}"), &excerpt(&written));
        reader.invalid(node.pos, path, message)
    })
}

/// Shows a number briefly: `0.7`, `1.1`, `35`.
pub(super) fn show(value: f64) -> String {
    let text = format!("{value:.6}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

pub(super) fn show_all(values: &[f64]) -> String {
    let shown: Vec<String> = values.iter().map(|value| show(*value)).collect();
    format!("[{}]", shown.join(", "))
}
