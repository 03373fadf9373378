"""The data sets bundled in the cagem binary, as NumPy arrays (no files needed)."""

from __future__ import annotations

import numpy as np

from . import _core


def _bundled(name: str):
    train_x, train_y, test_x, test_y, h, w = _core.bundled(name)
    as_images = lambda b: np.frombuffer(b, dtype=np.uint8).reshape(-1, h, w).copy()  # noqa: E731
    as_labels = lambda b: np.frombuffer(b, dtype="<i8").astype(np.int64)  # noqa: E731
    return as_images(train_x), as_labels(train_y), as_images(test_x), as_labels(test_y)


def load_mnist():
    """MNIST as bundled in cagem (verified by SHA-256): ``(X_train, y_train, X_test, y_test)``,
    images as uint8 arrays of shape (n, 28, 28) with intensities 0–255 (60,000 and 10,000), labels
    int64 0–9. cagem scales uint8 by 1/255 and binarises dynamically (Bernoulli likelihood)."""
    return _bundled("mnist")


def load_omniglot():
    """The 28×28 OMNIGLOT cagem derives from the original (Burda et al.'s split by drawer),
    ``(X_train, y_train, X_test, y_test)``, uint8 images of shape (n, 28, 28) and the alphabet
    (0–49) as int64 labels."""
    return _bundled("omniglot")
