"""PDE problem families for the hard-constrained layers: heat, viscous Burgers and
1-D diffusion-sorption, each with a family of initial conditions and a reference."""

import functools as ft
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, PRNGKeyArray

from ._hc_references import (
    burgers_cole_hopf,
    diffusion_sorption_mol,
    heat_sine_series,
    retardation,
)


class HCProblem(eqx.Module):
    """A family of 1-D evolution PDE instances `u_t = ...` on `t_span x x_span`.

    An instance is a parameter vector `p` (e.g. the Fourier coefficients of its
    initial condition). Every pointwise function receives the contracted values
    `v = {"u": u, "u_t": u_t, "u_x": u_x, "u_xx": u_xx}` at one point.

    **Arguments:**

    - `name`: a label.
    - `t_span`, `x_span`: the space-time box; the initial condition holds at
      `t_span[0]`, the boundary conditions at `x_span[0]` (left) and `x_span[1]`
      (right).
    - `residual`: `residual(v, t, x, p) -> scalar`, the PDE residual, already scaled
      to the units of `u` (e.g. multiplied by the time span).
    - `left`, `right`: `bc(v, t, p) -> scalar`, the boundary residuals.
    - `initial`: `initial(p, x) -> u(t_span[0], x)` (vectorised over `x`).
    - `reference`: `reference(p, t, x) -> u` on the grid `t x x` (shape `(nt, nx)`).
    - `sample`: `sample(key, n) -> (n, num_params)` instances.
    - `affine`: whether `residual`, `left` and `right` are affine in `v` (then a
      linear least-squares solve is exact).
    - `num_sensors`: how many equispaced samples of the initial condition describe an
      instance to the basis network.
    - `omega_init`: the starting value of every weight in the nonlinear solves.
    - `reference_source`: a one-line description of the reference.
    """

    name: str = eqx.field(static=True)
    t_span: tuple[float, float] = eqx.field(static=True)
    x_span: tuple[float, float] = eqx.field(static=True)
    residual: Callable = eqx.field(static=True)
    left: Callable = eqx.field(static=True)
    right: Callable = eqx.field(static=True)
    initial: Callable = eqx.field(static=True)
    reference: Callable = eqx.field(static=True)
    sample: Callable = eqx.field(static=True)
    affine: bool = eqx.field(static=True)
    num_sensors: int = eqx.field(static=True, default=16)
    omega_init: float = eqx.field(static=True, default=0.0)
    reference_source: str = eqx.field(static=True, default="")

    @property
    def num_params(self) -> int:
        """The length of an instance's parameter vector (from `sample`'s shape)."""
        shape = jax.eval_shape(lambda key: self.sample(key, 1), jr.key(0)).shape
        return int(shape[-1])

    def check_instance(self, instance, name: str = "instance") -> None:
        """Raise `ValueError` unless `instance` is one parameter vector of length
        `num_params` (checked at trace time, on shapes only)."""
        shape = jnp.shape(instance)
        expected = self.num_params
        if shape != (expected,):
            got = f"length {shape[0]}" if len(shape) == 1 else f"shape {shape}"
            raise ValueError(
                f"`{name}` has {got}, but problem {self.name!r} describes an "
                f"instance by {expected} parameters: pass a vector of length "
                f"{expected} (one row of `problem.sample(key, n)`); for a batch, "
                "`jax.vmap` over the rows."
            )

    def sensors(self, p: Array) -> Float[Array, " s"]:
        """The instance's initial condition at `num_sensors` equispaced points."""
        x0, x1 = self.x_span
        x = jnp.linspace(x0, x1, self.num_sensors, dtype=p.dtype)
        return self.initial(p, x)

    def grid(self, nt: int, nx: int, dtype=None) -> tuple[Array, Array]:
        """Equispaced `nt` times and `nx` points, both ends included."""
        dtype = jnp.zeros(()).dtype if dtype is None else dtype
        return (
            jnp.linspace(*self.t_span, nt, dtype=dtype),
            jnp.linspace(*self.x_span, nx, dtype=dtype),
        )


def _zero_dirichlet(v, t, p):
    return v["u"]


def _sine_initial(p, x):
    return heat_sine_series(p, 0.0, jnp.zeros_like(x), x)


def _heat_residual(v, t, x, p, *, nu, duration):
    return duration * (v["u_t"] - nu * v["u_xx"])


def _heat_sample(key, n, *, modes, dtype):
    scale = 1.0 / jnp.arange(1, modes + 1, dtype=dtype)
    return jr.normal(key, (n, modes), dtype) * scale[None]


def hc_heat(
    nu: float = 0.05, modes: int = 3, t_final: float = 1.0, num_sensors: int = 16
) -> HCProblem:
    """`u_t = nu u_xx` on `(0, t_final) x (0, 1)`, `u = 0` at both ends, initial
    condition `sum_k a_k sin(k pi x)` with `a_k ~ N(0, 1/k^2)`; closed-form reference.
    """
    return HCProblem(
        name="heat",
        t_span=(0.0, float(t_final)),
        x_span=(0.0, 1.0),
        residual=ft.partial(_heat_residual, nu=nu, duration=float(t_final)),
        left=_zero_dirichlet,
        right=_zero_dirichlet,
        initial=_sine_initial,
        reference=lambda p, t, x: heat_sine_series(p, nu, t[:, None], x[None, :]),
        sample=lambda key, n, dtype=None: _heat_sample(
            key, n, modes=modes, dtype=jnp.zeros(()).dtype if dtype is None else dtype
        ),
        affine=True,
        num_sensors=num_sensors,
        reference_source="closed form (sine series)",
    )


