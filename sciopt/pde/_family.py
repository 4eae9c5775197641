"""Families of PDE instances: a `PDE` whose initial condition (or coefficients) has
parameters, and how to sample them; the heat, Burgers and diffusion-sorption presets
of the hard-constrained layers are written in this declaration."""

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from ._domain import DirichletBC, Domain, RobinBC
from ._pde import PDE
from ._reference import diffusion_sorption_mol, heat_sine_series, method_of_lines


_DISTRIBUTIONS = ("normal", "uniform")


def _check_distribution(name: str, spec: Any) -> tuple[str, float, float]:
    try:
        kind, a, b = spec
        a, b = float(a), float(b)
    except (TypeError, ValueError):
        raise ValueError(
            f"`sample[{name!r}]` must be ('normal', mean, std) or ('uniform', lo, "
            f"hi), got {spec!r}."
        ) from None
    if kind not in _DISTRIBUTIONS:
        raise ValueError(
            f"`sample[{name!r}]`: the distribution must be one of {_DISTRIBUTIONS}, "
            f"got {kind!r}."
        )
    if not (math.isfinite(a) and math.isfinite(b)):
        raise ValueError(f"`sample[{name!r}]` has non-finite bounds {(a, b)}.")
    if (kind == "normal" and b < 0) or (kind == "uniform" and b < a):
        raise ValueError(
            f"`sample[{name!r}]` = {spec!r}: the standard deviation must be "
            "non-negative (normal) or lo <= hi (uniform)."
        )
    return kind, a, b


