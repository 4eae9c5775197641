import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
import optimistix as optx
import pytest
import sciopt

from .helpers import finite_difference_grad, GradientDescent, QuadraticProblem


A = jnp.array([[3.0, 1.0], [1.0, 2.0]])
B = jnp.array([1.0, -1.0])


def test_solve_reaches_closed_form():
    sol = sciopt.solve(QuadraticProblem(A), GradientDescent(), args=B, max_steps=1000)
    np.testing.assert_allclose(sol.value, np.linalg.solve(A, B), rtol=1e-9)
    assert sol.result == sciopt.RESULTS.successful
    assert 0 < int(sol.stats["num_steps"]) < 1000
    assert sol.stats["max_steps"] == 1000
    assert float(sol.stats["gradient_norm"]) < 1e-10


def test_max_steps_result_and_throw():
    sol = sciopt.solve(
        QuadraticProblem(A), GradientDescent(), args=B, max_steps=3, throw=False
    )
    assert sol.result == sciopt.RESULTS.steps_exhausted
    assert "max_steps" in sciopt.RESULTS[sol.result]
    with pytest.raises(Exception, match="max_steps"):
        sciopt.solve(QuadraticProblem(A), GradientDescent(), args=B, max_steps=3)


def test_eager_throw_compiles_no_host_callback(monkeypatch):
    """An eager failed solve raises from Python: no program with a host callback (which
    JAX's persistent cache never keeps) is traced. Under jit the check is
    `equinox.error_if` (`equinox.filter_jit` turns it into the same error type)."""

    def no_callbacks(*args, **kwargs):
        raise AssertionError("a host callback was traced")

    message = sciopt.RESULTS[sciopt.RESULTS.steps_exhausted]
    with monkeypatch.context() as m:
        m.setattr(jax, "pure_callback", no_callbacks)
        with pytest.raises(eqx.EquinoxRuntimeError) as info:
            sciopt.solve(QuadraticProblem(A), GradientDescent(), args=B, max_steps=3)
        assert str(info.value) == message
        sol = sciopt.solve(QuadraticProblem(A), GradientDescent(), args=B)
        np.testing.assert_allclose(sol.value, np.linalg.solve(A, B), rtol=1e-9)

    @eqx.filter_jit
    def under_jit(b):
        return sciopt.solve(
            QuadraticProblem(A), GradientDescent(), args=b, max_steps=3
        ).value

    with pytest.raises(eqx.EquinoxRuntimeError, match="max_steps"):
        under_jit(B)


def test_nonfinite_inputs_raise_early():
    with pytest.raises(ValueError, match="y0"):
        sciopt.solve(
            QuadraticProblem(A), GradientDescent(), jnp.array([jnp.nan, 0.0]), B
        )
    with pytest.raises(ValueError, match="args"):
        sciopt.solve(
            QuadraticProblem(A), GradientDescent(), args=jnp.array([jnp.inf, 0])
        )
    with pytest.raises(ValueError, match="max_steps"):
        sciopt.solve(QuadraticProblem(A), GradientDescent(), args=B, max_steps=0)
    with pytest.raises(ValueError, match="y0"):
        sciopt.solve(QuadraticProblem(A), GradientDescent(), jnp.zeros(3), B)


def test_traced_nonfinite_is_a_result_code():
    @jax.jit
    def run(b):
        sol = sciopt.solve(QuadraticProblem(A), GradientDescent(), args=b, throw=False)
        return sol.result

    assert run(jnp.array([jnp.nan, 1.0])) == sciopt.RESULTS.nonfinite_start


@pytest.mark.parametrize(
    "adjoint",
    [
        sciopt.ImplicitAdjoint(),
        optx.ImplicitAdjoint(),
        optx.RecursiveCheckpointAdjoint(),
    ],
)
def test_grad_through_solve_matches_finite_differences(adjoint):
    def loss(b):
        sol = sciopt.solve(
            QuadraticProblem(A),
            GradientDescent(),
            args=b,
            max_steps=1000,
            adjoint=adjoint,
        )
        return jnp.sum(sol.value**2)

    grad = jax.grad(loss)(B)
    np.testing.assert_allclose(grad, finite_difference_grad(loss, B), rtol=1e-6)


