"""`sciopt.SaveAt`: histories recorded by the driver loop, for any solver."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sciopt

from .helpers import GradientDescent, QuadraticProblem


A = jnp.array([[3.0, 1.0], [1.0, 2.0]])
B = jnp.array([1.0, -1.0])


def _numpy_iterates(num, lr=0.1):
    y, out = np.zeros(2), [np.zeros(2)]
    for _ in range(num):
        y = y - lr * (np.asarray(A) @ y - np.asarray(B))
        out.append(y)
    return np.array(out)


def test_history_holds_every_kth_iterate():
    sol = sciopt.solve(
        QuadraticProblem(A),
        GradientDescent(),
        args=B,
        max_steps=1000,
        saveat=sciopt.SaveAt(every=3),
    )
    steps = int(sol.stats["num_steps"])
    assert sol.history.shape == (1000 // 3 + 1, 2)
    filled = steps // 3 + 1
    expected = _numpy_iterates(steps)[::3]
    np.testing.assert_allclose(sol.history[:filled], expected[:filled], rtol=1e-12)
    assert np.isnan(np.asarray(sol.history[filled:])).all()


def test_history_of_a_function_under_vmap_and_grad():
    def objective(y, state, aux):
        return 0.5 * y @ A @ y

    saveat = sciopt.SaveAt(every=1, fn=objective)

    def run(b):
        return sciopt.solve(
            QuadraticProblem(A), GradientDescent(), args=b, max_steps=400, saveat=saveat
        )

    histories = jax.vmap(lambda b: run(b).history)(jnp.stack([B, 2 * B]))
    iterates = _numpy_iterates(100)
    expected = 0.5 * np.einsum("ki,ij,kj->k", iterates, np.asarray(A), iterates)
    np.testing.assert_allclose(histories[0, :101], expected, rtol=1e-12)
    np.testing.assert_allclose(histories[1, :101], 4 * expected, rtol=1e-12)
    # Recording does not change the solution or its gradient.
    grad = jax.grad(lambda b: run(b).value.sum())(B)
    np.testing.assert_allclose(grad, np.linalg.solve(A, np.ones(2)), rtol=1e-8)


@pytest.mark.parametrize("every", [0, -1, 1.5])
def test_bad_every(every):
    with pytest.raises((ValueError, TypeError), match="`every`"):
        sciopt.SaveAt(every=every)
