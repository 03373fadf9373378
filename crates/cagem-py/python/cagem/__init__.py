"""cagem: the Cluster-aware Generative Model (Maaløe, Fraccaro, Winther) on a Rust core.

    >>> import cagem
    >>> X, y, X_test, y_test = cagem.datasets.load_mnist()
    >>> model = cagem.CaGeM(epochs=10).fit(X, y)      # 100 labels drawn evenly, the rest unlabelled
    >>> model.predict(X_test), model.transform(X_test)

`CaGeM` is a scikit-learn estimator (fit, predict, predict_proba, transform, score_samples,
get_params/set_params); its runs are the command line's run folders (`cagem.load` opens one
written by ``cagem train``).
"""

from . import datasets
from ._estimator import CaGeM, NotFittedError, load

__all__ = ["CaGeM", "NotFittedError", "datasets", "load"]
