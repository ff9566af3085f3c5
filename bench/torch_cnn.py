#!/usr/bin/env python3
"""PyTorch CPU training-throughput baseline for trdr's CNN (Conv1d) model.

The other side of `cargo xtask bench train --model cnn`: the same network
(Conv1d layers over the window with the features as channels, kernel 3,
'same' padding, ReLU, then one linear head over the flattened
[channels x window]), the same optimizer (Adam, lr 1e-3), the same batch size,
on a seeded synthetic data set of the same shape. Prints ONE JSON line;
`samples_per_sec` is the figure to compare.

Data (numpy PCG64, seed 0): X ~ N(0, 1) of shape (samples, seq_len, features),
W ~ N(0, 1) of shape (features, classes), y = argmax(sum_t X[:, t, :] @ W).

Only the training loop is timed, after 20 untimed warm-up batches; the batches
of each epoch are drawn from a seeded permutation, as trdr shuffles.
Deps: torch + numpy only (see bench/README.md).
"""

import argparse
import json
import math
import platform
import sys
import time

import numpy as np
import torch
from torch import nn

WARMUP_BATCHES = 20


class CNN(nn.Module):
    def __init__(self, features, seq_len, channels, classes, dropout):
        super().__init__()
        layers = []
        prev = features
        for out in channels:
            layers += [nn.Conv1d(prev, out, kernel_size=3, padding="same"), nn.ReLU(),
                       nn.Dropout(dropout)]
            prev = out
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(prev * seq_len, classes)

    def forward(self, x):
        # [batch, window, features] -> [batch, channels, window], as trdr does.
        return self.head(self.body(x.transpose(1, 2)).flatten(1))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--samples", type=int, default=20000)
    p.add_argument("--features", type=int, default=32)
    p.add_argument("--seq-len", type=int, default=8)
    p.add_argument("--hidden", type=str, default="16,16", help="channels per convolution")
    p.add_argument("--classes", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--lr", type=float, default=0.001)
    p.add_argument("--dropout", type=float, default=0.0)
    args = p.parse_args(argv)
    channels = [int(c) for c in args.hidden.split(",") if c.strip()]

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.samples, args.seq_len, args.features), dtype=np.float32)
    w = rng.standard_normal((args.features, args.classes), dtype=np.float32)
    y = (x.sum(axis=1) @ w).argmax(axis=1).astype(np.int64)
    x, y = torch.from_numpy(x), torch.from_numpy(y)

    model = CNN(args.features, args.seq_len, channels, args.classes, args.dropout)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    loss_fn = nn.CrossEntropyLoss()
    model.train()

    def step(xb, yb):
        logits = model(xb)
        loss = loss_fn(logits, yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return logits, loss

    n, bs = x.shape[0], args.batch_size
    batches = math.ceil(n / bs)
    for b in range(min(WARMUP_BATCHES, batches)):
        step(x[b * bs:(b + 1) * bs], y[b * bs:(b + 1) * bs])

    generator = torch.Generator().manual_seed(0)
    trained = 0
    loss_sum = torch.zeros((), dtype=torch.float64)
    correct = torch.zeros((), dtype=torch.int64)
    t0 = time.perf_counter()
    for _ in range(args.epochs):
        perm = torch.randperm(n, generator=generator)
        loss_sum.zero_()
        correct.zero_()
        for b in range(batches):
            idx = perm[b * bs:(b + 1) * bs]
            xb, yb = x[idx], y[idx]
            logits, loss = step(xb, yb)
            with torch.no_grad():
                loss_sum += loss.detach() * yb.shape[0]
                correct += (logits.argmax(dim=1) == yb).sum()
            trained += yb.shape[0]
    seconds = time.perf_counter() - t0

    out = {
        "model": "cnn",
        "samples": n,
        "features": args.features,
        "seq_len": args.seq_len,
        "hidden": channels,
        "batch_size": bs,
        "epochs": args.epochs,
        "dropout": args.dropout,
        "seconds": round(seconds, 4),
        "samples_per_sec": round(trained / seconds, 1),
        "us_per_batch": round(seconds / (batches * args.epochs) * 1e6, 2),
        "final_train_loss": round(loss_sum.item() / n, 5),
        "final_train_accuracy": round(correct.item() / n, 5),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
    }
    sys.stdout.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
