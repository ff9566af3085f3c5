//! How to read a file whose layout is not recognised, or to read a
//! recognised one differently: [`ImportOptions`] and the parsers of its
//! parts, which are also the values of `trdr data import`'s mapping flags.

use std::fmt;
use std::str::FromStr;

use chrono::format::{Item, StrftimeItems};

use super::time::{Cursor, parse_zone};

/// Options of [`read_import_file`](super::read_import_file); the default
/// recognises the layout from the header and the first rows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportOptions {
    /// The column holding the time, or a date column and a time column
    /// whose texts are joined with a space.
    pub timestamp: Option<TimestampColumns>,
    /// Price and volume columns, overriding or completing those found by name.
    pub columns: ColumnMap,
    /// How the time is written.
    pub time_format: TimeFormat,
    /// The zone of times that carry none in their text.
    pub timezone: Timezone,
    /// Use the adjusted close (`Adj Close`) as the close and scale open,
    /// high and low by the same factor.
    pub adjusted: bool,
}

impl ImportOptions {
    /// Whether any column is named by the options.
    pub(super) fn maps_columns(&self) -> bool {
        self.timestamp.is_some() || self.columns != ColumnMap::default()
    }
}

/// Why a mapping flag's value cannot be used; names the text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?}: {reason}")]
pub struct InvalidImportOption {
    text: String,
    reason: String,
}

impl InvalidImportOption {
    fn new(text: &str, reason: impl Into<String>) -> Self {
        Self {
            text: text.to_owned(),
            reason: reason.into(),
        }
    }
}

/// A column given by its header name (matched as header names are: any
/// case, spaces, `_`, `-` and `.` alike, `<...>` dropped) or, when no
/// header name matches, by its 1-based position (`3`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnRef(String);

impl ColumnRef {
    /// The reference as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 0-based index of a position reference.
    pub(super) fn position(&self) -> Option<usize> {
        self.0.parse::<usize>().ok().and_then(|n| n.checked_sub(1))
    }
}

impl FromStr for ColumnRef {
    type Err = InvalidImportOption;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let name = text.trim();
        if name.is_empty() {
            return Err(InvalidImportOption::new(
                text,
                "a column name or position is empty",
            ));
        }
        if name == "0" {
            return Err(InvalidImportOption::new(text, "positions count from 1"));
        }
        Ok(Self(name.to_owned()))
    }
}

impl fmt::Display for ColumnRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `NAME` or `DATE,TIME`: the time column, or a date and a time column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimestampColumns {
    Single(ColumnRef),
    DateAndTime { date: ColumnRef, time: ColumnRef },
}

impl FromStr for TimestampColumns {
    type Err = InvalidImportOption;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = text.split(',').collect();
        match parts.as_slice() {
            [single] => Ok(Self::Single(single.parse()?)),
            [date, time] => Ok(Self::DateAndTime {
                date: date.parse()?,
                time: time.parse()?,
            }),
            _ => Err(InvalidImportOption::new(
                text,
                "give one column, or a date and a time column as DATE,TIME",
            )),
        }
    }
}

/// `open=NAME,high=NAME,low=NAME,close=NAME,volume=NAME,adj_close=NAME`,
/// any subset: the columns of the bar's values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ColumnMap {
    pub open: Option<ColumnRef>,
    pub high: Option<ColumnRef>,
    pub low: Option<ColumnRef>,
    pub close: Option<ColumnRef>,
    pub volume: Option<ColumnRef>,
    /// The adjusted close, read with [`ImportOptions::adjusted`].
    pub adj_close: Option<ColumnRef>,
}

