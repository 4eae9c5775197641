"""The bilevel sets and problems against oracles outside the code under test: closed
forms and root finding for the projections, cvxpy for polyhedra and the coupled set of
a problem, the documented closed-form optima of the problem files."""

import cvxpy as cp
import jax.numpy as jnp
import numpy as np
import pytest
import sciopt
import scipy.optimize
from sciopt import datasets as lib
from sciopt.bilevel import Ball, BilevelProblem, BOREP, Box, LVHBA, Polyhedron, Simplex

from .helpers import bilevel_ridge


_RNG = np.random.default_rng(11)
# Random points at several scales, in a non-flat shape: some fall inside the sets.
_POINTS = [s * _RNG.normal(size=(2, 3)) for s in (0.1, 0.5, 1.0, 3.0, 10.0)]


def _simplex_projection(v, total):
    # max(v - tau, 0) sums to `total` at the projection's threshold tau (KKT), found
    # by Brent's method on the monotone sum.
    flat = v.ravel()
    tau = scipy.optimize.brentq(
        lambda t: np.sum(np.maximum(flat - t, 0)) - total,
        flat.min() - total - 1,
        flat.max(),
        xtol=1e-15,
        rtol=1e-15,
    )
    return np.maximum(v - tau, 0)


def test_simple_set_projections_match_closed_forms():
    lower = _RNG.uniform(-1, 0, size=(2, 3))
    upper = lower + _RNG.uniform(0.1, 2, size=(2, 3))
    center = _RNG.normal(size=(2, 3))
    for v in _POINTS:
        vj = jnp.asarray(v)
        np.testing.assert_array_equal(
            Box(lower, upper).project(vj), np.clip(v, lower, upper)
        )
        d = v - center
        for radius in (1.3, 0.4):  # any positive radius, below 1 too
            expected = center + d * min(1.0, radius / np.linalg.norm(d))
            np.testing.assert_allclose(
                Ball(radius, center).project(vj), expected, rtol=1e-14, atol=1e-14
            )
        for total in (0.5, 2.0):
            np.testing.assert_allclose(
                Simplex(total).project(vj),
                _simplex_projection(v, total),
                rtol=0,
                atol=1e-13,
            )
    # A point of the simplex is its own projection.
    inside = np.array([0.2, 0.0, 0.3, 0.5])
    np.testing.assert_allclose(Simplex(1.0).project(jnp.asarray(inside)), inside)


def _cvxpy_projection(v, constraints_fn):
    w = cp.Variable(v.size)
    prob = cp.Problem(cp.Minimize(cp.sum_squares(w - v)), constraints_fn(w))
    prob.solve(solver=cp.CLARABEL, tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12)
    return w.value


def test_polyhedron_projection_matches_cvxpy_on_random_points():
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=(4, 6)), rng.normal(size=4)
    e, f = rng.normal(size=(2, 6)), rng.normal(size=2)
    poly = Polyhedron(a_ineq=a, b_ineq=b, a_eq=e, b_eq=f, sweeps=5000)
    eq_only = Polyhedron(a_eq=e, b_eq=f)
    for scale in (0.3, 3.0):
        v = scale * rng.normal(size=6)
        ref = _cvxpy_projection(v, lambda w: [a @ w <= b, e @ w == f])
        np.testing.assert_allclose(poly.project(jnp.asarray(v)), ref, atol=1e-8)
        # Equalities alone: the closed form w - E^T (E E^T)^{-1} (E w - f).
        closed = v - e.T @ np.linalg.solve(e @ e.T, e @ v - f)
        np.testing.assert_allclose(eq_only.project(jnp.asarray(v)), closed, atol=1e-13)


