//! Fuzz harnesses: the libFuzzer targets in `fuzz/` call these, and the
//! property tests below run them on stable in CI with a fixed seed. Each
//! takes raw bytes, must return for every input without panicking, and
//! asserts what every accepted input has to satisfy.

use std::io::Cursor;

use crate::import::{Imported, parse_import_bytes};
use crate::store::{SeriesReader, write_bars};
use crate::{DataError, ImportOptions, validate};

/// The store's series reader: the first byte picks the segment size, the
/// rest is the file. Accepted files must hold valid, strictly ascending bars
/// whatever the segmenting, and survive a write and a re-read unchanged.
/// Returns whether the file was accepted.
pub fn series_csv(data: &[u8]) -> bool {
    let Some((&segment, file)) = data.split_first() else {
        return false;
    };
    let Some(bars) = read_series(file, usize::from(segment)) else {
        return false;
    };
    assert!(!bars.is_empty(), "a series without bars was accepted");
    validate::check_bars(&bars).expect("accepted bars are valid");
    let whole = read_series(file, 1 << 16).expect("the same file read in one segment");
    assert_eq!(bars, whole, "segmenting changed the bars");

    let mut written = Vec::new();
    write_bars(&mut written, &bars).expect("writing to memory");
    let again = read_series(&written, 1 << 16).expect("the store reads back what it wrote");
    assert_eq!(bars, again, "a write and re-read changed the bars");
    true
}

fn read_series(file: &[u8], segment: usize) -> Option<Vec<crate::Bar>> {
    let source = Box::new(Cursor::new(file.to_vec()));
    let mut reader =
        SeriesReader::from_source("fuzz.csv".into(), source, file.len() as u64).ok()?;
    let mut bars = Vec::new();
    loop {
        match reader.next_segment(segment) {
            Ok(Some(part)) => {
                assert!(!part.is_empty(), "an empty segment before the end");
                assert!(part.len() <= segment.max(1), "a segment over its size");
                bars.extend(part);
            }
            Ok(None) => return Some(bars),
            Err(_) => return None,
        }
    }
}

/// The importer: the first byte picks the options (the mapping flags a user
/// could give), the rest is the file. An accepted file gives finite bars,
/// strictly ascending, no more than it has lines; bars the store would
/// accept are written and read back unchanged, as `trdr data import` does.
/// An error names a line of the file. Returns whether the file was accepted.
pub fn import_csv(data: &[u8]) -> bool {
    let Some((&choice, file)) = data.split_first() else {
        return false;
    };
    let options = import_options(choice);
    match parse_import_bytes(file, &options) {
        Ok(Imported { bars, columns }) => {
            assert!(!bars.is_empty() && !columns.is_empty());
            let lines = file.split(|&b| b == b'\n').count();
            assert!(
                bars.len() <= lines,
                "{} bars from {lines} lines",
                bars.len()
            );
            assert!(bars.windows(2).all(|w| w[0].timestamp < w[1].timestamp));
            assert!(bars.iter().all(|b| {
                [b.open, b.high, b.low, b.close, b.volume]
                    .iter()
                    .all(|v| v.is_finite())
            }));
            if validate::check_bars(&bars).is_ok() {
                let mut written = Vec::new();
                write_bars(&mut written, &bars).expect("writing to memory");
                let again = read_series(&written, 1 << 16)
                    .expect("the store reads back the imported bars it wrote");
                assert_eq!(bars, again, "the store changed imported bars");
            }
            true
        }
        Err(
            DataError::Invalid { line, message, .. }
            | DataError::UnknownLayout { line, message, .. },
        ) => {
            let lines = file.split(|&b| b == b'\n').count();
            assert!(
                line >= 1 && line <= lines,
                "line {line} of {lines}: {message}"
            );
            assert!(!message.is_empty());
            false
        }
        Err(DataError::InvalidFile { message, .. }) => {
            assert!(!message.is_empty());
            false
        }
        Err(other) => panic!("an import from memory failed with {other}"),
    }
}

/// The options a choice byte stands for: bit 0 `--adjusted`, bits 1-2 the
/// time format, bits 3-4 the zone, bits 5-6 a mapping (none, by position,
/// by name).
fn import_options(choice: u8) -> ImportOptions {
    let time_format =
        ["auto", "epoch-s", "epoch-ms", "%d/%m/%Y %H:%M"][usize::from(choice >> 1 & 3)];
    let timezone = ["UTC", "+02:00", "-05:30", "+13:45"][usize::from(choice >> 3 & 3)];
    let (timestamp, columns) = match choice >> 5 & 3 {
        1 => (Some("1"), "open=2,high=3,low=4,close=5,volume=6"),
        2 => (Some("date,time"), "close=last,adj_close=7"),
        3 => (None, "volume=2"),
        _ => (None, ""),
    };
    ImportOptions {
        timestamp: timestamp.map(|text| text.parse().expect("a valid column")),
        columns: if columns.is_empty() {
            crate::ColumnMap::default()
        } else {
            columns.parse().expect("a valid mapping")
        },
        time_format: time_format.parse().expect("a valid format"),
        timezone: timezone.parse().expect("a valid zone"),
        adjusted: choice & 1 == 1,
    }
}

/// Pieces of the import shapes that mutations splice in (here and in the
/// importer's own mangled-input test).
#[cfg(test)]
pub(crate) const IMPORT_TOKENS: &[&str] = &[
    ",",
    ";",
    "\t",
    "\"",
    "\"\"",
    "'",
    "\n",
    "\r\n",
    " ",
    "T",
    "Z",
    ":",
    "/",
    ".",
    "-",
    "+",
    "AM",
    "PM",
    "GMT+0200",
    "+99:99",
    "<DATE>",
    "<TIME>",
    "Adj Close",
    "Price",
    "Ticker",
    "1483308000",
    "1704067200000",
    "1735689600000000",
    "20170101",
    "2024.01.02",
    "00:00",
    "99999999999999999999",
    "1e309",
    "1e308",
    "NaN",
    "-0",
    "0",
    "\u{e9}",
    "\u{feff}",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "date",
    "time",
    "last",
];

#[cfg(test)]
mod tests {
    use super::*;

    /// Pieces of the store format that mutations splice in.
    const SERIES_TOKENS: &[&str] = &[
        ",",
        "\n",
        "\r\n",
        " ",
        "T",
        "Z",
        ":",
        "-",
        ".",
        "e",
        "E+",
        "NaN",
        "inf",
        "-1",
        "0",
        "1e308",
        "1e309",
        "2017-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
        "timestamp,open,high,low,close,volume",
        "\u{feff}",
        "\u{e9}",
    ];

    #[test]
    fn import_csv_never_panics_and_keeps_what_it_accepts() {
        // The seeds are the shapes people export: every one imports.
        for (index, seed) in fuzz_corpus::seeds("import_csv").iter().enumerate() {
            assert!(import_csv(seed), "seed {index} of import_csv is refused");
        }
        let accepted = fuzz_corpus::check("import_csv", 4_000, IMPORT_TOKENS, import_csv);
        assert!(
            accepted > 400,
            "only {accepted} of 4000 inputs were accepted"
        );
    }

    #[test]
    fn series_csv_never_panics_and_accepts_only_valid_series() {
        let accepted = fuzz_corpus::check("series_csv", 3_000, SERIES_TOKENS, series_csv);
        assert!(
            accepted > 150,
            "only {accepted} of 3000 inputs were accepted"
        );
    }
}
