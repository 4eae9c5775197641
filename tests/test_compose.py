"""The compose family: sciopt solves differentiated inside outer programs, against
references computed without sciopt (SLSQP, cvxpy, the true coefficient)."""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sciopt
from sciopt._problems import check_spec, ProblemSpec
from sciopt.gallery import compose


PROBLEMS = Path(__file__).resolve().parent.parent / "problems"


def test_compose_tables_validate():
    specs = sciopt.load_problem_specs(PROBLEMS / "compose.toml")
    assert {s.data["task"] for s in specs} == set(compose.TASKS)
    for spec in specs:
        check_spec(spec)
    bad = ProblemSpec(
        "x", "compose", {"task": "nope", "reference": {"source": "-"}}, Path("f")
    )
    with pytest.raises(ValueError, match="`task` must be one of"):
        check_spec(bad)


def test_nlp_batch_against_slsqp():
    with jax.enable_x64(True):
        r = compose.nlp_batch(batch=3, infeasible=1)
    # the infeasible instance reports its failure; the others match SLSQP
    assert list(r["successful"]) == [True, False, True]
    assert len(r["failure_messages"]) == 1
    assert r["x_error"] < 1e-6
    assert r["grad_error"] < 1e-4


def _fd_log(fn, x, eps):
    return (fn(x + eps) - fn(x - eps)) / (2 * eps)


def test_relu_hypergradient_against_cvxpy_differences():
    import sciopt.relu as sr

    with jax.enable_x64(True):
        X, y, Xv, yv, patterns = compose.relu_data(n=20, num_patterns=4)

        def val(v):
            return 0.5 * jnp.mean((compose.relu_predict(jnp.asarray(v), Xv) - yv) ** 2)

        def loss(log_beta):
            problem = sr.ConvexReLUProblem(X, y, patterns, jnp.exp(log_beta))
            return val(sciopt.solve(problem, sr.ADMM(rtol=1e-10, atol=1e-12)).value.v)

        def loss_cvxpy(log_beta):
            problem = sr.ConvexReLUProblem(X, y, patterns, float(np.exp(log_beta)))
            return float(val(sr.cvxpy_solve(problem)[1]))

        g = float(jax.grad(loss)(jnp.log(0.3)))
        fd = _fd_log(loss_cvxpy, np.log(0.3), 1e-4)
    assert abs(g - fd) <= 1e-4 * max(1.0, abs(fd))


def test_pnp_hypergradient_against_cvxpy_differences():
    from sciopt.prox import LinearInverseProblem, PnPProximalGradient, SoftThreshold

    with jax.enable_x64(True):
        x_true, y, op = compose.pnp_data(size=6, spikes=4)
        solver = PnPProximalGradient(
            SoftThreshold(0.01), step_size=1.0, rtol=1e-11, atol=1e-13
        )

        def loss(log_w):
            problem = LinearInverseProblem(op, y, data_weight=jnp.exp(log_w))
            x = sciopt.solve(problem, solver, max_steps=50_000).value
            return jnp.mean((x - x_true) ** 2)

        A = np.asarray(
            jax.jacfwd(lambda v: op.mv(v.reshape(x_true.shape)).ravel())(
                jnp.zeros(x_true.size)
            )
        )
        yv, xt = np.asarray(y).ravel(), np.asarray(x_true).ravel()

        def loss_cvxpy(log_w):
            x = compose._lasso_cvxpy(A, yv, float(np.exp(log_w)), 0.01)
            return float(np.mean((x - xt) ** 2))

        g = float(jax.grad(loss)(jnp.log(0.8)))
        fd = _fd_log(loss_cvxpy, np.log(0.8), 1e-4)
    assert abs(g - fd) <= 1e-3 * max(abs(fd), 1e-3)


@pytest.mark.slow
def test_pde_coefficient_identified():
    with jax.enable_x64(True):
        r = compose.pde_coefficient(nu_true=0.1, steps=15, train_steps=200)
    assert r["error"] < 0.05


# --- a sciopt problem as the lower level of a bilevel problem (NestedProblem + AID) ---


def _nested_relu():
    import sciopt.bilevel as sb
    import sciopt.relu as sr

    X, y, Xv, yv, patterns = compose.relu_data(20, 50, 4, 0)
    X, y, Xv, yv = (jnp.asarray(a) for a in (X, y, Xv, yv))

    def lower(log_beta, args):
        return sr.ConvexReLUProblem(X, y, patterns, jnp.exp(log_beta))

    def val_loss(problem, v, scale):
        network = sr.to_network(problem, v, prune=False)  # traceable
        return 0.5 * jnp.mean((network(Xv) - scale * yv) ** 2)

    def upper(log_beta, v, scale):
        return val_loss(lower(log_beta, None), v, scale)

    return sb.NestedProblem(upper, lower), lower, val_loss


def _cvxpy_val_loss(lower, val_loss, log_beta, scale=1.0):
    import sciopt.relu as sr

    problem = lower(jnp.asarray(log_beta), None)
    _, v = sr.cvxpy_solve(problem)
    return float(val_loss(problem, jnp.asarray(v), scale))


