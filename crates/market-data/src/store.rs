//! The local data store: one validated CSV file per series,
//! `{dir}/{SYMBOL}_{timeframe}.csv`, read in segments and written atomically.

use std::fs::{self, File, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::validate::{self, MAX_LINE_BYTES, RowParser};
use crate::{Bar, DataError, Symbol, Timeframe};

/// Where the bars came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BarSource {
    Store {
        path: std::path::PathBuf,
    },
    /// Built on the fly from a lower timeframe the store has.
    Resampled {
        from: Timeframe,
        path: std::path::PathBuf,
    },
}

impl BarSource {
    /// The stored timeframe that is read to serve `requested`.
    pub fn timeframe(&self, requested: Timeframe) -> Timeframe {
        match self {
            BarSource::Store { .. } => requested,
            BarSource::Resampled { from, .. } => *from,
        }
    }
}

/// The CSV files of one data directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalStore {
    dir: PathBuf,
}

/// One series found by [`LocalStore::list`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeriesInfo {
    pub symbol: Symbol,
    pub timeframe: Timeframe,
    pub path: PathBuf,
    pub bars: usize,
    pub first: DateTime<Utc>,
    pub last: DateTime<Utc>,
}

impl LocalStore {
    /// The environment variable naming the data directory.
    pub const DIR_ENV: &'static str = "TRDR_DATA_DIR";
    /// The data directory when neither a flag nor the variable names one.
    pub const DEFAULT_DIR: &'static str = "./data";

    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The data directory to use: `flag` if given, else `TRDR_DATA_DIR` if
    /// set and not empty, else `./data`.
    pub fn resolve_dir(flag: Option<PathBuf>) -> PathBuf {
        Self::resolve_dir_with(flag, |name| std::env::var(name).ok())
    }

    /// [`LocalStore::resolve_dir`] with the environment read through `lookup`.
    pub fn resolve_dir_with(
        flag: Option<PathBuf>,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> PathBuf {
        flag.or_else(|| {
            lookup(Self::DIR_ENV)
                .filter(|dir| !dir.is_empty())
                .map(PathBuf::from)
        })
        .unwrap_or_else(|| PathBuf::from(Self::DEFAULT_DIR))
    }

    /// Where the series lives, e.g. `{dir}/EURUSD_1h.csv`.
    pub fn path(&self, symbol: &Symbol, timeframe: Timeframe) -> PathBuf {
        self.dir.join(file_name(symbol, timeframe))
    }

    pub fn exists(&self, symbol: &Symbol, timeframe: Timeframe) -> bool {
        self.path(symbol, timeframe).is_file()
    }

    /// Where bars of `timeframe` come from: its own file, else the file of
    /// the highest lower timeframe that divides it (resampled on the fly).
    pub fn source_for(
        &self,
        symbol: &Symbol,
        timeframe: Timeframe,
    ) -> Result<BarSource, DataError> {
        if self.exists(symbol, timeframe) {
            return Ok(BarSource::Store {
                path: self.path(symbol, timeframe),
            });
        }
        Timeframe::ALL
            .into_iter()
            .rev()
            .filter(|lower| *lower < timeframe && divides(*lower, timeframe))
            .find(|lower| self.exists(symbol, *lower))
            .map(|lower| BarSource::Resampled {
                from: lower,
                path: self.path(symbol, lower),
            })
            .ok_or_else(|| DataError::NotFound {
                symbol: symbol.clone(),
                timeframe,
                path: self.path(symbol, timeframe),
            })
    }

    /// The whole series of `timeframe`, resampled from a lower one when the
    /// store lacks it.
    pub fn read_or_resample(
        &self,
        symbol: &Symbol,
        timeframe: Timeframe,
    ) -> Result<(Vec<Bar>, BarSource), DataError> {
        let source = self.source_for(symbol, timeframe)?;
        let stored = source.timeframe(timeframe);
        let bars = self.read(symbol, stored)?;
        let bars = if stored == timeframe {
            bars
        } else {
            crate::resample(&bars, stored, timeframe)?
        };
        Ok((bars, source))
    }

    /// Opens a series for reading in segments; checks the header now.
    pub fn open(&self, symbol: &Symbol, timeframe: Timeframe) -> Result<SeriesReader, DataError> {
        let path = self.path(symbol, timeframe);
        match File::open(&path) {
            Ok(file) => SeriesReader::from_file(path, file),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Err(DataError::NotFound {
                symbol: symbol.clone(),
                timeframe,
                path,
            }),
            Err(error) => Err(DataError::io(path, error)),
        }
    }

    /// Reads and validates the whole series.
    pub fn read(&self, symbol: &Symbol, timeframe: Timeframe) -> Result<Vec<Bar>, DataError> {
        self.open(symbol, timeframe)?.read_to_end()
    }

    /// Validates `bars`, then replaces the series file atomically (a temporary
    /// file in the same directory, synced, then renamed over the target), so
    /// readers see the old file or the new one, never a mix. Creates the
    /// directory if needed. Returns the file's path.
    pub fn write(
        &self,
        symbol: &Symbol,
        timeframe: Timeframe,
        bars: &[Bar],
    ) -> Result<PathBuf, DataError> {
        let path = self.path(symbol, timeframe);
        if let Err(message) = validate::check_bars(bars) {
            return Err(DataError::InvalidFile { path, message });
        }
        fs::create_dir_all(&self.dir).map_err(|error| DataError::io(&self.dir, error))?;
        write_atomically(&path, |out| write_bars(out, bars))?;
        Ok(path)
    }

    /// Every series file in the directory (`{SYMBOL}_{timeframe}.csv` with a
    /// valid symbol and a timeframe in its canonical form), sorted by symbol
    /// then timeframe. Other files are ignored. Each file is read in full, so
    /// an invalid one fails the listing with an error naming it.
    pub fn list(&self) -> Result<Vec<SeriesInfo>, DataError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                return Err(DataError::MissingDataDir {
                    path: self.dir.clone(),
                });
            }
            Err(error) => return Err(DataError::io(&self.dir, error)),
        };
        let mut series = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|error| DataError::io(&self.dir, error))?;
            let name = entry.file_name();
            let Some((symbol, timeframe)) = name.to_str().and_then(parse_file_name) else {
                continue;
            };
            let path = entry.path();
            if path.is_file() {
                series.push((symbol, timeframe, path));
            }
        }
        series.sort();
        series
            .into_iter()
            .map(|(symbol, timeframe, path)| summarize(symbol, timeframe, path))
            .collect()
    }
}

