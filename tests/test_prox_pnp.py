"""Plug-and-play solvers, proximal operators and forward operators."""

import cvxpy as cp
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import lineax as lx
import numpy as np
import pytest
import sciopt
import sciopt.prox as sp

from .helpers import finite_difference_grad, prox_random_icnn


def _sensing_problem(key, n=12, m=8):
    k1, k2, k3 = jr.split(key, 3)
    op = sp.gaussian_sensing_operator(k1, (n,), m)
    x_true = jnp.where(jr.uniform(k2, (n,)) < 0.3, jr.normal(k3, (n,)), 0.0)
    return sp.LinearInverseProblem(op, op.mv(x_true)), x_true


def _matrix(op):
    return np.asarray(op.as_matrix())


def _lasso_reference(problem, lam):
    a = _matrix(problem.operator)
    x = cp.Variable(a.shape[1])
    obj = 0.5 * cp.sum_squares(a @ x - np.asarray(problem.measurement))
    obj = obj + lam * cp.norm1(x)
    cp.Problem(cp.Minimize(obj)).solve(
        solver=cp.CLARABEL, tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12
    )
    return x.value, obj.value


@pytest.mark.parametrize("solver_kind", ["pgd", "admm"])
def test_soft_threshold_pnp_solves_lasso(getkey, solver_kind):
    problem, _ = _sensing_problem(getkey())
    lam = 0.05
    if solver_kind == "pgd":
        eta = 1 / float(problem.lipschitz())
        solver = sp.PnPProximalGradient(
            sp.SoftThreshold(lam * eta), step_size=eta, rtol=1e-12, atol=1e-13
        )
    else:
        rho = 1.0
        solver = sp.PnPADMM(
            sp.SoftThreshold(lam / rho), penalty=rho, rtol=1e-12, atol=1e-13
        )
    sol = sciopt.solve(problem, solver, max_steps=20000)
    x_ref, f_ref = _lasso_reference(problem, lam)
    np.testing.assert_allclose(sol.value, x_ref, atol=1e-6)
    # The reported objective is the lasso objective.
    np.testing.assert_allclose(sol.stats["objective"], f_ref, rtol=1e-8)


def test_tv_prox_matches_cvxpy(getkey):
    v = jr.uniform(getkey(), (6, 7))
    lam = 0.2
    x_ours, value = sp.TotalVariation(lam, num_iters=10000)(v), None
    del value
    x = cp.Variable((6, 7))
    dx = cp.vstack([x[1:, :] - x[:-1, :], np.zeros((1, 7))])
    dy = cp.hstack([x[:, 1:] - x[:, :-1], np.zeros((6, 1))])
    tv = cp.sum(
        cp.norm(cp.vstack([cp.vec(dx, order="C"), cp.vec(dy, order="C")]), axis=0)
    )
    # Clarabel stops short of 1e-14 ("optimal_inaccurate" on this SOCP; at 1e-10 it
    # is still 3e-7 off), so its solution is good to about 1e-8. FISTA on the dual
    # converges slowly on the flat plateaus of the solution: 2000 iterations leave
    # 3e-7 there, 10000 reach the cvxpy solution.
    prob = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(x - np.asarray(v)) + lam * tv))
    prob.solve(solver=cp.CLARABEL, tol_gap_abs=1e-14, tol_gap_rel=1e-14, tol_feas=1e-14)
    np.testing.assert_allclose(x_ours, x.value, rtol=0, atol=5e-8)
    _, value = sp.TotalVariation(lam, num_iters=10000).prox_and_value(v)
    np.testing.assert_allclose(value, lam * tv.value, rtol=1e-7)


@pytest.mark.parametrize(
    "make",
    [
        lambda k: sp.blur_operator((1, 6, 6), sigma=1.0),
        lambda k: sp.subsampling_operator(np.arange(36).reshape(6, 6) % 3 == 0),
        lambda k: sp.gaussian_sensing_operator(k, (1, 6, 6), 10),
        lambda k: sp.projection_operator((6, 6), 3),
    ],
)
def test_operator_transpose_is_adjoint(getkey, make):
    op = make(getkey())
    x = jr.normal(getkey(), op.in_structure().shape)
    z = jr.normal(getkey(), op.out_structure().shape)
    lhs = jnp.vdot(op.mv(x), z)
    rhs = jnp.vdot(x, op.transpose().mv(z))
    np.testing.assert_allclose(lhs, rhs, rtol=1e-10)


