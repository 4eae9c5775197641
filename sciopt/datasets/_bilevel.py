"""Builders of the gallery's bilevel problems, with their closed-form references.

Each builder returns a `BilevelCase`: the problem, a starting point, `args`, and the
reference solution (derived in closed form, or computed by an independent solver).
"""

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..bilevel import BilevelProblem, Box, from_formulas, Polyhedron


@dataclasses.dataclass
class BilevelCase:
    problem: BilevelProblem
    start: tuple[Any, Any]
    args: Any = None
    x_star: np.ndarray | None = None
    y_star: np.ndarray | None = None
    phi_star: float = float("nan")
    source: str = ""
    extra: dict = dataclasses.field(default_factory=dict)


# -- (1) the LV-HBA toy with a coupled equality ------------------------------------


def toy_equality_solution(n: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Closed form of problem (1).

    Lower level: `min 1/2||y1||^2 - x^T y1 + 1^T y2 s.t. 1^T x + 1^T y1 + 1^T y2 = 0`.
    Eliminating `1^T y2 = -1^T x - 1^T y1` gives `y1 = x + 1` and the solution set
    `{y2 : 1^T y2 = -2 s - n}` with `s = 1^T x` (not a singleton). The optimistic
    upper level picks the `y2` closest to `x`: `y2 = x - (3 s + n)/n`, so
    `Phi(x) = (3 s + n)^2 / (2 n) + ||x||^2 / 2`, minimised by `x = s/n 1` with
    `3 (3 s + n) + s = 0`: `x* = -0.3`, `y1* = 0.7`, `y2* = -0.4`, `Phi* = 0.05 n`.
    """
    x = np.full(n, -0.3)
    y = np.concatenate([np.full(n, 0.7), np.full(n, -0.4)])
    return x, y, 0.05 * n


def toy_equality(n: int = 10) -> BilevelCase:
    def upper(x, y, args):
        return 0.5 * jnp.sum(jnp.square(x - y[n:])) + 0.5 * jnp.sum(
            jnp.square(y[:n] - 1)
        )

    def lower(x, y, args):
        return 0.5 * jnp.sum(jnp.square(y[:n])) - jnp.vdot(x, y[:n]) + jnp.sum(y[n:])

    def equality(x, y, args):
        return jnp.sum(x, keepdims=True) + jnp.sum(y, keepdims=True)

    def lower_solution(x, args):
        # The optimistic selection from the solution set (see the closed form).
        s = jnp.sum(x)
        return jnp.concatenate([x + 1, x - (3 * s + n) / n])

    problem = BilevelProblem(
        upper,
        lower,
        lower_equalities=equality,
        coupled_set=Polyhedron(a_eq=np.ones((1, 3 * n)), b_eq=np.zeros(1)),
        lower_solution=lower_solution,
    )
    x, y, phi = toy_equality_solution(n)
    return BilevelCase(
        problem,
        (jnp.ones(n), jnp.zeros(2 * n)),
        x_star=x,
        y_star=y,
        phi_star=phi,
        source="closed form: x* = -0.3, y* = (0.7, -0.4), Phi* = 0.05 n",
    )


# -- (2a) a coupled inequality y <= x, coordinatewise --------------------------------


def coupled_box_solution(a, b, c) -> tuple[np.ndarray, np.ndarray, float]:
    """Closed form of problem (2a), coordinatewise.

    `y*(x) = min(c, x)` (the lower level projects `c` onto `{y <= x}`). On `x >= c`,
    `Phi_i = (x - a)^2/2 + (c - b)^2/2` (minimiser `a` if `a >= c`); on `x <= c`,
    `Phi_i = (x - a)^2/2 + (x - b)^2/2` (minimiser `(a + b)/2` if `<= c`); the
    breakpoint `x = c` is the third candidate. The best candidate wins.
    """
    a, b, c = (np.asarray(v, np.float64) for v in (a, b, c))
    xs = np.empty_like(a)
    for i in range(a.size):
        candidates = [c[i], a[i] if a[i] >= c[i] else c[i]]
        m = (a[i] + b[i]) / 2
        candidates.append(m if m <= c[i] else c[i])
        values = [
            0.5 * (x - a[i]) ** 2 + 0.5 * (min(c[i], x) - b[i]) ** 2 for x in candidates
        ]
        xs[i] = candidates[int(np.argmin(values))]
    ys = np.minimum(c, xs)
    phi = 0.5 * np.sum((xs - a) ** 2) + 0.5 * np.sum((ys - b) ** 2)
    return xs, ys, float(phi)


def coupled_box(
    a=(1.0, 0.0, 2.0, 1.0), b=(0.5, -1.0, 0.0, 0.0), c=(0.0, 1.0, -1.0, 2.0)
):
    a, b, c = (np.asarray(v, np.float64) for v in (a, b, c))
    n = a.size

    def upper(x, y, args):
        a_, b_ = jnp.asarray(a, x.dtype), jnp.asarray(b, x.dtype)
        return 0.5 * jnp.sum(jnp.square(x - a_)) + 0.5 * jnp.sum(jnp.square(y - b_))

    def lower(x, y, args):
        return 0.5 * jnp.sum(jnp.square(y - jnp.asarray(c, y.dtype)))

    def constraints(x, y, args):
        return y - x

    eye = np.eye(n)
    problem = BilevelProblem(
        upper,
        lower,
        lower_constraints=constraints,
        coupled_set=Polyhedron(
            a_ineq=np.concatenate([-eye, eye], 1), b_ineq=np.zeros(n)
        ),
    )
    xs, ys, phi = coupled_box_solution(a, b, c)
    return BilevelCase(
        problem,
        (jnp.zeros(n), jnp.zeros(n)),
        x_star=xs,
        y_star=ys,
        phi_star=phi,
        source="closed form (coordinatewise candidates); constraint active in "
        f"{int(np.sum(np.isclose(xs, ys)))} of {n} coordinates",
    )


# -- (2b) coupled polyhedral constraints, reference by active-set enumeration --------


def coupled_polyhedron_data(seed: int = 0, n_x: int = 2, n_y: int = 3):
    rng = np.random.default_rng(seed)
    m = rng.normal(size=(n_y, n_y))
    q = m @ m.T / n_y + np.eye(n_y)
    p = rng.normal(size=(n_y, n_x))
    r = rng.normal(size=n_y)
    a_y = np.eye(n_y) + 0.3 * rng.normal(size=(n_y, n_y))
    a_x = rng.normal(size=(n_y, n_x))
    d = 0.2 * rng.normal(size=n_y)
    a_up = rng.normal(size=n_x)
    b_up = 2.0 * rng.normal(size=n_y)
    return dict(q=q, p=p, r=r, a_y=a_y, a_x=a_x, d=d, a_up=a_up, b_up=b_up)


def coupled_polyhedron_reference(data) -> tuple[np.ndarray, np.ndarray, float, int]:
    """Solve problem (2b) by enumerating the lower level's active sets.

    For an active set `S`, the lower level's KKT conditions (`Q y - P x - r +
    A_S^T lam = 0`, `A_S y + B_S x = d_S`, `lam >= 0`, the other rows `<= d`) are
    linear, so the upper level restricted to them is a convex QP (solved by cvxpy
    with Clarabel). The best of the feasible QPs is the global solution.
    """
    import itertools

    import cvxpy as cp

    q, p, r = data["q"], data["p"], data["r"]
    a_y, a_x, d = data["a_y"], data["a_x"], data["d"]
    n_y, n_x = p.shape
    best = (None, None, np.inf, -1)
    for size in range(n_y + 1):
        for active in itertools.combinations(range(n_y), size):
            act = list(active)
            ina = [i for i in range(n_y) if i not in act]
            x = cp.Variable(n_x)
            y = cp.Variable(n_y)
            cons = []
            if act:
                lam = cp.Variable(len(act))
                cons += [q @ y - p @ x - r + a_y[act].T @ lam == 0, lam >= 0]
                cons += [a_y[act] @ y + a_x[act] @ x == d[act]]
            else:
                cons += [q @ y - p @ x - r == 0]
            if ina:
                cons += [a_y[ina] @ y + a_x[ina] @ x <= d[ina]]
            obj = 0.5 * cp.sum_squares(x - data["a_up"]) + 0.5 * cp.sum_squares(
                y - data["b_up"]
            )
            prob = cp.Problem(cp.Minimize(obj), cons)
            prob.solve(
                solver=cp.CLARABEL,
                tol_gap_abs=1e-12,
                tol_gap_rel=1e-12,
                tol_feas=1e-12,
            )
            if prob.status == "optimal" and prob.value < best[2]:
                best = (x.value.copy(), y.value.copy(), float(prob.value), len(act))
    return best


def coupled_polyhedron(seed: int = 0, n_x: int = 2, n_y: int = 3) -> BilevelCase:
    data = coupled_polyhedron_data(seed, n_x, n_y)

    def upper(x, y, args):
        return 0.5 * jnp.sum(jnp.square(x - data["a_up"])) + 0.5 * jnp.sum(
            jnp.square(y - data["b_up"])
        )

    def lower(x, y, args):
        return 0.5 * y @ (data["q"] @ y) - jnp.vdot(data["p"] @ x + data["r"], y)

    def constraints(x, y, args):
        return data["a_y"] @ y + data["a_x"] @ x - data["d"]

    problem = BilevelProblem(
        upper,
        lower,
        lower_constraints=constraints,
        coupled_set=Polyhedron(
            a_ineq=np.concatenate([data["a_x"], data["a_y"]], 1), b_ineq=data["d"]
        ),
    )
    xs, ys, phi, n_active = coupled_polyhedron_reference(data)
    return BilevelCase(
        problem,
        (jnp.zeros(n_x), jnp.zeros(n_y)),
        x_star=xs,
        y_star=ys,
        phi_star=phi,
        source=f"cvxpy/Clarabel over all {2**n_y} active sets ({n_active} active at "
        "the solution)",
    )


# -- (2c) a nonlinear coupled constraint ||y||^2 <= x, from formulas ---------------


def coupled_ball() -> BilevelCase:
    """Problem (2c): `F = (x - 1)^2/2 + ||y||^2/2`, `f = ||y - (2, 0)||^2/2` s.t.
    `||y||^2 <= x`, `0 <= x <= 10`. For `x <= 4`, `y*(x) = (sqrt(x), 0)` (active),
    so `Phi = (x - 1)^2/2 + x/2`, minimised at `x* = 1/2`, `Phi* = 3/8`; for `x > 4`,
    `Phi >= 2`."""
    problem = from_formulas(
        upper="0.5*(x1 - 1)**2 + 0.5*(y1**2 + y2**2)",
        lower="0.5*((y1 - 2)**2 + y2**2)",
        x=["x1"],
        y=["y1", "y2"],
        constraints=["y1**2 + y2**2 - x1"],
        upper_set=Box(0.0, 10.0),
    )
    return BilevelCase(
        problem,
        (jnp.array([2.0]), jnp.zeros(2)),
        x_star=np.array([0.5]),
        y_star=np.array([np.sqrt(0.5), 0.0]),
        phi_star=0.375,
        source="closed form: x* = 1/2, y* = (sqrt(1/2), 0), Phi* = 3/8",
    )


# -- (3) ridge regularisation selected on validation loss ---------------------------


def _standardise(z_train, *others):
    mean = z_train.mean(0)
    std = z_train.std(0) + 1e-12
    return [(z - mean) / std for z in (z_train, *others)]


def _sklearn_data(name: str, allowed: tuple[str, ...]):
    """`(X, y)` of one of scikit-learn's bundled data sets, by name (a problem file's
    `dataset` key: only the names in `allowed` are accepted)."""
    import sklearn.datasets

    if name not in allowed:
        raise ValueError(
            f"`dataset` must be one of {', '.join(allowed)}, got {name!r}."
        )
    return getattr(sklearn.datasets, f"load_{name}")(return_X_y=True)


def ridge_data(dataset: str = "diabetes", n_train: int = 150, n_val: int = 150, seed=0):

    z, t = _sklearn_data(dataset, ("diabetes",))
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(t))
    tr, va, te = (
        perm[:n_train],
        perm[n_train : n_train + n_val],
        perm[n_train + n_val :],
    )
    z_tr, z_va, z_te = _standardise(z[tr], z[va], z[te])
    t_mean, t_std = t[tr].mean(), t[tr].std()
    t_tr, t_va, t_te = ((t[i] - t_mean) / t_std for i in (tr, va, te))
    return dict(z_tr=z_tr, t_tr=t_tr, z_va=z_va, t_va=t_va, z_te=z_te, t_te=t_te)


def ridge_phi(data, log_lam):
    """`Phi(log lambda)`, the validation loss of the ridge solution (numpy)."""
    z, t = data["z_tr"], data["t_tr"]
    n, d = z.shape
    w = np.linalg.solve(z.T @ z / n + np.exp(log_lam) * np.eye(d), z.T @ t / n)
    r = data["z_va"] @ w - data["t_va"]
    return 0.5 * np.mean(r**2)


def ridge(dataset: str = "diabetes", bounds=(-8.0, 4.0), **kwargs) -> BilevelCase:
    """Problem (3): select the ridge penalty `exp(x)` on validation loss. The
    reference minimises the closed-form `Phi` with scipy (grid, then Brent)."""
    import scipy.optimize

    data = ridge_data(dataset, **kwargs)
    z_tr, t_tr, z_va, t_va = (data[k] for k in ("z_tr", "t_tr", "z_va", "t_va"))

    def upper(x, w, args):
        return 0.5 * jnp.mean(jnp.square(z_va @ w - t_va))

    def lower(x, w, args):
        return 0.5 * jnp.mean(jnp.square(z_tr @ w - t_tr)) + 0.5 * jnp.exp(
            x[0]
        ) * jnp.sum(jnp.square(w))

    grid = np.linspace(*bounds, 241)
    values = [ridge_phi(data, g) for g in grid]
    i = int(np.argmin(values))
    lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
    res = scipy.optimize.minimize_scalar(
        lambda s: ridge_phi(data, s),
        bounds=(lo, hi),
        method="bounded",
        options={"xatol": 1e-10},
    )
    x_star = float(res.x) if res.fun <= values[i] else float(grid[i])
    problem = BilevelProblem(upper, lower, upper_set=Box(*bounds))
    d = z_tr.shape[1]
    return BilevelCase(
        problem,
        (jnp.array([0.0]), jnp.zeros(d)),
        x_star=np.array([x_star]),
        phi_star=float(ridge_phi(data, x_star)),
        source=f"closed-form ridge solution; log-lambda by grid + Brent (scipy), "
        f"sklearn {dataset}",
        extra=dict(data=data),
    )


# -- (4) data hyper-cleaning ---------------------------------------------------------


def hyperclean_data(
    dataset="digits", n_train=500, n_val=200, flip=0.3, seed=0
) -> dict[str, np.ndarray]:

    z, t = _sklearn_data(dataset, ("digits", "iris", "wine", "breast_cancer"))
    n_classes = int(t.max()) + 1
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(t))
    tr, va, te = (
        perm[:n_train],
        perm[n_train : n_train + n_val],
        perm[n_train + n_val :],
    )
    z_tr, z_va, z_te = _standardise(z[tr], z[va], z[te])
    ones = lambda m: np.concatenate([m, np.ones((len(m), 1))], 1)
    t_noisy = t[tr].copy()
    flipped = rng.random(n_train) < flip
    shift = rng.integers(1, n_classes, size=n_train)
    t_noisy[flipped] = (t_noisy[flipped] + shift[flipped]) % n_classes
    return dict(
        z_tr=ones(z_tr),
        t_tr=t_noisy,
        t_tr_clean=t[tr],
        flipped=flipped,
        z_va=ones(z_va),
        t_va=t[va],
        z_te=ones(z_te),
        t_te=t[te],
        n_classes=n_classes,
    )


def _cross_entropy(logits, labels):
    return (
        jax.nn.logsumexp(logits, axis=-1)
        - jnp.take_along_axis(logits, labels[:, None], axis=-1)[:, 0]
    )


def hyperclean(
    dataset="digits",
    n_train=500,
    n_val=200,
    flip=0.3,
    reg=1e-2,
    batch_size=None,
    seed=0,
) -> BilevelCase:
    """Problem (4): per-sample weights `sigmoid(x_i)` on a training set with `flip`
    of its labels changed, chosen so that the weighted, ridge-regularised softmax
    regression does well on a clean validation set."""
    data = hyperclean_data(dataset, n_train, n_val, flip, seed)
    d, k = data["z_tr"].shape[1], data["n_classes"]
    lower_data = (data["z_tr"], data["t_tr"], np.arange(n_train))
    upper_data = (data["z_va"], data["t_va"])

    def upper(x, w, args, batch):
        z, t = batch
        return jnp.mean(_cross_entropy(z @ w, t))

    def lower(x, w, args, batch):
        z, t, idx = batch
        weights = jax.nn.sigmoid(x[idx])
        return jnp.mean(weights * _cross_entropy(z @ w, t)) + 0.5 * reg * jnp.sum(
            jnp.square(w)
        )

    problem = BilevelProblem(
        upper,
        lower,
        upper_data=upper_data,
        lower_data=lower_data,
        batch_size=batch_size,
        lower_steps=3000,
        lower_tol=1e-8,
    )
    return BilevelCase(
        problem,
        (jnp.zeros(n_train), jnp.zeros((d, k))),
        source=f"sklearn {dataset}: {n_train} training samples ({flip:.0%} labels "
        f"flipped), {n_val} clean validation, {len(data['t_te'])} test",
        extra=dict(data=data, reg=reg),
    )


def bilevel_accuracy(w, z, t) -> float:
    return float(np.mean(np.argmax(np.asarray(z) @ np.asarray(w), axis=1) == t))


# -- (5) an upper level with unbounded smoothness -----------------------------------


def cosh_problem(n: int = 4, seed: int = 0, distance: float = 4.0) -> BilevelCase:
    """Problem (5): `f = ||y - A x||^2 / 2` (so `y*(x) = A x`), `F = sum cosh(y - b)`,
    hence `Phi(x) = sum cosh(A x - b)`: `(L0, L1)`-smooth but not Lipschitz smooth.
    Closed form `x* = A^{-1} b`, `Phi* = n`."""
    rng = np.random.default_rng(seed)
    a = np.eye(n) + 0.3 * rng.normal(size=(n, n)) / np.sqrt(n)
    b = rng.normal(size=n)
    x_star = np.linalg.solve(a, b)
    direction = rng.normal(size=n)
    x0 = x_star + distance * direction / np.linalg.norm(a @ direction)

    def upper(x, y, args):
        return jnp.sum(jnp.cosh(y - b))

    def lower(x, y, args):
        return 0.5 * jnp.sum(jnp.square(y - a @ x))

    problem = BilevelProblem(upper, lower, lower_solution=lambda x, args: a @ x)
    return BilevelCase(
        problem,
        (jnp.asarray(x0), jnp.zeros(n)),
        x_star=x_star,
        y_star=a @ x_star,
        phi_star=float(n),
        source="closed form: x* = A^{-1} b, Phi* = n; local smoothness ||A||^2 at x*",
        extra=dict(a=a, b=b, local_lipschitz=float(np.linalg.norm(a, 2) ** 2)),
    )


BILEVEL_PROBLEMS = {
    "toy_equality": toy_equality,
    "coupled_box": coupled_box,
    "coupled_polyhedron": coupled_polyhedron,
    "coupled_ball": coupled_ball,
    "ridge": ridge,
    "hyperclean": hyperclean,
    "cosh": cosh_problem,
}


def bilevel_case(kind: str, params: dict, name: str = "?") -> BilevelCase:
    """Build the `BilevelCase` of a gallery problem of the given `kind`."""
    if kind not in BILEVEL_PROBLEMS:
        raise ValueError(
            f"Problem {name!r}: `kind` must be one of {sorted(BILEVEL_PROBLEMS)}, "
            f"got {kind!r}."
        )
    return BILEVEL_PROBLEMS[kind](**params)
