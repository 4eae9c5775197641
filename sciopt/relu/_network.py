"""Recovering the two-layer ReLU network from a convex solution, and using it."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from .._solution import Solution
from ._losses import check_loss, loss_value
from ._problem import AbstractConvexReLUProblem
from ._scp import SampledConvexProgram


class ReLUNetwork(eqx.Module):
    """A two-layer ReLU network f(x) = sum_j (x^T u_j + b_j)_+ alpha_j.

    **Fields:**

    - `first`: (m, d) first-layer weights (with `bias`, (m, d + 1): the last column is
      the bias).
    - `second`: (m,) output weights.
    - `bias`: whether a ones column is appended to the inputs.
    """

    first: Array
    second: Array
    bias: bool = eqx.field(static=True, default=False)

    def __call__(self, X: Float[Array, "n d"]) -> Array:
        """Predictions for an (n, d) batch (or one (d,) input)."""
        X = jnp.asarray(X)
        single = X.ndim == 1
        X = jnp.atleast_2d(X)
        if self.bias:
            X = jnp.concatenate([X, jnp.ones((X.shape[0], 1), X.dtype)], axis=1)
        out = jax.nn.relu(X @ self.first.T) @ self.second
        return out[0] if single else out

    @property
    def width(self) -> int:
        return self.first.shape[0]


def init_network(key, d: int, width: int, *, bias: bool = False, scale: float = 1.0):
    """A randomly initialised `ReLUNetwork` (He-style first layer), e.g. for Adam."""
    k1, k2 = jax.random.split(key)
    din = d + int(bias)
    first = jax.random.normal(k1, (width, din)) * scale * jnp.sqrt(2.0 / din)
    second = jax.random.normal(k2, (width,)) * scale / jnp.sqrt(width)
    return ReLUNetwork(first, second, bias)


def _signed_root(w):
    """`(sqrt|w|, sign(w) sqrt|w|)`, with zero derivatives at `w = 0` (not nan)."""
    safe = jnp.where(w == 0, 1.0, jnp.abs(w))
    root = jnp.where(w == 0, 0.0, jnp.sqrt(safe))
    return root, jnp.sign(w) * root


def _full_network(problem, value) -> ReLUNetwork:
    # Every group becomes a neuron (zero groups zero neurons): fixed width, traceable.
    dtype = problem.X.dtype
    if isinstance(problem, SampledConvexProgram):
        alpha = jnp.asarray(value, dtype)
        root, second = _signed_root(alpha)
        first = jnp.asarray(problem.directions, dtype).T * root[:, None]
        return ReLUNetwork(first, second, problem.bias)
    v = jnp.asarray(value.v if hasattr(value, "v") else value, dtype)
    v = v.reshape(-1, v.shape[-1])
    P = problem.num_patterns
    norms_sq = jnp.sum(jnp.square(v), axis=1)
    safe = jnp.where(norms_sq == 0, 1.0, norms_sq)
    root = jnp.where(norms_sq == 0, 0.0, safe**0.25)  # sqrt(||v_i||)
    first = v / jnp.where(norms_sq == 0, 1.0, root)[:, None]  # a zero group stays 0
    signs = jnp.concatenate([jnp.ones(P, dtype), -jnp.ones(P, dtype)])
    return ReLUNetwork(first, signs * root, problem.bias)


def to_network(
    problem, solution, *, tol: float = 0.0, prune: bool = True
) -> ReLUNetwork:
    """The two-layer ReLU network of a convex solution.

    For each non-zero group v_i: a neuron u = v_i / sqrt(||v_i||) with output weight
    +sqrt(||v_i||) (minus for w_i). At a feasible solution (X u)_+ = D_i X u and
    beta/2 (||u||^2 + alpha^2) = beta ||v_i||, so the network's weight-decay objective
    (`nonconvex_objective`) equals the convex objective. For a
    `SampledConvexProgram`, neuron j is h_j sqrt|alpha_j| with output
    sign(alpha_j) sqrt|alpha_j|.

    **Arguments:**

    - `problem`: the `ConvexReLUProblem`, `AdversarialReLUProblem` or
      `SampledConvexProgram` solved.
    - `solution`: its `sciopt.Solution` (or the solution's value).
    - `tol`: groups with norm <= `tol` are dropped (zero groups are always dropped).
    - `prune`: `True` (default) keeps the non-zero groups only: the network's width
      is the number of kept groups, so this is not jit-traceable. `False` keeps every
      group (a zero group is a zero neuron, `tol` is ignored): the width is fixed
      (2P, or the number of directions of a `SampledConvexProgram`), the network has
      the same predictions and objective, and it can be built under `jax.jit`,
      `vmap` and `grad` (e.g. a validation loss differentiated through the solve).

    **Returns:**

    A `ReLUNetwork`.
    """
    value = solution.value if isinstance(solution, Solution) else solution
    if not prune:
        if not isinstance(problem, (SampledConvexProgram, AbstractConvexReLUProblem)):
            raise TypeError(f"Cannot recover a network from {type(problem).__name__}.")
        return _full_network(problem, value)
    if isinstance(problem, SampledConvexProgram):
        alpha = np.asarray(value)
        keep = np.abs(alpha) > tol
        root = np.sqrt(np.abs(alpha[keep]))
        first = np.asarray(problem.directions)[:, keep].T * root[:, None]
        second = np.sign(alpha[keep]) * root
    elif isinstance(problem, AbstractConvexReLUProblem):
        v = np.asarray(value.v if hasattr(value, "v") else value)
        v = v.reshape(-1, v.shape[-1])
        P = problem.num_patterns
        norms = np.linalg.norm(v, axis=1)
        keep = norms > tol
        root = np.sqrt(norms[keep])
        first = v[keep] / root[:, None]
        signs = np.concatenate([np.ones(P), -np.ones(P)])
        second = signs[keep] * root
    else:
        raise TypeError(f"Cannot recover a network from {type(problem).__name__}.")
    dtype = problem.X.dtype
    return ReLUNetwork(
        jnp.asarray(first, dtype).reshape(-1, problem.X.shape[1]),
        jnp.asarray(second, dtype),
        problem.bias,
    )


def predict(network: ReLUNetwork, X: ArrayLike) -> Array:
    """The network's predictions (logits for cross-entropy) on an (n, d) batch."""
    return network(jnp.asarray(X))


def accuracy(network: ReLUNetwork, X: ArrayLike, y: ArrayLike) -> Array:
    """Classification accuracy: labels in {0, 1} are compared with `f(x) > 0`, labels
    in {-1, +1} with `+1 if f(x) > 0 else -1`."""
    y = jnp.asarray(y)
    yhat = predict(network, X)
    if not isinstance(y, jax.core.Tracer) and bool(jnp.all((y == 0) | (y == 1))):
        return jnp.mean(((yhat > 0) == (y == 1)).astype(yhat.dtype))
    return jnp.mean((jnp.where(yhat > 0, 1, -1) == y).astype(yhat.dtype))


def nonconvex_objective(
    network: ReLUNetwork,
    X: ArrayLike,
    y: ArrayLike,
    beta: ArrayLike,
    loss: str = "squared",
) -> Array:
    """loss(f(X), y) + beta/2 (||U||_F^2 + ||alpha||^2), the weight-decay training
    objective (the bias column of U is decayed too, as in the convex program)."""
    check_loss(loss)
    y = jnp.asarray(y)
    yhat = predict(network, X)
    decay = jnp.sum(jnp.square(network.first)) + jnp.sum(jnp.square(network.second))
    return loss_value(loss, yhat, y.astype(yhat.dtype)) + 0.5 * beta * decay
