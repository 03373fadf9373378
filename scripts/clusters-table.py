#!/usr/bin/env python3
"""Markdown table of the cluster factorial (issue 28): the periodic test figures of each run.

    scripts/clusters-table.py [--epoch E] BASELINE RUN...

One row per run at epoch E (default: each run's last evaluated epoch): errors of p(y|x) and
q(y|x), IW-k and its difference from the first run (the baseline) at the same epoch, routing
(posterior means / sampled), z2 class separation, clusters used, and the cost of a step (median
epoch seconds over the steps of an epoch, one thread; runs shared the 2-core machine, so compare
costs only between runs that trained side by side)."""
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_records import config, deviation_flags, epoch_records as rows  # noqa: E402


def options(run):
    cfg = config(run)
    t = cfg["train"]
    extra = deviation_flags(cfg)
    for key in ["clip_norm", "clip_value", "routing_floor", "free_bits_y", "marginal_entropy_y", "log_py_weight"]:
        if t.get(key) is not None:
            extra.append(f"--{key.replace('_', '-')} {t[key]:g}")
    extra.append(f"--warmup {t['warmup']:g}")
    if t["labels"] != 100:
        extra.append(f"--labels {t['labels']}")
    if t["seed"] != 0:
        extra.append(f"--seed {t['seed']}")
    return " ".join(extra)


def pick(run, epoch):
    tested = [r for r in rows(run) if "test_routing" in r]
    if not tested:
        return None
    if epoch is None:
        return tested[-1]
    return next((r for r in tested if r["epoch"] == epoch), None)


def main(args):
    epoch = None
    if args[:1] == ["--epoch"]:
        epoch, args = int(args[1]), args[2:]
    base = args[0]
    print("| run | options | epoch | error p(y\\|x) | error q(y\\|x) | IW-k | Δ nats | routing (means / sampled) "
          "| z2 separation (class / q) | clusters used (exp H) | s per step |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for run in args:
        r = pick(run, epoch)
        if r is None:
            print(f"| {Path(run).name} | {options(run)} | (not evaluated yet) | | | | | | | | |")
            continue
        b = pick(base, r["epoch"])
        delta = f"{r['test_log_likelihood'] - b['test_log_likelihood']:+.2f}" if b and run != base else "–"
        steps = [x["epoch_seconds"] / (x["steps"] / x["epoch"]) for x in rows(run)]
        sep = r.get("test_z2_separation")
        sep = "–" if sep is None else f"{sep:.2f}"
        pct = lambda v: "–" if v is None else f"{100 * v:.1f} %"
        print(
            f"| {Path(run).name} | {options(run)} | {r['epoch']} | {pct(r.get('test_error_p'))} | "
            f"{pct(r.get('test_error_q'))} | {r['test_log_likelihood']:.2f} (IW-{r['test_k']}) | {delta} | "
            f"{r['test_routing']:.2f} / {r['test_routing_sampled']:.2f} | {sep} / {r['test_z2_separation_by_q']:.2f} | "
            f"{r['test_clusters_used']} ({r['test_clusters_perplexity']:.1f}) | {statistics.median(steps):.2f} |"
        )


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
