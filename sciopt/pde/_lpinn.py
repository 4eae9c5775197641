"""Lagrangian PINNs: characteristics and the state along them, as two networks."""

import math
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from .._solution import RESULTS
from ._domain import Domain
from ._pde import PDE
from ._pinn import _features, grid_axes, make_mlp, model_dtype
from ._sampling import Method, sample_initial, sample_interior


_CITE = """
    ??? cite "References"

        ```bibtex
        @article{mojgani2023lagrangian,
          title={Kolmogorov n-width and {L}agrangian physics-informed neural
                 networks: A causality-conforming manifold for convection-dominated
                 {PDE}s},
          author={Mojgani, Rambod and Balajewicz, Maciej and Hassanzadeh, Pedram},
          journal={Computer Methods in Applied Mechanics and Engineering},
          volume={404},
          pages={115810},
          year={2023},
          note={arXiv:2205.02902, "Lagrangian PINNs: A causality-conforming
                solution to failure modes of physics-informed neural networks"}
        }
        ```
"""


def _check_lagrangian(pde: PDE) -> None:
    if not pde.domain.periodic:
        raise ValueError(
            "The Lagrangian PINN supports periodic domains only: on a bounded domain "
            "characteristics leave through the outflow boundary and new ones enter "
            "at the inflow boundary, which this two-branch form does not model. Use "
            "`Domain(..., periodic=True)` or an Eulerian `PINN`."
        )
    pde.require_time_derivative("`LagrangianPINN`", first_order=True)
    pde.transport_form()  # raises for PDEs outside the supported class


