#!/usr/bin/env python3
"""Markdown table of the periodic test figures of ablation runs (issue 13).

    scripts/ablation-table.py runs/abl/baseline runs/abl/kl-warmup-gaussian-only ...

Each run folder's metrics.jsonl holds test_* keys on the epochs `train --eval-every` evaluated;
the first folder is the baseline the Δ column compares with (same epoch)."""
import json
import sys
from pathlib import Path


def tested(run):
    rows = {}
    for line in Path(run, "metrics.jsonl").read_text().splitlines():
        r = json.loads(line)
        if "test_log_likelihood" in r:
            rows[r["epoch"]] = r
    return rows


def options(run):
    cfg = json.loads(Path(run, "config.json").read_text())
    t, m = cfg["train"], cfg["model"]
    dev = list(t.get("deviations", [])) + ([] if m.get("skip_x_to_z2", True) else ["no-skip-x-z2"])
    extra = [f"--deviation {d}" for d in dev]
    if t["warmup"] != 5:
        extra.append(f"--warmup {t['warmup']:g}")
    if t["beta"] != 0.1:
        extra.append(f"--beta {t['beta']:g}")
    return " ".join(extra) or "(the paper's)"


def main(runs):
    base = tested(runs[0])
    print("| run | options | epoch | IW-k | Δ nats vs baseline | test ELBO | error p(y\\|x) | error q(y\\|x) | KL(z2) | active z1 / z2 |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for run in runs:
        for epoch, r in sorted(tested(run).items()):
            b = base.get(epoch)
            delta = f"{r['test_log_likelihood'] - b['test_log_likelihood']:+.2f}" if b and run != runs[0] else "–"
            print(
                f"| {Path(run).name} | {options(run)} | {epoch} | {r['test_log_likelihood']:.2f} (IW-{r['test_k']}, "
                f"{r['test_n']} images) | {delta} | {r['test_elbo']:.2f} | {100 * r['test_error_p']:.1f} % | "
                f"{100 * r['test_error_q']:.1f} % | {r['test_kl_z2']:.2f} | {r['test_active_units_z1']} / "
                f"{r['test_active_units_z2']} |"
            )


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
