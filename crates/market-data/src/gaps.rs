//! Gaps in a series: where bars are missing, and whether that is a weekend,
//! a market closure or a hole in the data.
//!
//! A *gap* is any step between consecutive bars longer than the timeframe.
//! Its `from` is the last bar before it and `to` the first bar after it; the
//! *missing bars* are the bar times `from + k * timeframe` before `to`.
//!
//! Each gap gets one kind:
//!
//! - **Weekend**: every missing bar falls in the weekend.
//!   - Intraday: the weekend window runs from Friday 20:00 UTC to the end of
//!     Sunday (UTC), which holds FX's close (Friday 21:00/22:00 UTC to Sunday
//!     21:00/22:00 UTC) for both summer and winter time. The gap must also
//!     cover all of Saturday: a market closed for the weekend is closed all
//!     Saturday, whereas a few missing hours of a 24/7 market on a Sunday
//!     (BTCUSD on 2017-11-12) are a hole.
//!   - Daily and weekly: no missing bar falls on a weekday (Monday to Friday,
//!     by the UTC date of the bar's label).
//! - **Closure**: the market was shut on weekdays, for a holiday or an event.
//!   - Daily and weekly: the missing bars hold 1 to 5 weekdays (holidays,
//!     2001-09-11 to 09-14, a missing weekly bar).
//!   - Intraday: the missing bars outside the weekend window add up to at
//!     least 12 hours, and the gap spans at most 4 days (exchange holidays
//!     such as EURUSD's 2017-12-25, also when next to a weekend).
//! - **Hole**: anything else; data that should be there is not.
//!
//! Intraday rules cannot know the market's hours: a 12-hour outage of a
//! 24/7 market on a weekday is reported as a closure.
//!
//! Bars are expected in ascending order (as the store guarantees); steps that
//! are not longer than the timeframe are never gaps.

use chrono::{DateTime, Datelike, Duration, NaiveTime, Utc, Weekday};
use serde::{Deserialize, Serialize};

use crate::{Bar, Timeframe};

/// Missing bars between two consecutive bars.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gap {
    /// The last bar before the gap.
    pub from: DateTime<Utc>,
    /// The first bar after the gap.
    pub to: DateTime<Utc>,
    pub missing_bars: u64,
    pub kind: GapKind,
}

/// Why bars are missing; see the module documentation for the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GapKind {
    Weekend,
    Closure,
    Hole,
}

/// All gaps of a series, oldest first, with counts per kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GapReport {
    pub gaps: Vec<Gap>,
    pub weekend: usize,
    pub closures: usize,
    pub holes: usize,
    /// Missing bars over all gaps.
    pub missing_bars: u64,
}

impl GapReport {
    /// The gaps of one kind, oldest first.
    pub fn of_kind(&self, kind: GapKind) -> impl Iterator<Item = &Gap> + '_ {
        self.gaps.iter().filter(move |gap| gap.kind == kind)
    }

    /// The gaps that are neither weekends nor closures.
    pub fn holes(&self) -> impl Iterator<Item = &Gap> + '_ {
        self.of_kind(GapKind::Hole)
    }
}

/// Finds and classifies every gap in `bars` (ascending) of `timeframe`.
pub fn find_gaps(bars: &[Bar], timeframe: Timeframe) -> GapReport {
    let step = timeframe.duration();
    let mut report = GapReport::default();
    for pair in bars.windows(2) {
        let (from, to) = (pair[0].timestamp, pair[1].timestamp);
        if to - from <= step {
            continue;
        }
        let gap = Gap {
            from,
            to,
            missing_bars: missing_bars(from, to, step),
            kind: classify(from, to, timeframe),
        };
        match gap.kind {
            GapKind::Weekend => report.weekend += 1,
            GapKind::Closure => report.closures += 1,
            GapKind::Hole => report.holes += 1,
        }
        report.missing_bars += gap.missing_bars;
        report.gaps.push(gap);
    }
    report
}

/// The number of bar times `from + k * step` (k >= 1) before `to`.
fn missing_bars(from: DateTime<Utc>, to: DateTime<Utc>, step: Duration) -> u64 {
    let span = (to - from).num_milliseconds();
    let step = step.num_milliseconds().max(1);
    let slots = span / step + i64::from(span % step != 0);
    u64::try_from(slots - 1).unwrap_or(0)
}

