//! Building bars of a longer timeframe from bars of a shorter one (1h → 4h →
//! 1d, 1d → 1w, 5m → 1h...).
//!
//! Buckets are the target timeframe's bars as [`Timeframe::bar_start`] aligns
//! them: UTC midnight boundaries, weeks opening on Monday. Each output bar is
//! stamped with its bucket's start, even when the first input bar in it comes
//! later. Buckets with no input bar (weekends, holidays) produce no bar.
//! Partial buckets (at either end of the series, or with missing bars inside)
//! are kept as they are: dropping them would lose the newest, still-forming
//! bar and every bucket touched by a data gap, and callers that want only
//! complete buckets can tell them by the input they have.

use crate::{Bar, DataError, Timeframe};

/// Aggregates `bars` (of timeframe `from`, sorted oldest first with unique
/// timestamps, each opening on a `from` boundary) into `to` bars: open of the
/// first bar, highest high, lowest low, close of the last bar, summed volume.
/// Same timeframe returns a copy. Single pass, O(n).
///
/// Volumes are summed in time order, so resampling in two steps (1h → 4h →
/// 1d) can differ from one step (1h → 1d) in the last bits of the volume.
pub fn resample(bars: &[Bar], from: Timeframe, to: Timeframe) -> Result<Vec<Bar>, DataError> {
    let error = |reason| Err(DataError::Resample { from, to, reason });
    let (from_len, to_len) = (from.duration(), to.duration());
    if to_len < from_len {
        return error("the target timeframe is shorter than the source");
    }
    if from == to {
        return Ok(bars.to_vec());
    }
    let whole_multiple = to_len
        .num_milliseconds()
        .checked_rem(from_len.num_milliseconds())
        == Some(0);
    if !whole_multiple {
        return error("the target timeframe is not a whole multiple of the source");
    }

    let mut out: Vec<Bar> = Vec::new();
    let mut previous = None;
    for bar in bars {
        if previous.is_some_and(|at| at >= bar.timestamp) {
            return error("the bars are not in ascending time order with unique timestamps");
        }
        previous = Some(bar.timestamp);
        // A bar off the source grid could straddle two target buckets.
        if from.bar_start(bar.timestamp) != bar.timestamp {
            return error("a bar does not open on a boundary of the source timeframe");
        }
        let start = to.bar_start(bar.timestamp);
        match out.last_mut() {
            Some(current) if current.timestamp == start => {
                current.high = current.high.max(bar.high);
                current.low = current.low.min(bar.low);
                current.close = bar.close;
                current.volume += bar.volume;
            }
            _ => out.push(Bar {
                timestamp: start,
                ..*bar
            }),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
    use expect_test::expect;

    use super::*;

    fn at(day: u32, hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 1, day, hour, 0, 0).unwrap()
    }

    fn bar(timestamp: DateTime<Utc>, [open, high, low, close, volume]: [f64; 5]) -> Bar {
        Bar {
            timestamp,
            open,
            high,
            low,
            close,
            volume,
        }
    }

    fn render(bars: &[Bar]) -> String {
        bars.iter()
            .map(|b| {
                let at = b.timestamp.to_rfc3339_opts(SecondsFormat::Secs, true);
                let day = b.timestamp.format("%a");
                format!(
                    "{at} {day} {} {} {} {} {}\n",
                    b.open, b.high, b.low, b.close, b.volume
                )
            })
            .collect()
    }

    /// Friday 2024-01-05 from 02:00 (so its first 4h bucket is partial), a
    /// hole from 09:00 to 19:00, nothing over the weekend, then Monday.
    fn hourly() -> Vec<Bar> {
        vec![
            bar(at(5, 2), [10.0, 12.0, 9.0, 11.0, 1.0]),
            bar(at(5, 3), [11.0, 15.0, 10.0, 14.0, 2.0]),
            bar(at(5, 4), [14.0, 14.5, 12.0, 13.0, 3.0]),
            bar(at(5, 5), [13.0, 13.0, 8.0, 9.0, 4.0]),
            bar(at(5, 6), [9.0, 10.0, 9.0, 10.0, 5.0]),
            bar(at(5, 7), [10.0, 11.0, 9.5, 10.5, 6.0]),
            bar(at(5, 8), [10.5, 12.0, 10.0, 11.0, 7.0]),
            bar(at(5, 20), [11.0, 11.5, 10.5, 11.0, 8.0]),
            bar(at(5, 23), [11.0, 13.0, 11.0, 12.0, 9.0]),
            bar(at(8, 0), [12.0, 12.5, 11.5, 12.0, 10.0]),
            bar(at(8, 1), [12.0, 16.0, 12.0, 15.0, 11.0]),
        ]
    }

    #[test]
    fn hourly_to_four_hours_to_days_to_weeks() {
        let h4 = resample(&hourly(), Timeframe::H1, Timeframe::H4).unwrap();
        expect![[r#"
            2024-01-05T00:00:00Z Fri 10 15 9 14 3
            2024-01-05T04:00:00Z Fri 14 14.5 8 10.5 18
            2024-01-05T08:00:00Z Fri 10.5 12 10 11 7
            2024-01-05T20:00:00Z Fri 11 13 10.5 12 17
            2024-01-08T00:00:00Z Mon 12 16 11.5 15 21
        "#]]
        .assert_eq(&render(&h4));

        let d1 = resample(&h4, Timeframe::H4, Timeframe::D1).unwrap();
        expect![[r#"
            2024-01-05T00:00:00Z Fri 10 15 8 12 45
            2024-01-08T00:00:00Z Mon 12 16 11.5 15 21
        "#]]
        .assert_eq(&render(&d1));
        assert_eq!(
            resample(&hourly(), Timeframe::H1, Timeframe::D1).unwrap(),
            d1
        );

        let w1 = resample(&d1, Timeframe::D1, Timeframe::W1).unwrap();
        expect![[r#"
            2024-01-01T00:00:00Z Mon 10 15 8 12 45
            2024-01-08T00:00:00Z Mon 12 16 11.5 15 21
        "#]]
        .assert_eq(&render(&w1));
        assert_eq!(
            resample(&hourly(), Timeframe::H1, Timeframe::W1).unwrap(),
            w1
        );
    }

    #[test]
    fn minutes_to_hours() {
        let start = at(5, 10);
        let bars: Vec<Bar> = (0..15)
            .map(|i| {
                let x = f64::from(i);
                bar(
                    start + Timeframe::M5.duration() * i,
                    [x, x + 1.0, x - 1.0, x + 0.5, 1.0],
                )
            })
            .collect();
        let h1 = resample(&bars, Timeframe::M5, Timeframe::H1).unwrap();
        expect![[r#"
            2024-01-05T10:00:00Z Fri 0 12 -1 11.5 12
            2024-01-05T11:00:00Z Fri 12 15 11 14.5 3
        "#]]
        .assert_eq(&render(&h1));
    }

    #[test]
    fn same_timeframe_is_a_copy_and_empty_stays_empty() {
        assert_eq!(
            resample(&hourly(), Timeframe::H1, Timeframe::H1).unwrap(),
            hourly()
        );
        for from in Timeframe::ALL {
            for to in Timeframe::ALL.into_iter().filter(|to| *to >= from) {
                assert_eq!(
                    resample(&[], from, to).unwrap(),
                    Vec::new(),
                    "{from} -> {to}"
                );
            }
        }
    }

    #[test]
    fn refuses_shorter_targets_and_bad_input() {
        let err = |bars: &[Bar], from, to| resample(bars, from, to).unwrap_err().to_string();
        assert_eq!(
            err(&[], Timeframe::H4, Timeframe::H1),
            "cannot build 1h bars from 4h bars: the target timeframe is shorter than the source"
        );
        assert_eq!(
            err(&[], Timeframe::W1, Timeframe::D1),
            "cannot build 1d bars from 1w bars: the target timeframe is shorter than the source"
        );

        let mut unsorted = hourly();
        unsorted.swap(0, 1);
        assert_eq!(
            err(&unsorted, Timeframe::H1, Timeframe::H4),
            "cannot build 4h bars from 1h bars: the bars are not in ascending time order with unique timestamps"
        );
        let mut repeated = hourly();
        repeated.insert(1, repeated[0]);
        assert_eq!(
            err(&repeated, Timeframe::H1, Timeframe::D1),
            "cannot build 1d bars from 1h bars: the bars are not in ascending time order with unique timestamps"
        );

        let off_grid = [bar(at(5, 3) + Timeframe::M30.duration(), [1.0; 5])];
        assert_eq!(
            err(&off_grid, Timeframe::H1, Timeframe::H4),
            "cannot build 4h bars from 1h bars: a bar does not open on a boundary of the source timeframe"
        );
    }
}
