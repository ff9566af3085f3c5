//! `cargo xtask fuzz TARGET [--seconds N]`: runs one libFuzzer target of
//! `fuzz/` on nightly (`cargo +nightly fuzz run`, with debug assertions, one
//! process), starting from the target's seed corpus.
//!
//! The corpus libFuzzer grows goes to `fuzz/corpus/TARGET` (ignored by git);
//! `fuzz/seeds/TARGET` is read, never written, and is what the property
//! tests of CI replay. A crash is saved under `fuzz/artifacts/TARGET/`;
//! the fix comes with a regression test and the input in the seeds.

use std::path::Path;
use std::process::Command;

use crate::Error;

/// Targets that need the `servers` feature of `fuzz/Cargo.toml` (burn).
const SERVER_TARGETS: &[&str] = &["api_requests", "host_requests"];

/// The targets, as named in `fuzz/Cargo.toml`, and what each one feeds.
pub(crate) const TARGETS: &[(&str, &str)] = &[
    ("series_csv", "the store's series reader (market-data)"),
    (
        "import_csv",
        "the importer with its mapping options (market-data)",
    ),
    ("strategy_yaml", "the strategy YAML parser (strategy)"),
    (
        "api_requests",
        "the request checks of trdr serve (api-server)",
    ),
    (
        "host_requests",
        "the request checks of trdr host-service (host-service)",
    ),
    (
        "cli_args",
        "the CLI's dates, lists and import mapping flags (cli)",
    ),
];

