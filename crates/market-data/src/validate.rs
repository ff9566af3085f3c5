//! The store's CSV row format: parsing the header, timestamps and numbers,
//! and the rules every bar must follow, with messages that show the values.
//!
//! Rules (the same when reading a file and before writing one):
//! - header `timestamp,open,high,low,close,volume` (any case);
//! - exactly six columns; timestamps RFC 3339, normally
//!   `YYYY-MM-DDTHH:MM:SSZ`; numbers plain decimals;
//! - every number finite and not negative;
//! - `high >= low`, `low <= min(open, close)`, `high >= max(open, close)`;
//! - timestamps strictly ascending (so also unique).
//!
//! A timestamp off the timeframe's bar boundary is *not* an error: daily
//! files label a session with its date at 00:00Z, whatever the exchange hours.

use std::fmt::Write as _;

use chrono::{DateTime, Datelike, NaiveDate, SecondsFormat, Timelike, Utc};

use crate::Bar;

pub(crate) const HEADER: [&str; 6] = ["timestamp", "open", "high", "low", "close", "volume"];
pub(crate) const HEADER_LINE: &str = "timestamp,open,high,low,close,volume";

/// Longest line accepted. Anything the writer produces is far shorter (a
/// row of five `f64::MAX` values is about 1,600 bytes); the cap keeps a
/// binary file without newlines from being read into memory whole.
pub(crate) const MAX_LINE_BYTES: usize = 8192;

/// Checks the header line (without its line ending; a UTF-8 BOM is allowed).
pub(crate) fn check_header(line: &str) -> Result<(), String> {
    let text = line.strip_prefix('\u{feff}').unwrap_or(line);
    let mut names = text.split(',').map(str::trim);
    let matches = HEADER.iter().all(|want| {
        names
            .next()
            .is_some_and(|name| name.eq_ignore_ascii_case(want))
    });
    if matches && names.next().is_none() {
        Ok(())
    } else {
        Err(format!(
            "expected header {HEADER_LINE:?}, found {:?}",
            shorten(text)
        ))
    }
}

/// Parses data rows one at a time and keeps what the order check needs, so
/// that a file can be read in segments with the checks running across them.
#[derive(Debug, Default)]
pub(crate) struct RowParser {
    /// The previous row's timestamp and line.
    previous: Option<(DateTime<Utc>, usize)>,
}

impl RowParser {
    /// Parses one data row (without its line ending) found on 1-based `line`.
    pub(crate) fn parse(&mut self, text: &str, line: usize) -> Result<Bar, String> {
        let mut fields = [""; 6];
        let mut count = 0;
        for field in text.split(',') {
            if let Some(slot) = fields.get_mut(count) {
                *slot = field;
            }
            count += 1;
        }
        if count != fields.len() {
            return Err(format!("expected 6 columns, found {count}"));
        }
        let [timestamp, open, high, low, close, volume] = fields;
        let timestamp = parse_timestamp(timestamp.trim_ascii()).ok_or_else(|| {
            format!(
                "column \"timestamp\": cannot parse {:?} as a UTC timestamp (expected YYYY-MM-DDTHH:MM:SSZ)",
                shorten(timestamp)
            )
        })?;
        let bar = Bar {
            timestamp,
            open: parse_number("open", open)?,
            high: parse_number("high", high)?,
            low: parse_number("low", low)?,
            close: parse_number("close", close)?,
            volume: parse_number("volume", volume)?,
        };
        check_values(&bar)?;
        if let Some((previous, previous_line)) = self.previous {
            if timestamp == previous {
                return Err(format!(
                    "duplicate timestamp {} (also on line {previous_line})",
                    format_timestamp(timestamp)
                ));
            }
            if timestamp < previous {
                return Err(format!(
                    "timestamp {} is earlier than {} on line {previous_line}; rows must be in ascending time order",
                    format_timestamp(timestamp),
                    format_timestamp(previous)
                ));
            }
        }
        self.previous = Some((timestamp, line));
        Ok(bar)
    }
}

fn parse_number(column: &str, text: &str) -> Result<f64, String> {
    text.trim_ascii().parse().map_err(|_| {
        format!(
            "column {column:?}: cannot parse {:?} as a number",
            shorten(text)
        )
    })
}

