"""Each AdaSketchNewton variant against scipy SLSQP on random well-posed problems:
strongly convex objective (quadratic plus quartic) under random linear equality
constraints, so the KKT point is unique; and against cvxpy (Clarabel) on random
equality-constrained convex QPs: the solution, the multipliers and the objective,
within the distance that the KKT residuals of both solutions bound. The data enter
through `args` (fixed shapes), so each variant compiles once."""

import cvxpy as cp
import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import jax.numpy as jnp
import lineax as lx
import numpy as np
import pytest
import sciopt
from hypothesis import given, settings
from scipy.optimize import minimize

from .helpers import nlp_objective_error


N, M = 4, 2


def objective(x, args):
    q, g, _, _ = args
    return 0.5 * x @ q @ x + g @ x + 0.1 * jnp.sum(x**4)


def constraints(x, args):
    _, _, a, b = args
    return a @ x - b


PROBLEM = sciopt.nlp.EqualityConstrainedProblem(objective, constraints)
VARIANTS = {
    "adaptive": sciopt.nlp.AdaSketchNewton(),
    "practical": sciopt.nlp.AdaSketchNewton(accuracy="practical", superlinear=True),
    "block": sciopt.nlp.AdaSketchNewton(
        accuracy="practical", linear_solver=sciopt.nlp.BlockSketch(block_size=3)
    ),
    "exact": sciopt.nlp.AdaSketchNewton(linear_solver=lx.LU()),
    # B = Q + 1.2 diag(x^2) is positive definite here, as the Schur CG needs.
    "schur": sciopt.nlp.AdaSketchNewton(
        linear_solver=sciopt.nlp.SchurComplementCG(), materialise=False
    ),
}

floats = st.floats(-1.0, 1.0, allow_nan=False, allow_infinity=False)


@st.composite
def instances(draw):
    l = draw(hnp.arrays(np.float64, (N, N), elements=floats))
    q = l @ l.T + 0.5 * np.eye(N)
    g = draw(hnp.arrays(np.float64, (N,), elements=floats))
    a = draw(hnp.arrays(np.float64, (M, N), elements=floats))
    a = a + np.eye(M, N) * 2.0  # keep the rows well separated (full rank)
    b = draw(hnp.arrays(np.float64, (M,), elements=floats))
    return q, g, a, b


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@given(data=instances())
def test_matches_slsqp(variant, data):
    q, g, a, b = data
    args = tuple(jnp.asarray(v) for v in data)
    sol = sciopt.solve(PROBLEM, VARIANTS[variant], jnp.zeros(N), args=args)
    f = float(objective(sol.value, args))
    ref = minimize(
        lambda x: float(objective(jnp.asarray(x), args)),
        np.zeros(N),
        jac=lambda x: 0.0 + q @ x + g + 0.4 * x**3,
        method="SLSQP",
        constraints={"type": "eq", "fun": lambda x: a @ x - b, "jac": lambda x: a},
        options={"ftol": 1e-14, "maxiter": 500},
    )
    assert ref.success
    assert nlp_objective_error(f, ref.fun) <= 1e-6
    np.testing.assert_allclose(sol.value, ref.x, atol=1e-5)
    # |c| <= ||KKT residual|| <= 1e-8
    np.testing.assert_allclose(a @ np.asarray(sol.value), b, atol=1e-8)
    assert float(sol.stats["kkt_residual"]) <= 1e-8


# ----------------------------------------------------------------------------------
# Equality-constrained convex QPs against cvxpy
# ----------------------------------------------------------------------------------
#
# min 1/2 x^T Q x + g^T x  s.t.  A x = b, with Q = L L^T + shift I (L of rank
# QP_N - 2: a singular PSD matrix made definite by the shift) and A of full row rank
# (singular values in [0.5, 2]). The KKT matrix K = [[Q, A^T], [A, 0]] is then
# nonsingular and the solution (x*, lam*) unique; any (x, lam) with KKT residual r
# lies within ||K^{-1}|| ||r|| of it. Each solve is compared with Clarabel's, whose
# own KKT residual enters the same bound.

QP_N, QP_M = 6, 3


def qp_objective(x, args):
    q, g, _, _ = args
    return 0.5 * x @ q @ x + g @ x


def qp_constraints(x, args):
    _, _, a, b = args
    return a @ x - b