/// How long a run lasts unless `--seconds` says otherwise.
const DEFAULT_SECONDS: u64 = 60;

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
enum Request {
    List,
    Run { target: &'static str, seconds: u64 },
}

pub(crate) fn run(root: &Path, args: &[&str]) -> Result<(), Error> {
    match parse(args)? {
        Request::List => {
            for (name, what) in TARGETS {
                println!("{name:<16} {what}");
            }
            Ok(())
        }
        Request::Run { target, seconds } => fuzz(root, target, seconds),
    }
}

fn parse(args: &[&str]) -> Result<Request, Error> {
    let (target, flags) = match args {
        [] => return Err(Error::usage("`fuzz` needs a target name, or `list`")),
        ["list"] => return Ok(Request::List),
        [target, flags @ ..] => (*target, flags),
    };
    let Some(&(target, _)) = TARGETS.iter().find(|(name, _)| *name == target) else {
        let names: Vec<&str> = TARGETS.iter().map(|(name, _)| *name).collect();
        return Err(Error::usage(format!(
            "unknown fuzz target `{target}`; targets: {}",
            names.join(", ")
        )));
    };
    let seconds = match flags {
        [] => DEFAULT_SECONDS,
        ["--seconds", value] => match value.parse::<u64>() {
            Ok(seconds) if seconds > 0 => seconds,
            _ => {
                return Err(Error::usage(format!(
                    "--seconds takes a whole number of seconds above 0, not `{value}`"
                )));
            }
        },
        [flag, ..] => {
            return Err(Error::usage(format!(
                "unexpected `{flag}` after the target; the only flag is --seconds N"
            )));
        }
    };
    Ok(Request::Run { target, seconds })
}

/// The `cargo` arguments of one run, from the `fuzz/` folder.
fn fuzz_args(target: &str, seconds: u64) -> Vec<String> {
    let mut args = vec![
        "+nightly".to_owned(),
        "fuzz".to_owned(),
        "run".to_owned(),
        // Debug assertions: an integer overflow is a crash, not a wrap.
        "--debug-assertions".to_owned(),
    ];
    if SERVER_TARGETS.contains(&target) {
        // A target folder of their own: building burn there does not hold
        // the lock the other targets' runs need.
        args.extend([
            "--features".to_owned(),
            "servers".to_owned(),
            "--target-dir".to_owned(),
            "target/servers".to_owned(),
        ]);
    }
    args.extend([
        target.to_owned(),
        format!("corpus/{target}"),
        format!("seeds/{target}"),
        "--".to_owned(),
        format!("-max_total_time={seconds}"),
        "-print_final_stats=1".to_owned(),
        // A hang is a bug: no input of these parsers should take a second.
        "-timeout=10".to_owned(),
    ]);
    args
}

fn fuzz(root: &Path, target: &str, seconds: u64) -> Result<(), Error> {
    let dir = root.join("fuzz");
    std::fs::create_dir_all(dir.join("corpus").join(target)).map_err(|err| Error::Failed {
        message: format!("cannot create fuzz/corpus/{target}: {err}"),
        code: None,
    })?;
    let args = fuzz_args(target, seconds);
    eprintln!("==> fuzz {target}: cargo {} (in fuzz/)", args.join(" "));
    // `cargo` from PATH (the rustup proxy), not the one running xtask: only
    // the proxy understands `+nightly`.
    let status = Command::new("cargo")
        .args(&args)
        .current_dir(&dir)
        .status()
        .map_err(|err| Error::Failed {
            message: format!("could not start `cargo +nightly fuzz`: {err}"),
            code: None,
        })?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::Failed {
            message: format!(
                "fuzz target {target} failed ({status}); a crash is saved under \
                 fuzz/artifacts/{target}/ (`cargo install cargo-fuzz` and a nightly \
                 toolchain are needed to run at all)"
            ),
            code: status.code(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_and_seconds_make_a_run() {
        assert_eq!(
            parse(&["series_csv", "--seconds", "600"]).unwrap(),
            Request::Run {
                target: "series_csv",
                seconds: 600
            }
        );
        assert_eq!(
            parse(&["strategy_yaml"]).unwrap(),
            Request::Run {
                target: "strategy_yaml",
                seconds: DEFAULT_SECONDS
            }
        );
        assert_eq!(parse(&["list"]).unwrap(), Request::List);
        let args = fuzz_args("series_csv", 30);
        assert_eq!(
            args.join(" "),
            "+nightly fuzz run --debug-assertions series_csv corpus/series_csv seeds/series_csv \
             -- -max_total_time=30 -print_final_stats=1 -timeout=10"
        );
        assert!(fuzz_args("api_requests", 30).join(" ").starts_with(
            "+nightly fuzz run --debug-assertions --features servers --target-dir \
                     target/servers api_requests"
        ));
    }

    #[test]
    fn bad_command_lines_are_usage_errors() {
        let message = |args: &[&str]| match parse(args) {
            Err(Error::Usage(message)) => message,
            other => panic!("expected a usage error, got {other:?}"),
        };
        assert_eq!(message(&[]), "`fuzz` needs a target name, or `list`");
        assert!(message(&["nope"]).starts_with("unknown fuzz target `nope`; targets: series_csv"));
        assert_eq!(
            message(&["series_csv", "--seconds", "0"]),
            "--seconds takes a whole number of seconds above 0, not `0`"
        );
        assert_eq!(
            message(&["series_csv", "--minutes", "3"]),
            "unexpected `--minutes` after the target; the only flag is --seconds N"
        );
    }

    /// Every target has its source in `fuzz/fuzz_targets`, a `[[bin]]` in
    /// `fuzz/Cargo.toml` and a seed corpus, and nothing there is unlisted.
    #[test]
    fn targets_match_the_fuzz_folder() {
        let fuzz = crate::workspace_root().join("fuzz");
        let manifest = std::fs::read_to_string(fuzz.join("Cargo.toml")).unwrap();
        for (name, _) in TARGETS {
            assert!(
                fuzz.join(format!("fuzz_targets/{name}.rs")).is_file(),
                "{name}"
            );
            assert!(manifest.contains(&format!("name = \"{name}\"")), "{name}");
            assert!(fuzz.join("seeds").join(name).is_dir(), "{name}");
        }
        let mut sources: Vec<String> = std::fs::read_dir(fuzz.join("fuzz_targets"))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        sources.sort();
        let mut listed: Vec<String> = TARGETS
            .iter()
            .map(|(name, _)| format!("{name}.rs"))
            .collect();
        listed.sort();
        assert_eq!(sources, listed);
    }
}