def test_coupled_set_projection_matches_cvxpy():
    # The coupled set {(x, y): g(x, y) <= 0} of the affine polyhedron problem, its rows
    # read off g by unit differences in NumPy (exact for an affine g), projected by
    # cvxpy; both of the library's routes (the Polyhedron and the inner
    # augmented-Lagrangian solve without it) must land there.
    import equinox as eqx

    case = lib.coupled_polyhedron()
    nx, ny = case.start[0].size, case.start[1].size
    g = lambda w: np.asarray(
        case.problem.lower_constraints(jnp.asarray(w[:nx]), jnp.asarray(w[nx:]), None)
    )
    g0 = g(np.zeros(nx + ny))
    rows = np.stack([g(np.eye(nx + ny)[i]) - g0 for i in range(nx + ny)], axis=1)
    inner = eqx.tree_at(
        lambda p: p.coupled_set, case.problem, None, is_leaf=lambda v: v is None
    )
    for x, y in (([1.0, -2.0], [3.0, 1.0, -1.0]), ([0.2, 0.4], [-1.0, 2.0, 0.5])):
        v = np.concatenate([x, y])
        ref = _cvxpy_projection(v, lambda w: [rows @ w + g0 <= 0])
        assert np.max(rows @ v + g0) > 0.1  # the point is outside the set
        px, py = case.problem.project(jnp.asarray(x), jnp.asarray(y), None)
        np.testing.assert_allclose(np.concatenate([px, py]), ref, atol=1e-8)
        qx, qy = inner.project(jnp.asarray(x), jnp.asarray(y), None)
        np.testing.assert_allclose(np.concatenate([qx, qy]), ref, atol=1e-6)


def test_problem_files_reach_their_closed_forms():
    # Each problem file builds the problem whose closed-form optimum (checked against
    # KKT/cvxpy, grid search and scipy in test_bilevel.py) it names: F at (x*, y*)
    # equals Phi*, and that Phi* is the file's own reference number.
    specs = {
        s.data["kind"]: s.data | {"build": s.build}
        for s in sciopt.load_problem_specs()
        if s.family == "bilevel"
    }
    for kind, make in (
        ("toy_equality", lib.toy_equality),
        ("coupled_box", lib.coupled_box),
        ("coupled_ball", lib.coupled_ball),
        ("cosh", lib.cosh_problem),
    ):
        spec = specs[kind]
        params = {k: v for k, v in spec.get("params", {}).items()}
        problem = spec["build"]()
        case = make(**params)
        x, y = jnp.asarray(case.x_star), jnp.asarray(case.y_star)
        np.testing.assert_allclose(
            problem.F(x, y, None), case.phi_star, rtol=1e-12, err_msg=kind
        )
        phi = spec["reference"].get("phi")
        if isinstance(phi, str):  # "0.05 n", "n"
            coef = phi.split()[0] if " " in phi else "1"
            phi = float(coef) * params["n"]
        np.testing.assert_allclose(case.phi_star, phi, rtol=1e-12, err_msg=kind)
        if "x" in spec["reference"]:
            np.testing.assert_allclose(case.x_star, spec["reference"]["x"], rtol=1e-12)


# -- BO-REP against its update rules written out in NumPy -----------------------------


def _ridge_data(n=20, d=10, seed=0, noise=1.5):
    # The data of tests/helpers.py's bilevel_ridge, drawn the same way.
    rng = np.random.default_rng(seed)
    z_tr, z_va = rng.normal(size=(n, d)), rng.normal(size=(n, d))
    w_true = rng.normal(size=d)
    t_tr = z_tr @ w_true + noise * rng.normal(size=n)
    t_va = z_va @ w_true + noise * rng.normal(size=n)
    return z_tr, t_tr, z_va, t_va