fn file_name(symbol: &Symbol, timeframe: Timeframe) -> String {
    format!("{symbol}_{timeframe}.csv")
}

/// The series a file name stands for, if it is a store file name.
fn parse_file_name(name: &str) -> Option<(Symbol, Timeframe)> {
    let (symbol, timeframe) = name.strip_suffix(".csv")?.rsplit_once('_')?;
    let timeframe = Timeframe::ALL
        .into_iter()
        .find(|tf| tf.as_str() == timeframe)?;
    Some((symbol.parse().ok()?, timeframe))
}

fn summarize(symbol: Symbol, timeframe: Timeframe, path: PathBuf) -> Result<SeriesInfo, DataError> {
    let mut reader = SeriesReader::from_path(&path)?;
    let mut bars = 0;
    let mut first = None;
    let mut last = None;
    while let Some(segment) = reader.next_segment(SUMMARY_SEGMENT)? {
        bars += segment.len();
        first = first.or_else(|| segment.first().map(|bar| bar.timestamp));
        last = segment.last().map(|bar| bar.timestamp).or(last);
    }
    match (first, last) {
        (Some(first), Some(last)) => Ok(SeriesInfo {
            symbol,
            timeframe,
            path,
            bars,
            first,
            last,
        }),
        // The reader fails on a file without bars before we get here.
        _ => Err(DataError::InvalidFile {
            path,
            message: "no bars".to_owned(),
        }),
    }
}

const SUMMARY_SEGMENT: usize = 65_536;

/// Reads a series file in segments, checking every row as it goes; the order
/// check and the line numbers carry on from one segment to the next.
pub struct SeriesReader {
    path: PathBuf,
    source: Box<dyn BufRead + Send>,
    /// The current line, without its line ending; reused for every line.
    line_buf: Vec<u8>,
    /// 1-based number of the line in `line_buf`.
    line: usize,
    bytes_read: u64,
    total_bytes: u64,
    rows: RowParser,
    bars: usize,
    /// The first of a run of blank lines: fine at the end of the file, an
    /// error if another row follows.
    blank_since: Option<usize>,
    finished: bool,
}

