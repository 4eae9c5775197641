"""Matrix-free ADMM u-step for the convex ReLU program (Nystrom-preconditioned CG).

Oracles: the dense Cholesky u-step (`linear_solver="dense"`, an exact solve), cvxpy
(`sciopt.relu.cvxpy_solve`) for the optimum, and the traced program's shapes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sciopt
import sciopt.relu as sr
from sciopt.relu import _linear

from .helpers import jaxpr_shapes, relu_instance


def _rel(a, b):
    return abs(float(a) - float(b)) / max(abs(float(b)), 1e-12)


def _problem(n=240, d=4, P=10, seed=0, dtype=np.float64, loss="squared"):
    X, y, patterns = relu_instance(seed, n=n, d=d, num_patterns=P, loss=loss)
    return sr.ConvexReLUProblem(
        X.astype(dtype), y.astype(dtype), patterns.astype(dtype), 0.1, loss=loss
    )


@pytest.mark.parametrize("gated", [False, True])
def test_u_step_equals_dense_solve_to_cg_tolerance(gated):
    X, y, patterns = relu_instance(1, n=300, d=4, num_patterns=10)
    problem = sr.ConvexReLUProblem(X, y, patterns, 0.1, gated=gated)
    w, wp = jnp.asarray(1.3), jnp.asarray(1.0)
    dense = _linear.build(problem, "dense", w, wp)
    mfree = _linear.build(problem, "nystrom", w, wp, nystrom_max_rank=32)
    rhs = jax.random.normal(jax.random.key(0), (20, 4), jnp.float64)
    exact, _ = _linear.solve(
        problem, "dense", dense, rhs, None, cg_rtol=0.0, cg_max_steps=1
    )
    for tol in [1e-4, 1e-8, 1e-12]:
        u, its = _linear.solve(
            problem,
            "nystrom",
            mfree,
            rhs,
            jnp.zeros_like(rhs),
            cg_rtol=tol,
            cg_max_steps=500,
        )
        # residual of the original system A u = rhs, A applied independently
        res = _linear.apply_A(problem, u, w, wp) - rhs
        assert float(jnp.max(jnp.abs(res))) <= 50 * tol * float(jnp.max(jnp.abs(rhs)))
        # A >= w I, so the error is at most |res| / w
        err = float(jnp.linalg.norm(u - exact))
        assert err <= float(jnp.linalg.norm(res)) / 1.3 * (1 + 1e-6) + 1e-13
        assert 0 < int(its) < 100
    # a warm start at the solution needs (almost) no work
    _, its = _linear.solve(
        problem, "nystrom", mfree, rhs, exact, cg_rtol=1e-8, cg_max_steps=500
    )
    assert int(its) <= 1


def test_matrix_free_admm_matches_cvxpy_with_certificate():
    X, y, patterns = relu_instance(3, n=200, d=3, num_patterns=6)
    problem = sr.ConvexReLUProblem(X, y, patterns, 0.5)
    ref, _ = sr.cvxpy_solve(problem)
    out = {}
    for method in ["dense", "nystrom"]:
        solver = sr.ADMM(rtol=1e-7, atol=1e-9, linear_solver=method, gap_rtol=1e-6)
        sol = sciopt.solve(problem, solver, max_steps=20_000, throw=False)
        out[method] = sol
        assert _rel(sol.stats["objective"], ref) <= 1e-5
        # the certificate: a lower bound below the optimum (to cvxpy's accuracy)
        # and a small gap
        assert float(sol.stats["lower_bound"]) <= ref + 1e-6 * abs(ref)
        assert abs(float(sol.stats["duality_gap"])) <= 1e-5 * abs(ref)
        assert float(sol.stats["cone_violation"]) <= 1e-5
    mf, dense = out["nystrom"], out["dense"]
    # the inexact solves follow the exact iteration
    assert _rel(mf.stats["objective"], dense.stats["objective"]) <= 1e-8
    assert int(mf.stats["linear_solver_steps"]) > 0
    assert 1 <= int(mf.stats["nystrom_rank"]) <= 36


def _max_square(problem, method):
    solver = sr.ADMM(linear_solver=method)
    jaxpr = jax.make_jaxpr(
        lambda p: sciopt.solve(p, solver, max_steps=10, throw=False).value
    )(problem)
    n = problem.X.shape[0]
    return [s for s in jaxpr_shapes(jaxpr.jaxpr) if len(s) >= 2 and s.count(n) >= 2]


def test_no_n_by_n_array_in_traced_program():
    # n = 240 < 2dP = 320: the factored choice is the n x n Woodbury core
    problem = _problem(n=240, d=4, P=40)
    assert _max_square(problem, "woodbury")  # the check sees n x n when it is there
    assert _max_square(problem, "nystrom") == []
    # nor the (2dP)^2 matrix of the dense path
    size = 2 * 4 * 40
    solver = sr.ADMM(linear_solver="nystrom")
    jaxpr = jax.make_jaxpr(
        lambda p: sciopt.solve(p, solver, max_steps=10, throw=False).value
    )(problem)
    assert not [s for s in jaxpr_shapes(jaxpr.jaxpr) if s.count(size) >= 2]


def test_jit_and_float32():
    # a small instance: the compilation dominates (n = 200 took 16 248 steps to
    # the same tolerances, 0.8 s of 8 s; here 2276 steps, 0.1 s)
    problem = _problem(n=60, d=4, P=6, dtype=np.float32)
    ref, _ = sr.cvxpy_solve(problem)
    solver = sr.ADMM(rtol=1e-4, atol=1e-5, linear_solver="nystrom")
    sol = jax.jit(lambda p: sciopt.solve(p, solver, max_steps=20_000))(problem)
    assert sol.value.v.dtype == jnp.float32
    assert sol.result == sciopt.RESULTS.successful
    # measured: objective 1.1e-6 from cvxpy's, certified gap 2.4e-5 relative
    # (float32 residuals at rtol 1e-4), 2276 steps
    assert _rel(sol.stats["objective"], ref) <= 1e-5
    assert float(sol.stats["duality_gap"]) <= 1e-4 * abs(ref)
    assert int(sol.stats["num_steps"]) <= 2500


def test_auto_rule_and_bad_arguments():
    small = _problem(n=40, d=3, P=6)
    assert _linear.resolve_method("auto", small) in ("dense", "woodbury")
    X = jnp.zeros((3000, 20))
    big = type("P", (), {"X": X, "num_patterns": 50, "gated": False})()
    assert _linear.resolve_method("auto", big) == "nystrom"
    assert _linear.resolve_method("dense", big) == "dense"  # overridable
    with pytest.raises(ValueError, match="nystrom_rank"):
        sr.ADMM(nystrom_rank=0)
    with pytest.raises(ValueError, match="nystrom_max_rank"):
        sr.ADMM(nystrom_max_rank=0)
    with pytest.raises(ValueError, match="inexact_c"):
        sr.ADMM(inexact_c=-1.0)
