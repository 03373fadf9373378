"""Tests of the Python package against the command line it wraps (CAGEM_BIN: the `cagem` binary
built from the same tree, release profile, as pip builds the extension)."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import cagem

REPO = Path(__file__).resolve().parents[3]
CAGEM_BIN = os.environ.get("CAGEM_BIN", str(REPO / "target" / "release" / "cagem"))

# A small model, so that each fit takes a second or two.
SMALL = dict(z1=2, z2=2, q_hidden=(16, 16), p_hidden=(16, 16), batch_size=50, labelled_batch_size=6, threads=1, verbose=0)


def blobs(n, seed=0, d=6, k=3):
    """Three Gaussian clusters of width 0.3 around centres 4 apart (as examples/fit_predict.rs)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    centres = np.zeros((k, d))
    for c in range(k):
        centres[c, c::k] = 4.0
    return (centres[y] + 0.3 * rng.standard_normal((n, d))).astype(np.float32), y


def partial(y, per_class=2):
    out = np.full_like(y, -1)
    for c in np.unique(y):
        out[np.flatnonzero(y == c)[:per_class]] = c
    return out


def cli(*args, check=True):
    if not Path(CAGEM_BIN).exists():
        pytest.fail(f"{CAGEM_BIN} is missing: build it with `cargo build --release -p cagem-cli` or set CAGEM_BIN")
    r = subprocess.run([CAGEM_BIN, "--threads", "1", *args], capture_output=True, text=True)
    if check and r.returncode != 0:
        raise AssertionError(f"cagem {' '.join(args)} failed ({r.returncode}):\n{r.stderr}")
    return r


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    X, y = blobs(600)
    model = cagem.CaGeM(likelihood="gaussian", standardize=True, epochs=8, warmup=2, seed=1, **SMALL)
    return model.fit(X, partial(y)), X, y


def test_fit_predict_transform_score_shapes_and_dtypes(fitted):
    model, X, y = fitted
    Xt, yt = blobs(90, seed=5)
    assert model.classes_.tolist() == [0, 1, 2]
    assert model.n_features_in_ == 6
    assert [r["epoch"] for r in model.history_ if "epoch" in r and "event" not in r] == list(range(1, 9))
    p = model.predict_proba(Xt, which="p", samples=4)
    q = model.predict_proba(Xt, which="q")
    assert p.shape == q.shape == (90, 3) and p.dtype == q.dtype == np.float64
    np.testing.assert_allclose(q.sum(1), 1.0, rtol=1e-6)
    pred = model.predict(Xt)
    assert pred.shape == (90,) and pred.dtype.kind == "i"
    assert np.mean(pred == yt) > 0.9  # q(y|x) separates three clusters this far apart
    assert model.transform(Xt).shape == (90, 2) and model.transform(Xt, which="z1").shape == (90, 2)
    s = model.score_samples(Xt, k=8)
    assert s.shape == (90,) and s.dtype == np.float64 and np.all(np.isfinite(s))
    assert model.score(Xt, k=8) == pytest.approx(s.mean())
    assert model.sample(5).shape == (5, 6) and model.sample(4, cls=2).shape == (4, 6)
    assert model.reconstruct(Xt[:7]).shape == (7, 6)
    # Any float dtype and either memory order give the same answer.
    np.testing.assert_allclose(model.predict_proba(np.asfortranarray(Xt.astype(np.float64)), which="q"), q, rtol=1e-6)


def test_progress_bars_where_verbose(fitted, capsys):
    pytest.importorskip("tqdm")
    model = fitted[0]
    Xt, _ = blobs(2500, seed=4)
    try:
        model.set_params(verbose=1)
        model.transform(Xt)
        model.predict_proba(Xt, samples=2)
    finally:
        model.set_params(verbose=0)
    err = capsys.readouterr().err
    assert "transform" in err and "predict" in err and "/2500" in err
    # The core reports the examples done, up to all of them.
    from cagem import _arrays

    calls = []
    model.model_.posterior_means(*_arrays.handover(_arrays.features(Xt)), calls.append)
    assert calls and calls == sorted(calls) and calls[-1] == 2500