/// The value rules for one bar: finite, not negative, high/low around
/// open/close.
pub(crate) fn check_values(bar: &Bar) -> Result<(), String> {
    let named = [
        ("open", bar.open),
        ("high", bar.high),
        ("low", bar.low),
        ("close", bar.close),
        ("volume", bar.volume),
    ];
    for (name, value) in named {
        if !value.is_finite() {
            return Err(format!("{name} is not a finite number ({value})"));
        }
        if value < 0.0 {
            return Err(format!("{name} is negative ({value})"));
        }
    }
    if bar.high < bar.low {
        return Err(format!("high {} is below low {}", bar.high, bar.low));
    }
    let lowest = bar.open.min(bar.close);
    if bar.low > lowest {
        return Err(format!(
            "low {} is above min(open, close) = {lowest}",
            bar.low
        ));
    }
    let highest = bar.open.max(bar.close);
    if bar.high < highest {
        return Err(format!(
            "high {} is below max(open, close) = {highest}",
            bar.high
        ));
    }
    Ok(())
}

/// Checks bars about to be written: the value and order rules, plus a
/// timestamp the file format can hold (years 0000 to 9999). The message
/// names the offending index and timestamp.
pub(crate) fn check_bars(bars: &[Bar]) -> Result<(), String> {
    if bars.is_empty() {
        return Err("no bars to write".to_owned());
    }
    let mut previous: Option<DateTime<Utc>> = None;
    for (index, bar) in bars.iter().enumerate() {
        let at = || {
            format!(
                "cannot write bars[{index}] ({})",
                format_timestamp(bar.timestamp)
            )
        };
        if !(0..=9999).contains(&bar.timestamp.year()) {
            return Err(format!("{}: the year is outside 0000 to 9999", at()));
        }
        check_values(bar).map_err(|message| format!("{}: {message}", at()))?;
        if let Some(previous) = previous
            && bar.timestamp <= previous
        {
            let relation = if bar.timestamp == previous {
                "the same as"
            } else {
                "earlier than"
            };
            return Err(format!(
                "{}: timestamp is {relation} bars[{}] ({}); bars must be in ascending time order",
                at(),
                index - 1,
                format_timestamp(previous)
            ));
        }
        previous = Some(bar.timestamp);
    }
    Ok(())
}

/// Parses a UTC timestamp. The store's own shape `YYYY-MM-DDTHH:MM:SSZ` goes
/// through a hand parser; anything else (other offsets, fractions of a
/// second, leap seconds) through chrono's RFC 3339 parser.
pub(crate) fn parse_timestamp(text: &str) -> Option<DateTime<Utc>> {
    parse_plain_utc(text.as_bytes()).or_else(|| {
        DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|at| at.with_timezone(&Utc))
    })
}

fn parse_plain_utc(b: &[u8]) -> Option<DateTime<Utc>> {
    let [
        y0,
        y1,
        y2,
        y3,
        b'-',
        mo0,
        mo1,
        b'-',
        d0,
        d1,
        b'T',
        h0,
        h1,
        b':',
        mi0,
        mi1,
        b':',
        s0,
        s1,
        b'Z',
    ] = *b
    else {
        return None;
    };
    let digit = |byte: u8| {
        let value = byte.wrapping_sub(b'0');
        (value < 10).then_some(u32::from(value))
    };
    let two = |hi: u8, lo: u8| Some(digit(hi)? * 10 + digit(lo)?);
    let year = i32::try_from(two(y0, y1)? * 100 + two(y2, y3)?).ok()?;
    let date = NaiveDate::from_ymd_opt(year, two(mo0, mo1)?, two(d0, d1)?)?;
    let time = date.and_hms_opt(two(h0, h1)?, two(mi0, mi1)?, two(s0, s1)?)?;
    Some(time.and_utc())
}

/// Appends `at` in the store's form: `YYYY-MM-DDTHH:MM:SSZ`, or RFC 3339
/// with a fraction when `at` is not on a whole second.
pub(crate) fn write_timestamp(out: &mut String, at: DateTime<Utc>) {
    if at.nanosecond() == 0 && (0..=9999).contains(&at.year()) {
        // Infallible: writing to a String.
        let _ = write!(
            out,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            at.year(),
            at.month(),
            at.day(),
            at.hour(),
            at.minute(),
            at.second()
        );
    } else {
        out.push_str(&at.to_rfc3339_opts(SecondsFormat::AutoSi, true));
    }
}

pub(crate) fn format_timestamp(at: DateTime<Utc>) -> String {
    let mut out = String::with_capacity(20);
    write_timestamp(&mut out, at);
    out
}

/// Appends `value` so that it parses back to the same `f64`. `Display` for
/// `f64` writes the shortest digits that round-trip and never an exponent
/// (`1e21` is written out in full); `-0` is written as `0`.
pub(crate) fn write_number(out: &mut String, value: f64) {
    let value = if value == 0.0 { 0.0 } else { value };
    // Infallible: writing to a String.
    let _ = write!(out, "{value}");
}

