"""Own-data benchmark sets: sklearn digits (8x8), iris, wine, breast-cancer, and a 5,000-image
MNIST subset; stratified 80/20 train/test split, 5 labels per class (seeded), the rest -1."""
import gzip, os, sys
import numpy as np
from sklearn import datasets
from sklearn.model_selection import train_test_split

# usage: python3 scripts/own-data/make_sets.py OUT   (needs numpy and scikit-learn)
OUT = sys.argv[1] if len(sys.argv) > 1 else "runs/own-data/sets"
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")

def idx(path):
    b = gzip.open(path).read()
    return np.frombuffer(b, np.uint8, offset=4 + 4 * b[3]).reshape(np.frombuffer(b, ">u4", b[3], 4))

def write(name, x, y, seed, per_class=5, test_size=0.2):
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=test_size, stratify=y, random_state=seed)
    rng = np.random.default_rng(seed)
    lab = np.full(len(ytr), -1, np.int64)
    for c in np.unique(ytr):
        keep = rng.choice(np.flatnonzero(ytr == c), per_class, replace=False)
        lab[keep] = c
    d = f"{OUT}/{name}-s{seed}"
    os.makedirs(d, exist_ok=True)
    np.save(f"{d}/train_x.npy", xtr); np.save(f"{d}/train_y.npy", lab)
    np.save(f"{d}/test_x.npy", xte); np.save(f"{d}/test_y.npy", yte.astype(np.int64))
    np.save(f"{d}/train_y_true.npy", ytr.astype(np.int64))

for seed in (0, 1, 2):
    dg = datasets.load_digits()
    write("digits", dg.data.astype(np.float32) / 16.0, dg.target, seed)           # floats in [0,1]
    write("digits-raw", dg.data.astype(np.float32), dg.target, seed)             # raw 0..16 floats (Gaussian)
    ir = datasets.load_iris(); write("iris", ir.data.astype(np.float32), ir.target, seed)
    wi = datasets.load_wine(); write("wine", wi.data.astype(np.float32), wi.target, seed)
    bc = datasets.load_breast_cancer(); write("cancer", bc.data.astype(np.float32), bc.target, seed)
x = idx(f"{ROOT}/data/mnist/train-images-idx3-ubyte.gz")[:6250]
y = idx(f"{ROOT}/data/mnist/train-labels-idx1-ubyte.gz")[:6250].astype(np.int64)
for seed in (0,):
    write("mnist5k", x, y, seed, per_class=10)   # 5000 train (uint8), 1250 test, 100 labels
