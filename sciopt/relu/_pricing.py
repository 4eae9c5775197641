"""Activation patterns from networks, and pattern pricing (column generation) for the
convex ReLU programs.

The convex program over a pattern set S is exact for the whole network problem when
its solution's dual variable `lam` satisfies the dual condition of Pilanci & Ergen
(2020),

    max_{||u|| <= 1} |lam^T (X u)_+| <= beta,

over *every* direction u, not only the directions of the patterns in S. A direction
that violates it gives a pattern `1[X u >= 0]` whose group lowers the objective
(the directional derivative of the objective along a small group `t u` of that
pattern is `-t (s lam^T (X u)_+ - beta)` for the sign s that makes it positive).
Adding such patterns and re-solving is column generation (pricing) for the convex
program (Desaulniers, Desrosiers & Solomon 2005; Lübbecke & Desrosiers 2005).

Here `lam = -grad loss(yhat)` at the solution's predictions `yhat` (for the summed
1/2 squared error, `lam = y - yhat`); its sign does not matter in the condition.

Two searches:

- `price_patterns`: multi-start projected (normalised) gradient ascent of
  `s lam^T (X u)_+` on the unit sphere, from random directions and from given
  directions (the current neurons, trained networks' neurons), all starts batched
  under `jax.vmap`. It finds violations; it cannot prove their absence.
- `exact_pricing`: for inputs of rank <= 3 (with the bias column) every pattern is
  enumerated (`enumerate_patterns`) and, for each, the largest value over its cone,
  `max_{u in K_D, ||u|| <= 1} |c^T u| = max(||P_K(c)||, ||P_K(-c)||)` with
  `c = X^T D lam` and `P_K` the projection on the polyhedral cone
  `K_D = {u: (2 D - I) X u >= 0}` (a non-negative least-squares problem), is
  computed. This is the exact left-hand side of the dual condition.

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

    @article{lubbecke2005selected,
        title={Selected Topics in Column Generation},
        author={L{\\"u}bbecke, Marco E. and Desrosiers, Jacques},
        journal={Operations Research},
        volume={53},
        number={6},
        pages={1007--1023},
        year={2005}
    }

    @book{desaulniers2005column,
        title={Column Generation},
        editor={Desaulniers, Guy and Desrosiers, Jacques and Solomon, Marius M.},
        publisher={Springer},
        year={2005}
    }
    ```
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
from jaxtyping import Array, ArrayLike, PRNGKeyArray

from ._gap import _conjugate_bound, _loss_multiplier
from ._patterns import _as_data, _unique_columns, deduplicate_patterns


def _first_layer(network) -> np.ndarray:
    first = getattr(network, "first", None)
    if first is None:
        raise TypeError(
            "`network` must be a `sciopt.relu.ReLUNetwork` (with a `first` layer), "
            f"got {type(network).__name__}."
        )
    first = np.asarray(first, dtype=np.float64)
    if first.ndim != 2:
        raise ValueError(
            f"`network.first` must be an (m, d) array, got shape {first.shape}."
        )
    return first


def network_patterns(network, X: ArrayLike, *, bias: bool | None = None) -> Array:
    """The activation patterns `1[X u_j >= 0]` of a two-layer ReLU network's neurons.

    Every neuron j of a network `f(x) = sum_j (x^T u_j)_+ alpha_j` with pattern
    `D_j` gives the feasible group `v = |alpha_j| u_j` (of sign `sign(alpha_j)`) of
    the convex program over a pattern set that holds `D_j`, with a convex objective
    at most the network's weight-decay objective (Pilanci & Ergen 2020). So a convex
    program whose patterns include these is at least as good as the network.

    **Arguments:**

    - `network`: a `sciopt.relu.ReLUNetwork` (`first` (m, d) or (m, d + 1)).
    - `X`: the (n, d) data, without the bias column.
    - `bias`: whether a ones column is appended to `X`; `None` (the default) takes
      `network.bias`. A value that disagrees with the network's shape raises.

    **Returns:**

    An (n, P) float array of the distinct non-zero patterns (P <= m; dead neurons,
    inactive on every sample, give the all-zero pattern and are dropped; P may be 0).
    """
    first = _first_layer(network)
    if bias is None:
        bias = bool(getattr(network, "bias", False))
    Xb = _as_data(X, bias)
    if first.shape[1] != Xb.shape[1]:
        raise ValueError(
            f"`network.first` has {first.shape[1]} input columns but `X` has "
            f"{Xb.shape[1]} (with bias={bias}); pass the data the network was "
            "trained on and the network's `bias`."
        )
    raw = (Xb @ first.T >= 0).astype(np.int8)
    patterns = _unique_columns(raw, drop_zero=True)
    return jnp.asarray(patterns, dtype=Xb.dtype)


def merge_patterns(*pattern_sets: ArrayLike) -> Array:
    """The union of (n, P_k) 0/1 pattern matrices, repeated and all-zero columns
    removed (`deduplicate_patterns`). Sets with no column are skipped."""
    sets = [np.asarray(p) for p in pattern_sets]
    if not sets:
        raise ValueError("`merge_patterns` needs at least one pattern set.")
    rows = {p.shape[0] for p in sets if p.ndim == 2}
    if any(p.ndim != 2 for p in sets) or len(rows) != 1:
        raise ValueError(
            "Every pattern set must be an (n, P) array with the same n, got shapes "
            f"{[p.shape for p in sets]}."
        )
    return deduplicate_patterns(np.concatenate(sets, axis=1))


def pricing_multiplier(problem, value) -> Array:
    """The dual variable `lam = -grad loss(yhat)` of the dual condition at a solution
    of `problem` (a `ConvexReLUProblem`): `y - yhat` for the summed 1/2 squared error,
    `(2 y - 1) sigmoid(-(2 y - 1) yhat)` for cross-entropy; for the hinge loss the
    negated loss multiplier of the solver (`value.dual_p`, clipped to the conjugate's
    domain), as in the duality-gap bound."""
    v = value.v if hasattr(value, "v") else value
    yhat = problem.predict_groups(v)
    dual_p = getattr(value, "dual_p", jnp.zeros_like(yhat))
    return -_loss_multiplier(problem, yhat, dual_p)


class PricingResult(eqx.Module):
    """The outcome of a pattern pricing search.

    **Fields:**

    - `max_value`: the largest `|lam^T (X u)_+|` found over unit `u`.
    - `violation`: `max_value / beta - 1` (<= 0: no violation found).
    - `patterns`: (n, k) the distinct non-zero patterns whose value exceeds
      `beta (1 + tol)`, most violating first.
    - `values`: (k,) their values.
    - `directions`: (k, d) a unit direction of each (`exact_pricing`: the
      maximiser in the pattern's cone).
    - `num_searches`: the number of directions searched (starts times signs), or
      the number of patterns checked by `exact_pricing`.
    - `exact`: whether every pattern of `X` was checked.
    """

    max_value: Array
    violation: Array
    patterns: Array
    values: Array
    directions: Array
    num_searches: int = eqx.field(static=True)
    exact: bool = eqx.field(static=True)


def _ascent_schedule(steps: int, dtype) -> Array:
    # normalised steps from large angles (near the fixed point u <- g / ||g||) down to
    # small ones: the function is piecewise linear on the cells of the arrangement
    return jnp.asarray(np.geomspace(4.0, 1e-3, steps), dtype)


@eqx.filter_jit
def _ascent(X, lam, starts, signs, etas):
    """Projected normalised (sub)gradient ascent of `s lam^T (X u)_+` on the sphere,
    one run per start (vmapped); returns the best value and direction of each run."""
    tiny = jnp.finfo(X.dtype).tiny

    def run(u0, s):
        def value(u):
            return s * jnp.dot(lam, jax.nn.relu(X @ u))

        def body(carry, eta):
            u, best, best_u = carry
            z = X @ u
            val = s * jnp.dot(lam, jax.nn.relu(z))
            better = val > best
            best = jnp.where(better, val, best)
            best_u = jnp.where(better, u, best_u)
            g = s * (X.T @ jnp.where(z >= 0, lam, 0))
            u = u + eta * g / jnp.maximum(jnp.linalg.norm(g), tiny)
            u = u / jnp.maximum(jnp.linalg.norm(u), tiny)
            return (u, best, best_u), None

        u0 = u0 / jnp.maximum(jnp.linalg.norm(u0), tiny)
        init = (u0, value(u0), u0)
        (u, best, best_u), _ = jax.lax.scan(body, init, etas)
        last = value(u)
        return jnp.where(last > best, last, best), jnp.where(last > best, u, best_u)

    return jax.vmap(run)(starts, signs)


@eqx.filter_jit
def _smooth_ascent(X, lam, starts, signs, taus, learning_rate):
    """Adam ascent of the smoothed value `s lam^T tau softplus(X u / (tau ||u||))`,
    with the temperature `tau` annealed towards 0 (the smoothed function tends to
    `s lam^T (X u)_+`), one run per start (vmapped); returns the best exact value
    and direction of each run.

    The exact value is piecewise linear on the cells of the hyperplane arrangement
    of `X`: its subgradient ascent (`_ascent`) stops at the first cell whose
    subgradient points back, which in a few tens of dimensions is far from the
    maximum. The smoothed function sees the samples near the cell's walls, and the
    annealing (graduated non-convexity, Blake & Zisserman 1987) follows its maximum
    as the smoothing is removed."""
    optimiser = optax.adam(learning_rate)

    def run(u0, s):
        def exact(u):
            return s * jnp.dot(lam, jax.nn.relu(X @ (u / jnp.linalg.norm(u))))

        def smoothed(u, tau):
            z = X @ (u / jnp.linalg.norm(u))
            return -s * jnp.dot(lam, tau * jax.nn.softplus(z / tau))

        def body(carry, tau):
            u, opt_state, best, best_u = carry
            grad = jax.grad(smoothed)(u, tau)
            # optax mixes Python floats with its int32 step count (as in sciopt.fit)
            with jax.numpy_dtype_promotion("standard"):
                updates, opt_state = optimiser.update(grad, opt_state)
                u = optax.apply_updates(u, updates)
            value = exact(u)
            better = value > best
            best = jnp.where(better, value, best)
            best_u = jnp.where(better, u / jnp.linalg.norm(u), best_u)
            return (u, opt_state, best, best_u), None

        u0 = u0 / jnp.linalg.norm(u0)
        with jax.numpy_dtype_promotion("standard"):
            opt_state = optimiser.init(u0)
        init = (u0, opt_state, exact(u0), u0)
        (_, _, best, best_u), _ = jax.lax.scan(body, init, taus)
        return best, best_u

    return jax.vmap(run)(starts, signs)


def _smoothing_schedule(Xb, steps: int, dtype) -> Array:
    # temperatures relative to the data's scale (the mean row norm: |x_i^T u| for
    # unit u), from 0.05 of it down to 1e-4 of it
    scale = float(np.mean(np.linalg.norm(Xb, axis=1)))
    return jnp.asarray(scale * np.geomspace(0.05, 1e-4, steps), dtype)


def _collect(Xb, values, directions, beta, tol, existing, max_new):
    """The distinct patterns of the directions whose value exceeds beta (1 + tol),
    most violating first, without those already in `existing` (n, P)."""
    values = np.asarray(values, np.float64)
    directions = np.asarray(directions, np.float64)
    order = np.argsort(-values)
    threshold = beta * (1 + tol)
    seen = set()
    if existing is not None:
        ex = np.asarray(existing).astype(np.int8)
        seen = {ex[:, j].tobytes() for j in range(ex.shape[1])}
    pats, vals, dirs = [], [], []
    for i in order:
        if values[i] <= threshold or len(pats) >= max_new:
            break
        p = (Xb @ directions[i] >= 0).astype(np.int8)
        if not p.any():
            continue
        b = p.tobytes()
        if b in seen:
            continue
        seen.add(b)
        pats.append(p)
        vals.append(values[i])
        dirs.append(directions[i])
    n, d = Xb.shape
    if pats:
        return np.stack(pats, 1), np.asarray(vals), np.stack(dirs, 0)
    return np.zeros((n, 0)), np.zeros((0,)), np.zeros((0, d))


def price_patterns(
    X: ArrayLike,
    lam: ArrayLike,
    beta: float,
    *,
    key: PRNGKeyArray,
    bias: bool = False,
    num_starts: int = 256,
    steps: int = 60,
    starts: ArrayLike | None = None,
    existing: ArrayLike | None = None,
    tol: float = 1e-4,
    max_new: int = 32,
    perturb: tuple[float, ...] = (0.03, 0.1, 0.3),
    smooth_steps: int = 300,
) -> PricingResult:
    """Search for directions u that violate the dual condition
    `|lam^T (X u)_+| <= beta` (Pilanci & Ergen 2020), and their patterns.

    Runs `steps` steps of projected normalised subgradient ascent of
    `s lam^T (X u)_+` over the unit sphere (`u <- (u + eta g / ||g||) / ||...||`,
    with `g = s X^T (1[X u >= 0] o lam)` and step angles `eta` decreasing
    geometrically from 4 to 1e-3) from every start and both signs `s = +-1`, all runs
    batched under `jax.vmap`, and keeps each run's best point. The starts are
    `num_starts` Gaussian directions plus the rows of `starts` (e.g. the current
    network's neurons, whose values sit at `beta` at an optimum, and trained
    networks' neurons), and each start of `starts` perturbed by Gaussian noise of
    relative size `perturb` (one copy per size: the cells next to a neuron). From
    the same starts, `smooth_steps` steps of Adam ascent on a smoothed value
    (`lam^T tau softplus(X u / tau)` with the temperature `tau` annealed from 0.05
    to 1e-4 of the data's mean row norm: graduated non-convexity, Blake & Zisserman
    1987) search beyond the first cell where the
    subgradient ascent stops; every run keeps its best exact value. A found
    violation is a proof that the program over the current patterns is not optimal
    over all patterns; finding none proves nothing beyond "no violating pattern
    found in `num_searches` searches".

    **Arguments:**

    - `X`: the (n, d) data without the bias column.
    - `lam`: (n,) the dual variable (`pricing_multiplier`).
    - `beta`: the weight-decay strength.
    - `key`: a JAX PRNG key for the random starts.
    - `bias`: whether a ones column is appended to `X`.
    - `num_starts`: random starting directions (each searched with both signs).
    - `steps`: ascent steps per run.
    - `starts`: (k, d) or (k, d + 1) extra starting directions (with the bias entry).
    - `existing`: (n, P) patterns already in the program; they are not returned.
    - `tol`: a pattern is returned when its value exceeds `beta (1 + tol)`.
    - `max_new`: the most patterns returned.
    - `perturb`: relative noise sizes of the perturbed copies of `starts`.
    - `smooth_steps`: steps of the smoothed search from every start (0: the
        subgradient search only).

    **Returns:**

    A `PricingResult`.
    """
    Xb = _as_data(X, bias)
    n, d = Xb.shape
    dtype = Xb.dtype
    lam = np.asarray(lam, dtype)
    if lam.shape != (n,):
        raise ValueError(f"`lam` must have shape ({n},), got {lam.shape}.")
    if smooth_steps < 0:
        raise ValueError(f"`smooth_steps` must be >= 0, got {smooth_steps}.")
    if num_starts < 0 or steps < 1:
        raise ValueError(
            f"`num_starts` must be >= 0 and `steps` >= 1, got {num_starts}, {steps}."
        )
    key, k0 = jr.split(key)
    U = [np.asarray(jr.normal(k0, (num_starts, d), dtype=jnp.float64), dtype)]
    if starts is not None:
        S = np.asarray(starts, dtype).reshape(-1, np.shape(starts)[-1])
        if S.shape[1] != d:
            raise ValueError(
                f"`starts` must have {d} columns (with bias={bias}), got {S.shape[1]}."
            )
        S = S[np.linalg.norm(S, axis=1) > 0]
        S = S / np.linalg.norm(S, axis=1, keepdims=True)
        U.append(S)
        # the cells next to a given direction (at an optimum the neurons sit at
        # beta: a violating neighbour differs from them in a few samples)
        k1, key = jr.split(key)
        noise = np.asarray(jr.normal(k1, (len(perturb),) + S.shape), dtype)
        for scale, z in zip(perturb, noise):
            U.append(S + scale * z / np.sqrt(d))
    U = np.concatenate(U, axis=0)
    extra = -U.shape[0] % 64  # a few sizes only: the batched search compiles once
    if extra:
        U = np.concatenate(
            [U, np.asarray(jr.normal(key, (extra, d), dtype=jnp.float64), dtype)]
        )
    if U.shape[0] == 0:
        raise ValueError("No starting direction: pass `num_starts > 0` or `starts`.")
    starts_all = np.concatenate([U, U], axis=0)
    signs = np.concatenate([np.ones(U.shape[0]), -np.ones(U.shape[0])]).astype(dtype)
    values, dirs = _ascent(
        jnp.asarray(Xb),
        jnp.asarray(lam),
        jnp.asarray(starts_all),
        jnp.asarray(signs),
        _ascent_schedule(steps, dtype),
    )
    values = np.asarray(values)
    num_searches = int(starts_all.shape[0])
    if smooth_steps > 0:
        more, more_dirs = _smooth_ascent(
            jnp.asarray(Xb),
            jnp.asarray(lam),
            jnp.asarray(starts_all),
            jnp.asarray(signs),
            _smoothing_schedule(Xb, smooth_steps, dtype),
            0.03,
        )
        values = np.concatenate([values, np.asarray(more)])
        dirs = jnp.concatenate([dirs, more_dirs])
        num_searches *= 2
    beta = float(beta)
    pats, vals, best_dirs = _collect(Xb, values, dirs, beta, tol, existing, max_new)
    max_value = float(values.max())
    return PricingResult(
        max_value=jnp.asarray(max_value, dtype),
        violation=jnp.asarray(max_value / beta - 1, dtype),
        patterns=jnp.asarray(pats, dtype),
        values=jnp.asarray(vals, dtype),
        directions=jnp.asarray(best_dirs, dtype),
        num_searches=num_searches,
        exact=False,
    )


def _cone_maximum(A: np.ndarray, c: np.ndarray) -> tuple[float, np.ndarray]:
    """max over {u: A u >= 0, ||u|| <= 1} of c^T u = ||P_K(c)||, and the maximiser.

    P_K(c) = c + A^T mu with mu = argmin_{mu >= 0} ||A^T mu + c|| (the projection's
    dual, a non-negative least-squares problem); by Moreau's decomposition
    c^T u <= P_K(c)^T u <= ||P_K(c)|| on the cone's unit ball."""
    from scipy.optimize import nnls

    mu, _ = nnls(A.T, -c, maxiter=50 * A.shape[0])
    p = c + A.T @ mu
    norm = float(np.linalg.norm(p))
    return norm, (p / norm if norm > 0 else p)


def exact_pricing(
    X: ArrayLike,
    lam: ArrayLike,
    beta: float,
    *,
    bias: bool = False,
    patterns: ArrayLike | None = None,
    existing: ArrayLike | None = None,
    tol: float = 1e-4,
    max_new: int = 32,
    max_patterns: int = 100_000,
) -> PricingResult:
    """The exact left-hand side of the dual condition over every pattern of `X`.

    For each pattern D (all of them by `enumerate_patterns`, or the given
    `patterns`), `max_{u in K_D, ||u|| <= 1} |lam^T D X u|` over the cone
    `K_D = {u: (2 D - I) X u >= 0}`, where `D X u = (X u)_+`, computed as the norm of
    the projection of `+-X^T D lam` on `K_D` (`scipy.optimize.nnls`). With every
    pattern, `max_value <= beta` proves that a solution with this `lam` is optimal
    over all patterns (Pilanci & Ergen 2020), and `beta / max_value` scales `lam`
    into the dual's feasible set for a global lower bound. Costs one small NNLS per
    pattern and sign: for data of rank <= 3 with the bias column (`d <= 2` with a
    bias) and a few hundred samples.

    **Arguments:** as for `price_patterns`, plus `patterns` ((n, P) to check instead
    of enumerating) and `max_patterns` (passed to `enumerate_patterns`).

    **Returns:**

    A `PricingResult` with `exact=True` when every pattern was enumerated.
    """
    from ._patterns import enumerate_patterns

    Xb = _as_data(X, bias)
    n, d = Xb.shape
    lam = np.asarray(lam, np.float64)
    if lam.shape != (n,):
        raise ValueError(f"`lam` must have shape ({n},), got {lam.shape}.")
    exact = patterns is None
    if exact:
        patterns = enumerate_patterns(X, bias=bias, max_patterns=max_patterns)
    D = np.asarray(patterns, np.float64)
    values = np.zeros(D.shape[1])
    dirs = np.zeros((D.shape[1], d))
    Xf = Xb.astype(np.float64)
    for j in range(D.shape[1]):
        A = (2 * D[:, j] - 1)[:, None] * Xf
        c = Xf.T @ (D[:, j] * lam)
        plus, u_plus = _cone_maximum(A, c)
        minus, u_minus = _cone_maximum(A, -c)
        values[j], dirs[j] = (plus, u_plus) if plus >= minus else (minus, u_minus)
    beta = float(beta)
    order = np.argsort(-values)
    threshold = beta * (1 + tol)
    existing_set = set()
    if existing is not None:
        ex = np.asarray(existing).astype(np.int8)
        existing_set = {ex[:, j].tobytes() for j in range(ex.shape[1])}
    keep = [
        j
        for j in order
        if values[j] > threshold
        and D[:, j].astype(np.int8).tobytes() not in existing_set
    ][:max_new]
    dtype = Xb.dtype
    max_value = float(values.max()) if values.size else 0.0
    return PricingResult(
        max_value=jnp.asarray(max_value, dtype),
        violation=jnp.asarray(max_value / beta - 1, dtype),
        patterns=jnp.asarray(D[:, keep].reshape(n, len(keep)), dtype),
        values=jnp.asarray(values[keep], dtype),
        directions=jnp.asarray(dirs[keep].reshape(len(keep), d), dtype),
        num_searches=int(D.shape[1]),
        exact=exact,
    )


def global_lower_bound(problem, value, max_value) -> Array:
    """A lower bound on the optimum over *all* patterns from the dual condition.

    With `g = grad loss(yhat)` at the solution and `m >= max_{||u|| <= 1}
    |g^T (X u)_+|` (exact only from `exact_pricing` over every pattern), `t g` is
    dual feasible for `t <= beta / m`, and weak duality gives `-loss*(t g) <= f*`
    (for the squared loss the best such t). From a search that may have missed
    larger violations the value is no bound."""
    v = value.v if hasattr(value, "v") else value
    yhat = problem.predict_groups(v)
    dual_p = getattr(value, "dual_p", jnp.zeros_like(yhat))
    g = _loss_multiplier(problem, yhat, dual_p)
    m = jnp.asarray(max_value, g.dtype)
    t_max = problem.beta / jnp.where(m > 0, m, 0)
    if problem.loss == "squared":
        norm2 = jnp.sum(g**2)
        best = -jnp.dot(g, problem.y) / jnp.where(norm2 > 0, norm2, 1)
        t = jnp.clip(best, 0, t_max)
    else:
        t = jnp.minimum(1, t_max)
    return _conjugate_bound(problem.loss, g, problem.y, t)
