#!/usr/bin/env python3
"""trdr's training throughput against PyTorch's, side by side in one run.

Alternates `cargo xtask bench train --throughput-only` (flex backend) with the
PyTorch loop of the same model at the same shape, N pairs, swapping which side
goes first each pair so that drifts of the machine hit both alike, and prints
each pair's samples/s, their ratio, and the median of the ratios.

    python3 bench/vs_torch.py --python ~/.venv-torch/bin/python --model lstm

PyTorch is not a dependency of trdr: install it in a virtualenv outside the
repository (bench/README.md) and pass its interpreter with --python. Standard
library only.
"""

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# model -> (trdr `bench train` flags, PyTorch script flags); same shapes on both sides.
SHAPES = {
    "mlp": (
        ["--model", "mlp", "--hidden", "64", "--batch-size", "64", "--samples", "20000"],
        ["--model", "mlp", "--hidden", "64", "--dropout", "0", "--batch-size", "64",
         "--samples", "20000"],
    ),
    "lstm": (
        ["--model", "lstm", "--hidden", "64", "--seq-len", "16", "--batch-size", "64",
         "--samples", "20000", "--epochs", "1"],
        ["--model", "lstm", "--hidden", "64", "--dropout", "0", "--seq-len", "16",
         "--batch-size", "64", "--samples", "20000", "--epochs", "1"],
    ),
    # The shape of strategies/multi_cnn.yaml: 8 bars of 17 features, two
    # convolutions of 16 channels, batch 128.
    "cnn": (
        ["--model", "cnn", "--hidden", "16,16", "--seq-len", "8", "--features", "17",
         "--batch-size", "128", "--samples", "20000"],
        ["--hidden", "16,16", "--seq-len", "8", "--features", "17", "--batch-size", "128",
         "--samples", "20000", "--dropout", "0"],
    ),
}


def json_line(command):
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    for line in done.stdout.splitlines():
        if line.startswith("{"):
            return json.loads(line)
    sys.exit(f"{' '.join(command)} printed no JSON line")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", choices=sorted(SHAPES), required=True)
    p.add_argument("--python", required=True, help="an interpreter with torch and numpy")
    p.add_argument("--pairs", type=int, default=5)
    p.add_argument("--torch-script", type=Path,
                   help="default: bench/torch_cnn.py for cnn, ../shared/bench/torch_mlp.py else")
    args = p.parse_args()
    script = args.torch_script or (
        ROOT / "bench/torch_cnn.py" if args.model == "cnn"
        else ROOT.parent / "shared/bench/torch_mlp.py")
    trdr_flags, torch_flags = SHAPES[args.model]
    trdr = ["cargo", "xtask", "bench", "train", "--backend", "flex", "--throughput-only",
            *trdr_flags]
    torch = [args.python, str(script), *torch_flags]

    print(f"trdr:    {' '.join(trdr)}")
    print(f"pytorch: {' '.join(torch[1:])}")
    print(f"{'pair':>4} {'trdr samples/s':>15} {'pytorch samples/s':>18} {'ratio':>7}")
    ratios = []
    for pair in range(args.pairs):
        sides = {}
        order = ["trdr", "torch"] if pair % 2 == 0 else ["torch", "trdr"]
        for side in order:
            if side == "trdr":
                sides[side] = json_line(trdr)["synthetic"]["backends"][0]["train_samples_per_s"]
            else:
                sides[side] = json_line(torch)["samples_per_sec"]
        ratio = sides["trdr"] / sides["torch"]
        ratios.append(ratio)
        print(f"{pair + 1:>4} {sides['trdr']:>15.0f} {sides['torch']:>18.0f} {ratio:>7.2f}")
    print(f"median ratio trdr / pytorch ({args.model}): {statistics.median(ratios):.2f}")


if __name__ == "__main__":
    main()
