import itertools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import sciopt
import sciopt.relu as sr
from hypothesis import given, strategies as st

from .helpers import finite_difference_grad, jaxpr_shapes, relu_instance
from .test_relu_oracles import (
    check_certificate,
    objective_and_violation,
    problem_reference,
)


TIGHT = sr.ADMM(rtol=1e-8, atol=1e-10)


def _solve(problem, solver=TIGHT, max_steps=60_000, **kwargs):
    return sciopt.solve(problem, solver, max_steps=max_steps, **kwargs)


def _rel(a, b):
    return abs(float(a) - float(b)) / max(abs(float(b)), 1e-12)


# ----------------------------------------------------------------------------------
# Patterns
# ----------------------------------------------------------------------------------


def test_enumerate_patterns_is_every_cell():
    from scipy.optimize import linprog

    rng = np.random.default_rng(0)
    n = 7
    X = rng.standard_normal((n, 2))
    Xb = np.concatenate([X, np.ones((n, 1))], axis=1)
    exact = np.asarray(sr.enumerate_patterns(X, bias=True))

    def is_cell(p):  # an open cell: some h with (2 D - I) X h >= 1 (LP oracle)
        G = (2 * p - 1)[:, None] * Xb
        lp = linprog(np.zeros(3), A_ub=-G, b_ub=-np.ones(n), bounds=[(None, None)] * 3)
        return lp.status == 0

    assert all(is_cell(p) for p in exact.T)
    # in general position a central arrangement of n planes in R^3 has
    # 2 sum_{k<3} binom(n-1, k) cells; one of them is the (dropped) all-zero pattern
    assert is_cell(np.zeros(n))
    cells = 2 * sum(
        len(list(itertools.combinations(range(n - 1), k))) for k in range(3)
    )
    assert exact.shape[1] == cells - 1
    sampled = np.asarray(sr.sample_patterns(jax.random.key(1), X, 20_000, bias=True))
    as_set = lambda p: {tuple(c) for c in p.T.astype(int)}  # noqa: E731
    assert as_set(sampled) <= as_set(exact)


def test_sample_patterns_deduplicates_and_drops_zero(getkey):
    X = np.array([[1.0], [2.0], [-1.0]])
    patterns, directions = sr.sample_patterns(getkey(), X, 50, return_directions=True)
    cols = {tuple(c) for c in np.asarray(patterns).T.astype(int)}
    assert cols == {(1, 1, 0), (0, 0, 1)}
    assert patterns.shape == (3, 2) and directions.shape == (1, 2)
    P = np.asarray(patterns)
    np.testing.assert_array_equal(P, (X @ np.asarray(directions) >= 0).astype(float))
    dup = sr.deduplicate_patterns(np.concatenate([P, P, np.zeros((3, 1))], axis=1))
    assert dup.shape == (3, 2)


def test_cone_matrices():
    X = np.arange(6.0).reshape(3, 2)
    D = np.array([[1.0], [0.0], [1.0]])
    G = sr.cone_matrices(jnp.asarray(X), jnp.asarray(D))
    np.testing.assert_allclose(G[0], (2 * np.diag(D[:, 0]) - np.eye(3)) @ X)


# ----------------------------------------------------------------------------------
# ADMM against cvxpy (Clarabel)
# ----------------------------------------------------------------------------------


@given(
    seed=st.integers(0, 10_000),
    beta=st.floats(0.05, 2.0),
)
def test_admm_squared_matches_cvxpy(seed, beta):
    X, y, patterns = relu_instance(seed)
    problem = sr.ConvexReLUProblem(X, y, patterns, beta)
    # At TIGHT's tolerances some draws need ~95 000 steps (seed 1, beta 0.484).
    sol = _solve(problem, max_steps=200_000)
    assert isinstance(sol.value, sr.ConvexReLUVariables)
    ref = problem_reference(problem)
    # the certified lower bound is below the optimum and tight at convergence
    check_certificate(sol, ref, objective_rtol=1e-5, gap_rtol=1e-5, problem=problem)
    assert float(sol.stats["cone_violation"]) <= 1e-6
    assert float(sol.stats["primal_residual"]) <= 1e-6


# ADMM steps to TIGHT's tolerances on relu_instance(3), beta 0.2 (measured: bce
# 470 / 65 gated, hinge 4142 / 284 gated); a dual step slowed to half (gamma rho /
# 2) takes 693 / 103 on bce
ADMM_STEPS = {
    ("bce", False): 470,
    ("bce", True): 65,
    ("hinge", False): 4142,
    ("hinge", True): 284,
}


@pytest.mark.parametrize("loss", ["bce", "hinge"])
@pytest.mark.parametrize("gated", [False, True])
def test_admm_other_losses_match_cvxpy(loss, gated):
    X, y, patterns = relu_instance(3, loss=loss)
    problem = sr.ConvexReLUProblem(X, y, patterns, 0.2, loss=loss, gated=gated)
    sol = _solve(problem, max_steps=100_000)
    # against cvxpy on the program written out independently (measured: objective
    # within 2e-9, gap 5e-9 relative, cone violation 1.4e-8 on hinge)
    check_certificate(
        sol,
        problem_reference(problem),
        objective_rtol=1e-7,
        gap_rtol=1e-7,
        problem=problem,
    )
    assert float(sol.stats["cone_violation"]) <= 1e-7
    assert int(sol.stats["num_steps"]) <= 1.1 * ADMM_STEPS[loss, gated]


def test_adversarial_matches_cvxpy():
    X, y, patterns = relu_instance(5, n=12, d=2, num_patterns=5, loss="hinge")
    problem = sr.AdversarialReLUProblem(X, y, patterns, 0.1, 0.05, bias=False)
    sol = _solve(problem, max_steps=100_000)
    ref, _ = sr.cvxpy_solve(problem)
    assert _rel(sol.stats["objective"], ref) <= 1e-5
    assert float(sol.stats["cone_violation"]) <= 1e-6
    # eps = 0 recovers the hinge-loss program
    zero = sr.AdversarialReLUProblem(X, y, patterns, 0.1, 0.0)
    hinge = sr.ConvexReLUProblem(X, y, patterns, 0.1, loss="hinge")
    ref0 = problem_reference(hinge)
    assert _rel(sr.cvxpy_solve(zero)[0], ref0) <= 1e-6
    assert float(sol.stats["objective"]) >= ref0 - 1e-6  # robustness costs


@pytest.mark.parametrize("loss", ["squared", "bce"])
def test_relative_stopping_rule_needs_no_atol(loss):
    # the copy u carries no objective, so M^T dual -> 0 at a solution; the dual
    # residual's relative tolerance must use a scale that does not vanish (with the
    # scale ||M^T dual|| alone this solve ran out of 50 000 steps)
    X, y, patterns = relu_instance(4, loss=loss)
    problem = sr.ConvexReLUProblem(X, y, patterns, 0.1, loss=loss)
    sol = _solve(problem, sr.ADMM(rtol=1e-5, atol=0.0), max_steps=5_000)
    ref = problem_reference(problem)
    assert _rel(sol.stats["objective"], ref) <= 1e-5
    assert float(sol.stats["cone_violation"]) <= 1e-5
    # measured: 1057 steps (squared), 2158 (bce); with half the dual step, 1498
    # on squared
    assert int(sol.stats["num_steps"]) <= {"squared": 1160, "bce": 2370}[loss]