fn classify(from: DateTime<Utc>, to: DateTime<Utc>, timeframe: Timeframe) -> GapKind {
    if timeframe.is_intraday() {
        classify_intraday(from, to, timeframe.duration())
    } else {
        classify_daily(from, to, timeframe.duration())
    }
}

fn classify_intraday(from: DateTime<Utc>, to: DateTime<Utc>, step: Duration) -> GapKind {
    // Neither a weekend nor a closure is longer; this also bounds the loop.
    if to - from > Duration::days(4) {
        return GapKind::Hole;
    }
    let first_missing = from + step;
    let mut weekday_missing = 0;
    let mut at = first_missing;
    while at < to {
        if !in_weekend_window(at) {
            weekday_missing += 1;
        }
        at += step;
    }
    if weekday_missing == 0 {
        if covers_saturday(first_missing, to) {
            GapKind::Weekend
        } else {
            GapKind::Hole
        }
    } else if step * weekday_missing >= Duration::hours(12) {
        GapKind::Closure
    } else {
        GapKind::Hole
    }
}

fn in_weekend_window(at: DateTime<Utc>) -> bool {
    use chrono::Timelike;
    match at.weekday() {
        Weekday::Fri => at.hour() >= 20,
        Weekday::Sat | Weekday::Sun => true,
        _ => false,
    }
}

/// Whether missing bars from `first_missing` (inside the weekend window) up
/// to `to` include every hour of that weekend's Saturday.
fn covers_saturday(first_missing: DateTime<Utc>, to: DateTime<Utc>) -> bool {
    let date = first_missing.date_naive();
    let saturday = match first_missing.weekday() {
        Weekday::Fri => date.succ_opt(),
        Weekday::Sat if first_missing.time() == NaiveTime::MIN => Some(date),
        _ => None,
    };
    saturday
        .and_then(|saturday| saturday.succ_opt())
        .is_some_and(|sunday| to >= sunday.and_time(NaiveTime::MIN).and_utc())
}

