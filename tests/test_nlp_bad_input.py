"""Bad input and failure modes of `sciopt.nlp` (issue 17): infeasible and unbounded
problems, rank-deficient starts, short `y0`, mixed dtypes, float32 defaults."""

import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
import pytest
import sciopt
import scipy.optimize
from sciopt.nlp import AdaSketchNewton, EqualityConstrainedProblem

from .helpers import nlp_hs_specs, nlp_objective_error


EXACT = AdaSketchNewton(linear_solver=lx.LU())


def test_inconsistent_linear_constraints_are_infeasible():
    # x1 = 1 and x1 = 2: G = [[1, 0], [1, 0]] has rank 1 everywhere and no point
    # is feasible. The stationary point of 1/2 ||c||^2 is x1 = 1.5 (closed form),
    # where ||c|| = 1/sqrt(2). Was `rank_deficient_constraints` ("remove redundant
    # constraints") at x0.
    problem = EqualityConstrainedProblem(
        lambda x, a: x[0] ** 2 + x[1] ** 2,
        lambda x, a: jnp.stack([x[0] - 1, x[0] - 2]),
    )
    sol = sciopt.solve(problem, EXACT, jnp.zeros(2), throw=False)
    assert sol.result == sciopt.RESULTS.infeasible
    assert float(sol.value[0]) == pytest.approx(1.5, abs=1e-6)
    c = problem.constraints(sol.value, None)
    assert float(jnp.linalg.norm(c)) == pytest.approx(np.sqrt(0.5), rel=1e-6)
    with pytest.raises(Exception, match="infeasible"):
        sciopt.solve(problem, EXACT, jnp.zeros(2))


@pytest.mark.parametrize("solver", [EXACT, AdaSketchNewton()], ids=["lu", "sketch"])
def test_empty_circle_is_infeasible(solver):
    # x1^2 + x2^2 = -1 has no real solution; 1/2 ||c||^2 = (|x|^2 + 1)^2 / 2 is
    # stationary only at x = 0 (closed form). Was `inner_solve_failed` /
    # `not_descent_direction` near x = 1e-3.
    problem = EqualityConstrainedProblem(
        lambda x, a: x[0] + x[1],
        lambda x, a: jnp.stack([x[0] ** 2 + x[1] ** 2 + 1]),
    )
    sol = sciopt.solve(problem, solver, jnp.array([0.5, 0.3]), throw=False)
    assert sol.result == sciopt.RESULTS.infeasible
    assert float(jnp.linalg.norm(sol.value)) <= 1e-5


def test_unbounded_linear_objective():
    # min x1 s.t. x2 = 0: f is unbounded below on the feasible line. Was
    # `steps_exhausted` at x1 = -2560.
    problem = EqualityConstrainedProblem(
        lambda x, a: x[0], lambda x, a: jnp.stack([x[1]])
    )
    sol = sciopt.solve(problem, EXACT, jnp.array([0.0, 1.0]), throw=False)
    assert sol.result == sciopt.RESULTS.unbounded
    assert float(sol.value[0]) <= -1e10  # the default `unbounded_threshold`
    assert abs(float(sol.value[1])) <= 1e-8  # on the feasible set
    assert int(sol.stats["num_steps"]) < 100


def test_unbounded_cubic_objective_and_threshold():
    # min x1^3 s.t. x2 = 0 from x1 = -1 (negative curvature): unbounded. A
    # smaller `unbounded_threshold` stops as soon as f(x) <= f(x0) - threshold.
    problem = EqualityConstrainedProblem(
        lambda x, a: x[0] ** 3, lambda x, a: jnp.stack([x[1]])
    )
    x0 = jnp.array([-1.0, 1.0])
    sol = sciopt.solve(problem, EXACT, x0, throw=False)
    assert sol.result == sciopt.RESULTS.unbounded
    assert float(problem.objective(sol.value, None)) <= -1 - 1e10
    assert abs(float(sol.value[1])) <= 1e-8
    solver = AdaSketchNewton(linear_solver=lx.LU(), unbounded_threshold=1e3)
    sol2 = sciopt.solve(problem, solver, x0, throw=False)
    assert sol2.result == sciopt.RESULTS.unbounded
    assert float(problem.objective(sol2.value, None)) <= -1 - 1e3
    assert int(sol2.stats["num_steps"]) <= int(sol.stats["num_steps"])


