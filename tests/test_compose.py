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
