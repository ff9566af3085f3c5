//! Splitting a CSV line into fields (separator, quotes), header names,
//! and numbers.

use std::borrow::Cow;

pub(super) fn sniff_separator(line: &str) -> u8 {
    let mut counts = [0usize; 3];
    let mut quoted = false;
    for b in line.bytes() {
        match b {
            b'"' => quoted = !quoted,
            b',' if !quoted => counts[0] += 1,
            b';' if !quoted => counts[1] += 1,
            b'\t' if !quoted => counts[2] += 1,
            _ => {}
        }
    }
    let mut best = (b',', counts[0]);
    for (sep, count) in [(b';', counts[1]), (b'\t', counts[2])] {
        if count > best.1 {
            best = (sep, count);
        }
    }
    best.0
}

/// Splits one line into trimmed fields, unquoting `"..."` fields. Borrows
/// unless a field holds an escaped quote.
pub(super) fn split_fields<'a>(line: &'a str, separator: u8, out: &mut Vec<Cow<'a, str>>) {
    out.clear();
    let bytes = line.as_bytes();
    let next_separator = |from: usize| {
        bytes
            .get(from..)
            .and_then(|rest| rest.iter().position(|&b| b == separator))
            .map(|p| from + p)
    };
    let mut pos = 0;
    loop {
        while bytes
            .get(pos)
            .is_some_and(|&b| b == b' ' || (b == b'\t' && separator != b'\t'))
        {
            pos += 1;
        }
        if bytes.get(pos) == Some(&b'"') {
            let (field, after) = read_quoted(line, pos + 1);
            out.push(field);
            match next_separator(after) {
                Some(sep) => pos = sep + 1,
                None => break,
            }
        } else {
            let end = next_separator(pos);
            let text = line.get(pos..end.unwrap_or(line.len())).unwrap_or_default();
            out.push(Cow::Borrowed(text.trim()));
            match end {
                Some(sep) => pos = sep + 1,
                None => break,
            }
        }
    }
}

/// Reads a quoted field whose text starts at `start` (just after the opening
/// quote); returns it trimmed and the position just after the closing quote.
/// An unterminated quote runs to the end of the line.
fn read_quoted(line: &str, start: usize) -> (Cow<'_, str>, usize) {
    let bytes = line.as_bytes();
    let mut owned: Option<String> = None;
    let mut segment = start;
    let mut pos = start;
    loop {
        let Some(quote) = bytes
            .get(pos..)
            .and_then(|rest| rest.iter().position(|&b| b == b'"'))
        else {
            let tail = line.get(segment..).unwrap_or_default();
            return (finish_quoted(owned, tail), line.len());
        };
        let quote = pos + quote;
        if bytes.get(quote + 1) == Some(&b'"') {
            let piece = line.get(segment..=quote).unwrap_or_default();
            owned.get_or_insert_with(String::new).push_str(piece);
            pos = quote + 2;
            segment = pos;
        } else {
            let tail = line.get(segment..quote).unwrap_or_default();
            return (finish_quoted(owned, tail), quote + 1);
        }
    }
}

fn finish_quoted<'a>(owned: Option<String>, tail: &'a str) -> Cow<'a, str> {
    match owned {
        None => Cow::Borrowed(tail.trim()),
        Some(mut text) => {
            text.push_str(tail);
            Cow::Owned(text.trim().to_owned())
        }
    }
}

/// A header name as the file spells it, for messages.
pub(super) fn display_name(field: &str) -> String {
    let trimmed = field.trim();
    let unquoted = trimmed
        .strip_prefix('\'')
        .and_then(|t| t.strip_suffix('\''))
        .unwrap_or(trimmed);
    unquoted.trim().to_owned()
}

/// Lower case, brackets and quotes dropped, every run of other punctuation or
/// spaces turned into one `_`: `"<Adj. Close>"` becomes `adj_close`.
pub(super) fn normalize_name(name: &str) -> String {
    let mut key = String::with_capacity(name.len());
    let mut gap = false;
    for ch in name.chars() {
        if ch.is_alphanumeric() {
            if gap && !key.is_empty() {
                key.push('_');
            }
            gap = false;
            key.extend(ch.to_lowercase());
        } else if !matches!(ch, '<' | '>' | '"' | '\'') {
            gap = true;
        }
    }
    key
}

pub(super) fn parse_number(text: &str, column: &str, decimal_comma: bool) -> Result<f64, String> {
    if text.is_empty() {
        return Err(format!("empty value in column {column:?}"));
    }
    let normalized = if decimal_comma && !text.contains('.') && text.matches(',').count() == 1 {
        Cow::Owned(text.replace(',', "."))
    } else {
        Cow::Borrowed(text)
    };
    match normalized.parse::<f64>() {
        Ok(value) if value.is_finite() => Ok(value),
        Ok(_) => Err(format!(
            "{text:?} in column {column:?} is not a finite number"
        )),
        Err(_) => Err(format!("cannot read number {text:?} in column {column:?}")),
    }
}
