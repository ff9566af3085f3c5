//! Merging imported bars into an existing series.

use std::cmp::Ordering;

use serde::Serialize;

use crate::Bar;

/// What [`merge_bars`] did: `added + replaced + unchanged` is the number of
/// incoming bars, `total` the number of bars in the merged series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MergeStats {
    /// Incoming bars at timestamps the existing series did not have.
    pub added: usize,
    /// Incoming bars that replaced an existing bar with different values.
    pub replaced: usize,
    /// Incoming bars identical to the existing bar at their timestamp.
    pub unchanged: usize,
    /// Bars in the merged series.
    pub total: usize,
}

/// Merges two series sorted oldest first with unique timestamps (as
/// [`read_import_file`](super::read_import_file) and the store return them)
/// into one; where both have a bar at the same timestamp, the incoming one
/// wins. Runs in O(n + m).
pub fn merge_bars(existing: Vec<Bar>, incoming: Vec<Bar>) -> (Vec<Bar>, MergeStats) {
    let mut merged = Vec::with_capacity(existing.len() + incoming.len());
    let mut stats = MergeStats {
        added: 0,
        replaced: 0,
        unchanged: 0,
        total: 0,
    };
    let mut old = existing.into_iter().peekable();
    let mut new = incoming.into_iter().peekable();
    loop {
        let order = match (old.peek(), new.peek()) {
            (Some(o), Some(n)) => o.timestamp.cmp(&n.timestamp),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => break,
        };
        match order {
            Ordering::Less => merged.extend(old.next()),
            Ordering::Greater => {
                stats.added += 1;
                merged.extend(new.next());
            }
            Ordering::Equal => {
                let (o, n) = (old.next(), new.next());
                if o == n {
                    stats.unchanged += 1;
                } else {
                    stats.replaced += 1;
                }
                merged.extend(n);
            }
        }
    }
    stats.total = merged.len();
    (merged, stats)
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveDate, NaiveTime};

    use super::*;

    fn bar(day: u32, close: f64) -> Bar {
        let timestamp = NaiveDate::from_ymd_opt(2024, 1, day)
            .unwrap()
            .and_time(NaiveTime::MIN)
            .and_utc();
        Bar {
            timestamp,
            open: 1.0,
            high: 2.0,
            low: 0.5,
            close,
            volume: 10.0,
        }
    }

    fn stats(added: usize, replaced: usize, unchanged: usize, total: usize) -> MergeStats {
        MergeStats {
            added,
            replaced,
            unchanged,
            total,
        }
    }

    #[test]
    fn merge_overlap_replaces_and_counts() {
        let existing = vec![bar(1, 1.0), bar(2, 1.0), bar(3, 1.0)];
        let incoming = vec![bar(2, 1.25), bar(3, 1.0), bar(4, 1.5)];
        let (merged, got) = merge_bars(existing, incoming);
        assert_eq!(
            merged,
            vec![bar(1, 1.0), bar(2, 1.25), bar(3, 1.0), bar(4, 1.5)]
        );
        assert_eq!(got, stats(1, 1, 1, 4));
        assert_eq!(
            serde_json::to_string(&got).unwrap(),
            r#"{"added":1,"replaced":1,"unchanged":1,"total":4}"#
        );
    }

    #[test]
    fn merge_disjoint_interleaves() {
        let (merged, got) = merge_bars(
            vec![bar(1, 1.0), bar(3, 3.0)],
            vec![bar(2, 2.0), bar(4, 4.0)],
        );
        assert_eq!(
            merged,
            vec![bar(1, 1.0), bar(2, 2.0), bar(3, 3.0), bar(4, 4.0)]
        );
        assert_eq!(got, stats(2, 0, 0, 4));

        let (merged, got) = merge_bars(vec![bar(5, 5.0)], vec![bar(1, 1.0), bar(2, 2.0)]);
        assert_eq!(merged, vec![bar(1, 1.0), bar(2, 2.0), bar(5, 5.0)]);
        assert_eq!(got, stats(2, 0, 0, 3));
    }

    #[test]
    fn merge_with_empty_sides() {
        let series = vec![bar(1, 1.0), bar(2, 2.0)];
        assert_eq!(
            merge_bars(Vec::new(), series.clone()),
            (series.clone(), stats(2, 0, 0, 2))
        );
        assert_eq!(
            merge_bars(series.clone(), Vec::new()),
            (series.clone(), stats(0, 0, 0, 2))
        );
        assert_eq!(
            merge_bars(Vec::new(), Vec::new()),
            (Vec::new(), stats(0, 0, 0, 0))
        );
        assert_eq!(
            merge_bars(series.clone(), series.clone()),
            (series, stats(0, 0, 2, 2))
        );
    }
}
