"""Python against the command line: one epoch on the first 10,000 MNIST images (100 labels), the
same data-sized model, alternating runs; medians of the epoch time metrics.jsonl records and of
the whole call's wall time. Run on an otherwise idle machine:

    python crates/cagem-py/benches/overhead.py [--reps 3] [--threads N] [--cagem target/release/cagem]
"""

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time

import numpy as np

import cagem

ap = argparse.ArgumentParser()
ap.add_argument("--reps", type=int, default=3)
ap.add_argument("--threads", type=int, default=os.cpu_count())
ap.add_argument("--cagem", default="target/release/cagem")
a = ap.parse_args()

X, y, _, _ = cagem.datasets.load_mnist()
X, y = X[:10000], y[:10000]
labels = np.full_like(y, -1)
for c in range(10):
    labels[np.flatnonzero(y == c)[:10]] = c
work = tempfile.mkdtemp(prefix="cagem-overhead-")
data = os.path.join(work, "data")
os.makedirs(data)
np.save(os.path.join(data, "train_x.npy"), X)
np.save(os.path.join(data, "train_y.npy"), labels)


def epoch_seconds(run):
    rows = [json.loads(l) for l in open(os.path.join(run, "metrics.jsonl")) if l.strip()]
    return [r["epoch_seconds"] for r in rows if "epoch_seconds" in r][0]


results = {"cli": [], "python": [], "python+tqdm": []}
for rep in range(a.reps):
    for kind in results:
        run = os.path.join(work, f"{kind}-{rep}")
        start = time.perf_counter()
        if kind == "cli":
            subprocess.run([a.cagem, "--threads", str(a.threads), "train", "--dataset", "npy", "--data", data,
                            "--out", run, "--epochs", "1", "--quiet"], check=True, capture_output=True)
        else:
            cagem.CaGeM(epochs=1, threads=a.threads, run_dir=run, verbose=int(kind == "python+tqdm")).fit(X, labels)
        wall = time.perf_counter() - start
        results[kind].append((epoch_seconds(run), wall))
        print(f"{kind:12s} rep {rep}: epoch {results[kind][-1][0]:.2f} s, whole call {wall:.2f} s", flush=True)

cli_epoch = statistics.median(e for e, _ in results["cli"])
cli_wall = statistics.median(w for _, w in results["cli"])
for kind, rows in results.items():
    e = statistics.median(r[0] for r in rows)
    w = statistics.median(r[1] for r in rows)
    print(f"median {kind:12s}: epoch {e:.2f} s ({100 * (e / cli_epoch - 1):+.1f} % against the CLI), "
          f"whole call {w:.2f} s ({100 * (w / cli_wall - 1):+.1f} %)")