fn classify_daily(from: DateTime<Utc>, to: DateTime<Utc>, step: Duration) -> GapKind {
    // Five weekdays with their weekends span at most 9 days; one missing
    // weekly bar makes a 14-day step. Longer is a hole, and the loop is bounded.
    if to - from > Duration::days(15) {
        return GapKind::Hole;
    }
    let days_per_bar = step.num_days().max(1);
    let mut weekdays = 0;
    let mut at = from + step;
    while at < to {
        let mut day = at.date_naive();
        for _ in 0..days_per_bar {
            if !matches!(day.weekday(), Weekday::Sat | Weekday::Sun) {
                weekdays += 1;
            }
            day = day.succ_opt().unwrap_or(day);
        }
        at += step;
    }
    match weekdays {
        0 => GapKind::Weekend,
        1..=5 => GapKind::Closure,
        _ => GapKind::Hole,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LocalStore;
    use crate::validate::parse_timestamp;

    fn at(text: &str) -> DateTime<Utc> {
        parse_timestamp(text).unwrap()
    }

    /// Kind and size of each gap between bars at `times`.
    fn kinds(times: &[&str], timeframe: Timeframe) -> Vec<(GapKind, u64)> {
        find_gaps(&bars(times), timeframe)
            .gaps
            .iter()
            .map(|gap| (gap.kind, gap.missing_bars))
            .collect()
    }

    fn bars(times: &[&str]) -> Vec<Bar> {
        times
            .iter()
            .map(|time| Bar {
                timestamp: at(time),
                open: 1.0,
                high: 1.0,
                low: 1.0,
                close: 1.0,
                volume: 0.0,
            })
            .collect()
    }

    fn shipped(name: &str, timeframe: Timeframe) -> Vec<Bar> {
        let store = LocalStore::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../data"));
        store.read(&name.parse().unwrap(), timeframe).unwrap()
    }

    fn gap(from: &str, to: &str, missing_bars: u64, kind: GapKind) -> Gap {
        Gap {
            from: at(from),
            to: at(to),
            missing_bars,
            kind,
        }
    }

    #[test]
    fn eurusd_has_51_weekends_one_holiday_and_no_holes() {
        // The data notes say 52 weekend gaps, but the series runs from Sunday
        // 2017-01-01 to Friday 2017-12-29: 51 weekends lie between. The gaps
        // account for every missing hour: 51 weekends of 47 to 49 hours and
        // the holiday's 14 make 8688 - 6225 = 2463.
        let report = find_gaps(&shipped("EURUSD", Timeframe::H1), Timeframe::H1);
        assert_eq!((report.weekend, report.closures, report.holes), (51, 1, 0));
        assert_eq!(report.missing_bars, 2463);
        let closures: Vec<_> = report.of_kind(GapKind::Closure).copied().collect();
        assert_eq!(
            closures,
            [gap(
                "2017-12-25T07:00:00Z",
                "2017-12-25T22:00:00Z",
                14,
                GapKind::Closure
            )]
        );
        let christmas_eve = report
            .gaps
            .iter()
            .find(|gap| gap.to == at("2017-12-24T23:00:00Z"));
        assert_eq!(
            christmas_eve,
            Some(&gap(
                "2017-12-22T21:00:00Z",
                "2017-12-24T23:00:00Z",
                49,
                GapKind::Weekend
            ))
        );
        assert_eq!(report.gaps.len(), 52);
        assert_eq!(
            report.missing_bars,
            report.gaps.iter().map(|gap| gap.missing_bars).sum::<u64>()
        );
    }

    #[test]
    fn btcusd_has_exactly_one_five_hour_hole() {
        let report = find_gaps(&shipped("BTCUSD", Timeframe::H1), Timeframe::H1);
        assert_eq!(
            report.gaps,
            [gap(
                "2017-11-12T03:00:00Z",
                "2017-11-12T09:00:00Z",
                5,
                GapKind::Hole
            )]
        );
        assert_eq!(
            (
                report.weekend,
                report.closures,
                report.holes,
                report.missing_bars
            ),
            (0, 0, 1, 5)
        );
        assert_eq!(report.holes().count(), 1);
    }

    #[test]
    fn sp500_market_closures_are_closures_not_holes() {
        let report = find_gaps(&shipped("SP500", Timeframe::D1), Timeframe::D1);
        assert_eq!(
            (
                report.weekend,
                report.closures,
                report.holes,
                report.missing_bars
            ),
            (910, 180, 0, 2271)
        );
        let closure = |from: &str, to: &str| {
            report
                .gaps
                .iter()
                .find(|gap| gap.from == at(from))
                .filter(|gap| gap.to == at(to))
                .map(|gap| (gap.kind, gap.missing_bars))
        };
        // 9/11: Tuesday to Friday, then the weekend.
        assert_eq!(
            closure("2001-09-10T00:00:00Z", "2001-09-17T00:00:00Z"),
            Some((GapKind::Closure, 6))
        );
        // New Year's Day and the national day of mourning for President Ford.
        assert_eq!(
            closure("2006-12-29T00:00:00Z", "2007-01-03T00:00:00Z"),
            Some((GapKind::Closure, 4))
        );
        // Hurricane Sandy.
        assert_eq!(
            closure("2012-10-26T00:00:00Z", "2012-10-31T00:00:00Z"),
            Some((GapKind::Closure, 4))
        );
        assert_eq!(
            closure("1999-01-08T00:00:00Z", "1999-01-11T00:00:00Z"),
            Some((GapKind::Weekend, 2))
        );
    }

    #[test]
    fn ibm_daily_gaps_are_weekends_and_closures() {
        let report = find_gaps(&shipped("IBM", Timeframe::D1), Timeframe::D1);
        // Every calendar day from 2000-03-01 to 2013-03-01 is a bar or missing.
        assert_eq!(
            (
                report.weekend,
                report.closures,
                report.holes,
                report.missing_bars
            ),
            (591, 118, 0, 1479)
        );
    }

    #[test]
    fn intraday_rules() {
        // 2017-01-06 is a Friday.
        assert_eq!(
            kinds(
                &["2017-01-06T21:00:00Z", "2017-01-08T22:00:00Z"],
                Timeframe::H1
            ),
            [(GapKind::Weekend, 48)]
        );
        // H4 bars: the Friday 20:00 bar is the last one before the weekend.
        assert_eq!(
            kinds(
                &["2017-01-06T20:00:00Z", "2017-01-08T20:00:00Z"],
                Timeframe::H4
            ),
            [(GapKind::Weekend, 11)]
        );
        // Hours missing on a Saturday or Sunday of a 24/7 market.
        assert_eq!(
            kinds(
                &["2017-01-07T03:00:00Z", "2017-01-07T09:00:00Z"],
                Timeframe::H1
            ),
            [(GapKind::Hole, 5)]
        );
        assert_eq!(
            kinds(
                &["2017-01-06T22:00:00Z", "2017-01-07T23:00:00Z"],
                Timeframe::H1
            ),
            [(GapKind::Hole, 24)]
        );
        // Friday afternoon hours missing before the weekend.
        assert_eq!(
            kinds(
                &["2017-01-06T15:00:00Z", "2017-01-08T22:00:00Z"],
                Timeframe::H1
            ),
            [(GapKind::Hole, 54)]
        );
        // A weekday holiday, and one next to the weekend (Monday 2018-01-01).
        assert_eq!(
            kinds(
                &["2017-01-04T07:00:00Z", "2017-01-04T22:00:00Z"],
                Timeframe::H1
            ),
            [(GapKind::Closure, 14)]
        );
        assert_eq!(
            kinds(
                &["2017-12-29T21:00:00Z", "2018-01-01T22:00:00Z"],
                Timeframe::H1
            ),
            [(GapKind::Closure, 72)]
        );
        assert_eq!(
            kinds(
                &["2017-01-04T07:00:00Z", "2017-01-04T18:00:00Z"],
                Timeframe::H1
            ),
            [(GapKind::Hole, 10)]
        );
        assert_eq!(
            kinds(
                &["2017-01-02T00:00:00Z", "2017-01-06T01:00:00Z"],
                Timeframe::H1
            ),
            [(GapKind::Hole, 96)]
        );
        // A step that is not a whole number of bars still counts the slots.
        assert_eq!(
            kinds(
                &["2017-01-04T07:00:00Z", "2017-01-04T08:30:00Z"],
                Timeframe::H1
            ),
            [(GapKind::Hole, 1)]
        );
        assert_eq!(
            kinds(
                &["2017-01-04T07:00:00Z", "2017-01-04T08:00:00Z"],
                Timeframe::H1
            ),
            []
        );
    }

    #[test]
    fn daily_and_weekly_rules() {
        // 2017-01-06 is a Friday; a five-weekday closure and a six-weekday hole.
        assert_eq!(
            kinds(
                &["2017-01-06T00:00:00Z", "2017-01-16T00:00:00Z"],
                Timeframe::D1
            ),
            [(GapKind::Closure, 9)]
        );
        assert_eq!(
            kinds(
                &["2017-01-06T00:00:00Z", "2017-01-17T00:00:00Z"],
                Timeframe::D1
            ),
            [(GapKind::Hole, 10)]
        );
        assert_eq!(
            kinds(
                &["2017-01-01T00:00:00Z", "2018-01-01T00:00:00Z"],
                Timeframe::D1
            ),
            [(GapKind::Hole, 364)]
        );
        // Weekly bars open on Mondays: one missing week is a closure, two a hole.
        assert_eq!(
            kinds(
                &["2017-01-02T00:00:00Z", "2017-01-16T00:00:00Z"],
                Timeframe::W1
            ),
            [(GapKind::Closure, 1)]
        );
        assert_eq!(
            kinds(
                &["2017-01-02T00:00:00Z", "2017-01-23T00:00:00Z"],
                Timeframe::W1
            ),
            [(GapKind::Hole, 2)]
        );
        assert_eq!(kinds(&["2017-01-02T00:00:00Z"], Timeframe::W1), []);
        assert_eq!(find_gaps(&[], Timeframe::D1), GapReport::default());
    }

    #[test]
    fn the_report_serializes_with_snake_case_kinds() {
        let report = find_gaps(
            &bars(&["2017-01-07T03:00:00Z", "2017-01-07T05:00:00Z"]),
            Timeframe::H1,
        );
        assert_eq!(
            serde_json::to_string(&report).unwrap(),
            r#"{"gaps":[{"from":"2017-01-07T03:00:00Z","to":"2017-01-07T05:00:00Z","missing_bars":1,"kind":"hole"}],"weekend":0,"closures":0,"holes":1,"missing_bars":1}"#
        );
    }
}
