"""Shared test utilities and problem lists.

Each family appends its own section (problem lists, solver lists) below the common
utilities.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import sciopt


# ---------------------------------------------------------------------------
# Common utilities
# ---------------------------------------------------------------------------


def tree_allclose(x, y, *, rtol=1e-5, atol=1e-8):
    return eqx.tree_equal(x, y, typematch=True, rtol=rtol, atol=atol)


def finite_difference_grad(fn, x, eps=1e-6):
    """Central finite differences of a scalar `fn` at the vector `x` (float64)."""
    x = np.asarray(x, dtype=np.float64)
    grad = np.zeros_like(x)
    for i in range(x.size):
        e = np.zeros_like(x)
        e.flat[i] = eps
        grad.flat[i] = (
            float(fn(jnp.asarray(x + e))) - float(fn(jnp.asarray(x - e)))
        ) / (2 * eps)
    return grad


# ---------------------------------------------------------------------------
# Core: a toy problem and solver exercising the `sciopt.solve` protocol
# ---------------------------------------------------------------------------


class QuadraticProblem(sciopt.AbstractProblem):
    """min 1/2 x^T A x - b^T x with b = args (closed form x* = A^{-1} b)."""

    matrix: jax.Array

    def default_y0(self, args):
        return jnp.zeros(self.matrix.shape[0], self.matrix.dtype)

    def check(self, y0, args):
        if y0.shape != (self.matrix.shape[0],):
            raise ValueError(f"`y0` must have shape ({self.matrix.shape[0]},).")


class GradientDescent(sciopt.AbstractSolver):
    """Fixed-step gradient descent on `QuadraticProblem` (for core tests only)."""

    learning_rate: float = 0.1
    atol: float = 1e-10

    def init(self, problem, y, args, options):
        return jnp.array(jnp.inf, y.dtype)

    def step(self, problem, y, args, options, state):
        grad = problem.matrix @ y - args
        return y - self.learning_rate * grad, jnp.linalg.norm(grad), None

    def terminate(self, problem, y, args, options, state):
        return state < self.atol, sciopt.RESULTS.successful

    def postprocess(self, problem, y, aux, args, options, state, result):
        return y, aux, {"gradient_norm": state}

    def optimality(self, problem, y, args, options):
        return problem.matrix @ y - args