def test_projection_of_constant_image_counts_pixels():
    op = sp.projection_operator((5, 5), 2)
    out = op.mv(jnp.ones((5, 5)))
    np.testing.assert_allclose(out[0], 5.0)  # angle 0: column sums


def _lpn_blur_problem(key, alpha=0.2):
    k1, k2, k3 = jr.split(key, 3)
    lpn = sp.LearnedProximalNetwork(
        sp.ICNN((1, 5, 5), 16, 2, key=k1, alpha=alpha, beta=5.0)
    )
    op = sp.blur_operator((1, 5, 5), sigma=1.0, size=3)
    x = jr.uniform(k2, (1, 5, 5))
    y = op.mv(x) + 0.05 * jr.normal(k3, (1, 5, 5))
    return lpn, sp.LinearInverseProblem(op, y)


def test_pnp_pgd_with_lpn_decreases_objective(getkey):
    lpn, problem = _lpn_blur_problem(getkey())
    solver = sp.PnPProximalGradient(lpn, rtol=1e-9, atol=1e-10)
    saveat = sciopt.SaveAt(fn=sp.step_stats)
    sol = sciopt.solve(problem, solver, max_steps=64, throw=False, saveat=saveat)
    history = np.asarray(sol.history["objective"])
    k = int(sol.stats["num_steps"])
    # entry 0 is the start (objective unknown), entry j the iterate after step j
    assert k > 5 and np.all(np.isnan(history[k + 1 :])) and np.isnan(history[0])
    obj = history[1 : k + 1]
    np.testing.assert_array_equal(obj[-1], sol.stats["objective"])
    assert np.all(np.isfinite(obj))
    assert np.all(np.diff(obj) <= 1e-10 * np.abs(obj[:-1]))
    assert obj[-1] < obj[0]
    # The reported objective is D(x) + R(x) / eta with R evaluated by inversion.
    x = sol.value
    r = lpn.regularizer(x)
    assert r.result == sciopt.RESULTS.successful
    expected = problem.data_fidelity(x) + r.value / sol.stats["step_size"]
    np.testing.assert_allclose(sol.stats["objective"], expected, rtol=1e-6)


def test_pnp_admm_with_lpn_reaches_fixed_point(getkey):
    lpn, problem = _lpn_blur_problem(getkey())
    solver = sp.PnPADMM(lpn, penalty=2.0, rtol=1e-8, atol=1e-10)
    saveat = sciopt.SaveAt(fn=sp.step_stats)
    sol = sciopt.solve(problem, solver, max_steps=500, saveat=saveat)
    # Stationarity of D(z) + rho R(z), checked without the solver's code:
    # grad R(z) = y* - z with y* the preimage of z found by inverting the LPN (BFGS),
    # grad D(z) = w A^T (A z - b) with A as a matrix.
    z = np.ravel(sol.value)
    a = _matrix(problem.operator).reshape(z.size, z.size)
    grad_d = a.T @ (a @ z - np.ravel(problem.measurement))
    preimage = np.ravel(lpn.regularizer(sol.value).aux["preimage"])
    # Measured 3.4e-8 in norm (||grad D(z)|| = 1.46; the stop is at rtol 1e-8).
    np.testing.assert_allclose(grad_d + 2.0 * (preimage - z), 0, atol=3e-7)
    history = np.asarray(sol.history["objective"])
    k = int(sol.stats["num_steps"])
    assert np.all(np.isfinite(history[1 : k + 1])) and history[k] <= history[1]
    primal = np.asarray(sol.history["primal_residual"])
    np.testing.assert_array_equal(primal[k], sol.stats["primal_residual"])


def test_pnp_implicit_gradient_matches_finite_differences(getkey):
    lpn, problem = _lpn_blur_problem(getkey())
    solver = sp.PnPProximalGradient(lpn, rtol=1e-12, atol=1e-13)
    weights = jr.normal(getkey(), (25,))

    @eqx.filter_jit
    def loss(y):
        p = sp.LinearInverseProblem(problem.operator, y.reshape(1, 5, 5))
        return jnp.vdot(weights, sciopt.solve(p, solver, max_steps=2000).value)

    y = jnp.ravel(problem.measurement)
    grad = jax.grad(loss)(y)
    fd = finite_difference_grad(loss, y, eps=1e-5)
    np.testing.assert_allclose(grad, fd, rtol=1e-4, atol=1e-6)