def test_linear_solvers_agree():
    X, y, patterns = relu_instance(7, n=20)
    problem = sr.ConvexReLUProblem(X, y, patterns, 0.3)
    values = []
    for method in ["dense", "woodbury", "cg"]:
        # the same iteration: iterates agree whether or not it has converged
        solver = sr.ADMM(linear_solver=method)
        sol = _solve(problem, solver, max_steps=200, throw=False)
        values.append(np.asarray(sol.value.v))
    np.testing.assert_allclose(values[1], values[0], atol=1e-9)
    np.testing.assert_allclose(values[2], values[0], atol=1e-8)
    with pytest.raises(ValueError, match="linear_solver"):
        sr.ADMM(linear_solver="qr")


def test_float32():
    X, y, patterns = relu_instance(2)
    problem = sr.ConvexReLUProblem(
        X.astype(np.float32), y.astype(np.float32), patterns.astype(jnp.float32), 0.5
    )
    sol = _solve(problem, sr.ADMM(rtol=1e-4, atol=1e-5), max_steps=20_000)
    assert sol.value.v.dtype == jnp.float32
    ref = problem_reference(problem)
    assert _rel(sol.stats["objective"], ref) <= 1e-3


def test_vmap_over_beta():
    X, y, patterns = relu_instance(4)

    def objective(beta):
        problem = sr.ConvexReLUProblem(X, y, patterns, beta)
        return _solve(problem, max_steps=20_000).stats["objective"]

    betas = jnp.array([0.1, 0.5])
    batched = jax.vmap(objective)(betas)
    for b, value in zip(betas, batched):
        ref = problem_reference(sr.ConvexReLUProblem(X, y, patterns, float(b)))
        assert _rel(value, ref) <= 1e-5


# ----------------------------------------------------------------------------------
# Recovery and the non-convex problem
# ----------------------------------------------------------------------------------


def test_recovered_network_objective_equals_convex_optimum():
    X, y, patterns = relu_instance(11, bias=True)
    problem = sr.ConvexReLUProblem(X, y, patterns, 0.2, bias=True)
    sol = _solve(problem, sr.ADMM())
    net = sr.to_network(problem, sol)
    assert isinstance(net, eqx.Module) and net.width <= 2 * patterns.shape[1]
    value = sr.nonconvex_objective(net, X, y, 0.2)
    assert _rel(value, sol.stats["objective"]) <= 1e-7
    # predictions of the network equal the convex model's
    np.testing.assert_allclose(
        sr.predict(net, X), problem.predict_groups(sol.value.v), atol=1e-6
    )


def test_adam_never_beats_the_exact_convex_optimum(getkey):
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (10, 1))
    y = np.sin(3 * X[:, 0]) + 0.1 * rng.standard_normal(10)
    beta = 0.05
    patterns = sr.enumerate_patterns(X, bias=True)
    problem = sr.ConvexReLUProblem(X, y, patterns, beta, bias=True)
    sol = _solve(problem)
    optimum = float(sol.stats["objective"])
    ref = problem_reference(problem)
    assert _rel(optimum, ref) <= 1e-5

    def loss(net, batch, key):
        return sr.nonconvex_objective(net, X, y, beta)

    for _ in range(2):
        net = sr.init_network(getkey(), 1, 8, bias=True)
        fitted = sciopt.fit(
            net, loss, key=getkey(), steps=1000, optimiser=optax.adam(1e-2)
        )
        assert float(sr.nonconvex_objective(fitted.model, X, y, beta)) >= optimum * (
            1 - 1e-6
        )


def test_accuracy_helper():
    net = sr.ReLUNetwork(jnp.array([[1.0, 0.0]]), jnp.array([1.0]), False)
    X = jnp.array([[1.0, 0.0], [-1.0, 0.0]])
    assert float(sr.accuracy(net, X, jnp.array([0.0, 0.0]))) == 0.5
    assert float(sr.accuracy(net, X, jnp.array([1.0, -1.0]))) == 1.0


# ----------------------------------------------------------------------------------
# Sampled convex program
# ----------------------------------------------------------------------------------


def test_sampled_convex_program_matches_cvxpy(getkey):
    import cvxpy as cp

    rng = np.random.default_rng(1)
    X = rng.standard_normal((20, 2))
    y = rng.standard_normal(20)
    H = sr.sample_directions(getkey(), 2, 30, bias=True)
    problem = sr.SampledConvexProgram(X, y, H, 0.1, bias=True)
    sol = sciopt.solve(problem, sr.FISTA(), max_steps=50_000)
    Phi = np.asarray(problem.features)
    a = cp.Variable(30)
    ref = cp.Problem(
        cp.Minimize(0.5 * cp.sum_squares(Phi @ a - y) + 0.1 * cp.norm1(a))
    ).solve(solver="CLARABEL", tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10)
    assert _rel(sol.stats["objective"], ref) <= 1e-6
    net = sr.to_network(problem, sol)
    assert _rel(sr.nonconvex_objective(net, X, y, 0.1), ref) <= 1e-6
    # the sampled program upper-bounds the exact convex program
    exact = sr.ConvexReLUProblem(
        X, y, sr.enumerate_patterns(X, bias=True), 0.1, bias=True
    )
    assert float(sol.stats["objective"]) >= problem_reference(exact) - 1e-6


def test_sampled_patterns_equal_exact_in_1d(getkey):
    rng = np.random.default_rng(2)
    X = rng.uniform(-2, 2, (9, 1))
    y = np.abs(X[:, 0]) - 1
    exact = sr.enumerate_patterns(X, bias=True)
    sampled = sr.sample_patterns(getkey(), X, 5000, bias=True)
    assert exact.shape == sampled.shape
    a = _solve(sr.ConvexReLUProblem(X, y, exact, 0.01, bias=True))
    b = _solve(sr.ConvexReLUProblem(X, y, sampled, 0.01, bias=True))
    assert _rel(a.stats["objective"], b.stats["objective"]) <= 1e-6


# ----------------------------------------------------------------------------------
# Gradients through the solve (implicit differentiation of the ADMM fixed point)
# ----------------------------------------------------------------------------------


def test_gradient_wrt_beta_and_data_matches_finite_differences():
    X, y, patterns = relu_instance(1, n=10, d=2, num_patterns=4)
    rng = np.random.default_rng(5)
    Xv, yv = rng.standard_normal((6, 2)), rng.standard_normal(6)

    def validation(beta, X):
        problem = sr.ConvexReLUProblem(X, y, patterns, beta)
        v = _solve(problem, sr.ADMM(rtol=1e-10, atol=1e-12), max_steps=100_000).value.v
        yhat = jnp.sum(
            problem.signed_patterns[:, :6] * (v @ Xv.T), axis=0
        )  # a fixed-pattern validation prediction
        return jnp.sum(jnp.square(yhat - yv))

    beta0, X0 = 0.3, jnp.asarray(X)
    g_beta, g_X = jax.grad(validation, argnums=(0, 1))(beta0, X0)
    fd_beta = finite_difference_grad(lambda b: validation(b[0], X0), np.array([beta0]))
    np.testing.assert_allclose(g_beta, fd_beta[0], rtol=1e-4)
    idx = [0, 13]
    fd_X = finite_difference_grad(
        lambda x: validation(
            beta0, X0.reshape(-1).at[jnp.array(idx)].set(x).reshape(X.shape)
        ),
        np.asarray(X0).reshape(-1)[idx],
    )
    np.testing.assert_allclose(
        np.asarray(g_X).reshape(-1)[idx], fd_X, rtol=1e-4, atol=1e-7
    )


