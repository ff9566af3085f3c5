//! A header line: its columns as written and as matched, and the
//! names each column goes by.

use super::fields::{display_name, normalize_name, sniff_separator, split_fields};
use super::options::ColumnRef;

/// A column: where it is and how the file spells it (for messages).
#[derive(Debug, Clone)]
pub(super) struct Column {
    pub(super) index: usize,
    pub(super) name: String,
}

impl Column {
    pub(super) fn at(index: usize, shown: &[String]) -> Self {
        let name = match shown.get(index).map(String::as_str) {
            Some("") | None => format!("#{} (no name)", index + 1),
            Some(name) => name.to_owned(),
        };
        Self { index, name }
    }
}

#[derive(Debug, Clone)]
pub(super) enum TimeColumns {
    Single(Column),
    DateAndTime { date: Column, time: Column },
}

impl TimeColumns {
    pub(super) fn indices(&self) -> [usize; 2] {
        match self {
            TimeColumns::Single(col) => [col.index, col.index],
            TimeColumns::DateAndTime { date, time } => [date.index, time.index],
        }
    }
}

/// How to read the rows of one file, decided from its header (or, for a
/// file without one, from its first row).
#[derive(Debug)]
pub(super) struct HeaderError {
    pub(super) recognized: usize,
    pub(super) message: String,
}

/// A layout error: the line at fault (the first line when `None`) and the
/// message.
pub(super) type LayoutError = (Option<usize>, String);

const STAMP_NAMES: &[&str] = &[
    "timestamp",
    "time_stamp",
    "datetime",
    "date_time",
    "open_time",
    "gmt_time",
    "utc_time",
    "time_utc",
    "time_gmt",
    "timestamp_utc",
    "local_time",
];
const EPOCH_NAMES: &[&str] = &["unix", "unix_time", "unix_timestamp", "epoch"];
pub(super) const ADJ_CLOSE_NAMES: &[&str] =
    &["adj_close", "adjusted_close", "adj_close_price", "adjclose"];
/// The number of required columns: a timestamp and four prices.
pub(super) const REQUIRED: usize = 5;

/// A header line split into the names as written and their normalised keys.
#[derive(Debug)]
pub(super) struct Header {
    pub(super) separator: u8,
    pub(super) shown: Vec<String>,
    pub(super) keys: Vec<String>,
}

impl Header {
    pub(super) fn new(line: &str) -> Self {
        let separator = sniff_separator(line);
        let mut raw = Vec::new();
        split_fields(line, separator, &mut raw);
        let shown: Vec<String> = raw.iter().map(|field| display_name(field)).collect();
        let keys = shown.iter().map(|name| normalize_name(name)).collect();
        Self {
            separator,
            shown,
            keys,
        }
    }

    pub(super) fn listing(&self) -> String {
        format!("header is: {}", self.shown.join(", "))
    }

    /// The column of the first alias present; a name given twice is an
    /// error, as either column could be the one meant.
    pub(super) fn find(&self, aliases: &[&str]) -> Result<Option<Column>, HeaderError> {
        for alias in aliases {
            let mut hits = self.keys.iter().enumerate().filter(|(_, key)| key == alias);
            if let Some((index, _)) = hits.next() {
                if hits.next().is_some() {
                    return Err(HeaderError {
                        recognized: REQUIRED,
                        message: format!(
                            "column {:?} appears more than once in the header",
                            self.shown[index]
                        ),
                    });
                }
                return Ok(Some(Column::at(index, &self.shown)));
            }
        }
        Ok(None)
    }

    /// A column named by a mapping flag: a header name, else a position.
    pub(super) fn resolve(&self, column: &ColumnRef, has_header: bool) -> Result<Column, String> {
        if has_header {
            let key = normalize_name(column.as_str());
            let hits: Vec<usize> = (0..self.keys.len())
                .filter(|&index| self.keys[index] == key)
                .collect();
            match hits.as_slice() {
                [index] => return Ok(Column::at(*index, &self.shown)),
                [_, _, ..] => {
                    return Err(format!(
                        "column {:?} appears more than once in the header; give its position",
                        column.as_str()
                    ));
                }
                [] => {}
            }
        }
        match column.position() {
            Some(index) if index < self.shown.len() => Ok(if has_header {
                Column::at(index, &self.shown)
            } else {
                Column {
                    index,
                    name: format!("#{}", index + 1),
                }
            }),
            Some(_) => Err(format!(
                "column position {} is beyond the {} columns of the file",
                column.as_str(),
                self.shown.len()
            )),
            None if has_header => Err(format!(
                "no column {:?}; {}",
                column.as_str(),
                self.listing()
            )),
            None => Err(format!(
                "no column {:?}: the file has no header, so columns are given by position (1, 2, ...)",
                column.as_str()
            )),
        }
    }

    /// The time column(s) found by name.
    pub(super) fn time_columns(&self) -> Result<Option<TimeColumns>, HeaderError> {
        Ok(match self.find(STAMP_NAMES)? {
            Some(col) => Some(TimeColumns::Single(col)),
            None => match (self.find(&["date"])?, self.find(&["time"])?) {
                (Some(date), Some(time)) => Some(TimeColumns::DateAndTime { date, time }),
                (Some(col), None) | (None, Some(col)) => Some(TimeColumns::Single(col)),
                (None, None) => self.find(EPOCH_NAMES)?.map(TimeColumns::Single),
            },
        })
    }

    /// The volume column: `volume`, `vol` or `v`, else the only column whose
    /// name starts with `volume`.
    pub(super) fn volume(&self) -> Result<Option<Column>, HeaderError> {
        if let Some(col) = self.find(&["volume", "vol", "v"])? {
            return Ok(Some(col));
        }
        let candidates: Vec<usize> = (0..self.keys.len())
            .filter(|&index| self.keys[index].starts_with("volume_"))
            .collect();
        match candidates.as_slice() {
            [] => Ok(None),
            [index] => Ok(Some(Column::at(*index, &self.shown))),
            _ => {
                let names: Vec<&str> = candidates
                    .iter()
                    .map(|&index| self.shown[index].as_str())
                    .collect();
                Err(HeaderError {
                    recognized: REQUIRED,
                    message: format!(
                        "several volume columns ({}) and none named \"volume\"; rename the one to import to \"volume\"",
                        names.join(", ")
                    ),
                })
            }
        }
    }
}