def _blur_tv_solution(dtype, rtol):
    op = sp.blur_operator((6, 6), sigma=1.0, dtype=dtype)
    y = op.mv(jr.uniform(jr.key(1), (6, 6)).astype(dtype))
    solver = sp.PnPADMM(sp.TotalVariation(0.02), rtol=rtol, atol=0.0)
    return sciopt.solve(sp.LinearInverseProblem(op, y), solver, max_steps=1000)


def test_float32_pnp_matches_float64():
    # The same TV deblurring in float32 (stopped at rtol 1e-6, about 8 float32
    # epsilons) and float64 (rtol 1e-12): measured 3.9e-5 apart (max entry), the
    # objectives 7e-8 apart relative, in 148 float32 steps.
    sol32 = _blur_tv_solution(jnp.float32, 1e-6)
    sol64 = _blur_tv_solution(jnp.float64, 1e-12)
    assert sol32.value.dtype == jnp.float32
    np.testing.assert_allclose(sol32.value, sol64.value, rtol=0, atol=1e-4)
    np.testing.assert_allclose(
        sol32.stats["objective"], sol64.stats["objective"], rtol=1e-6
    )
    assert 135 <= int(sol32.stats["num_steps"]) <= 165


def test_bad_inputs_raise(getkey):
    op = sp.blur_operator((1, 5, 5))
    with pytest.raises(ValueError, match="measurement"):
        sp.LinearInverseProblem(op, jnp.zeros((5, 5)))
    with pytest.raises(ValueError, match="non-finite"):
        sp.LinearInverseProblem(op, jnp.full((1, 5, 5), jnp.nan))
    with pytest.raises(TypeError, match="lineax"):
        sp.LinearInverseProblem(lambda x: x, jnp.zeros(3))
    with pytest.raises(ValueError, match="penalty"):
        sp.PnPADMM(sp.SoftThreshold(0.1), penalty=0.0)
    with pytest.raises(ValueError, match="step_size"):
        sp.PnPProximalGradient(sp.SoftThreshold(0.1), step_size=0.0)
    problem = sp.LinearInverseProblem(op, jnp.zeros((1, 5, 5)))
    with pytest.raises(ValueError, match="y0"):
        sciopt.solve(problem, sp.PnPADMM(sp.SoftThreshold(0.1)), y0=jnp.zeros((5, 5)))
    with pytest.raises(ValueError, match="non-finite"):
        sciopt.solve(
            problem,
            sp.PnPADMM(sp.SoftThreshold(0.1)),
            y0=jnp.full((1, 5, 5), jnp.inf),
        )
    lpn = sp.LearnedProximalNetwork(prox_random_icnn(getkey(), 4))
    with pytest.raises(ValueError, match="shape"):
        sciopt.solve(problem, sp.PnPProximalGradient(lpn))
    with pytest.raises(TypeError, match="AbstractProx"):
        sciopt.solve(problem, sp.PnPProximalGradient(lambda v: v))


def test_identity_denoising_one_step_is_the_prox(getkey):
    y = jr.normal(getkey(), (1, 4, 4))
    op = lx.IdentityLinearOperator(jax.ShapeDtypeStruct(y.shape, y.dtype))
    problem = sp.LinearInverseProblem(op, y)
    solver = sp.PnPProximalGradient(sp.SoftThreshold(0.3), step_size=1.0)
    sol = sciopt.solve(problem, solver, y0=jnp.zeros_like(y), max_steps=3)
    np.testing.assert_allclose(
        sol.value, jnp.sign(y) * jnp.maximum(jnp.abs(y) - 0.3, 0)
    )
    assert int(sol.stats["num_steps"]) == 2  # the second step confirms the fixed point


def test_from_spec_builds_digits_problem():
    specs = sciopt.load_problem_specs()
    digits = [s for s in specs if s.family == "prox" and s.data.get("kind") == "digits"]
    assert digits
    problem = digits[0].build()
    assert isinstance(problem, sp.LinearInverseProblem)
    assert problem.shape == (1, 8, 8)


