"""Implicit gradients of bilevel solutions (LVHBA, BOREP, AID) with respect to `args`:
against closed forms with an active coupled constraint, against central finite
differences of the solve, and errors where the derivative does not exist."""

import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx
import pytest
import sciopt
from sciopt.bilevel import AID, BilevelProblem, BOREP, Box, LVHBA, Polyhedron


N = 4
EYE = np.eye(N)
# The coupled box problem (2a) of the gallery with its data as `args = (a, b, c)`:
# F = |x - a|^2/2 + |y - b|^2/2, f = |y - c|^2/2 s.t. y <= x.
COUPLED_BOX = BilevelProblem(
    lambda x, y, p: 0.5 * jnp.sum((x - p[0]) ** 2) + 0.5 * jnp.sum((y - p[1]) ** 2),
    lambda x, y, p: 0.5 * jnp.sum((y - p[2]) ** 2),
    lower_constraints=lambda x, y, p: y - x,
    coupled_set=Polyhedron(a_ineq=np.concatenate([-EYE, EYE], 1), b_ineq=np.zeros(N)),
)
LV = LVHBA(alpha=0.5, beta=0.5, eta=0.5, penalty=8.0)
START = (jnp.zeros(N), jnp.zeros(N))
# Non-symmetric data: the constraint is inactive in coordinates 0 and 2 (a >= c,
# x* = a, y* = c) and active in 1 and 3 ((a + b)/2 <= c: x* = y* = (a + b)/2).
A = np.array([1.3, 0.1, 2.2, 0.7])
B = np.array([0.4, -1.1, 0.3, -0.2])
C = np.array([0.2, 1.4, -0.9, 1.9])


def _closed_form_jacobian(a, b, c):
    """d(x*, y*)/d(a, b, c), coordinatewise (diagonal blocks)."""
    active = (a + b) / 2 <= c
    dx = {"a": np.where(active, 0.5, 1.0), "b": np.where(active, 0.5, 0.0)}
    dx["c"] = np.zeros(N)
    dy = {"a": np.where(active, 0.5, 0.0), "b": np.where(active, 0.5, 0.0)}
    dy["c"] = np.where(active, 0.0, 1.0)
    return dx, dy, active


def _solve_box(p, solver=LV):
    return sciopt.solve(COUPLED_BOX, solver, START, p).value


def test_lvhba_gradient_matches_closed_form_with_active_coupled_constraint():
    p = tuple(jnp.asarray(v) for v in (A, B, C))
    x, y = _solve_box(p)
    dx, dy, active = _closed_form_jacobian(A, B, C)
    assert active.tolist() == [False, True, False, True]
    np.testing.assert_allclose(x, np.where(active, (A + B) / 2, A), rtol=1e-12)
    jx, jy = jax.jacrev(_solve_box)(p)
    for i, name in enumerate("abc"):
        np.testing.assert_allclose(jx[i], np.diag(dx[name]), atol=1e-10)
        np.testing.assert_allclose(jy[i], np.diag(dy[name]), atol=1e-10)


def test_lvhba_gradient_matches_finite_differences():
    # A scalar function of the whole solution, differentiated along random
    # directions of all the args at once (central differences of the solve).
    rng = np.random.default_rng(0)
    weights = rng.normal(size=(2, N))

    def loss(flat):
        p = (flat[:N], flat[N : 2 * N], flat[2 * N :])
        x, y = _solve_box(p)
        return jnp.vdot(weights[0], x) + jnp.vdot(weights[1], y) + jnp.sum(x**2)

    flat = jnp.asarray(np.concatenate([A, B, C]))
    grad = jax.grad(loss)(flat)
    eps = 1e-5
    for _ in range(2):
        v = jnp.asarray(rng.normal(size=flat.size))
        fd = (loss(flat + eps * v) - loss(flat - eps * v)) / (2 * eps)
        np.testing.assert_allclose(jnp.vdot(grad, v), fd, rtol=1e-5)


def test_borep_default_gradient_is_not_zero():
    # x*(s) for F = (x - s)^2/2 + (y - 1)^2/2, f = (y - x)^2/2: x* = (s + 1)/2. The
    # unrolled gradient through BO-REP's normalised step is 0 (its step is a sign);
    # the default (implicit) adjoint must give 1/2.
    problem = BilevelProblem(
        lambda x, y, s: 0.5 * jnp.sum((x - s) ** 2) + 0.5 * jnp.sum((y - 1) ** 2),
        lambda x, y, s: 0.5 * jnp.sum((y - x) ** 2),
    )
    start = (jnp.zeros(1), jnp.zeros(1))

    def solution(s, adjoint=optx.ImplicitAdjoint()):
        sol = sciopt.solve(problem, BOREP(atol=5e-3), start, s, adjoint=adjoint)
        return sol.value[0][0]

    s = jnp.array(3.0)
    np.testing.assert_allclose(solution(s), 2.0, rtol=1e-12)  # polished
    np.testing.assert_allclose(jax.grad(solution)(s), 0.5, rtol=1e-10)
    aid = jax.grad(
        lambda s: sciopt.solve(problem, AID(learning_rate=0.5), start, s).value[0][0]
    )(s)
    np.testing.assert_allclose(aid, 0.5, rtol=1e-7)


def test_upper_box_active_gradient():
    # F = (x - s)^2/2 + (y - 1)^2/2, f = (y - x)^2/2 on X = [-5, 1]: for s > 1,
    # x* = 1 sits on the bound and dx*/ds = 0, while y*(x) = x gives dy*/ds = 0.
    problem = BilevelProblem(
        lambda x, y, s: 0.5 * jnp.sum((x - s) ** 2) + 0.5 * jnp.sum((y - 1) ** 2),
        lambda x, y, s: 0.5 * jnp.sum((y - x) ** 2),
        upper_set=Box(-5.0, 1.0),
    )

    def solution(s):
        sol = sciopt.solve(problem, LV, (jnp.zeros(1), jnp.zeros(1)), s)
        return sol.value[0][0]

    s = jnp.array(3.0)
    np.testing.assert_allclose(solution(s), 1.0, rtol=1e-12)
    np.testing.assert_allclose(jax.grad(solution)(s), 0.0, atol=1e-12)
    # Inside the box the gradient is 1/2 (x* = (s + 1)/2).
    np.testing.assert_allclose(jax.grad(solution)(jnp.array(0.0)), 0.5, rtol=1e-10)


def test_weakly_active_constraint_raises():
    # a_0 = c_0: x* = a_0 = c_0 = y*, the constraint y <= x is active with a zero
    # multiplier, and the solution map has a kink in a_0 (slope 1/2 or 1).
    a = A.copy()
    a[0] = C[0]
    p = tuple(jnp.asarray(v) for v in (a, B, C))
    x, _ = _solve_box(p)  # not polished: the active set is ambiguous
    np.testing.assert_allclose(x[0], C[0], atol=1e-2)
    with pytest.raises(Exception, match="weakly active"):
        jax.grad(lambda p: jnp.sum(_solve_box(p)[0]))(p)


def test_nonunique_lower_level_raises():
    # f does not depend on y_1: the lower-level solution is not unique.
    problem = BilevelProblem(
        lambda x, y, s: 0.5 * jnp.sum((x - s) ** 2) + 0.5 * jnp.sum(y**2),
        lambda x, y, s: 0.5 * (y[0] - x[0]) ** 2,
    )

    def solution(s):
        sol = sciopt.solve(problem, LV, (jnp.zeros(1), jnp.zeros(2)), s)
        return sol.value[0][0]

    with pytest.raises(Exception, match="not unique"):
        jax.grad(solution)(jnp.array(1.0))