def test_sampled_program_gradient_wrt_beta(getkey):
    rng = np.random.default_rng(3)
    X, y = rng.standard_normal((15, 2)), rng.standard_normal(15)
    H = sr.sample_directions(getkey(), 2, 10)

    def f(beta):
        problem = sr.SampledConvexProgram(X, y, H, beta)
        alpha = sciopt.solve(problem, sr.FISTA(rtol=1e-12), max_steps=50_000).value
        return jnp.sum(jnp.square(problem.features @ alpha))

    g = jax.grad(f)(0.2)
    fd = finite_difference_grad(lambda b: f(b[0]), np.array([0.2]))
    np.testing.assert_allclose(g, fd[0], rtol=1e-4)


# ----------------------------------------------------------------------------------
# Bad input
# ----------------------------------------------------------------------------------


def test_bad_input():
    X, y, patterns = relu_instance(0)
    with pytest.raises(ValueError, match="`y` must have length"):
        sr.ConvexReLUProblem(X, y[:-1], patterns, 0.1)
    with pytest.raises(ValueError, match="`patterns` must have n"):
        sr.ConvexReLUProblem(X, y, patterns[:-1], 0.1)
    with pytest.raises(ValueError, match="`X` must be a 2-D"):
        sr.ConvexReLUProblem(X[:, 0], y, patterns, 0.1)
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="`X` contains non-finite"):
        sr.ConvexReLUProblem(bad, y, patterns, 0.1)
    with pytest.raises(ValueError, match="`y` contains non-finite"):
        sr.ConvexReLUProblem(X, np.full_like(y, np.inf), patterns, 0.1)
    for beta in [0.0, -1.0, np.nan]:
        with pytest.raises(ValueError, match="`beta` must be a positive"):
            sr.ConvexReLUProblem(X, y, patterns, beta)
    with pytest.raises(ValueError, match=r"labels in \{0, 1\}"):
        sr.ConvexReLUProblem(X, y, patterns, 0.1, loss="bce")
    with pytest.raises(ValueError, match=r"labels in \{-1, \+1\}"):
        sr.ConvexReLUProblem(X, y, patterns, 0.1, loss="hinge")
    with pytest.raises(ValueError, match="`loss` must be one of"):
        sr.ConvexReLUProblem(X, y, patterns, 0.1, loss="l1")
    with pytest.raises(ValueError, match="P = 0"):
        sr.ConvexReLUProblem(X, y, patterns[:, :0], 0.1)
    with pytest.raises(ValueError, match="no non-zero column"):
        sr.deduplicate_patterns(np.zeros((16, 3)))
    with pytest.raises(ValueError, match="0/1"):
        sr.ConvexReLUProblem(X, y, 2 * patterns, 0.1)
    with pytest.raises(ValueError, match="`eps` must be"):
        sr.AdversarialReLUProblem(X, np.sign(y), patterns, 0.1, -0.1)
    with pytest.raises(ValueError, match="`directions` must have shape"):
        sr.SampledConvexProgram(X, y, np.ones((2, 4)), 0.1)
    problem = sr.ConvexReLUProblem(X, y, patterns, 0.1)
    with pytest.raises(ValueError, match="`y0.v` must have shape"):
        y0 = problem.default_y0(None)
        sciopt.solve(problem, sr.ADMM(), y0=eqx.tree_at(lambda t: t.v, y0, y0.v[:1]))
    with pytest.raises(TypeError, match="ADMM"):
        sciopt.solve(
            sr.SampledConvexProgram(X, y, np.ones((3, 4)), 0.1),
            sr.ADMM(),
        )


def test_non_convergence_is_reported():
    X, y, patterns = relu_instance(0)
    problem = sr.ConvexReLUProblem(X, y, patterns, 0.1)
    sol = sciopt.solve(problem, sr.ADMM(), max_steps=5, throw=False)
    assert sol.result == sciopt.RESULTS.steps_exhausted
    with pytest.raises(Exception, match="max_steps"):
        sciopt.solve(problem, sr.ADMM(), max_steps=5)


# ----------------------------------------------------------------------------------
# Duality gap
# ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "loss, gated",
    [("squared", False), ("squared", True), ("bce", False), ("hinge", False)],
)
def test_lower_bound_is_valid_at_every_iterate(loss, gated):
    from sciopt.relu._gap import dual_bound

    X, y, patterns = relu_instance(11, loss=loss)
    problem = sr.ConvexReLUProblem(X, y, patterns, 0.2, loss=loss, gated=gated)
    ref = problem_reference(problem)
    solver = sr.ADMM()

    @jax.jit
    def after(num_steps):
        y = problem.default_y0(None)
        state = solver.init(problem, y, None, {})

        def body(_, carry):
            return solver.step(problem, carry[0], None, {}, carry[1])[:2]

        y, _ = jax.lax.fori_loop(0, num_steps, body, (y, state))
        return y.v, dual_bound(problem, y.v, y.dual_s, y.dual_p)

    for num_steps in (0, 1, 10, 100, 3000):
        v, (objective, bound, violation) = after(num_steps)
        assert float(bound) <= ref + 1e-8 * abs(ref), num_steps
        assert float(objective) >= ref - 1e-8 * abs(ref) or float(violation) > 0
        # the objective and relative cone violation, recomputed from v
        mine, worst = objective_and_violation(problem, v)
        assert float(objective) == pytest.approx(mine, rel=1e-10)
        scale = float(jnp.max(jnp.abs(v @ problem.X.T)))
        assert float(violation) == pytest.approx(worst / max(scale, 1e-300), abs=1e-12)
    # it closes in as ADMM converges: measured relative gaps ref - bound after 3000
    # steps 1e-12 (squared), 6.5e-14 (gated), 2.9e-12 (bce), 6.7e-4 (hinge, whose
    # ADMM converges slowest)
    closes = {"squared": 1e-9, "bce": 1e-9, "hinge": 2e-3}[loss]
    assert float(bound) >= ref - closes * abs(ref)