def test_nested_relu_beta_by_aid_is_a_cvxpy_local_minimum():
    """AID with a sciopt lower solver (InteriorPoint) tunes log beta of a convex ReLU
    network: the validation loss it reports is cvxpy's at its beta, and cvxpy solves
    at log beta +- 0.03 and +- 0.1 give higher validation losses: a local minimum of
    the true (cvxpy) validation loss, reached by differentiating through sciopt
    solves only."""
    import sciopt.bilevel as sb
    import sciopt.relu as sr

    problem, lower, val_loss = _nested_relu()
    aid = sb.AID(learning_rate=16.0, lower_solver=sr.InteriorPoint(), rtol=1e-5)
    sol = sciopt.solve(problem, aid, problem.start(jnp.log(0.05)), args=1.0)
    assert sol.result == sciopt.RESULTS.successful
    assert sol.stats["lower_result"] == sciopt.RESULTS.successful
    x = float(sol.value[0])
    here = _cvxpy_val_loss(lower, val_loss, x)
    # InteriorPoint stops at a relative gap of 1e-8: its groups, hence the validation
    # loss, agree with cvxpy's to about 1e-6 (5e-7 measured)
    assert float(sol.stats["upper_objective"]) == pytest.approx(here, rel=5e-6)
    for h in (0.1, 0.03):
        assert _cvxpy_val_loss(lower, val_loss, x - h) > here
        assert _cvxpy_val_loss(lower, val_loss, x + h) > here
    # the start was not already optimal: the outer solve moved and improved
    assert x < np.log(0.05) - 1.0
    assert here < _cvxpy_val_loss(lower, val_loss, np.log(0.05)) - 1e-3


def test_nested_inner_failure_is_reported_not_raised():
    """A lower solve that runs out of steps ends the outer solve with
    `inner_solve_failed` (its own code in `stats["lower_result"]`), at the start
    point, and raises the message only with `throw=True`. (The nlp lower level of
    the conformance entry: its program compiles faster than a relu one.)"""
    import sciopt.bilevel as sb

    from .helpers import _bilevel_nested

    problem, _, (_, y0), args = _bilevel_nested(jnp.float64)
    start = (jnp.asarray([1.0, 0.5]), y0)  # y0 = 0 is not the lower solution here
    # the default (sketched) Newton solver needs more than one step on this QP
    aid = sb.AID(lower_solver=sciopt.nlp.AdaSketchNewton(), lower_max_steps=1)
    sol = sciopt.solve(problem, aid, start, args=args, throw=False)
    assert sol.result == sciopt.RESULTS.inner_solve_failed
    assert sol.stats["lower_result"] == sciopt.RESULTS.steps_exhausted
    np.testing.assert_array_equal(sol.value[0], start[0])  # x kept, finite
    with pytest.raises(Exception, match="lower-level|inner"):
        sciopt.solve(problem, aid, start, args=args)


def test_nested_problem_bad_input():
    import sciopt.bilevel as sb
    import sciopt.relu as sr

    problem, _, _ = _nested_relu()
    start = problem.start(jnp.log(0.05))
    with pytest.raises(TypeError, match="NestedProblem.*lower_solver"):
        sciopt.solve(problem, sb.AID(), start, args=1.0)
    with pytest.raises(TypeError, match="AID\\(lower_solver"):
        sciopt.solve(problem, sb.LVHBA(), start, args=1.0)
    with pytest.raises(TypeError, match="AID\\(lower_solver"):
        sciopt.solve(problem, sb.BOREP(), start, args=1.0)
    with pytest.raises(TypeError, match="`lower_solver` must be"):
        sb.AID(lower_solver="InteriorPoint")
    ridge = sb.BilevelProblem(lambda x, y, a: jnp.sum(y**2), lambda x, y, a: y @ y)
    with pytest.raises(TypeError, match="needs a `sciopt.bilevel.NestedProblem`"):
        sciopt.solve(ridge, sb.AID(lower_solver=sr.ADMM()), (jnp.ones(1), jnp.ones(1)))
    bad = sb.NestedProblem(lambda x, y, a: x, lambda x, a: "not a problem")
    with pytest.raises(TypeError, match="must return a sciopt problem"):
        bad.start(jnp.zeros(()))
    with pytest.raises(TypeError, match="`upper` must be a callable"):
        sb.NestedProblem(1.0, lambda x, a: None)


@pytest.mark.slow
def test_nested_solution_gradient_matches_finite_differences():
    """d x*/d(scale) of the outer solution (the validation targets scaled by `args`):
    implicit differentiation through AID's condition, which itself differentiates
    through the lower solves (second order), against central differences of outer
    solves."""
    import sciopt.bilevel as sb
    import sciopt.relu as sr

    problem, _, _ = _nested_relu()
    aid = sb.AID(learning_rate=4.0, lower_solver=sr.InteriorPoint(), rtol=1e-9)
    start = problem.start(jnp.log(0.05))

    def x_star(scale):
        return sciopt.solve(problem, aid, start, args=scale, max_steps=2000).value[0]

    grad = float(jax.grad(x_star)(1.0))
    h = 1e-3
    fd = (float(x_star(1.0 + h)) - float(x_star(1.0 - h))) / (2 * h)
    assert grad == pytest.approx(fd, rel=1e-4)
