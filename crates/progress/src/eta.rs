//! Estimates the time left from elapsed time and fraction done, and formats durations.

use std::time::Duration;

/// Rate samples are taken at least this far apart, so that bursts of quick
/// progress reports do not each count as a measurement.
const MIN_SAMPLE_INTERVAL_SECS: f64 = 1.0;
/// Weight of the newest rate sample in the smoothed rate.
const SMOOTHING: f64 = 0.1;
/// No estimate before this much time has passed since the start.
const MIN_ELAPSED_SECS: f64 = 5.0;
/// No estimate before this many rate samples.
const MIN_SAMPLES: u32 = 3;
/// No estimate before this much progress has been made since the start.
const MIN_PROGRESS: f64 = 0.01;
/// A fraction this much below the previous one is treated as jitter, not as a
/// restart.
const BACKWARDS_TOLERANCE: f64 = 1e-9;
/// Estimates beyond this (about ten years) are reported as unknown.
const MAX_ETA_SECS: f64 = 10.0 * 365.0 * 86_400.0;

/// Estimates the time left of a piece of work from how long it has run and
/// how much of it is done.
///
/// The rate of progress is sampled at most once a second. The first samples
/// give the average rate since the start; later ones are folded into an
/// exponentially weighted average (weight 0.1 for the newest), so a noisy
/// start does not make the estimate jump about. Until the work has run for
/// 5 s, made 1% progress and given 3 rate samples the estimate is `None`:
/// unknown rather than wrong. The time left is the fraction still to do
/// divided by that rate.
///
/// A fraction that goes backwards means the work started over: the estimator
/// forgets what it measured and starts again from that observation. A
/// fraction of 1 or more gives `Some(Duration::ZERO)`. A fraction that is NaN
/// or infinite, or an elapsed time earlier than the previous one, is ignored;
/// other fractions are clamped to `0..=1`. It never panics and never
/// allocates.
///
/// ```
/// use std::time::Duration;
///
/// use progress::EtaEstimator;
///
/// let mut eta = EtaEstimator::new();
/// for second in 0..=20 {
///     eta.observe(Duration::from_secs(second), second as f64 / 100.0);
/// }
/// assert_eq!(eta.eta().map(|left| left.as_secs()), Some(80));
/// ```
#[derive(Debug, Clone)]
pub struct EtaEstimator {
    /// When the current run of observations started, in seconds, and the
    /// fraction done then.
    origin_secs: f64,
    origin_fraction: f64,
    /// The latest accepted observation.
    last_secs: f64,
    last_fraction: f64,
    /// The observation the latest rate sample ended at.
    sample_secs: f64,
    sample_fraction: f64,
    /// Smoothed fraction done per second, once there is a sample.
    rate: Option<f64>,
    samples: u32,
    eta: Option<Duration>,
}

impl EtaEstimator {
    /// An estimator for work that starts now, with nothing done.
    pub const fn new() -> Self {
        Self::starting_at(0.0, 0.0)
    }

    const fn starting_at(secs: f64, fraction: f64) -> Self {
        Self {
            origin_secs: secs,
            origin_fraction: fraction,
            last_secs: secs,
            last_fraction: fraction,
            sample_secs: secs,
            sample_fraction: fraction,
            rate: None,
            samples: 0,
            eta: None,
        }
    }

    /// Records that `fraction_done` (0 to 1) of the work is done `elapsed`
    /// after it started, and returns the estimated time left, or `None` while
    /// that is unknown.
    pub fn observe(&mut self, elapsed: Duration, fraction_done: f64) -> Option<Duration> {
        if !fraction_done.is_finite() {
            return self.eta;
        }
        let now = elapsed.as_secs_f64();
        if now < self.last_secs {
            return self.eta;
        }
        let fraction = fraction_done.clamp(0.0, 1.0);
        if fraction < self.last_fraction - BACKWARDS_TOLERANCE {
            *self = Self::starting_at(now, fraction);
            return self.eta;
        }
        // Jitter within the tolerance must not count as negative progress.
        let fraction = fraction.max(self.last_fraction);
        self.last_secs = now;
        self.last_fraction = fraction;
        if fraction >= 1.0 {
            self.eta = Some(Duration::ZERO);
            return self.eta;
        }

        let interval = now - self.sample_secs;
        if interval >= MIN_SAMPLE_INTERVAL_SECS {
            self.samples = self.samples.saturating_add(1);
            let sampled = (fraction - self.sample_fraction) / interval;
            // Until an estimate may be given, the average over the whole run
            // is steadier than any single sample; it then seeds the average.
            self.rate = Some(match self.rate {
                Some(rate) if self.samples > MIN_SAMPLES => rate + SMOOTHING * (sampled - rate),
                _ => (fraction - self.origin_fraction) / (now - self.origin_secs),
            });
            self.sample_secs = now;
            self.sample_fraction = fraction;
        }
        self.eta = self.estimate();
        self.eta
    }

