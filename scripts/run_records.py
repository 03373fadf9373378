"""Reading a run folder's small records (metrics.jsonl, config.json) for the table scripts."""
import json
from pathlib import Path


def epoch_records(run):
    """The per-epoch lines of RUN/metrics.jsonl (resume events left out)."""
    out = []
    for line in Path(run, "metrics.jsonl").read_text().splitlines():
        r = json.loads(line)
        if "epoch" in r and "event" not in r:
            out.append(r)
    return out


def config(run):
    return json.loads(Path(run, "config.json").read_text())


def deviation_flags(cfg):
    """`--deviation NAME` for each named deviation of a run's configuration."""
    t, m = cfg["train"], cfg["model"]
    dev = list(t.get("deviations", [])) + ([] if m.get("skip_x_to_z2", True) else ["no-skip-x-z2"])
    return [f"--deviation {d}" for d in dev]
