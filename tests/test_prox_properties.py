"""Property tests of `sciopt.prox` against cvxpy (Clarabel) on random data.

- `SoftThreshold(t)(v)` against the cvxpy solution of the prox problem
  `min_x 1/2 ||x - v||^2 + t ||x||_1`, and its reported value `t ||x||_1`;
- `TotalVariation(lam)(v)` against the cvxpy solution of
  `min_x 1/2 ||x - v||^2 + lam TV(x)` (isotropic TV, forward differences, zero on
  the far edge, as in `tests/test_prox_pnp.py::test_tv_prox_matches_cvxpy`), and its
  reported value `lam TV(x)`;
- the fixed point of plug-and-play proximal gradient descent with the soft-threshold
  denoiser (`sciopt.solve(LinearInverseProblem(A, b), PnPProximalGradient(
  SoftThreshold(lam eta), step_size=eta))`) against the cvxpy lasso solution of
  `min_x 1/2 ||A x - b||^2 + lam ||x||_1` (and the lasso objective at the fixed
  point against that at cvxpy's point), the reported objective against the lasso
  objective, and the solver's fixed-point residual at cvxpy's solution.

Each prox (and the lasso) is checked twice: its objective, evaluated in NumPy, is at
most round-off above the objective at cvxpy's point (a sharp test, since cvxpy's point
is only feasible), and the points agree to Clarabel's accuracy.

The data (a seed) and the regularisation weights are drawn by hypothesis; shapes are
fixed and weights enter as JAX arrays, so each jitted function compiles once.
"""

import cvxpy as cp
import equinox as eqx
import jax.numpy as jnp
import lineax as lx
import numpy as np
import pytest
import sciopt
import sciopt.prox as sp
from hypothesis import given, settings, strategies as st


TOL = {"solver": "CLARABEL", "tol_gap_abs": 1e-12, "tol_gap_rel": 1e-12}
TOL |= {"tol_feas": 1e-12}
# On the TV program (an SOCP) Clarabel cannot reach 1e-12: it stops after about 9
# interior-point iterations with "optimal_inaccurate" and a point up to 4e-4 off
# (measured); at 1e-11 it reports "optimal" on 95% of the draws.
TV_TOL = {"solver": "CLARABEL", "tol_gap_abs": 1e-11, "tol_gap_rel": 1e-11}
TV_TOL |= {"tol_feas": 1e-11}

SEEDS = st.integers(0, 2**16)
IMAGE = (5, 6)
# FISTA on the dual is slow on the flat plateaus of the solution: 20_000 iterations
# leave the prox objective 2e-9 above its minimum for some weights near 0.4; 100_000
# reach it to round-off (measured over 300 draws).
TV_ITERS = 100_000


def _check_prox(x, value, v, regulariser, x_ref, atol):
    """Compare a prox `x` (with its reported regulariser value) with cvxpy's
    solution `x_ref` of `min 1/2 ||x - v||^2 + R(x)` (`regulariser` is `R` in NumPy).

    The sharp test is on the prox objective `P` (evaluated here in NumPy): cvxpy's
    point is feasible, so an exact prox is at least as good, up to the rounding of
    `P` (measured: never more than 2e-15 worse). The points themselves are compared
    at `atol`, the accuracy of Clarabel's solution (which is what limits it: `P` at
    cvxpy's point is up to 2e-11 above `P` at ours).
    """
    x = np.asarray(x)

    def objective(z):
        return 0.5 * np.sum((z - v) ** 2) + regulariser(z)

    assert objective(x) <= objective(x_ref) + 1e-12
    np.testing.assert_allclose(x, x_ref, rtol=0, atol=atol)
    # The reported value is R at the returned point (to rounding).
    np.testing.assert_allclose(value, regulariser(x), rtol=1e-12, atol=1e-14)


# -- soft-threshold -----------------------------------------------------------------


def _check_soft_threshold(seed, t):
    v = np.random.default_rng(seed).normal(size=(4, 5))
    x, value = sp.SoftThreshold(t).prox_and_value(jnp.asarray(v))
    ref = cp.Variable(v.shape)
    prob = cp.Problem(
        cp.Minimize(0.5 * cp.sum_squares(ref - v) + t * cp.sum(cp.abs(ref)))
    )
    prob.solve(**TOL)
    assert prob.status == cp.OPTIMAL
    # Clarabel's solution: measured up to 7.5e-8 off near the kinks |v| = t (1000
    # draws; the median 4e-12).
    _check_prox(x, value, v, lambda z: t * np.sum(np.abs(z)), ref.value, atol=3e-7)


@settings(max_examples=5)
@given(seed=SEEDS, t=st.floats(0.0, 2.0))
def test_soft_threshold_matches_cvxpy(seed, t):
    _check_soft_threshold(seed, t)


@pytest.mark.slow
@settings(max_examples=50)
@given(seed=SEEDS, t=st.floats(0.0, 2.0))
def test_soft_threshold_matches_cvxpy_many(seed, t):
    _check_soft_threshold(seed, t)