def test_jit_and_vmap_over_args():
    bs = jnp.stack([B, 2 * B, -B])
    run = jax.jit(
        jax.vmap(
            lambda b: (
                sciopt.solve(
                    QuadraticProblem(A), GradientDescent(), args=b, max_steps=1000
                ).value
            )
        )
    )
    np.testing.assert_allclose(run(bs), np.linalg.solve(A, bs.T).T, rtol=1e-9)


@pytest.mark.parametrize("progress", [True, "text"])
def test_progress_meter_under_jit_vmap_grad(progress):
    def loss(b, progress):
        sol = sciopt.solve(
            QuadraticProblem(A),
            GradientDescent(),
            args=b,
            max_steps=500,
            progress=progress,
        )
        return jnp.sum(sol.value)

    # A progress meter must not change values or gradients.
    np.testing.assert_allclose(
        jax.grad(loss)(B, progress), jax.grad(loss)(B, None), rtol=1e-12
    )
    batched = jax.jit(jax.vmap(lambda b: loss(b, progress)))(jnp.stack([B, 2 * B]))
    np.testing.assert_allclose(batched, [loss(B, None), loss(2 * B, None)], rtol=1e-9)


def test_no_recompile_for_new_values():
    @eqx.debug.assert_max_traces(max_traces=1)
    def traced(b):
        return sciopt.solve(QuadraticProblem(A), GradientDescent(), args=b).value

    run = jax.jit(traced)
    run(B)
    run(2 * B)


def test_float32():
    A32, B32 = A.astype(jnp.float32), B.astype(jnp.float32)
    solver = GradientDescent(atol=1e-5)
    sol = sciopt.solve(QuadraticProblem(A32), solver, args=B32, max_steps=1000)
    assert sol.value.dtype == jnp.float32
    np.testing.assert_allclose(sol.value, np.linalg.solve(A, B), rtol=1e-4)


def test_fit_reduces_loss_and_is_deterministic(getkey):
    key = jax.random.key(1)
    x = jnp.linspace(-1, 1, 64)[:, None]
    y = jnp.sin(3 * x)
    model = eqx.nn.MLP(1, 1, 16, 2, key=key)

    def loss(m, batch, k):
        xb, yb = batch
        return jnp.mean((jax.vmap(m)(xb) - yb) ** 2)

    r1 = sciopt.fit(
        model, loss, (x, y), key=key, steps=300, batch_size=32, chunk_size=100
    )
    r2 = sciopt.fit(
        model, loss, (x, y), key=key, steps=300, batch_size=32, chunk_size=100
    )
    assert r1.losses.shape == (300,)
    assert r1.losses[-20:].mean() < 0.3 * r1.losses[:20].mean()
    np.testing.assert_array_equal(r1.losses, r2.losses)
    r3 = sciopt.fit(r1.model, loss, (x, y), key=key, steps=0, lbfgs_steps=50)
    assert r3.losses[-1] < r1.losses[-1]


def test_fit_average_returns_the_exponential_moving_average():
    # SGD with step 1/2 on (p - 1)^2 / 2: p_k = 1 - 2^-k; avg_k = a avg + (1 - a) p_k.
    import optax

    def loss(p, batch, k):
        return 0.5 * jnp.sum((p - 1.0) ** 2)

    p0 = jnp.zeros((2,))
    res = sciopt.fit(
        p0,
        loss,
        key=jax.random.key(0),
        steps=7,
        optimiser=optax.sgd(0.5),
        average=0.75,
        chunk_size=3,
    )
    avg = 0.0
    for k in range(1, 8):
        avg = 0.75 * avg + 0.25 * (1.0 - 0.5**k)
    np.testing.assert_allclose(np.asarray(res.model), avg, rtol=1e-12)
    last = sciopt.fit(
        p0, loss, key=jax.random.key(0), steps=7, optimiser=optax.sgd(0.5)
    ).model
    np.testing.assert_allclose(np.asarray(last), 1.0 - 0.5**7, rtol=1e-12)
    with pytest.raises(ValueError, match="average"):
        sciopt.fit(p0, loss, key=jax.random.key(0), steps=1, average=1.0)


