"""The basis network of the hard-constrained layers and its derivative terms."""

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from ._pde import derivative


class BasisNetwork(eqx.Module):
    """An MLP mapping a PDE instance and a point `(t, x)` to `N` basis functions.

    The instance enters through its initial condition sampled at `num_sensors` fixed
    points (the "sensors"); time and space are rescaled to `[-1, 1]` inside the
    network, so derivatives taken by autodiff are in physical units.

    **Arguments:**

    - `num_basis`: the number `N` of basis functions.
    - `num_sensors`: the length of the sensor vector describing an instance
      (`PDEFamily.num_sensors`).
    - `t_span`, `x_span`: the space-time box `(lo, hi)` used to rescale inputs
      (`PDEFamily.t_span`, `PDEFamily.x_span`).
    - `width`, `depth`: hidden width and number of hidden layers.
    - `key`: a `jax.random` key for the initial weights.
    - `dtype`: floating dtype of the weights (default: JAX's default float).
    """

    mlp: eqx.nn.MLP
    num_basis: int = eqx.field(static=True)
    num_sensors: int = eqx.field(static=True)
    t_span: tuple[float, float] = eqx.field(static=True)
    x_span: tuple[float, float] = eqx.field(static=True)

    def __init__(
        self,
        num_basis: int,
        num_sensors: int,
        t_span: Sequence[float],
        x_span: Sequence[float],
        *,
        width: int = 64,
        depth: int = 3,
        key: PRNGKeyArray,
        dtype=None,
    ):
        if num_basis < 1:
            raise ValueError(f"`num_basis` must be positive, got {num_basis}.")
        if num_sensors < 1:
            raise ValueError(f"`num_sensors` must be positive, got {num_sensors}.")
        dtype = jnp.zeros(()).dtype if dtype is None else dtype
        self.mlp = eqx.nn.MLP(
            2 + num_sensors,
            num_basis,
            width,
            depth,
            activation=jnp.tanh,
            key=key,
            dtype=dtype,
        )
        self.num_basis = num_basis
        self.num_sensors = num_sensors
        self.t_span = (float(t_span[0]), float(t_span[1]))
        self.x_span = (float(x_span[0]), float(x_span[1]))

    def __call__(
        self, t: Float[Array, ""], x: Float[Array, ""], sensors: Float[Array, " s"]
    ) -> Float[Array, " N"]:
        """The `N` basis functions at one point `(t, x)` for the instance `sensors`."""
        t0, t1 = self.t_span
        x0, x1 = self.x_span
        tn = 2 * (t - t0) / (t1 - t0) - 1
        xn = 2 * (x - x0) / (x1 - x0) - 1
        z = jnp.concatenate([jnp.stack([tn, xn]), sensors.astype(tn.dtype)])
        return self.mlp(z)


def basis_terms(
    basis: BasisNetwork, sensors: Array, t: Array, x: Array, which: Sequence[str]
) -> dict[str, Array]:
    """Per-basis derivative terms at the points `(t[i], x[i])`.

    `which` names derivatives by their letters (`""` the value, `"t"`, `"x"`, `"xx"`,
    `"xt"`, ...); returns `{letters: (len(t), N)}`, so that a solution `u = b . omega`
    has `u_xx = terms["xx"] @ omega`: the weights enter the residuals by
    contractions only. Derivatives by nested forward-mode autodiff.
    """

    def one(ti, xi):
        def fn(xx, tt):
            return basis(tt, xx, sensors)

        return {w: fn(xi, ti) if w == "" else derivative(fn, xi, ti, w) for w in which}

    return jax.vmap(one)(t, x)


def contract(terms: dict[str, Array], omega: Array) -> dict[str, Array]:
    """Values at the points: each term contracted with `omega`."""
    return {k: v @ omega for k, v in terms.items()}
