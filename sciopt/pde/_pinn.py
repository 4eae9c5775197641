"""Physics-informed neural networks (PINNs) for 1-D evolution PDEs."""

import math
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from ._domain import Domain, PeriodicBC
from ._pde import PDE
from ._sampling import Method, sample_boundary, sample_initial, sample_interior


def _features(domain: Domain, x: Array, t: Array, periodic: bool) -> Array:
    """Network inputs: `(cos, sin)` of the phase of `x` on periodic domains (exactly
    periodic), else `x` scaled to [-1, 1]; and `t` scaled to [-1, 1]."""
    tau = 2 * (t - domain.t_min) / domain.duration - 1
    if periodic:
        phase = 2 * math.pi * (x - domain.x_min) / domain.length
        return jnp.stack([jnp.cos(phase), jnp.sin(phase), tau])
    xs = 2 * (x - domain.x_min) / domain.length - 1
    return jnp.stack([xs, tau])


def grid_axes(name: str, x: ArrayLike, t: ArrayLike) -> tuple[Array, Array, bool]:
    """Check the coordinates of a `predict` call: `x` one axis `(nx,)`, `t` one axis
    `(nt,)` or a scalar. Returns `(x, t, scalar_t)` with `t` made 1-D.

    **Raises:** `ValueError` naming `name` and the shapes for anything else (for
    example meshgrid arrays, which would otherwise broadcast to a wrong shape).
    """
    x = jnp.asarray(x)
    t = jnp.asarray(t)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.zeros(()).dtype)
    t = t.astype(x.dtype)
    if x.ndim != 1 or t.ndim > 1:
        raise ValueError(
            f"`{name}` takes the grid's axes: `x` of shape (nx,) and `t` of shape "
            f"(nt,) or a scalar, and returns (nt, nx) (or (nx,) for a scalar `t`); "
            f"got `x` of shape {x.shape} and `t` of shape {t.shape}. For a meshgrid "
            "pass its axes, e.g. `X[0]` and `T[:, 0]`; for scattered points "
            "`jax.vmap` the model over them."
        )
    return x, jnp.atleast_1d(t), t.ndim == 0


def model_dtype(model) -> jnp.dtype:
    """The dtype of a model's first floating array (JAX's default float if none)."""
    leaves = jax.tree.leaves(eqx.filter(model, eqx.is_inexact_array))
    return leaves[0].dtype if leaves else jnp.zeros((), float).dtype


def make_mlp(
    in_size: int,
    width: int,
    depth: int,
    key: PRNGKeyArray,
    activation: Callable = jnp.tanh,
    dtype=None,
) -> eqx.nn.MLP:
    """A scalar-output `eqx.nn.MLP` with `depth` hidden layers of `width` units."""
    if width < 1 or depth < 1:
        raise ValueError(
            f"`width` and `depth` must be positive, got width={width}, depth={depth}."
        )
    dtype = jnp.zeros((), float).dtype if dtype is None else dtype
    return eqx.nn.MLP(
        in_size,
        "scalar",
        width,
        depth,
        activation=activation,
        key=key,
        dtype=dtype,
    )


class PINN(eqx.Module):
    """A physics-informed neural network `u(x, t)` on a 1-D space-time `Domain`.

    An MLP of the features `(x, t)` scaled to [-1, 1]; on periodic domains `x` enters
    through `(cos, sin)` of its phase, so the network is exactly periodic and needs no
    boundary loss. Train it with `sciopt.fit(model, PINNLoss(pde), ...)`.

    **Arguments:**

    - `domain`: the `sciopt.pde.Domain`.
    - `key`: a `jax.random` key for the initial weights.
    - `width`, `depth`: hidden width and number of hidden layers.
    - `activation`: the hidden activation (default `tanh`).
    - `periodic_embedding`: use the periodic input embedding (default: whether the
      domain is periodic).
    - `initial`: optional `u0(x) -> scalar`; then `u = u0(x) + (t - t0) N(x, t)`
      meets the initial condition exactly (a hard constraint), e.g.
      `initial=lambda x: pde.initial(x, pde.args())`.
    - `dtype`: the weights' dtype (default: JAX's default float).

    ??? cite "References"

        ```bibtex
        @article{raissi2019physics,
          title={Physics-informed neural networks: A deep learning framework for
                 solving forward and inverse problems involving nonlinear partial
                 differential equations},
          author={Raissi, Maziar and Perdikaris, Paris and Karniadakis, George E.},
          journal={Journal of Computational Physics},
          volume={378},
          pages={686--707},
          year={2019}
        }
        ```
    """

    mlp: eqx.nn.MLP
    domain: Domain
    periodic_embedding: bool = eqx.field(static=True)
    initial: Callable | None = eqx.field(static=True)

    def __init__(
        self,
        domain: Domain,
        *,
        key: PRNGKeyArray,
        width: int = 50,
        depth: int = 4,
        activation: Callable = jnp.tanh,
        periodic_embedding: bool | None = None,
        initial: Callable | None = None,
        dtype=None,
    ):
        self.initial = initial
        if periodic_embedding is None:
            periodic_embedding = domain.periodic
        self.periodic_embedding = bool(periodic_embedding)
        self.domain = domain
        in_size = 3 if self.periodic_embedding else 2
        self.mlp = make_mlp(in_size, width, depth, key, activation, dtype)

    def __call__(self, x: ArrayLike, t: ArrayLike) -> Array:
        """`u(x, t)` at a scalar point."""
        x = jnp.asarray(x)
        t = jnp.asarray(t, x.dtype)
        out = self.mlp(_features(self.domain, x, t, self.periodic_embedding))
        if self.initial is not None:
            out = self.initial(x) + (t - self.domain.t_min) * out
        return out

    def predict(self, x: ArrayLike, t: ArrayLike) -> Float[Array, "nt nx"]:
        """`u` on the grid `t` (nt,) x `x` (nx,): shape `(nt, nx)`, or `(nx,)` for a
        scalar `t`. Other shapes raise `ValueError` (`jax.vmap` the model over
        scattered points instead)."""
        x, t, scalar_t = grid_axes("PINN.predict", x, t)
        row = jax.vmap(self, in_axes=(0, None))
        u = jax.vmap(lambda tt: row(x, tt))(t)
        return u[0] if scalar_t else u