def test_deviations_reach_the_run(tmp_path):
    X, y = blobs(120)
    with pytest.warns(UserWarning, match="DEVIATIONS from the paper: marginal-entropy-y 1, log-py-weight 3"):
        model = cagem.CaGeM(likelihood="gaussian", epochs=1, marginal_entropy_y=1.0, log_py_weight=3, **SMALL)
        model.fit(X, partial(y))
    assert model.config_["train"]["marginal_entropy_y"] == 1.0 and model.config_["train"]["log_py_weight"] == 3.0


def test_images_in_uint8_and_their_shape(tmp_path):
    rng = np.random.default_rng(0)
    X = (rng.random((120, 5, 4)) * 255).astype(np.uint8)
    model = cagem.CaGeM(epochs=1, warmup=1, **SMALL).fit(X)  # unsupervised: CaGeM-0
    assert model.sample(3).shape == (3, 5, 4)
    assert model.reconstruct(X[:2]).shape == (2, 5, 4)
    assert model.transform(X.reshape(120, 20)).shape == (120, 2)  # N×D with D = H·W is accepted


def test_grey_images_are_taken_as_they_are_unless_binarize_is_asked_for():
    rng = np.random.default_rng(0)
    X = (rng.random((120, 5, 4)) * 255).astype(np.uint8)  # 80 % of the values within [0.1, 0.9]
    grey = cagem.CaGeM(epochs=1, warmup=1, **SMALL).fit(X)
    assert grey.config_["model"]["binarize"] is False
    binarised = cagem.CaGeM(epochs=1, warmup=1, binarize="dynamic", **SMALL).fit(X)
    assert "binarize" not in binarised.config_["model"]  # the paper's way, written as in older runs
    with pytest.raises(ValueError, match="invalid value 'sometimes' for '--binarize"):
        cagem.CaGeM(epochs=1, binarize="sometimes", **SMALL).fit(X)


def test_same_seed_same_checkpoint_bytes_as_the_cli(tmp_path):
    X, y = blobs(300)
    run = tmp_path / "py"
    cagem.CaGeM(likelihood="gaussian", epochs=2, warmup=1, seed=3, run_dir=str(run), **SMALL).fit(X, partial(y))
    out = tmp_path / "cli"
    cli("train", "--dataset", "npy", "--data", str(run / "data"), "--out", str(out), "--likelihood", "gaussian",
        "--epochs", "2", "--warmup", "1", "--seed", "3", "--z1", "2", "--z2", "2", "--q-hidden", "16,16",
        "--p-hidden", "16,16", "--batch", "50", "--labelled-batch", "6", "--quiet")
    # Byte for byte: every tensor (weights, Adam's moments, batch-norm statistics) and the
    # configuration. The training state differs only by the wall-clock times it records.
    ours, theirs = safetensors_parts(run / "checkpoint.safetensors"), safetensors_parts(out / "checkpoint.safetensors")
    assert ours["tensors"] == theirs["tensors"] and len(ours["tensors"]) > 10_000
    assert ours["layout"] == theirs["layout"]
    for key in ("model", "train", "format"):
        assert ours["meta"][key] == theirs["meta"][key]
    timing = {"seconds", "epoch_seconds", "examples_per_s", "metadata_checksum"}
    state = [json.loads(p["meta"]["state"]) for p in (ours, theirs)]
    for s in state:
        s.pop("seconds")
        s["last_record"] = {k: v for k, v in s["last_record"].items() if k not in timing}
    assert state[0] == state[1]


def safetensors_parts(path):
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    meta = header.pop("__metadata__")
    return {"tensors": raw[8 + n :], "layout": header, "meta": meta}