def test_float32_admm_inner_solve_succeeds():
    # The default conjugate-gradient tolerance follows the dtype: a float64 tolerance
    # would stop float32 ADMM after one step with an inner-solve failure. The float32
    # run then follows the float64 one: 50 steps on the same lasso deblurring are
    # measured 1.7e-5 apart (max entry), about the float32 CG tolerance (1e-5).
    x = jr.uniform(jr.key(2), (1, 8, 8))
    noise = 0.02 * jr.normal(jr.key(3), x.shape)
    values = []
    for dtype in (jnp.float32, jnp.float64):
        op = sp.blur_operator((1, 8, 8), sigma=1.0, dtype=dtype)
        problem = sp.LinearInverseProblem(
            op, op.mv(x.astype(dtype)) + noise.astype(dtype)
        )
        solver = sp.PnPADMM(sp.SoftThreshold(0.01), penalty=1.0, rtol=1e-3)
        sol = sciopt.solve(problem, solver, max_steps=50, throw=False)
        assert sol.result == sciopt.RESULTS.steps_exhausted
        assert sol.value.dtype == dtype
        values.append(np.asarray(sol.value, np.float64))
    np.testing.assert_allclose(values[0], values[1], rtol=0, atol=1e-4)
    # The documented default inner solver (a doubled float64 tolerance moves the
    # iterates by about 1e-10 only, below what a solve-level check resolves).
    for dtype, tol in ((jnp.float32, 1e-5), (jnp.float64, 1e-10)):
        cg = solver._linear_solver(dtype)
        assert isinstance(cg, lx.CG)
        assert (cg.rtol, cg.atol, cg.max_steps) == (tol, tol, 500)


def _identity_problem(b):
    op = lx.IdentityLinearOperator(jax.ShapeDtypeStruct(b.shape, b.dtype))
    return sp.LinearInverseProblem(op, b)


def test_divergence_threshold_is_relative_to_the_data():
    # The documented test: diverged once ||x|| > 1e10 (1 + ||x_0|| + ||A^T y||).
    # Denoising (A = I) with eta = 3 gives x_k - b = (-2)^k (x_0 - b), so with
    # x_0 = 0 the first step past the threshold is known in closed form; a threshold
    # without the ||A^T y|| term (here 1e3) stops ten steps earlier.
    b = jnp.full((4,), 500.0)
    problem = _identity_problem(b)
    nb = float(np.linalg.norm(b))
    k = np.arange(1, 80)
    norms = np.abs(1.0 - (-2.0) ** k) * nb
    expected = int(k[np.argmax(norms > 1e10 * (1 + 0 + nb))])
    solver = sp.PnPProximalGradient(sp.FunctionProx(lambda v: v), step_size=3.0)
    # Stored as a JAX array (documented: new values reuse the compiled solve).
    assert isinstance(solver.step_size, jax.Array)
    sol = sciopt.solve(problem, solver, y0=jnp.zeros(4), max_steps=200, throw=False)
    assert sol.result == sciopt.RESULTS.diverged
    assert int(sol.stats["num_steps"]) == expected  # 44
    # From x_0 = 2 b: x_k = b + (-2)^k b, the threshold 1e10 (1 + 3 ||b||).
    norms = np.abs(1.0 + (-2.0) ** k) * nb
    expected = int(k[np.argmax(norms > 1e10 * (1 + 2 * nb + nb))])
    sol = sciopt.solve(problem, solver, y0=2 * b, max_steps=200, throw=False)
    assert sol.result == sciopt.RESULTS.diverged
    assert int(sol.stats["num_steps"]) == expected
    # Data of norm 1e12 from x_0 = 0 is no divergence: both solvers denoise it
    # (the soft-threshold of b, in one PGD step and to round-off by ADMM).
    big = 1e12 * jnp.array([1.0, -2.0, 0.5, 3.0])
    problem = _identity_problem(big)
    exact = big - 0.3 * jnp.sign(big)
    for solver in (
        sp.PnPProximalGradient(sp.SoftThreshold(0.3), step_size=1.0),
        sp.PnPADMM(sp.SoftThreshold(0.3), penalty=1.0, rtol=1e-14, atol=0.0),
    ):
        sol = sciopt.solve(problem, solver, y0=jnp.zeros(4), max_steps=100)
        np.testing.assert_allclose(sol.value, exact, rtol=1e-12)
