//! Timestamps: the forms recognised in a time column, epochs by magnitude,
//! and a time format given by the mapping flags.

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, Utc};

use super::options::{EpochUnit, TimeFormat, Timezone};

/// How a time text becomes an instant: the format, and the zone of texts
/// without one.
#[derive(Debug, Clone)]
pub(super) struct TimeParser {
    pub(super) format: TimeFormat,
    pub(super) timezone: Timezone,
}

impl TimeParser {
    fn offset_seconds(&self) -> i64 {
        i64::from(self.timezone.seconds_east())
    }

    pub(super) fn parse(&self, text: &str) -> Option<DateTime<Utc>> {
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

    pub(super) fn describe(&self) -> String {
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
/// Parses one timestamp in any of the forms in the module documentation; a
/// time of day without a zone is `default_offset` seconds east of UTC.
pub(super) fn parse_timestamp(text: &str, default_offset: i64) -> Option<DateTime<Utc>> {
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
pub(super) struct Cursor<'a> {
    pub(super) bytes: &'a [u8],
    pub(super) pos: usize,
}

impl Cursor<'_> {
    pub(super) fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    pub(super) fn done(&self) -> bool {
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
    pub(super) fn digits(&mut self) -> Option<(u32, usize)> {
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

pub(super) fn parse_date(cursor: &mut Cursor<'_>) -> Option<NaiveDate> {
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

pub(super) fn parse_time(cursor: &mut Cursor<'_>) -> Option<NaiveTime> {
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
pub(super) fn parse_zone(cursor: &mut Cursor<'_>) -> Option<Option<i64>> {
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
    use chrono::SecondsFormat;

    use super::*;

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
}
