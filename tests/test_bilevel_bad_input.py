"""Bilevel solvers never report success unless their stopping test holds: no
fixed-step mode, small budgets give `steps_exhausted`, overflowed norms never pass."""

import jax.numpy as jnp
import numpy as np
import pytest
import sciopt
from sciopt.bilevel import AID, BilevelProblem, BOREP, LVHBA


# Phi(x) = F(x, y*(x)) with y*(x) = x: Phi(x) = (x - 1)^2 / 2, so x* = 1 (closed form).
PROBLEM = BilevelProblem(
    lambda x, y, a: 0.5 * jnp.sum((x - 1) ** 2) + 0.5 * jnp.sum((y - x) ** 2),
    lambda x, y, a: 0.5 * jnp.sum((y - x) ** 2),
)
START = (jnp.zeros(1), jnp.zeros(1))
X_STAR = 1.0


@pytest.mark.parametrize("cls", [LVHBA, BOREP, AID])
def test_fixed_step_mode_is_gone(cls):
    # `steps=N` made the solve stop after N steps and report success (x = 0.04 for
    # LVHBA after 5 steps); a fixed budget is `max_steps`.
    with pytest.raises(TypeError):
        cls(steps=5)


@pytest.mark.parametrize("solver", [LVHBA(), BOREP(), AID()])
def test_small_budget_is_steps_exhausted(solver):
    sol = sciopt.solve(PROBLEM, solver, START, max_steps=5, throw=False)
    assert sol.result == sciopt.RESULTS.steps_exhausted
    assert abs(float(sol.value[0][0]) - X_STAR) > 0.3  # far from x*
    with pytest.raises(Exception, match="maximum number of steps"):
        sciopt.solve(PROBLEM, solver, START, max_steps=5)


@pytest.mark.parametrize(
    "solver, tol",
    [
        (LVHBA(alpha=0.5, beta=0.5, eta=0.5), 1e-4),
        (AID(), 1e-7),
        # Constant normalised steps settle within a few `learning_rate` of x*;
        # `atol` at that level lets the stopping test hold.
        (BOREP(atol=5e-3), 3e-2),
    ],
)
def test_stopping_test_holds_near_closed_form(solver, tol):
    sol = sciopt.solve(PROBLEM, solver, START)  # default budget
    assert sol.result == sciopt.RESULTS.successful
    assert int(sol.stats["num_steps"]) < solver.default_max_steps()
    assert abs(float(sol.value[0][0]) - X_STAR) < tol


def test_default_budgets():
    sol = sciopt.solve(PROBLEM, AID(), START)
    assert int(sol.stats["max_steps"]) == AID().default_max_steps() == 1000
    assert LVHBA().default_max_steps() == 5000
    assert BOREP().default_max_steps() == 2000


def test_overflowed_norm_never_passes():
    from sciopt.bilevel._common import converged, safe_norm

    big = (jnp.array([3e200]), jnp.array([4e200]))
    np.testing.assert_allclose(safe_norm(big), 5e200, rtol=1e-12)
    assert not bool(converged(jnp.inf, jnp.inf))
    assert not bool(converged(jnp.nan, 1.0))
    assert bool(converged(jnp.array(0.5), 1.0))


def test_negative_tolerances_are_rejected():
    for make in (
        lambda: LVHBA(rtol=-1.0),
        lambda: AID(atol=-1.0),
        lambda: BOREP(atol=-1.0),
    ):
        with pytest.raises(ValueError, match="non-negative"):
            make()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"momentum": 1.0}, "momentum"),  # beta = 1 never moves x: m stays 0
        ({"momentum": -0.1}, "momentum"),
        ({"init_epochs": 0}, "init_epochs"),
        ({"period": 0}, "period"),
        ({"learning_rate": 0.0}, "learning_rate"),
    ],
)
def test_borep_rejects_hyperparameters_outside_their_range(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BOREP(**kwargs)
