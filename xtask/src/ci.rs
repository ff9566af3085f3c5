//! `cargo xtask ci`: the checks CI runs, cheapest first, stopping at the first failure.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::{CargoStep, Error, cargo};

const FMT: CargoStep = CargoStep {
    name: "fmt",
    args: &["fmt", "--all", "--check"],
    extra: Vec::new(),
};

const CLIPPY: CargoStep = CargoStep {
    name: "clippy",
    args: &[
        "clippy",
        "--workspace",
        "--all-targets",
        "--locked",
        "--",
        "-D",
        "warnings",
    ],
    extra: Vec::new(),
};

const TESTS_NEXTEST: CargoStep = CargoStep {
    name: "tests",
    args: &["nextest", "run", "--workspace", "--locked"],
    extra: Vec::new(),
};

const TESTS_CARGO: CargoStep = CargoStep {
    name: "tests",
    args: &["test", "--workspace", "--locked"],
    extra: Vec::new(),
};

// nextest does not run doctests, so they get their own step either way.
const DOCTESTS: CargoStep = CargoStep {
    name: "doctests",
    args: &["test", "--workspace", "--doc", "--locked"],
    extra: Vec::new(),
};

pub(crate) fn run(root: &Path) -> Result<(), Error> {
    FMT.run(root)?;
    CLIPPY.run(root)?;
    let tests = if nextest_available(root) {
        &TESTS_NEXTEST
    } else {
        eprintln!("note: cargo-nextest not found, running the tests with `cargo test`");
        &TESTS_CARGO
    };
    tests.run(root)?;
    DOCTESTS.run(root)?;
    eprintln!("ci: all steps passed");
    Ok(())
}

fn nextest_available(root: &Path) -> bool {
    Command::new(cargo())
        .args(["nextest", "--version"])
        .current_dir(root)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}
