//! The layout of a file (separator, columns, time format), recognised from
//! its header or first row or given by the mapping flags, and reading a row
//! with it.

use std::borrow::Cow;

use super::fields::{normalize_name, parse_number, sniff_separator, split_fields};
use super::header::{
    ADJ_CLOSE_NAMES, Column, Header, HeaderError, LayoutError, REQUIRED, TimeColumns,
};
use super::options::{ColumnRef, ImportOptions, TimestampColumns};
use super::time::{Cursor, TimeParser, parse_date, parse_time, parse_timestamp};
use crate::Bar;

#[derive(Debug)]
pub(super) struct Layout {
    pub(super) separator: u8,
    pub(super) decimal_comma: bool,
    /// Fields of the header, or of the first row when there is none.
    header_fields: usize,
    /// Rows need at least this many fields to hold every column we read.
    needed_fields: usize,
    /// What kind of file this was taken for, for the summary.
    shape: &'static str,
    pub(super) time: TimeColumns,
    parser: TimeParser,
    pub(super) open: Column,
    pub(super) high: Column,
    pub(super) low: Column,
    pub(super) close: Column,
    pub(super) volume: Option<Column>,
    /// The adjusted close: read as the close (with open, high and low scaled
    /// alike) when `adjusted`, else only named in the summary as not used.
    pub(super) adj_close: Option<Column>,
    pub(super) adjusted: bool,
}

/// Why a line is not a usable header; `recognized` counts the required
/// columns it did have, to tell a header with a typo from a preamble line.
impl Layout {
    /// Recognises the layout: a header on the first line (or on the second,
    /// after a preamble line), a header whose first cell names pandas'
    /// index, or one of the exports that have no header.
    pub(super) fn detect(
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
    pub(super) fn unknown(first: &str, header_message: String) -> String {
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
    pub(super) fn new(
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
    pub(super) fn headerless(
        first: &str,
        options: &ImportOptions,
        parser: TimeParser,
    ) -> Option<Self> {
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
    pub(super) fn mapped(
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
    pub(super) fn describe(&self) -> String {
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

    pub(super) fn parse_row(&self, fields: &[Cow<'_, str>]) -> Result<Bar, String> {
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
