//! Bar timeframes: `1m 5m 15m 30m 1h 4h 1d 1w`, parsed in any case, shown in one form.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Duration, DurationRound, Utc};
use serde::{Deserialize, Serialize};

/// The length of one bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Timeframe {
    M1,
    M5,
    M15,
    M30,
    H1,
    H4,
    D1,
    W1,
}

impl Timeframe {
    pub const ALL: [Timeframe; 8] = [
        Timeframe::M1,
        Timeframe::M5,
        Timeframe::M15,
        Timeframe::M30,
        Timeframe::H1,
        Timeframe::H4,
        Timeframe::D1,
        Timeframe::W1,
    ];

    /// The canonical name, used in file names and shown to users.
    pub fn as_str(self) -> &'static str {
        match self {
            Timeframe::M1 => "1m",
            Timeframe::M5 => "5m",
            Timeframe::M15 => "15m",
            Timeframe::M30 => "30m",
            Timeframe::H1 => "1h",
            Timeframe::H4 => "4h",
            Timeframe::D1 => "1d",
            Timeframe::W1 => "1w",
        }
    }

    pub fn duration(self) -> Duration {
        match self {
            Timeframe::M1 => Duration::minutes(1),
            Timeframe::M5 => Duration::minutes(5),
            Timeframe::M15 => Duration::minutes(15),
            Timeframe::M30 => Duration::minutes(30),
            Timeframe::H1 => Duration::hours(1),
            Timeframe::H4 => Duration::hours(4),
            Timeframe::D1 => Duration::days(1),
            Timeframe::W1 => Duration::weeks(1),
        }
    }

    /// Whether bars are shorter than a day.
    pub fn is_intraday(self) -> bool {
        self.duration() < Duration::days(1)
    }

    /// The opening time of the bar containing `at`. Bars are aligned to UTC
    /// midnight (`4h` bars open at 00, 04, ... 20 UTC); weeks open on Monday.
    pub fn bar_start(self, at: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Timeframe::W1 => {
                let day = Timeframe::D1.bar_start(at);
                day - Duration::days(i64::from(day.weekday().num_days_from_monday()))
            }
            other => at
                .duration_trunc(other.duration())
                .expect("timeframes are far shorter than the representable time range"),
        }
    }
}

impl fmt::Display for Timeframe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text is not a supported timeframe.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown timeframe {0:?}; expected one of 1m, 5m, 15m, 30m, 1h, 4h, 1d, 1w")]
pub struct UnknownTimeframe(pub String);

impl FromStr for Timeframe {
    type Err = UnknownTimeframe;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let wanted = text.trim();
        Self::ALL
            .into_iter()
            .find(|tf| tf.as_str().eq_ignore_ascii_case(wanted))
            .ok_or_else(|| UnknownTimeframe(text.to_owned()))
    }
}

impl TryFrom<String> for Timeframe {
    type Error = UnknownTimeframe;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl From<Timeframe> for String {
    fn from(tf: Timeframe) -> Self {
        tf.as_str().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn parses_any_case_and_shows_one_form() {
        assert_eq!("1H".parse(), Ok(Timeframe::H1));
        assert_eq!(" 1h ".parse(), Ok(Timeframe::H1));
        assert_eq!("4H".parse::<Timeframe>().unwrap().to_string(), "4h");
        assert_eq!("1D".parse(), Ok(Timeframe::D1));
        for tf in Timeframe::ALL {
            assert_eq!(tf.as_str().parse(), Ok(tf));
        }
        let err = "2h".parse::<Timeframe>().unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"unknown timeframe "2h"; expected one of 1m, 5m, 15m, 30m, 1h, 4h, 1d, 1w"#
        );
    }

    #[test]
    fn bars_start_on_utc_boundaries() {
        let at = Utc.with_ymd_and_hms(2026, 11, 26, 13, 47, 12).unwrap(); // a Thursday
        let start = |tf: Timeframe| tf.bar_start(at).to_rfc3339();
        assert_eq!(start(Timeframe::M15), "2026-11-26T13:45:00+00:00");
        assert_eq!(start(Timeframe::H1), "2026-11-26T13:00:00+00:00");
        assert_eq!(start(Timeframe::H4), "2026-11-26T12:00:00+00:00");
        assert_eq!(start(Timeframe::D1), "2026-11-26T00:00:00+00:00");
        assert_eq!(start(Timeframe::W1), "2026-11-23T00:00:00+00:00");
    }
}