class LagrangianPINN(eqx.Module):
    """A Lagrangian PINN: the characteristic curves `X(xi, t)` and the state
    `U(xi, t)` carried along them, for `u_t + f1(u, x, t) u_x = f2(u, x, t) u_xx -
    s(u, x, t)` on a periodic 1-D domain.

    Two independent MLP branches take `(cos, sin)` of the label `xi`'s phase and the
    scaled time:

    - characteristics: `X = xi + (t - t0) * v * D(xi, t)`, so `X(xi, t0) = xi` holds
      exactly and `X - xi` is periodic in `xi`; `v` is a velocity scale (by default
      the largest `|f1|` over the initial condition) so `D` stays of order one.
    - state: `U = u0(xi) + (t - t0) N(xi, t)`, periodic in `xi`, which meets the
      initial condition exactly (`hard_initial=False`: `U = N(xi, t)`).

    Train with `sciopt.fit(model, LagrangianPINNLoss(pde), ...)`; map back to the
    Eulerian grid with `predict`, and check the characteristics with
    `characteristics_result` (`X_xi <= 0` means they crossed: a shock).

    **Arguments:**

    - `pde`: a `PDE` of the class above (checked by `PDE.transport_form`) on a
      periodic domain.
    - `key`: a `jax.random` key.
    - `state_width`, `state_depth`, `characteristic_width`, `characteristic_depth`:
      the branch sizes (the paper's code uses width 50, depths 5 and 2).
    - `activation`: hidden activation (default `tanh`).
    - `velocity_scale`: `v` above (default: from the PDE and initial condition).
    - `initial_speed`: the characteristics start as straight lines
      `X = xi + initial_speed (t - t0)` (the last layer of `D` is zero-initialised,
      its bias set accordingly); default: the mean of `f1` over the initial
      condition. For constant-speed convection this is already the exact
      characteristic field, and training only has to keep it; pass `0.0` to make the
      network learn it from rest.
    - `hard_initial`: build the state's initial condition into `U` (default). With
      `False`, `U` is a plain network and the initial condition is a loss term only,
      as in the paper; the benchmark page compares both.
    - `dtype`: weights' dtype.

    The model reads the PDE's default parameters (for `v`, the initial speed and
    `u0`); to change a parameter, build a new `PDE` rather than passing `args` to the
    loss only.

    **Raises:** `ValueError` for a non-periodic domain or a PDE outside the class.
    """

    state_net: eqx.nn.MLP
    characteristic_net: eqx.nn.MLP
    domain: Domain
    pde: PDE
    velocity_scale: float = eqx.field(static=True)
    hard_initial: bool = eqx.field(static=True)

    def __init__(
        self,
        pde: PDE,
        *,
        key: PRNGKeyArray,
        state_width: int = 50,
        state_depth: int = 4,
        characteristic_width: int = 50,
        characteristic_depth: int = 2,
        activation: Callable = jnp.tanh,
        velocity_scale: float | None = None,
        initial_speed: float | None = None,
        hard_initial: bool = True,
        dtype=None,
    ):
        _check_lagrangian(pde)
        k_u, k_x = jr.split(key)
        self.state_net = make_mlp(3, state_width, state_depth, k_u, activation, dtype)
        self.characteristic_net = make_mlp(
            3, characteristic_width, characteristic_depth, k_x, activation, dtype
        )
        self.domain = pde.domain
        self.pde = pde
        mean_speed, max_speed = _initial_speeds(pde)
        if velocity_scale is None:
            velocity_scale = max_speed if max_speed > 0 else 1.0
        velocity_scale = float(velocity_scale)
        if not (math.isfinite(velocity_scale) and velocity_scale > 0):
            raise ValueError(
                f"`velocity_scale` must be positive and finite, got {velocity_scale}."
            )
        self.velocity_scale = velocity_scale
        # Start from straight characteristics at the mean initial speed: zero last
        # layer, bias = mean speed / v.
        if initial_speed is None:
            initial_speed = mean_speed
        self.characteristic_net = _zero_last_layer(
            self.characteristic_net, float(initial_speed) / velocity_scale
        )
        self.hard_initial = bool(hard_initial)

    def characteristic(self, xi: ArrayLike, t: ArrayLike) -> Array:
        """`X(xi, t)`: the position at time `t` of the particle that started at
        `xi`."""
        xi = jnp.asarray(xi)
        t = jnp.asarray(t, xi.dtype)
        d = self.characteristic_net(_features(self.domain, xi, t, True))
        return xi + (t - self.domain.t_min) * self.velocity_scale * d

    def state(self, xi: ArrayLike, t: ArrayLike) -> Array:
        """`U(xi, t)`: the solution carried along the characteristic from `xi`."""
        xi = jnp.asarray(xi)
        t = jnp.asarray(t, xi.dtype)
        n = self.state_net(_features(self.domain, xi, t, True))
        if self.hard_initial:
            return self.pde.initial(xi, self.pde.args()) + (t - self.domain.t_min) * n
        return n

    def characteristics_result(
        self, t: ArrayLike, num_labels: int = 512
    ) -> tuple[RESULTS, Array]:
        """Check that `xi -> X(xi, t)` is increasing at the times `t`.

        **Returns:**

        `(result, min_jacobian)`: `RESULTS.characteristics_crossed` if `X_xi <= 0`
        anywhere on `num_labels` labels x the times `t`, `RESULTS.nonfinite_model` for
        non-finite values, else `RESULTS.successful`; and the smallest `X_xi` found.
        """
        t = jnp.atleast_1d(jnp.asarray(t))
        xi = _labels(self.domain, num_labels, t.dtype)
        jac = jax.vmap(
            lambda tt: jax.vmap(
                lambda s: jax.jvp(
                    lambda v: self.characteristic(v, tt), (s,), (jnp.ones_like(s),)
                )[1]
            )(xi)
        )(t)
        min_jac = jnp.min(jac)
        result = RESULTS.where(
            jnp.isfinite(min_jac),
            RESULTS.where(
                min_jac > 0, RESULTS.successful, RESULTS.characteristics_crossed
            ),
            RESULTS.nonfinite_model,
        )
        return result, min_jac

    def predict(
        self, x: ArrayLike, t: ArrayLike, num_labels: int | None = None
    ) -> Float[Array, "nt nx"]:
        """The Eulerian solution `u(x, t)` on the grid `t` (nt,) x `x` (nx,): shape
        `(nt, nx)`, or `(nx,)` for a scalar `t`. Other shapes (meshgrid arrays,
        scattered points) raise `ValueError`.

        At each time the labels `xi` (`num_labels` uniform points, default
        `max(4 nx, 512)`) are moved to `X(xi, t)`, wrapped into the period, and `U` is
        interpolated linearly (periodically) at `x`. Valid while the characteristics
        do not cross (see `characteristics_result`).
        """
        x, t, scalar_t = grid_axes("LagrangianPINN.predict", x, t)
        if num_labels is None:
            num_labels = max(4 * x.shape[0], 512)
        xi = _labels(self.domain, num_labels, x.dtype)
        dom = self.domain

        def at_time(tt):
            big_x = jax.vmap(self.characteristic, in_axes=(0, None))(xi, tt)
            u = jax.vmap(self.state, in_axes=(0, None))(xi, tt)
            wrapped = dom.wrap(big_x)
            order = jnp.argsort(wrapped)
            return jnp.interp(
                x, wrapped[order], u[order], period=jnp.asarray(dom.length, x.dtype)
            )

        u = jax.vmap(at_time)(t)
        return u[0] if scalar_t else u