impl FromStr for ColumnMap {
    type Err = InvalidImportOption;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut map = Self::default();
        for entry in text.split(',') {
            let Some((key, value)) = entry.split_once('=') else {
                return Err(InvalidImportOption::new(
                    text,
                    format!("{:?} is not FIELD=COLUMN (e.g. close=Last)", entry.trim()),
                ));
            };
            let slot = match key.trim().to_ascii_lowercase().as_str() {
                "open" | "o" => &mut map.open,
                "high" | "h" => &mut map.high,
                "low" | "l" => &mut map.low,
                "close" | "c" => &mut map.close,
                "volume" | "vol" | "v" => &mut map.volume,
                "adj_close" | "adj close" | "adjclose" => &mut map.adj_close,
                other => {
                    return Err(InvalidImportOption::new(
                        text,
                        format!(
                            "unknown field {other:?}; fields are open, high, low, close, volume \
                             and adj_close"
                        ),
                    ));
                }
            };
            if slot.is_some() {
                return Err(InvalidImportOption::new(
                    text,
                    format!("{:?} is given twice", key.trim()),
                ));
            }
            *slot = Some(value.parse()?);
        }
        Ok(map)
    }
}

/// The unit of an epoch timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpochUnit {
    Seconds,
    Milliseconds,
    Microseconds,
    Nanoseconds,
}

impl EpochUnit {
    /// The unit's name in `--time-format` (`epoch-ms`...).
    pub fn name(self) -> &'static str {
        match self {
            EpochUnit::Seconds => "epoch-s",
            EpochUnit::Milliseconds => "epoch-ms",
            EpochUnit::Microseconds => "epoch-us",
            EpochUnit::Nanoseconds => "epoch-ns",
        }
    }
}

/// How times are written: `auto` (the forms the module documentation
/// lists), an epoch in a given unit (`epoch-s`, `epoch-ms`, `epoch-us`,
/// `epoch-ns`; negative and short values allowed), or a chrono `strftime`
/// pattern such as `%d/%m/%Y %H:%M` (with `%z` the text carries its zone).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum TimeFormat {
    #[default]
    Auto,
    Epoch(EpochUnit),
    Pattern(String),
}

impl FromStr for TimeFormat {
    type Err = InvalidImportOption;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let unit = match text.trim().to_ascii_lowercase().as_str() {
            "auto" => return Ok(Self::Auto),
            "epoch-s" | "epoch" | "unix" | "s" => EpochUnit::Seconds,
            "epoch-ms" | "ms" => EpochUnit::Milliseconds,
            "epoch-us" | "us" => EpochUnit::Microseconds,
            "epoch-ns" | "ns" => EpochUnit::Nanoseconds,
            _ => {
                if !text.contains('%') {
                    return Err(InvalidImportOption::new(
                        text,
                        "not a time format: use auto, epoch-s, epoch-ms, epoch-us, epoch-ns or \
                         a strftime pattern such as %d/%m/%Y %H:%M",
                    ));
                }
                if StrftimeItems::new(text).any(|item| matches!(item, Item::Error)) {
                    return Err(InvalidImportOption::new(
                        text,
                        "the pattern has an unknown % directive",
                    ));
                }
                return Ok(Self::Pattern(text.to_owned()));
            }
        };
        Ok(Self::Epoch(unit))
    }
}

/// A fixed offset from UTC: `UTC`, `Z`, `+02:00`, `-0500`, `+3`, `GMT+2`.
/// It applies to times written without a zone; a date alone stays that
/// calendar date (midnight UTC), as daily bars are labelled by their date.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timezone {
    seconds_east: i32,
}

impl Timezone {
    /// Seconds east of UTC.
    pub fn seconds_east(self) -> i32 {
        self.seconds_east
    }
}

impl FromStr for Timezone {
    type Err = InvalidImportOption;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut cursor = Cursor {
            bytes: text.trim().as_bytes(),
            pos: 0,
        };
        match parse_zone(&mut cursor) {
            Some(zone) if cursor.done() && !text.trim().is_empty() => Ok(Self {
                seconds_east: i32::try_from(zone.unwrap_or(0)).unwrap_or(0),
            }),
            _ => Err(InvalidImportOption::new(
                text,
                "not a UTC offset: use UTC, +02:00, -0500, +3 or GMT+2 (a fixed offset; zones \
                 that change with daylight saving time are not supported)",
            )),
        }
    }
}