QP_PROBLEM = sciopt.nlp.EqualityConstrainedProblem(qp_objective, qp_constraints)
QP_VARIANTS = {
    "adaptive": sciopt.nlp.AdaSketchNewton(),
    "exact": sciopt.nlp.AdaSketchNewton(linear_solver=lx.LU()),
    # Q is positive definite (shift > 0), as the Schur-complement CG needs
    "schur": sciopt.nlp.AdaSketchNewton(
        linear_solver=sciopt.nlp.SchurComplementCG(), materialise=False
    ),
}
# AdaSketchNewton stops at a KKT residual <= 0.5 sqrt(eps) in float64
QP_KKT_TOL = 0.5 * np.sqrt(np.finfo(np.float64).eps)


def qp_instance(seed, shift):
    rng = np.random.default_rng(seed)
    root = rng.normal(size=(QP_N, QP_N - 2))
    q = root @ root.T + shift * np.eye(QP_N)
    q = 0.5 * (q + q.T)  # exactly symmetric, for cvxpy's quad_form
    g = rng.normal(size=QP_N)
    u, _ = np.linalg.qr(rng.normal(size=(QP_M, QP_M)))
    v, _ = np.linalg.qr(rng.normal(size=(QP_N, QP_M)))
    a = u @ np.diag(rng.uniform(0.5, 2.0, QP_M)) @ v.T
    b = rng.normal(size=QP_M)
    return q, g, a, b


def qp_cvxpy(q, g, a, b):
    """Clarabel at 1e-12 tolerances: (x, lam) with Q x + g + A^T lam = 0."""
    x = cp.Variable(QP_N)
    equality = a @ x == b
    program = cp.Problem(cp.Minimize(0.5 * cp.quad_form(x, q) + g @ x), [equality])
    program.solve(
        solver="CLARABEL", tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12
    )
    assert program.status == "optimal", program.status
    return x.value, equality.dual_value


def qp_kkt_residual(q, g, a, b, x, lam):
    return np.linalg.norm(np.concatenate([q @ x + g + a.T @ lam, a @ x - b]))


def _check_qp(variant, seed, shift):
    q, g, a, b = qp_instance(seed, shift)
    args = tuple(jnp.asarray(v) for v in (q, g, a, b))
    sol = sciopt.solve(QP_PROBLEM, QP_VARIANTS[variant], jnp.zeros(QP_N), args=args)
    x, lam = np.asarray(sol.value), np.asarray(sol.aux)
    x_ref, lam_ref = qp_cvxpy(q, g, a, b)
    residual = qp_kkt_residual(q, g, a, b, x, lam)
    # the reported residual is the residual of the returned pair, within the stop
    assert float(sol.stats["kkt_residual"]) == pytest.approx(residual, abs=1e-13)
    assert residual <= QP_KKT_TOL
    kkt = np.block([[q, a.T], [a, np.zeros((QP_M, QP_M))]])
    inverse_norm = np.linalg.norm(np.linalg.inv(kkt), 2)
    # both pairs within ||K^{-1}|| ||r|| of the solution (K (z - z*) = r); 1e-12 for
    # the rounding in forming the residuals (eps times terms of size ~10, times
    # ||K^{-1}|| <= ~30). Measured: the sketched solves stop at ||r|| ~ 3e-9 with x
    # up to 3.8e-9 from Clarabel's, against bounds of 5e-9 to 9e-8.
    bound = inverse_norm * (residual + qp_kkt_residual(q, g, a, b, x_ref, lam_ref))
    bound += 1e-12
    distance = np.linalg.norm(np.concatenate([x - x_ref, lam - lam_ref]))
    assert distance <= bound, (distance, bound)
    # f(x) - f(x_ref) = grad f(x_ref)^T e + 1/2 e^T Q e with ||e|| <= bound
    f, f_ref = (0.5 * z @ q @ z + g @ z for z in (x, x_ref))
    slope = np.linalg.norm(q @ x_ref + g)
    objective_bound = slope * bound + 0.5 * np.linalg.norm(q, 2) * bound**2
    assert abs(f - f_ref) <= objective_bound + 1e-14 * max(1.0, abs(f_ref))


qp_draws = {"seed": st.integers(0, 2**32 - 1), "shift": st.floats(0.05, 1.0)}


# the default run takes the default sketch and exact LU; the slow run adds the
# Schur-complement CG (one more compilation)
@pytest.mark.parametrize("variant", ["adaptive", "exact"])
@settings(max_examples=5)
@given(**qp_draws)
def test_qp_matches_cvxpy(variant, seed, shift):
    _check_qp(variant, seed, shift)


@pytest.mark.slow
@pytest.mark.parametrize("variant", sorted(QP_VARIANTS))
@settings(max_examples=50)
@given(**qp_draws)
def test_qp_matches_cvxpy_many(variant, seed, shift):
    _check_qp(variant, seed, shift)
