"""Activation patterns D_i = diag(1[X h >= 0]): exact enumeration and sampling."""

import itertools
import math

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray


def add_bias_column(X: ArrayLike) -> Array:
    """Append a column of ones to `X` (the bias of the first layer)."""
    X = jnp.asarray(X)
    return jnp.concatenate([X, jnp.ones((X.shape[0], 1), X.dtype)], axis=1)


def _as_data(X, bias: bool) -> np.ndarray:
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"`X` must be a 2-D (n, d) array, got shape {X.shape}.")
    if not np.issubdtype(X.dtype, np.floating):
        X = X.astype(np.float64)
    if not np.all(np.isfinite(X)):
        raise ValueError("`X` contains nan or inf; clean the data first.")
    if bias:
        X = np.concatenate([X, np.ones((X.shape[0], 1), X.dtype)], axis=1)
    return X


def _unique_columns(patterns: np.ndarray, drop_zero: bool) -> np.ndarray:
    patterns = np.unique(patterns.astype(np.int8), axis=1)
    if drop_zero:
        patterns = patterns[:, patterns.any(axis=0)]
    return patterns


def deduplicate_patterns(patterns: ArrayLike) -> Array:
    """Remove repeated and all-zero columns of an (n, P) 0/1 pattern matrix.

    Neither changes the optimal value of the convex program. Raises `ValueError` if
    no column is left.
    """
    patterns = np.asarray(patterns)
    if patterns.ndim != 2:
        raise ValueError(f"`patterns` must be (n, P), got shape {patterns.shape}.")
    out = _unique_columns(patterns, drop_zero=True)
    if out.shape[1] == 0:
        raise ValueError(
            "`patterns` has no non-zero column left after removing duplicates; "
            "sample more directions."
        )
    return jnp.asarray(out, dtype=jnp.float64 if jax.config.jax_enable_x64 else None)


def sample_patterns(
    key: PRNGKeyArray,
    X: ArrayLike,
    num_samples: int,
    *,
    bias: bool = False,
    return_directions: bool = False,
):
    """Sample activation patterns from Gaussian directions.

    Draws `h_1..h_N ~ N(0, I)` (one entry longer with `bias=True`), forms the patterns
    `1[X h_j >= 0]` and removes duplicated and all-zero columns.

    **Arguments:**

    - `key`: a JAX PRNG key.
    - `X`: the (n, d) data matrix (without the bias column).
    - `num_samples`: the number of directions N drawn.
    - `bias`: whether the network has a first-layer bias (a ones column is appended).
    - `return_directions`: also return the (d, P) directions that produced the kept
      patterns (the first direction of each pattern), e.g. as gates of a gated ReLU.

    **Returns:**

    An (n, P) float array of 0/1 patterns, `P <= N` (and the directions).
    """
    if not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"`num_samples` must be a positive int, got {num_samples!r}.")
    Xb = _as_data(X, bias)
    h = np.asarray(jr.normal(key, (Xb.shape[1], num_samples), dtype=jnp.float64))
    raw = (Xb @ h >= 0).astype(np.int8)
    keep = raw.any(axis=0)
    raw, h = raw[:, keep], h[:, keep]
    if raw.shape[1] == 0:
        raise ValueError(
            "No non-zero activation pattern was sampled (P = 0 after removing "
            "duplicates); increase `num_samples`."
        )
    _, index = np.unique(raw, axis=1, return_index=True)
    index = np.sort(index)
    patterns = jnp.asarray(raw[:, index], dtype=Xb.dtype)
    if return_directions:
        return patterns, jnp.asarray(h[:, index], dtype=Xb.dtype)
    return patterns


def enumerate_patterns(
    X: ArrayLike, *, bias: bool = False, max_patterns: int = 100_000
) -> Array:
    """Every activation pattern of `X`: the cells of the arrangement {h: x_k^T h = 0}.

    Works in the row space of `X` (rank r). Each cell of a central arrangement has an
    extreme ray, the intersection of r - 1 of the hyperplanes; for data in general
    position, perturbing a ray along all sign choices of its r - 1 defining rows visits
    all cells around it. Patterns on cell boundaries (ties counted as active) equal
    a neighbouring cell's pattern, so the set returned is every pattern
    `1[X h >= 0]` except the all-zero one. The cost is
    `O(binom(n, r - 1) 2^r n r)`: use it for small data (e.g. 1-D inputs with a bias).

    **Arguments:**

    - `X`: the (n, d) data matrix (without the bias column).
    - `bias`: whether a ones column is appended.
    - `max_patterns`: refuse inputs whose enumeration would exceed this many candidates.

    **Returns:**

    An (n, P) float array of the distinct non-zero 0/1 patterns.
    """
    Xb = _as_data(X, bias)
    n = Xb.shape[0]
    _, sv, vt = np.linalg.svd(Xb, full_matrices=False)
    tol = sv.max(initial=0.0) * max(Xb.shape) * np.finfo(Xb.dtype).eps
    r = int(np.sum(sv > tol))
    if r == 0:
        raise ValueError("`X` is zero: it has no activation pattern.")
    Z = Xb @ vt[:r].T  # (n, r) coordinates in the row space
    candidates = math.comb(n, r - 1) * 2**r
    if candidates > max_patterns:
        raise ValueError(
            f"Enumerating the patterns of an (n={n}, rank={r}) matrix needs about "
            f"{candidates} candidates (more than `max_patterns={max_patterns}`); use "
            "`sample_patterns` instead."
        )
    scale = np.abs(Z).max()
    found = []
    if r == 1:
        found = [Z[:, 0] >= 0, Z[:, 0] <= 0]
    else:
        for rows in itertools.combinations(range(n), r - 1):
            sub = Z[list(rows)]
            _, s_sub, v_sub = np.linalg.svd(sub)
            if s_sub.min() <= tol:
                continue
            ray = v_sub[-1]
            pinv = np.linalg.pinv(sub)
            values = Z @ ray
            gap = np.abs(values[np.abs(values) > 1e-9 * scale])
            delta = 0.25 * (gap.min() if gap.size else 1.0)
            for sign in (1.0, -1.0):
                for signs in itertools.product((1.0, -1.0), repeat=r - 1):
                    offset = pinv @ np.asarray(signs)
                    offset = offset / max(np.abs(Z @ offset).max(), 1e-300)
                    for step in (delta, 1e-3 * delta):
                        h = sign * ray + step * offset
                        z = Z @ h
                        if np.abs(z).min() > 1e-12 * scale:
                            found.append(z >= 0)
                            break
    patterns = _unique_columns(np.stack(found, axis=1), drop_zero=True)
    return jnp.asarray(patterns, dtype=Xb.dtype)


def cone_matrices(X: Float[Array, "n d"], patterns: Float[Array, "n P"]) -> Array:
    """The cone matrices G_i = (2 D_i - I) X, stacked as a (P, n, d) array."""
    return (2 * patterns.T - 1)[:, :, None] * X[None, :, :]
