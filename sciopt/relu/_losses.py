"""Losses of the convex programs: values, proximal operators and label checks.

Every loss is a sum over samples (not a mean):

- `"squared"`: 1/2 sum_k (yhat_k - y_k)^2, any real labels;
- `"bce"`: binary cross-entropy on the logit yhat, sum_k log(1 + exp(-(2 y_k - 1)
  yhat_k)), labels in {0, 1};
- `"hinge"`: sum_k max(0, 1 - y_k yhat_k), labels in {-1, +1}.
"""

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float


LOSSES = ("squared", "bce", "hinge")


def check_loss(loss: str) -> None:
    if loss not in LOSSES:
        raise ValueError(f"`loss` must be one of {LOSSES}, got {loss!r}.")


def check_labels(loss: str, y) -> None:
    """Raise `ValueError` when concrete labels lie outside the loss's domain."""
    if isinstance(y, jax.core.Tracer):
        return
    y = np.asarray(y)
    if loss == "bce" and not np.all((y == 0) | (y == 1)):
        raise ValueError("`y` must hold labels in {0, 1} for loss='bce'.")
    if loss == "hinge" and not np.all((y == -1) | (y == 1)):
        raise ValueError("`y` must hold labels in {-1, +1} for loss='hinge'.")


def loss_value(loss: str, yhat: Float[Array, " n"], y: Float[Array, " n"]) -> Array:
    if loss == "squared":
        return 0.5 * jnp.sum(jnp.square(yhat - y))
    if loss == "bce":
        return jnp.sum(jax.nn.softplus(-(2 * y - 1) * yhat))
    if loss == "hinge":
        return jnp.sum(jax.nn.relu(1 - y * yhat))
    raise ValueError(f"Unknown loss {loss!r}.")


def robust_hinge_value(
    yhat: Float[Array, " n"],
    q: Float[Array, "n d"],
    y: Float[Array, " n"],
    eps: Float[Array, ""],
) -> Array:
    """sum_k max(0, 1 - y_k yhat_k + eps ||q_k||_1) (the l_inf-robust hinge)."""
    return jnp.sum(jax.nn.relu(1 - y * yhat + eps * jnp.sum(jnp.abs(q), axis=1)))


def _bisect(fn, lo, hi, steps: int):
    """Root of a decreasing scalar function on [lo, hi] (elementwise), by bisection."""

    def body(_, bounds):
        lo, hi = bounds
        mid = 0.5 * (lo + hi)
        positive = fn(mid) > 0
        return jnp.where(positive, mid, lo), jnp.where(positive, hi, mid)

    lo, hi = jax.lax.fori_loop(0, steps, body, (lo, hi))
    return jax.lax.stop_gradient(0.5 * (lo + hi))


def _newton_polish(fn, x):
    """One Newton step on `fn(x) = 0` from a converged `x`: gives `x` the derivative
    of the implicit root (the bisection itself carries none)."""
    value, slope = jax.jvp(fn, (x,), (jnp.ones_like(x),))
    slope = jnp.where(jnp.abs(slope) > 0, slope, 1)
    return x - value / slope


def loss_prox(loss: str, p0: Array, y: Array, rho: Array) -> Array:
    """argmin_p loss(p, y) + rho/2 ||p - p0||^2 (elementwise)."""
    if loss == "squared":
        return (rho * p0 + y) / (rho + 1)
    if loss == "hinge":
        z0 = y * p0
        inv = 1 / rho
        z = jnp.where(z0 >= 1, z0, jnp.where(z0 <= 1 - inv, z0 + inv, 1))
        return y * z
    if loss == "bce":
        sign = 2 * y - 1
        z0 = sign * p0

        def grad(z):  # derivative of softplus(-z) + rho/2 (z - z0)^2, increasing
            return rho * (z - z0) - jax.nn.sigmoid(-z)

        # the root lies in [z0, z0 + 1/rho]; bisect on -grad (decreasing)
        root = _bisect(lambda z: -grad(z), z0, z0 + 1 / rho, 60)
        root = _newton_polish(grad, root)
        return sign * root
    raise ValueError(f"Unknown loss {loss!r}.")


def _soft(x, t):
    return jnp.sign(x) * jax.nn.relu(jnp.abs(x) - t)


def robust_hinge_prox(
    q0: Float[Array, " d"],
    x: Float[Array, " d"],
    y: Float[Array, ""],
    eps: Float[Array, " d"],
    rho: Float[Array, ""],
) -> Array:
    """argmin_q max(0, 1 - y x^T q + sum_l eps_l |q_l|) + rho/2 ||q - q0||^2.

    For one sample. With multiplier mu in [0, 1/rho]: q(mu) = soft(q0 + mu y x, mu eps)
    and mu solves h(mu) = 1 - y x^T q(mu) + sum_l eps_l |q(mu)_l| = 0 (h decreases in
    mu) unless an end of the interval is optimal.
    """

    def q_of(mu):
        return _soft(q0 + mu * y * x, mu * eps)

    def h(mu):
        q = q_of(mu)
        return 1 - y * jnp.dot(x, q) + jnp.sum(eps * jnp.abs(q))

    inv = 1 / rho
    zero = jnp.zeros_like(inv)
    mu = _bisect(h, zero, inv, 60)
    mu = jnp.clip(_newton_polish(h, mu), 0, inv)
    mu = jnp.where(h(zero) <= 0, zero, jnp.where(h(inv) >= 0, inv, mu))
    return q_of(mu)


def robust_cone_projection(
    s0: Float[Array, " n"], t0: Float[Array, " d"], eps: Float[Array, " d"]
) -> tuple[Array, Array]:
    """Projection of (s0, t0) onto {(s, t): s_k >= sum_l eps_l |t_l| for every k}.

    KKT: t = soft(t0, theta eps), c = sum_l eps_l |t_l|, s = max(s0, c) and
    theta = sum_k (c - s0_k)_+, a decreasing equation in theta solved by bisection.
    """

    def g(theta):
        c = jnp.sum(eps * jnp.abs(_soft(t0, theta * eps)))
        return jnp.sum(jax.nn.relu(c - s0)) - theta

    ratio = jnp.where(eps > 0, jnp.abs(t0) / jnp.where(eps > 0, eps, 1), 0)
    hi = jnp.maximum(jnp.max(ratio), jnp.sum(jax.nn.relu(-s0)))
    theta = _bisect(g, jnp.zeros_like(hi), hi, 60)
    theta = jnp.clip(_newton_polish(g, theta), 0, hi)
    t = _soft(t0, theta * eps)
    s = jnp.maximum(s0, jnp.sum(eps * jnp.abs(t)))
    return s, t
