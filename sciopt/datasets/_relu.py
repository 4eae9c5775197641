"""Data sets of the gallery: planted networks and scikit-learn's bundled sets."""

import numpy as np


def planted_regression(n: int, d: int, width: int, noise: float, seed: int):
    """y = f(x) + noise for a random planted two-layer ReLU network f."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((2 * n, d))
    U = rng.standard_normal((width, d))
    a = rng.standard_normal(width)
    y = np.maximum(X @ U.T, 0) @ a / np.sqrt(width)
    y = y + noise * rng.standard_normal(2 * n)
    return X[:n], y[:n], X[n:], y[n:]


def one_dimensional(n: int, seed: int):
    rng = np.random.default_rng(seed)
    X = np.sort(rng.uniform(-2, 2, (2 * n, 1)), axis=0)
    y = (
        np.abs(X[:, 0])
        - 1
        + 0.5 * np.sin(3 * X[:, 0])
        + 0.1 * rng.standard_normal(2 * n)
    )
    perm = rng.permutation(2 * n)
    train, test = perm[:n], perm[n:]
    return X[train], y[train], X[test], y[test]


def sklearn_binary(name: str, n_train: int, seed: int, classes=(3, 8), labels="01"):
    """A standardised binary train/test split of a bundled scikit-learn data set.

    `name` is `"breast_cancer"` or `"digits"` (one-vs-one on `classes`). Labels are
    {0, 1} (`labels="01"`) or {-1, +1} (`"pm1"`).
    """
    from sklearn import datasets

    if name == "breast_cancer":
        data = datasets.load_breast_cancer()
        X, y = data.data, data.target.astype(np.float64)
    elif name == "digits":
        data = datasets.load_digits()
        mask = np.isin(data.target, classes)
        X = data.data[mask]
        y = (data.target[mask] == classes[1]).astype(np.float64)
    else:
        raise ValueError(f"Unknown data set {name!r}: use 'breast_cancer' or 'digits'.")
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(y))
    if n_train >= len(y):
        raise ValueError(f"`n_train` must be below {len(y)} for {name!r}.")
    train, test = perm[:n_train], perm[n_train:]
    mean, std = X[train].mean(axis=0), X[train].std(axis=0)
    std = np.where(std > 0, std, 1.0)
    X = (X - mean) / std / np.sqrt(X.shape[1])
    if labels == "pm1":
        y = 2 * y - 1
    return X[train], y[train], X[test], y[test]


def gaussian_blobs(n: int, d: int, seed: int, separation: float = 1.0):
    """Two Gaussian classes with labels {-1, +1} (for adversarial training)."""
    rng = np.random.default_rng(seed)
    y = np.where(rng.random(2 * n) < 0.5, -1.0, 1.0)
    mean = np.zeros(d)
    mean[0] = separation
    X = rng.standard_normal((2 * n, d)) * 0.7 + y[:, None] * mean[None, :]
    return X[:n], y[:n], X[n:], y[n:]


def load_relu_table(data: dict, quick: bool = False):
    """Train/test arrays `(X, y, X_test, y_test)` of a relu problem-file table.

    The table's `dataset` is one of `planted`, `one_dimensional`, `gaussian`,
    `breast_cancer`, `digits`; `n` (or `quick_n` when `quick`) its size, `seed` its
    seed, plus each generator's own keys (`d`, `planted_width`, `noise`, `classes`).
    """
    size = data.get("quick_n" if quick else "n", data.get("n", 100))
    seed = int(data.get("seed", 0))
    kind = data["dataset"]
    if kind == "planted":
        return planted_regression(
            size,
            int(data["d"]),
            int(data.get("planted_width", 5)),
            float(data.get("noise", 0.1)),
            seed,
        )
    if kind == "one_dimensional":
        return one_dimensional(size, seed)
    if kind == "gaussian":
        return gaussian_blobs(size, int(data["d"]), seed)
    if kind in ("breast_cancer", "digits"):
        labels = "pm1" if data.get("loss") == "hinge" else "01"
        classes = tuple(data.get("classes", (3, 8)))
        return sklearn_binary(kind, size, seed, classes, labels)
    raise ValueError(f"Unknown dataset {kind!r}.")