impl std::fmt::Debug for SeriesReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeriesReader")
            .field("path", &self.path)
            .field("line", &self.line)
            .field("bytes_read", &self.bytes_read)
            .field("total_bytes", &self.total_bytes)
            .field("bars", &self.bars)
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl SeriesReader {
    /// Opens any file in the store format (for files outside a store).
    pub fn from_path(path: impl Into<PathBuf>) -> Result<Self, DataError> {
        let path = path.into();
        match File::open(&path) {
            Ok(file) => Self::from_file(path, file),
            Err(error) => Err(DataError::io(path, error)),
        }
    }

    fn from_file(path: PathBuf, file: File) -> Result<Self, DataError> {
        let total_bytes = file
            .metadata()
            .map_err(|error| DataError::io(&path, error))?
            .len();
        Self::from_source(
            path,
            Box::new(BufReader::with_capacity(1 << 16, file)),
            total_bytes,
        )
    }

    /// Reads from any source; `path` is only used in errors.
    pub(crate) fn from_source(
        path: PathBuf,
        source: Box<dyn BufRead + Send>,
        total_bytes: u64,
    ) -> Result<Self, DataError> {
        let mut reader = Self {
            path,
            source,
            line_buf: Vec::with_capacity(128),
            line: 0,
            bytes_read: 0,
            total_bytes,
            rows: RowParser::default(),
            bars: 0,
            blank_since: None,
            finished: false,
        };
        if !reader.read_line()? {
            return Err(DataError::InvalidFile {
                path: reader.path,
                message: "no header".to_owned(),
            });
        }
        let header = line_text(&reader.line_buf, &reader.path, 1)?;
        validate::check_header(header)
            .map_err(|message| DataError::invalid(&reader.path, 1, message))?;
        Ok(reader)
    }

    /// The next at most `max_bars` bars (at least one is read even when
    /// `max_bars` is 0), or `None` at the end of the file. A file without any
    /// bar is an error. After an error or the end, it returns `None`.
    pub fn next_segment(&mut self, max_bars: usize) -> Result<Option<Vec<Bar>>, DataError> {
        if self.finished {
            return Ok(None);
        }
        let result = self.fill(max_bars.max(1));
        if !matches!(result, Ok(Some(_))) {
            self.finished = true;
        }
        result
    }

    /// Bytes consumed so far, header included; with [`Self::total_bytes`],
    /// the fraction done.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    /// The file's size when it was opened.
    pub fn total_bytes(&self) -> u64 {
        self.total_bytes
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every remaining bar.
    pub fn read_to_end(mut self) -> Result<Vec<Bar>, DataError> {
        // About 60 bytes a row in practice; a guess only saves reallocations.
        let guess =
            usize::try_from(self.total_bytes.saturating_sub(self.bytes_read) / 48).unwrap_or(0);
        let mut bars = Vec::with_capacity(guess.min(1 << 24));
        while let Some(segment) = self.next_segment(1 << 16)? {
            bars.extend_from_slice(&segment);
        }
        Ok(bars)
    }

    fn fill(&mut self, max_bars: usize) -> Result<Option<Vec<Bar>>, DataError> {
        let mut bars = Vec::with_capacity(max_bars.min(1 << 14));
        while bars.len() < max_bars && self.read_line()? {
            if self.line_buf.iter().all(u8::is_ascii_whitespace) {
                self.blank_since.get_or_insert(self.line);
                continue;
            }
            if let Some(blank) = self.blank_since {
                return Err(DataError::invalid(
                    &self.path,
                    blank,
                    "blank line between rows",
                ));
            }
            let text = line_text(&self.line_buf, &self.path, self.line)?;
            let bar = self
                .rows
                .parse(text, self.line)
                .map_err(|message| DataError::invalid(&self.path, self.line, message))?;
            bars.push(bar);
        }
        self.bars += bars.len();
        if !bars.is_empty() {
            Ok(Some(bars))
        } else if self.bars == 0 {
            Err(DataError::InvalidFile {
                path: self.path.clone(),
                message: "no bars".to_owned(),
            })
        } else {
            Ok(None)
        }
    }

    /// Reads the next line into `line_buf` without its line ending; false at
    /// the end of the input.
    fn read_line(&mut self) -> Result<bool, DataError> {
        self.line_buf.clear();
        // One byte over the cap tells a too-long line from one that fits.
        let limit = MAX_LINE_BYTES as u64 + 2;
        let read = (&mut self.source)
            .take(limit)
            .read_until(b'\n', &mut self.line_buf)
            .map_err(|error| DataError::io(&self.path, error))?;
        if read == 0 {
            return Ok(false);
        }
        self.line += 1;
        self.bytes_read += read as u64;
        if self.line_buf.last() == Some(&b'\n') {
            self.line_buf.pop();
            if self.line_buf.last() == Some(&b'\r') {
                self.line_buf.pop();
            }
        }
        if self.line_buf.len() > MAX_LINE_BYTES {
            return Err(DataError::invalid(
                &self.path,
                self.line,
                format!("line is longer than {MAX_LINE_BYTES} bytes"),
            ));
        }
        Ok(true)
    }
}

fn line_text<'a>(bytes: &'a [u8], path: &Path, line: usize) -> Result<&'a str, DataError> {
    std::str::from_utf8(bytes)
        .map_err(|_| DataError::invalid(path, line, "line is not valid UTF-8"))
}

pub(crate) fn write_bars(out: &mut impl Write, bars: &[Bar]) -> io::Result<()> {
    out.write_all(validate::HEADER_LINE.as_bytes())?;
    out.write_all(b"\n")?;
    let mut line = String::with_capacity(128);
    for bar in bars {
        line.clear();
        validate::write_timestamp(&mut line, bar.timestamp);
        for value in [bar.open, bar.high, bar.low, bar.close, bar.volume] {
            line.push(',');
            validate::write_number(&mut line, value);
        }
        line.push('\n');
        out.write_all(line.as_bytes())?;
    }
    Ok(())
}

/// Writes `target` through a temporary file beside it: the body is written,
/// flushed and synced, then the file is renamed over `target`. On any error
/// the temporary file is removed and `target` is untouched.
fn write_atomically(
    target: &Path,
    body: impl FnOnce(&mut BufWriter<File>) -> io::Result<()>,
) -> Result<(), DataError> {
    let fail = |error| DataError::io(target, error);
    let (file, temp) = create_temp_beside(target).map_err(fail)?;
    let mut out = BufWriter::with_capacity(1 << 16, file);
    body(&mut out).map_err(fail)?;
    let file = out.into_inner().map_err(|error| fail(error.into_error()))?;
    file.sync_all().map_err(fail)?;
    drop(file);
    fs::rename(&temp.path, target).map_err(fail)?;
    temp.keep();
    sync_dir(target);
    Ok(())
}

