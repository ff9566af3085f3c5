//! Argument parsers shared by commands, and the fuzz harness of the
//! arguments the commands parse (dates, lists, the import mapping flags).

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

/// `YYYY-MM-DD`, `YYYY-MM-DD HH:MM:SS` or RFC 3339; times without a zone are
/// UTC. The year is four digits and the time falls within years 0000-9999
/// in UTC (chrono alone would take `-2017-03-01` as 2018 BC).
pub(crate) fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    let four_digit_year = text
        .as_bytes()
        .get(..5)
        .is_some_and(|head| head[..4].iter().all(u8::is_ascii_digit) && head[4] == b'-');
    let parsed = if !four_digit_year {
        None
    } else if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        Some(time.with_timezone(&Utc))
    } else if let Ok(time) = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S") {
        Some(time.and_utc())
    } else if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        Some(date.and_time(chrono::NaiveTime::MIN).and_utc())
    } else {
        None
    };
    parsed
        .filter(|time| (0..=9999).contains(&chrono::Datelike::year(time)))
        .ok_or_else(|| {
            format!("{text:?} is not a time; use YYYY-MM-DD, YYYY-MM-DD HH:MM:SS or RFC 3339")
        })
}

/// The fuzz harness of argument values: the libFuzzer target `cli_args`
/// (which includes this file) and the property test below call it. The
/// first byte picks the argument: `--start`/`--end` (a date), `--symbols`
/// or `--timeframes` (lists, split at commas as clap's `value_delimiter`
/// does), or one of `trdr data import`'s `--timestamp-column`, `--columns`,
/// `--time-format` and `--timezone`. Accepted values print and parse back
/// the same (a time format is then used on the text itself); a refused one
/// quotes the text it refuses. Returns whether the value was accepted.
#[cfg(any(test, fuzzing))]
pub(crate) fn fuzz_argument(data: &[u8]) -> bool {
    use market_data::{
        ColumnMap, InvalidImportOption, Symbol, TimeFormat, Timeframe, TimestampColumns, Timezone,
    };

    fn refused(err: &InvalidImportOption, text: &str) -> bool {
        let shown = err.to_string();
        assert!(shown.contains("\": "), "{shown}");
        assert!(!text.is_empty() || shown.starts_with("\"\""), "{shown}");
        false
    }

    fn list<T>(text: &str) -> bool
    where
        T: std::str::FromStr + std::fmt::Display + PartialEq + std::fmt::Debug,
        T::Err: std::fmt::Display,
    {
        let items: Result<Vec<T>, String> = text
            .split(',')
            .map(|item| item.parse::<T>().map_err(|err| err.to_string()))
            .collect();
        match items {
            Ok(items) => {
                assert_eq!(items.len(), text.split(',').count());
                for item in &items {
                    let back = item.to_string().parse::<T>().ok();
                    assert_eq!(back.as_ref(), Some(item), "{item} does not round-trip");
                }
                true
            }
            Err(message) => {
                assert!(!message.is_empty());
                false
            }
        }
    }

    let Some((&choice, rest)) = data.split_first() else {
        return false;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return false;
    };
    match choice % 7 {
        0 => match parse_time(text) {
            Ok(time) => {
                assert_eq!(parse_time(&time.to_rfc3339()), Ok(time));
                true
            }
            Err(message) => {
                assert!(message.starts_with(&format!("{text:?} is not a time")));
                false
            }
        },
        1 => list::<Symbol>(text),
        2 => list::<Timeframe>(text),
        3 => match text.parse::<TimestampColumns>() {
            Ok(TimestampColumns::Single(column)) => !column.as_str().is_empty(),
            Ok(TimestampColumns::DateAndTime { date, time }) => {
                !date.as_str().is_empty() && !time.as_str().is_empty()
            }
            Err(err) => refused(&err, text),
        },
        4 => match text.parse::<ColumnMap>() {
            Ok(map) => map != ColumnMap::default(),
            Err(err) => refused(&err, text),
        },
        5 => match text.parse::<TimeFormat>() {
            Ok(TimeFormat::Pattern(pattern)) => {
                // What the importer does with a pattern, on any text.
                let _ = DateTime::parse_from_str(text, &pattern);
                let _ = NaiveDateTime::parse_from_str(text, &pattern);
                let _ = NaiveDate::parse_from_str(text, &pattern);
                true
            }
            Ok(_) => true,
            Err(err) => refused(&err, text),
        },
        _ => match text.parse::<Timezone>() {
            Ok(zone) => {
                assert_eq!(zone.to_string().parse::<Timezone>().ok(), Some(zone));
                true
            }
            Err(err) => refused(&err, text),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pieces of argument values that mutations splice in.
    const ARGUMENT_TOKENS: &[&str] = &[
        ",",
        "=",
        "-",
        ":",
        "T",
        "Z",
        "+",
        " ",
        "%",
        "%Y",
        "%d",
        "%H",
        "%z",
        "%s",
        "%.f",
        "%:z",
        "%#z",
        "%e",
        "%-d",
        "%%",
        "2017-03-01",
        "23:59:60",
        "EURUSD",
        "..",
        "1h",
        "4H",
        "close",
        "open",
        "volume",
        "adj_close",
        "UTC",
        "GMT",
        "+02:00",
        "\u{e9}",
        "\u{0}",
    ];

    /// Found by libFuzzer (`cli_args`): chrono's `%Y` takes a sign and more
    /// than four digits, so `-2017-03-01` was accepted as 2018 BC.
    #[test]
    fn years_are_four_digits_and_stay_within_0000_to_9999() {
        for text in [
            "-2017-03-01",
            "+2017-03-01",
            "20170-03-01",
            "917-03-01",
            "0000-01-01T00:00:00+01:00",
            "9999-12-31T23:00:00-01:00",
        ] {
            assert!(parse_time(text).is_err(), "{text:?} was accepted");
            assert!(!fuzz_argument(format!("\u{0}{text}").as_bytes()));
        }
        assert_eq!(
            parse_time("0000-01-01").unwrap().to_rfc3339(),
            "0000-01-01T00:00:00+00:00"
        );
    }

    #[test]
    fn argument_values_never_panic_and_round_trip() {
        let accepted = fuzz_corpus::check("cli_args", 3_000, ARGUMENT_TOKENS, fuzz_argument);
        assert!(
            accepted > 300,
            "only {accepted} of 3000 values were accepted"
        );
    }

    #[test]
    fn times_parse_in_the_documented_forms() {
        let expected = "2017-03-01T00:00:00+00:00";
        assert_eq!(parse_time("2017-03-01").unwrap().to_rfc3339(), expected);
        assert_eq!(
            parse_time("2017-03-01 00:00:00").unwrap().to_rfc3339(),
            expected
        );
        assert_eq!(
            parse_time("2017-03-01T01:00:00+01:00")
                .unwrap()
                .to_rfc3339(),
            expected
        );
        assert_eq!(
            parse_time("01/03/2017").unwrap_err(),
            r#""01/03/2017" is not a time; use YYYY-MM-DD, YYYY-MM-DD HH:MM:SS or RFC 3339"#
        );
    }
}
