"""LogisticRegression on the labelled examples and LabelSpreading (kNN graph) on all training
examples, on the same splits as cagem; test error in %."""
import numpy as np, sys

# usage: python3 scripts/own-data/baselines.py SETS NAME...   (SETS: the folder make_sets.py wrote)
SETS = sys.argv[1]
from sklearn.linear_model import LogisticRegression
from sklearn.semi_supervised import LabelSpreading
from sklearn.preprocessing import StandardScaler
for name in sys.argv[2:]:
    errs = {"logreg": [], "labelspreading": []}
    for seed in (0, 1, 2):
        d = f"{SETS}/{name}-s{seed}"
        if not __import__("os").path.isdir(d):
            continue  # mnist5k has seed 0 only
        xtr = np.load(f"{d}/train_x.npy").reshape(-1, np.prod(np.load(f"{d}/train_x.npy").shape[1:])).astype(float)
        xte = np.load(f"{d}/test_x.npy").reshape(len(np.load(f"{d}/test_x.npy")), -1).astype(float)
        ytr, yte = np.load(f"{d}/train_y.npy"), np.load(f"{d}/test_y.npy")
        sc = StandardScaler().fit(xtr)
        xtr, xte = sc.transform(xtr), sc.transform(xte)
        lab = ytr >= 0
        lr = LogisticRegression(max_iter=5000).fit(xtr[lab], ytr[lab])
        errs["logreg"].append(100 * (lr.predict(xte) != yte).mean())
        ls = LabelSpreading(kernel="knn", n_neighbors=7, max_iter=1000).fit(xtr, ytr)
        errs["labelspreading"].append(100 * (ls.predict(xte) != yte).mean())
    print(name, {k: (round(np.mean(v), 2), [round(e, 2) for e in v]) for k, v in errs.items()})
