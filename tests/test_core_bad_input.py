"""Bad input and honest failure in the core driver `sciopt.solve` (and `sciopt.fit`)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sciopt

from .helpers import count_compilations, GradientDescent, QuadraticProblem


A = jnp.array([[3.0, 1.0], [1.0, 2.0]])
B = jnp.array([1.0, -1.0])
X_STAR = np.linalg.solve(np.asarray(A), np.asarray(B))


class _ScaledProblem(sciopt.AbstractProblem):
    """min 1/2 x^T A x - s b^T x, s = args (a scalar): x* = s A^{-1} b."""

    matrix: jax.Array
    vector: jax.Array

    def default_y0(self, args):
        return jnp.zeros_like(self.vector)


class _ScaledDescent(GradientDescent):
    def step(self, problem, y, args, options, state):
        grad = problem.matrix @ y - args * problem.vector
        return y - self.learning_rate * grad, jnp.linalg.norm(grad), None

    def optimality(self, problem, y, args, options):
        return problem.matrix @ y - args * problem.vector


def test_python_float_args_do_not_recompile():
    problem = _ScaledProblem(A, B)
    sol = sciopt.solve(problem, _ScaledDescent(), args=1.0, max_steps=2000)
    np.testing.assert_allclose(sol.value, X_STAR, rtol=1e-8)
    with count_compilations() as compiles:
        for scale in (2.0, 3.0, -0.5):
            sol = sciopt.solve(problem, _ScaledDescent(), args=scale, max_steps=2000)
            np.testing.assert_allclose(sol.value, scale * X_STAR, rtol=1e-8)
    assert compiles[0] == 0


def test_float32_start_on_float64_problem_solves_in_float64():
    y0 = jnp.zeros(2, jnp.float32)
    sol = sciopt.solve(QuadraticProblem(A), GradientDescent(), y0, B, max_steps=2000)
    assert sol.value.dtype == jnp.float64
    np.testing.assert_allclose(sol.value, X_STAR, rtol=1e-8)


def test_float32_start_with_float64_args_solves_in_float64():
    # The problem holds no floating arrays: the working dtype comes from `args`.
    from sciopt.nlp import AdaSketchNewton, EqualityConstrainedProblem

    nlp = EqualityConstrainedProblem(
        objective=lambda x, r: x[0] + x[1],
        constraints=lambda x, r: jnp.array([x[0] ** 2 + x[1] ** 2 - r**2]),
    )
    y0 = jnp.array([-1.0, -0.5], jnp.float32)
    sol = sciopt.solve(nlp, AdaSketchNewton(), y0, jnp.array(2.0, jnp.float64))
    assert sol.value.dtype == jnp.float64
    np.testing.assert_allclose(sol.value, [-np.sqrt(2), -np.sqrt(2)], rtol=1e-8)


def test_float64_start_on_float32_problem_solves_in_float32():
    A32, B32 = A.astype(jnp.float32), B.astype(jnp.float32)
    y0 = jnp.zeros(2, jnp.float64)
    solver = GradientDescent(atol=1e-5)
    sol = sciopt.solve(QuadraticProblem(A32), solver, y0, B32, max_steps=2000)
    assert sol.value.dtype == jnp.float32
    np.testing.assert_allclose(sol.value, X_STAR, rtol=1e-4)


def test_complex_start_on_real_problem_raises():
    y0 = jnp.zeros(2, jnp.complex128)
    with pytest.raises(ValueError, match="`y0`.*complex"):
        sciopt.solve(QuadraticProblem(A), GradientDescent(), y0, B)


class _OverflowingSolver(GradientDescent):
    """Stops at once and reports an objective that overflowed."""

    def terminate(self, problem, y, args, options, state):
        return jnp.array(True), sciopt.RESULTS.successful

    def postprocess(self, problem, y, aux, args, options, state, result):
        return y, aux, {"objective": jnp.array(jnp.inf, y.dtype)}


def test_success_is_never_reported_with_nonfinite_statistics():
    sol = sciopt.solve(QuadraticProblem(A), _OverflowingSolver(), args=B, throw=False)
    assert sol.result == sciopt.RESULTS.nonfinite
    with pytest.raises(Exception, match="non-finite|nonfinite|nan|inf"):
        sciopt.solve(QuadraticProblem(A), _OverflowingSolver(), args=B)


class _LongSolver(GradientDescent):
    learning_rate: float = 1e-3

    def default_max_steps(self):
        return 20_000


def test_solver_brings_its_own_step_budget():
    sol = sciopt.solve(QuadraticProblem(A), _LongSolver(), args=B)
    assert int(sol.stats["max_steps"]) == 20_000
    assert 256 < int(sol.stats["num_steps"]) < 20_000
    np.testing.assert_allclose(sol.value, X_STAR, rtol=1e-8)


@pytest.mark.parametrize("max_steps", [0, -3, 2.5, True])
def test_bad_max_steps_raises(max_steps):
    with pytest.raises(ValueError, match="`max_steps`"):
        sciopt.solve(
            QuadraticProblem(A), GradientDescent(), args=B, max_steps=max_steps
        )


# --- sciopt.fit ---


def _regression_loss(m, batch, k):
    xb, yb = batch
    return jnp.mean((xb @ m - yb) ** 2)


def _regression_data(n=32):
    x = jnp.linspace(-1.0, 1.0, 2 * n).reshape(n, 2)
    return x, x @ jnp.array([1.5, -0.5])


def test_fit_rejects_data_leaves_of_different_lengths():
    x, y = _regression_data()
    with pytest.raises(ValueError, match=r"leading \(sample\) axis.*32.*31"):
        sciopt.fit(
            jnp.zeros(2), _regression_loss, (x, y[:-1]), key=jax.random.key(0), steps=1
        )


@pytest.mark.parametrize("batch_size", [0, -1, 2.0, True])
def test_fit_rejects_bad_batch_size(batch_size):
    with pytest.raises(ValueError, match="`batch_size`"):
        sciopt.fit(
            jnp.zeros(2),
            _regression_loss,
            _regression_data(),
            key=jax.random.key(0),
            steps=1,
            batch_size=batch_size,
        )


def test_fit_reuses_its_compiled_step():
    x, y = _regression_data()
    x2, ones = 2 * x, jnp.ones(2)
    kwargs = dict(key=jax.random.key(0), steps=40, batch_size=8, chunk_size=20)
    lbfgs_kwargs = dict(key=jax.random.key(0), steps=0, lbfgs_steps=30)
    first = sciopt.fit(jnp.zeros(2), _regression_loss, (x, y), **kwargs)
    lbfgs = sciopt.fit(first.model, _regression_loss, (x, y), **lbfgs_kwargs)
    with count_compilations() as compiles:
        # Same structure; new data values, a new starting model, a new learning rate.
        again = sciopt.fit(ones, _regression_loss, (x2, y), learning_rate=0.1, **kwargs)
        sciopt.fit(lbfgs.model, _regression_loss, (x2, y), **lbfgs_kwargs)
    assert compiles[0] == 0
    # The new learning rate took effect: the run equals plain optax Adam at 0.1.
    import optax

    reference = sciopt.fit(
        ones, _regression_loss, (x2, y), optimiser=optax.adam(0.1), **kwargs
    )
    np.testing.assert_allclose(again.losses, reference.losses, rtol=1e-12)
    # Full-batch L-BFGS on a least-squares problem with an exact fit reaches it.
    np.testing.assert_allclose(lbfgs.model, [1.5, -0.5], rtol=1e-6)


# --- re-declared problems ---


def _circle_problem(shift):
    from sciopt.nlp import EqualityConstrainedProblem

    # New lambdas on every call, closing over `shift`.
    return EqualityConstrainedProblem(
        objective=lambda x, r: (x[0] - shift) + x[1],
        constraints=lambda x, r: jnp.array([x[0] ** 2 + x[1] ** 2 - r**2]),
    )


def test_redeclared_problem_with_the_same_code_does_not_recompile():
    from sciopt.nlp import AdaSketchNewton

    y0, r = jnp.array([-1.0, -0.5]), jnp.array(2.0)
    first = sciopt.solve(_circle_problem(0.0), AdaSketchNewton(), y0, r)
    with count_compilations() as compiles:
        again = sciopt.solve(_circle_problem(0.0), AdaSketchNewton(), y0, r)
    assert compiles[0] == 0
    np.testing.assert_array_equal(first.value, again.value)


def test_functions_that_differ_are_never_confused():
    from sciopt._code_key import SameCode

    def make(c):
        return lambda x: x + c

    assert SameCode(make(1.0)) == SameCode(make(1.0))
    assert SameCode(make(1.0)) != SameCode(make(2.0))
    assert SameCode(make(1)) != SameCode(make(1.0))  # equal values, other types
    assert SameCode(make(jnp.ones(2))) != SameCode(make(jnp.ones(2)))  # arrays: id
    assert SameCode(lambda x: x + 1) != SameCode(lambda x: x + 2)

    def recursive(n):
        return 1 if n == 0 else n * recursive(n - 1)

    assert SameCode(recursive)(4) == 24
    # A problem whose closure differs in value solves to its own answer.
    from sciopt.nlp import AdaSketchNewton

    y0, r = jnp.array([-1.0, -0.5]), jnp.array(2.0)
    a = sciopt.solve(_circle_problem(0.0), AdaSketchNewton(), y0, r).value
    b = sciopt.solve(_circle_problem(5.0), AdaSketchNewton(), y0, r).value
    np.testing.assert_allclose(a, b, rtol=1e-8)  # the shift is a constant: same x*
    obj = [_circle_problem(s).objective(a, r) for s in (0.0, 5.0)]
    np.testing.assert_allclose(obj[0] - obj[1], 5.0, rtol=1e-12)


def test_problem_mixing_float32_and_float64_works_in_float64():
    # Strict promotion is on in the tests: the working dtype is still found.
    problem = _ScaledProblem(A.astype(jnp.float32), B)  # float32 matrix, float64 b
    sol = sciopt.solve(problem, _ScaledDescent(), args=1.0, max_steps=2000)
    assert sol.value.dtype == jnp.float64
    np.testing.assert_allclose(sol.value, X_STAR, rtol=1e-6)


def test_python_scalar_args_do_not_decide_the_dtype():
    y0 = jnp.zeros(2, jnp.float32)
    problem = _ScaledProblem(A.astype(jnp.float32), B.astype(jnp.float32))
    sol = sciopt.solve(problem, _ScaledDescent(atol=1e-5), y0, 2.0, max_steps=2000)
    assert sol.value.dtype == jnp.float32
    np.testing.assert_allclose(sol.value, 2 * X_STAR, rtol=1e-4)