LagrangianPINN.__doc__ = (LagrangianPINN.__doc__ or "") + _CITE


def _labels(domain: Domain, n: int, dtype) -> Array:
    return jnp.asarray(domain.x_min + domain.length * np.arange(n) / n, dtype)


def _initial_speeds(pde: PDE) -> tuple[float, float]:
    """Mean and largest `|f1(u0(x), x, t0)|` over 256 points of the domain."""
    f1, _, _ = pde.transport_form()
    a = pde.args()
    dom = pde.domain
    xs = jnp.asarray(dom.x_min + dom.length * np.arange(256) / 256)
    u0 = pde.initial_value(xs)
    speeds = jax.vmap(lambda uu, xx: f1(uu, xx, jnp.asarray(dom.t_min, xx.dtype), a))(
        u0, xs
    )
    mean, top = float(jnp.mean(speeds)), float(jnp.max(jnp.abs(speeds)))
    if not (math.isfinite(mean) and math.isfinite(top)):
        raise ValueError(
            "The transport speed f1 is not finite on the initial condition; check "
            "the PDE's parameters and `initial`."
        )
    return mean, top


def _zero_last_layer(mlp: eqx.nn.MLP, bias: float) -> eqx.nn.MLP:
    last = mlp.layers[-1]
    mlp = eqx.tree_at(lambda m: m.layers[-1].weight, mlp, jnp.zeros_like(last.weight))
    return eqx.tree_at(lambda m: m.layers[-1].bias, mlp, jnp.full_like(last.bias, bias))