def test_fit_nan_names_last_finite_step():
    model = eqx.nn.Linear(1, 1, key=jax.random.key(0))

    def loss(m, batch, k):
        return jnp.sum(m.weight) * jnp.where(k is None, 1.0, 1.0) + jnp.log(
            -jnp.abs(jnp.sum(m.weight)) - 1.0
        )

    with pytest.raises(FloatingPointError, match="last finite loss at step"):
        sciopt.fit(model, loss, key=jax.random.key(0), steps=10)
    out = sciopt.fit(model, loss, key=jax.random.key(0), steps=10, throw=False)
    assert out.diverged and out.num_steps == 0


def _callbacks(fn, *args):
    return jax.jit(fn).lower(*args).as_text().count("callback")


def test_implicit_gradient_program_has_no_host_callback():
    """The default adjoint compiles no host callback into a gradient program (JAX's
    persistent cache cannot keep one; `tests/test_cache.py` checks the reuse), while
    an iterative tangent solver keeps its failure check and raises."""

    def loss(b, adjoint=sciopt.ImplicitAdjoint()):
        # throw=False: under `jit` the solve's own check is a callback (by design)
        sol = sciopt.solve(
            QuadraticProblem(A), GradientDescent(), args=b, adjoint=adjoint, throw=False
        )
        return jnp.sum(sol.value**2)

    assert _callbacks(jax.grad(loss), B) == 0
    assert _callbacks(lambda b: jax.jvp(loss, (b,), (b,))[1], B) == 0
    # an iterative tangent solver can fail: its check stays, and fires
    cg = sciopt.ImplicitAdjoint(
        lx.GMRES(rtol=1e-14, atol=1e-14, max_steps=1, restart=1)
    )
    assert _callbacks(jax.grad(lambda b: loss(b, cg)), B) > 0
    with pytest.raises(Exception, match="maximum number of solver steps"):
        jax.grad(lambda b: loss(b, cg))(B)
    # the direct tangent solve agrees with optimistix's
    np.testing.assert_allclose(
        jax.grad(loss)(B), jax.grad(lambda b: loss(b, optx.ImplicitAdjoint()))(B)
    )


@pytest.mark.parametrize("symmetric", [True, False])
def test_linear_solve_derivatives_equal_lineax(symmetric):
    """`sciopt._linear_solve.linear_solve` (direct solvers through
    `jax.lax.custom_linear_solve`): value, forward and reverse derivatives in the
    operator and the right-hand side equal lineax's own, under `vmap` too, with no
    host callback in the reverse pass."""
    from sciopt._linear_solve import linear_solve

    rng = np.random.default_rng(0)
    M = jnp.asarray(rng.standard_normal((4, 4)))
    if symmetric:
        M = M @ M.T + 4 * jnp.eye(4)
        solver, tags = lx.Cholesky(), lx.positive_semidefinite_tag
    else:
        M = M + 4 * jnp.eye(4)
        solver, tags = lx.LU(), ()
    b = jnp.asarray(rng.standard_normal(4))

    def ours(m, v):
        return linear_solve(lx.MatrixLinearOperator(m, tags), v, solver).value

    def theirs(m, v):
        return lx.linear_solve(lx.MatrixLinearOperator(m, tags), v, solver).value

    def loss(solve):
        return lambda m, v: jnp.sum(jnp.sin(solve(m, v)))

    np.testing.assert_allclose(ours(M, b), theirs(M, b), rtol=1e-12)
    for argnum in (0, 1):
        np.testing.assert_allclose(
            jax.grad(loss(ours), argnum)(M, b),
            jax.grad(loss(theirs), argnum)(M, b),
            rtol=1e-10,
        )
    tangent = (jnp.ones_like(M), jnp.ones_like(b))
    np.testing.assert_allclose(
        jax.jvp(ours, (M, b), tangent)[1],
        jax.jvp(theirs, (M, b), tangent)[1],
        rtol=1e-10,
    )
    batched = jax.vmap(jax.grad(loss(ours), 1), in_axes=(None, 0))(
        M, jnp.stack([b, 2 * b])
    )
    np.testing.assert_allclose(
        batched[1], jax.grad(loss(theirs), 1)(M, 2 * b), rtol=1e-10
    )
    assert _callbacks(jax.grad(loss(ours), 0), M, b) == 0
    assert _callbacks(jax.grad(loss(theirs), 0), M, b) > 0
