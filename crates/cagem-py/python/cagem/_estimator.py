"""`cagem.CaGeM`: the scikit-learn-style estimator.

Fitting writes the arrays into the run folder (``RUN/data/train_x.npy`` …) and trains exactly as
``cagem train --dataset npy --data RUN/data --out RUN`` does (same options, defaults, messages,
checkpoint); the fitted model answers through the library's evaluation functions, as
``cagem predict/encode/score`` do. A run trained by the command line opens with `cagem.load`.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import weakref
from pathlib import Path
from typing import Optional, Sequence, Tuple, Union

import numpy as np

from . import _arrays, _core
from ._progress import Examples, Reporter

try:  # scikit-learn is optional: with it, CaGeM is one of its estimators (clone, Pipeline, tags).
    from sklearn.base import BaseEstimator as _Base
    from sklearn.exceptions import NotFittedError
except ImportError:
    import inspect

    class NotFittedError(ValueError, AttributeError):
        """The estimator is used before `fit`."""

    class _Base:
        """get_params/set_params as scikit-learn's BaseEstimator defines them."""

        @classmethod
        def _get_param_names(cls):
            sig = inspect.signature(cls.__init__)
            return sorted(p.name for p in sig.parameters.values() if p.name != "self")

        def get_params(self, deep: bool = True) -> dict:
            return {name: getattr(self, name) for name in self._get_param_names()}

        def set_params(self, **params):
            valid = self._get_param_names()
            for key, value in params.items():
                if key not in valid:
                    raise ValueError(f"invalid parameter {key!r} for {type(self).__name__}; valid: {valid}")
                setattr(self, key, value)
            return self

        def __repr__(self):
            defaults = {p.name: p.default for p in inspect.signature(type(self).__init__).parameters.values()}
            changed = [f"{k}={v!r}" for k, v in self.get_params().items() if defaults.get(k) != v]
            return f"{type(self).__name__}({', '.join(changed)})"


# Estimator parameter → `cagem train` option. Only values that differ from the defaults below are
# passed, so that the command line's own defaults (the data-sized ones included) apply, and a
# resumed run keeps its saved configuration for everything not asked for.
_OPTIONS = {
    "clusters": "--clusters",
    "z1": "--z1",
    "z2": "--z2",
    "q_hidden": "--q-hidden",
    "p_hidden": "--p-hidden",
    "likelihood": "--likelihood",
    "standardize": "--standardize",
    "binarize": "--binarize",
    "min_std": "--min-std",
    "labels": "--labels",
    "epochs": "--epochs",
    "warmup": "--warmup",
    "batch_size": "--batch",
    "labelled_batch_size": "--labelled-batch",
    "lr": "--lr",
    "beta": "--beta",
    "clip_norm": "--clip-norm",
    "valid_fraction": "--valid-fraction",
    "patience": "--patience",
    "eval_every": "--eval-every",
    "eval_k": "--eval-k",
    "recipe": "--recipe",
    "deviations": "--deviation",
    "log_py_weight": "--log-py-weight",
    "marginal_entropy_y": "--marginal-entropy-y",
    "precision": "--precision",
    "device": "--device",
    "seed": "--seed",
}


def _flag_values(value):
    if isinstance(value, bool):
        return []
    if isinstance(value, (tuple, list)):
        return [",".join(str(v) for v in value)]
    return [str(value)]


