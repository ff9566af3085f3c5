//! `cargo xtask bench <name>`: runs one of the project's benchmarks by a short name.

use std::path::Path;

use crate::{CargoStep, Error};

pub(crate) fn run(root: &Path, args: &[&str]) -> Result<(), Error> {
    // A new benchmark is one more arm here (and its name in `USAGE`).
    let step = match args {
        ["core"] => CargoStep {
            name: "bench core",
            args: &["bench", "-p", "orchestrator-core", "--bench", "core"],
        },
        ["data"] => CargoStep {
            name: "bench data",
            args: &["bench", "-p", "market-data", "--bench", "data"],
        },
        [] => return Err(Error::usage("`bench` needs the name of a benchmark")),
        [name] => return Err(Error::usage(format!("unknown benchmark `{name}`"))),
        [_, extra, ..] => {
            return Err(Error::usage(format!(
                "unexpected argument `{extra}` after the benchmark name"
            )));
        }
    };
    step.run(root)
}