class PDEFamily(eqx.Module):
    """A family of instances of one `PDE`: some of its parameters (usually those of
    the initial condition) vary from instance to instance and are drawn from declared
    distributions.

    An instance is the vector of those parameters, in the order of `sample`. The
    remaining parameters (e.g. a viscosity `nu`) keep their defaults, or are passed
    as `args` to the methods that take them, as arrays: they may be traced and
    differentiated.

    **Arguments:**

    - `pde`: the `sciopt.pde.PDE`; every name in `sample` must be one of its
      parameters.
    - `sample`: `{name: ("normal", mean, std) | ("uniform", lo, hi)}`, the
      distribution of each instance parameter.
    - `num_sensors`: how many equispaced values of the initial condition describe an
      instance to a `BasisNetwork`.
    - `reference`: the reference solution: `"sine_series"` (heat equation, the
      instance parameters are the sine coefficients), `"cole_hopf"` (viscous
      Burgers from a cosine-series Cole-Hopf potential, the instance parameters are
      its coefficients), `"diffusion_sorption"` (method of lines of
      `diffusion_sorption_mol`, the instance parameter is the initial state),
      `"method_of_lines"` (any evolution PDE, `sciopt.pde.method_of_lines` on a grid
      four times finer), a callable `reference(args, t, x) -> (nt, nx)` (`args` the
      full parameter dict), or `None`.
    - `reference_options`: keyword arguments of the named reference (e.g.
      `{"cells": 128}`).
    - `reference_source`: a one-line description of the reference.
    - `name`: a label.

    **Raises:** `ValueError` for a sampled name that is not a parameter of the PDE
    or a malformed distribution.

    !!! Example

        ```python
        pde = sciopt.pde.PDE(
            "u_t - nu*u_xx", sciopt.pde.Domain((0, 1), (0, 1)),
            initial="a1*sin(pi*x) + a2*sin(2*pi*x)",
            boundary=[sciopt.pde.DirichletBC("left"), sciopt.pde.DirichletBC("right")],
            parameters={"nu": 0.05, "a1": 0.0, "a2": 0.0},
        )
        family = sciopt.pde.PDEFamily(
            pde, {"a1": ("normal", 0, 1), "a2": ("normal", 0, 0.5)},
            reference="sine_series",
        )
        instances = family.sample(jax.random.key(0), 16)  # (16, 2)
        ```
    """

    pde: PDE
    parameters: tuple[str, ...] = eqx.field(static=True)
    distributions: tuple[tuple[str, float, float], ...] = eqx.field(static=True)
    num_sensors: int = eqx.field(static=True)
    reference: str | Callable | None = eqx.field(static=True)
    reference_options: tuple[tuple[str, Any], ...] = eqx.field(static=True)
    reference_source: str = eqx.field(static=True)
    name: str = eqx.field(static=True)

    def __init__(
        self,
        pde: PDE,
        sample: Mapping[str, Sequence] | None = None,
        *,
        num_sensors: int = 16,
        reference: str | Callable | None = None,
        reference_options: Mapping[str, Any] | None = None,
        reference_source: str = "",
        name: str = "",
    ):
        if not isinstance(pde, PDE):
            raise TypeError(f"`pde` must be a sciopt.pde.PDE, got {type(pde)}.")
        sample = dict(sample or {})
        known = [n for n, _ in pde.parameters]
        unknown = [n for n in sample if n not in known]
        if unknown:
            raise ValueError(
                f"`sample` names {unknown}, which are not parameters of the PDE "
                f"(its parameters are {known}): declare them in `parameters`."
            )
        if not (isinstance(num_sensors, (int, np.integer)) and num_sensors >= 1):
            raise ValueError(
                f"`num_sensors` must be a positive int, got {num_sensors}."
            )
        if isinstance(reference, str) and reference not in _REFERENCES:
            raise ValueError(
                f"`reference` must be one of {sorted(_REFERENCES)}, a callable or "
                f"None, got {reference!r}."
            )
        self.pde = pde
        self.parameters = tuple(sample)
        self.distributions = tuple(_check_distribution(n, s) for n, s in sample.items())
        self.num_sensors = int(num_sensors)
        self.reference = reference
        self.reference_options = tuple(sorted((reference_options or {}).items()))
        self.reference_source = str(reference_source)
        self.name = str(name)

    # -- instances ------------------------------------------------------------------

    @property
    def num_params(self) -> int:
        """The length of an instance vector."""
        return len(self.parameters)

    @property
    def t_span(self) -> tuple[float, float]:
        """`(t_min, t_max)` of the PDE's domain."""
        return self.pde.domain.t_min, self.pde.domain.t_max

    @property
    def x_span(self) -> tuple[float, float]:
        """`(x_min, x_max)` of the PDE's domain."""
        return self.pde.domain.x_min, self.pde.domain.x_max

    def sample(self, key: PRNGKeyArray, n: int, dtype=None) -> Float[Array, "n p"]:
        """`n` instances drawn from the declared distributions: shape `(n, p)`."""
        dtype = jnp.zeros(()).dtype if dtype is None else dtype
        kinds = [k for k, _, _ in self.distributions]
        a = np.array([[a for _, a, _ in self.distributions]], dtype)
        b = np.array([[b for _, _, b in self.distributions]], dtype)
        shape = (n, self.num_params)
        out = jnp.zeros(shape, dtype)
        if "normal" in kinds:
            z = jr.normal(key, shape, dtype)
            normal = np.array([[k == "normal" for k in kinds]])
            out = jnp.where(normal, (a + b * z).astype(dtype), out)
        if "uniform" in kinds:
            k_u = jr.fold_in(key, 1) if "normal" in kinds else key
            uniform = np.array([[k == "uniform" for k in kinds]])
            lo, hi = np.where(uniform, a, 0.0), np.where(uniform, b, 1.0)
            u = jr.uniform(k_u, shape, dtype, lo, hi)
            out = jnp.where(uniform, u, out)
        return out

    def check_instance(self, instance, name: str = "instance") -> None:
        """Raise `ValueError` unless `instance` is one vector of `num_params`
        parameters (checked at trace time, on shapes only)."""
        shape = jnp.shape(instance)
        expected = self.num_params
        if shape != (expected,):
            got = f"length {shape[0]}" if len(shape) == 1 else f"shape {shape}"
            raise ValueError(
                f"`{name}` has {got}, but the family "
                f"{self.name or self.pde.describe()} describes an instance by "
                f"{expected} parameters {list(self.parameters)}"
                f": pass a vector of length {expected} (one row of "
                "`family.sample(key, n)`); for a batch, `jax.vmap` over the rows."
            )

    def args(self, instance=None, args: Mapping[str, Any] | None = None) -> dict:
        """The PDE's full parameter dict for one instance: its defaults, overridden
        by `args` and by the instance's parameters.

        **Raises:** `ValueError` for an instance of the wrong length, or `args`
        naming an instance parameter or a name that is not a parameter.
        """
        a = dict(args or {})
        clash = sorted(set(a) & set(self.parameters))
        if clash:
            raise ValueError(
                f"`args` sets {clash}, which the instance vector holds: pass them in "
                "the instance instead."
            )
        if instance is None:
            instance = jnp.zeros((0,))
        self.check_instance(instance)
        for i, name in enumerate(self.parameters):
            a[name] = instance[i]
        return self.pde.args(a)

    def sensors(self, instance, args: Mapping[str, Any] | None = None) -> Array:
        """The instance's initial condition at `num_sensors` equispaced points."""
        x0, x1 = self.x_span
        dtype = (
            jnp.result_type(float) if instance is None else jnp.result_type(instance)
        )
        x = jnp.linspace(x0, x1, self.num_sensors, dtype=dtype)
        return self.pde.initial_value(x, self.args(instance, args))

    def grid(self, nt: int, nx: int, dtype=None) -> tuple[Array, Array]:
        """Equispaced `nt` times and `nx` points of the domain, both ends included."""
        dtype = jnp.zeros(()).dtype if dtype is None else dtype
        return (
            jnp.linspace(*self.t_span, nt, dtype=dtype),
            jnp.linspace(*self.x_span, nx, dtype=dtype),
        )

    # -- references -----------------------------------------------------------------

    def reference_solution(
        self, instance, t: Array, x: Array, args: Mapping[str, Any] | None = None
    ) -> Float[Array, "nt nx"]:
        """The reference solution of one instance on the grid `t` (nt,) x `x` (nx,).

        **Raises:** `ValueError` when the family declares no reference.
        """
        if self.reference is None:
            raise ValueError(
                "This family declares no reference: pass `reference=` to PDEFamily."
            )
        a = self.args(instance, args)
        if callable(self.reference):
            return self.reference(a, t, x)
        return _REFERENCES[self.reference](
            self, a, t, x, **dict(self.reference_options)
        )

    def reference_grid(
        self, instances: Array, nt: int, nx: int, args: Mapping[str, Any] | None = None
    ) -> Float[Array, "n nt nx"]:
        """The reference of each instance (rows of `instances`) on the `nt x nx`
        grid of `grid`."""
        instances = jnp.asarray(instances)
        t, x = self.grid(nt, nx, instances.dtype)
        fn = jax.vmap(lambda p: self.reference_solution(p, t, x, args))
        return eqx.filter_jit(fn)(instances)

    # -- presets --------------------------------------------------------------------

    @staticmethod
    def preset(name: str, **options) -> "PDEFamily":
        """A named family, written in this declaration: `"heat"`, `"burgers"` or
        `"diffusion_sorption"`; `options` are the keyword arguments of
        `heat_family`, `burgers_family` or `diffusion_sorption_family` below.

        - `"heat"` (`nu=0.05, modes=3, t_final=1.0, num_sensors=16`): `u_t - nu u_xx
          = 0` on `(0, 1) x (0, t_final)`, `u = 0` at both ends, initial condition
          `sum_k a_k sin(k pi x)` with `a_k ~ N(0, 1/k^2)`; closed-form reference.
        - `"burgers"` (`nu=0.05, modes=3, amplitude=0.25, t_final=1.0,
          num_sensors=16`): `u_t + u u_x - nu u_xx = 0`, `u = 0` at both ends; the
          Cole-Hopf family `u = -2 nu phi_x / phi`, `phi = 1 + sum_k c_k e^{-nu k^2
          pi^2 t} cos(k pi x)`, `c_k ~ U(-amplitude, amplitude)`; closed-form
          reference.
        - `"diffusion_sorption"` (`t_final=500.0, u0_range=(0.0, 0.2), cells=128,
          num_sensors=4, diffusion=5e-4, porosity=0.29, rho_s=2880.0, k_f=3.5e-4,
          n_f=0.874`): `R(u) u_t - D u_xx = 0` with the Freundlich retardation `R(u)
          = 1 + (1 - porosity)/porosity rho_s k_f n_f (max(u, 0) + 1e-6)^(n_f - 1)`
          (PDEBench's constants), `u = 1` at `x = 0`, `u + D u_x = 0` at `x = 1`, a
          constant initial state `u0 ~ U(u0_range)`; method-of-lines reference.

        Re-declaring a preset with the same options gives an equal family (no
        recompilation of a jitted layer that holds it).
        """
        if name not in _PRESETS:
            raise ValueError(f"`name` must be one of {sorted(_PRESETS)}, got {name!r}.")
        return _PRESETS[name](**options)