def test_gap_rule_stops_with_a_certified_objective():
    X, y, patterns = relu_instance(12, n=40, d=4, num_patterns=10)
    problem = sr.ConvexReLUProblem(X, y, patterns, 0.05)
    ref = problem_reference(problem)
    solver = sr.ADMM(rtol=0.0, atol=0.0, gap_rtol=1e-4, gap_check_every=10)
    sol = _solve(problem, solver, max_steps=50_000)
    steps = int(sol.stats["num_steps"])
    assert steps % 10 == 0  # the rule fired (checked every 10)
    assert steps <= 2_300  # measured 2130 (2500 with half the dual step)
    objective = float(sol.stats["objective"])
    assert float(sol.stats["duality_gap"]) <= 1e-4 * objective
    assert objective - ref <= 1e-4 * ref
    viol = float(sol.stats["cone_violation"])
    assert viol <= 1e-4 * float(jnp.max(jnp.abs(sol.value.v @ problem.X.T)))
    # a looser target stops no later
    loose = _solve(problem, eqx.tree_at(lambda s: s.gap_rtol, solver, 1e-2))
    assert int(loose.stats["num_steps"]) <= 960  # measured 880
    assert float(loose.stats["objective"]) - ref <= float(loose.stats["duality_gap"])
    # gated ReLU: no cones, so no violation (0 at every check); the gap alone decides
    # (measured: 70 steps, relative gap 4.0e-5, objective within 2e-13 of cvxpy)
    gated = sr.ConvexReLUProblem(X, y, patterns, 0.05, gated=True)
    sol = _solve(gated, solver, max_steps=50_000)
    check_certificate(sol, problem_reference(gated), objective_rtol=1e-4, gap_rtol=1e-4)
    assert int(sol.stats["num_steps"]) <= 80


def test_gap_rule_settings_are_validated():
    with pytest.raises(ValueError, match="`gap_rtol`"):
        sr.ADMM(gap_rtol=0.0)
    with pytest.raises(ValueError, match="`gap_check_every`"):
        sr.ADMM(gap_check_every=0)
    X, y, patterns = relu_instance(5, n=12, d=2, num_patterns=5, loss="hinge")
    problem = sr.AdversarialReLUProblem(X, y, patterns, 0.1, 0.05)
    with pytest.raises(ValueError, match="ConvexReLUProblem only"):
        sciopt.solve(problem, sr.ADMM(gap_rtol=1e-4))


# ----------------------------------------------------------------------------------
# Solver internals and settings
# ----------------------------------------------------------------------------------