/// Makes the rename itself durable. Best effort: not every platform can
/// open a directory, and the data is already safe in the file.
fn sync_dir(target: &Path) {
    #[cfg(unix)]
    if let Some(dir) = target.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        let _ = File::open(dir).and_then(|dir| dir.sync_all());
    }
    #[cfg(not(unix))]
    let _ = target;
}

/// Removes the temporary file when dropped, unless [`TempFile::keep`] was
/// called after the rename.
#[derive(Debug)]
struct TempFile {
    path: PathBuf,
    armed: bool,
}

impl TempFile {
    fn keep(mut self) {
        self.armed = false;
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if self.armed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Marks temporary file names; they start with a dot and do not end in `.csv`,
/// so `list` skips them.
const TEMP_MARK: &str = ".tmp-";

fn create_temp_beside(target: &Path) -> io::Result<(File, TempFile)> {
    let name = target
        .file_name()
        .and_then(|name| name.to_str())
        .ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "the target has no file name")
        })?;
    let dir = target.parent().unwrap_or(Path::new(""));
    let mut attempts = 0;
    loop {
        let path = dir.join(format!(".{name}{TEMP_MARK}{:016x}", random_u64()));
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(file) => return Ok((file, TempFile { path, armed: true })),
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists && attempts < 16 => {
                attempts += 1
            }
            Err(error) => return Err(error),
        }
    }
}

/// A random-enough number for temporary names: std's randomly keyed hasher
/// over a per-process counter, the process id and the time.
fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u32(std::process::id());
    if let Ok(since) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        hasher.write_u128(since.as_nanos());
    }
    hasher.finish()
}

