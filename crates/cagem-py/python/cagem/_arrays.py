"""NumPy arrays on their way to the Rust core: checked for type here, for values there.

The core reads the raw bytes of a C-ordered little-endian buffer with its NumPy type string,
the very checks `cagem train` and `cagem predict --input` make of .npy files (shape, finite
values, the [0, 1] range of a Bernoulli model).
"""

from __future__ import annotations

import numpy as np


def features(X, name: str = "X") -> np.ndarray:
    """X as uint8 or float32/float64, C-ordered, little-endian; TypeError for anything else."""
    if isinstance(X, (str, bytes)) or X is None:
        raise TypeError(f"{name} must be an array of shape (n, d) or (n, h, w), not {type(X).__name__}")
    try:
        X = np.asarray(X)
    except Exception as e:  # ragged lists and the like
        raise TypeError(f"{name} cannot be read as an array: {e}") from None
    kind = X.dtype.kind
    if kind == "b" or (kind == "f" and X.dtype.itemsize < 4):
        X = X.astype(np.float32)
    elif kind in "iu" and X.dtype != np.uint8:
        raise TypeError(
            f"{name} holds integers other than uint8 ({X.dtype}); expected uint8 (0–255) or float32/float64 "
            f"features (convert with {name}.astype(np.float32))"
        )
    elif kind not in "uf":
        raise TypeError(f"{name} has dtype {X.dtype}; expected uint8 (0–255) or float32/float64 features")
    if X.ndim not in (2, 3):
        raise ValueError(f"{name} has shape {X.shape}; expected (n, d) feature vectors or (n, h, w) images")
    return np.ascontiguousarray(X, dtype=X.dtype.newbyteorder("<"))


def labels(y, n: int, name: str = "y") -> np.ndarray:
    """y as int64 (−1 for an unlabelled example), one per example."""
    y = np.asarray(y)
    if y.dtype.kind == "f" and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
        y = y.astype(np.int64)
    if y.dtype.kind not in "iu":
        raise TypeError(f"{name} has dtype {y.dtype}; expected integer classes 0..C−1, or −1 for an unlabelled example")
    if y.ndim != 1 or y.shape[0] != n:
        raise ValueError(f"{name} has shape {y.shape}; expected one label per example, ({n},)")
    return np.ascontiguousarray(y, dtype="<i8")


def handover(X: np.ndarray) -> tuple:
    """The (bytes, type string, shape) the core takes."""
    return X.tobytes(), X.dtype.str, list(X.shape)


def from_f64(raw: bytes, *shape: int) -> np.ndarray:
    return np.frombuffer(raw, dtype="<f8").reshape(shape).copy()


def from_i64(raw: bytes) -> np.ndarray:
    return np.frombuffer(raw, dtype="<i8").copy()