def _kpi(k: int, coefficient: str = "") -> str:
    """`"pi"`, `"2*pi"`, ... or, with a coefficient name, `"c1"`, `"2*c2"`, ..."""
    if coefficient:
        return f"{coefficient}{k}" if k == 1 else f"{k}*{coefficient}{k}"
    return "pi" if k == 1 else f"{k}*pi"


def _dirichlet_zero():
    return [DirichletBC("left", 0.0), DirichletBC("right", 0.0)]


def heat_family(
    nu: float = 0.05, modes: int = 3, t_final: float = 1.0, num_sensors: int = 16
) -> PDEFamily:
    names = [f"a{k}" for k in range(1, modes + 1)]
    initial = " + ".join(f"a{k}*sin({_kpi(k)}*x)" for k in range(1, modes + 1))
    pde = PDE(
        "u_t - nu*u_xx",
        Domain((0.0, 1.0), (0.0, float(t_final))),
        initial,
        boundary=_dirichlet_zero(),
        parameters={"nu": nu, **dict.fromkeys(names, 0.0)},
    )
    return PDEFamily(
        pde,
        {n: ("normal", 0.0, 1.0 / k) for k, n in enumerate(names, 1)},
        num_sensors=num_sensors,
        reference="sine_series",
        reference_source="closed form (sine series)",
        name="heat",
    )