impl fmt::Display for Timezone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.seconds_east < 0 { '-' } else { '+' };
        let minutes = self.seconds_east.unsigned_abs() / 60;
        write!(f, "{sign}{:02}:{:02}", minutes / 60, minutes % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err<T: FromStr<Err = InvalidImportOption> + fmt::Debug>(text: &str) -> String {
        text.parse::<T>().unwrap_err().to_string()
    }

    #[test]
    fn column_maps_take_any_subset_in_any_order() {
        let map: ColumnMap = "close=Last, open=2,VOLUME=Vol".parse().unwrap();
        assert_eq!(map.close.as_ref().map(ColumnRef::as_str), Some("Last"));
        assert_eq!(map.open.as_ref().and_then(ColumnRef::position), Some(1));
        assert_eq!(map.volume.as_ref().map(ColumnRef::as_str), Some("Vol"));
        assert_eq!((map.high, map.low, map.adj_close), (None, None, None));
        assert_eq!(
            err::<ColumnMap>("close=Last,close=4"),
            r#""close=Last,close=4": "close" is given twice"#
        );
        assert_eq!(
            err::<ColumnMap>("price=3"),
            r#""price=3": unknown field "price"; fields are open, high, low, close, volume and adj_close"#
        );
        assert_eq!(
            err::<ColumnMap>("close"),
            r#""close": "close" is not FIELD=COLUMN (e.g. close=Last)"#
        );
        assert_eq!(
            err::<ColumnMap>("close= "),
            r#"" ": a column name or position is empty"#
        );
        assert_eq!(err::<ColumnMap>("open=0"), r#""0": positions count from 1"#);
    }

    #[test]
    fn timestamp_columns_are_one_or_a_date_and_a_time() {
        assert_eq!(
            "Date".parse::<TimestampColumns>().unwrap(),
            TimestampColumns::Single(ColumnRef("Date".into()))
        );
        assert_eq!(
            "1, 2".parse::<TimestampColumns>().unwrap(),
            TimestampColumns::DateAndTime {
                date: ColumnRef("1".into()),
                time: ColumnRef("2".into())
            }
        );
        assert_eq!(
            err::<TimestampColumns>("a,b,c"),
            r#""a,b,c": give one column, or a date and a time column as DATE,TIME"#
        );
    }

    #[test]
    fn time_formats() {
        assert_eq!("auto".parse::<TimeFormat>().unwrap(), TimeFormat::Auto);
        assert_eq!(
            "EPOCH-MS".parse::<TimeFormat>().unwrap(),
            TimeFormat::Epoch(EpochUnit::Milliseconds)
        );
        assert_eq!(
            "%d/%m/%Y %H:%M".parse::<TimeFormat>().unwrap(),
            TimeFormat::Pattern("%d/%m/%Y %H:%M".into())
        );
        assert_eq!(
            err::<TimeFormat>("%Q"),
            r#""%Q": the pattern has an unknown % directive"#
        );
        assert!(err::<TimeFormat>("dd/mm/yyyy").contains("not a time format"));
    }

    #[test]
    fn timezones_are_fixed_offsets() {
        let offset = |text: &str| text.parse::<Timezone>().unwrap().to_string();
        assert_eq!(offset("UTC"), "+00:00");
        assert_eq!(offset("+02:00"), "+02:00");
        assert_eq!(offset("-0530"), "-05:30");
        assert_eq!(offset("GMT+3"), "+03:00");
        assert_eq!(offset(" utc-1 "), "-01:00");
        assert_eq!("+01:00".parse::<Timezone>().unwrap().seconds_east(), 3600);
        for bad in ["", "Europe/Berlin", "+24:00", "+02:00x", "EST"] {
            assert!(err::<Timezone>(bad).contains("not a UTC offset"), "{bad:?}");
        }
    }
}
