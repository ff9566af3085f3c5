//! `cargo xtask bench <name> [FLAGS]`: runs one of the project's benchmarks by a short name.

use std::path::Path;

use crate::{CargoStep, Error};

pub(crate) fn run(root: &Path, args: &[&str]) -> Result<(), Error> {
    step(args)?.run(root)
}

/// The cargo command of the benchmark `args` names. Only `train`, `host`
/// and `slurm` take flags, which they hand on to the benchmark binary after
/// `--`.
fn step(args: &[&str]) -> Result<CargoStep, Error> {
    // A new benchmark is one more arm here (and its name in `USAGE`).
    let step = match args {
        ["core"] => CargoStep {
            name: "bench core",
            args: &["bench", "-p", "orchestrator-core", "--bench", "core"],
            extra: Vec::new(),
        },
        ["data"] => CargoStep {
            name: "bench data",
            args: &["bench", "-p", "market-data", "--bench", "data"],
            extra: Vec::new(),
        },
        ["ops"] => CargoStep {
            name: "bench ops",
            args: &["bench", "-p", "cli", "--bench", "ops"],
            extra: Vec::new(),
        },
        ["train", flags @ ..] => CargoStep {
            name: "bench train",
            args: train_args(flags),
            extra: flags.iter().map(|flag| (*flag).to_owned()).collect(),
        },
        ["host", flags @ ..] => CargoStep {
            name: "bench host",
            args: &["bench", "-p", "training-adapter", "--bench", "host", "--"],
            extra: flags.iter().map(|flag| (*flag).to_owned()).collect(),
        },
        ["slurm", flags @ ..] => CargoStep {
            name: "bench slurm",
            args: &["bench", "-p", "cli", "--bench", "slurm", "--"],
            extra: flags.iter().map(|flag| (*flag).to_owned()).collect(),
        },
        [] => return Err(Error::usage("`bench` needs the name of a benchmark")),
        [name] => return Err(Error::usage(format!("unknown benchmark `{name}`"))),
        [_, extra, ..] => {
            return Err(Error::usage(format!(
                "unexpected argument `{extra}` after the benchmark name"
            )));
        }
    };
    Ok(step)
}

/// `bench train`'s cargo arguments: a GPU backend in the flags builds
/// the benchmark with that backend's feature.
fn train_args(flags: &[&str]) -> &'static [&'static str] {
    let backend = flags
        .windows(2)
        .find(|pair| pair[0] == "--backend")
        .map(|pair| pair[1]);
    match backend {
        Some("wgpu") => &[
            "bench",
            "-p",
            "local-trainer",
            "--features",
            "wgpu",
            "--bench",
            "train",
            "--",
        ],
        Some("cuda") => &[
            "bench",
            "-p",
            "local-trainer",
            "--features",
            "cuda",
            "--bench",
            "train",
            "--",
        ],
        _ => &["bench", "-p", "local-trainer", "--bench", "train", "--"],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn train_hands_its_flags_to_the_benchmark() {
        let train = step(&["train", "--epochs", "1", "--skip-examples"]).unwrap();
        let command: Vec<&str> = train
            .args
            .iter()
            .copied()
            .chain(train.extra.iter().map(String::as_str))
            .collect();
        assert_eq!(
            command,
            [
                "bench",
                "-p",
                "local-trainer",
                "--bench",
                "train",
                "--",
                "--epochs",
                "1",
                "--skip-examples"
            ]
        );
        let plain = step(&["train"]).unwrap();
        assert_eq!(plain.args.last(), Some(&"--"));
        assert!(plain.extra.is_empty());
    }

    #[test]
    fn train_on_a_gpu_backend_builds_its_feature() {
        let wgpu = step(&["train", "--model", "lstm", "--backend", "wgpu"]).unwrap();
        assert_eq!(
            wgpu.args,
            [
                "bench",
                "-p",
                "local-trainer",
                "--features",
                "wgpu",
                "--bench",
                "train",
                "--"
            ]
        );
        let cpu = step(&["train", "--backend", "flex"]).unwrap();
        assert!(!cpu.args.contains(&"--features"), "{:?}", cpu.args);
    }

    #[test]
    fn host_runs_the_training_adapter_benchmark_with_its_flags() {
        let host = step(&["host", "--cancels", "5"]).unwrap();
        assert_eq!(
            host.args,
            ["bench", "-p", "training-adapter", "--bench", "host", "--"]
        );
        assert_eq!(host.extra, ["--cancels", "5"]);
    }

    #[test]
    fn slurm_runs_the_cli_benchmark_with_its_flags() {
        let slurm = step(&["slurm", "--trainings", "5"]).unwrap();
        assert_eq!(slurm.args, ["bench", "-p", "cli", "--bench", "slurm", "--"]);
        assert_eq!(slurm.extra, ["--trainings", "5"]);
    }

    #[test]
    fn other_benchmarks_take_no_flags() {
        assert!(matches!(
            step(&["core"]),
            Ok(CargoStep {
                name: "bench core",
                ..
            })
        ));
        assert!(
            matches!(step(&["core", "--quick"]), Err(Error::Usage(message)) if message.contains("--quick"))
        );
        assert!(matches!(step(&["nope"]), Err(Error::Usage(message)) if message.contains("nope")));
        assert!(matches!(step(&[]), Err(Error::Usage(_))));
    }
}