class CaGeM(_Base):
    """The Cluster-aware Generative Model (Maaløe, Fraccaro, Winther) as a scikit-learn estimator.

    A two-stochastic-layer VAE whose top layer carries a discrete cluster variable y; trained
    unsupervised (``y=None``: CaGeM-0) or with a few labels (−1 marks an unlabelled example).
    Each parameter is the ``cagem train`` option of the same name, with its default and meaning;
    ``None`` means "as the command line chooses", which for data of your own is sized to the data
    (docs/own-data.md: the network widths, latent sizes, batch and epochs from the number of
    examples and features, K from the labels' classes). Invalid values raise ValueError with the
    command line's message when `fit` is called.

    Parameters
    ----------
    clusters : int or None
        K, the number of clusters (None: the classes of y, else 10).
    z1, z2 : int or None
        Sizes of the bottom and top Gaussian latents.
    q_hidden, p_hidden : (int, int) or None
        Widths of the two hidden layers of the inference and generative networks.
    likelihood : {"bernoulli", "gaussian"}
        p(x|y,z1): Bernoulli (values in [0, 1]; uint8 is scaled by 1/255) or Gaussian
        (real-valued data, learned diagonal variance).
    standardize : bool
        Standardise each feature to zero mean and unit variance (Gaussian likelihood).
    binarize : {"dynamic", "none"} or None
        Bernoulli likelihood: a fresh binary draw of every training batch (the paper's MNIST
        protocol) or the values in [0, 1] as they are (None: "none" for grey data, whose grey
        levels a draw would throw away; binary data are the same either way).
    min_std : float or None
        Floor on the standard deviation of p(x|y,z1) (None: derived from the data).
    labels : int or None
        With a fully labelled y, how many labelled examples to draw evenly over the classes (the
        paper's protocol; the command line's default is 100). A y with −1 entries is used as it is.
    epochs, warmup : int, float or None
        Length of training and of the KL warm-up, in epochs.
    batch_size, labelled_batch_size : int or None
        Unlabelled and labelled examples per step.
    lr, beta : float
        Adam's learning rate; the weight of the classification terms (α = β·N/N_l).
    clip_norm : float or None
        Clip the gradient's total norm.
    valid_fraction : float or None
        Hold out this share of the training examples for validation: periodic evaluation, the best
        checkpoint and early stopping (``patience``) use it, never a test set.
    patience, eval_every, eval_k : int or None
        Early stopping after this many evaluations without improvement; evaluate every this many
        epochs; importance samples of those evaluations.
    recipe : str or None
        A named set of deviations from the paper (``cagem train --help``): "chosen-branch" or
        "chosen-branch-held" for CaGeM-N, "spread-clusters" for CaGeM-0; off by default.
    deviations : sequence of str
        Deviations from the paper's model or objective, by name; none by default.
    log_py_weight : float or None
        Deviation: the unlabelled ELBO's Σ_y q(y|z1,x) log p(y|z2_y) counts this many times (3 is
        ``recipe="chosen-branch"``: p(y|x) level with q(y|x) at reduced scale). None: the paper.
    marginal_entropy_y : float or None
        Deviation: adds λ·H of the batch's mean q(y|z1,x) to the unlabelled ELBO, against the
        collapse of unsupervised runs onto a few clusters (λ = 1: 10 of 10 clusters used on MNIST
        where the paper's objective uses 3). None: the paper.
    precision : {"f32", "bf16", "auto"} or None
        Arithmetic of the matrix products (None: the command line's choice, f32 where the CPU has
        no bf16 instructions).
    device : str
        "cpu", or "cuda[:N]" in a build with the CUDA backend.
    threads : int or None
        Worker threads (None: one per core).
    seed : int
        Seed of the initialisation, the labelled subset, the batches and the noise.
    run_dir : str or None
        The run folder (checkpoint, config.json, metrics.jsonl, the data). None: a temporary folder
        removed with the estimator (`save` keeps a copy).
    verbose : int
        0: silent; 1: a progress bar (tqdm where installed, otherwise a line per epoch) and notes.

    Attributes
    ----------
    classes_ : ndarray of shape (K,)
        The cluster indices; with labels, cluster k is class k.
    n_features_in_ : int
    history_ : list of dict
        The run's metrics.jsonl rows (one per epoch, plus resume events).
    run_dir_ : str
    """

    def __init__(
        self,
        clusters: Optional[int] = None,
        z1: Optional[int] = None,
        z2: Optional[int] = None,
        q_hidden: Optional[Tuple[int, int]] = None,
        p_hidden: Optional[Tuple[int, int]] = None,
        likelihood: str = "bernoulli",
        standardize: bool = False,
        binarize: Optional[str] = None,
        min_std: Optional[float] = None,
        labels: Optional[int] = None,
        epochs: Optional[int] = None,
        warmup: Optional[float] = None,
        batch_size: Optional[int] = None,
        labelled_batch_size: Optional[int] = None,
        lr: float = 1e-3,
        beta: float = 0.1,
        clip_norm: Optional[float] = None,
        valid_fraction: Optional[float] = None,
        patience: Optional[int] = None,
        eval_every: Optional[int] = None,
        eval_k: int = 100,
        recipe: Optional[str] = None,
        deviations: Sequence[str] = (),
        log_py_weight: Optional[float] = None,
        marginal_entropy_y: Optional[float] = None,
        precision: Optional[str] = None,
        device: str = "cpu",
        threads: Optional[int] = None,
        seed: int = 0,
        run_dir: Optional[str] = None,
        verbose: int = 1,
    ):
        self.clusters = clusters
        self.z1 = z1
        self.z2 = z2
        self.q_hidden = q_hidden
        self.p_hidden = p_hidden
        self.likelihood = likelihood
        self.standardize = standardize
        self.binarize = binarize
        self.min_std = min_std
        self.labels = labels
        self.epochs = epochs
        self.warmup = warmup
        self.batch_size = batch_size
        self.labelled_batch_size = labelled_batch_size
        self.lr = lr
        self.beta = beta
        self.clip_norm = clip_norm
        self.valid_fraction = valid_fraction
        self.patience = patience
        self.eval_every = eval_every
        self.eval_k = eval_k
        self.recipe = recipe
        self.deviations = deviations
        self.log_py_weight = log_py_weight
        self.marginal_entropy_y = marginal_entropy_y
        self.precision = precision
        self.device = device
        self.threads = threads
        self.seed = seed
        self.run_dir = run_dir
        self.verbose = verbose

    # ---------------------------------------------------------------------------------- fitting
    def _argv(self, data_dir: str, run_dir: str, resume: bool) -> list:
        import inspect

        defaults = {p.name: p.default for p in inspect.signature(CaGeM.__init__).parameters.values()}
        # A resumed run reads the data folder it recorded.
        argv = (["--out", run_dir] if resume else ["--dataset", "npy", "--data", data_dir, "--out", run_dir])
        for name, flag in _OPTIONS.items():
            value = getattr(self, name)
            if value is None or value is False or _same(value, defaults[name]):
                continue
            if name == "deviations":
                for d in ([value] if isinstance(value, str) else value):
                    argv += [flag, str(d)]
                continue
            argv += [flag, *_flag_values(value)]
        if resume:
            argv.append("--resume")
        if not self.verbose:
            argv.append("--quiet")
        return argv

    def fit(self, X, y=None, *, eval_set=None, resume: bool = False):
        """Train on X (shape (n, d) or (n, h, w); uint8 or floats) with labels y (−1: unlabelled;
        None: unsupervised). ``eval_set=(X_test, y_test)`` is stored as the run's test set (what
        ``cagem eval`` reads). ``resume=True`` continues the run in ``run_dir`` from its
        checkpoint, as ``cagem train --resume`` does (e.g. with a larger ``epochs``); the data must
        be the data it was trained on. Ctrl-C stops after the current step with a checkpoint
        written, then raises KeyboardInterrupt. Returns self."""
        _check_threads(self.threads)
        X = _arrays.features(X, "X")
        files = {"train_x.npy": X}
        if y is not None:
            files["train_y.npy"] = _arrays.labels(y, X.shape[0], "y")
        if eval_set is not None:
            Xt, yt = (eval_set if isinstance(eval_set, (tuple, list)) else (eval_set, None))
            files["test_x.npy"] = _arrays.features(Xt, "eval_set X")
            if yt is not None:
                files["test_y.npy"] = _arrays.labels(yt, files["test_x.npy"].shape[0], "eval_set y")
        run_dir = self._run_folder(resume)
        data_dir = os.path.join(run_dir, "data")
        if resume:
            data_dir = _recorded_data(run_dir)
            _check_same_data(data_dir, files)
        else:
            # Refuse before writing anything: the data of the run there must stay as it is.
            if any(os.path.exists(os.path.join(run_dir, f)) for f in ("config.json", _core.CHECKPOINT_FILE)):
                raise ValueError(
                    f"{run_dir} holds a run already: fit(..., resume=True) continues it; choose another "
                    f"run_dir to start afresh"
                )
            os.makedirs(data_dir, exist_ok=True)
            for name, arr in files.items():
                np.save(os.path.join(data_dir, name), arr)
        names = {"train_x.npy": "X", "train_y.npy": "y", "test_x.npy": "eval_set X", "test_y.npy": "eval_set y"}
        reporter = Reporter(self.verbose)
        try:
            _core.train(self._argv(data_dir, run_dir, resume), reporter, self.threads)
        except ValueError as e:
            msg = str(e)
            for name, what in names.items():
                msg = msg.replace(os.path.join(data_dir, name), f"{what} ({name} in {data_dir})")
            raise ValueError(msg) from None
        finally:
            reporter.close()
        self._open(run_dir)
        return self

    def _run_folder(self, resume: bool) -> str:
        if self.run_dir is not None:
            return os.path.abspath(os.fspath(self.run_dir))
        if resume and getattr(self, "run_dir_", None):
            return self.run_dir_
        if resume:
            raise ValueError("resume=True continues a run: set run_dir, or fit once first")
        folder = tempfile.mkdtemp(prefix="cagem-run-")
        self._temporary = weakref.finalize(self, shutil.rmtree, folder, True)
        return folder

    def _open(self, run_dir: str, checkpoint: str = "last"):
        self.model_ = _core.Model.open(run_dir, checkpoint, self.threads)
        cfg = json.loads(self.model_.config_json)
        self.config_ = cfg
        m = cfg["model"]
        self.classes_ = np.arange(m["clusters"])
        self.n_features_in_ = m["x_dim"]
        self.image_shape_ = (m["height"], m["width"])
        self.run_dir_ = run_dir
        metrics = Path(run_dir) / "metrics.jsonl"
        self.history_ = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()] if metrics.exists() else []

    # ------------------------------------------------------------------------------- inference
    def _model(self):
        if not hasattr(self, "model_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet: call fit first, or cagem.load a run")
        return self.model_

    def predict_proba(self, X, which: str = "p", samples: int = 100) -> np.ndarray:
        """Class probabilities, shape (n, K): ``which="p"``, p(y|x) = Σ_y' q(y'|x) p(y|z2), from
        ``samples`` draws of z1 and z2 per example (the CaGeM classifier); ``"q"``, q(y|x), the
        inference network's classifier trained on the labels directly."""
        if which not in ("p", "q"):
            raise ValueError(f"which={which!r}: expected 'p' or 'q'")
        X = _arrays.features(X, "X")
        with Examples(self.verbose, X.shape[0], "predict") as progress:
            p, q = self._model().class_probabilities(*_arrays.handover(X), int(samples), progress)
        return _arrays.from_f64(p if which == "p" else q, X.shape[0], len(self.classes_))

    def predict(self, X, which: str = "auto", samples: int = 100) -> np.ndarray:
        """The most likely class of each example. ``which="auto"`` follows ``cagem predict``'s
        rule: q(y|x), unless the run's latest validation evaluation found p(y|x) better; or
        ``"p"``/``"q"`` explicitly."""
        if which == "auto":
            use_p, _why = self._model().preferred_classifier()
            which = "p" if use_p else "q"
        return self.classes_[np.argmax(self.predict_proba(X, which=which, samples=samples), axis=1)]

    def transform(self, X, which: str = "z2") -> np.ndarray:
        """Posterior means: E[z2|x] (shape (n, z2)) or with ``which="z1"`` E[z1|x]."""
        if which not in ("z1", "z2"):
            raise ValueError(f"which={which!r}: expected 'z1' or 'z2'")
        X = _arrays.features(X, "X")
        with Examples(self.verbose, X.shape[0], "transform") as progress:
            z1, z2 = self._model().posterior_means(*_arrays.handover(X), progress)
        cfg = self.config_["model"]
        return _arrays.from_f64(z1, X.shape[0], cfg["z1"]) if which == "z1" else _arrays.from_f64(z2, X.shape[0], cfg["z2"])

    def fit_transform(self, X, y=None, **fit_params):
        return self.fit(X, y, **fit_params).transform(X)

    def score_samples(self, X, k: int = 100) -> np.ndarray:
        """The importance-weighted bound on log p(x) of each example, in nats, from k samples
        (y summed exactly); as ``cagem score``."""
        X = _arrays.features(X, "X")
        with Examples(self.verbose, X.shape[0], f"score IW-{k}") as progress:
            raw = self._model().iw_bound(*_arrays.handover(X), int(k), progress)
        return _arrays.from_f64(raw, X.shape[0])

    def score(self, X, y=None, k: int = 100) -> float:
        """The mean IW-k bound on log p(x) per example, in nats (higher is better)."""
        return float(np.mean(self.score_samples(X, k=k)))

    def sample(self, n: int = 1, cls: Optional[int] = None, seed: Optional[int] = None) -> np.ndarray:
        """n generations, shaped as the training examples: the means of p(x|y,z1) (Bernoulli
        probabilities or Gaussian means, in the data's units). z2 from its prior and y ~ p(y|z2);
        with ``cls``, z2 ~ p(z2|y=cls) and y = cls."""
        raw, _y, _inexact = self._model().sample(int(n), cls, self.seed if seed is None else int(seed))
        return _arrays.from_f64(raw, int(n), *self._shape())

    def reconstruct(self, X) -> np.ndarray:
        """Reconstructions through the bottom layer (z1 = E[z1|x], y = argmax q(y|z1,x)), shaped as X."""
        X = _arrays.features(X, "X")
        raw = self._model().reconstruct(*_arrays.handover(X))
        return _arrays.from_f64(raw, *X.shape)

    def _shape(self):
        h, w = self.image_shape_
        return (h, w) if h > 1 else (w,)

    # ----------------------------------------------------------------------------- save / load
    def save(self, path: Union[str, os.PathLike]) -> str:
        """Copy the run folder (checkpoint, best checkpoint, config.json, metrics.jsonl, data) to
        ``path``, a new folder; every ``cagem`` command opens it with ``--run path`` (those that read
        the training data give ``--data path/data``, as the run records the folder it trained from)."""
        src = self._model() and self.run_dir_
        dst = os.fspath(path)
        if os.path.exists(dst):
            raise ValueError(f"{dst} exists already: save writes a new folder")
        shutil.copytree(src, dst, ignore=shutil.ignore_patterns("*.lock", ".lock", "*.tmp*"))
        return dst


