"""The convex programs of two-layer ReLU networks (Pilanci & Ergen 2020)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from .._misc import check_finite_input
from .._solution import RESULTS
from .._solver import AbstractProblem
from ._losses import check_labels, check_loss, loss_value, robust_hinge_value
from ._patterns import add_bias_column


class ConvexReLUVariables(eqx.Module):
    """The variables of the convex ReLU programs: the iterate of `sciopt.relu.ADMM`
    and the value of the `Solution` of both `ADMM` and `InteriorPoint` (which fills
    `v`, `s`, `p`, `t` and the duals; see its docs), and the `y0` of either.

    Groups are stacked as `2P` rows: rows `0..P-1` are `v_1..v_P`, rows `P..2P-1` are
    `w_1..w_P`.

    **Fields:**

    - `u`: (2P, d) the variable of the linear-system step.
    - `v`: (2P, d) its group-lasso copy: the convex solution (exactly sparse).
    - `s`: (2P, n) the cone slacks, `s = G u >= 0` ((0, n) for gated ReLU).
    - `p`: the loss split, (n,) predictions `F u` (adversarial: (n, d), the sums
      `sum_i d_ik (v_i - w_i)`).
    - `t`: (2P, d) copy of `u` for the robust cones ((0, d) otherwise).
    - `dual_v`, `dual_s`, `dual_p`, `dual_t`: the (unscaled) dual variables.
    """

    u: Array
    v: Array
    s: Array
    p: Array
    t: Array
    dual_v: Array
    dual_s: Array
    dual_p: Array
    dual_t: Array

    @property
    def weights(self) -> Array:
        """The convex solution as a (2, P, d) array: `[V; W]`."""
        return self.v.reshape(2, -1, self.v.shape[-1])


def _all(condition) -> Array:
    return jnp.all(condition) if jnp.size(condition) else jnp.array(True)


def data_result(problem) -> RESULTS:
    """Run-time check of a problem's data, for data traced under `jax.jit` (concrete
    data are checked by the constructors, which raise `ValueError`). Returns
    `RESULTS.nonfinite_data` when `X`, `y`, `patterns` or `beta` hold nan or inf,
    `RESULTS.invalid_data` when `beta <= 0`, a pattern entry is not 0 or 1, a
    pattern column is all zero, a label lies outside the loss's domain or `eps < 0`,
    else `RESULTS.successful`."""
    X, y, beta = problem.X, problem.y, problem.beta
    patterns = getattr(problem, "patterns", None)
    arrays = [X, y, beta] + ([] if patterns is None else [patterns])
    eps = getattr(problem, "eps", None)
    arrays += [a for a in (eps, getattr(problem, "directions", None)) if a is not None]
    finite = jnp.array(True)
    for a in arrays:
        finite = finite & _all(jnp.isfinite(a))
    valid = beta > 0
    if patterns is not None:
        valid = valid & _all((patterns == 0) | (patterns == 1))
        valid = valid & _all(jnp.any(patterns != 0, axis=0))
    if problem.loss == "bce":
        valid = valid & _all((y == 0) | (y == 1))
    elif problem.loss == "hinge":
        valid = valid & _all((y == -1) | (y == 1))
    if eps is not None:
        valid = valid & (eps >= 0)
    return RESULTS.where(
        finite,
        RESULTS.where(valid, RESULTS.successful, RESULTS.invalid_data),
        RESULTS.nonfinite_data,
    )


def _as_float_array(name: str, value, ndim: int, dtype=None) -> Array:
    if not isinstance(value, jax.core.Tracer):
        arr = np.asarray(value)
        if arr.ndim != ndim:
            raise ValueError(
                f"`{name}` must be a {ndim}-D array, got shape {arr.shape}."
            )
        check_finite_input(name, arr.astype(np.float64))
    value = jnp.asarray(value)
    if dtype is None:
        dtype = value.dtype if jnp.issubdtype(value.dtype, jnp.inexact) else float
        dtype = jnp.result_type(dtype)
    if value.ndim != ndim:
        raise ValueError(f"`{name}` must be a {ndim}-D array, got shape {value.shape}.")
    return value.astype(dtype)


def _check_beta(beta, dtype) -> Array:
    if not isinstance(beta, jax.core.Tracer):
        b = np.asarray(beta)
        if b.shape != () or not np.isfinite(b) or b <= 0:
            raise ValueError(f"`beta` must be a positive finite scalar, got {beta!r}.")
    return jnp.asarray(beta, dtype=dtype)


class AbstractConvexReLUProblem(AbstractProblem):
    """Shared data of the convex ReLU programs: `X` (bias column included), `y`,
    `patterns` (n, P) and `beta`."""

    X: eqx.AbstractVar[Array]
    y: eqx.AbstractVar[Array]
    patterns: eqx.AbstractVar[Array]
    beta: eqx.AbstractVar[Array]
    bias: eqx.AbstractVar[bool]

    @property
    def num_patterns(self) -> int:
        return self.patterns.shape[1]

    @property
    def signed_patterns(self) -> Array:
        """(2P, n): rows `+d_i` then `-d_i` (the map from groups to predictions)."""
        return jnp.concatenate([self.patterns.T, -self.patterns.T], axis=0)

    @property
    def cone_signs(self) -> Array:
        """(2P, n): rows `2 d_i - 1`, twice (the diagonals of `2 D_i - I`)."""
        g = 2 * self.patterns.T - 1
        return jnp.concatenate([g, g], axis=0)

    def predict_groups(self, v: Float[Array, "2P d"]) -> Array:
        """Predictions `sum_i D_i X (v_i - w_i)` of a stacked group variable."""
        return jnp.sum(self.signed_patterns * (v @ self.X.T), axis=0)

    def regulariser(self, v: Float[Array, "2P d"]) -> Array:
        return self.beta * jnp.sum(jnp.linalg.norm(v, axis=1))


def _validate(X, y, patterns, beta, loss):
    X = _as_float_array("X", X, 2)
    dtype = X.dtype
    y = _as_float_array("y", y, 1, dtype)
    patterns = _as_float_array("patterns", patterns, 2, dtype)
    n = X.shape[0]
    if y.shape[0] != n:
        raise ValueError(f"`y` must have length n={n} (rows of X), got {y.shape[0]}.")
    if patterns.shape[0] != n:
        raise ValueError(
            f"`patterns` must have n={n} rows (one per sample), got "
            f"{patterns.shape[0]}."
        )
    if patterns.shape[1] == 0:
        raise ValueError(
            "`patterns` has no column (P = 0): sample or enumerate patterns first."
        )
    if not isinstance(patterns, jax.core.Tracer):
        pn = np.asarray(patterns)
        if not np.all((pn == 0) | (pn == 1)):
            raise ValueError("`patterns` must be a 0/1 array.")
        if not pn.any(axis=0).all():
            raise ValueError(
                "`patterns` has an all-zero column; remove it with "
                "`sciopt.relu.deduplicate_patterns`."
            )
    if loss is not None:
        check_labels(loss, y)
    beta = _check_beta(beta, dtype)
    return X, y, patterns, beta


class ConvexReLUProblem(AbstractConvexReLUProblem):
    """The convex program of a two-layer ReLU network with weight decay.

    min_{v_i, w_i} loss(sum_i D_i X (v_i - w_i), y) + beta sum_i (||v_i|| + ||w_i||)
    s.t. (2 D_i - I) X v_i >= 0, (2 D_i - I) X w_i >= 0,

    over the activation patterns D_i = diag(patterns[:, i]). With every pattern of `X`
    (`sciopt.relu.enumerate_patterns`) its optimum equals the global optimum of
    loss(sum_j (X u_j)_+ alpha_j, y) + beta/2 sum_j (||u_j||^2 + alpha_j^2) for a wide
    enough network; with sampled patterns it is an upper bound that tightens as P grows.
    With `gated=True` the cone constraints are dropped (the gated-ReLU model whose
    gates are the patterns).

    ??? cite "References"

        ```bibtex
        @inproceedings{pilanci2020neural,
            title={Neural Networks are Convex Regularizers: Exact Polynomial-time
                   Convex Optimization Formulations for Two-layer Networks},
            author={Pilanci, Mert and Ergen, Tolga},
            booktitle={International Conference on Machine Learning},
            pages={7695--7705},
            year={2020}
        }
        ```
    """

    X: Array
    y: Array
    patterns: Array
    beta: Array
    loss: str = eqx.field(static=True)
    bias: bool = eqx.field(static=True)
    gated: bool = eqx.field(static=True)

    def __init__(
        self,
        X: ArrayLike,
        y: ArrayLike,
        patterns: ArrayLike,
        beta: ArrayLike,
        loss: str = "squared",
        *,
        bias: bool = False,
        gated: bool = False,
    ):
        """**Arguments:**

        - `X`: (n, d) data, without the bias column.
        - `y`: (n,) targets: real for `"squared"`, {0, 1} for `"bce"`, {-1, +1} for
          `"hinge"`.
        - `patterns`: (n, P) 0/1 array; column i is the diagonal of D_i (computed on
          `X` with its bias column when `bias=True`).
        - `beta`: the weight-decay strength, > 0.
        - `loss`: `"squared"`, `"bce"` or `"hinge"` (sums over samples).
        - `bias`: append a ones column to `X` (a first-layer bias).
        - `gated`: drop the cone constraints (gated-ReLU model).
        """
        check_loss(loss)
        X, y, patterns, beta = _validate(X, y, patterns, beta, loss)
        self.X = add_bias_column(X) if bias else X
        self.y, self.patterns, self.beta = y, patterns, beta
        self.loss, self.bias, self.gated = loss, bias, gated

    def objective(self, v: Float[Array, "2P d"]) -> Array:
        """The convex objective at a stacked group variable `v` (2P, d)."""
        return loss_value(self.loss, self.predict_groups(v), self.y) + self.regulariser(
            v
        )

    def cone_violation(self, v: Float[Array, "2P d"]) -> Array:
        """max over groups and samples of (-(2 D_i - I) X v_i)_+ (0 for gated)."""
        if self.gated:
            return jnp.zeros((), self.X.dtype)
        return jnp.max(jax.nn.relu(-self.cone_signs * (v @ self.X.T)))

    def default_y0(self, args) -> ConvexReLUVariables:
        n, d = self.X.shape
        P2 = 2 * self.num_patterns
        dt = self.X.dtype
        ns = 0 if self.gated else n
        z = jnp.zeros
        return ConvexReLUVariables(
            u=z((P2, d), dt),
            v=z((P2, d), dt),
            s=z((P2, ns), dt),
            p=z((n,), dt),
            t=z((0, d), dt),
            dual_v=z((P2, d), dt),
            dual_s=z((P2, ns), dt),
            dual_p=z((n,), dt),
            dual_t=z((0, d), dt),
        )

    def check(self, y0, args) -> None:
        _check_structure(self.default_y0(args), y0)


class AdversarialReLUProblem(AbstractConvexReLUProblem):
    """Convex adversarial training under l_inf perturbations of radius `eps`.

    min sum_k max(0, 1 - y_k yhat_k + eps ||q_k||_1) + beta sum_i (||v_i|| + ||w_i||)
    s.t. (2 D_i - I) X v_i >= eps ||v_i||_1, (2 D_i - I) X w_i >= eps ||w_i||_1,

    with q_k = sum_i d_ik (v_i - w_i) and yhat_k = x_k^T q_k. The robust cones keep
    every pattern unchanged for all perturbations of radius `eps` (the bias column is
    not perturbed: pass `bias=True` rather than a ones column), so the objective
    upper-bounds the worst-case hinge loss of the recovered network. `eps = 0` gives
    the hinge-loss `ConvexReLUProblem`.

    ??? cite "References"

        ```bibtex
        @article{bai2023efficient,
            title={Efficient Global Optimization of Two-Layer {ReLU} Networks:
                   Quadratic-Time Algorithms and Adversarial Training},
            author={Bai, Yatong and Gautam, Tanmay and Sojoudi, Somayeh},
            journal={SIAM Journal on Mathematics of Data Science},
            volume={5},
            number={2},
            pages={446--474},
            year={2023}
        }
        ```
    """

    X: Array
    y: Array
    patterns: Array
    beta: Array
    eps: Array
    bias: bool = eqx.field(static=True)
    loss: str = eqx.field(static=True, default="hinge")
    gated: bool = eqx.field(static=True, default=False)

    def __init__(
        self,
        X: ArrayLike,
        y: ArrayLike,
        patterns: ArrayLike,
        beta: ArrayLike,
        eps: ArrayLike,
        *,
        bias: bool = False,
    ):
        """**Arguments:**

        - `X`, `y` (labels in {-1, +1}), `patterns`, `beta`, `bias`: as for
          `sciopt.relu.ConvexReLUProblem`.
        - `eps`: the l_inf radius, >= 0.
        """
        X, y, patterns, beta = _validate(X, y, patterns, beta, "hinge")
        if not isinstance(eps, jax.core.Tracer):
            e = np.asarray(eps)
            if e.shape != () or not np.isfinite(e) or e < 0:
                raise ValueError(f"`eps` must be a finite scalar >= 0, got {eps!r}.")
        self.X = add_bias_column(X) if bias else X
        self.y, self.patterns, self.beta = y, patterns, beta
        self.eps = jnp.asarray(eps, X.dtype)
        self.bias = bias

    @property
    def eps_weights(self) -> Array:
        """(d,) the perturbation radius per input (0 on the bias column)."""
        d = self.X.shape[1]
        w = jnp.full((d,), self.eps)
        return w.at[-1].set(0) if self.bias else w

    def sums(self, v: Float[Array, "2P d"]) -> Array:
        """(n, d) q_k = sum_i d_ik (v_i - w_i)."""
        return self.signed_patterns.T @ v

    def objective(self, v: Float[Array, "2P d"]) -> Array:
        q = self.sums(v)
        yhat = jnp.sum(q * self.X, axis=1)
        weighted = q * self.eps_weights[None, :]
        return robust_hinge_value(
            yhat, weighted, self.y, jnp.ones((), v.dtype)
        ) + self.regulariser(v)

    def cone_violation(self, v: Float[Array, "2P d"]) -> Array:
        margin = jnp.sum(jnp.abs(v) * self.eps_weights[None, :], axis=1)
        return jnp.max(jax.nn.relu(margin[:, None] - self.cone_signs * (v @ self.X.T)))

    def default_y0(self, args) -> ConvexReLUVariables:
        n, d = self.X.shape
        P2 = 2 * self.num_patterns
        dt = self.X.dtype
        z = jnp.zeros
        return ConvexReLUVariables(
            u=z((P2, d), dt),
            v=z((P2, d), dt),
            s=z((P2, n), dt),
            p=z((n, d), dt),
            t=z((P2, d), dt),
            dual_v=z((P2, d), dt),
            dual_s=z((P2, n), dt),
            dual_p=z((n, d), dt),
            dual_t=z((P2, d), dt),
        )

    def check(self, y0, args) -> None:
        _check_structure(self.default_y0(args), y0)


def _check_structure(expected, y0) -> None:
    if not isinstance(y0, ConvexReLUVariables):
        raise ValueError(
            "`y0` must be a `sciopt.relu.ConvexReLUVariables` (or None for zeros), got "
            f"{type(y0).__name__}."
        )
    for name in expected.__dataclass_fields__:
        a, b = getattr(expected, name), getattr(y0, name)
        if a.shape != b.shape:
            raise ValueError(
                f"`y0.{name}` must have shape {a.shape}, got {b.shape}; start from "
                "`problem.default_y0(None)` or a previous solution of the same problem."
            )
