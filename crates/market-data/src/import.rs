//! Reading OHLCV CSV files in the shapes people export (pandas, yfinance,
//! MetaTrader, Binance, TradingView, Stooq, Yahoo, Dukascopy,
//! CryptoDataDownload, our own store files) into bars, and merging imported
//! bars into an existing series.
//!
//! What [`read_import_file`] recognises, from the header and the first rows:
//!
//! - **A header** naming the columns (below), on the first line, or on the
//!   second after a preamble line. pandas' `to_csv()` writes the time index
//!   first: unnamed, its header cell is empty (`,Open,High,...`) and that
//!   column is the time; yfinance's frames add a `Ticker,...` row and a
//!   `Date,,,,` row naming the index under a `Price,...` header, and those
//!   rows are skipped.
//! - **No header**, recognised from the first row: Binance klines (12
//!   columns, open time and close time as epochs; open, high, low, close
//!   and the base volume in columns 2-6) and MetaTrader 4 history (`date,
//!   time, open, high, low, close, volume`, e.g. `2024.01.02,00:00,...`).
//! - Anything else is [`DataError::UnknownLayout`], naming what was found.
//!   [`ImportOptions`] then give the columns (by header name or 1-based
//!   position), the time format and a fixed UTC offset; columns they leave
//!   out are still found by name.
//!
//! - **Separator**: `,`, `;` or tab, whichever occurs most often in the header
//!   line (outside quotes; `,` on a tie). Fields may be quoted (`"..."`, with
//!   `""` for a quote inside) and padded with spaces. When the separator is not
//!   `,`, a number such as `1,0523` with one comma and no dot is read with a
//!   decimal comma, as European spreadsheets write it.
//! - **Header**: names are matched in any case, ignoring surrounding spaces,
//!   quotes and `<...>` brackets; spaces, `-`, `.` and `_` inside a name are
//!   all the same (`Adj Close` = `adj_close`, `Gmt time` = `gmt_time`). A first
//!   line that is not a usable header (such as CryptoDataDownload's
//!   `Timestamps are UTC timezone,https://www.CryptoDataDownload.com`) is
//!   skipped when the line after it is one. Blank lines are skipped anywhere.
//! - **Timestamp column**, the first found of: a full timestamp column
//!   (`timestamp`, `datetime`, `date_time`, `open_time`, `gmt_time`,
//!   `utc_time`, `local_time`, ...); `date` and `time` together, joined with a
//!   space; `date` alone; `time` alone; `unix`/`epoch`.
//! - **Timestamp text**: a date as `YYYY-MM-DD`, `YYYY/MM/DD`, `YYYY.MM.DD`,
//!   `YYYYMMDD`, `DD.MM.YYYY` (Dukascopy) or `M/D/YYYY` (US, Yahoo); then
//!   optionally `T` or spaces and a time `H:MM`, `H:MM:SS`, `H:MM:SS.fff`
//!   or `HHMM[SS]`, with an optional `AM`/`PM` (also CryptoDataDownload's
//!   `09-AM`); then optionally a zone `Z`, `UTC`, `GMT`, `+02:00`, `+0200`,
//!   `GMT+0200`. Without a zone the time is UTC (or the offset of
//!   [`ImportOptions::timezone`]); a date alone is midnight UTC.
//! - **Epoch timestamps**: an integer of 9 or more digits, unit chosen by
//!   magnitude: below 10^11 seconds, below 10^14 milliseconds, below 10^17
//!   microseconds, else nanoseconds. Every unit thus covers 1973-03-03 to
//!   year 5138, so the ranges cannot be confused. An 8-digit integer is a
//!   `YYYYMMDD` date instead; shorter integers and negative epochs are refused.
//! - **Prices**: `open`, `high`, `low`, `close` (or `o`, `h`, `l`, `c`),
//!   any finite decimal including exponents (`1.00532E+11`). The close is
//!   `close`; `Adj Close` (`adjusted_close`) is used only with
//!   [`ImportOptions::adjusted`], as the close, with open, high and low
//!   multiplied by `Adj Close / Close` of the row. Every other column
//!   (symbol, ticker, trade count, MetaTrader's `<TICKVOL>`...) is ignored.
//! - **Volume**: the `volume` column if there is one (so for
//!   CryptoDataDownload's `volume_btc,volume` it is the quote-currency
//!   `volume`), else `vol` or `v`, else the only column whose name starts with
//!   `volume` (`Volume BTC`); several such columns and no plain `volume` is an
//!   error, because guessing the unit would be silent. Without any volume
//!   column every bar gets volume 0, as forex and index files often have none.
//!
//! Rows may come in any order (newest first is common); the bars come back
//! sorted oldest first. A row repeating a timestamp with identical values is
//! dropped; with different values it is an error. Prices are not checked
//! against each other here (`high >= low`...): that is validation's job.
//!
//! Every error names the file and 1-based line, with the column and text at
//! fault. No input makes these functions panic.

mod options;

use std::borrow::Cow;
use std::cmp::Ordering;
use std::path::Path;

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, SecondsFormat, TimeDelta, Utc};
use serde::Serialize;

pub use self::options::{
    ColumnMap, ColumnRef, EpochUnit, ImportOptions, InvalidImportOption, TimeFormat,
    TimestampColumns, Timezone,
};
use crate::{Bar, DataError};

/// What [`read_import_file`] read.
#[derive(Debug, Clone, PartialEq)]
pub struct Imported {
    /// Sorted oldest first, timestamps unique.
    pub bars: Vec<Bar>,
    /// What the file was taken for and which column gave what, e.g. `header;
    /// time Date (recognised, UTC unless the text gives a zone), open Open,
    /// high High, low Low, close Close (Adj Close not used; --adjusted uses
    /// it), volume Volume`.
    pub columns: String,
}

/// Reads a CSV file of OHLCV rows in any of the shapes described in this
/// module's documentation, or as `options` map it, returning its bars sorted
/// oldest first with unique timestamps.
pub fn read_import_file(path: &Path, options: &ImportOptions) -> Result<Imported, DataError> {
    let bytes = std::fs::read(path).map_err(|source| DataError::io(path, source))?;
    parse_import(path, &bytes, options)
}

/// The importer on bytes, for the fuzz harness.
#[cfg(any(test, fuzzing))]
pub(crate) fn parse_import_bytes(
    bytes: &[u8],
    options: &ImportOptions,
) -> Result<Imported, DataError> {
    parse_import(Path::new("fuzz.csv"), bytes, options)
}

/// What [`merge_bars`] did: `added + replaced + unchanged` is the number of
/// incoming bars, `total` the number of bars in the merged series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MergeStats {
    /// Incoming bars at timestamps the existing series did not have.
    pub added: usize,
    /// Incoming bars that replaced an existing bar with different values.
    pub replaced: usize,
    /// Incoming bars identical to the existing bar at their timestamp.
    pub unchanged: usize,
    /// Bars in the merged series.
    pub total: usize,
}

/// Merges two series sorted oldest first with unique timestamps (as
/// [`read_import_file`] and the store return them) into one; where both have a
/// bar at the same timestamp, the incoming one wins. Runs in O(n + m).
pub fn merge_bars(existing: Vec<Bar>, incoming: Vec<Bar>) -> (Vec<Bar>, MergeStats) {
    let mut merged = Vec::with_capacity(existing.len() + incoming.len());
    let mut stats = MergeStats {
        added: 0,
        replaced: 0,
        unchanged: 0,
        total: 0,
    };
    let mut old = existing.into_iter().peekable();
    let mut new = incoming.into_iter().peekable();
    loop {
        let order = match (old.peek(), new.peek()) {
            (Some(o), Some(n)) => o.timestamp.cmp(&n.timestamp),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => break,
        };
        match order {
            Ordering::Less => merged.extend(old.next()),
            Ordering::Greater => {
                stats.added += 1;
                merged.extend(new.next());
            }
            Ordering::Equal => {
                let (o, n) = (old.next(), new.next());
                if o == n {
                    stats.unchanged += 1;
                } else {
                    stats.replaced += 1;
                }
                merged.extend(n);
            }
        }
    }
    stats.total = merged.len();
    (merged, stats)
}

