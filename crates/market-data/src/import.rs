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

mod fields;
mod header;
mod layout;
mod merge;
mod options;
mod time;

use std::path::Path;

use chrono::SecondsFormat;

use self::fields::split_fields;
use self::layout::Layout;
pub use self::merge::{MergeStats, merge_bars};
pub use self::options::{
    ColumnMap, ColumnRef, EpochUnit, ImportOptions, InvalidImportOption, TimeFormat,
    TimestampColumns, Timezone,
};
use self::time::TimeParser;
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

#[cfg(test)]
mod tests;