class PINNLoss(eqx.Module):
    """The PINN loss `w_r mean(R^2) + w_i mean((u(., t0) - u0)^2) + w_b mean(B^2)`,
    with collocation points resampled from the step's key.

    Call it as `loss(model, batch, key)` (the `sciopt.fit` signature; `batch` is
    ignored). `model` is any `u(x, t) -> scalar` module, usually a `PINN`.

    **Arguments:**

    - `pde`: the `sciopt.pde.PDE`.
    - `num_interior`, `num_initial`, `num_boundary`: points per step.
    - `residual_weight`, `initial_weight`, `boundary_weight`: the loss weights.
    - `sampling`: `"uniform"`, `"lhs"` or `"sobol"` (see `sample_unit`).
    - `args`: PDE parameter overrides (a dict), or `None` for the defaults.
    """

    pde: PDE
    num_interior: int = eqx.field(static=True)
    num_initial: int = eqx.field(static=True)
    num_boundary: int = eqx.field(static=True)
    residual_weight: float = eqx.field(static=True)
    initial_weight: float = eqx.field(static=True)
    boundary_weight: float = eqx.field(static=True)
    sampling: Method = eqx.field(static=True)
    args: dict | None

    def __init__(
        self,
        pde: PDE,
        *,
        num_interior: int = 2048,
        num_initial: int = 256,
        num_boundary: int = 128,
        residual_weight: float = 1.0,
        initial_weight: float = 100.0,
        boundary_weight: float = 100.0,
        sampling: Method = "uniform",
        args: dict | None = None,
    ):
        for name, value in (
            ("num_interior", num_interior),
            ("num_initial", num_initial),
            ("num_boundary", num_boundary),
        ):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive int, got {value!r}.")
        # The loss has an initial-condition term: the PDE must evolve in time.
        pde.require_time_derivative("`PINNLoss`", first_order=False)
        self.pde = pde
        self.num_interior = num_interior
        self.num_initial = num_initial
        self.num_boundary = num_boundary
        self.residual_weight = float(residual_weight)
        self.initial_weight = float(initial_weight)
        self.boundary_weight = float(boundary_weight)
        self.sampling = sampling
        pde.args(args)  # validates names and finiteness
        self.args = args

    def components(self, model: Callable, key: PRNGKeyArray) -> dict[str, Array]:
        """The three mean-square terms (unweighted): `residual`, `initial`,
        `boundary`."""
        dtype = model_dtype(model)
        k_in, k_ic, k_bc = jr.split(key, 3)
        pde, dom = self.pde, self.pde.domain
        x, t = sample_interior(dom, self.num_interior, k_in, self.sampling, dtype)
        res = jax.vmap(lambda xx, tt: pde.residual(model, xx, tt, self.args))(x, t)
        xi = sample_initial(dom, self.num_initial, k_ic, self.sampling, dtype)
        t0 = jnp.full_like(xi, dom.t_min)
        ic = jax.vmap(model)(xi, t0) - pde.initial_value(xi, self.args)
        out = {
            "residual": jnp.mean(res**2),
            "initial": jnp.mean(ic**2),
            "boundary": jnp.zeros((), dtype),
        }
        embedded = getattr(model, "periodic_embedding", False)
        needs_bc = not (
            embedded and all(isinstance(bc, PeriodicBC) for bc in pde.boundary)
        )
        if needs_bc:
            tb = sample_boundary(dom, self.num_boundary, k_bc, self.sampling, dtype)
            bc = jax.vmap(lambda tt: pde.boundary_residual(model, tt, self.args))(tb)
            out["boundary"] = jnp.mean(bc**2)
        return out

    def __call__(self, model: Callable, batch, key: PRNGKeyArray) -> Array:
        del batch
        c = self.components(model, key)
        return (
            self.residual_weight * c["residual"]
            + self.initial_weight * c["initial"]
            + self.boundary_weight * c["boundary"]
        )