def burgers_family(
    nu: float = 0.05,
    modes: int = 3,
    amplitude: float = 0.25,
    t_final: float = 1.0,
    num_sensors: int = 16,
) -> PDEFamily:
    if modes * amplitude >= 1:
        raise ValueError(
            "`modes * amplitude` must be below 1 so that the Cole-Hopf potential stays "
            f"positive; got {modes} * {amplitude}."
        )
    ks = range(1, modes + 1)
    names = [f"c{k}" for k in ks]
    slope = " + ".join(f"{_kpi(k, 'c')}*sin({_kpi(k)}*x)" for k in ks)
    phi = " + ".join(f"c{k}*cos({_kpi(k)}*x)" for k in ks)
    pde = PDE(
        "u_t + u*u_x - nu*u_xx",
        Domain((0.0, 1.0), (0.0, float(t_final))),
        f"2*nu*pi*({slope})/(1 + {phi})",
        boundary=_dirichlet_zero(),
        parameters={"nu": nu, **dict.fromkeys(names, 0.0)},
    )
    return PDEFamily(
        pde,
        {n: ("uniform", -amplitude, amplitude) for n in names},
        num_sensors=num_sensors,
        reference="cole_hopf",
        reference_source="closed form (Cole-Hopf)",
        name="burgers",
    )


