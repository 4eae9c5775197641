"""The shared FISTA routine (`sciopt._proximal_gradient`) against cvxpy."""

import cvxpy as cp
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sciopt._proximal_gradient import fista, fista_init, fista_step


def _data(seed, m=25, n=8):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((m, n)), rng.standard_normal(m)


def _soft(z, t):
    return jnp.sign(z) * jax.nn.relu(jnp.abs(z) - t)


def _cvxpy(objective, constraints=()):
    cp.Problem(cp.Minimize(objective), list(constraints)).solve(
        solver=cp.CLARABEL, tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12
    )


@pytest.mark.parametrize("backtrack", [False, True])
def test_lasso_matches_cvxpy(backtrack):
    A, b = _data(0)
    lam = 2.0
    x = cp.Variable(A.shape[1])
    _cvxpy(0.5 * cp.sum_squares(A @ x - b) + lam * cp.norm1(x))
    ref = x.value
    assert np.sum(np.abs(ref) < 1e-8) >= 1  # the l1 term is active somewhere

    Aj, bj = jnp.asarray(A), jnp.asarray(b)

    def grad(w):
        return Aj.T @ (Aj @ w - bj)

    lipschitz = None if backtrack else float(np.linalg.norm(A, 2) ** 2)
    w, res, k = jax.jit(
        lambda w0: fista(
            grad,
            lambda z, step: _soft(z, lam * step),
            w0,
            max_steps=5000,
            tol=1e-11,
            lipschitz=lipschitz,
        )
    )(jnp.zeros(A.shape[1]))
    assert float(res) <= 1e-11 and int(k) < 5000
    np.testing.assert_allclose(w, ref, atol=1e-7)


def test_box_constrained_least_squares_matches_cvxpy():
    A, b = _data(1, m=30, n=10)
    lo, hi = -0.1, 0.15
    x = cp.Variable(A.shape[1])
    _cvxpy(0.5 * cp.sum_squares(A @ x - b), [x >= lo, x <= hi])
    ref = x.value
    assert np.sum((ref < lo + 1e-8) | (ref > hi - 1e-8)) >= 2  # bounds active

    Aj, bj = jnp.asarray(A), jnp.asarray(b)
    w, res, _ = fista(
        lambda w: Aj.T @ (Aj @ w - bj),
        lambda z, step: jnp.clip(z, lo, hi),
        jnp.zeros(A.shape[1]),
        max_steps=5000,
        tol=1e-11,
    )
    assert float(res) <= 1e-11
    np.testing.assert_allclose(w, ref, atol=1e-7)


def test_steps_equal_the_loop_and_restart_resets_momentum():
    """`fista` is `fista_step` repeated; the momentum follows Beck and Teboulle's
    t_{k+1} = (1 + sqrt(1 + 4 t_k^2)) / 2 until a restart sets it to 1."""
    A, b = _data(2)
    Aj, bj = jnp.asarray(A), jnp.asarray(b)

    def grad(w):
        return Aj.T @ (Aj @ w - bj)

    def prox(z, step):
        return _soft(z, 0.5 * step)

    L = float(np.linalg.norm(A, 2) ** 2)
    state = fista_init(jnp.zeros(A.shape[1]), L)
    for _ in range(12):
        t = float(state.momentum)
        state = fista_step(grad, prox, state)
        expected = (1 + np.sqrt(1 + 4 * t * t)) / 2
        assert float(state.momentum) in (pytest.approx(expected), 1.0)
    w, _, k = fista(
        grad, prox, jnp.zeros(A.shape[1]), max_steps=12, tol=0.0, lipschitz=L
    )
    assert int(k) == 12
    np.testing.assert_allclose(w, state.x, rtol=1e-13, atol=1e-15)  # jit vs eager
