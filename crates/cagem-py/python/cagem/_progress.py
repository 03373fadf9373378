"""What training reports, in Python: a tqdm bar where tqdm is installed (one line per epoch
otherwise), notes and the summary on stderr, cagem's warnings as Python warnings."""

from __future__ import annotations

import json
import sys
import warnings

try:
    from tqdm.auto import tqdm
except ImportError:  # tqdm is optional
    tqdm = None


class Reporter:
    """Called by the core (from its worker thread, with the GIL) as the command line's terminal is."""

    def __init__(self, verbose: int):
        self.verbose = verbose
        self.bar = None
        self.history = []
        self.last = ""
        self.epoch, self.epochs = 0, 0

    def _print(self, line: str):
        if not self.verbose:
            return
        if self.bar is not None:
            self.bar.write(line, file=sys.stderr)
        else:
            print(line, file=sys.stderr, flush=True)

    def note(self, line: str):
        self._print(line)

    def warn(self, line: str):
        if line.startswith("warning: "):
            line = line[len("warning: "):]
        warnings.warn(line, UserWarning, stacklevel=2)

    def result(self, line: str):
        self._print(line)

    def epoch_start(self, epoch: int, epochs: int, steps: int):
        self.epoch, self.epochs = epoch, epochs
        if self.verbose and tqdm is not None:
            if self.bar is None:
                self.bar = tqdm(total=epochs * steps, initial=(epoch - 1) * steps, unit="step", file=sys.stderr)
            self.bar.set_description(f"epoch {epoch}/{epochs}")

    def step(self, step: int, steps: int, loss: float, elbo: float, examples_per_s: float):
        if self.bar is not None:
            self.bar.update(1)
            if step % 10 == 0 or step == steps:
                self.bar.set_postfix_str(f"ELBO {elbo:.2f} {examples_per_s:.0f} ex/s{self.last}", refresh=False)

    def evaluating(self, done: int, total: int):
        if self.bar is not None and done == 0:
            self.bar.set_description(f"epoch {self.epoch}/{self.epochs} evaluating")

    def epoch_end(self, record: str):
        r = json.loads(record)
        self.history.append(r)
        prefix = "valid_" if "valid_log_likelihood" in r else "test_"
        if prefix + "log_likelihood" in r:
            self.last = f" | {prefix[:-1]} IW {r[prefix + 'log_likelihood']:.2f}"
            if r.get(prefix + "error_q") is not None:
                self.last += f" err q {100 * r[prefix + 'error_q']:.2f} %"
        if self.bar is None:
            self._print(
                f"epoch {r['epoch']}/{self.epochs}: ELBO {r['elbo']:.3f} loss {r['loss']:.3f} "
                f"{r.get('examples_per_s', 0):.0f} ex/s {r.get('epoch_seconds', 0):.1f} s{self.last}"
            )

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class Examples:
    """A bar over the examples of an evaluation (predict, transform, score), where tqdm is
    installed and verbose; the core calls it with the number of examples done."""

    def __init__(self, verbose: int, total: int, desc: str):
        self.bar = tqdm(total=total, desc=desc, unit="ex", file=sys.stderr, leave=False) if verbose and tqdm else None

    def __call__(self, done: int):
        if self.bar is not None:
            self.bar.update(done - self.bar.n)

    def __enter__(self):
        return self if self.bar is not None else None

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.close()