def test_a_python_run_opens_in_the_cli_and_a_cli_run_in_python(fitted, tmp_path):
    model, X, y = fitted
    saved = tmp_path / "saved"
    model.save(saved)
    Xt, _ = blobs(40, seed=9)
    np.save(tmp_path / "new.npy", Xt)
    cli("predict", "--run", str(saved), "--input", str(tmp_path / "new.npy"), "--out", str(tmp_path / "p.npz"), "--quiet")
    with np.load(tmp_path / "p.npz") as z:
        np.testing.assert_allclose(z["q_y"], model.predict_proba(Xt, which="q"), rtol=1e-9)
        np.testing.assert_allclose(z["p_y"], model.predict_proba(Xt, which="p", samples=100), rtol=1e-9)
        assert z["pred"].tolist() == model.predict(Xt).tolist()
    cli("score", "--run", str(saved), "--input", str(tmp_path / "new.npy"), "--k", "8", "--out", str(tmp_path / "s.npz"), "--quiet")
    with np.load(tmp_path / "s.npz") as z:
        np.testing.assert_allclose(z["log_likelihood"], model.score_samples(Xt, k=8), rtol=1e-9)

    # The other way: a run of `cagem train` in Python.
    data = tmp_path / "data"
    data.mkdir()
    np.save(data / "train_x.npy", X)
    np.save(data / "train_y.npy", partial(y))
    run = tmp_path / "cli-run"
    cli("train", "--dataset", "npy", "--data", str(data), "--out", str(run), "--likelihood", "gaussian", "--epochs", "1",
        "--warmup", "1", "--z1", "2", "--z2", "2", "--q-hidden", "16,16", "--p-hidden", "16,16", "--batch", "50",
        "--labelled-batch", "6", "--quiet")
    cli("encode", "--run", str(run), "--input", str(tmp_path / "new.npy"), "--out", str(tmp_path / "e.npz"), "--quiet")
    loaded = cagem.load(run, verbose=0)
    assert loaded.get_params()["likelihood"] == "gaussian" and loaded.epochs == 1
    with np.load(tmp_path / "e.npz") as z:
        np.testing.assert_allclose(z["z2_mean"], loaded.transform(Xt), rtol=1e-9)
    # A fresh fit into that folder is refused before anything in it changes.
    before = (saved / "data" / "train_x.npy").read_bytes()
    with pytest.raises(ValueError, match="holds a run already"):
        cagem.CaGeM(run_dir=str(saved), verbose=0).fit(X[:100])
    assert (saved / "data" / "train_x.npy").read_bytes() == before
    # ... and continues there, as `cagem train --resume` would.
    loaded.set_params(epochs=2).fit(X, partial(y), resume=True)
    assert json.loads((run / "config.json").read_text())["train"]["epochs"] == 2


@pytest.mark.parametrize(
    "make, exc, words",
    [
        (lambda X, y: (np.where(np.arange(X.size).reshape(X.shape) == 7, np.nan, X), y), ValueError, "not finite"),
        (lambda X, y: (X.astype(np.int64), y), TypeError, "integers other than uint8"),
        (lambda X, y: (X.astype(str), y), TypeError, "dtype"),
        (lambda X, y: ("not an array", y), TypeError, "must be an array"),
        (lambda X, y: (X, y[:-1]), ValueError, "one label per example"),
        (lambda X, y: (X, y.astype(str)), TypeError, "integer classes"),
        (lambda X, y: (X, np.where(y == 0, -5, y)), ValueError, "is invalid"),
    ],
)
def test_bad_data_raises_the_clis_message(make, exc, words):
    X, y = blobs(60)
    X, y = make(X, partial(y))
    with pytest.raises(exc, match=words):
        cagem.CaGeM(likelihood="gaussian", epochs=1, **SMALL).fit(X, y)


@pytest.mark.parametrize(
    "params, words",
    [
        (dict(lr=float("nan")), "--lr"),
        (dict(likelihood="poisson"), "--likelihood"),
        (dict(clusters=0), "--clusters"),
        (dict(epochs=-1), "--epochs"),
        (dict(valid_fraction=1.5), "--valid-fraction"),
        (dict(threads=10_000), "threads"),
        (dict(threads=-2), "threads"),
        (dict(deviations=["no-such-thing"]), "--deviation"),
        (dict(marginal_entropy_y=-1.0), "--marginal-entropy-y"),
    ],
)
def test_bad_options_raise_value_error(params, words):
    X, y = blobs(60)
    kw = {**SMALL, "likelihood": "gaussian", "epochs": 1, **params}
    with pytest.raises(ValueError, match=words):
        cagem.CaGeM(**kw).fit(X, partial(y))


