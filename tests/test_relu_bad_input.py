"""Bad input to `sciopt.relu`: invalid data under `jax.jit`, non-finite data with
`throw=False`, mixed dtypes, default budgets and tolerances, overflowed stopping
tests. Each case is a defect that once gave a wrong or misleading result."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sciopt
import sciopt.relu as sr
from sciopt import RESULTS

from .helpers import relu_instance


# the codes for invalid data (with the closest existing codes until the core has them)
NONFINITE_DATA = RESULTS.nonfinite_data
INVALID_DATA = RESULTS.invalid_data


def _instance(seed=0, n=30, num_patterns=8, loss="squared"):
    return relu_instance(seed, n=n, num_patterns=num_patterns, loss=loss)


def _jit_solve(solver, X, y, patterns, beta, loss="squared", max_steps=500):
    """Build the problem and solve it inside `jax.jit`, so its data are traced and the
    constructor's eager checks cannot see them."""

    @jax.jit
    def run(X, y, patterns, beta):
        problem = sr.ConvexReLUProblem(X, y, patterns, beta, loss=loss)
        return sciopt.solve(problem, solver, max_steps=max_steps, throw=False)

    return run(X, y, patterns, beta)


def _rel(a, b):
    return abs(float(a) - float(b)) / max(abs(float(b)), 1e-12)


def test_invalid_patterns_under_jit_are_not_successful():
    # patterns * 2 used to return `successful` with objective inf (the residual
    # rule passed once the residuals and their scales overflowed: inf <= inf)
    X, y, patterns = _instance()
    sol = _jit_solve(sr.ADMM(), X, y, 2 * patterns, 0.1)
    assert sol.result == INVALID_DATA
    assert int(sol.stats["num_steps"]) == 0
    # an all-zero pattern column is invalid too
    zero = jnp.asarray(patterns).at[:, 0].set(0)
    assert _jit_solve(sr.ADMM(), X, y, zero, 0.1).result == INVALID_DATA
    # concrete data: the constructor names the argument
    with pytest.raises(ValueError, match="`patterns`"):
        sr.ConvexReLUProblem(X, y, 2 * patterns, 0.1)


def test_overflowed_residuals_do_not_pass_the_stopping_test():
    X, y, patterns = _instance()
    problem = sr.ConvexReLUProblem(X, y, patterns, 0.1)
    solver = sr.ADMM()
    y0 = problem.default_y0(None)
    state = solver.init(problem, y0, None, {})
    inf = jnp.array(jnp.inf)
    overflowed = state.__class__(
        **{
            **{f: getattr(state, f) for f in state.__dataclass_fields__},
            "primal_residual": inf,
            "dual_residual": inf,
            "primal_tolerance": inf,
            "dual_tolerance": inf,
            "num_steps": jnp.array(7, jnp.int32),
        }
    )
    done, result = solver.terminate(problem, y0, None, {}, overflowed)
    assert bool(done) and result == RESULTS.nonfinite


@pytest.mark.parametrize("solver", [sr.ADMM(), sr.InteriorPoint()], ids=type)
def test_nonfinite_X_under_jit_honours_throw_false(solver):
    # ADMM used to raise lineax's non-finite error from the Woodbury factorization
    # despite throw=False; InteriorPoint reported `empty_cone_interior`
    X, y, patterns = _instance()
    bad = X.copy()
    bad[0, 0] = np.nan
    sol = _jit_solve(solver, bad, y, patterns, 0.1)
    assert sol.result == NONFINITE_DATA
    assert int(sol.stats["num_steps"]) == 0


@pytest.mark.parametrize("solver", [sr.ADMM(), sr.InteriorPoint()], ids=type)
def test_nonfinite_y_and_bad_beta_under_jit(solver):
    # used to give `nonfinite` (inf in y) and `steps_exhausted` (beta < 0), neither
    # naming the input
    X, y, patterns = _instance()
    bad = y.copy()
    bad[3] = np.inf
    assert _jit_solve(solver, X, bad, patterns, 0.1).result == NONFINITE_DATA
    for beta in [-0.1, 0.0]:
        assert _jit_solve(solver, X, y, patterns, beta).result == INVALID_DATA
    assert _jit_solve(solver, X, y, patterns, jnp.nan).result == NONFINITE_DATA
    # labels outside the loss's domain
    _, labels, _ = _instance(loss="bce")
    sol = _jit_solve(solver, X, 2 * labels, patterns, 0.1, loss="bce")
    assert sol.result == INVALID_DATA


def test_bad_input_is_named_eagerly():
    X, y, patterns = _instance()
    bad = y.copy()
    bad[3] = np.inf
    with pytest.raises(ValueError, match="`y`"):
        sr.ConvexReLUProblem(X, bad, patterns, 0.1)
    for beta in [-0.1, 0.0, np.inf]:
        with pytest.raises(ValueError, match="`beta`"):
            sr.ConvexReLUProblem(X, y, patterns, beta)


def test_sampled_program_bad_beta_under_jit():
    X, y, _ = _instance()
    directions = sr.sample_directions(jax.random.key(0), X.shape[1], 6)

    @jax.jit
    def run(beta):
        problem = sr.SampledConvexProgram(X, y, directions, beta)
        return sciopt.solve(problem, sr.FISTA(), max_steps=100, throw=False)

    assert run(-1.0).result == INVALID_DATA
    assert run(jnp.inf).result == NONFINITE_DATA


def test_float64_warm_start_on_a_float32_problem():
    # used to fail with a lineax structure mismatch (float64 right-hand side against
    # the float32 factorization)
    X, y, patterns = _instance()
    X32, y32 = X.astype(np.float32), y.astype(np.float32)
    problem = sr.ConvexReLUProblem(X32, y32, np.asarray(patterns, np.float32), 0.1)
    warm = sciopt.solve(sr.ConvexReLUProblem(X, y, patterns, 0.1), sr.ADMM()).value
    assert warm.v.dtype == jnp.float64
    sol = sciopt.solve(problem, sr.ADMM(), y0=warm)
    assert sol.value.v.dtype == jnp.float32
    ref, _ = sr.cvxpy_solve(problem)
    assert _rel(sol.stats["objective"], ref) <= 1e-3


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("loss", ["squared", "bce"])
def test_default_admm_solves_ordinary_instances(dtype, loss):
    # `max_steps=256` (the old default) stopped at relative gaps of 3e-2 to 2e-1, and
    # float64's tolerances exhausted the steps in float32
    X, y, patterns = _instance(seed=1, n=40, num_patterns=10, loss=loss)
    problem = sr.ConvexReLUProblem(
        X.astype(dtype), y.astype(dtype), np.asarray(patterns, dtype), 0.5, loss=loss
    )
    sol = sciopt.solve(problem, sr.ADMM())  # throws unless successful
    assert sol.result == RESULTS.successful
    assert int(sol.stats["num_steps"]) > 256
    ref, _ = sr.cvxpy_solve(problem)
    # the relative objective gap is within the default rtol of the dtype
    rtol = 1e-6 if dtype == np.float64 else 1e-4
    assert _rel(sol.stats["objective"], ref) <= rtol