fn parse_import(path: &Path, bytes: &[u8], options: &ImportOptions) -> Result<Imported, DataError> {
    let text = std::str::from_utf8(bytes).map_err(|err| {
        let valid = bytes.get(..err.valid_up_to()).unwrap_or_default();
        let line = 1 + valid.iter().filter(|&&b| b == b'\n').count();
        DataError::invalid(path, line, "the text is not UTF-8")
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .map(|(index, line)| (index + 1, line))
        .filter(|(_, line)| !line.trim().is_empty())
        .collect();
    let Some(&(first_number, _)) = lines.first() else {
        return Err(DataError::InvalidFile {
            path: path.to_owned(),
            message: "the file is empty".to_owned(),
        });
    };
    let time = TimeParser {
        format: options.time_format.clone(),
        timezone: options.timezone,
    };
    let (data_from, layout) = if options.maps_columns() {
        Layout::mapped(&lines, options, time)
    } else {
        Layout::detect(&lines, options, time)
    }
    .map_err(|(line, message)| DataError::UnknownLayout {
        path: path.to_owned(),
        line: line.unwrap_or(first_number),
        message,
    })?;

    let mut fields = Vec::new();
    let mut rows: Vec<(Bar, usize)> = Vec::new();
    for &(number, line) in lines.get(data_from..).unwrap_or_default() {
        split_fields(line, layout.separator, &mut fields);
        let bar = layout
            .parse_row(&fields)
            .map_err(|message| DataError::invalid(path, number, message))?;
        rows.push((bar, number));
    }
    if rows.is_empty() {
        let header_number = data_from
            .checked_sub(1)
            .and_then(|index| lines.get(index))
            .map_or(first_number, |(number, _)| *number);
        return Err(DataError::InvalidFile {
            path: path.to_owned(),
            message: format!("no rows after the header on line {header_number}"),
        });
    }

    // Stable: rows sharing a timestamp stay in file order.
    rows.sort_by_key(|(bar, _)| bar.timestamp);
    let mut bars: Vec<Bar> = Vec::with_capacity(rows.len());
    let mut kept_line = 0;
    for (bar, number) in rows {
        match bars.last() {
            Some(last) if last.timestamp == bar.timestamp => {
                if *last != bar {
                    let at = bar.timestamp.to_rfc3339_opts(SecondsFormat::AutoSi, true);
                    return Err(DataError::invalid(
                        path,
                        number,
                        format!(
                            "timestamp {at} appears again with different values (first on line {kept_line})"
                        ),
                    ));
                }
            }
            _ => {
                bars.push(bar);
                kept_line = number;
            }
        }
    }
    Ok(Imported {
        bars,
        columns: layout.describe(),
    })
}

/// A column: where it is and how the file spells it (for messages).
#[derive(Debug, Clone)]
struct Column {
    index: usize,
    name: String,
}

impl Column {
    fn at(index: usize, shown: &[String]) -> Self {
        let name = match shown.get(index).map(String::as_str) {
            Some("") | None => format!("#{} (no name)", index + 1),
            Some(name) => name.to_owned(),
        };
        Self { index, name }
    }
}

#[derive(Debug, Clone)]
enum TimeColumns {
    Single(Column),
    DateAndTime { date: Column, time: Column },
}

impl TimeColumns {
    fn indices(&self) -> [usize; 2] {
        match self {
            TimeColumns::Single(col) => [col.index, col.index],
            TimeColumns::DateAndTime { date, time } => [date.index, time.index],
        }
    }
}

/// How to read the rows of one file, decided from its header (or, for a
/// file without one, from its first row).
#[derive(Debug)]
struct Layout {
    separator: u8,
    decimal_comma: bool,
    /// Fields of the header, or of the first row when there is none.
    header_fields: usize,
    /// Rows need at least this many fields to hold every column we read.
    needed_fields: usize,
    /// What kind of file this was taken for, for the summary.
    shape: &'static str,
    time: TimeColumns,
    parser: TimeParser,
    open: Column,
    high: Column,
    low: Column,
    close: Column,
    volume: Option<Column>,
    /// The adjusted close: read as the close (with open, high and low scaled
    /// alike) when `adjusted`, else only named in the summary as not used.
    adj_close: Option<Column>,
    adjusted: bool,
}

/// Why a line is not a usable header; `recognized` counts the required
/// columns it did have, to tell a header with a typo from a preamble line.
#[derive(Debug)]
struct HeaderError {
    recognized: usize,
    message: String,
}

/// A layout error: the line at fault (the first line when `None`) and the
/// message.
type LayoutError = (Option<usize>, String);

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
const ADJ_CLOSE_NAMES: &[&str] = &["adj_close", "adjusted_close", "adj_close_price", "adjclose"];
/// The number of required columns: a timestamp and four prices.
const REQUIRED: usize = 5;

/// A header line split into the names as written and their normalised keys.
#[derive(Debug)]
struct Header {
    separator: u8,
    shown: Vec<String>,
    keys: Vec<String>,
}

impl Header {
    fn new(line: &str) -> Self {
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

    fn listing(&self) -> String {
        format!("header is: {}", self.shown.join(", "))
    }

    /// The column of the first alias present; a name given twice is an
    /// error, as either column could be the one meant.
    fn find(&self, aliases: &[&str]) -> Result<Option<Column>, HeaderError> {
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
    fn resolve(&self, column: &ColumnRef, has_header: bool) -> Result<Column, String> {
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
    fn time_columns(&self) -> Result<Option<TimeColumns>, HeaderError> {
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
    fn volume(&self) -> Result<Option<Column>, HeaderError> {
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

impl Layout {
    /// Recognises the layout: a header on the first line (or on the second,
    /// after a preamble line), a header whose first cell names pandas'
    /// index, or one of the exports that have no header.
    fn detect(
        lines: &[(usize, &str)],
        options: &ImportOptions,
        parser: TimeParser,
    ) -> Result<(usize, Self), LayoutError> {
        let first = lines.first().map_or("", |(_, line)| line);
        let first_err = match Self::from_header(&Header::new(first), None, options, parser.clone())
        {
            Ok(layout) => {
                let extra = layout.extra_header_lines(lines);
                return Ok((1 + extra, layout));
            }
            Err(err) => err,
        };
        if let Some(layout) = Self::headerless(first, options, parser.clone()) {
            return Ok((0, layout));
        }
        if let Some((layout, skip)) = Self::multi_row_header(lines, options, parser.clone()) {
            return Ok((skip, layout));
        }
        let Some(&(second_number, second)) = lines.get(1) else {
            return Err((None, Self::unknown(first, first_err.message)));
        };
        match Self::from_header(&Header::new(second), None, options, parser) {
            Ok(layout) => Ok((2, layout)),
            // Report the line that looked more like a header.
            Err(second_err) if second_err.recognized > first_err.recognized => {
                Err((Some(second_number), second_err.message))
            }
            Err(_) => Err((None, Self::unknown(first, first_err.message))),
        }
    }

    /// The message for a first line that is neither a header nor a row of a
    /// known export without one.
    fn unknown(first: &str, header_message: String) -> String {
        let header = Header::new(first);
        let looks_like_data = header
            .shown
            .first()
            .is_some_and(|field| parse_timestamp(field, 0).is_some());
        if looks_like_data {
            format!(
                "the first line is a row, not a header, and its {} columns match no export \
                 without a header (Binance klines: 12 columns, open time first; MetaTrader 4: \
                 date, time, open, high, low, close, volume); first line: {}",
                header.shown.len(),
                header.shown.join(", ")
            )
        } else {
            header_message
        }
    }

    fn from_header(
        header: &Header,
        index_name: Option<&str>,
        options: &ImportOptions,
        parser: TimeParser,
    ) -> Result<Self, HeaderError> {
        let mut time = header.time_columns()?;
        let mut shape = "header";
        // pandas writes a frame's index first; unnamed, its header cell is
        // empty (`,Open,High,...`).
        if time.is_none() {
            let first_blank = header.shown.first().is_some_and(String::is_empty);
            if let Some(name) = index_name {
                let mut col = Column::at(0, &header.shown);
                name.clone_into(&mut col.name);
                time = Some(TimeColumns::Single(col));
                shape = "pandas to_csv, index named in a row of its own";
            } else if first_blank {
                time = Some(TimeColumns::Single(Column::at(0, &header.shown)));
                shape = "pandas to_csv, unnamed index";
            }
        }
        let open = header.find(&["open", "o"])?;
        let high = header.find(&["high", "h"])?;
        let low = header.find(&["low", "l"])?;
        let close = header.find(&["close", "c"])?;
        let found = [
            (time.is_some(), "timestamp (or date, time, datetime)"),
            (open.is_some(), "open"),
            (high.is_some(), "high"),
            (low.is_some(), "low"),
            (close.is_some(), "close"),
        ];
        let (Some(time), Some(open), Some(high), Some(low), Some(close)) =
            (time, open, high, low, close)
        else {
            let missing: Vec<&str> = found
                .iter()
                .filter(|(ok, _)| !ok)
                .map(|(_, name)| *name)
                .collect();
            let noun = if missing.len() == 1 {
                "column"
            } else {
                "columns"
            };
            return Err(HeaderError {
                recognized: found.iter().filter(|(ok, _)| *ok).count(),
                message: format!(
                    "missing {noun} {}; {}",
                    missing.join(", "),
                    header.listing()
                ),
            });
        };
        let volume = header.volume()?;
        let adj_close = header.find(ADJ_CLOSE_NAMES)?;
        let layout = Self::new(
            header.separator,
            header.shown.len(),
            shape,
            time,
            parser,
            [open, high, low, close],
            volume,
            adj_close,
        );
        layout
            .adjusted_with(options)
            .map_err(|message| HeaderError {
                recognized: REQUIRED,
                message,
            })
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "a private constructor of plain parts"
    )]
    fn new(
        separator: u8,
        header_fields: usize,
        shape: &'static str,
        time: TimeColumns,
        parser: TimeParser,
        [open, high, low, close]: [Column; 4],
        volume: Option<Column>,
        adj_close: Option<Column>,
    ) -> Self {
        let needed_fields = time
            .indices()
            .into_iter()
            .chain([open.index, high.index, low.index, close.index])
            .chain(volume.as_ref().map(|col| col.index))
            .max()
            .unwrap_or(0)
            + 1;
        Self {
            separator,
            decimal_comma: separator != b',',
            header_fields,
            needed_fields,
            shape,
            time,
            parser,
            open,
            high,
            low,
            close,
            volume,
            adj_close,
            adjusted: false,
        }
    }

    /// Applies `--adjusted`, which needs an adjusted close column.
    fn adjusted_with(mut self, options: &ImportOptions) -> Result<Self, String> {
        if options.adjusted {
            let Some(adj) = &self.adj_close else {
                return Err(
                    "--adjusted needs an adjusted close column (Adj Close); none was found \
                     (name it with --columns adj_close=NAME)"
                        .to_owned(),
                );
            };
            self.needed_fields = self.needed_fields.max(adj.index + 1);
            self.adjusted = true;
        }
        Ok(self)
    }

    /// How many lines after a recognised header are more header: yfinance's
    /// `Ticker,...` row and the `Date,,,` row that pandas writes for a named
    /// index of a frame with several column levels.
    fn extra_header_lines(&self, lines: &[(usize, &str)]) -> usize {
        let mut extra = 0;
        let mut fields = Vec::new();
        while let Some((_, line)) = lines.get(1 + extra) {
            split_fields(line, self.separator, &mut fields);
            let rest_blank = fields.iter().skip(1).all(|field| field.is_empty());
            let first = fields.first().map_or("", |field| field.as_ref());
            let is_header = normalize_name(first) == "ticker"
                || (rest_blank && !first.is_empty() && self.parser.parse(first).is_none());
            if !is_header || extra == 2 {
                break;
            }
            extra += 1;
        }
        extra
    }

    /// yfinance's `to_csv()` of a download: `Price,Close,High,...`, then
    /// `Ticker,AAPL,...`, then `Date,,,,,` naming the index.
    fn multi_row_header(
        lines: &[(usize, &str)],
        options: &ImportOptions,
        parser: TimeParser,
    ) -> Option<(Self, usize)> {
        let header = Header::new(lines.first()?.1);
        if header.keys.first().map(String::as_str) != Some("price") {
            return None;
        }
        let mut fields = Vec::new();
        for (index, (_, line)) in lines.iter().enumerate().skip(1).take(2) {
            split_fields(line, header.separator, &mut fields);
            let first = fields.first().map_or(String::new(), |f| f.to_string());
            if normalize_name(&first) == "ticker" {
                continue;
            }
            if fields.iter().skip(1).all(|field| field.is_empty()) && !first.is_empty() {
                let layout = Self::from_header(&header, Some(&first), options, parser).ok()?;
                return Some((layout, index + 1));
            }
            return None;
        }
        None
    }

    /// The exports that have no header, recognised from their first row:
    /// Binance klines (12 columns, open time and close time as epochs) and
    /// MetaTrader 4 (`2024.01.02,00:00,open,high,low,close,volume`).
    fn headerless(first: &str, options: &ImportOptions, parser: TimeParser) -> Option<Self> {
        let separator = sniff_separator(first);
        let mut fields = Vec::new();
        split_fields(first, separator, &mut fields);
        let is_number = |index: usize| {
            fields
                .get(index)
                .is_some_and(|f| parse_number(f, "", separator != b',').is_ok())
        };
        let is_epoch = |index: usize| {
            fields
                .get(index)
                .is_some_and(|f| f.len() >= 9 && f.bytes().all(|b| b.is_ascii_digit()))
        };
        let col = |index: usize, name: &str| Column {
            index,
            name: name.to_owned(),
        };
        let prices = |at: usize| {
            [
                col(at, "open"),
                col(at + 1, "high"),
                col(at + 2, "low"),
                col(at + 3, "close"),
            ]
        };
        let layout = if fields.len() == 12 && is_epoch(0) && is_epoch(6) && (1..6).all(is_number) {
            Self::new(
                separator,
                fields.len(),
                "Binance klines (no header)",
                TimeColumns::Single(col(0, "open time")),
                parser,
                prices(1),
                Some(col(5, "volume")),
                None,
            )
        } else if fields.len() == 7
            && fields.first().is_some_and(|date| {
                let mut cursor = Cursor {
                    bytes: date.as_bytes(),
                    pos: 0,
                };
                parse_date(&mut cursor).is_some() && cursor.done()
            })
            && fields.get(1).is_some_and(|time| {
                let mut cursor = Cursor {
                    bytes: time.as_bytes(),
                    pos: 0,
                };
                parse_time(&mut cursor).is_some() && cursor.done()
            })
            && (2..7).all(is_number)
        {
            Self::new(
                separator,
                fields.len(),
                "MetaTrader 4 history (no header)",
                TimeColumns::DateAndTime {
                    date: col(0, "date"),
                    time: col(1, "time"),
                },
                parser,
                prices(2),
                Some(col(6, "volume")),
                None,
            )
        } else {
            return None;
        };
        layout.adjusted_with(options).ok()
    }

    /// The layout the mapping flags give, completed from the header by name
    /// where they leave a column out. The first line is a header unless the
    /// time column is given by position and the first line has a time there.
    fn mapped(
        lines: &[(usize, &str)],
        options: &ImportOptions,
        parser: TimeParser,
    ) -> Result<(usize, Self), LayoutError> {
        let first = lines.first().map_or("", |(_, line)| line);
        let header = Header::new(first);
        let time_field = |column: &ColumnRef| {
            column
                .position()
                .and_then(|index| header.shown.get(index))
                .is_some_and(|text| parser.parse(text).is_some())
        };
        let has_header = match &options.timestamp {
            Some(TimestampColumns::Single(column)) => !time_field(column),
            Some(TimestampColumns::DateAndTime { date, time }) => {
                let joined = |date: &ColumnRef, time: &ColumnRef| {
                    let field = |c: &ColumnRef| {
                        c.position()
                            .and_then(|index| header.shown.get(index))
                            .cloned()
                    };
                    match (field(date), field(time)) {
                        (Some(d), Some(t)) => parser.parse(&format!("{d} {t}")).is_some(),
                        _ => false,
                    }
                };
                !joined(date, time)
            }
            None => true,
        };
        let fail = |message: String| (None, message);
        let resolve = |column: &ColumnRef| header.resolve(column, has_header).map_err(fail);
        let found = |aliases: &[&str]| -> Result<Option<Column>, LayoutError> {
            if has_header {
                header.find(aliases).map_err(|err| fail(err.message))
            } else {
                Ok(None)
            }
        };
        let time = match &options.timestamp {
            Some(TimestampColumns::Single(column)) => Some(TimeColumns::Single(resolve(column)?)),
            Some(TimestampColumns::DateAndTime { date, time }) => Some(TimeColumns::DateAndTime {
                date: resolve(date)?,
                time: resolve(time)?,
            }),
            None => header.time_columns().map_err(|err| fail(err.message))?,
        };
        let pick = |given: &Option<ColumnRef>, aliases: &[&str]| match given {
            Some(column) => resolve(column).map(Some),
            None => found(aliases),
        };
        let map = &options.columns;
        let open = pick(&map.open, &["open", "o"])?;
        let high = pick(&map.high, &["high", "h"])?;
        let low = pick(&map.low, &["low", "l"])?;
        let close = pick(&map.close, &["close", "c"])?;
        let volume = match &map.volume {
            Some(column) => Some(resolve(column)?),
            None if has_header => header.volume().map_err(|err| fail(err.message))?,
            None => None,
        };
        let adj_close = pick(&map.adj_close, ADJ_CLOSE_NAMES)?;
        let (Some(time), Some(open), Some(high), Some(low), Some(close)) =
            (time, open, high, low, close)
        else {
            return Err(fail(format!(
                "the mapping leaves out {}; {}",
                "the time or a price (give --timestamp-column and all of open, high, low, \
                 close in --columns)",
                if has_header {
                    header.listing()
                } else {
                    format!(
                        "the file has no header; first line: {}",
                        header.shown.join(", ")
                    )
                }
            )));
        };
        let layout = Self::new(
            header.separator,
            header.shown.len(),
            "columns as mapped",
            time,
            parser,
            [open, high, low, close],
            volume,
            adj_close,
        )
        .adjusted_with(options)
        .map_err(fail)?;
        Ok((usize::from(has_header), layout))
    }

    /// What was read from where, e.g. `header; time from Date, close from
    /// Close (Adj Close not used; --adjusted uses it)`.
    fn describe(&self) -> String {
        let time = match &self.time {
            TimeColumns::Single(col) => col.name.clone(),
            TimeColumns::DateAndTime { date, time } => format!("{} + {}", date.name, time.name),
        };
        let close = match (&self.adj_close, self.adjusted) {
            (Some(adj), true) => format!(
                "{} (adjusted: open, high and low scaled by {} / {})",
                adj.name, adj.name, self.close.name
            ),
            (Some(adj), false) => format!(
                "{} ({} not used; --adjusted uses it)",
                self.close.name, adj.name
            ),
            (None, _) => self.close.name.clone(),
        };
        let volume = self
            .volume
            .as_ref()
            .map_or("none (0)".to_owned(), |col| col.name.clone());
        format!(
            "{}; time {time} ({}), open {}, high {}, low {}, close {close}, volume {volume}",
            self.shape,
            self.parser.describe(),
            self.open.name,
            self.high.name,
            self.low.name,
        )
    }

    fn parse_row(&self, fields: &[Cow<'_, str>]) -> Result<Bar, String> {
        if fields.len() < self.needed_fields {
            return Err(format!(
                "the row has {} fields, the header has {}",
                fields.len(),
                self.header_fields
            ));
        }
        let field = |col: &Column| fields.get(col.index).map_or("", |f| f.as_ref());
        let timestamp = match &self.time {
            TimeColumns::Single(col) => {
                let text = field(col);
                self.parser.parse(text).ok_or_else(|| {
                    format!("cannot read timestamp {text:?} in column {:?}", col.name)
                })?
            }
            TimeColumns::DateAndTime { date, time } => {
                let text = format!("{} {}", field(date), field(time));
                self.parser.parse(&text).ok_or_else(|| {
                    format!(
                        "cannot read timestamp {text:?} in columns {:?} and {:?}",
                        date.name, time.name
                    )
                })?
            }
        };
        let number = |col: &Column| parse_number(field(col), &col.name, self.decimal_comma);
        let mut bar = Bar {
            timestamp,
            open: number(&self.open)?,
            high: number(&self.high)?,
            low: number(&self.low)?,
            close: number(&self.close)?,
            volume: match &self.volume {
                Some(col) => number(col)?,
                None => 0.0,
            },
        };
        if let (Some(adj), true) = (&self.adj_close, self.adjusted) {
            let adjusted = number(adj)?;
            let factor = adjusted / bar.close;
            if !factor.is_finite() {
                return Err(format!(
                    "cannot adjust: close {} and {} {adjusted} give no finite factor",
                    bar.close, adj.name
                ));
            }
            bar.open *= factor;
            bar.high *= factor;
            bar.low *= factor;
            bar.close = adjusted;
            if ![bar.open, bar.high, bar.low].iter().all(|v| v.is_finite()) {
                return Err(format!("adjusting by {factor} overflows the prices"));
            }
        }
        Ok(bar)
    }
}

/// How a time text becomes an instant: the format, and the zone of texts
/// without one.
#[derive(Debug, Clone)]
struct TimeParser {
    format: TimeFormat,
    timezone: Timezone,
}

impl TimeParser {
    fn offset_seconds(&self) -> i64 {
        i64::from(self.timezone.seconds_east())
    }

    fn parse(&self, text: &str) -> Option<DateTime<Utc>> {
        match &self.format {
            TimeFormat::Auto => parse_timestamp(text, self.offset_seconds()),
            TimeFormat::Epoch(unit) => {
                let value: i64 = text.trim().parse().ok()?;
                match unit {
                    EpochUnit::Seconds => DateTime::from_timestamp(value, 0),
                    EpochUnit::Milliseconds => DateTime::from_timestamp_millis(value),
                    EpochUnit::Microseconds => DateTime::from_timestamp_micros(value),
                    EpochUnit::Nanoseconds => Some(DateTime::from_timestamp_nanos(value)),
                }
            }
            TimeFormat::Pattern(pattern) => {
                let text = text.trim();
                if let Ok(at) = DateTime::parse_from_str(text, pattern) {
                    return Some(at.with_timezone(&Utc));
                }
                if let Ok(local) = NaiveDateTime::parse_from_str(text, pattern) {
                    let utc =
                        local.checked_sub_signed(TimeDelta::try_seconds(self.offset_seconds())?)?;
                    return Some(utc.and_utc());
                }
                let date = NaiveDate::parse_from_str(text, pattern).ok()?;
                Some(date.and_time(NaiveTime::MIN).and_utc())
            }
        }
    }

    fn describe(&self) -> String {
        let zone = if self.timezone == Timezone::default() {
            "UTC unless the text gives a zone".to_owned()
        } else {
            format!("at {} unless the text gives a zone", self.timezone)
        };
        match &self.format {
            TimeFormat::Auto => format!("recognised, {zone}"),
            TimeFormat::Epoch(unit) => unit.name().to_owned(),
            TimeFormat::Pattern(pattern) => format!("{pattern}, {zone}"),
        }
    }
}

/// The separator that occurs most often outside quotes; `,` on a tie.
fn sniff_separator(line: &str) -> u8 {
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
fn split_fields<'a>(line: &'a str, separator: u8, out: &mut Vec<Cow<'a, str>>) {
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
fn display_name(field: &str) -> String {
    let trimmed = field.trim();
    let unquoted = trimmed
        .strip_prefix('\'')
        .and_then(|t| t.strip_suffix('\''))
        .unwrap_or(trimmed);
    unquoted.trim().to_owned()
}

/// Lower case, brackets and quotes dropped, every run of other punctuation or
/// spaces turned into one `_`: `"<Adj. Close>"` becomes `adj_close`.
fn normalize_name(name: &str) -> String {
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

fn parse_number(text: &str, column: &str, decimal_comma: bool) -> Result<f64, String> {
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

/// Parses one timestamp in any of the forms in the module documentation; a
/// time of day without a zone is `default_offset` seconds east of UTC.
fn parse_timestamp(text: &str, default_offset: i64) -> Option<DateTime<Utc>> {
    let bytes = text.trim().as_bytes();
    if bytes.is_empty() {
        return None;
    }
    if bytes.len() != 8 && bytes.iter().all(u8::is_ascii_digit) {
        return parse_epoch(bytes);
    }
    let mut cursor = Cursor { bytes, pos: 0 };
    let date = parse_date(&mut cursor)?;
    if cursor.done() {
        return Some(date.and_time(NaiveTime::MIN).and_utc());
    }
    if !(cursor.eat(b'T') || cursor.eat(b't') || cursor.skip_spaces()) {
        return None;
    }
    let time = parse_time(&mut cursor)?;
    let offset_seconds = parse_zone(&mut cursor)?.unwrap_or(default_offset);
    if !cursor.done() {
        return None;
    }
    let local = date.and_time(time);
    let utc = local.checked_sub_signed(TimeDelta::try_seconds(offset_seconds)?)?;
    Some(utc.and_utc())
}

fn parse_epoch(digits: &[u8]) -> Option<DateTime<Utc>> {
    let value: i64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    match value {
        i64::MIN..100_000_000 => None,
        100_000_000..100_000_000_000 => DateTime::from_timestamp(value, 0),
        100_000_000_000..100_000_000_000_000 => DateTime::from_timestamp_millis(value),
        100_000_000_000_000..100_000_000_000_000_000 => DateTime::from_timestamp_micros(value),
        100_000_000_000_000_000.. => Some(DateTime::from_timestamp_nanos(value)),
    }
}

/// A position in an ASCII timestamp; every method stops at the end without
/// indexing past it.
#[derive(Debug)]
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn done(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    fn eat(&mut self, b: u8) -> bool {
        let found = self.peek() == Some(b);
        if found {
            self.pos += 1;
        }
        found
    }

    /// Consumes `word` in any case.
    fn eat_word(&mut self, word: &str) -> bool {
        let end = self.pos + word.len();
        let found = self
            .bytes
            .get(self.pos..end)
            .is_some_and(|text| text.eq_ignore_ascii_case(word.as_bytes()));
        if found {
            self.pos = end;
        }
        found
    }

    /// Whether at least one space was skipped.
    fn skip_spaces(&mut self) -> bool {
        let start = self.pos;
        while self.peek() == Some(b' ') {
            self.pos += 1;
        }
        self.pos > start
    }

    /// A run of digits: its value and length; `None` when there is none or it
    /// is too long to matter.
    fn digits(&mut self) -> Option<(u32, usize)> {
        let start = self.pos;
        let mut value: u32 = 0;
        while let Some(b) = self.peek().filter(u8::is_ascii_digit) {
            value = value.checked_mul(10)?.checked_add(u32::from(b - b'0'))?;
            self.pos += 1;
        }
        let len = self.pos - start;
        (len > 0).then_some((value, len))
    }
}

fn parse_date(cursor: &mut Cursor<'_>) -> Option<NaiveDate> {
    let (a, a_len) = cursor.digits()?;
    let separator = cursor.peek().filter(|b| matches!(b, b'-' | b'/' | b'.'));
    let Some(separator) = separator else {
        return if a_len == 8 {
            NaiveDate::from_ymd_opt(i32::try_from(a / 10_000).ok()?, a / 100 % 100, a % 100)
        } else {
            None
        };
    };
    cursor.pos += 1;
    let (b, b_len) = cursor.digits()?;
    if !cursor.eat(separator) {
        return None;
    }
    let (c, c_len) = cursor.digits()?;
    let (year, month, day) = match (a_len, b_len, c_len, separator) {
        (4, 1..=2, 1..=2, _) => (a, b, c),
        (1..=2, 1..=2, 4, b'/') => (c, a, b),
        (1..=2, 1..=2, 4, b'.') => (c, b, a),
        _ => return None,
    };
    NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, day)
}

fn parse_time(cursor: &mut Cursor<'_>) -> Option<NaiveTime> {
    let (first, first_len) = cursor.digits()?;
    let mut hour_only = false;
    let (hour, minute, second) = match first_len {
        4 => (first / 100, first % 100, 0),
        6 => (first / 10_000, first / 100 % 100, first % 100),
        1..=2 if cursor.eat(b':') => {
            let (minute, _) = two_digits(cursor)?;
            let second = if cursor.eat(b':') {
                two_digits(cursor)?.0
            } else {
                0
            };
            (first, minute, second)
        }
        // CryptoDataDownload's `09-AM`, or `9 AM`.
        1..=2 => {
            cursor.eat(b'-');
            hour_only = true;
            (first, 0, 0)
        }
        _ => return None,
    };
    let mut nano = 0;
    if !hour_only && cursor.eat(b'.') {
        let mut scale = 100_000_000;
        let mut any = false;
        while let Some(b) = cursor.peek().filter(u8::is_ascii_digit) {
            nano += u32::from(b - b'0') * scale;
            scale /= 10;
            any = true;
            cursor.pos += 1;
        }
        if !any {
            return None;
        }
    }
    let before_meridiem = cursor.pos;
    cursor.skip_spaces();
    let hour = if cursor.eat_word("am") {
        match hour {
            12 => 0,
            1..=11 => hour,
            _ => return None,
        }
    } else if cursor.eat_word("pm") {
        match hour {
            12 => 12,
            1..=11 => hour + 12,
            _ => return None,
        }
    } else if hour_only {
        return None;
    } else {
        cursor.pos = before_meridiem;
        hour
    };
    NaiveTime::from_hms_nano_opt(hour, minute, second, nano)
}

fn two_digits(cursor: &mut Cursor<'_>) -> Option<(u32, usize)> {
    cursor.digits().filter(|&(_, len)| len == 2)
}

/// The zone after a time, as seconds east of UTC: `Some(None)` when there
/// is none, `None` when the text is not a zone.
fn parse_zone(cursor: &mut Cursor<'_>) -> Option<Option<i64>> {
    cursor.skip_spaces();
    if cursor.done() {
        return Some(None);
    }
    if cursor.eat(b'Z') || cursor.eat(b'z') {
        return Some(Some(0));
    }
    let named = cursor.eat_word("utc") || cursor.eat_word("gmt");
    if named && cursor.done() {
        return Some(Some(0));
    }
    let sign = match cursor.peek()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    cursor.pos += 1;
    let (first, first_len) = cursor.digits()?;
    let (hours, minutes) = match first_len {
        1..=2 if cursor.eat(b':') => (first, two_digits(cursor)?.0),
        1..=2 => (first, 0),
        4 => (first / 100, first % 100),
        _ => return None,
    };
    if hours > 23 || minutes > 59 {
        return None;
    }
    Some(Some(
        sign * (i64::from(hours) * 3600 + i64::from(minutes) * 60),
    ))
}

#[cfg(test)]
mod tests {
    use expect_test::{Expect, expect};

    use super::*;

    /// Imports `content` from a file named `data.csv`; errors come back as
    /// text with the temporary directory removed.
    fn import(content: &str) -> Result<Vec<Bar>, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.csv");
        std::fs::write(&path, content).unwrap();
        read_import_file(&path, &ImportOptions::default())
            .map(|imported| imported.bars)
            .map_err(|err| {
                err.to_string()
                    .replace(&path.display().to_string(), "data.csv")
            })
    }

    fn render(bars: &[Bar]) -> String {
        bars.iter()
            .map(|b| {
                let at = b.timestamp.to_rfc3339_opts(SecondsFormat::AutoSi, true);
                format!(
                    "{at} {} {} {} {} {}\n",
                    b.open, b.high, b.low, b.close, b.volume
                )
            })
            .collect()
    }

    fn check(content: &str, expected: Expect) {
        match import(content) {
            Ok(bars) => expected.assert_eq(&render(&bars)),
            Err(err) => panic!("import failed: {err}"),
        }
    }

    fn check_err_with(content: &str, options: &ImportOptions, expected: &str) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.csv");
        std::fs::write(&path, content).unwrap();
        match read_import_file(&path, options) {
            Ok(imported) => panic!("expected an error, got:\n{}", render(&imported.bars)),
            Err(err) => assert_eq!(
                err.to_string()
                    .replace(&path.display().to_string(), "data.csv"),
                expected
            ),
        }
    }

    fn check_err(content: &str, expected: &str) {
        match import(content) {
            Ok(bars) => panic!("expected an error, got:\n{}", render(&bars)),
            Err(err) => assert_eq!(err, expected),
        }
    }

    /// Imports `content` with `options` and checks the row count, the first
    /// and last bar and what was read from where.
    fn check_shape(
        content: &str,
        options: &ImportOptions,
        rows: usize,
        first: &str,
        last: &str,
        columns: Expect,
    ) {
        columns.assert_eq(&import_shape(content, options, rows, first, last));
    }

    /// As [`check_shape`], returning what was read from where.
    fn import_shape(
        content: &str,
        options: &ImportOptions,
        rows: usize,
        first: &str,
        last: &str,
    ) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.csv");
        std::fs::write(&path, content).unwrap();
        let imported =
            read_import_file(&path, options).unwrap_or_else(|err| panic!("import failed: {err}"));
        let shown = render(&imported.bars);
        let lines: Vec<&str> = shown.lines().collect();
        assert_eq!(lines.len(), rows, "{shown}");
        assert_eq!(lines.first().copied(), Some(first), "{shown}");
        assert_eq!(lines.last().copied(), Some(last), "{shown}");
        imported.columns
    }

    fn mapping(flags: &[(&str, &str)]) -> ImportOptions {
        let mut options = ImportOptions::default();
        for &(flag, value) in flags {
            match flag {
                "--timestamp-column" => options.timestamp = Some(value.parse().unwrap()),
                "--columns" => options.columns = value.parse().unwrap(),
                "--time-format" => options.time_format = value.parse().unwrap(),
                "--timezone" => options.timezone = value.parse().unwrap(),
                "--adjusted" => options.adjusted = true,
                other => panic!("unknown flag {other}"),
            }
        }
        options
    }

    #[test]
    fn pandas_nameless_index_daily() {
        check_shape(
            ",Open,High,Low,Close,Volume\n\
             2024-01-02,187.15,188.44,183.89,185.64,82488700\n\
             2024-01-03,184.22,185.88,183.43,184.25,58414500\n\
             2024-01-04,182.15,183.09,180.88,181.91,71983600\n",
            &ImportOptions::default(),
            3,
            "2024-01-02T00:00:00Z 187.15 188.44 183.89 185.64 82488700",
            "2024-01-04T00:00:00Z 182.15 183.09 180.88 181.91 71983600",
            expect![
                "pandas to_csv, unnamed index; time #1 (no name) (recognised, UTC unless the text gives a zone), open Open, high High, low Low, close Close, volume Volume"
            ],
        );
    }

    #[test]
    fn pandas_nameless_index_intraday_with_and_without_offset() {
        let naive = ",open,high,low,close,volume\n\
             2024-01-02 09:30:00,187.15,187.4,186.9,187.2,1200\n\
             2024-01-02 09:31:00,187.2,187.5,187.1,187.45,800\n";
        check_shape(
            naive,
            &ImportOptions::default(),
            2,
            "2024-01-02T09:30:00Z 187.15 187.4 186.9 187.2 1200",
            "2024-01-02T09:31:00Z 187.2 187.5 187.1 187.45 800",
            expect![
                "pandas to_csv, unnamed index; time #1 (no name) (recognised, UTC unless the text gives a zone), open open, high high, low low, close close, volume volume"
            ],
        );
        // The same file saved from a frame whose index is in New York time.
        check_shape(
            &naive.replace(":00,", ":00-05:00,"),
            &ImportOptions::default(),
            2,
            "2024-01-02T14:30:00Z 187.15 187.4 186.9 187.2 1200",
            "2024-01-02T14:31:00Z 187.2 187.5 187.1 187.45 800",
            expect![
                "pandas to_csv, unnamed index; time #1 (no name) (recognised, UTC unless the text gives a zone), open open, high high, low low, close close, volume volume"
            ],
        );
        check_shape(
            ",Open,High,Low,Close\n\
             2024-01-02 14:30:00.250000+00:00,1,2,0.5,1.5\n\
             2024-01-02 15:30:00+00:00,1.5,2,1,1.25\n\
             2024-01-02 16:30:00+00:00,1.25,2,1,1.5\n",
            &ImportOptions::default(),
            3,
            "2024-01-02T14:30:00.250Z 1 2 0.5 1.5 0",
            "2024-01-02T16:30:00Z 1.25 2 1 1.5 0",
            expect![
                "pandas to_csv, unnamed index; time #1 (no name) (recognised, UTC unless the text gives a zone), open Open, high High, low Low, close Close, volume none (0)"
            ],
        );
    }

    #[test]
    fn pandas_named_index() {
        for name in ["Date", "Datetime", "timestamp"] {
            let columns = import_shape(
                &format!(
                    "{name},Open,High,Low,Close,Volume\n\
                     2024-01-02 09:30:00-05:00,187.15,187.4,186.9,187.2,1200\n\
                     2024-01-02 10:30:00-05:00,187.2,187.5,187.1,187.45,800\n"
                ),
                &ImportOptions::default(),
                2,
                "2024-01-02T14:30:00Z 187.15 187.4 186.9 187.2 1200",
                "2024-01-02T15:30:00Z 187.2 187.5 187.1 187.45 800",
            );
            assert_eq!(
                columns,
                format!(
                    "header; time {name} (recognised, UTC unless the text gives a zone), \
                     open Open, high High, low Low, close Close, volume Volume"
                )
            );
        }
    }

    #[test]
    fn yfinance_to_csv_with_price_and_ticker_rows() {
        check_shape(
            "Price,Close,High,Low,Open,Volume\n\
             Ticker,AAPL,AAPL,AAPL,AAPL,AAPL\n\
             Date,,,,,\n\
             2024-01-02,184.73,187.52,182.99,186.03,82488700\n\
             2024-01-03,183.35,184.77,182.35,183.12,58414500\n",
            &ImportOptions::default(),
            2,
            "2024-01-02T00:00:00Z 186.03 187.52 182.99 184.73 82488700",
            "2024-01-03T00:00:00Z 183.12 184.77 182.35 183.35 58414500",
            expect![
                "pandas to_csv, index named in a row of its own; time Date (recognised, UTC unless the text gives a zone), open Open, high High, low Low, close Close, volume Volume"
            ],
        );
    }

    #[test]
    fn metatrader_5_tab_separated_with_date_and_time() {
        check_shape(
            "<DATE>\t<TIME>\t<OPEN>\t<HIGH>\t<LOW>\t<CLOSE>\t<TICKVOL>\t<VOL>\t<SPREAD>\n\
             2024.01.02\t00:00:00\t1.10427\t1.10481\t1.10392\t1.10455\t1320\t0\t5\n\
             2024.01.02\t01:00:00\t1.10455\t1.10502\t1.10420\t1.10478\t1102\t0\t4\n\
             2024.01.02\t02:00:00\t1.10478\t1.10533\t1.10461\t1.10512\t987\t0\t4\n",
            &ImportOptions::default(),
            3,
            "2024-01-02T00:00:00Z 1.10427 1.10481 1.10392 1.10455 0",
            "2024-01-02T02:00:00Z 1.10478 1.10533 1.10461 1.10512 0",
            expect![
                "header; time <DATE> + <TIME> (recognised, UTC unless the text gives a zone), open <OPEN>, high <HIGH>, low <LOW>, close <CLOSE>, volume <VOL>"
            ],
        );
        // Tick volume instead of the (forex: always 0) real volume.
        check_shape(
            "<DATE>\t<OPEN>\t<HIGH>\t<LOW>\t<CLOSE>\t<TICKVOL>\t<VOL>\t<SPREAD>\n\
             2024.01.02\t1.10427\t1.10481\t1.10392\t1.10455\t1320\t0\t5\n\
             2024.01.03\t1.10455\t1.10502\t1.10420\t1.10478\t1102\t0\t4\n",
            &mapping(&[("--columns", "volume=TICKVOL")]),
            2,
            "2024-01-02T00:00:00Z 1.10427 1.10481 1.10392 1.10455 1320",
            "2024-01-03T00:00:00Z 1.10455 1.10502 1.1042 1.10478 1102",
            expect![
                "columns as mapped; time <DATE> (recognised, UTC unless the text gives a zone), open <OPEN>, high <HIGH>, low <LOW>, close <CLOSE>, volume <TICKVOL>"
            ],
        );
    }

    #[test]
    fn metatrader_4_history_without_header() {
        check_shape(
            "2024.01.02,00:00,1.10427,1.10481,1.10392,1.10455,1320\n\
             2024.01.02,00:01,1.10455,1.10502,1.10420,1.10478,1102\n\
             2024.01.02,00:02,1.10478,1.10533,1.10461,1.10512,987\n\
             2024.01.02,00:03,1.10512,1.10540,1.10490,1.10501,1010\n",
            &ImportOptions::default(),
            4,
            "2024-01-02T00:00:00Z 1.10427 1.10481 1.10392 1.10455 1320",
            "2024-01-02T00:03:00Z 1.10512 1.1054 1.1049 1.10501 1010",
            expect![[
                r#"MetaTrader 4 history (no header); time date + time (recognised, UTC unless the text gives a zone), open open, high high, low low, close close, volume volume"#
            ]],
        );
    }

    #[test]
    fn binance_klines_without_header() {
        check_shape(
            "1704067200000,42283.58,42554.57,42261.02,42475.23,1271.68108,1704070799999,53957248.99,47134,682.57581,28957416.82,0\n\
             1704070800000,42475.23,42775.00,42431.65,42613.56,1196.37856,1704074399999,50984893.01,44226,580.91136,24751770.02,0\n\
             1704074400000,42613.57,42638.41,42500.00,42581.10,685.21154,1704077999999,29172803.78,30009,291.60075,12415434.64,0\n",
            &ImportOptions::default(),
            3,
            "2024-01-01T00:00:00Z 42283.58 42554.57 42261.02 42475.23 1271.68108",
            "2024-01-01T02:00:00Z 42613.57 42638.41 42500 42581.1 685.21154",
            expect![[
                r#"Binance klines (no header); time open time (recognised, UTC unless the text gives a zone), open open, high high, low low, close close, volume volume"#
            ]],
        );
        // Spot files from 2025 on give the times in microseconds.
        check_shape(
            "1735689600000000,93576.00,94509.42,93489.03,94401.14,755.99010,1735693199999999,71068958.82,111260,397.50000,37369003.11,0\n",
            &ImportOptions::default(),
            1,
            "2025-01-01T00:00:00Z 93576 94509.42 93489.03 94401.14 755.9901",
            "2025-01-01T00:00:00Z 93576 94509.42 93489.03 94401.14 755.9901",
            expect![[
                r#"Binance klines (no header); time open time (recognised, UTC unless the text gives a zone), open open, high high, low low, close close, volume volume"#
            ]],
        );
    }

    #[test]
    fn tradingview_chart_export() {
        check_shape(
            "time,open,high,low,close,Volume,Volume MA\n\
             1704186000,187.15,188.44,183.89,185.64,82488700,\n\
             1704272400,184.22,185.88,183.43,184.25,58414500,70451600\n\
             1704358800,182.15,183.09,180.88,181.91,71983600,70962266.67\n",
            &ImportOptions::default(),
            3,
            "2024-01-02T09:00:00Z 187.15 188.44 183.89 185.64 82488700",
            "2024-01-04T09:00:00Z 182.15 183.09 180.88 181.91 71983600",
            expect![[
                r#"header; time time (recognised, UTC unless the text gives a zone), open open, high high, low low, close close, volume Volume"#
            ]],
        );
        // Without volume, and before 1973 (short epochs need the unit given).
        check_shape(
            "time,open,high,low,close\n-86400,91.1,92.0,90.5,91.6\n0,92.06,93.54,91.79,93.0\n",
            &mapping(&[("--time-format", "epoch-s")]),
            2,
            "1969-12-31T00:00:00Z 91.1 92 90.5 91.6 0",
            "1970-01-01T00:00:00Z 92.06 93.54 91.79 93 0",
            expect![[
                r#"header; time time (epoch-s), open open, high high, low low, close close, volume none (0)"#
            ]],
        );
    }

    #[test]
    fn stooq_daily_and_bulk() {
        check_shape(
            "Date,Open,High,Low,Close,Volume\n\
             2024-01-02,4745.2,4754.33,4722.67,4742.83,3743050000\n\
             2024-01-03,4725.07,4729.29,4699.71,4704.81,3950760000\n",
            &ImportOptions::default(),
            2,
            "2024-01-02T00:00:00Z 4745.2 4754.33 4722.67 4742.83 3743050000",
            "2024-01-03T00:00:00Z 4725.07 4729.29 4699.71 4704.81 3950760000",
            expect![[
                r#"header; time Date (recognised, UTC unless the text gives a zone), open Open, high High, low Low, close Close, volume Volume"#
            ]],
        );
        check_shape(
            "<TICKER>,<PER>,<DATE>,<TIME>,<OPEN>,<HIGH>,<LOW>,<CLOSE>,<VOL>,<OPENINT>\n\
             EURUSD,60,20240102,000000,1.10427,1.10481,1.10392,1.10455,0,0\n\
             EURUSD,60,20240102,010000,1.10455,1.10502,1.1042,1.10478,0,0\n",
            &ImportOptions::default(),
            2,
            "2024-01-02T00:00:00Z 1.10427 1.10481 1.10392 1.10455 0",
            "2024-01-02T01:00:00Z 1.10455 1.10502 1.1042 1.10478 0",
            expect![
                "header; time <DATE> + <TIME> (recognised, UTC unless the text gives a zone), open <OPEN>, high <HIGH>, low <LOW>, close <CLOSE>, volume <VOL>"
            ],
        );
    }

    #[test]
    fn yahoo_close_by_default_adj_close_with_adjusted() {
        let yahoo = "Date,Open,High,Low,Close,Adj Close,Volume\n\
                     2020-08-28,504.05,505.77,498.31,499.23,124.81,46907500\n\
                     2020-08-31,127.58,131.0,126.0,129.04,129.04,225702700\n";
        check_shape(
            yahoo,
            &ImportOptions::default(),
            2,
            "2020-08-28T00:00:00Z 504.05 505.77 498.31 499.23 46907500",
            "2020-08-31T00:00:00Z 127.58 131 126 129.04 225702700",
            expect![[
                r#"header; time Date (recognised, UTC unless the text gives a zone), open Open, high High, low Low, close Close (Adj Close not used; --adjusted uses it), volume Volume"#
            ]],
        );
        // The split of 2020-08-31 (4:1) adjusted away: every price scaled.
        check_shape(
            yahoo,
            &mapping(&[("--adjusted", "")]),
            2,
            "2020-08-28T00:00:00Z 126.01502413717124 126.44503275043566 124.57999539290508 124.81 46907500",
            "2020-08-31T00:00:00Z 127.58 131 126 129.04 225702700",
            expect![[
                r#"header; time Date (recognised, UTC unless the text gives a zone), open Open, high High, low Low, close Adj Close (adjusted: open, high and low scaled by Adj Close / Close), volume Volume"#
            ]],
        );
        check_err_with(
            "Date,Open,High,Low,Close,Volume\n2024-01-02,1,2,0.5,1.5,10\n",
            &mapping(&[("--adjusted", "")]),
            "data.csv:1: --adjusted needs an adjusted close column (Adj Close); none was found \
             (name it with --columns adj_close=NAME)",
        );
    }

    #[test]
    fn an_unknown_layout_is_named_and_the_flags_import_it() {
        let file = "when;first;max;min;last;qty\n\
                    02/01/2024 09:00;1,1043;1,1048;1,1039;1,1045;12\n\
                    02/01/2024 10:00;1,1045;1,1050;1,1042;1,1047;9\n";
        check_err_with(
            file,
            &ImportOptions::default(),
            "data.csv:1: missing columns timestamp (or date, time, datetime), open, high, low, \
             close; header is: when, first, max, min, last, qty",
        );
        check_shape(
            file,
            &mapping(&[
                ("--timestamp-column", "when"),
                (
                    "--columns",
                    "open=first,high=max,low=min,close=last,volume=qty",
                ),
                ("--time-format", "%d/%m/%Y %H:%M"),
                ("--timezone", "+01:00"),
            ]),
            2,
            "2024-01-02T08:00:00Z 1.1043 1.1048 1.1039 1.1045 12",
            "2024-01-02T09:00:00Z 1.1045 1.105 1.1042 1.1047 9",
            expect![[
                r#"columns as mapped; time when (%d/%m/%Y %H:%M, at +01:00 unless the text gives a zone), open first, high max, low min, close last, volume qty"#
            ]],
        );
        // Without a header, columns are given by position.
        let headerless = "02.01.2024;0900;1,1043;1,1048;1,1039;1,1045\n\
                          02.01.2024;1000;1,1045;1,1050;1,1042;1,1047\n";
        check_err_with(
            headerless,
            &ImportOptions::default(),
            "data.csv:1: the first line is a row, not a header, and its 6 columns match no \
             export without a header (Binance klines: 12 columns, open time first; MetaTrader 4: \
             date, time, open, high, low, close, volume); first line: 02.01.2024, 0900, 1,1043, \
             1,1048, 1,1039, 1,1045",
        );
        check_shape(
            headerless,
            &mapping(&[
                ("--timestamp-column", "1,2"),
                ("--columns", "open=3,high=4,low=5,close=6"),
                ("--time-format", "%d.%m.%Y %H%M"),
            ]),
            2,
            "2024-01-02T09:00:00Z 1.1043 1.1048 1.1039 1.1045 0",
            "2024-01-02T10:00:00Z 1.1045 1.105 1.1042 1.1047 0",
            expect![[
                r#"columns as mapped; time #1 + #2 (%d.%m.%Y %H%M, UTC unless the text gives a zone), open #3, high #4, low #5, close #6, volume none (0)"#
            ]],
        );
    }

    #[test]
    fn our_own_format() {
        check(
            "timestamp,open,high,low,close,volume\n\
             2017-01-01T22:00:00Z,1.05236,1.05253,1.05221,1.05227,143539993.3\n\
             2017-01-01T23:00:00Z,1.05227,1.05283,1.05227,1.05265,1.00532E+11\n",
            expect![[r#"
                2017-01-01T22:00:00Z 1.05236 1.05253 1.05221 1.05227 143539993.3
                2017-01-01T23:00:00Z 1.05227 1.05283 1.05227 1.05265 100532000000
            "#]],
        );
    }

    #[test]
    fn yahoo_with_us_dates_and_adj_close() {
        check(
            "Date,Open,High,Low,Close,Adj Close,Volume\r\n\
             1/4/1999,1229.23,1248.81,1219.1,1228.1,1228.1,877000000\r\n\
             12/31/2018,2498.94,2509.24,2482.82,2506.85,2506.85,3442870000\r\n\
             1/5/1999,1228.1,1246.11,1228.1,1244.78,1244.78,775000000\r\n",
            expect![[r#"
                1999-01-04T00:00:00Z 1229.23 1248.81 1219.1 1228.1 877000000
                1999-01-05T00:00:00Z 1228.1 1246.11 1228.1 1244.78 775000000
                2018-12-31T00:00:00Z 2498.94 2509.24 2482.82 2506.85 3442870000
            "#]],
        );
    }

    #[test]
    fn dukascopy_day_first_with_milliseconds() {
        check(
            "Time,Open,High,Low,Close,Volume\n\
             01.01.2017 22:00:00.000,1.05236,1.05253,1.05221,1.05227,143539993.3\n\
             02.01.2017 00:00:00.000,1.05227,1.05283,1.05227,1.05265,1.63119E+11\n",
            expect![[r#"
                2017-01-01T22:00:00Z 1.05236 1.05253 1.05221 1.05227 143539993.3
                2017-01-02T00:00:00Z 1.05227 1.05283 1.05227 1.05265 163119000000
            "#]],
        );
        // Dukascopy's other export names the column by zone and may add one.
        check(
            "Gmt time,Open,High,Low,Close,Volume\n01.01.2017 22:00:00.000,1,2,0.5,1.5,10\n",
            expect![[r#"
                2017-01-01T22:00:00Z 1 2 0.5 1.5 10
            "#]],
        );
        check(
            "Local time,Open,High,Low,Close,Volume\n02.01.2017 00:00:00.000 GMT+0200,1,2,0.5,1.5,10\n",
            expect![[r#"
                2017-01-01T22:00:00Z 1 2 0.5 1.5 10
            "#]],
        );
    }

    #[test]
    fn cryptodatadownload_with_url_line_newest_first() {
        check(
            "Timestamps are UTC timezone,https://www.CryptoDataDownload.com\n\
             date,symbol,open,high,low,close,volume_btc,volume\n\
             2019-10-17 01-PM,BTCUSD,8000.5,8010,7990,8005,12.5,100062.5\n\
             2019-10-17 12-PM,BTCUSD,7990,8001,7985,8000.5,10,80000\n\
             2019-10-17 09-AM,BTCUSD,7980,7995,7970,7990,3.25,25967.5\n\
             2019-10-17 12-AM,BTCUSD,7950,7985,7940,7980,1,7980\n",
            // The USD `volume` column is used, not `volume_btc`.
            expect![[r#"
                2019-10-17T00:00:00Z 7950 7985 7940 7980 7980
                2019-10-17T09:00:00Z 7980 7995 7970 7990 25967.5
                2019-10-17T12:00:00Z 7990 8001 7985 8000.5 80000
                2019-10-17T13:00:00Z 8000.5 8010 7990 8005 100062.5
            "#]],
        );
        // Without a plain `volume`, the only `volume_*` column is used.
        check(
            "date,symbol,open,high,low,close,Volume BTC\n2019-10-17 09-AM,BTCUSD,1,2,0.5,1.5,3.25\n",
            expect![[r#"
                2019-10-17T09:00:00Z 1 2 0.5 1.5 3.25
            "#]],
        );
    }

    #[test]
    fn epoch_seconds_and_milliseconds() {
        check(
            "timestamp,open,high,low,close,volume\n1483308000,1,2,0.5,1.5,10\n1483311600,1.5,2,1,1,20\n",
            expect![[r#"
                2017-01-01T22:00:00Z 1 2 0.5 1.5 10
                2017-01-01T23:00:00Z 1.5 2 1 1 20
            "#]],
        );
        // A Binance kline dump: `open_time` wins over `close_time`.
        check(
            "open_time,open,high,low,close,volume,close_time,quote_volume\n\
             1483311600000,1.5,2,1,1,20,1483315199999,30\n\
             1483308000000,1,2,0.5,1.5,10,1483311599999,15\n",
            expect![[r#"
                2017-01-01T22:00:00Z 1 2 0.5 1.5 10
                2017-01-01T23:00:00Z 1.5 2 1 1 20
            "#]],
        );
    }

    #[test]
    fn semicolons_quotes_and_decimal_commas() {
        check(
            "\"Date\";\"Open\";\"High\";\"Low\";\"Close\";\"Volume\"\n\
             \"2017-01-02\";\"1,0523\";\"1,0530\";\"1,0510\";\"1,0525\";\"1200\"\n\
             2017-01-03;1.0525;1.0540;1.0500;1.0510;1e3\n",
            expect![[r#"
                2017-01-02T00:00:00Z 1.0523 1.053 1.051 1.0525 1200
                2017-01-03T00:00:00Z 1.0525 1.054 1.05 1.051 1000
            "#]],
        );
    }

    #[test]
    fn separate_date_and_time_columns() {
        // A MetaTrader export: bracketed names, tabs, dotted dates.
        check(
            "<DATE>\t<TIME>\t<OPEN>\t<HIGH>\t<LOW>\t<CLOSE>\t<TICKVOL>\t<VOL>\n\
             2017.01.02\t00:00\t1.5\t2\t1\t1.75\t33\t0\n\
             2017.01.01\t23:00:00\t1\t2\t0.5\t1.5\t12\t7\n",
            expect![[r#"
                2017-01-01T23:00:00Z 1 2 0.5 1.5 7
                2017-01-02T00:00:00Z 1.5 2 1 1.75 0
            "#]],
        );
        check(
            " Date , Time ,Open,High,Low,Close\n1/3/2017, 9:30 PM ,1,2,0.5,1.5\n",
            expect![[r#"
                2017-01-03T21:30:00Z 1 2 0.5 1.5 0
            "#]],
        );
    }

    #[test]
    fn iso_variants_and_header_spelling() {
        check(
            "' Timestamp ',\"OPEN\", High ,low,Close,Vol.,Ticker\n\
             2017-01-01T22:00:00+02:00,1,2,0.5,1.5,1,X\n\
             2017-01-01T21:00:00.000Z,1,2,0.5,1.5,2,X\n\
             2017-01-01 22:00:00,1,2,0.5,1.5,3,X\n\
             2017-01-01 23:00,1,2,0.5,1.5,4,X\n\
             2017/01/02,1,2,0.5,1.5,5,X\n\
             2017-01-03,1,2,0.5,1.5,6,X\n",
            expect![[r#"
                2017-01-01T20:00:00Z 1 2 0.5 1.5 1
                2017-01-01T21:00:00Z 1 2 0.5 1.5 2
                2017-01-01T22:00:00Z 1 2 0.5 1.5 3
                2017-01-01T23:00:00Z 1 2 0.5 1.5 4
                2017-01-02T00:00:00Z 1 2 0.5 1.5 5
                2017-01-03T00:00:00Z 1 2 0.5 1.5 6
            "#]],
        );
    }

    #[test]
    fn short_names_blank_lines_and_no_volume() {
        check(
            "\u{feff}\n\nTime,O,H,L,C\n\n2017-01-01 10:00,1,2,0.5,1.5\n   \n2017-01-01 11:00,1.5,2,1,1\n\n",
            expect![[r#"
                2017-01-01T10:00:00Z 1 2 0.5 1.5 0
                2017-01-01T11:00:00Z 1.5 2 1 1 0
            "#]],
        );
    }

    #[test]
    fn identical_duplicates_are_dropped() {
        check(
            "date,open,high,low,close,volume\n\
             2017-01-02,1,2,0.5,1.5,10\n\n\
             2017-01-01,1,2,0.5,1.5,10\n\
             2017-01-02,1,2,0.5,1.5,10\n",
            expect![[r#"
                2017-01-01T00:00:00Z 1 2 0.5 1.5 10
                2017-01-02T00:00:00Z 1 2 0.5 1.5 10
            "#]],
        );
    }

    #[test]
    fn timestamp_forms() {
        let cases = [
            ("2017-01-01T22:00:00Z", Some("2017-01-01T22:00:00Z")),
            ("2017-01-01t22:00:00z", Some("2017-01-01T22:00:00Z")),
            (
                "2017-01-01T22:00:00.123456789Z",
                Some("2017-01-01T22:00:00.123456789Z"),
            ),
            ("2017-01-01T22:00:00-05:30", Some("2017-01-02T03:30:00Z")),
            ("2017-01-01T22:00:00+0200", Some("2017-01-01T20:00:00Z")),
            ("2017-01-01T22:00:00 UTC", Some("2017-01-01T22:00:00Z")),
            ("2017-01-01 22:00:00 GMT-1", Some("2017-01-01T23:00:00Z")),
            ("2017-01-01  22:00", Some("2017-01-01T22:00:00Z")),
            ("20170101", Some("2017-01-01T00:00:00Z")),
            ("20170101 223000", Some("2017-01-01T22:30:00Z")),
            ("2017.1.2", Some("2017-01-02T00:00:00Z")),
            ("02.01.2017", Some("2017-01-02T00:00:00Z")),
            ("1/2/2017", Some("2017-01-02T00:00:00Z")),
            ("1/2/2017 12:00 am", Some("2017-01-02T00:00:00Z")),
            ("1/2/2017 12:15:00 PM", Some("2017-01-02T12:15:00Z")),
            ("2017-01-02 11-PM", Some("2017-01-02T23:00:00Z")),
            ("123456789", Some("1973-11-29T21:33:09Z")),
            ("99999999999", Some("5138-11-16T09:46:39Z")),
            ("100000000000", Some("1973-03-03T09:46:40Z")),
            ("1483308000123", Some("2017-01-01T22:00:00.123Z")),
            ("1483308000123456", Some("2017-01-01T22:00:00.123456Z")),
            (
                "1483308000123456789",
                Some("2017-01-01T22:00:00.123456789Z"),
            ),
            // Refused: ambiguous or impossible.
            ("2017", None),
            ("12345678", None),
            ("-1483308000", None),
            ("99999999999999999999", None),
            ("2017-13-01", None),
            ("2017-02-30", None),
            ("01-02-2017", None),
            ("2017-01-01T24:00:00Z", None),
            ("2017-01-01T23:59:60Z", None),
            ("2017-01-01T22", None),
            ("2017-01-01 13-PM", None),
            ("2017-01-01 0:00 AM", None),
            ("2017-01-01T22:00:00+24:00", None),
            ("2017-01-01T22:00:00.", None),
            ("2017-01-01T22:00:00Zjunk", None),
            ("2017-01-01T22:00:00 EST", None),
            ("17-01-01", None),
            ("", None),
            ("null", None),
            ("２０１７-01-01", None),
        ];
        for (text, expected) in cases {
            let got =
                parse_timestamp(text, 0).map(|at| at.to_rfc3339_opts(SecondsFormat::AutoSi, true));
            assert_eq!(got.as_deref(), expected, "{text:?}");
        }
    }

    #[test]
    fn errors_name_file_line_column_and_text() {
        check_err("", "data.csv: the file is empty");
        check_err(" \n\n", "data.csv: the file is empty");
        check_err(
            "date,open,high,low,close\n",
            "data.csv: no rows after the header on line 1",
        );
        check_err(
            "Date,Open,High,Low,Adj Close,Volume\n1/4/1999,1,2,0.5,1.5,10\n",
            "data.csv:1: missing column close; header is: Date, Open, High, Low, Adj Close, Volume",
        );
        check_err(
            "when,open,max,low,close\n",
            "data.csv:1: missing columns timestamp (or date, time, datetime), high; header is: when, open, max, low, close",
        );
        // The header after a preamble line is the one reported.
        check_err(
            "Timestamps are UTC timezone,https://www.CryptoDataDownload.com\ndate,open,high,low\n",
            "data.csv:2: missing column close; header is: date, open, high, low",
        );
        check_err(
            "2017-01-01,1,2,0.5,1.5\n2017-01-02,1,2,0.5,1.5\n",
            "data.csv:1: the first line is a row, not a header, and its 5 columns match no export \
             without a header (Binance klines: 12 columns, open time first; MetaTrader 4: date, \
             time, open, high, low, close, volume); first line: 2017-01-01, 1, 2, 0.5, 1.5",
        );
        check_err(
            "date,open,high,low,close,Close\n",
            r#"data.csv:1: column "close" appears more than once in the header"#,
        );
        check_err(
            "date,open,high,low,close,Volume BTC,Volume USD\n",
            r#"data.csv:1: several volume columns (Volume BTC, Volume USD) and none named "volume"; rename the one to import to "volume""#,
        );
        check_err(
            "Date,Open,High,Low,Close\n2017-01-01,1,2,0.5,1.5\n2017-13-01,1,2,0.5,1.5\n",
            r#"data.csv:3: cannot read timestamp "2017-13-01" in column "Date""#,
        );
        check_err(
            "Date,Time,Open,High,Low,Close\n2017-01-01,25:00,1,2,0.5,1.5\n",
            r#"data.csv:2: cannot read timestamp "2017-01-01 25:00" in columns "Date" and "Time""#,
        );
        check_err(
            "date,open,high,low,close,volume\n2017-01-01,1,2,0.5,1.5,1O0\n",
            r#"data.csv:2: cannot read number "1O0" in column "volume""#,
        );
        check_err(
            "date,open,high,low,close,volume\n2017-01-01,1,2,0.5,NaN,100\n",
            r#"data.csv:2: "NaN" in column "close" is not a finite number"#,
        );
        check_err(
            "date,open,high,low,close,volume\n2017-01-01,1,inf,0.5,1.5,100\n",
            r#"data.csv:2: "inf" in column "high" is not a finite number"#,
        );
        check_err(
            "date,open,high,low,close,volume\n2017-01-01,1,2,,1.5,100\n",
            r#"data.csv:2: empty value in column "low""#,
        );
        // A comma is never a decimal point in a comma-separated file.
        check_err(
            "date,open,high,low,close,volume\n2017-01-01,\"1,5\",2,0.5,1.5,100\n",
            r#"data.csv:2: cannot read number "1,5" in column "open""#,
        );
        // A row of a date and nothing else is a row, not more header.
        check_err(
            "Date,Open,High,Low,Close\n2017-01-01,,,,\n",
            r#"data.csv:2: empty value in column "Open""#,
        );
        check_err(
            "date,open,high,low,close,volume,symbol\n2017-01-01,1,2,0.5\n",
            "data.csv:2: the row has 4 fields, the header has 7",
        );
        check_err(
            "date,open,high,low,close\n\
             2017-01-02,1,2,0.5,1.5\n\
             2017-01-01,1,2,0.5,1.5\n\
             2017-01-02,1,2,0.5,1.25\n",
            "data.csv:4: timestamp 2017-01-02T00:00:00Z appears again with different values (first on line 2)",
        );
        check_err(
            "date,open,high,low,close\n2017-01-01,1,2,0.5,1.5\n2017-01-02,\u{e9}1,2,0.5,1.5\n",
            "data.csv:3: cannot read number \"\u{e9}1\" in column \"open\"",
        );
    }

    #[test]
    fn errors_for_unreadable_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("latin1.csv");
        std::fs::write(
            &path,
            b"date,open,high,low,close\n2017-01-01,1,2,0.5,1.5 \xe9\n",
        )
        .unwrap();
        let err = read_import_file(&path, &ImportOptions::default())
            .unwrap_err()
            .to_string();
        assert_eq!(err, format!("{}:2: the text is not UTF-8", path.display()));

        let missing = dir.path().join("missing.csv");
        let err = read_import_file(&missing, &ImportOptions::default()).unwrap_err();
        assert!(
            matches!(&err, DataError::Io { path, .. } if *path == missing),
            "{err:?}"
        );
    }

    /// Valid files mutated at random (tokens inserted, bytes replaced, ranges
    /// cut): the parser must return, never panic, and whatever it accepts must
    /// be sorted, unique and finite.
    #[test]
    fn never_panics_on_mangled_input() {
        const BASES: &[&str] = &[
            "timestamp,open,high,low,close,volume\n2017-01-01T22:00:00Z,1,2,0.5,1.5,10\n2017-01-01T23:00:00+02:00,1,2,0.5,1.5,1E+3\n",
            "Timestamps are UTC timezone,x\ndate,symbol,open,high,low,close,volume_btc,volume\n2019-10-17 09-AM,B,1,2,0.5,1.5,3,4\n",
            "\"Date\";\"Time\";\"Open\";\"High\";\"Low\";\"Close\"\n02.01.2017;22:00:00.000;1,5;2;0,5;1\n1/2/2017;9 PM;1;2;0.5;1\n",
            "open_time\topen\thigh\tlow\tclose\tvolume\n1483308000000\t1\t2\t0.5\t1.5\t10\n1483311600\t1\t2\t0.5\t1.5\t10\n",
        ];
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move |bound: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % bound.max(1) as u64) as usize
        };
        let path = Path::new("fuzz.csv");
        let mut accepted = 0;
        for _ in 0..20_000 {
            let mut bytes = BASES[next(BASES.len())].as_bytes().to_vec();
            for _ in 0..next(4) {
                let at = next(bytes.len() + 1);
                match next(3) {
                    0 => {
                        let tokens = crate::fuzzing::IMPORT_TOKENS;
                        let token = tokens[next(tokens.len())].as_bytes();
                        bytes.splice(at..at, token.iter().copied());
                    }
                    1 => bytes.insert(at, next(256) as u8),
                    _ => {
                        let end = (at + next(8)).min(bytes.len());
                        bytes.drain(at..end);
                    }
                }
            }
            if let Ok(Imported { bars, .. }) = parse_import(path, &bytes, &ImportOptions::default())
            {
                accepted += 1;
                assert!(bars.windows(2).all(|w| w[0].timestamp < w[1].timestamp));
                let finite = |b: &Bar| {
                    [b.open, b.high, b.low, b.close, b.volume]
                        .iter()
                        .all(|v| v.is_finite())
                };
                assert!(bars.iter().all(finite));
            }
        }
        assert!(accepted > 1_000, "only {accepted} inputs were accepted");
    }

    fn bar(day: u32, close: f64) -> Bar {
        let timestamp = NaiveDate::from_ymd_opt(2024, 1, day)
            .unwrap()
            .and_time(NaiveTime::MIN)
            .and_utc();
        Bar {
            timestamp,
            open: 1.0,
            high: 2.0,
            low: 0.5,
            close,
            volume: 10.0,
        }
    }

    fn stats(added: usize, replaced: usize, unchanged: usize, total: usize) -> MergeStats {
        MergeStats {
            added,
            replaced,
            unchanged,
            total,
        }
    }

    #[test]
    fn merge_overlap_replaces_and_counts() {
        let existing = vec![bar(1, 1.0), bar(2, 1.0), bar(3, 1.0)];
        let incoming = vec![bar(2, 1.25), bar(3, 1.0), bar(4, 1.5)];
        let (merged, got) = merge_bars(existing, incoming);
        assert_eq!(
            merged,
            vec![bar(1, 1.0), bar(2, 1.25), bar(3, 1.0), bar(4, 1.5)]
        );
        assert_eq!(got, stats(1, 1, 1, 4));
        assert_eq!(
            serde_json::to_string(&got).unwrap(),
            r#"{"added":1,"replaced":1,"unchanged":1,"total":4}"#
        );
    }

    #[test]
    fn merge_disjoint_interleaves() {
        let (merged, got) = merge_bars(
            vec![bar(1, 1.0), bar(3, 3.0)],
            vec![bar(2, 2.0), bar(4, 4.0)],
        );
        assert_eq!(
            merged,
            vec![bar(1, 1.0), bar(2, 2.0), bar(3, 3.0), bar(4, 4.0)]
        );
        assert_eq!(got, stats(2, 0, 0, 4));

        let (merged, got) = merge_bars(vec![bar(5, 5.0)], vec![bar(1, 1.0), bar(2, 2.0)]);
        assert_eq!(merged, vec![bar(1, 1.0), bar(2, 2.0), bar(5, 5.0)]);
        assert_eq!(got, stats(2, 0, 0, 3));
    }

    #[test]
    fn merge_with_empty_sides() {
        let series = vec![bar(1, 1.0), bar(2, 2.0)];
        assert_eq!(
            merge_bars(Vec::new(), series.clone()),
            (series.clone(), stats(2, 0, 0, 2))
        );
        assert_eq!(
            merge_bars(series.clone(), Vec::new()),
            (series.clone(), stats(0, 0, 0, 2))
        );
        assert_eq!(
            merge_bars(Vec::new(), Vec::new()),
            (Vec::new(), stats(0, 0, 0, 0))
        );
        assert_eq!(
            merge_bars(series.clone(), series.clone()),
            (series, stats(0, 0, 2, 2))
        );
    }
}