def test_bernoulli_data_out_of_range_and_shape_mismatch(fitted):
    X, y = blobs(60)
    with pytest.raises(ValueError, match=r"outside \[0, 1\]"):
        cagem.CaGeM(epochs=1, **SMALL).fit(X, partial(y))
    model = fitted[0]
    with pytest.raises(ValueError, match="the model expects examples of 1×6"):
        model.predict(np.zeros((3, 5), np.float32))
    with pytest.raises(cagem.NotFittedError):
        cagem.CaGeM().predict(X)


def test_the_gil_is_released_while_fitting():
    X, y = blobs(3000)
    ticks = []
    done = threading.Event()

    def count():
        while not done.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.01)

    t = threading.Thread(target=count)
    t.start()
    start = time.perf_counter()
    try:
        cagem.CaGeM(likelihood="gaussian", epochs=3, warmup=1, **SMALL).fit(X, partial(y))
    finally:
        done.set()
        t.join()
    seconds = time.perf_counter() - start
    # The other thread ticked throughout: at least a third of the ticks a free GIL allows.
    assert len(ticks) > seconds / 0.01 / 3, (len(ticks), seconds)


def test_ctrl_c_raises_keyboard_interrupt_with_a_checkpoint(tmp_path):
    X, y = blobs(20000, d=32)
    np.save(tmp_path / "x.npy", X)
    np.save(tmp_path / "y.npy", partial(y))
    run = tmp_path / "run"
    script = textwrap.dedent(f"""
        import numpy as np, cagem, sys
        X = np.load({str(tmp_path / 'x.npy')!r}); y = np.load({str(tmp_path / 'y.npy')!r})
        print("fitting", flush=True)
        try:
            cagem.CaGeM(likelihood="gaussian", epochs=1000, warmup=1, z1=8, z2=4, q_hidden=(256, 256),
                        p_hidden=(256, 256), batch_size=50, labelled_batch_size=6, threads=1, verbose=0,
                        run_dir={str(run)!r}).fit(X, y)
        except KeyboardInterrupt as e:
            print("KeyboardInterrupt:", e, flush=True)
            sys.exit(3)
    """)
    p = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "fitting"
    deadline = time.time() + 60
    while not (run / "config.json").exists() and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 3, (out, err)
    assert "KeyboardInterrupt" in out
    assert (run / "checkpoint.safetensors").exists()
    resumed = cagem.load(run, verbose=0)
    assert resumed.model_.epochs_done == 0  # stopped inside the first epoch; the checkpoint holds its position
    # ... from which the run continues.
    resumed.set_params(epochs=1, threads=1).fit(X, partial(y), resume=True)
    assert resumed.model_.epochs_done == 1
    assert any(r.get("event") == "resume" for r in resumed.history_)


def test_clone_and_pipeline_with_scikit_learn():
    sklearn = pytest.importorskip("sklearn")
    from sklearn.base import clone
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = cagem.CaGeM(likelihood="gaussian", epochs=8, warmup=2, seed=1, **SMALL)
    twin = clone(model)
    assert twin.get_params() == model.get_params() and twin is not model
    X, y = blobs(600)
    pipe = make_pipeline(StandardScaler(), twin).fit(X * 100 + 7, partial(y))
    Xt, yt = blobs(60, seed=3)
    assert np.mean(pipe.predict(Xt * 100 + 7) == yt) > 0.9
    assert pipe.transform(Xt * 100 + 7).shape == (60, 2)
    assert sklearn.__version__


def test_bundled_mnist():
    X, y, Xt, yt = cagem.datasets.load_mnist()
    assert X.shape == (60000, 28, 28) and X.dtype == np.uint8 and Xt.shape == (10000, 28, 28)
    assert y.dtype == np.int64 and sorted(set(y.tolist())) == list(range(10))
    X, y, Xt, yt = cagem.datasets.load_omniglot()
    assert X.shape[1:] == (28, 28) and X.dtype == np.uint8 and len(y) == len(X) and len(yt) == len(Xt)
    assert y.min() == 0 and y.max() == 49


def test_help_explains_every_argument():
    doc = cagem.CaGeM.__doc__
    for name in cagem.CaGeM().get_params():
        assert name in doc, name
