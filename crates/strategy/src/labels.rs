//! Training labels: which way price moves first, by at least the zigzag threshold.

use crate::Label;

/// A bar's label and the last bar it depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Labelled {
    pub(crate) label: Label,
    /// Index of the last close the label was decided by (the bar that crossed
    /// the threshold, or the end of the lookahead window for HOLD).
    pub(crate) decided_at: usize,
}

/// Labels each close by the first decisive move after it.
///
/// For the bar at `i` with close `c`, the closes of bars `i + 1 ..= i +
/// lookahead` are scanned in order; the first one at or above
/// `c * (1 + threshold)` makes the bar BUY, the first one at or below
/// `c * (1 - threshold)` makes it SELL, whichever comes first (a positive
/// threshold cannot give both at once). If neither comes within the
/// `lookahead` bars, the bar is HOLD.
///
/// Near the end of the data fewer than `lookahead` closes follow: a bar
/// whose available closes already cross a threshold is labelled as above,
/// but one whose available closes do not is `None`, since the missing bars
/// could still have decided it. Nothing beyond the data is assumed. With
/// `lookahead == 0` every bar is HOLD.
pub fn zigzag_labels(closes: &[f64], threshold: f64, lookahead: usize) -> Vec<Option<Label>> {
    zigzag(closes, threshold, lookahead)
        .into_iter()
        .map(|labelled| labelled.map(|l| l.label))
        .collect()
}

/// [`zigzag_labels`] with the bar each label was decided at.
pub(crate) fn zigzag(closes: &[f64], threshold: f64, lookahead: usize) -> Vec<Option<Labelled>> {
    let last = closes.len().saturating_sub(1);
    closes
        .iter()
        .enumerate()
        .map(|(i, &close)| {
            let up = close * (1.0 + threshold);
            let down = close * (1.0 - threshold);
            let end = i.saturating_add(lookahead);
            for (j, &later) in closes
                .iter()
                .enumerate()
                .take(end.min(last) + 1)
                .skip(i + 1)
            {
                let label = if later >= up {
                    Label::Buy
                } else if later <= down {
                    Label::Sell
                } else {
                    continue;
                };
                return Some(Labelled {
                    label,
                    decided_at: j,
                });
            }
            (end <= last).then_some(Labelled {
                label: Label::Hold,
                decided_at: end,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use Label::{Buy, Hold, Sell};

    #[test]
    fn first_decisive_move_wins() {
        // threshold 10 %, lookahead 3.
        let closes = [
            100.0, // 105, 111 (>= 110 first): BUY at bar 2
            105.0, // 111, 99, 94.4 (<= 94.5) only at bar 4: SELL
            111.0, // 99 (<= 99.9): SELL at bar 3
            99.0, 94.4, 94.0, 95.0, 96.0, 97.0,
        ];
        let labelled = zigzag(&closes, 0.10, 3);
        let labels: Vec<_> = labelled.iter().map(|l| l.map(|l| l.label)).collect();
        assert_eq!(
            labels,
            [
                Some(Buy),
                Some(Sell),
                Some(Sell),
                // 99: 94.4 .. 95 never reach 108.9 or 89.1
                Some(Hold),
                Some(Hold),
                // 94: 95, 96, 97 are the last 3 closes, enough to say HOLD.
                Some(Hold),
                // Bars 6..: fewer than 3 closes follow and none decides.
                None,
                None,
                None,
            ]
        );
        assert_eq!(labelled[0].unwrap().decided_at, 2);
        assert_eq!(labelled[1].unwrap().decided_at, 4);
        assert_eq!(labelled[3].unwrap().decided_at, 6);
        assert_eq!(labelled[5].unwrap().decided_at, 8);
        assert_eq!(zigzag_labels(&closes, 0.10, 3), labels);
    }

    #[test]
    fn thresholds_are_inclusive_and_relative() {
        let closes = [200.0, 250.0, 150.0];
        assert_eq!(
            zigzag_labels(&closes, 0.25, 2),
            [Some(Buy), Some(Sell), None]
        );
        // Just short of 25 % is not a move.
        let closes = [200.0, 249.99, 150.01, 200.0];
        assert_eq!(zigzag_labels(&closes, 0.25, 3)[0], Some(Hold));
    }

    #[test]
    fn the_end_of_the_data_decides_only_what_it_can() {
        // A move within the available closes is decisive even near the end.
        let closes = [100.0, 100.0, 100.0, 120.0];
        assert_eq!(
            zigzag_labels(&closes, 0.1, 10),
            [Some(Buy), Some(Buy), Some(Buy), None]
        );
        assert_eq!(zigzag_labels(&[], 0.1, 10), []);
        assert_eq!(zigzag_labels(&[1.0, 5.0], 0.1, 0), [Some(Hold), Some(Hold)]);
    }

    #[test]
    fn labels_never_look_past_the_lookahead() {
        // A big move 4 bars later does not count with lookahead 3.
        let closes = [100.0, 101.0, 100.0, 101.0, 150.0];
        assert_eq!(zigzag_labels(&closes, 0.1, 3)[0], Some(Hold));
        assert_eq!(zigzag_labels(&closes, 0.1, 4)[0], Some(Buy));
    }
}