@pytest.mark.parametrize("solver", [EXACT, AdaSketchNewton()], ids=["lu", "sketch"])
def test_hs061_from_its_rank_deficient_start(solver):
    # HS61's standard x0 = 0: G = [[3, 0, 0], [4, 0, 0]] (rank 1, inconsistent
    # linearisation). Was `rank_deficient_constraints` after one step. SLSQP fails
    # from this start ("Singular matrix C in LSQ subproblem"); scipy's
    # trust-constr reaches the optimum from it, and SLSQP from a regular start.
    spec = nlp_hs_specs()["hs061"]
    problem = spec.build()
    x0 = jnp.zeros(3)
    sol = sciopt.solve(problem, solver, x0)
    f = float(problem.objective(sol.value, None))
    reference = spec.data["reference"]["f"]
    assert abs(f - reference) <= 1e-6 * abs(reference)
    assert float(sol.stats["kkt_residual"]) <= 1e-8

    def fun(x):
        return float(problem.objective(jnp.asarray(x), None))

    def con(x):
        return np.asarray(problem.constraints(jnp.asarray(x), None))

    slsqp = scipy.optimize.minimize(
        fun, np.zeros(3), method="SLSQP", constraints=[{"type": "eq", "fun": con}]
    )
    assert not slsqp.success or abs(slsqp.fun - reference) > 1e-3
    slsqp = scipy.optimize.minimize(
        fun,
        np.array([1.0, -1.0, 1.0]),
        method="SLSQP",
        constraints=[{"type": "eq", "fun": con}],
        options={"ftol": 1e-14},
    )
    assert slsqp.success
    np.testing.assert_allclose(sol.value, slsqp.x, atol=1e-6)
    assert abs(f - slsqp.fun) <= 1e-6 * abs(reference)


def test_short_y0_raises():
    # The callables read x[2]; JAX would clamp it to x[1] on a length-2 y0 and
    # solve a different problem to `successful`.
    problem = EqualityConstrainedProblem(
        lambda x, a: x[0] ** 2 + x[1] ** 2 + x[2] ** 2,
        lambda x, a: jnp.stack([x[0] + x[1] + x[2] - 1]),
    )
    with pytest.raises(ValueError, match=r"`y0` of length 2.*index 2"):
        sciopt.solve(problem, EXACT, jnp.zeros(2))
    # Under jit y0 is a tracer: indices fixed at trace time are still checked.
    with pytest.raises(ValueError, match="y0"):
        jax.jit(lambda y: sciopt.solve(problem, EXACT, y).value)(jnp.zeros(2))
    # An index taken from `args` is checked on the concrete values.
    indexed = EqualityConstrainedProblem(
        lambda x, i: jnp.sum(x**2) + x[i], lambda x, i: jnp.stack([x[0] - 1])
    )
    with pytest.raises(ValueError, match="index 3"):
        sciopt.solve(indexed, EXACT, jnp.zeros(2), args=jnp.array(3))
    sol = sciopt.solve(problem, EXACT, jnp.zeros(3))  # the right length solves
    np.testing.assert_allclose(sol.value, np.full(3, 1 / 3), rtol=1e-9)


def test_float32_y0_with_float64_args():
    # Crashed with a while_loop carry TypeError before `sciopt.solve` cast y0 to
    # the args' dtype.
    problem = EqualityConstrainedProblem(
        lambda x, p: jnp.sum((x - p) ** 2), lambda x, p: jnp.stack([jnp.sum(x) - 1])
    )
    p = jnp.array([1.0, 2.0, 3.0], jnp.float64)
    sol = sciopt.solve(problem, EXACT, jnp.zeros(3, jnp.float32), args=p)
    assert sol.value.dtype == jnp.float64
    reference = sciopt.solve(problem, EXACT, jnp.zeros(3, jnp.float64), args=p)
    np.testing.assert_allclose(sol.value, reference.value, rtol=1e-12)
    np.testing.assert_allclose(sol.value, np.array([1.0, 2.0, 3.0]) - 5 / 3)


@pytest.mark.parametrize("name", ["hs040", "hs061"])
def test_float32_default_settings(name):
    # Default tolerances follow the dtype (atol = sqrt(eps) / 2): float32 meets
    # them. Built without the table's float64 x0 so the solve stays in float32.
    data = nlp_hs_specs()[name].data
    problem = EqualityConstrainedProblem.from_formulas(
        data["variables"], data["objective"], data["equalities"]
    )
    sol = sciopt.solve(problem, AdaSketchNewton(), jnp.asarray(data["x0"], jnp.float32))
    assert sol.value.dtype == jnp.float32
    f = problem.objective(sol.value, None)
    assert nlp_objective_error(f, data["reference"]["f"]) <= 1e-4  # KKT ~ 1e-4


def test_rank_deficient_feasible_point_without_multipliers():
    # min x1 s.t. x1^2 = 0: x* = 0 is the only feasible point, G = 2 x1 vanishes
    # there and no multiplier satisfies 1 + 2 lam x1 = 0 (LICQ fails; a Fritz-John
    # point). `rank_deficient_constraints` is what applies, near x1 = 0.
    problem = EqualityConstrainedProblem(
        lambda x, a: x[0] + x[1] ** 2, lambda x, a: jnp.stack([x[0] ** 2])
    )
    sol = sciopt.solve(problem, EXACT, jnp.array([1.0, 1.0]), throw=False)
    assert sol.result in (
        sciopt.RESULTS.rank_deficient_constraints,
        sciopt.RESULTS.successful,
    )
    assert abs(float(sol.value[0])) <= 1e-3
