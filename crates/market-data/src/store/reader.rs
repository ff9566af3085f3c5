//! Reading a series file in segments, every row checked as it is read.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use crate::validate::{self, MAX_LINE_BYTES, RowParser};
use crate::{Bar, DataError};

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

    pub(super) fn from_file(path: PathBuf, file: File) -> Result<Self, DataError> {
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

#[cfg(test)]
mod tests {
    use std::fs;
    use std::io::Cursor;

    use chrono::{DateTime, Utc};

    use super::*;
    use crate::Timeframe;
    use crate::store::tests::{HEADER, SHIPPED, at, rows, symbol, temp_store};
    use crate::validate::tests::Lcg;

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