def diffusion_sorption_family(
    t_final: float = 500.0,
    u0_range: tuple[float, float] = (0.0, 0.2),
    cells: int = 128,
    num_sensors: int = 4,
    diffusion: float = 5e-4,
    porosity: float = 0.29,
    rho_s: float = 2880.0,
    k_f: float = 3.5e-4,
    n_f: float = 0.874,
) -> PDEFamily:
    lo, hi = u0_range
    pde = PDE(
        "(1 + (1 - porosity)/porosity*rho_s*k_f*n_f*(Max(u, 0) + 1e-6)**(n_f - 1))"
        "*u_t - D*u_xx",
        Domain((0.0, 1.0), (0.0, float(t_final))),
        "u0",
        boundary=[DirichletBC("left", 1.0), RobinBC("right", 1.0, diffusion, 0.0)],
        parameters=dict(
            D=diffusion, porosity=porosity, rho_s=rho_s, k_f=k_f, n_f=n_f, u0=0.0
        ),
    )
    return PDEFamily(
        pde,
        {"u0": ("uniform", lo, hi)},
        num_sensors=num_sensors,
        reference="diffusion_sorption",
        reference_options={"cells": int(cells)},
        reference_source=(
            f"diffrax method of lines (Kvaerno5, {cells} finite-volume cells)"
        ),
        name="diffusion_sorption",
    )


_PRESETS = {
    "heat": heat_family,
    "burgers": burgers_family,
    "diffusion_sorption": diffusion_sorption_family,
}


# -- named references (module-level functions: equal across re-declarations) -------


def _coefficients(family, a, dtype):
    return jnp.stack([jnp.asarray(a[n], dtype) for n in family.parameters])


def _sine_series(family, a, t, x):
    dtype = jnp.result_type(x)
    coeffs = _coefficients(family, a, dtype)
    return heat_sine_series(x, t, a["nu"], coeffs, family.pde.domain)


def _cole_hopf(family, a, t, x):
    """`u = -2 nu phi_x / phi`, `phi = 1 + sum_k c_k exp(-nu (k pi / L)^2 (t - t0))
    cos(k pi (x - x0) / L)`: solves Burgers with `u = 0` at both ends while `phi > 0`
    (checked against the quadrature `burgers_cole_hopf` in the tests)."""
    dom = family.pde.domain
    dtype = jnp.result_type(x)
    c = _coefficients(family, a, dtype)
    k = (jnp.arange(1, c.shape[0] + 1, dtype=dtype) * jnp.pi / dom.length)[None, None]
    tt = (jnp.asarray(t, dtype) - dom.t_min)[:, None, None]
    xx = (jnp.asarray(x, dtype) - dom.x_min)[None, :, None]
    decay = jnp.exp(-a["nu"] * k**2 * tt)
    phi = 1 + (decay * jnp.cos(k * xx)) @ c
    phi_x = -(decay * k * jnp.sin(k * xx)) @ c
    return -2 * a["nu"] * phi_x / phi


def _diffusion_sorption(family, a, t, x, cells=128):
    return diffusion_sorption_mol(
        a[family.parameters[0]],
        t,
        x,
        diffusion=a["D"],
        porosity=a["porosity"],
        rho_s=a["rho_s"],
        k_f=a["k_f"],
        n_f=a["n_f"],
        cells=cells,
    )


def _method_of_lines(family, a, t, x, refine=4):
    pde = family.pde
    nx = x.shape[0]
    fine = refine * nx if pde.domain.periodic else refine * (nx - 1) + 1
    _, u = method_of_lines(
        pde, fine, t, a, order=4 if pde.domain.periodic else 2, dtype=x.dtype
    )
    return u[:, ::refine]


_REFERENCES = {
    "sine_series": _sine_series,
    "cole_hopf": _cole_hopf,
    "diffusion_sorption": _diffusion_sorption,
    "method_of_lines": _method_of_lines,
}