/// At most 60 characters of `text`, for error messages about junk input.
fn shorten(text: &str) -> String {
    const KEEP: usize = 60;
    match text.char_indices().nth(KEEP) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use chrono::TimeZone;

    use super::*;

    fn bar(at: &str, ohlcv: [f64; 5]) -> Bar {
        let [open, high, low, close, volume] = ohlcv;
        Bar {
            timestamp: parse_timestamp(at).unwrap(),
            open,
            high,
            low,
            close,
            volume,
        }
    }

    #[test]
    fn header_is_case_insensitive_and_exact() {
        assert_eq!(check_header("timestamp,open,high,low,close,volume"), Ok(()));
        assert_eq!(check_header("Timestamp,Open,HIGH,low,close,Volume"), Ok(()));
        assert_eq!(
            check_header("\u{feff}timestamp,open,high,low,close,volume"),
            Ok(())
        );
        assert_eq!(
            check_header("timestamp,open,high,low,close"),
            Err(r#"expected header "timestamp,open,high,low,close,volume", found "timestamp,open,high,low,close""#.to_owned())
        );
        assert!(check_header("timestamp,open,high,low,close,volume,extra").is_err());
        assert!(check_header("").is_err());
    }

    #[test]
    fn fast_timestamps_agree_with_chrono() {
        for text in [
            "2017-01-01T22:00:00Z",
            "1999-12-31T23:59:59Z",
            "2000-02-29T00:00:00Z",
            "0000-01-01T00:00:00Z",
            "9999-12-31T23:59:59Z",
        ] {
            let fast = parse_plain_utc(text.as_bytes()).unwrap();
            let slow = DateTime::parse_from_rfc3339(text)
                .unwrap()
                .with_timezone(&Utc);
            assert_eq!(fast, slow, "{text}");
            assert_eq!(format_timestamp(fast), text);
        }
        for bad in [
            "2017-02-29T00:00:00Z",
            "2017-13-01T00:00:00Z",
            "2017-01-01T24:00:00Z",
            "2017-01-01T00:60:00Z",
            "2017-01-01 00:00:00",
            "2017-1-01T00:00:00Z",
            "+017-01-01T00:00:00Z",
            "",
        ] {
            assert_eq!(parse_timestamp(bad), None, "{bad}");
        }
    }

    #[test]
    fn other_rfc3339_forms_fall_back_to_chrono() {
        let at = Utc.with_ymd_and_hms(2017, 1, 1, 22, 0, 0).unwrap();
        assert_eq!(parse_timestamp("2017-01-01T23:00:00+01:00"), Some(at));
        assert_eq!(parse_timestamp("2017-01-01t22:00:00z"), Some(at));
        assert_eq!(parse_timestamp("2017-01-01T22:00:00.000Z"), Some(at));
        let fraction = parse_timestamp("2017-01-01T22:00:00.25Z").unwrap();
        assert_eq!(format_timestamp(fraction), "2017-01-01T22:00:00.250Z");
        assert_eq!(parse_timestamp(&format_timestamp(fraction)), Some(fraction));
    }

    #[test]
    fn numbers_are_written_without_exponents_and_round_trip() {
        let cases = [
            (1.05236, "1.05236"),
            (143539993.3, "143539993.3"),
            (102.0, "102"),
            (1e21, "1000000000000000000000"),
            (1e-7, "0.0000001"),
            (-0.0, "0"),
        ];
        for (value, text) in cases {
            let mut out = String::new();
            write_number(&mut out, value);
            assert_eq!(out, text);
        }
        for value in [
            f64::MAX,
            f64::MIN_POSITIVE,
            5e-324,
            0.1 + 0.2,
            1.0 / 3.0,
            123456789012345680.0,
        ] {
            let mut out = String::new();
            write_number(&mut out, value);
            assert!(!out.contains(['e', 'E']), "{out}");
            assert!(out.len() < MAX_LINE_BYTES / 5, "{value}");
            assert_eq!(out.parse::<f64>(), Ok(value));
        }
    }

    #[test]
    fn rows_report_the_column_and_the_values() {
        let mut parser = RowParser::default();
        let err = |text: &str| RowParser::default().parse(text, 2).unwrap_err();
        assert_eq!(
            err("2017-01-01T22:00:00Z,1,2,0.5,1"),
            "expected 6 columns, found 5"
        );
        assert_eq!(
            err("2017-01-01T22:00:00Z,1,x2,0.5,1,3"),
            r#"column "high": cannot parse "x2" as a number"#
        );
        assert_eq!(
            err("2017-01-01T22:00:00Z,1,2,0.5,1,inf"),
            "volume is not a finite number (inf)"
        );
        assert_eq!(
            err("2017-01-01T22:00:00Z,1,2,1.5,1,3"),
            "low 1.5 is above min(open, close) = 1"
        );
        assert_eq!(
            err("2017-01-01T22:00:00Z,1,1.5,0.5,2,3"),
            "high 1.5 is below max(open, close) = 2"
        );
        assert_eq!(
            err("2017-01-01T22:00:00Z,1,0.5,2,1,3"),
            "high 0.5 is below low 2"
        );
        assert_eq!(
            err("yesterday,1,2,0.5,1,3"),
            r#"column "timestamp": cannot parse "yesterday" as a UTC timestamp (expected YYYY-MM-DDTHH:MM:SSZ)"#
        );
        let ok = parser
            .parse(" 2017-01-01T22:00:00Z , 1 ,2,0.5,1,0", 2)
            .unwrap();
        assert_eq!(ok, bar("2017-01-01T22:00:00Z", [1.0, 2.0, 0.5, 1.0, 0.0]));
    }

    #[test]
    fn bars_to_write_name_the_index() {
        let good = bar("2017-01-01T22:00:00Z", [1.0, 2.0, 0.5, 1.5, 10.0]);
        let later = Bar {
            timestamp: good.timestamp + chrono::Duration::hours(1),
            ..good
        };
        assert_eq!(check_bars(&[good, later]), Ok(()));
        assert_eq!(check_bars(&[]), Err("no bars to write".to_owned()));
        assert_eq!(
            check_bars(&[
                good,
                Bar {
                    volume: -1.0,
                    ..later
                }
            ]),
            Err("cannot write bars[1] (2017-01-01T23:00:00Z): volume is negative (-1)".to_owned())
        );
        assert_eq!(
            check_bars(&[later, good]),
            Err("cannot write bars[1] (2017-01-01T22:00:00Z): timestamp is earlier than bars[0] (2017-01-01T23:00:00Z); bars must be in ascending time order".to_owned())
        );
        assert_eq!(
            check_bars(&[good, good]),
            Err("cannot write bars[1] (2017-01-01T22:00:00Z): timestamp is the same as bars[0] (2017-01-01T22:00:00Z); bars must be in ascending time order".to_owned())
        );
        let far = Bar {
            timestamp: Utc.with_ymd_and_hms(10000, 1, 1, 0, 0, 0).unwrap(),
            ..good
        };
        assert_eq!(
            check_bars(&[far]),
            Err(
                "cannot write bars[0] (+10000-01-01T00:00:00Z): the year is outside 0000 to 9999"
                    .to_owned()
            )
        );
    }

    /// A small deterministic generator, so the fuzz-like tests need no crate.
    pub(crate) struct Lcg(pub(crate) u64);

    impl Lcg {
        pub(crate) fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            self.0 >> 33
        }

        pub(crate) fn below(&mut self, n: usize) -> usize {
            usize::try_from(self.next()).unwrap_or(0) % n.max(1)
        }
    }

    #[test]
    fn mutated_rows_never_panic_and_accepted_rows_obey_the_rules() {
        const SEED_ROWS: [&str; 3] = [
            "2017-01-01T22:00:00Z,1.05236,1.05253,1.05221,1.05227,143539993.3",
            "2017-07-01T11:00:00Z,2505.56,2513.38,2495.12,2509.17,114.6",
            "1999-01-04T00:00:00Z,1229.22998,1248.810059,1219.099976,1228.099976,877000000",
        ];
        const ALPHABET: &[u8] = b"0123456789.,-+eEZT:naif \t\r";
        let mut rng = Lcg(7);
        let mut accepted = 0;
        for round in 0..20_000 {
            let mut bytes = SEED_ROWS[round % SEED_ROWS.len()].as_bytes().to_vec();
            for _ in 0..=rng.below(4) {
                let at = rng.below(bytes.len() + 1);
                match rng.below(4) {
                    0 if at < bytes.len() => {
                        bytes.remove(at);
                    }
                    1 => bytes.insert(at, ALPHABET[rng.below(ALPHABET.len())]),
                    2 if at < bytes.len() => bytes[at] = ALPHABET[rng.below(ALPHABET.len())],
                    _ => bytes.insert(at, u8::try_from(rng.below(256)).unwrap_or(0)),
                }
            }
            let Ok(text) = std::str::from_utf8(&bytes) else {
                continue;
            };
            let _ = check_header(text);
            if let Ok(parsed) = RowParser::default().parse(text, 2) {
                accepted += 1;
                assert_eq!(check_values(&parsed), Ok(()), "{text}");
            }
        }
        assert!(accepted > 0, "the mutations should leave some rows valid");
    }
}