    /// The latest estimate of the time left; `None` while unknown.
    pub const fn eta(&self) -> Option<Duration> {
        self.eta
    }

    fn estimate(&self) -> Option<Duration> {
        let run_for = self.last_secs - self.origin_secs;
        let progress = self.last_fraction - self.origin_fraction;
        if run_for < MIN_ELAPSED_SECS || progress < MIN_PROGRESS || self.samples < MIN_SAMPLES {
            return None;
        }
        let rate = self.rate.filter(|rate| rate.is_finite() && *rate > 0.0)?;
        let left = (1.0 - self.last_fraction) / rate;
        if !(0.0..=MAX_ETA_SECS).contains(&left) {
            return None;
        }
        Some(Duration::from_secs_f64(left))
    }
}

impl Default for EtaEstimator {
    fn default() -> Self {
        Self::new()
    }
}

/// Formats a duration for people, rounded to the nearest second and showing
/// its two largest units: `0s`, `45s`, `2m 05s`, `1h 02m`, `3d 04h`.
///
/// The second unit is zero-padded to two digits and the smaller ones are
/// dropped (not rounded), so `1h 02m 59s` shows as `1h 02m`.
pub fn format_duration(d: Duration) -> String {
    const MINUTE: u64 = 60;
    const HOUR: u64 = 60 * MINUTE;
    const DAY: u64 = 24 * HOUR;

    let secs = d
        .as_secs()
        .saturating_add(u64::from(d.subsec_nanos() >= 500_000_000));
    if secs < MINUTE {
        format!("{secs}s")
    } else if secs < HOUR {
        format!("{}m {:02}s", secs / MINUTE, secs % MINUTE)
    } else if secs < DAY {
        format!("{}h {:02}m", secs / HOUR, secs % HOUR / MINUTE)
    } else {
        format!("{}d {:02}h", secs / DAY, secs % DAY / HOUR)
    }
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use expect_test::expect;

    use super::*;

    fn secs(secs: f64) -> Duration {
        Duration::from_secs_f64(secs)
    }

    /// Feeds one observation a second at a constant `rate` from `from` to
    /// `to` seconds, starting from `start_fraction` at `from`.
    fn run_constant(
        estimator: &mut EtaEstimator,
        from: u32,
        to: u32,
        start_fraction: f64,
        rate: f64,
    ) -> Option<Duration> {
        let mut last = None;
        for second in from..=to {
            let fraction = start_fraction + f64::from(second - from) * rate;
            last = estimator.observe(secs(f64::from(second)), fraction);
        }
        last
    }

    fn assert_close(actual: Option<Duration>, expected_secs: f64) {
        let actual = actual.expect("an estimate").as_secs_f64();
        assert!(
            (actual - expected_secs).abs() < 1e-6,
            "estimate {actual} s, expected {expected_secs} s"
        );
    }

    #[test]
    fn constant_rate_gives_the_exact_time_left() {
        let mut estimator = EtaEstimator::new();
        let left = run_constant(&mut estimator, 0, 50, 0.0, 0.01);
        assert_close(left, 50.0);
        assert_eq!(estimator.eta(), left);
    }

    #[test]
    fn unknown_before_enough_time_samples_and_progress() {
        let mut estimator = EtaEstimator::new();
        for second in 0..5 {
            let left = estimator.observe(secs(f64::from(second)), f64::from(second) * 0.05);
            assert_eq!(left, None, "at {second} s");
        }
        assert!(estimator.observe(secs(5.0), 0.25).is_some());

        // Plenty of time and progress, but only two rate samples.
        let mut estimator = EtaEstimator::new();
        assert_eq!(estimator.observe(secs(10.0), 0.1), None);
        assert_eq!(estimator.observe(secs(11.0), 0.11), None);
        assert!(estimator.observe(secs(12.0), 0.12).is_some());

        // Plenty of time and samples, but under 1% done.
        let mut estimator = EtaEstimator::new();
        assert_eq!(run_constant(&mut estimator, 0, 60, 0.0, 0.0001), None);
        assert!(run_constant(&mut estimator, 61, 120, 0.0061, 0.0001).is_some());
    }

    #[test]
    fn quick_reports_do_not_count_as_samples() {
        let mut estimator = EtaEstimator::new();
        // Twenty reports a second, 1% done a second, for just under 5 s.
        for tick in 0..100_u32 {
            let at = Duration::from_millis(u64::from(tick) * 50);
            let fraction = f64::from(tick) * 0.0005;
            assert_eq!(estimator.observe(at, fraction), None, "at {at:?}");
        }
        // Only the reports at whole seconds became samples.
        assert_eq!(estimator.samples, 4);
        assert!(estimator.observe(secs(5.0), 0.05).is_some());
    }

    #[test]
    fn noisy_start_stays_within_a_band() {
        // Progress per second swings between 0.4% and 1.6% (1% on average)
        // in a fixed pseudo-random order. Estimated from single seconds, the
        // time left would swing between -37% and +150%.
        let mut noise: u32 = 12_345;
        let mut fraction = 0.0;
        let mut estimator = EtaEstimator::new();
        let mut report = String::new();
        let mut previous: Option<Duration> = None;
        for second in 1..=30 {
            noise = noise.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let step = 0.004 + 0.012 * f64::from((noise >> 16) & 0x7fff) / f64::from(0x7fff);
            fraction += step;
            let Some(left) = estimator.observe(secs(f64::from(second)), fraction) else {
                continue;
            };
            let ideal = (1.0 - fraction) / 0.01;
            let ratio = left.as_secs_f64() / ideal;
            assert!(
                (0.85..=1.15).contains(&ratio),
                "at {second} s: estimate {left:?}, ideal {ideal:.1} s"
            );
            if let Some(previous) = previous {
                let moved = (left.as_secs_f64() - previous.as_secs_f64()).abs();
                assert!(
                    moved <= 0.1 * ideal,
                    "at {second} s the estimate moved by {moved:.1} s"
                );
            }
            previous = Some(left);
            writeln!(
                report,
                "{second:>2}s {:>6.1}s {ideal:>6.1}s",
                left.as_secs_f64()
            )
            .unwrap();
        }
        expect![[r#"
             5s   95.0s   95.3s
             6s   94.1s   94.3s
             7s   91.9s   93.2s
             8s   92.6s   92.3s
             9s   94.7s   91.6s
            10s   95.0s   90.8s
            11s   89.4s   89.4s
            12s   92.5s   88.8s
            13s   93.6s   88.0s
            14s   90.2s   86.9s
            15s   85.4s   85.5s
            16s   79.2s   83.9s
            17s   75.7s   82.6s
            18s   75.8s   81.6s
            19s   75.0s   80.6s
            20s   73.4s   79.4s
            21s   75.4s   78.7s
            22s   72.8s   77.5s
            23s   70.4s   76.2s
            24s   65.9s   74.6s
            25s   67.2s   73.8s
            26s   67.4s   72.9s
            27s   65.2s   71.6s
            28s   62.9s   70.4s
            29s   65.4s   69.7s
            30s   69.2s   69.3s
        "#]]
        .assert_eq(&report);
    }

    #[test]
    fn backwards_progress_starts_over() {
        let mut estimator = EtaEstimator::new();
        assert!(run_constant(&mut estimator, 0, 50, 0.0, 0.01).is_some());
        assert_eq!(estimator.observe(secs(51.0), 0.1), None);
        assert_eq!(estimator.eta(), None);
        // Only what happened since the restart counts: 2% a second.
        let left = run_constant(&mut estimator, 51, 71, 0.1, 0.02);
        assert_close(left, 25.0);
    }

    #[test]
    fn jitter_is_not_a_restart() {
        let mut estimator = EtaEstimator::new();
        run_constant(&mut estimator, 0, 50, 0.0, 0.01);
        let left = estimator.observe(secs(50.5), 0.5 - 1e-12);
        assert_close(left, 50.0);
    }

    #[test]
    fn completion_gives_zero() {
        let mut estimator = EtaEstimator::new();
        assert_eq!(estimator.observe(Duration::ZERO, 1.0), Some(Duration::ZERO));
        assert_eq!(estimator.eta(), Some(Duration::ZERO));

        let mut estimator = EtaEstimator::new();
        run_constant(&mut estimator, 0, 10, 0.0, 0.01);
        assert_eq!(estimator.observe(secs(11.0), 1.5), Some(Duration::ZERO));
        assert_eq!(estimator.observe(secs(12.0), 1.0), Some(Duration::ZERO));
    }

    #[test]
    fn bad_input_is_ignored_or_clamped() {
        let mut estimator = EtaEstimator::new();
        let mut reference = EtaEstimator::new();
        run_constant(&mut estimator, 0, 20, 0.0, 0.01);
        run_constant(&mut reference, 0, 20, 0.0, 0.01);
        let before = estimator.eta();
        assert!(before.is_some());

        assert_eq!(estimator.observe(secs(21.0), f64::NAN), before);
        assert_eq!(estimator.observe(secs(21.0), f64::INFINITY), before);
        assert_eq!(estimator.observe(secs(21.0), f64::NEG_INFINITY), before);
        // Time going backwards is ignored too.
        assert_eq!(estimator.observe(secs(3.0), 0.9), before);
        // Nothing ignored left a trace.
        assert_eq!(
            estimator.observe(secs(21.0), 0.21),
            reference.observe(secs(21.0), 0.21)
        );

        // Out-of-range fractions are clamped, and extreme times do not panic.
        let mut estimator = EtaEstimator::new();
        assert_eq!(estimator.observe(secs(1.0), -3.0), None);
        assert_eq!(estimator.observe(Duration::MAX, 0.5), None);
        assert_eq!(estimator.observe(Duration::MAX, 7.0), Some(Duration::ZERO));
    }

    #[test]
    fn stalled_work_is_unknown_rather_than_absurd() {
        let mut estimator = EtaEstimator::new();
        run_constant(&mut estimator, 0, 10, 0.0, 0.01);
        let mut last = estimator.eta();
        for second in 11..=400 {
            let left = estimator.observe(secs(f64::from(second)), 0.1);
            if let (Some(left), Some(last)) = (left, last) {
                assert!(left >= last, "at {second} s a stall shortened the estimate");
            }
            last = left;
        }
        assert_eq!(last, None);
    }

    #[test]
    fn default_is_new() {
        let mut estimator = EtaEstimator::default();
        assert_close(run_constant(&mut estimator, 0, 10, 0.0, 0.05), 10.0);
    }

    #[test]
    fn durations() {
        let cases = [
            Duration::ZERO,
            Duration::from_millis(499),
            Duration::from_millis(500),
            Duration::from_secs(1),
            Duration::from_secs(45),
            Duration::from_millis(59_500),
            Duration::from_secs(60),
            Duration::from_secs(125),
            Duration::from_secs(3_599),
            Duration::from_secs(3_600),
            Duration::from_secs(3_720),
            Duration::from_secs(3_779),
            Duration::from_secs(86_399),
            Duration::from_secs(86_400),
            Duration::from_secs(3 * 86_400 + 4 * 3_600 + 59 * 60),
            Duration::from_secs(1_000 * 86_400),
            Duration::MAX,
        ];
        let mut report = String::new();
        for case in cases {
            writeln!(report, "{case:?} -> {}", format_duration(case)).unwrap();
        }
        expect![[r#"
            0ns -> 0s
            499ms -> 0s
            500ms -> 1s
            1s -> 1s
            45s -> 45s
            59.5s -> 1m 00s
            60s -> 1m 00s
            125s -> 2m 05s
            3599s -> 59m 59s
            3600s -> 1h 00m
            3720s -> 1h 02m
            3779s -> 1h 02m
            86399s -> 23h 59m
            86400s -> 1d 00h
            277140s -> 3d 04h
            86400000s -> 1000d 00h
            18446744073709551615.999999999s -> 213503982334601d 07h
        "#]]
        .assert_eq(&report);
    }
}
