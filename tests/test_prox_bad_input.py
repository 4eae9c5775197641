"""Bad inputs to the plug-and-play solvers: divergence is reported, never success;
mixed dtypes are normalised."""

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import pytest
import sciopt
import sciopt.prox as sp


def _blur_problem():
    op = sp.blur_operator((4, 4), sigma=1.0, size=3)
    x_true = jnp.arange(16.0).reshape(4, 4) / 16
    return sp.LinearInverseProblem(op, op.mv(x_true))


def _lipschitz(problem):
    # Independent of the solver: the largest eigenvalue of the explicit A^T A.
    a = np.asarray(problem.operator.as_matrix())
    return float(np.linalg.eigvalsh(a.T @ a)[-1])


def test_pgd_step_too_long_reports_diverged():
    problem = _blur_problem()
    step = 10.0
    assert step > 2 / _lipschitz(problem)  # PGD diverges for eta > 2/L
    solver = sp.PnPProximalGradient(sp.SoftThreshold(0.01), step_size=step)
    sol = sciopt.solve(problem, solver, max_steps=1000, throw=False)
    assert sol.result == sciopt.RESULTS.diverged
    # Stopped on growth, long before the norms overflow.
    assert np.all(np.isfinite(sol.value))
    assert int(sol.stats["num_steps"]) < 100
    with pytest.raises(eqx.EquinoxRuntimeError, match="diverged"):
        sciopt.solve(problem, solver, max_steps=1000, throw=True)


def test_pgd_step_below_two_over_l_still_converges():
    problem = _blur_problem()
    step = 1.5 / _lipschitz(problem)
    solver = sp.PnPProximalGradient(sp.SoftThreshold(0.0), step_size=step)
    sol = sciopt.solve(problem, solver, max_steps=5000)
    # Threshold 0: least squares, whose minimum is 0 (y = A x_true); the blur is
    # ill-conditioned, so judge the residual, not x.
    a = np.asarray(problem.operator.as_matrix())
    r = a @ np.ravel(sol.value) - np.ravel(problem.measurement)
    assert sol.result == sciopt.RESULTS.successful
    assert np.linalg.norm(r) < 1e-3 * np.linalg.norm(problem.measurement)


def test_admm_expansive_denoiser_reports_diverged():
    problem = _blur_problem()
    # 3 v is not a proximal operator (it expands): the iterates grow geometrically.
    solver = sp.PnPADMM(sp.FunctionProx(lambda v: 3.0 * v), penalty=1.0)
    sol = sciopt.solve(problem, solver, max_steps=2000, throw=False)
    assert sol.result == sciopt.RESULTS.diverged
    assert int(sol.stats["num_steps"]) < 100


def test_safe_norm_does_not_overflow():
    from sciopt.prox._pgd import safe_norm

    x = jnp.array([3e200, 4e200])
    np.testing.assert_allclose(safe_norm(x), 5e200, rtol=1e-12)
    assert float(safe_norm(jnp.zeros(3))) == 0.0
    assert not np.isfinite(safe_norm(jnp.array([1.0, jnp.inf])))


@pytest.mark.parametrize("kind", ["pgd", "admm"])
def test_float32_y0_on_float64_problem(kind):
    problem = _blur_problem()
    prox = sp.SoftThreshold(0.01)
    if kind == "pgd":
        solver = sp.PnPProximalGradient(prox, step_size=1.0)
    else:
        solver = sp.PnPADMM(prox, penalty=1.0)
    y0 = jnp.zeros((4, 4), jnp.float32)
    sol = sciopt.solve(problem, solver, y0, max_steps=2000)
    assert sol.value.dtype == jnp.float64
    ref = sciopt.solve(problem, solver, jnp.zeros((4, 4)), max_steps=2000)
    np.testing.assert_allclose(sol.value, ref.value, rtol=1e-12, atol=1e-12)


def test_float64_y0_on_float32_problem():
    op = sp.blur_operator((4, 4), sigma=1.0, size=3, dtype=jnp.float32)
    x_true = jnp.arange(16.0, dtype=jnp.float32).reshape(4, 4) / 16
    problem = sp.LinearInverseProblem(op, op.mv(x_true))
    # Every array of the problem shares the operator's dtype.
    assert problem.data_weight.dtype == jnp.float32
    solver = sp.PnPProximalGradient(sp.SoftThreshold(0.01), step_size=1.0, rtol=1e-4)
    sol = sciopt.solve(problem, solver, jnp.zeros((4, 4)), max_steps=2000)
    assert sol.value.dtype == jnp.float32
    ref = sciopt.solve(problem, solver, jnp.zeros((4, 4), jnp.float32), max_steps=2000)
    np.testing.assert_array_equal(sol.value, ref.value)
