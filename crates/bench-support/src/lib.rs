//! What the bench binaries (`crates/*/benches/*.rs`, run by `cargo xtask
//! bench`) share: reading their flags, quantiles and medians, rounding for
//! the JSON line, the workspace root, and the word that says whether a goal
//! was met. A dev-dependency only; nothing here is timed.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::str::FromStr;

/// A bench binary's command line, read flag by flag. `cargo bench` passes
/// `--bench` to every benchmark binary; it is skipped here.
///
/// ```
/// let mut flags = bench_support::Flags::new(["--epochs", "3", "--bench", "--seed", "7"].map(String::from));
/// let (mut epochs, mut seed) = (1, 0u64);
/// while let Some(flag) = flags.next_flag() {
///     match flag.as_str() {
///         "--epochs" => epochs = flags.positive(&flag).unwrap(),
///         "--seed" => seed = flags.number(&flag).unwrap(),
///         _ => unreachable!(),
///     }
/// }
/// assert_eq!((epochs, seed), (3, 7));
/// ```
#[derive(Debug)]
pub struct Flags<I> {
    words: I,
}

impl<I: Iterator<Item = String>> Flags<I> {
    pub fn new(words: impl IntoIterator<IntoIter = I>) -> Self {
        Self {
            words: words.into_iter(),
        }
    }

    /// The next flag, `None` at the end.
    pub fn next_flag(&mut self) -> Option<String> {
        self.words.by_ref().find(|word| word != "--bench")
    }

    /// The value that follows `flag`.
    pub fn value(&mut self, flag: &str) -> Result<String, String> {
        self.words
            .next()
            .ok_or_else(|| format!("`{flag}` needs a value"))
    }

    /// The value of `flag` as a positive whole number.
    pub fn positive(&mut self, flag: &str) -> Result<usize, String> {
        positive(flag, &self.value(flag)?)
    }

    /// The value of `flag` as a number of type `T`.
    pub fn number<T: FromStr>(&mut self, flag: &str) -> Result<T, String> {
        let text = self.value(flag)?;
        text.parse()
            .map_err(|_| format!("`{flag}` wants a number, not `{text}`"))
    }
}

/// What a bench binary does with its parsed flags: the arguments, else the
/// exit code after printing the usage (on stdout for `--help`, which parses
/// to `Ok(None)`, and exit 0) or the error and the usage (on stderr, exit 2).
#[allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "the bench binaries' usage and flag errors"
)]
pub fn args_or_exit<T>(parsed: Result<Option<T>, String>, usage: &str) -> Result<T, ExitCode> {
    match parsed {
        Ok(Some(args)) => Ok(args),
        Ok(None) => {
            println!("{usage}");
            Err(ExitCode::SUCCESS)
        }
        Err(message) => {
            eprintln!("error: {message}\n\n{usage}");
            Err(ExitCode::from(2))
        }
    }
}

/// `text` as a positive whole number, else an error naming `flag`.
pub fn positive(flag: &str, text: &str) -> Result<usize, String> {
    match text.parse() {
        Ok(0) | Err(_) => Err(format!("`{flag}` wants a positive number, not `{text}`")),
        Ok(n) => Ok(n),
    }
}

/// The `q` quantile (0..=1) of `values` by nearest rank; NaN for none.
pub fn quantile(values: &[f64], q: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// The median of `values` (the mean of the middle two for an even count);
/// NaN for none.
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// `value` rounded to `digits` decimals, for the JSON line.
pub fn round(value: f64, digits: i32) -> f64 {
    let factor = 10f64.powi(digits);
    (value * factor).round() / factor
}

/// The workspace root, where `data/`, `strategies/` and `target/` are; the
/// benches run from their package's folder.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/bench-support sits two levels below the workspace root")
        .to_path_buf()
}

/// How the table says whether a goal was met.
pub fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "MISSED" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_skip_bench_and_name_the_flag_in_errors() {
        let mut flags = Flags::new(["--bench", "--n", "0", "--seed", "x", "--m"].map(String::from));
        assert_eq!(flags.next_flag().as_deref(), Some("--n"));
        assert_eq!(
            flags.positive("--n"),
            Err("`--n` wants a positive number, not `0`".to_owned())
        );
        assert_eq!(flags.next_flag().as_deref(), Some("--seed"));
        assert_eq!(
            flags.number::<u64>("--seed"),
            Err("`--seed` wants a number, not `x`".to_owned())
        );
        assert_eq!(flags.next_flag().as_deref(), Some("--m"));
        assert_eq!(flags.value("--m"), Err("`--m` needs a value".to_owned()));
        assert_eq!(flags.next_flag(), None);
    }

    #[test]
    fn quantiles_and_medians_by_nearest_rank() {
        let values = [5.0, 1.0, 4.0, 2.0, 3.0];
        assert_eq!(quantile(&values, 0.5), 3.0);
        assert_eq!(quantile(&values, 0.99), 5.0);
        assert_eq!(quantile(&values, 0.0), 1.0);
        assert!(quantile(&[], 0.5).is_nan());
        assert_eq!(median(&values), 3.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn rounding_root_and_verdict() {
        assert_eq!(round(1.23456, 3), 1.235);
        assert_eq!(round(1.25, 1), 1.3);
        assert!(workspace_root().join("Cargo.lock").is_file());
        assert_eq!((verdict(true), verdict(false)), ("met", "MISSED"));
    }
}
