//! Argument parsers shared by commands.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

/// `YYYY-MM-DD`, `YYYY-MM-DD HH:MM:SS` or RFC 3339; times without a zone are UTC.
pub(crate) fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Ok(time.with_timezone(&Utc));
    }
    if let Ok(time) = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S") {
        return Ok(time.and_utc());
    }
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(date
            .and_hms_opt(0, 0, 0)
            .expect("midnight exists")
            .and_utc());
    }
    Err(format!(
        "{text:?} is not a time; use YYYY-MM-DD, YYYY-MM-DD HH:MM:SS or RFC 3339"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

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