class LagrangianPINNLoss(eqx.Module):
    """The Lagrangian PINN loss, with points resampled from the step's key:

    `w_x mean(R_x^2) + w_u mean(R_u^2) + w_i mean((U(xi, t0) - u0(xi))^2)`,

    - `R_x = X_t - f1(U, X, t)` (the characteristic ODE: `dX/dt = c` for convection,
      `dX/dt = U` for Burgers),
    - `R_u = U_t - f2(U, X, t) U_XX + s(U, X, t)` (the state along the
      characteristic), with the chain rule `U_X = U_xi / X_xi`,
      `U_XX = (U_xixi X_xi - U_xi X_xixi) / X_xi^3`. `X_xi` in these denominators is
      floored at `jacobian_floor`: near-crossing characteristics otherwise make the
      term blow up (training went to NaN without the floor at `nu = 0.01`).

    Call it as `loss(model, batch, key)` (`batch` is ignored).

    **Arguments:**

    - `pde`: the `PDE` (the class of `LagrangianPINN`).
    - `num_interior`, `num_initial`: points per step.
    - `characteristic_weight`, `state_weight`, `initial_weight`: the weights
      (defaults 10, 1, 100).
    - `jacobian_floor`: the floor on `X_xi` in the chain rule.
    - `sampling`: `"uniform"`, `"lhs"` or `"sobol"`.
    - `args`: PDE parameter overrides (a dict), or `None`.
    """

    pde: PDE
    num_interior: int = eqx.field(static=True)
    num_initial: int = eqx.field(static=True)
    characteristic_weight: float = eqx.field(static=True)
    state_weight: float = eqx.field(static=True)
    initial_weight: float = eqx.field(static=True)
    jacobian_floor: float = eqx.field(static=True)
    sampling: Method = eqx.field(static=True)
    args: dict | None

    def __init__(
        self,
        pde: PDE,
        *,
        num_interior: int = 2048,
        num_initial: int = 256,
        characteristic_weight: float = 10.0,
        state_weight: float = 1.0,
        initial_weight: float = 100.0,
        jacobian_floor: float = 0.1,
        sampling: Method = "uniform",
        args: dict | None = None,
    ):
        _check_lagrangian(pde)
        for name, value in (
            ("num_interior", num_interior),
            ("num_initial", num_initial),
        ):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive int, got {value!r}.")
        if not jacobian_floor > 0:
            raise ValueError(
                f"`jacobian_floor` must be positive, got {jacobian_floor!r}."
            )
        self.pde = pde
        self.num_interior = num_interior
        self.num_initial = num_initial
        self.characteristic_weight = float(characteristic_weight)
        self.state_weight = float(state_weight)
        self.initial_weight = float(initial_weight)
        self.jacobian_floor = float(jacobian_floor)
        self.sampling = sampling
        pde.args(args)
        self.args = args

    def residuals(
        self, model: LagrangianPINN, xi: ArrayLike, t: ArrayLike
    ) -> tuple[Array, Array]:
        """`(R_x, R_u)` at the scalar label and time `(xi, t)`."""
        xi = jnp.asarray(xi)
        t = jnp.asarray(t, xi.dtype)
        f1, f2, s = self.pde.transport_form()
        a = self.pde.args(self.args)
        one, zero = jnp.ones_like(xi), jnp.zeros_like(xi)

        def time_derivative(fn):
            return jax.jvp(lambda tt: fn(xi, tt), (t,), (one,))

        big_x, x_t = time_derivative(model.characteristic)
        u, u_t = time_derivative(model.state)
        r_x = x_t - f1(u, big_x, t, a)
        r_u = u_t + s(u, big_x, t, a)
        if f2 is not None:

            def space_derivatives(fn):
                def first(v):
                    return jax.jvp(lambda w: fn(w, t), (v,), (one,))[1]

                return jax.jvp(first, (xi,), (one,))

            x_xi, x_xixi = space_derivatives(model.characteristic)
            u_xi, u_xixi = space_derivatives(model.state)
            jac = jnp.maximum(x_xi, self.jacobian_floor)
            u_xx = (u_xixi * jac - u_xi * x_xixi) / jac**3
            r_u = r_u - f2(u, big_x, t, a) * u_xx
        del zero
        return r_x, r_u

    def components(self, model: LagrangianPINN, key: PRNGKeyArray) -> dict[str, Array]:
        """The unweighted mean-square terms `characteristic`, `state`, `initial`."""
        dtype = model_dtype(model)
        k_in, k_ic = jr.split(key)
        dom = self.pde.domain
        xi, t = sample_interior(dom, self.num_interior, k_in, self.sampling, dtype)
        r_x, r_u = jax.vmap(lambda a, b: self.residuals(model, a, b))(xi, t)
        xi0 = sample_initial(dom, self.num_initial, k_ic, self.sampling, dtype)
        t0 = jnp.full_like(xi0, dom.t_min)
        ic = jax.vmap(model.state)(xi0, t0) - self.pde.initial_value(xi0, self.args)
        return {
            "characteristic": jnp.mean(r_x**2),
            "state": jnp.mean(r_u**2),
            "initial": jnp.mean(ic**2),
        }

    def __call__(self, model: LagrangianPINN, batch, key: PRNGKeyArray) -> Array:
        del batch
        c = self.components(model, key)
        return (
            self.characteristic_weight * c["characteristic"]
            + self.state_weight * c["state"]
            + self.initial_weight * c["initial"]
        )


LagrangianPINNLoss.__doc__ = (LagrangianPINNLoss.__doc__ or "") + _CITE
