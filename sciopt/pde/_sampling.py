"""Collocation sampling on space-time domains (uniform, Latin hypercube, Sobol)."""

import functools
from typing import Literal

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, DTypeLike, Float, PRNGKeyArray

from ._domain import Domain


Method = Literal["uniform", "lhs", "sobol"]
_METHODS = ("uniform", "lhs", "sobol")


def _default_dtype(dtype):
    return jnp.zeros((), float).dtype if dtype is None else jnp.dtype(dtype)


@functools.lru_cache(maxsize=64)
def _sobol_base(n: int, dim: int) -> np.ndarray:
    from scipy.stats import qmc

    points = qmc.Sobol(dim, scramble=False).random(n)
    return np.floor(points * 2.0**32).astype(np.uint32)


def sample_unit(
    key: PRNGKeyArray,
    n: int,
    dim: int,
    method: Method = "uniform",
    dtype: DTypeLike | None = None,
) -> Float[Array, "n dim"]:
    """`n` points in the unit cube `[0, 1)^dim`.

    **Arguments:**

    - `key`: a `jax.random` key (the same key gives the same points).
    - `n`, `dim`: number of points and dimension (static).
    - `method`: `"uniform"` (i.i.d.), `"lhs"` (Latin hypercube: one point per
      `1/n`-stratum along each axis) or `"sobol"` (the Sobol sequence with a random
      digital shift drawn from `key`; best with `n` a power of two).
    - `dtype`: floating dtype (default: JAX's default float).

    **Returns:**

    An array of shape `(n, dim)`.
    """
    dtype = _default_dtype(dtype)
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"The number of points must be a positive int, got {n!r}.")
    if method == "uniform":
        return jr.uniform(key, (n, dim), dtype)
    if method == "lhs":
        k_perm, k_jitter = jr.split(key)
        perms = jax.vmap(lambda k: jr.permutation(k, n))(jr.split(k_perm, dim))
        jitter = jr.uniform(k_jitter, (n, dim), dtype)
        return (perms.T.astype(dtype) + jitter) / jnp.asarray(n, dtype)
    if method == "sobol":
        base = jnp.asarray(_sobol_base(n, dim))
        k_shift, k_jitter = jr.split(key)
        shift = jr.bits(k_shift, (dim,), jnp.uint32)
        shifted = jnp.bitwise_xor(base, shift[None, :])
        # Uniform jitter below the 2^-32 resolution keeps points inside [0, 1).
        jitter = jr.uniform(k_jitter, (n, dim), dtype)
        scale = jnp.asarray(2.0**-32, dtype)
        p = (shifted.astype(dtype) + jitter * jnp.asarray(0.5, dtype)) * scale
        return jnp.minimum(p, jnp.nextafter(jnp.asarray(1, dtype), 0))
    raise ValueError(f"`method` must be one of {_METHODS}, got {method!r}.")


def sample_interior(
    domain: Domain,
    n: int,
    key: PRNGKeyArray,
    method: Method = "uniform",
    dtype: DTypeLike | None = None,
) -> tuple[Float[Array, " n"], Float[Array, " n"]]:
    """`n` collocation points `(x, t)` in the space-time domain.

    Call it inside a loss with the step's key to resample every step.

    **Returns:** `(x, t)`, two arrays of shape `(n,)`.
    """
    p = sample_unit(key, n, 2, method, dtype)
    dtype = p.dtype
    x = jnp.asarray(domain.x_min, dtype) + p[:, 0] * jnp.asarray(domain.length, dtype)
    t = jnp.asarray(domain.t_min, dtype) + p[:, 1] * jnp.asarray(domain.duration, dtype)
    return x, t


def sample_initial(
    domain: Domain,
    n: int,
    key: PRNGKeyArray,
    method: Method = "uniform",
    dtype: DTypeLike | None = None,
) -> Float[Array, " n"]:
    """`n` points `x` on the initial line `t = t_min`."""
    p = sample_unit(key, n, 1, method, dtype)[:, 0]
    return jnp.asarray(domain.x_min, p.dtype) + p * jnp.asarray(domain.length, p.dtype)


def sample_boundary(
    domain: Domain,
    n: int,
    key: PRNGKeyArray,
    method: Method = "uniform",
    dtype: DTypeLike | None = None,
) -> Float[Array, " n"]:
    """`n` times `t` at which boundary conditions are enforced."""
    p = sample_unit(key, n, 1, method, dtype)[:, 0]
    return jnp.asarray(domain.t_min, p.dtype) + p * jnp.asarray(
        domain.duration, p.dtype
    )


def grid(
    domain: Domain, nx: int, nt: int, dtype: DTypeLike | None = None
) -> tuple[Float[Array, " nx"], Float[Array, " nt"]]:
    """Uniform evaluation grids: `x` (`nx` points; `x_max` left out on periodic
    domains) and `t` (`nt` points including both ends)."""
    dtype = _default_dtype(dtype)
    if domain.periodic:
        x = domain.x_min + domain.length * np.arange(nx) / nx
    else:
        x = np.linspace(domain.x_min, domain.x_max, nx)
    t = np.linspace(domain.t_min, domain.t_max, nt)
    return jnp.asarray(x, dtype), jnp.asarray(t, dtype)
