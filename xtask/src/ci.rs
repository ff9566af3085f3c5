//! `cargo xtask ci`: the checks CI runs, cheapest first, stopping at the first failure.
//!
//! It is all of CI: `.ci/run` only calls it, so the README's test command
//! runs exactly what CI runs, slow tests included. One profile (dev) for
//! every step, and one feature set for clippy and the tests: the default
//! one plus the wgpu backend (`cli/wgpu`), whose tests run on lavapipe.

use std::path::Path;

use crate::{CargoStep, Error};

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
        "--features",
        "cli/wgpu",
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

// Unit, integration, end-to-end (the `slow_` ones included) and doc tests
// in one cargo invocation. Not nextest plus `cargo test --doc`: those are
// two builds whose proc-macros see different features of `syn`, so the
// doctest build rebuilt burn and everything above it, 7 minutes of a cold
// run. The suite runs the same under both runners. With the wgpu backend:
// its tests exist only in a build that has it.
const TESTS: CargoStep = CargoStep {
    name: "tests",
    args: &["test", "--workspace", "--locked", "--features", "cli/wgpu"],
    extra: Vec::new(),
};

pub(crate) fn run(root: &Path) -> Result<(), Error> {
    FMT.run(root)?;
    CLIPPY.run(root)?;
    DOCS.run_with_env(root, DOCS_ENV)?;
    PACKAGE.run(root)?;
    // The Slurm tests submit to a real one-node cluster; it stays up
    // afterwards (`cargo xtask slurm down` stops it).
    let slurm_conf = crate::slurm::up(&crate::slurm::state_dir(root, None)?)?;
    let slurm_conf = slurm_conf.to_str().ok_or_else(|| {
        Error::usage(format!(
            "the Slurm config path {} is not UTF-8",
            slurm_conf.display()
        ))
    })?;
    let vulkan = crate::vulkan::lavapipe(root)?;
    let mut env = vec![("SLURM_CONF", slurm_conf)];
    env.extend(vulkan.iter().map(|(name, value)| (*name, value.as_str())));
    TESTS.run_with_env(root, &env)?;
    eprintln!("ci: all steps passed");
    Ok(())
}