def _burgers_residual(v, t, x, p, *, nu, duration):
    return duration * (v["u_t"] + v["u"] * v["u_x"] - nu * v["u_xx"])


def _burgers_sample(key, n, *, modes, amplitude, dtype):
    return jr.uniform(key, (n, modes), dtype, -amplitude, amplitude)


def hc_burgers(
    nu: float = 0.05,
    modes: int = 3,
    amplitude: float = 0.25,
    t_final: float = 1.0,
    num_sensors: int = 16,
) -> HCProblem:
    """Viscous Burgers `u_t + u u_x = nu u_xx` on `(0, t_final) x (0, 1)`, `u = 0` at
    both ends; the Cole-Hopf family `phi = 1 + sum_k c_k e^{-nu k^2 pi^2 t}
    cos(k pi x)` with `c_k ~ U(-amplitude, amplitude)` gives closed-form references.
    """
    if modes * amplitude >= 1:
        raise ValueError(
            "`modes * amplitude` must be below 1 so that the Cole-Hopf potential stays "
            f"positive; got {modes} * {amplitude}."
        )
    return HCProblem(
        name="burgers",
        t_span=(0.0, float(t_final)),
        x_span=(0.0, 1.0),
        residual=ft.partial(_burgers_residual, nu=nu, duration=float(t_final)),
        left=_zero_dirichlet,
        right=_zero_dirichlet,
        initial=lambda p, x: burgers_cole_hopf(p, nu, jnp.zeros_like(x), x),
        reference=lambda p, t, x: burgers_cole_hopf(p, nu, t[:, None], x[None, :]),
        sample=lambda key, n, dtype=None: _burgers_sample(
            key,
            n,
            modes=modes,
            amplitude=amplitude,
            dtype=jnp.zeros(()).dtype if dtype is None else dtype,
        ),
        affine=False,
        num_sensors=num_sensors,
        reference_source="closed form (Cole-Hopf)",
    )


def _ds_residual(v, t, x, p, *, constants, duration):
    diffusion = constants["diffusion"]
    r = retardation(
        v["u"],
        constants["porosity"],
        constants["rho_s"],
        constants["k_f"],
        constants["n_f"],
    )
    return duration * (r * v["u_t"] - diffusion * v["u_xx"])


def _ds_reference(p, t, x, *, constants, cells):
    fn = jax.vmap(lambda u0: diffusion_sorption_mol(u0, t, x, cells=cells, **constants))
    return fn(p[None, 0])[0]


def hc_diffusion_sorption(
    t_final: float = 500.0,
    u0_range: tuple[float, float] = (0.0, 0.2),
    cells: int = 128,
    num_sensors: int = 4,
    diffusion: float = 5e-4,
    porosity: float = 0.29,
    rho_s: float = 2880.0,
    k_f: float = 3.5e-4,
    n_f: float = 0.874,
) -> HCProblem:
    """1-D diffusion-sorption `u_t = D / R(u) u_xx` (PDEBench's constants), written
    `R(u) u_t - D u_xx = 0`, on `(0, t_final) x (0, 1)`; `u(t, 0) = 1`, outflow
    `u(t, 1) + D u_x(t, 1) = 0`, constant initial state `u0 ~ U(u0_range)`.

    The reference is the diffrax method of lines with `cells` finite-volume cells.
    """
    constants = dict(
        diffusion=diffusion, porosity=porosity, rho_s=rho_s, k_f=k_f, n_f=n_f
    )
    lo, hi = u0_range
    return HCProblem(
        name="diffusion_sorption",
        t_span=(0.0, float(t_final)),
        x_span=(0.0, 1.0),
        residual=ft.partial(_ds_residual, constants=constants, duration=float(t_final)),
        left=lambda v, t, p: v["u"] - 1,
        right=lambda v, t, p: v["u"] + diffusion * v["u_x"],
        initial=lambda p, x: jnp.full_like(x, p[0]),
        reference=ft.partial(_ds_reference, constants=constants, cells=cells),
        sample=lambda key, n, dtype=None: jr.uniform(
            key, (n, 1), jnp.zeros(()).dtype if dtype is None else dtype, lo, hi
        ),
        affine=False,
        num_sensors=num_sensors,
        reference_source=(
            f"diffrax method of lines (Kvaerno5, {cells} finite-volume cells)"
        ),
    )


_BUILDERS = {
    "heat": hc_heat,
    "burgers": hc_burgers,
    "diffusion_sorption": hc_diffusion_sorption,
}


def hc_problem(pde: str, **kwargs) -> HCProblem:
    """Build a named problem family: `"heat"`, `"burgers"` or `"diffusion_sorption"`,
    with keyword arguments passed to its builder."""
    if pde not in _BUILDERS:
        raise ValueError(f"`pde` must be one of {sorted(_BUILDERS)}, got {pde!r}.")
    return _BUILDERS[pde](**kwargs)


def hc_reference_grid(
    problem: HCProblem, instances: Array, nt: int, nx: int
) -> Float[Array, "n nt nx"]:
    """The problem's reference for each instance on its `nt x nx` grid."""
    t, x = problem.grid(nt, nx, instances.dtype)
    return jax.jit(jax.vmap(lambda p: problem.reference(p, t, x)))(instances)


def sample_instances(
    problem: HCProblem, key: PRNGKeyArray, n: int, dtype=None
) -> Float[Array, "n p"]:
    """`n` random instances of `problem`."""
    return problem.sample(key, n, dtype)
