//! The property-test half of fuzzing. Every fuzz harness is a plain function
//! over bytes in the crate it tests; libFuzzer drives it from `fuzz/` on
//! nightly, and [`check`] drives it on stable, in that crate's unit tests:
//! first every file of the target's seed corpus (`fuzz/seeds/TARGET`, where
//! regressions also go), then mutations of those seeds from a proptest runner
//! with a fixed seed, so a CI run is reproducible.
//!
//! A harness returns whether it accepted the input, so a test can tell a
//! property run that exercised the parser from one that only saw errors.
//!
//! ```
//! let accepted = fuzz_corpus::check("series_csv", 10, &[","], |bytes| {
//!     std::str::from_utf8(bytes).is_ok()
//! });
//! assert!(accepted > 0);
//! ```

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

/// Where the seed corpora live: `fuzz/seeds/TARGET/`.
pub fn seeds_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/seeds")
        .join(target)
}

/// The files of a target's seed corpus, sorted by name.
///
/// # Panics
/// When the folder is missing or empty, or a file cannot be read: a
/// property test without its seeds would test little.
pub fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = seeds_dir(target);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("seed corpus {}: {err}", dir.display()))
        .map(|entry| entry.expect("a readable directory entry").path())
        .filter(|path| path.is_file())
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "seed corpus {} is empty", dir.display());
    paths
        .iter()
        .map(|path| std::fs::read(path).unwrap_or_else(|err| panic!("{}: {err}", path.display())))
        .collect()
}

/// One edit of a seed.
#[derive(Debug, Clone)]
enum Edit {
    /// Insert one of the tokens.
    Token { at: usize, token: usize },
    /// Insert any byte.
    Byte { at: usize, byte: u8 },
    /// Remove up to `len` bytes.
    Cut { at: usize, len: usize },
    /// Copy up to `len` bytes from `from` to `at` (repeats rows and fields).
    Copy { from: usize, at: usize, len: usize },
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        3 => (any::<usize>(), any::<usize>()).prop_map(|(at, token)| Edit::Token { at, token }),
        2 => (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Edit::Byte { at, byte }),
        2 => (any::<usize>(), 1..16usize).prop_map(|(at, len)| Edit::Cut { at, len }),
        1 => (any::<usize>(), any::<usize>(), 1..64usize)
            .prop_map(|(from, at, len)| Edit::Copy { from, at, len }),
    ]
}

fn apply(mut bytes: Vec<u8>, edits: &[Edit], tokens: &[&str]) -> Vec<u8> {
    for edit in edits {
        let at = |pos: usize, len: usize| pos % (len + 1);
        match *edit {
            Edit::Token { at: pos, token } => {
                if let Some(token) = tokens.get(token % tokens.len().max(1)) {
                    let pos = at(pos, bytes.len());
                    bytes.splice(pos..pos, token.bytes());
                }
            }
            Edit::Byte { at: pos, byte } => {
                let pos = at(pos, bytes.len());
                bytes.insert(pos, byte);
            }
            Edit::Cut { at: pos, len } => {
                let pos = at(pos, bytes.len());
                let end = (pos + len).min(bytes.len());
                bytes.drain(pos..end);
            }
            Edit::Copy { from, at: pos, len } => {
                let from = at(from, bytes.len());
                let end = (from + len).min(bytes.len());
                let piece = bytes[from..end].to_vec();
                let pos = at(pos, bytes.len());
                bytes.splice(pos..pos, piece);
            }
        }
    }
    bytes
}

/// Inputs made from the seeds: one of them with up to eight edits (tokens of
/// the format inserted, bytes inserted, ranges cut or repeated), or, one
/// time in eight, bytes at random.
pub fn mangled(
    seeds: Vec<Vec<u8>>,
    tokens: &'static [&'static str],
) -> impl Strategy<Value = Vec<u8>> {
    let count = seeds.len();
    prop_oneof![
        7 => (0..count, proptest::collection::vec(edit(), 0..8))
            .prop_map(move |(seed, edits)| apply(seeds[seed].clone(), &edits, tokens)),
        1 => proptest::collection::vec(any::<u8>(), 0..256),
    ]
}

/// A runner whose random choices are the same on every run.
pub fn seeded_runner(cases: u32) -> TestRunner {
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &[17; 32]))
}

/// Runs `harness` on every seed of `target`, then on `cases` mutations of
/// them (see [`mangled`]); returns how many of the mutations it accepted.
///
/// # Panics
/// When the harness panics on any input; the message shows the (shrunk)
/// input, to be added to the seeds as a regression.
pub fn check(
    target: &str,
    cases: u32,
    tokens: &'static [&'static str],
    harness: impl Fn(&[u8]) -> bool,
) -> u32 {
    let seeds = seeds(target);
    for seed in &seeds {
        harness(seed);
    }
    let accepted = std::cell::Cell::new(0);
    let result = seeded_runner(cases).run(&mangled(seeds, tokens), |input| {
        if harness(&input) {
            accepted.set(accepted.get() + 1);
        }
        Ok(())
    });
    if let Err(failure) = result {
        panic!("fuzz harness {target} failed: {failure}");
    }
    accepted.get()
}

#[cfg(test)]
mod tests {
    use proptest::strategy::ValueTree;

    use super::*;

    #[test]
    fn edits_stay_in_bounds_and_do_what_they_say() {
        let seed = b"abc".to_vec();
        let tokens = &["XY"];
        let edits = [
            Edit::Token { at: 5, token: 0 },
            Edit::Cut { at: 0, len: 1 },
            Edit::Byte {
                at: 100,
                byte: b'!',
            },
            Edit::Copy {
                from: 0,
                at: 0,
                len: 2,
            },
        ];
        // Positions wrap: "abc" -> "aXYbc" -> "XYbc" -> "!XYbc" -> "!X!XYbc".
        let out = apply(seed, &edits, tokens);
        assert_eq!(String::from_utf8(out).unwrap(), "!X!XYbc");
        assert_eq!(apply(Vec::new(), &[Edit::Cut { at: 3, len: 9 }], &[]), b"");
        assert_eq!(
            apply(Vec::new(), &[Edit::Token { at: 3, token: 9 }], &[]),
            b""
        );
    }

    #[test]
    fn the_same_seed_gives_the_same_inputs() {
        let draw = || {
            let mut runner = seeded_runner(1);
            let strategy = mangled(vec![b"a,b\n1,2\n".to_vec()], &[",", "\n"]);
            (0..20)
                .map(|_| strategy.new_tree(&mut runner).unwrap().current())
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(), draw());
    }
}
