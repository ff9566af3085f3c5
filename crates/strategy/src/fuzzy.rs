//! Fuzzy membership: how much an indicator's value belongs to a named set, 0..=1.

use crate::Membership;

impl Membership {
    /// The membership degree of `x`, in `0.0..=1.0`; NaN for a NaN `x`.
    ///
    /// Sets are expected ordered (`a <= b <= c <= d`, `sigma >= 0`). A
    /// vertical edge (`a == b`, or `b == c` for a triangle, `c == d` for a
    /// trapezoid) makes a *shoulder*: the set stays at 1 beyond that edge
    /// instead of dropping to 0, so `Triangular { a: 0, b: 0, c: 30 }` is 1
    /// for everything up to 0 and falls to 0 at 30, and
    /// `Trapezoidal { a: 0.9, b: 0.9, c: 0.95, d: 1.0 }` holds every ratio
    /// below 0.95 fully. A set with both edges vertical is therefore 1
    /// everywhere. A Gaussian with `sigma == 0` is 1 at `mean` only.
    pub fn evaluate(&self, x: f64) -> f64 {
        if x.is_nan() {
            return f64::NAN;
        }
        match *self {
            Membership::Triangular { a, b, c } => rising(x, a, b).min(falling(x, b, c)),
            Membership::Trapezoidal { a, b, c, d } => rising(x, a, b).min(falling(x, c, d)),
            Membership::Gaussian { mean, sigma } => {
                if sigma == 0.0 {
                    if x == mean { 1.0 } else { 0.0 }
                } else {
                    let z = (x - mean) / sigma;
                    (-0.5 * z * z).exp()
                }
            }
        }
    }
}

/// 0 up to `from`, 1 from `to` on, linear between; 1 everywhere up to `to`
/// when the edge is vertical.
fn rising(x: f64, from: f64, to: f64) -> f64 {
    if x >= to || from == to {
        1.0
    } else if x <= from {
        0.0
    } else {
        (x - from) / (to - from)
    }
}

/// 1 up to `from`, 0 from `to` on, linear between; 1 everywhere from `from`
/// when the edge is vertical.
fn falling(x: f64, from: f64, to: f64) -> f64 {
    if x <= from || from == to {
        1.0
    } else if x >= to {
        0.0
    } else {
        (to - x) / (to - from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(membership: Membership, golden: &[(f64, f64)]) {
        for &(x, expected) in golden {
            let actual = membership.evaluate(x);
            assert!(
                (actual - expected).abs() < 1e-12,
                "{membership:?} at {x}: expected {expected}, got {actual}"
            );
        }
        assert!(membership.evaluate(f64::NAN).is_nan());
    }

    #[test]
    fn triangular() {
        check(
            Membership::Triangular {
                a: 20.0,
                b: 30.0,
                c: 50.0,
            },
            &[
                (-5.0, 0.0),
                (20.0, 0.0),
                (25.0, 0.5),
                (30.0, 1.0),
                (35.0, 0.75),
                (50.0, 0.0),
                (70.0, 0.0),
            ],
        );
    }

    #[test]
    fn triangular_shoulders() {
        let left = Membership::Triangular {
            a: 0.0,
            b: 0.0,
            c: 30.0,
        };
        check(
            left,
            &[
                (-10.0, 1.0),
                (0.0, 1.0),
                (15.0, 0.5),
                (30.0, 0.0),
                (40.0, 0.0),
            ],
        );
        let right = Membership::Triangular {
            a: 70.0,
            b: 100.0,
            c: 100.0,
        };
        check(
            right,
            &[
                (60.0, 0.0),
                (70.0, 0.0),
                (85.0, 0.5),
                (100.0, 1.0),
                (120.0, 1.0),
            ],
        );
        let both = Membership::Triangular {
            a: 1.0,
            b: 1.0,
            c: 1.0,
        };
        check(both, &[(0.0, 1.0), (1.0, 1.0), (2.0, 1.0)]);
    }

    #[test]
    fn trapezoidal() {
        check(
            Membership::Trapezoidal {
                a: 0.96,
                b: 0.98,
                c: 1.02,
                d: 1.06,
            },
            &[
                (0.9, 0.0),
                (0.96, 0.0),
                (0.97, 0.5),
                (0.98, 1.0),
                (1.0, 1.0),
                (1.02, 1.0),
                (1.05, 0.25),
                (1.06, 0.0),
                (1.5, 0.0),
            ],
        );
    }

    #[test]
    fn trapezoidal_shoulders() {
        let left = Membership::Trapezoidal {
            a: 0.9,
            b: 0.9,
            c: 0.95,
            d: 1.0,
        };
        check(
            left,
            &[
                (0.5, 1.0),
                (0.9, 1.0),
                (0.95, 1.0),
                (0.975, 0.5),
                (1.0, 0.0),
                (1.2, 0.0),
            ],
        );
        let right = Membership::Trapezoidal {
            a: 1.0,
            b: 1.05,
            c: 1.1,
            d: 1.1,
        };
        check(
            right,
            &[
                (0.9, 0.0),
                (1.0, 0.0),
                (1.025, 0.5),
                (1.05, 1.0),
                (1.1, 1.0),
                (3.0, 1.0),
            ],
        );
    }

    #[test]
    fn gaussian() {
        let set = Membership::Gaussian {
            mean: 50.0,
            sigma: 10.0,
        };
        check(
            set,
            &[
                (50.0, 1.0),
                (60.0, (-0.5_f64).exp()),
                (40.0, (-0.5_f64).exp()),
                (70.0, (-2.0_f64).exp()),
                (20.0, (-4.5_f64).exp()),
            ],
        );
        let crisp = Membership::Gaussian {
            mean: 1.0,
            sigma: 0.0,
        };
        check(crisp, &[(1.0, 1.0), (1.0001, 0.0), (0.0, 0.0)]);
    }
}