# -- total variation ----------------------------------------------------------------


@eqx.filter_jit
def _tv_prox(prox, v):
    return prox.prox_and_value(v)


def _tv_numpy(x):
    """Isotropic TV with forward differences, zero on the far edge."""
    dx = np.concatenate([x[1:] - x[:-1], np.zeros((1, x.shape[1]))], axis=0)
    dy = np.concatenate([x[:, 1:] - x[:, :-1], np.zeros((x.shape[0], 1))], axis=1)
    return np.sum(np.sqrt(dx**2 + dy**2))


def _tv_cvxpy(v, lam):
    x = cp.Variable(v.shape)
    rows, cols = v.shape
    dx = cp.vstack([x[1:, :] - x[:-1, :], np.zeros((1, cols))])
    dy = cp.hstack([x[:, 1:] - x[:, :-1], np.zeros((rows, 1))])
    tv = cp.sum(
        cp.norm(cp.vstack([cp.vec(dx, order="C"), cp.vec(dy, order="C")]), axis=0)
    )
    prob = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(x - v) + lam * tv))
    prob.solve(**TV_TOL)
    assert prob.status in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE)
    return x.value


def _check_tv(seed, lam):
    v = np.random.default_rng(seed).normal(size=IMAGE)
    x, value = _tv_prox(sp.TotalVariation(lam, num_iters=TV_ITERS), jnp.asarray(v))
    # Clarabel's solutions are measured up to 1.5e-6 off (300 draws, at 1e-11).
    _check_prox(x, value, v, lambda z: lam * _tv_numpy(z), _tv_cvxpy(v, lam), 1e-5)


@settings(max_examples=3)
@given(seed=SEEDS, lam=st.floats(0.0, 0.5))
def test_tv_prox_matches_cvxpy(seed, lam):
    _check_tv(seed, lam)


@pytest.mark.slow
@settings(max_examples=25)
@given(seed=SEEDS, lam=st.floats(0.0, 0.5))
def test_tv_prox_matches_cvxpy_many(seed, lam):
    _check_tv(seed, lam)


# -- PnP-PGD with the soft-threshold: the lasso -------------------------------------


def _lasso_cvxpy(a, b, lam):
    x = cp.Variable(a.shape[1])
    obj = 0.5 * cp.sum_squares(a @ x - b) + lam * cp.norm1(x)
    prob = cp.Problem(cp.Minimize(obj))
    prob.solve(**TOL)
    assert prob.status == cp.OPTIMAL
    return x.value


def _check_pnp_lasso(seed, lam):
    rng = np.random.default_rng(seed)
    # Overdetermined: the lasso is strongly convex, its solution unique, and PGD
    # converges linearly (at most 2400 steps measured).
    a = rng.normal(size=(10, 6)) / np.sqrt(10)
    b = a @ np.where(rng.uniform(size=6) < 0.5, rng.normal(size=6), 0.0)
    b = b + 0.1 * rng.normal(size=10)
    eta = 1 / np.linalg.norm(a, 2) ** 2
    problem = sp.LinearInverseProblem(lx.MatrixLinearOperator(jnp.asarray(a)), b)
    solver = sp.PnPProximalGradient(
        sp.SoftThreshold(lam * eta), step_size=eta, rtol=1e-13, atol=1e-14
    )
    sol = sciopt.solve(problem, solver, y0=jnp.zeros(6), max_steps=20_000)
    x = np.asarray(sol.value)
    x_ref = _lasso_cvxpy(a, b, lam)

    def lasso(z):
        return 0.5 * np.sum((a @ z - b) ** 2) + lam * np.sum(np.abs(z))

    # The fixed point is at least as good as cvxpy's point (measured: never worse
    # than round-off) and, by strong convexity, near it: measured at most 2.4e-10
    # apart over 200 draws (Clarabel's accuracy).
    assert lasso(x) <= lasso(x_ref) + 1e-12
    np.testing.assert_allclose(x, x_ref, rtol=0, atol=1e-8)
    # The reported objective is the lasso objective at the fixed point.
    np.testing.assert_allclose(sol.stats["objective"], lasso(x), rtol=1e-12)
    # cvxpy's solution is a fixed point of the PnP-PGD map (the condition the
    # solver's implicit gradients differentiate), to Clarabel's accuracy.
    residual = solver.optimality(problem, jnp.asarray(x_ref), None, {})
    np.testing.assert_allclose(residual, 0, atol=1e-8)


@settings(max_examples=4)
@given(seed=SEEDS, lam=st.floats(0.0, 1.0))
def test_pnp_pgd_soft_threshold_fixed_point_is_lasso(seed, lam):
    _check_pnp_lasso(seed, lam)


@pytest.mark.slow
@settings(max_examples=50)
@given(seed=SEEDS, lam=st.floats(0.0, 1.0))
def test_pnp_pgd_soft_threshold_fixed_point_is_lasso_many(seed, lam):
    _check_pnp_lasso(seed, lam)
