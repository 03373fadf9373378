#!/usr/bin/env python3
"""Markdown table of the periodic test figures of ablation runs (issue 13).

    scripts/ablation-table.py runs/abl/baseline runs/abl/kl-warmup-gaussian-only ...

Each run folder's metrics.jsonl holds test_* keys on the epochs `train --eval-every` evaluated;
the first folder is the baseline the Δ column compares with (same epoch)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_records import config, deviation_flags, epoch_records  # noqa: E402


def tested(run):
    return {r["epoch"]: r for r in epoch_records(run) if "test_log_likelihood" in r}


def options(run):
    cfg = config(run)
    t = cfg["train"]
    extra = deviation_flags(cfg)
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
