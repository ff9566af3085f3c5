//! `cargo xtask`: the project's automation, written in Rust so it runs wherever cargo does.
//!
//! One module per command (`ci`, `bench`, `fuzz`, `slurm`); `tidy` holds checks that are plain
//! tests, so `cargo test` runs them. Arguments are parsed by hand to keep the
//! crate free of dependencies.

// xtask is a command-line tool: printing is its job, unlike library crates,
// where the workspace lints forbid it.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "xtask is a CLI; its output is the point"
)]

mod apt;
mod bench;
mod ci;
mod fuzz;
mod slurm;
#[cfg(test)]
mod tidy;
mod vulkan;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  ci            run all of CI, cheapest first: formatting, clippy, the docs, the
                package check of the published crates, the tests (slow ones
                included, the wgpu backend's on Mesa's software Vulkan driver)
                and the doctests; installs Slurm and the Vulkan driver when
                missing (root)
  bench <name>  run a benchmark; names: core, data, train, ops, host, slurm
                (`bench train|host|slurm [FLAGS]` passes FLAGS on; `--help` after
                the name lists them; `slurm` needs `eval \"$(cargo xtask slurm up)\"`)
  fuzz <target> [--seconds N]
                run a libFuzzer target on nightly (default 60 s); `fuzz list` names them
  slurm up|down|status [--dir DIR]
                a one-node Slurm cluster on this machine (root; state in DIR, else
                $TRDR_SLURM_DIR, else target/slurm); `up` prints the SLURM_CONF to export
  help          print this message";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let root = workspace_root();

    let result = match args.as_slice() {
        [] | ["help" | "--help" | "-h"] => {
            println!("{USAGE}");
            Ok(())
        }
        ["ci"] => ci::run(&root),
        ["bench", rest @ ..] => bench::run(&root, rest),
        ["fuzz", rest @ ..] => fuzz::run(&root, rest),
        ["slurm", rest @ ..] => slurm::run(&root, rest),
        [command, ..] => Err(Error::usage(format!("unknown command `{command}`"))),
    };

    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Error::Usage(message)) => {
            eprintln!("error: {message}\n\n{USAGE}");
            ExitCode::from(2)
        }
        Err(Error::Failed { message, code }) => {
            eprintln!("error: {message}");
            // Keep the child's exit code where it fits, so a caller sees the
            // same status it would have seen running the command itself.
            code.and_then(|code| u8::try_from(code).ok())
                .filter(|&code| code != 0)
                .map_or(ExitCode::FAILURE, ExitCode::from)
        }
    }
}

/// Why a command did not succeed.
#[derive(Debug)]
pub(crate) enum Error {
    /// The command line was wrong; usage is printed and the exit code is 2.
    Usage(String),
    /// A step ran and failed; `code` is the exit code of the process that failed.
    Failed { message: String, code: Option<i32> },
}

impl Error {
    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Self::Usage(message.into())
    }
}

/// The workspace root: xtask lives one level below it.
fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .expect("xtask's manifest directory has a parent")
        .to_path_buf()
}

/// The cargo that launched us (so toolchain overrides carry over), else `cargo` from `PATH`.
fn cargo() -> OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

/// One named `cargo` invocation, run from the workspace root.
#[derive(Debug)]
pub(crate) struct CargoStep {
    /// Short name used in messages, e.g. `clippy`.
    pub(crate) name: &'static str,
    pub(crate) args: &'static [&'static str],
    /// Arguments given by the user, appended after `args`.
    pub(crate) extra: Vec<String>,
}

impl CargoStep {
    /// Prints the command, runs it with inherited stdio and fails unless it exits successfully.
    pub(crate) fn run(&self, root: &Path) -> Result<(), Error> {
        self.run_with_env(root, &[])
    }

    /// [`run`](Self::run), with `env` set for the command.
    pub(crate) fn run_with_env(&self, root: &Path, env: &[(&str, &str)]) -> Result<(), Error> {
        let mut shown = self.command_line();
        for (name, value) in env.iter().rev() {
            shown = format!("{name}={value:?} {shown}");
        }
        eprintln!("==> {}: {shown}", self.name);
        let status = Command::new(cargo())
            .args(self.args)
            .args(&self.extra)
            .envs(env.iter().copied())
            .current_dir(root)
            .status()
            .map_err(|err| Error::Failed {
                message: format!("step `{}` could not start `{shown}`: {err}", self.name),
                code: None,
            })?;
        if status.success() {
            Ok(())
        } else {
            Err(Error::Failed {
                message: format!(
                    "step `{}` failed: `{shown}` exited with {status}",
                    self.name
                ),
                code: status.code(),
            })
        }
    }

    fn command_line(&self) -> String {
        let mut line = String::from("cargo");
        for arg in self
            .args
            .iter()
            .copied()
            .chain(self.extra.iter().map(String::as_str))
        {
            line.push(' ');
            line.push_str(arg);
        }
        line
    }
}