fn divides(lower: Timeframe, higher: Timeframe) -> bool {
    let (lower, higher) = (
        lower.duration().num_seconds(),
        higher.duration().num_seconds(),
    );
    lower > 0 && higher % lower == 0
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;
    use crate::validate::parse_timestamp;
    use crate::validate::tests::Lcg;

    const SHIPPED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data");

    /// name, timeframe, rows, first bar, last bar (data/README.md).
    const SHIPPED_FILES: [(&str, Timeframe, usize, &str, &str); 4] = [
        (
            "BTCUSD",
            Timeframe::H1,
            20106,
            "2017-07-01T11:00:00Z",
            "2019-10-17T09:00:00Z",
        ),
        (
            "EURUSD",
            Timeframe::H1,
            6225,
            "2017-01-01T22:00:00Z",
            "2017-12-29T21:00:00Z",
        ),
        (
            "IBM",
            Timeframe::D1,
            3270,
            "2000-03-01T00:00:00Z",
            "2013-03-01T00:00:00Z",
        ),
        (
            "SP500",
            Timeframe::D1,
            5031,
            "1999-01-04T00:00:00Z",
            "2018-12-31T00:00:00Z",
        ),
    ];

    const HEADER: &str = "timestamp,open,high,low,close,volume\n";

    fn symbol(text: &str) -> Symbol {
        text.parse().unwrap()
    }

    fn at(text: &str) -> DateTime<Utc> {
        parse_timestamp(text).unwrap()
    }

    fn temp_store() -> (tempfile::TempDir, LocalStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path());
        (dir, store)
    }

    fn file_names(dir: &Path) -> Vec<String> {
        let mut names: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    fn rows(count: usize) -> String {
        let mut text = HEADER.to_owned();
        for hour in 0..count {
            text.push_str(&format!(
                "2017-01-02T{hour:02}:00:00Z,1.5,2,1,1.25,{hour}\n"
            ));
        }
        text
    }

    #[test]
    fn shipped_files_load_with_their_documented_rows_and_range() {
        let store = LocalStore::new(SHIPPED);
        for (name, timeframe, rows, first, last) in SHIPPED_FILES {
            let bars = store.read(&symbol(name), timeframe).unwrap();
            assert_eq!(bars.len(), rows, "{name}");
            assert_eq!(
                bars.first().map(|bar| bar.timestamp),
                Some(at(first)),
                "{name}"
            );
            assert_eq!(
                bars.last().map(|bar| bar.timestamp),
                Some(at(last)),
                "{name}"
            );
        }
        let eurusd = store.read(&symbol("EURUSD"), Timeframe::H1).unwrap();
        assert_eq!(
            eurusd[0],
            Bar {
                timestamp: at("2017-01-01T22:00:00Z"),
                open: 1.05236,
                high: 1.05253,
                low: 1.05221,
                close: 1.05227,
                volume: 143539993.3,
            }
        );
    }

    #[test]
    fn list_shows_the_shipped_series() {
        let listed = LocalStore::new(SHIPPED).list().unwrap();
        let summary: Vec<_> = listed
            .iter()
            .map(|info| {
                (
                    info.symbol.as_str(),
                    info.timeframe,
                    info.bars,
                    info.first,
                    info.last,
                )
            })
            .collect();
        let expected: Vec<_> = SHIPPED_FILES
            .iter()
            .map(|&(name, timeframe, rows, first, last)| {
                (name, timeframe, rows, at(first), at(last))
            })
            .collect();
        assert_eq!(summary, expected);
        assert_eq!(listed[1].path, Path::new(SHIPPED).join("EURUSD_1h.csv"));
    }

    #[test]
    fn malformed_files_are_reported_with_path_and_line() {
        let row = "2017-01-02T00:00:00Z,1.5,2,1,1.25,10\n";
        let cases: &[(&str, String, &str)] = &[
            (
                "bad header",
                format!("time,open,high,low,close,volume\n{row}"),
                r#":1: expected header "timestamp,open,high,low,close,volume", found "time,open,high,low,close,volume""#,
            ),
            (
                "wrong column count",
                format!("{HEADER}{row}2017-01-02T01:00:00Z,1.5,2,1,1.25\n"),
                ":3: expected 6 columns, found 5",
            ),
            (
                "too many columns",
                format!("{HEADER}2017-01-02T01:00:00Z,1.5,2,1,1.25,1,\n"),
                ":2: expected 6 columns, found 7",
            ),
            (
                "unparsable number",
                format!("{HEADER}{row}2017-01-02T01:00:00Z,1.5,2,1,1.2.5,10\n"),
                r#":3: column "close": cannot parse "1.2.5" as a number"#,
            ),
            (
                "empty number",
                format!("{HEADER}2017-01-02T01:00:00Z,1.5,2,,1.25,10\n"),
                r#":2: column "low": cannot parse "" as a number"#,
            ),
            (
                "bad timestamp",
                format!("{HEADER}2017-01-02 01:00,1.5,2,1,1.25,10\n"),
                r#":2: column "timestamp": cannot parse "2017-01-02 01:00" as a UTC timestamp (expected YYYY-MM-DDTHH:MM:SSZ)"#,
            ),
            (
                "NaN",
                format!("{HEADER}2017-01-02T01:00:00Z,NaN,2,1,1.25,10\n"),
                ":2: open is not a finite number (NaN)",
            ),
            (
                "infinite",
                format!("{HEADER}2017-01-02T01:00:00Z,1.5,inf,1,1.25,10\n"),
                ":2: high is not a finite number (inf)",
            ),
            (
                "unsorted",
                format!(
                    "{HEADER}2017-01-02T05:00:00Z,1.5,2,1,1.25,10\n2017-01-02T04:00:00Z,1.5,2,1,1.25,10\n"
                ),
                ":3: timestamp 2017-01-02T04:00:00Z is earlier than 2017-01-02T05:00:00Z on line 2; rows must be in ascending time order",
            ),
            (
                "duplicate timestamp",
                format!("{}2017-01-02T02:00:00Z,1.5,2,1,1.25,10\n", rows(3)),
                ":5: duplicate timestamp 2017-01-02T02:00:00Z (also on line 4)",
            ),
            (
                "duplicate through another offset",
                format!("{HEADER}{row}2017-01-02T01:00:00+01:00,1.5,2,1,1.25,10\n"),
                ":3: duplicate timestamp 2017-01-02T00:00:00Z (also on line 2)",
            ),
            (
                "high below low",
                format!("{HEADER}2017-01-02T01:00:00Z,1.5,1,2,1.5,10\n"),
                ":2: high 1 is below low 2",
            ),
            (
                "low above the body",
                format!("{HEADER}2017-01-02T01:00:00Z,1.5,2,1.3,1.25,10\n"),
                ":2: low 1.3 is above min(open, close) = 1.25",
            ),
            (
                "high below the body",
                format!("{HEADER}2017-01-02T01:00:00Z,1.5,1.75,1,1.8,10\n"),
                ":2: high 1.75 is below max(open, close) = 1.8",
            ),
            (
                "negative volume",
                format!("{HEADER}2017-01-02T01:00:00Z,1.5,2,1,1.25,-3\n"),
                ":2: volume is negative (-3)",
            ),
            ("empty file", String::new(), ": no header"),
            ("header only", HEADER.to_owned(), ": no bars"),
            (
                "header and blank lines",
                format!("{HEADER}\n \n"),
                ": no bars",
            ),
            (
                "blank line between rows",
                format!(
                    "{HEADER}{row}\n\n{}",
                    rows(2).replace(HEADER, "").replace("T00", "T05")
                ),
                ":3: blank line between rows",
            ),
            (
                "line too long",
                format!("{HEADER}{row}{}\n", "9".repeat(MAX_LINE_BYTES + 1)),
                ":3: line is longer than 8192 bytes",
            ),
        ];
        let (_dir, store) = temp_store();
        let name = symbol("T");
        let path = store.path(&name, Timeframe::H1);
        for (case, text, expected) in cases {
            fs::write(&path, text).unwrap();
            let error = store.read(&name, Timeframe::H1).unwrap_err();
            assert_eq!(
                error.to_string(),
                format!("{}{expected}", path.display()),
                "{case}"
            );
        }

        fs::write(
            &path,
            [
                HEADER.as_bytes(),
                b"2017-01-02T00:00:00Z,1.5,2,1,1.25,\xff\n",
            ]
            .concat(),
        )
        .unwrap();
        let error = store.read(&name, Timeframe::H1).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("{}:2: line is not valid UTF-8", path.display())
        );
    }

    #[test]
    fn lenient_forms_are_accepted() {
        let (_dir, store) = temp_store();
        let name = symbol("T");
        let path = store.path(&name, Timeframe::H1);
        let expected = Bar {
            timestamp: at("2017-01-02T00:00:00Z"),
            open: 1.5,
            high: 2.0,
            low: 1.0,
            close: 1.25,
            volume: 10.0,
        };
        for text in [
            "timestamp,open,high,low,close,volume\r\n2017-01-02T00:00:00Z,1.5,2,1,1.25,10\r\n",
            "\u{feff}TIMESTAMP,Open,High,Low,Close,Volume\n2017-01-02T00:00:00Z,1.5,2,1,1.25,10",
            "timestamp,open,high,low,close,volume\n2017-01-02T01:00:00+01:00,1.50,2.0,1,1.25,1e1\n\n\n",
        ] {
            fs::write(&path, text).unwrap();
            assert_eq!(
                store.read(&name, Timeframe::H1).unwrap(),
                [expected],
                "{text:?}"
            );
        }
    }

    #[test]
    fn segments_continue_checks_and_line_numbers() {
        let (_dir, store) = temp_store();
        let name = symbol("T");
        let text = rows(7);
        fs::write(store.path(&name, Timeframe::H1), &text).unwrap();
        let mut reader = store.open(&name, Timeframe::H1).unwrap();
        assert_eq!(reader.total_bytes(), text.len() as u64);
        assert_eq!(reader.bytes_read(), HEADER.len() as u64);
        let mut sizes = Vec::new();
        let mut all = Vec::new();
        while let Some(segment) = reader.next_segment(3).unwrap() {
            sizes.push(segment.len());
            all.extend(segment);
        }
        assert_eq!(sizes, [3, 3, 1]);
        assert_eq!(all.len(), 7);
        assert_eq!(all[6].timestamp, at("2017-01-02T06:00:00Z"));
        assert_eq!(reader.bytes_read(), reader.total_bytes());
        assert!(reader.next_segment(3).unwrap().is_none());
        assert_eq!(reader.next_segment(0).unwrap(), None);

        // Lines 2..=4 make the first segment; line 5 repeats line 4's time.
        let duplicate = text.replace("T03:00", "T02:00");
        fs::write(store.path(&name, Timeframe::H1), &duplicate).unwrap();
        let mut reader = store.open(&name, Timeframe::H1).unwrap();
        assert_eq!(
            reader.next_segment(3).unwrap().map(|bars| bars.len()),
            Some(3)
        );
        let error = reader.next_segment(3).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "{}:5: duplicate timestamp 2017-01-02T02:00:00Z (also on line 4)",
                reader.path().display()
            )
        );
        assert!(
            reader.next_segment(3).unwrap().is_none(),
            "an error ends the reader"
        );

        let unsorted = text.replace("T03:00", "T01:30");
        fs::write(store.path(&name, Timeframe::H1), &unsorted).unwrap();
        let mut reader = store.open(&name, Timeframe::H1).unwrap();
        assert_eq!(
            reader.next_segment(3).unwrap().map(|bars| bars.len()),
            Some(3)
        );
        assert_eq!(
            reader.next_segment(3).unwrap_err().to_string(),
            format!(
                "{}:5: timestamp 2017-01-02T01:30:00Z is earlier than 2017-01-02T02:00:00Z on line 4; rows must be in ascending time order",
                reader.path().display()
            )
        );
    }

    #[test]
    fn zero_max_bars_still_makes_progress() {
        let mut reader =
            SeriesReader::from_source(PathBuf::from("mem.csv"), Box::new(Cursor::new(rows(2))), 0)
                .unwrap();
        assert_eq!(
            reader.next_segment(0).unwrap().map(|bars| bars.len()),
            Some(1)
        );
        assert_eq!(
            reader.next_segment(0).unwrap().map(|bars| bars.len()),
            Some(1)
        );
        assert_eq!(reader.next_segment(0).unwrap(), None);
    }

    #[test]
    fn missing_series_and_paths() {
        let store = LocalStore::new("/nowhere/data");
        let eurusd = symbol("EURUSD");
        assert_eq!(
            store.path(&eurusd, Timeframe::H1),
            Path::new("/nowhere/data/EURUSD_1h.csv")
        );
        assert_eq!(
            store.path(&symbol("es_f"), Timeframe::M15),
            Path::new("/nowhere/data/es_f_15m.csv")
        );
        assert!(!store.exists(&eurusd, Timeframe::H1));
        assert!(LocalStore::new(SHIPPED).exists(&eurusd, Timeframe::H1));
        assert!(!LocalStore::new(SHIPPED).exists(&eurusd, Timeframe::D1));
        let error = store.read(&eurusd, Timeframe::H1).unwrap_err();
        assert!(matches!(error, DataError::NotFound { .. }));
        assert_eq!(
            error.to_string(),
            "no data for EURUSD 1h: /nowhere/data/EURUSD_1h.csv does not exist"
        );
        let error = store.list().unwrap_err();
        assert!(matches!(error, DataError::MissingDataDir { .. }));
        assert_eq!(
            error.to_string(),
            "data directory /nowhere/data does not exist"
        );
        let error = SeriesReader::from_path("/nowhere/x.csv").unwrap_err();
        assert_eq!(error.to_string(), "/nowhere/x.csv");
        let cause = std::error::Error::source(&error).map(ToString::to_string);
        assert!(cause.is_some_and(|cause| cause.contains("No such file")));
    }

    #[test]
    fn the_data_dir_comes_from_the_flag_then_the_environment() {
        let env = |value: &'static str| {
            move |name: &str| (name == "TRDR_DATA_DIR").then(|| value.to_owned())
        };
        let none = |_: &str| None;
        assert_eq!(
            LocalStore::resolve_dir_with(Some("/flag".into()), env("/env")),
            Path::new("/flag")
        );
        assert_eq!(
            LocalStore::resolve_dir_with(None, env("/env")),
            Path::new("/env")
        );
        assert_eq!(
            LocalStore::resolve_dir_with(None, env("")),
            Path::new("./data")
        );
        assert_eq!(
            LocalStore::resolve_dir_with(None, none),
            Path::new("./data")
        );
        assert_eq!(LocalStore::new("/x").dir(), Path::new("/x"));
    }

    #[test]
    fn shipped_files_round_trip_exactly() {
        let shipped = LocalStore::new(SHIPPED);
        let (dir, store) = temp_store();
        for (name, timeframe, ..) in SHIPPED_FILES {
            let name = symbol(name);
            let bars = shipped.read(&name, timeframe).unwrap();
            let path = store.write(&name, timeframe, &bars).unwrap();
            assert_eq!(path, store.path(&name, timeframe));
            assert_eq!(store.read(&name, timeframe).unwrap(), bars);
        }
        assert_eq!(
            file_names(dir.path()),
            [
                "BTCUSD_1h.csv",
                "EURUSD_1h.csv",
                "IBM_1d.csv",
                "SP500_1d.csv"
            ]
        );
    }

    #[test]
    fn extreme_values_round_trip() {
        let (_dir, store) = temp_store();
        let name = symbol("X");
        let bars = [
            Bar {
                timestamp: at("0000-01-01T00:00:00Z"),
                open: 5e-324,
                high: f64::MAX,
                low: 0.0,
                close: 1e21,
                volume: 0.1 + 0.2,
            },
            Bar {
                timestamp: at("2017-01-01T00:00:00.123456789Z"),
                open: 1.0 / 3.0,
                high: 1e300,
                low: -0.0,
                close: 1e-300,
                volume: 123456789012345680.0,
            },
        ];
        let path = store.write(&name, Timeframe::M1, &bars).unwrap();
        assert_eq!(store.read(&name, Timeframe::M1).unwrap(), bars);
        let text = fs::read_to_string(path).unwrap();
        assert!(
            !text.replace(validate::HEADER_LINE, "").contains('e'),
            "no exponents: {text}"
        );
        assert!(
            text.contains("\n2017-01-01T00:00:00.123456789Z,0.3333333333333333,"),
            "{text}"
        );
    }

    #[test]
    fn writes_are_atomic_and_leave_no_temporary_files() {
        let (dir, store) = temp_store();
        let nested = LocalStore::new(dir.path().join("new/data"));
        let name = symbol("EURUSD");
        let bars = LocalStore::new(SHIPPED).read(&name, Timeframe::H1).unwrap();
        let path = nested.write(&name, Timeframe::H1, &bars[..100]).unwrap();
        assert_eq!(file_names(nested.dir()), ["EURUSD_1h.csv"]);
        nested.write(&name, Timeframe::H1, &bars).unwrap();
        assert_eq!(file_names(nested.dir()), ["EURUSD_1h.csv"]);
        let before = fs::read(&path).unwrap();

        // Invalid bars: refused before anything is written.
        let mut bad = bars.clone();
        bad[7].volume = -1.0;
        let error = nested.write(&name, Timeframe::H1, &bad).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "{}: cannot write bars[7] (2017-01-02T05:00:00Z): volume is negative (-1)",
                path.display()
            )
        );
        let error = nested.write(&name, Timeframe::H1, &[]).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("{}: no bars to write", path.display())
        );

        // A failure half way through the body: the guard removes the
        // temporary file and the target keeps its old bytes.
        let error = write_atomically(&path, |out| {
            write_bars(out, &bars[..10])?;
            Err(io::Error::other("disk on fire"))
        })
        .unwrap_err();
        assert_eq!(error.to_string(), path.display().to_string());
        assert_eq!(
            std::error::Error::source(&error).map(ToString::to_string),
            Some("disk on fire".to_owned())
        );
        assert_eq!(fs::read(&path).unwrap(), before);
        assert_eq!(file_names(nested.dir()), ["EURUSD_1h.csv"]);

        // The temporary file really is there while the body runs.
        let mut seen = Vec::new();
        write_atomically(&path, |out| {
            seen = file_names(nested.dir());
            write_bars(out, &bars)
        })
        .unwrap();
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert!(seen[0].starts_with(".EURUSD_1h.csv.tmp-"), "{seen:?}");
        assert_eq!(file_names(nested.dir()), ["EURUSD_1h.csv"]);
        assert_eq!(fs::read(&path).unwrap(), before);
        drop(store);
    }

    #[test]
    fn list_ignores_files_that_are_not_series() {
        let (dir, store) = temp_store();
        let text = rows(3);
        for name in [
            "EURUSD_1h.csv",
            "AAA_1d.csv",
            "AAA_1h.csv",
            "es_f_1h.csv",
            "eurusd_1H.csv",
            "EURUSD_2h.csv",
            "EURUSD.csv",
            "BAD SYMBOL_1h.csv",
            "EURUSD_1h.csv.bak",
            ".EURUSD_1h.csv.tmp-0123456789abcdef",
            "notes.txt",
            "README.md",
        ] {
            fs::write(dir.path().join(name), &text).unwrap();
        }
        fs::create_dir(dir.path().join("DIR_1h.csv")).unwrap();
        let listed: Vec<_> = store
            .list()
            .unwrap()
            .into_iter()
            .map(|info| (info.symbol.to_string(), info.timeframe, info.bars))
            .collect();
        assert_eq!(
            listed,
            [
                ("AAA".to_owned(), Timeframe::H1, 3),
                ("AAA".to_owned(), Timeframe::D1, 3),
                ("EURUSD".to_owned(), Timeframe::H1, 3),
                ("es_f".to_owned(), Timeframe::H1, 3),
            ]
        );

        fs::write(dir.path().join("BROKEN_1h.csv"), HEADER).unwrap();
        let error = store.list().unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("{}: no bars", dir.path().join("BROKEN_1h.csv").display())
        );

        let empty = tempfile::tempdir().unwrap();
        assert_eq!(LocalStore::new(empty.path()).list().unwrap(), []);
    }

    /// Reads `bytes` in small segments; checks what an accepted file promises.
    fn read_never_panics(bytes: Vec<u8>) -> usize {
        let total = bytes.len() as u64;
        let Ok(mut reader) = SeriesReader::from_source(
            PathBuf::from("fuzz.csv"),
            Box::new(Cursor::new(bytes)),
            total,
        ) else {
            return 0;
        };
        let mut previous: Option<DateTime<Utc>> = None;
        let mut count = 0;
        while let Ok(Some(segment)) = reader.next_segment(2) {
            for bar in segment {
                assert_eq!(validate::check_values(&bar), Ok(()));
                assert!(previous.is_none_or(|previous| previous < bar.timestamp));
                previous = Some(bar.timestamp);
                count += 1;
            }
        }
        assert!(reader.bytes_read() <= total);
        count
    }

    #[test]
    fn random_input_never_panics() {
        let mut rng = Lcg(42);
        for _ in 0..300 {
            let length = rng.below(600);
            let bytes: Vec<u8> = (0..length)
                .map(|_| u8::try_from(rng.below(256)).unwrap_or(0))
                .collect();
            read_never_panics(bytes.clone());
            read_never_panics([HEADER.as_bytes(), &bytes].concat());
        }

        // Lines built from the format's own pieces, so some survive parsing.
        const PIECES: [&str; 16] = [
            "2017-01-02T00:00:00Z",
            "2017-01-02T01:00:00Z",
            "2017-01-02T00:30:00+01:00",
            "1.5",
            "2",
            "1",
            "-1",
            "NaN",
            "",
            ",",
            ",",
            ",",
            "\n",
            "\r\n",
            "x",
            "1e400",
        ];
        let mut accepted = 0;
        for _ in 0..3000 {
            let mut text = HEADER.to_owned();
            for _ in 0..rng.below(40) {
                text.push_str(PIECES[rng.below(PIECES.len())]);
            }
            accepted += read_never_panics(text.into_bytes());
        }

        // Shipped rows with bytes flipped, swapped lines and cut ends.
        let source = fs::read(Path::new(SHIPPED).join("EURUSD_1h.csv")).unwrap();
        for _ in 0..300 {
            let mut bytes = source[..2000 + rng.below(2000)].to_vec();
            for _ in 0..rng.below(4) {
                let at = rng.below(bytes.len());
                bytes[at] = u8::try_from(rng.below(256)).unwrap_or(0);
            }
            accepted += read_never_panics(bytes);
        }
        assert!(accepted > 0);
    }
}
