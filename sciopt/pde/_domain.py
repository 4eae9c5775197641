"""Space-time domains and boundary conditions of 1-D evolution PDEs."""

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike

from ..symbolic import lower


def _check_interval(name: str, interval: Sequence[float]) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in interval)
    except (TypeError, ValueError):
        raise ValueError(
            f"`{name}` must be a pair of numbers (lo, hi), got {interval!r}."
        ) from None
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"`{name}` must be finite, got {(lo, hi)}.")
    if not hi > lo:
        raise ValueError(
            f"`{name}` = {(lo, hi)} has zero or negative length: pass (lo, hi) with "
            "hi > lo."
        )
    return lo, hi


class Domain(eqx.Module):
    """A space-time box `[x_min, x_max] x [t_min, t_max]` for 1-D evolution PDEs.

    **Arguments:**

    - `x`: the spatial interval `(x_min, x_max)`.
    - `t`: the time interval `(t_min, t_max)`; the initial condition holds at `t_min`.
    - `periodic`: whether `x` is periodic with period `x_max - x_min` (the point
      `x_max` is then identified with `x_min`).

    **Raises:**

    `ValueError` for an interval of zero or negative length or with non-finite ends.
    """

    x_min: float = eqx.field(static=True)
    x_max: float = eqx.field(static=True)
    t_min: float = eqx.field(static=True)
    t_max: float = eqx.field(static=True)
    periodic: bool = eqx.field(static=True)

    def __init__(
        self,
        x: Sequence[float] = (0.0, 2 * math.pi),
        t: Sequence[float] = (0.0, 1.0),
        periodic: bool = False,
    ):
        self.x_min, self.x_max = _check_interval("x", x)
        self.t_min, self.t_max = _check_interval("t", t)
        self.periodic = bool(periodic)

    @property
    def length(self) -> float:
        """`x_max - x_min`."""
        return self.x_max - self.x_min

    @property
    def duration(self) -> float:
        """`t_max - t_min`."""
        return self.t_max - self.t_min

    def wrap(self, x: ArrayLike) -> Array:
        """Map `x` into `[x_min, x_max)` (periodic domains); the identity otherwise."""
        x = jnp.asarray(x)
        if not self.periodic:
            return x
        return self.x_min + jnp.mod(x - self.x_min, self.length)


def _lower_value(
    value: Any, variables: Sequence[str], parameters: Sequence[str], what: str
) -> Callable:
    """A formula, number or callable of the scalar `variables` -> `fn(*vars, args)`.

    Formulas and numbers are lowered once per `(value, variables, parameters)`: the
    same declaration gives the same function object, so re-declaring a PDE does not
    change the static parts of a model (and does not recompile a jitted solve)."""
    if callable(value):
        return value
    if isinstance(value, (int, float, str)):
        return _lowered(str(value), tuple(variables), tuple(parameters))
    raise TypeError(
        f"{what} must be a number, a formula string or a callable, got "
        f"{type(value).__name__}."
    )


@functools.lru_cache(maxsize=512)
def _lowered(value: str, variables: tuple, parameters: tuple) -> Callable:
    fn = lower(value, list(variables), list(parameters))

    def lowered(*scalars_and_args):
        *scalars, args = scalars_and_args
        dtype = jnp.result_type(*scalars)
        x = jnp.stack([jnp.asarray(s, dtype) for s in scalars])
        return fn(x, args)

    return lowered


class AbstractBoundaryCondition(eqx.Module):
    """A boundary condition of a 1-D PDE on a `Domain`.

    `residual(u, t, domain, args)` returns the condition's residual (zero when it
    holds) for a function `u(x, t) -> scalar`, at the scalar time `t`.
    """

    def residual(self, u: Callable, t: Array, domain: Domain, args: Any) -> Array:
        raise NotImplementedError

    def bind(self, parameters: Sequence[str]) -> "AbstractBoundaryCondition":
        """Lower formula values over `t` and the PDE's `parameters`."""
        return self


def _side_x(side: str, domain: Domain) -> float:
    return domain.x_min if side == "left" else domain.x_max


def _check_side(side: str) -> str:
    if side not in ("left", "right"):
        raise ValueError(f"`side` must be 'left' or 'right', got {side!r}.")
    return side


class PeriodicBC(AbstractBoundaryCondition):
    """Periodic boundary: `u` and `u_x` agree at `x_min` and `x_max`.

    Use it with `Domain(..., periodic=True)`; PINNs then embed `x` periodically and
    need no boundary loss.
    """

    def residual(self, u, t, domain, args):
        ux = jax.grad(u, argnums=0)
        return jnp.stack(
            [
                u(domain.x_min, t) - u(domain.x_max, t),
                ux(domain.x_min, t) - ux(domain.x_max, t),
            ]
        )


class RobinBC(AbstractBoundaryCondition):
    """Robin condition `alpha * u + beta * u_x = value(t)` at one end of the domain.

    **Arguments:**

    - `side`: `"left"` (`x_min`) or `"right"` (`x_max`).
    - `alpha`, `beta`: numbers; `u_x` is the derivative along `+x` (not the outward
      normal).
    - `value`: a number, a formula in `t` and the PDE's parameters, or a callable
      `value(t, args)`.
    """

    side: str = eqx.field(static=True)
    alpha: float = eqx.field(static=True)
    beta: float = eqx.field(static=True)
    value: Any = eqx.field(static=True)

    def __init__(self, side: str, alpha: float, beta: float, value: Any = 0.0):
        self.side = _check_side(side)
        self.alpha = float(alpha)
        self.beta = float(beta)
        if not (math.isfinite(self.alpha) and math.isfinite(self.beta)):
            raise ValueError("`alpha` and `beta` must be finite.")
        if self.alpha == 0.0 and self.beta == 0.0:
            raise ValueError("`alpha` and `beta` cannot both be zero.")
        self.value = value

    def bind(self, parameters):
        value = _lower_value(self.value, ["t"], parameters, "A boundary value")
        return RobinBC(self.side, self.alpha, self.beta, value)

    def target(self, t: Array, args: Any) -> Array:
        """The boundary value at time `t`."""
        value = self.value
        if not callable(value):
            value = _lower_value(value, ["t"], (), "A boundary value")
        return value(t, args)

    def residual(self, u, t, domain, args):
        xb = _side_x(self.side, domain)
        out = self.alpha * u(xb, t) - self.target(t, args)
        if self.beta != 0.0:
            out = out + self.beta * jax.grad(u, argnums=0)(xb, t)
        return out[None]


def DirichletBC(side: str, value: Any = 0.0) -> RobinBC:
    """Dirichlet condition `u = value(t)` at `side` (`"left"` or `"right"`); a
    `RobinBC` with `alpha = 1, beta = 0`."""
    return RobinBC(side, 1.0, 0.0, value)


def NeumannBC(side: str, value: Any = 0.0) -> RobinBC:
    """Neumann condition `u_x = value(t)` at `side` (`"left"` or `"right"`); a
    `RobinBC` with `alpha = 0, beta = 1`. `u_x` is the derivative along `+x`."""
    return RobinBC(side, 0.0, 1.0, value)