@pytest.mark.parametrize("gated", [False, True])
def test_carried_products_equal_recomputed(gated):
    # the step carries M^T z and M^T dual instead of recomputing them
    from sciopt.relu._admm import _products

    X, y, patterns = relu_instance(8, n=20)
    problem = sr.ConvexReLUProblem(X, y, patterns, 0.3, gated=gated)
    sol = sciopt.solve(problem, sr.ADMM(), max_steps=37, throw=False)
    factors = sol.state.factors
    Mz, My = _products(problem, factors["w"], factors["wp"], sol.value)
    np.testing.assert_allclose(sol.state.Mz, Mz, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(sol.state.My, My, rtol=1e-10, atol=1e-10)
    # and both against M^T z written out from the splits u = v (weight w),
    # L u = p (L u = sum_j s_j D_j X u_j, weight wp) and G_j u_j = (2 D_j - I) X u_j
    # = s_j, in NumPy
    Xn, Dn = np.asarray(problem.X), np.asarray(problem.patterns).T
    P = Dn.shape[0]
    signed = np.concatenate([Dn, -Dn])  # (2P, n)
    cones = np.concatenate([2 * Dn - 1, 2 * Dn - 1])

    def mt(w, wp, zv, zs, zp):
        out = w * np.asarray(zv) + (signed * (wp * np.asarray(zp))) @ Xn
        return out if gated else out + (cones * np.asarray(zs)) @ Xn

    w, wp = float(factors["w"]), float(factors["wp"])
    y = sol.value
    assert y.v.shape[0] == 2 * P
    np.testing.assert_allclose(
        sol.state.Mz, mt(w, wp, y.v, y.s, y.p), rtol=1e-10, atol=1e-10
    )
    np.testing.assert_allclose(
        sol.state.My, mt(1.0, 1.0, y.dual_v, y.dual_s, y.dual_p), rtol=1e-10, atol=1e-10
    )


def test_auto_linear_solver_choice(monkeypatch):
    from sciopt.relu import _linear

    rng = np.random.default_rng(0)

    def problem(n, d, P):
        X = rng.standard_normal((n, d))
        patterns = np.zeros((n, P))
        patterns[np.arange(n), np.arange(n) % P] = 1.0
        return sr.ConvexReLUProblem(X, rng.standard_normal(n), patterns, 0.1)

    assert _linear.resolve_method("auto", problem(40, 2, 5)) == "dense"  # 2dP = 20
    assert _linear.resolve_method("auto", problem(40, 4, 10)) == "woodbury"  # 80
    # Beyond the largest factorization: matrix-free.
    monkeypatch.setattr(_linear, "MAX_FACTOR", 30)
    assert _linear.resolve_method("auto", problem(40, 4, 10)) == "nystrom"
    assert _linear.resolve_method("dense", problem(40, 4, 10)) == "dense"


def test_admm_settings_are_validated():
    with pytest.raises(ValueError, match="`relaxation`"):
        sr.ADMM(relaxation=2.0)
    with pytest.raises(ValueError, match="`rho_balance`"):
        sr.ADMM(rho_balance=1.0)
    with pytest.raises(ValueError, match="`rho`"):
        sr.ADMM(rho=0.0)


# ----------------------------------------------------------------------------------
# Interior-point method
# ----------------------------------------------------------------------------------


@given(seed=st.integers(0, 10_000), beta=st.floats(0.05, 2.0))
def test_interior_point_squared_matches_cvxpy(seed, beta):
    X, y, patterns = relu_instance(seed)
    problem = sr.ConvexReLUProblem(X, y, patterns, beta)
    sol = _solve(problem, sr.InteriorPoint(), max_steps=500)
    assert isinstance(sol.value, sr.ConvexReLUVariables)  # the type ADMM returns
    ref = problem_reference(problem)
    # the stopping rule: gap <= 1e-6 |objective| (default rtol)
    check_certificate(sol, ref, objective_rtol=2e-6, gap_rtol=2e-6, problem=problem)
    assert float(sol.stats["cone_violation"]) <= 1e-12  # strictly feasible (rounding)


def test_interior_point_bce_with_bias_matches_cvxpy():
    X, y, patterns = relu_instance(3, n=30, d=3, num_patterns=8, loss="bce", bias=True)
    problem = sr.ConvexReLUProblem(X, y, patterns, 0.2, loss="bce", bias=True)
    sol = _solve(problem, sr.InteriorPoint(), max_steps=500)
    ref = problem_reference(problem)
    # default rtol 1e-6 on the certified gap (measured 2e-7 here)
    check_certificate(sol, ref, objective_rtol=1e-6, gap_rtol=1e-6, problem=problem)
    assert sol.value.v.shape == (16, 4)
    assert int(sol.stats["num_steps"]) <= 12  # measured 11


@pytest.mark.parametrize("loss", ["squared", "bce"])
def test_interior_point_centrality_correctors(loss):
    # with and without correctors: the same certified optimum, in fewer steps with
    # them (measured: 19 against 22 steps for squared, 18 against 22 for bce; the
    # bounds below are one step above)
    X, y, patterns = relu_instance(8, n=150, d=5, num_patterns=20, loss=loss)
    problem = sr.ConvexReLUProblem(X, y, patterns, 0.1, loss=loss)
    ref = problem_reference(problem)
    steps = {}
    for k in (0, 2):
        sol = _solve(problem, sr.InteriorPoint(centrality_correctors=k), max_steps=500)
        assert _rel(sol.stats["objective"], ref) <= 1e-5
        assert float(sol.stats["duality_gap"]) <= 1e-6 * abs(ref)
        steps[k] = int(sol.stats["num_steps"])
    assert steps[2] < steps[0]
    assert steps[0] <= 23 and steps[2] <= {"squared": 20, "bce": 19}[loss]
    with pytest.raises(ValueError, match="centrality_correctors"):
        sr.InteriorPoint(centrality_correctors=-1)


# the refinement itself is checked fast (refinement_steps=0) by
# test_interior_point_newton_solve_is_the_dense_solve; the floor it lowers is
# measured here on the squared loss, the cross-entropy case in the slow run
@pytest.mark.parametrize("linear_solver", ["woodbury", "dense"])
@pytest.mark.parametrize(
    "loss", ["squared", pytest.param("bce", marks=pytest.mark.slow)]
)
def test_interior_point_refinement_lowers_the_certificate_floor(loss, linear_solver):
    # late in a solve Newton's matrix is ill-conditioned and the factored solve
    # loses the dual residual; the certified gap then stops improving. Iterative
    # refinement (its default: 2 steps for Woodbury, 5 for dense) lowers that floor
    # (measured within 45 steps, relative floor without -> with: Woodbury 8.9e-9
    # -> 3.1e-10 squared, 9.3e-9 -> 1.8e-10 bce; dense 5.0e-8 -> 1.6e-10 squared,
    # 1.5e-8 -> 2.1e-11 bce)
    X, y, patterns = relu_instance(8, n=150, d=5, num_patterns=20, loss=loss)
    problem = sr.ConvexReLUProblem(X, y, patterns, 0.1, loss=loss)
    floors = {}
    for k in (0, None):
        solver = sr.InteriorPoint(
            rtol=1e-14, atol=0.0, refinement_steps=k, linear_solver=linear_solver
        )
        sol = _solve(problem, solver, max_steps=45, throw=False)
        floors[k] = float(sol.stats["duality_gap"]) / float(sol.stats["objective"])
    assert floors[None] <= 1e-9
    assert floors[None] <= 0.1 * floors[0]
    with pytest.raises(ValueError, match="refinement_steps"):
        sr.InteriorPoint(refinement_steps=-1)


@pytest.mark.parametrize("linear_solver", ["woodbury", "dense"])
def test_interior_point_refines_as_the_gap_closes(linear_solver, monkeypatch):
    """Refinement's goal follows the certified gap (an inexact Newton direction):
    fewer Newton solves than refining to rounding level every step, and the same
    steps to the same certified optimum."""
    from sciopt.relu import _interior_point as ipm

    X, y, patterns = relu_instance(8, n=150, d=5, num_patterns=20)
    problem = sr.ConvexReLUProblem(X, y, patterns, 0.1)
    solves = [0]
    method = "_dense_solve" if linear_solver == "dense" else "_woodbury_solve"
    original = getattr(ipm.InteriorPoint, method)

    def counted(self, *args):
        rows, solve = original(self, *args)

        def counted_solve(rhs):
            jax.debug.callback(lambda: solves.__setitem__(0, solves[0] + 1))
            return solve(rhs)

        return rows, counted_solve

    monkeypatch.setattr(ipm.InteriorPoint, method, counted)
    goals = {
        "rounding": (0.0, 0.0),  # the goal 100 eps ||rhs|| at every step
        "gap": (ipm.REFINEMENT_GAP_FRACTION, ipm.REFINEMENT_LOOSEST),
    }
    out = {}
    for rule, (fraction, loosest) in goals.items():
        monkeypatch.setattr(ipm, "REFINEMENT_GAP_FRACTION", fraction)
        monkeypatch.setattr(ipm, "REFINEMENT_LOOSEST", loosest)
        jax.clear_caches()  # the goal is traced into the compiled loop
        solves[0] = 0
        solver = sr.InteriorPoint(linear_solver=linear_solver)
        sol = _solve(problem, solver, max_steps=200)
        out[rule] = (sol, solves[0])
    (loose, loose_solves), (tight, tight_solves) = out["gap"], out["rounding"]
    assert int(loose.stats["num_steps"]) == int(tight.stats["num_steps"])
    assert _rel(loose.stats["objective"], tight.stats["objective"]) <= 1e-10
    gap = float(loose.stats["duality_gap"]) / float(loose.stats["objective"])
    assert gap <= 1e-6
    assert 0 < loose_solves < 0.8 * tight_solves


@pytest.mark.parametrize("gap", [None, 1.0])
@pytest.mark.parametrize("linear_solver", ["woodbury", "dense"])
def test_interior_point_newton_solve_is_the_dense_solve(
    linear_solver, gap, monkeypatch
):
    """The Woodbury / QR solve and the chunked dense solve against Newton's matrix
    formed in NumPy; with a large certified gap (`gap=1.0`) the group blocks of the
    chunked path are formed and factored by Cholesky instead of QR."""
    from sciopt.relu import _interior_point, _soc
    from sciopt.relu._interior_point import _group_point, _loss_derivatives

    # n = 150 rows read in three chunks of 64 (the last one padded), for the
    # blocks' QR too
    monkeypatch.setattr(_interior_point, "CHUNK_NUMBERS", 1)
    monkeypatch.setattr(_interior_point, "QR_CHUNK_NUMBERS", 1)
    X, y, patterns = relu_instance(8, n=150, d=3, num_patterns=4, loss="bce")
    problem = sr.ConvexReLUProblem(X, y, patterns, 0.3, loss="bce")
    solver = sr.InteriorPoint(linear_solver=linear_solver, refinement_steps=0)
    state = solver.init(problem, None, None, {})
    for _ in range(3):  # away from the start
        _, state, _ = solver.step(problem, None, None, {}, state)
    u, tau, z_cone, z_group = state.u, state.tau, state.z_cone, state.z_group
    s_cone = problem.cone_signs * (u @ problem.X.T)
    _, W_inv = _soc.nesterov_todd(_group_point(u, tau), z_group)
    yhat = problem.predict_groups(u)
    _, curvature = _loss_derivatives("bce", yhat, problem.y)
    gap = None if gap is None else jnp.asarray(gap)
    solve = solver._factor(problem, s_cone, z_cone, W_inv, curvature, None, gap)

    G, n, d = u.shape[0], X.shape[0], X.shape[1]
    Xj = np.asarray(problem.X)
    F = np.zeros((n, G, d + 1))
    F[:, :, :d] = np.asarray(problem.signed_patterns).T[:, :, None] * Xj[:, None, :]
    F = F.reshape(n, -1)
    H = F.T @ np.diag(np.asarray(curvature)) @ F
    order = np.r_[1 : d + 1, 0]  # (tau, u) -> (u, tau)
    for g in range(G):
        block = np.zeros((d + 1, d + 1))
        block[:d, :d] = Xj.T @ np.diag(np.asarray(z_cone / s_cone)[g]) @ Xj
        Wi = np.asarray(W_inv[g])[np.ix_(order, order)]
        block += Wi @ Wi
        H[g * (d + 1) : (g + 1) * (d + 1), g * (d + 1) : (g + 1) * (d + 1)] += block
    rhs = np.random.default_rng(0).standard_normal((G, d + 1))
    dense = np.linalg.solve(H, rhs.reshape(-1)).reshape(G, d + 1)
    np.testing.assert_allclose(solve(jnp.asarray(rhs)), dense, rtol=1e-8, atol=1e-10)


def test_interior_point_formed_blocks_keep_the_iterates(monkeypatch):
    """With many samples (row chunks) the group blocks are formed and factored by
    Cholesky while they are well conditioned, by QR after: the same steps to the
    same certified optimum as QR throughout."""
    from sciopt.relu import _interior_point

    monkeypatch.setattr(_interior_point, "CHUNK_NUMBERS", 1)
    monkeypatch.setattr(_interior_point, "QR_CHUNK_NUMBERS", 1)
    X, y, patterns = relu_instance(5, n=400, d=3, num_patterns=6)
    problem = sr.ConvexReLUProblem(X, y, patterns, 0.1)
    out = {}
    for threshold in (np.inf, _interior_point.GRAM_BLOCKS_GAP):  # QR, then formed
        monkeypatch.setattr(_interior_point, "GRAM_BLOCKS_GAP", threshold)
        jax.clear_caches()  # the threshold is traced into the compiled loop
        out[threshold] = _solve(problem, sr.InteriorPoint(), max_steps=200)
    qr, formed = out.values()
    assert int(formed.stats["num_steps"]) == int(qr.stats["num_steps"])
    assert _rel(formed.stats["objective"], qr.stats["objective"]) <= 1e-10
    assert float(formed.stats["duality_gap"]) <= 1e-6 * float(formed.stats["objective"])


def test_interior_point_dense_newton_matrix_matches_cvxpy():
    """Many samples, few patterns (n = 400 > 2 P (d + 1) = 48): "auto" forms Newton's
    matrix at its own side; the solve is certified against cvxpy, agrees with the
    Woodbury path, and its step holds nothing of two dimensions n (the Woodbury
    step holds the n x n core)."""
    X, y, patterns = relu_instance(5, n=400, d=3, num_patterns=6)
    problem = sr.ConvexReLUProblem(X, y, patterns, 0.1)
    assert sr.InteriorPoint()._linear_solver(problem) == "dense"
    # the flop rule: the n x n core when n is well below P d, forced either way
    Xs, ys, ps = relu_instance(5, n=30, d=10, num_patterns=40)
    small = sr.ConvexReLUProblem(Xs, ys, ps, 0.1)
    assert small.num_patterns * Xs.shape[1] > 10 * Xs.shape[0]
    assert sr.InteriorPoint()._linear_solver(small) == "woodbury"
    forced = sr.InteriorPoint(linear_solver="woodbury")
    assert forced._linear_solver(problem) == "woodbury"
    ref = problem_reference(problem)
    sol = _solve(problem, sr.InteriorPoint(), max_steps=500)
    check_certificate(sol, ref, objective_rtol=2e-6, gap_rtol=2e-6, problem=problem)
    assert float(sol.stats["cone_violation"]) <= 1e-12
    woodbury = _solve(problem, sr.InteriorPoint(linear_solver="woodbury"), 500)
    assert _rel(sol.stats["objective"], woodbury.stats["objective"]) <= 1e-6

    def largest_square(linear_solver):
        solver = sr.InteriorPoint(linear_solver=linear_solver)
        state = solver.init(problem, None, None, {})
        jaxpr = jax.make_jaxpr(lambda s: solver.step(problem, None, None, {}, s))(state)
        return max(sum(1 for k in s if k >= 400) for s in jaxpr_shapes(jaxpr.jaxpr))

    assert largest_square("dense") == 1
    assert largest_square("woodbury") == 2


def test_interior_point_step_memory_is_a_few_constraint_arrays():
    """At many samples a step's memory is its (2P, n) constraint arrays: XLA's own
    accounting of the compiled dense step (no run) holds at most 12 of them in
    temporaries (10 on jax 0.10's CPU backend; 18 before the orthant's directions
    were recomputed from du instead of carried, and before -s, -z, s z and the
    scalings sqrt(z / s), sqrt(s z) stopped being arrays of their own)."""
    n, d, P = 20_000, 3, 10
    X, y, patterns = relu_instance(0, n=n, d=d, num_patterns=P)
    problem = sr.ConvexReLUProblem(X, y, patterns, 0.1)
    solver = sr.InteriorPoint(linear_solver="dense")
    state = jax.eval_shape(lambda p: solver.init(p, None, None, {}), problem)
    step = jax.jit(lambda p, s: solver.step(p, None, None, {}, s)[1])
    memory = step.lower(problem, state).compile().memory_analysis()
    if memory is None:
        pytest.skip("this backend reports no memory analysis")
    constraint_array = 2 * P * n * X.dtype.itemsize
    assert memory.temp_size_in_bytes <= 12 * constraint_array


def test_phase_one_weighted_grams_in_row_chunks(monkeypatch):
    """Phase one's per-pattern Hessians sum_k w_pk x_k x_k^T over row chunks (16
    chunks of 64 rows, the last one padded) against the one-shot einsum."""
    from sciopt.relu import _interior_point

    rng = np.random.default_rng(0)
    w = jnp.asarray(rng.random((3, 1001)))
    X = jnp.asarray(rng.standard_normal((1001, 4)))
    whole = np.einsum("pn,nd,ne->pde", w, X, X)
    np.testing.assert_allclose(_interior_point._weighted_grams(w, X), whole)
    monkeypatch.setattr(_interior_point, "CHUNK_NUMBERS", 1)
    chunked = _interior_point._weighted_grams(w, X)
    np.testing.assert_allclose(chunked, whole, rtol=1e-12, atol=1e-10)


def test_interior_point_tsqr_factor():
    """The one-level TSQR of tall stacks (row chunks) against the Gram matrix."""
    from sciopt.relu._interior_point import _triangular_factor

    rng = np.random.default_rng(3)
    stacked = rng.standard_normal((3, 1101, 6))  # 1101 rows: 4 chunks, 3 padded
    R = np.asarray(_triangular_factor(jnp.asarray(stacked)))
    np.testing.assert_array_equal(np.tril(R, -1), 0.0)
    gram = np.einsum("gmi,gmj->gij", stacked, stacked)
    np.testing.assert_allclose(np.swapaxes(R, 1, 2) @ R, gram, rtol=1e-12, atol=1e-9)


def test_second_order_cone_algebra():
    from sciopt.relu import _soc

    rng = np.random.default_rng(1)

    def interior(k):
        tail = rng.standard_normal((5, k - 1))
        head = np.linalg.norm(tail, axis=1, keepdims=True) + rng.uniform(0.1, 1, (5, 1))
        return jnp.asarray(np.concatenate([head, tail], axis=1))

    s, z, r = interior(4), interior(4), jnp.asarray(rng.standard_normal((5, 4)))
    W, W_inv = _soc.nesterov_todd(s, z)
    apply = lambda M, x: jnp.einsum("gij,gj->gi", M, x)  # noqa: E731
    np.testing.assert_allclose(apply(W, z), apply(W_inv, s), atol=1e-12)
    np.testing.assert_allclose(
        W @ W_inv, np.broadcast_to(np.eye(4), (5, 4, 4)), atol=1e-12
    )
    np.testing.assert_allclose(_soc.product(s, _soc.divide(s, r)), r, atol=1e-12)
    half = _soc.power(s, 0.5)
    np.testing.assert_allclose(_soc.product(half, half), s, atol=1e-12)
    Q = _soc.quadratic_representation(half)
    np.testing.assert_allclose(Q @ Q, _soc.quadratic_representation(s), atol=1e-12)
    dx = jnp.asarray(rng.standard_normal((5, 4)))
    a = _soc.max_step(s, dx)  # the first cone hit is on its boundary
    edge = s + a * dx
    assert float(jnp.min(_soc.det(edge))) == pytest.approx(0.0, abs=1e-10)
    assert bool(jnp.all(_soc.det(s + 0.999 * a * dx) > 0))
    assert (
        float(_soc.orthant_max_step(jnp.array([1.0, 2.0]), jnp.array([-2.0, 1.0])))
        == 0.5
    )


def test_interior_point_gradient_matches_finite_differences():
    """Implicit gradient through InteriorPoint's solution against central differences
    of the validation loss at tightly converged solutions (ADMM at rtol 1e-10: an
    interior-point solution's error, ~1e-6 in v at a 1e-11 gap, would swamp the
    differences)."""
    X, y, patterns = relu_instance(1, n=10, d=2, num_patterns=4)
    rng = np.random.default_rng(5)
    Xv, yv = rng.standard_normal((6, 2)), rng.standard_normal(6)

    def validation(beta, solver, max_steps):
        problem = sr.ConvexReLUProblem(X, y, patterns, beta)
        v = sciopt.solve(problem, solver, max_steps=max_steps, throw=False).value.v
        yhat = jnp.sum(problem.signed_patterns[:, :6] * (v @ Xv.T), axis=0)
        return jnp.sum(jnp.square(yhat - yv))

    beta0 = 0.3
    g = jax.grad(validation)(beta0, sr.InteriorPoint(rtol=1e-10), 500)
    tight = sr.ADMM(rtol=1e-10, atol=1e-12)
    fd = finite_difference_grad(
        lambda b: validation(b[0], tight, 100_000), np.array([beta0])
    )
    np.testing.assert_allclose(g, fd[0], rtol=1e-5)


def test_interior_point_vmap_and_float32():
    X, y, patterns = relu_instance(4)

    def objective(beta):
        problem = sr.ConvexReLUProblem(X, y, patterns, beta)
        return _solve(problem, sr.InteriorPoint(), max_steps=500).stats["objective"]

    betas = jnp.array([0.1, 0.5])
    for b, value in zip(betas, jax.vmap(objective)(betas)):
        ref = problem_reference(sr.ConvexReLUProblem(X, y, patterns, float(b)))
        assert _rel(value, ref) <= 1e-5
    # float32: strictly feasible, within the precision's reach (measured 5.6e-5 here)
    f32 = sr.ConvexReLUProblem(
        X.astype(np.float32), y.astype(np.float32), patterns.astype(jnp.float32), 0.5
    )
    sol = sciopt.solve(f32, sr.InteriorPoint(), max_steps=500, throw=False)
    assert sol.value.v.dtype == jnp.float32
    assert sol.result in (sciopt.RESULTS.successful, sciopt.RESULTS.newton_stalled)
    ref = problem_reference(f32)
    assert _rel(sol.stats["objective"], ref) <= 1e-3
    assert float(sol.stats["cone_violation"]) <= 1e-6


def test_interior_point_bad_input(monkeypatch):
    X, y, patterns = relu_instance(0)
    with pytest.raises(ValueError, match="smooth loss"):
        sciopt.solve(
            sr.ConvexReLUProblem(X, np.sign(y), patterns, 0.1, loss="hinge"),
            sr.InteriorPoint(),
        )
    with pytest.raises(ValueError, match="gated=False"):
        sciopt.solve(
            sr.ConvexReLUProblem(X, y, patterns, 0.1, gated=True), sr.InteriorPoint()
        )
    with pytest.raises(TypeError, match="AdversarialReLUProblem"):
        sciopt.solve(
            sr.AdversarialReLUProblem(X, np.sign(y), patterns, 0.1, 0.05),
            sr.InteriorPoint(),
        )
    from sciopt.relu import _interior_point

    monkeypatch.setattr(_interior_point, "MAX_FACTOR", 8)
    with pytest.raises(ValueError, match="side 16 every step"):
        sciopt.solve(
            sr.ConvexReLUProblem(X, y, patterns, 0.1),
            sr.InteriorPoint(linear_solver="woodbury"),
        )
    with pytest.raises(ValueError, match=r"side 18 every step.*P d = 18"):
        sciopt.solve(
            sr.ConvexReLUProblem(X, y, patterns, 0.1),
            sr.InteriorPoint(linear_solver="dense"),
        )
    monkeypatch.undo()
    for kwargs, match in [
        ({"linear_solver": "cholesky"}, "linear_solver"),
        ({"rtol": 0.0}, "rtol"),
        ({"step_fraction": 1.0}, "step_fraction"),
        ({"phase_one_steps": 0}, "phase_one_steps"),
    ]:
        with pytest.raises(ValueError, match=match):
            sr.InteriorPoint(**kwargs)
    # a cone with an empty interior: two equal samples on opposite sides
    Xd = np.concatenate([X[:1], X], axis=0)
    yd = np.concatenate([y[:1], y])
    first = np.asarray(patterns[:1])
    pd = np.concatenate([1 - first, np.asarray(patterns)], axis=0)
    problem = sr.ConvexReLUProblem(Xd, yd, pd, 0.1)
    sol = sciopt.solve(problem, sr.InteriorPoint(), max_steps=50, throw=False)
    assert sol.result == sciopt.RESULTS.empty_cone_interior
    with pytest.raises(Exception, match="interior is empty"):
        sciopt.solve(problem, sr.InteriorPoint(), max_steps=50)


# ----------------------------------------------------------------------------------
# Loss proximal operators (optimistix bisection, implicit derivatives)
# ----------------------------------------------------------------------------------


def _central_difference(fn, x, h=1e-6):
    return (fn(x + h) - fn(x - h)) / (2 * h)


@pytest.mark.parametrize("label", [0.0, 1.0])
def test_bce_prox_matches_brentq_and_finite_differences(label):
    from sciopt.relu._losses import loss_prox
    from scipy.optimize import brentq

    p0 = np.array([-3.0, -0.4, 0.0, 0.7, 5.0])
    rho = 0.8
    y = np.full_like(p0, label)
    got = np.asarray(loss_prox("bce", jnp.asarray(p0), jnp.asarray(y), rho))

    def reference(p0, rho):  # stationarity of softplus(-s p) + rho/2 (p - p0)^2
        s = 2 * label - 1

        def grad(p):
            return -s / (1 + np.exp(s * p)) + rho * (p - p0)

        return brentq(grad, p0 - 2 / rho - 1, p0 + 2 / rho + 1, xtol=1e-14)

    np.testing.assert_allclose(got, [reference(a, rho) for a in p0], atol=1e-12)

    def one(a, r):
        return loss_prox("bce", a, jnp.asarray(label), r)

    d_p0 = jax.vmap(jax.grad(one), in_axes=(0, None))(jnp.asarray(p0), rho)
    d_rho = jax.vmap(jax.grad(one, argnums=1), in_axes=(0, None))(
        jnp.asarray(p0), jnp.asarray(rho)
    )
    for i, a in enumerate(p0):
        fd_p0 = _central_difference(lambda t: reference(t, rho), a)
        fd_rho = _central_difference(lambda t: reference(a, t), rho)
        np.testing.assert_allclose(d_p0[i], fd_p0, rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(d_rho[i], fd_rho, rtol=1e-6, atol=1e-8)


def _robust_hinge_prox_cvxpy(q0, x, y, eps, rho):
    import cvxpy as cp

    q = cp.Variable(len(q0))
    hinge = cp.pos(1 - y * (x @ q) + eps @ cp.abs(q))
    cp.Problem(cp.Minimize(hinge + rho / 2 * cp.sum_squares(q - q0))).solve(
        solver=cp.CLARABEL, tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12
    )
    return q.value


@pytest.mark.parametrize(
    "q0",
    [
        [0.3, -0.2, 0.1],  # multiplier inside (0, 1/rho)
        [2.0, -1.5, 0.5],  # margin met: q = q0 (multiplier 0)
        [-2.0, 1.0, 0.0],  # full step: multiplier 1/rho
    ],
)
def test_robust_hinge_prox_matches_cvxpy_and_finite_differences(q0):
    from sciopt.relu._losses import robust_hinge_prox

    q0 = np.array(q0)
    x, y, eps, rho = np.array([1.0, -0.5, 2.0]), 1.0, np.array([0.1, 0.2, 0.05]), 1.5
    got = np.asarray(
        robust_hinge_prox(jnp.asarray(q0), jnp.asarray(x), y, jnp.asarray(eps), rho)
    )
    np.testing.assert_allclose(
        got, _robust_hinge_prox_cvxpy(q0, x, y, eps, rho), atol=1e-6
    )

    def f(q0, rho):
        return jnp.sum(
            jnp.sin(robust_hinge_prox(q0, jnp.asarray(x), y, jnp.asarray(eps), rho))
        )

    grad_q0, grad_rho = jax.grad(f, argnums=(0, 1))(jnp.asarray(q0), jnp.asarray(rho))
    np.testing.assert_allclose(
        grad_q0, finite_difference_grad(lambda v: f(v, rho), q0), atol=1e-6
    )
    fd_rho = _central_difference(lambda r: float(f(jnp.asarray(q0), r)), rho)
    np.testing.assert_allclose(grad_rho, fd_rho, atol=1e-6)


def test_robust_cone_projection_matches_cvxpy_and_finite_differences():
    import cvxpy as cp
    from sciopt.relu._losses import robust_cone_projection

    s0 = np.array([0.2, -0.5, 1.0, -0.1])
    t0 = np.array([0.8, -1.2, 0.3])
    eps = np.array([0.5, 0.3, 0.0])
    s, t = robust_cone_projection(jnp.asarray(s0), jnp.asarray(t0), jnp.asarray(eps))

    sv, tv = cp.Variable(4), cp.Variable(3)
    cons = [sv >= eps @ cp.abs(tv)]
    cp.Problem(
        cp.Minimize(cp.sum_squares(sv - s0) + cp.sum_squares(tv - t0)), cons
    ).solve(solver=cp.CLARABEL, tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12)
    np.testing.assert_allclose(s, sv.value, atol=1e-6)
    np.testing.assert_allclose(t, tv.value, atol=1e-6)

    def f(s0, t0):
        s, t = robust_cone_projection(s0, t0, jnp.asarray(eps))
        return jnp.sum(jnp.sin(s)) + jnp.sum(jnp.cos(t))

    gs, gt = jax.grad(f, argnums=(0, 1))(jnp.asarray(s0), jnp.asarray(t0))
    np.testing.assert_allclose(
        gs, finite_difference_grad(lambda v: f(v, jnp.asarray(t0)), s0), atol=1e-6
    )
    np.testing.assert_allclose(
        gt, finite_difference_grad(lambda v: f(jnp.asarray(s0), v), t0), atol=1e-6
    )


def test_verbose_prints_the_step_number_under_jit(capfd):
    X, y, _ = relu_instance(0, n=8, d=2, num_patterns=2)
    directions = sr.sample_directions(jax.random.key(0), 2, 4)
    problem = sr.SampledConvexProgram(X, y, directions, 0.1)
    sciopt.solve(problem, sr.FISTA(verbose=True), max_steps=3, throw=False)
    jax.effects_barrier()
    out = capfd.readouterr().out
    assert "step: 1, prox-grad residual:" in out and "step: 3," in out


def test_unpruned_network_is_traceable_and_equals_the_pruned_one():
    """`to_network(prune=False)` under jit: same predictions and objective as the
    pruned network (beta large enough that some groups are exactly zero), and the
    gradient of its predictions with respect to beta through the solve is finite and
    matches central differences of the pruned network's predictions."""
    bias = True  # the network appends the ones column; the problem's X has none
    X, y, patterns = relu_instance(3, n=20, d=3, num_patterns=6, bias=bias)

    def solve(beta):
        problem = sr.ConvexReLUProblem(X, y, patterns, beta, bias=bias)
        return problem, sciopt.solve(problem, sr.ADMM(rtol=1e-10, atol=1e-12))

    problem, sol = solve(2.0)
    pruned = sr.to_network(problem, sol)
    full = jax.jit(lambda v: sr.to_network(problem, v, prune=False))(sol.value)
    assert full.width == 2 * problem.num_patterns > pruned.width > 0
    np.testing.assert_allclose(full(X), pruned(X), rtol=1e-12, atol=1e-12)
    assert float(sr.nonconvex_objective(full, X, y, 2.0)) == pytest.approx(
        float(sr.nonconvex_objective(pruned, X, y, 2.0)), rel=1e-12
    )

    def energy(beta, prune):
        problem, sol = solve(beta)
        return jnp.sum(sr.to_network(problem, sol, prune=prune)(X) ** 2)

    grad = jax.grad(lambda b: energy(b, False))(2.0)
    h = 1e-4
    fd = (float(energy(2.0 + h, True)) - float(energy(2.0 - h, True))) / (2 * h)
    assert np.isfinite(float(grad))
    # ADMM stops at a relative residual of 1e-10: differences of two solves at this
    # step are accurate to about 1e-6
    assert float(grad) == pytest.approx(fd, rel=1e-5)