def _numpy_borep(steps, lr, beta, lower_lr, nu, radius, period, lower_steps,
                 init_steps, init_epochs, decay):  # fmt: skip
    """BO-REP on the ridge problem (F = |Z_va w - t_va|^2 / 2n, f = |Z_tr w -
    t_tr|^2 / 2n + e^x |w|^2 / 2) from (0, 0), its gradients and Hessian in closed
    form: epoch-SGD refinement, periodic SGD, one projected step on H z = grad_y F,
    normalised momentum on x with the hypergradient estimate -e^x <w, z>."""
    z_tr, t_tr, z_va, t_va = _ridge_data()
    n, d = z_tr.shape
    x, w, z, m = 0.0, np.zeros(d), np.zeros(d), 0.0

    def grad_f(x, w):
        return z_tr.T @ (z_tr @ w - t_tr) / n + np.exp(x) * w

    lr_w, per_epoch = lower_lr, -(-init_steps // init_epochs)
    for _ in range(init_epochs):
        for _ in range(per_epoch):
            w = w - lr_w * grad_f(x, w)
        lr_w /= 2
    for k in range(steps):
        if k % period == 0:
            for _ in range(lower_steps):
                w = w - lower_lr * grad_f(x, w)
        hz = z_tr.T @ (z_tr @ z) / n + np.exp(x) * z
        z = z - nu * (hz - z_va.T @ (z_va @ w - t_va) / n)
        z = z * min(1.0, radius / np.linalg.norm(z))
        m = beta * m + (1 - beta) * (-np.exp(x) * w @ z)
        x = x - lr / (1 + decay * k) * m / abs(m)
    return x, w


@pytest.mark.parametrize(
    "options",
    [
        {},  # the documented defaults
        dict(
            learning_rate=0.03,
            momentum=0.5,
            lower_learning_rate=0.05,
            z_learning_rate=0.2,
            radius=0.3,
            period=3,
            lower_steps=2,
            init_steps=7,
            init_epochs=1,
            decay=0.1,
        ),  # fmt: skip
    ],
)
def test_borep_steps_match_numpy(options):
    # 12 steps from (0, 0) on the deterministic ridge problem, against the update
    # rules written out in NumPy (measured 1e-16 apart; with radius 0.3 the projection
    # of z is active; one refinement epoch, the smallest allowed).
    problem, start, _ = bilevel_ridge()
    sol = sciopt.solve(
        problem, BOREP(**options, polish=False), start, max_steps=12, throw=False
    )
    assert sol.result == sciopt.RESULTS.steps_exhausted
    defaults = dict(learning_rate=1e-2, momentum=0.9, lower_learning_rate=0.1,
                    z_learning_rate=0.1, radius=1e3, period=2, lower_steps=5,
                    init_steps=200, init_epochs=4, decay=0.0)  # fmt: skip
    o = {**defaults, **options}
    x, w = _numpy_borep(12, o["learning_rate"], o["momentum"],
                        o["lower_learning_rate"], o["z_learning_rate"], o["radius"],
                        o["period"], o["lower_steps"], o["init_steps"],
                        o["init_epochs"], o["decay"])  # fmt: skip
    np.testing.assert_allclose(sol.value[0], [x], rtol=0, atol=1e-12)
    np.testing.assert_allclose(sol.value[1], w, rtol=0, atol=1e-12)


# -- LV-HBA against its update rules written out in NumPy -----------------------------


# lib.coupled_box()'s default data.
_BOX_A, _BOX_B, _BOX_C = (
    (1.0, 0.0, 2.0, 1.0),
    (0.5, -1.0, 0.0, 0.0),
    (0.0, 1.0, -1.0, 2.0),
)


def _numpy_lvhba(steps, alpha, alpha_x, beta, eta, gamma1, gamma2, penalty, power,
                 bound):  # fmt: skip
    """LV-HBA on the coupled box (F = |x - a|^2/2 + |y - b|^2/2, f = |y - c|^2/2,
    g = y - x <= 0, (x, y) in {y <= x}) from (0, 0), gradients in closed form; the
    projection onto {y_i <= x_i} moves a violating pair to its mean. Returns (x, y),
    lambda, the last residual and the last c_k."""
    a, b, c = np.array(_BOX_A), np.array(_BOX_B), np.array(_BOX_C)
    x, y = np.zeros(4), np.zeros(4)
    theta, lam, z = y.copy(), np.zeros(4), np.zeros(4)
    for k in range(steps):
        ck = penalty * (k + 1) ** power
        theta = theta - eta * ((theta - c) + lam + (theta - y) / gamma1)
        lam = np.clip(lam - eta * (-(theta - x) + (lam - z) / gamma2), 0, bound)
        d_x = (x - a) / ck + lam
        d_y = (y - b) / ck + (y - c) - (y - theta) / gamma1
        nx, ny = x - alpha_x * d_x, y - alpha * d_y
        mean = (nx + ny) / 2
        nx, ny = np.where(ny > nx, mean, nx), np.where(ny > nx, mean, ny)
        residual = np.sqrt(np.sum(((nx - x) / alpha_x) ** 2 + ((ny - y) / alpha) ** 2))
        x, y = nx, ny
        z = np.clip(z - beta * (z - lam) / gamma2, 0, bound)
    return (x, y), lam, residual, ck


@pytest.mark.parametrize(
    "options",
    [
        {},  # the documented defaults
        dict(
            alpha=0.2,
            alpha_x=0.3,
            beta=0.4,
            eta=0.25,
            gamma1=0.7,
            gamma2=1.3,
            penalty=2.0,
            penalty_power=0.25,
            bound=0.3,
        ),  # fmt: skip
    ],
)
def test_lvhba_steps_match_numpy(options):
    # 15 steps from (0, 0) on the coupled box against the update rules written out
    # in NumPy (measured 1e-16 apart; with bound 0.3 the multiplier clip is active).
    case = lib.coupled_box(_BOX_A, _BOX_B, _BOX_C)
    solver = LVHBA(**options, polish=False)
    sol = sciopt.solve(case.problem, solver, case.start, max_steps=15, throw=False)
    assert sol.result == sciopt.RESULTS.steps_exhausted
    defaults = dict(alpha=1e-2, alpha_x=None, beta=1e-2, eta=1e-2, gamma1=1.0,
                    gamma2=1.0, penalty=1.0, penalty_power=0.3, bound=1e3)  # fmt: skip
    o = {**defaults, **options}
    alpha_x = o["alpha"] if o["alpha_x"] is None else o["alpha_x"]
    (x, y), lam, residual, ck = _numpy_lvhba(
        15, o["alpha"], alpha_x, o["beta"], o["eta"], o["gamma1"], o["gamma2"],
        o["penalty"], o["penalty_power"], o["bound"],
    )  # fmt: skip
    np.testing.assert_allclose(sol.value[0], x, rtol=0, atol=1e-12)
    np.testing.assert_allclose(sol.value[1], y, rtol=0, atol=1e-12)
    np.testing.assert_allclose(sol.stats["multipliers"][0], lam, rtol=0, atol=1e-12)
    np.testing.assert_allclose(sol.stats["residual"], residual, rtol=1e-12)
    np.testing.assert_allclose(sol.stats["penalty"], ck, rtol=1e-12)


def test_lvhba_equality_steps_match_numpy():
    # The equality multiplier mu and its z_eq: F and f as on the coupled box, the
    # affine equality h = y_0 + y_1 - x_0 = 0 (its coupled set a hyperplane, projected
    # onto in closed form); 15 steps against NumPy (measured 1e-16 apart).
    a, b, c = np.array(_BOX_A), np.array(_BOX_B), np.array(_BOX_C)
    e01, e0 = np.array([1.0, 1, 0, 0]), np.array([1.0, 0, 0, 0])
    row = np.concatenate([-e0, e01])
    problem = BilevelProblem(
        lambda x, y, args: 0.5 * jnp.sum((x - a) ** 2) + 0.5 * jnp.sum((y - b) ** 2),
        lambda x, y, args: 0.5 * jnp.sum((y - c) ** 2),
        lower_equalities=lambda x, y, args: y[:1] + y[1:2] - x[:1],
        coupled_set=Polyhedron(a_eq=row[None], b_eq=np.zeros(1)),
    )
    o = dict(alpha=0.2, beta=0.4, eta=0.25, gamma1=0.7, gamma2=1.3)
    solver = LVHBA(**o, penalty=2.0, polish=False)
    start = (jnp.zeros(4), jnp.zeros(4))
    sol = sciopt.solve(problem, solver, start, max_steps=15, throw=False)
    x, y = np.zeros(4), np.zeros(4)
    theta, mu, z_eq = y.copy(), 0.0, 0.0
    for k in range(15):
        ck = 2.0 * (k + 1) ** 0.3
        d_theta = (theta - c) + mu * e01 + (theta - y) / o["gamma1"]
        theta = theta - o["eta"] * d_theta
        d_mu = -(theta[0] + theta[1] - x[0]) + (mu - z_eq) / o["gamma2"]
        mu = mu - o["eta"] * d_mu
        d_x = (x - a) / ck + mu * e0
        d_y = (y - b) / ck + (y - c) - (y - theta) / o["gamma1"]
        w = np.concatenate([x - o["alpha"] * d_x, y - o["alpha"] * d_y])
        w = w - (row @ w) / (row @ row) * row
        x, y = w[:4], w[4:]
        z_eq = z_eq - o["beta"] * (z_eq - mu) / o["gamma2"]
    np.testing.assert_allclose(sol.value[0], x, rtol=0, atol=1e-12)
    np.testing.assert_allclose(sol.value[1], y, rtol=0, atol=1e-12)
    np.testing.assert_allclose(sol.stats["multipliers"][1], [mu], rtol=0, atol=1e-12)
