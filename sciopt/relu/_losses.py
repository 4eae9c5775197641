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
import optimistix as optx
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


# Bisection halvings: enough to shrink any interval to one unit in the last place in
# float32 and float64 when the tolerance test cannot pass (a root of a function with
# large terms, whose value is not small at round-off level).
_BISECTION_STEPS = 64


def _decreasing_root(fn, lower, upper, args):
    """The root of `fn(x, args)`, decreasing in the scalar `x`, on `[lower, upper]`
    (with `fn(lower) >= 0 >= fn(upper)`), by `optimistix.Bisection`.

    The tolerances are 16 machine epsilons; when `fn` cannot be evaluated that
    accurately the bisection stops after `_BISECTION_STEPS` halvings (at the level of
    round-off). The derivative with respect to `args` comes from optimistix's implicit
    adjoint: `-(dfn/dx)^{-1} dfn/dargs` at the root.
    """
    lower, upper = jnp.broadcast_arrays(lower, upper)
    tol = 16 * float(jnp.finfo(lower.dtype).eps)
    solver = optx.Bisection(rtol=tol, atol=tol, flip=True)
    sol = optx.root_find(
        fn,
        solver,
        lower + 0.5 * (upper - lower),
        args,
        options=dict(lower=lower, upper=upper),
        max_steps=_BISECTION_STEPS,
        throw=False,
    )
    return sol.value


def _bce_prox_root(z0, rho):
    # the root of -(d/dz) [softplus(-z) + rho/2 (z - z0)^2], decreasing in z, lies in
    # [z0, z0 + 1/rho]
    def fn(z, args):
        z0, rho = args
        return jax.nn.sigmoid(-z) - rho * (z - z0)

    return _decreasing_root(fn, z0, z0 + 1 / rho, (z0, rho))


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

        z0, rho = jnp.broadcast_arrays(z0, jnp.asarray(rho, z0.dtype))
        return sign * jnp.vectorize(_bce_prox_root)(z0, rho)
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

    def q_of(mu, args):
        q0, x, y, eps, _ = args
        return _soft(q0 + mu * y * x, mu * eps)

    def h(mu, args):
        _, x, y, eps, _ = args
        q = q_of(mu, args)
        return 1 - y * jnp.dot(x, q) + jnp.sum(eps * jnp.abs(q))

    def fn(mu, args):
        # h when its root lies in [0, 1/rho], else `end - mu` whose root is the
        # optimal end of the interval
        inv = 1 / args[-1]
        zero = jnp.zeros_like(inv)
        low, high = h(zero, args) <= 0, h(inv, args) >= 0
        end = jnp.where(low, zero, inv)
        return jnp.where(low | high, end - mu, h(mu, args))

    args = (q0, x, y, eps, rho)
    inv = 1 / rho
    mu = _decreasing_root(fn, jnp.zeros_like(inv), inv, args)
    return q_of(mu, args)


def robust_cone_projection(
    s0: Float[Array, " n"], t0: Float[Array, " d"], eps: Float[Array, " d"]
) -> tuple[Array, Array]:
    """Projection of (s0, t0) onto {(s, t): s_k >= sum_l eps_l |t_l| for every k}.

    KKT: t = soft(t0, theta eps), c = sum_l eps_l |t_l|, s = max(s0, c) and
    theta = sum_k (c - s0_k)_+, a decreasing equation in theta solved by bisection.
    """

    def g(theta, args):
        s0, t0, eps = args
        c = jnp.sum(eps * jnp.abs(_soft(t0, theta * eps)))
        return jnp.sum(jax.nn.relu(c - s0)) - theta

    ratio = jnp.where(eps > 0, jnp.abs(t0) / jnp.where(eps > 0, eps, 1), 0)
    hi = jnp.maximum(jnp.max(ratio), jnp.sum(jax.nn.relu(-s0)))
    theta = _decreasing_root(g, jnp.zeros_like(hi), hi, (s0, t0, eps))
    t = _soft(t0, theta * eps)
    s = jnp.maximum(s0, jnp.sum(eps * jnp.abs(t)))
    return s, t
