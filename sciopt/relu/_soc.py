"""Second-order cone algebra for interior-point methods, batched over cones.

A cone point is stored as `(x0, x1)` along the last axis (`x0` first); the cone is
{x : x0 >= ||x1||}. Products and inverses are those of the cone's Jordan algebra
(Alizadeh & Goldfarb 2003); the Nesterov-Todd scaling is the quadratic representation
of the square root of the scaling point (Nesterov & Todd 1997).
"""

import jax.numpy as jnp
from jaxtyping import Array, Float


def det(x: Float[Array, "... k"]) -> Array:
    """x0^2 - ||x1||^2 (positive in the cone's interior)."""
    return x[..., 0] ** 2 - jnp.sum(x[..., 1:] ** 2, axis=-1)


def identity_like(x: Float[Array, "... k"]) -> Array:
    """The identity element (1, 0, ..., 0)."""
    return jnp.zeros_like(x).at[..., 0].set(1)


def product(x: Float[Array, "... k"], y: Float[Array, "... k"]) -> Array:
    """The Jordan product x o y = (x^T y, x0 y1 + y0 x1)."""
    head = jnp.sum(x * y, axis=-1, keepdims=True)
    return jnp.concatenate(
        [head, x[..., :1] * y[..., 1:] + y[..., :1] * x[..., 1:]], -1
    )


def divide(lam: Float[Array, "... k"], r: Float[Array, "... k"]) -> Array:
    """The solution v of lam o v = r (lam in the cone's interior)."""
    v0 = (lam[..., 0] * r[..., 0] - jnp.sum(lam[..., 1:] * r[..., 1:], -1)) / det(lam)
    v1 = (r[..., 1:] - v0[..., None] * lam[..., 1:]) / lam[..., :1]
    return jnp.concatenate([v0[..., None], v1], axis=-1)


def power(x: Float[Array, "... k"], p: float) -> Array:
    """x^p by the spectral decomposition x = l1 c1 + l2 c2, l = x0 +- ||x1||."""
    norm = jnp.linalg.norm(x[..., 1:], axis=-1)
    unit = x[..., 1:] / jnp.where(norm > 0, norm, 1)[..., None]
    l1, l2 = (x[..., 0] + norm) ** p, (x[..., 0] - norm) ** p
    head = (0.5 * (l1 + l2))[..., None]
    return jnp.concatenate([head, (0.5 * (l1 - l2))[..., None] * unit], axis=-1)


def quadratic_representation(v: Float[Array, "... k"]) -> Array:
    """Q_v = 2 v v^T - det(v) R, R = diag(1, -1, ..., -1): symmetric, positive
    definite for v in the interior, Q_v Q_v = Q_{v^2}."""
    k = v.shape[-1]
    reflection = jnp.concatenate([jnp.ones(1, v.dtype), -jnp.ones(k - 1, v.dtype)])
    outer = 2 * v[..., :, None] * v[..., None, :]
    R = jnp.diag(reflection).reshape((1,) * (v.ndim - 1) + (k, k))
    return outer - det(v)[..., None, None] * R


def _apply(matrix, x):
    return jnp.einsum("...ij,...j->...i", matrix, x)


def nesterov_todd(s: Float[Array, "... k"], z: Float[Array, "... k"]):
    """The Nesterov-Todd scaling W (and W^{-1}) of interior points s, z: symmetric
    with W z = W^{-1} s. The scaling point w solves Q_w z = s,
    w = Q_{z^{-1/2}} (Q_{z^{1/2}} s)^{1/2}, and W = Q_{w^{1/2}}."""
    inner = _apply(quadratic_representation(power(z, 0.5)), s)
    w = _apply(quadratic_representation(power(z, -0.5)), power(inner, 0.5))
    return quadratic_representation(power(w, 0.5)), quadratic_representation(
        power(w, -0.5)
    )


def max_step(x: Float[Array, "m k"], dx: Float[Array, "m k"]) -> Array:
    """The largest a in (0, inf] keeping x + a dx in the cone (x in the interior)."""
    inf = jnp.array(jnp.inf, x.dtype)
    # det(x + a dx) = qa a^2 + qb a + qc with qc = det(x) > 0
    qa = det(dx)
    qb = 2 * (x[:, 0] * dx[:, 0] - jnp.sum(x[:, 1:] * dx[:, 1:], axis=-1))
    qc = det(x)
    disc = qb**2 - 4 * qa * qc
    root = jnp.sqrt(jnp.maximum(disc, 0))
    q = -0.5 * (qb + jnp.where(qb >= 0, 1, -1) * root)  # stable roots q/qa, qc/q
    r1 = jnp.where(qa != 0, q / jnp.where(qa != 0, qa, 1), inf)
    r2 = jnp.where(q != 0, qc / jnp.where(q != 0, q, 1), inf)
    r1 = jnp.where(r1 > 0, r1, inf)
    r2 = jnp.where(r2 > 0, r2, inf)
    cone = jnp.where(disc >= 0, jnp.minimum(r1, r2), inf)
    head = jnp.where(
        dx[:, 0] < 0, -x[:, 0] / jnp.where(dx[:, 0] < 0, dx[:, 0], -1), inf
    )
    return jnp.min(jnp.minimum(cone, head))


def orthant_max_step(x: Array, dx: Array) -> Array:
    """The largest a in (0, inf] keeping x + a dx > 0 (x > 0)."""
    # x / -dx, not -x / dx: -x would be an array of its own, and inside a loop XLA
    # hoists and keeps it
    return jnp.min(jnp.where(dx < 0, x / -jnp.where(dx < 0, dx, -1), jnp.inf))