def load(path: Union[str, os.PathLike], checkpoint: str = "last", threads: Optional[int] = None, verbose: int = 1) -> CaGeM:
    """A fitted CaGeM from a run folder, written by ``cagem train`` or by `CaGeM.fit`/`save`:
    ``checkpoint="best"`` loads the best checkpoint of a run with a validation split. Its
    parameters are the run's configuration; ``fit(X, y, resume=True)`` continues it in place."""
    _check_threads(threads)
    run = os.path.abspath(os.fspath(path))
    est = CaGeM(threads=threads, run_dir=run, verbose=verbose)
    est._open(run, checkpoint)
    m, t = est.config_["model"], est.config_["train"]
    est.set_params(
        clusters=m["clusters"],
        z1=m["z1"],
        z2=m["z2"],
        q_hidden=tuple(m["q_hidden"]),
        p_hidden=tuple(m["p_hidden"]),
        likelihood=m["likelihood"].lower() if isinstance(m["likelihood"], str) else m["likelihood"],
        standardize=m["standardize"],
        epochs=t["epochs"],
        seed=t["seed"],
    )
    return est


def _check_threads(threads):
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ValueError(f"threads={threads!r}: expected None (one per core) or a whole number ≥ 1")


def _same(a, b) -> bool:
    if isinstance(a, (tuple, list)) or isinstance(b, (tuple, list)):
        return list(a) == list(b) if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)) else False
    return type(a) is type(b) and a == b


def _recorded_data(run_dir: str) -> str:
    """The data folder a run recorded (resume=True continues on it)."""
    config = Path(run_dir) / "config.json"
    if not config.exists():
        raise ValueError(f"resume=True: {run_dir} holds no run (no config.json); fit without resume to start one")
    train = json.loads(config.read_text())["train"]
    if train.get("dataset") != "npy" or not train.get("data_dir"):
        raise ValueError(
            f"resume=True: the run in {run_dir} trained on the bundled {train.get('dataset')}, not on arrays; "
            f"continue it with `cagem train --out {run_dir} --resume`"
        )
    return train["data_dir"]


def _check_same_data(data_dir: str, files: dict):
    """resume=True continues on the data the run was trained on."""
    for name, arr in files.items():
        path = os.path.join(data_dir, name)
        if not os.path.exists(path):
            raise ValueError(f"resume=True: the run's data folder {data_dir} holds no {name}, but it was given")
        saved = np.load(path)
        if saved.dtype != arr.dtype or saved.shape != arr.shape or not np.array_equal(saved, arr):
            raise ValueError(
                f"resume=True continues a run trained on {path}, but the arrays given differ from it: resume "
                f"on the data it was trained on, or fit without resume to start afresh"
            )
