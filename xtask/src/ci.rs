//! `cargo xtask ci`: the checks CI runs, cheapest first, stopping at the first failure.
//!
//! It is all of CI: `.ci/run` only calls it, so the README's test command
//! runs exactly what CI runs, slow tests included. One profile (dev) for
//! every step.

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

// The public API docs, intra-doc links checked; `RUSTDOCFLAGS` is set for
// this step only, as `cargo test --doc` reads it too.
const DOCS: CargoStep = CargoStep {
    name: "docs",
    args: &["doc", "--no-deps", "--workspace", "--locked"],
    extra: Vec::new(),
};
const DOCS_ENV: &[(&str, &str)] = &[("RUSTDOCFLAGS", "-D warnings")];

// The crates other projects can use, packaged together and each built from
// its package as crates.io would (orchestrator-core against the packaged
// trdr-progress, which crates.io does not have yet). `cargo publish
// --dry-run` does the same and then asks crates.io, so it needs the network;
// this needs none. `--allow-dirty`: CI checks the tree, not its git state.
const PACKAGE: CargoStep = CargoStep {
    name: "package",
    args: &[
        "package",
        "--offline",
        "--locked",
        "--allow-dirty",
        "-p",
        "trdr-progress",
        "-p",
        "orchestrator-core",
    ],
    extra: Vec::new(),
};

// The `ci` profile of .config/nextest.toml runs the `slow_` tests that a
// plain `cargo nextest run` leaves out.
const TESTS_NEXTEST: CargoStep = CargoStep {
    name: "tests",
    args: &[
        "nextest",
        "run",
        "--workspace",
        "--locked",
        "--profile",
        "ci",
    ],
    extra: Vec::new(),
};

// `cargo test` knows no nextest filter: it runs every test, slow ones too.
const TESTS_CARGO: CargoStep = CargoStep {
    name: "tests",
    args: &["test", "--workspace", "--locked"],
    extra: Vec::new(),
};

// nextest does not run doctests, so they get their own step either way.
const DOCTESTS: CargoStep = CargoStep {
    name: "doctests",
    args: &[
        "test",
        "--workspace",
        "--doc",
        "--locked",
        "--profile",
        "dev",
    ],
    extra: Vec::new(),
};

pub(crate) fn run(root: &Path) -> Result<(), Error> {
    FMT.run(root)?;
    CLIPPY.run(root)?;
    DOCS.run_with_env(root, DOCS_ENV)?;
    PACKAGE.run(root)?;
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
