"""The bilevel sets and problems against oracles outside the code under test: closed
forms and root finding for the projections, cvxpy for polyhedra and the coupled set of
a problem, the documented closed-form optima of the problem files."""

import cvxpy as cp
import jax.numpy as jnp
import numpy as np
import sciopt
import scipy.optimize
from sciopt import datasets as lib
from sciopt.bilevel import Ball, Box, Polyhedron, Simplex


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
        expected = center + d * min(1.0, 1.3 / np.linalg.norm(d))
        np.testing.assert_allclose(
            Ball(1.3, center).project(vj), expected, rtol=1e-14, atol=1e-14
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
