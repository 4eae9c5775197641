"""PDE declarations: residuals from formulas or callables, with initial and boundary
conditions, evaluated by autodiff on networks and by finite differences on grids."""

import functools
import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import sympy
from jaxtyping import Array, ArrayLike, Float

from ..symbolic import lower, parse
from ._domain import (
    _lower_value,
    AbstractBoundaryCondition,
    DirichletBC,
    Domain,
    NeumannBC,
    PeriodicBC,
    RobinBC,
)


_MAX_ORDER = 3


def _derivative_names(unknown: str) -> list[str]:
    names = []
    for order in range(1, _MAX_ORDER + 1):
        for combo in itertools.product("xt", repeat=order):
            names.append(f"{unknown}_{''.join(combo)}")
    return names


def _canonical(name: str, unknown: str) -> str:
    """`u_tx` -> `u_xt` (mixed partials commute): x's first, then t's."""
    suffix = name[len(unknown) + 1 :]
    return f"{unknown}_{'x' * suffix.count('x')}{'t' * suffix.count('t')}"


def derivative(u: Callable, x: Array, t: Array, which: str) -> Array:
    """The partial derivative of a scalar `u(x, t)` named by `which` (e.g. `"xxt"`).

    Computed by nested forward-mode autodiff (`jax.jvp`), one direction per letter.
    """
    fn = u
    for letter in which:
        fn = _directional(fn, letter)
    return fn(x, t)


def _directional(fn: Callable, letter: str) -> Callable:
    def d(x, t):
        one = jnp.ones_like(x)
        zero = jnp.zeros_like(x)
        tangents = (one, zero) if letter == "x" else (zero, one)
        return jax.jvp(fn, (x, t), tangents)[1]

    return d


def _diff(values: Array, h: Any, axis: int, order: int, periodic: bool) -> Array:
    """First or second derivative along `axis`, second-order accurate (central in
    the interior, one-sided at non-periodic edges)."""
    v = jnp.moveaxis(values, axis, 0)
    if periodic:
        up, down = jnp.roll(v, -1, axis=0), jnp.roll(v, 1, axis=0)
        out = (up - down) / (2 * h) if order == 1 else (up - 2 * v + down) / h**2
    elif order == 1:
        inner = (v[2:] - v[:-2]) / (2 * h)
        first = (-3 * v[0] + 4 * v[1] - v[2]) / (2 * h)
        last = (3 * v[-1] - 4 * v[-2] + v[-3]) / (2 * h)
        out = jnp.concatenate([first[None], inner, last[None]])
    else:
        inner = (v[2:] - 2 * v[1:-1] + v[:-2]) / h**2
        first = (2 * v[0] - 5 * v[1] + 4 * v[2] - v[3]) / h**2
        last = (2 * v[-1] - 5 * v[-2] + 4 * v[-3] - v[-4]) / h**2
        out = jnp.concatenate([first[None], inner, last[None]])
    return jnp.moveaxis(out, 0, axis)


def _fd_derivative(
    values: Float[Array, "nt nx"],
    dx: Any,
    dt: Any,
    which: str,
    periodic: bool,
) -> Array:
    """Second-order finite differences on a `(nt, nx)` grid (one-sided at edges)."""
    out = values
    for letter, axis, h, per in (("x", 1, dx, periodic), ("t", 0, dt, False)):
        count = which.count(letter)
        while count >= 2:
            out = _diff(out, h, axis, 2, per)
            count -= 2
        if count == 1:
            out = _diff(out, h, axis, 1, per)
    return out


@functools.lru_cache(maxsize=256)
def _formula_residual(equation, unknown: str, names: tuple) -> tuple:
    """Lower a formula residual once per `(formula, unknown, parameter names)`: the
    same declaration gives the same function object, so re-declaring a PDE leaves
    the static parts of a model unchanged (no recompilation)."""
    all_derivs = _derivative_names(unknown)
    expr = parse(equation, ["x", "t", unknown, *all_derivs, *names])
    used = sorted(str(s) for s in expr.free_symbols if str(s) in all_derivs)
    canonical = {d: _canonical(d, unknown) for d in used}
    expr = expr.subs({sympy.Symbol(d): sympy.Symbol(c) for d, c in canonical.items()})
    derivs = tuple(sorted(set(canonical.values())))
    fn = lower(expr, ["x", "t", unknown, *derivs], list(names))

    def residual(d, x, t, args):
        dtype = jnp.result_type(d[unknown])
        vec = jnp.stack(
            [jnp.asarray(v, dtype) for v in (x, t, d[unknown])]
            + [jnp.asarray(d[k], dtype) for k in derivs]
        )
        return fn(vec, args)

    return residual, derivs, str(expr)


class PDE(eqx.Module):
    """A scalar 1-D evolution PDE `R(x, t, u, u_t, u_x, u_xx, ...; params) = 0`.

    **Arguments:**

    - `equation`: the residual `R`, either a formula string over `x`, `t`, the
      unknown (default `u`), its partial derivatives written `u_t`, `u_x`, `u_xx`,
      `u_xt`, ... (up to third order) and the parameter names, e.g.
      `"u_t + c*u_x - nu*u_xx"`; or a callable `R(d, x, t, args)` where `d` maps
      derivative names (`"u"`, `"u_x"`, ...) to values.
    - `domain`: a `sciopt.pde.Domain`.
    - `initial`: the initial condition `u(x, t_min)`: a formula in `x` and the
      parameters, a number, or a callable `u0(x, args)`.
    - `boundary`: boundary conditions (`PeriodicBC`, `DirichletBC`, `NeumannBC`,
      `RobinBC`). Defaults to `PeriodicBC()` on a periodic domain, and must be given
      (one per side, or `PeriodicBC`) otherwise.
    - `parameters`: default parameter values, e.g. `{"c": 30.0, "nu": 0.01}`. Each
      method's `args` (a dict) overrides them; `args` may hold traced values.
    - `derivatives`: for a callable `equation`, the derivative names it reads
      (default: all up to second order).
    - `unknown`: the unknown's name.

    **Raises:**

    `ValueError` for a formula with unknown symbols, non-finite parameters, missing
    boundary conditions, or derivatives above third order.

    !!! Example

        ```python
        pde = sciopt.pde.PDE(
            "u_t + c*u_x", sciopt.pde.Domain((0, 2 * math.pi), (0, 1), periodic=True),
            initial="sin(x)", parameters={"c": 30.0},
        )
        ```
    """

    domain: Domain
    initial: Callable = eqx.field(static=True)
    boundary: tuple[AbstractBoundaryCondition, ...]
    parameters: tuple[tuple[str, float], ...] = eqx.field(static=True)
    derivatives: tuple[str, ...] = eqx.field(static=True)
    unknown: str = eqx.field(static=True)
    formula: str | None = eqx.field(static=True)
    initial_formula: str | None = eqx.field(static=True)
    _residual: Callable = eqx.field(static=True)

    def __init__(
        self,
        equation: str | sympy.Expr | Callable,
        domain: Domain,
        initial: Any,
        boundary: Sequence[AbstractBoundaryCondition] | None = None,
        parameters: Mapping[str, float] | None = None,
        derivatives: Sequence[str] | None = None,
        unknown: str = "u",
    ):
        if not isinstance(domain, Domain):
            raise TypeError(f"`domain` must be a sciopt.pde.Domain, got {domain!r}.")
        parameters = dict(parameters or {})
        for name, value in parameters.items():
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise ValueError(
                    f"Parameter {name!r} must be a number, got {value!r}."
                ) from None
            if not math.isfinite(value):
                raise ValueError(
                    f"Parameter {name!r} is not finite ({value}); pass a finite value."
                )
            parameters[name] = value
        names = list(parameters)
        reserved = {"x", "t", unknown}
        clash = reserved & set(names)
        if clash:
            raise ValueError(f"Parameter names {sorted(clash)} are reserved.")
        self.domain = domain
        self.parameters = tuple(parameters.items())
        self.unknown = unknown
        all_derivs = _derivative_names(unknown)
        if callable(equation) and not isinstance(equation, sympy.Basic):
            if derivatives is None:
                derivatives = [f"{unknown}_{s}" for s in ("x", "t", "xx", "xt", "tt")]
            derivatives = [_canonical(d, unknown) for d in derivatives]
            bad = [d for d in derivatives if d not in all_derivs]
            if bad:
                raise ValueError(
                    f"`derivatives` {bad} are not derivative names of {unknown!r} up "
                    f"to order {_MAX_ORDER} (e.g. '{unknown}_xx')."
                )
            self.derivatives = tuple(sorted(set(derivatives)))
            self.formula = None
            self._residual = equation
        else:
            self._residual, self.derivatives, self.formula = _formula_residual(
                equation, unknown, tuple(names)
            )
        self.initial_formula = initial if isinstance(initial, str) else None
        self.initial = _lower_value(initial, ["x"], names, "`initial`")
        if boundary is None:
            if not domain.periodic:
                raise ValueError(
                    "`boundary` is required on a non-periodic domain: pass one "
                    "condition per side (DirichletBC, NeumannBC, RobinBC)."
                )
            boundary = (PeriodicBC(),)
        boundary = tuple(boundary)
        for bc in boundary:
            if not isinstance(bc, AbstractBoundaryCondition):
                raise TypeError(
                    f"`boundary` entries must be boundary conditions, got {bc!r}."
                )
        if not domain.periodic:
            sides = sorted(bc.side for bc in boundary if isinstance(bc, RobinBC))
            if sides != ["left", "right"] and not any(
                isinstance(bc, PeriodicBC) for bc in boundary
            ):
                raise ValueError(
                    f"`boundary` must give one condition per side (left and right), "
                    f"got sides {sides}."
                )
        self.boundary = tuple(bc.bind(names) for bc in boundary)

    # -- parameters ---------------------------------------------------------------

    def args(self, args: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The parameter dict: the defaults overridden by `args`.

        **Raises:** `ValueError` for names that are not parameters, or concrete
        non-finite values.
        """
        out: dict[str, Any] = dict(self.parameters)
        if args is None:
            return out
        if not isinstance(args, Mapping):
            raise TypeError(
                f"`args` must be a dict of parameter values, got {type(args).__name__}."
            )
        unknown = sorted(set(args) - set(out))
        if unknown:
            raise ValueError(
                f"`args` has unknown parameters {unknown}; the PDE's parameters are "
                f"{sorted(out)}."
            )
        for name, value in args.items():
            if not isinstance(value, jax.core.Tracer):
                if not np.all(np.isfinite(np.asarray(value))):
                    raise ValueError(f"Parameter {name!r} in `args` is not finite.")
            out[name] = value
        return out

    # -- residuals ----------------------------------------------------------------

    def residual_from_derivatives(
        self, d: Mapping[str, Array], x: Array, t: Array, args: Any = None
    ) -> Array:
        """The residual from precomputed derivative values `d` (names as in
        `self.derivatives`, plus the unknown itself)."""
        return self._residual(d, x, t, self.args(args))

    def residual(
        self, u: Callable, x: ArrayLike, t: ArrayLike, args: Any = None
    ) -> Array:
        """The residual of a function `u(x, t) -> scalar` (e.g. a network) at the
        scalar point `(x, t)`, by autodiff. `jax.vmap` it over points.
        """
        x = jnp.asarray(x)
        t = jnp.asarray(t, x.dtype)
        d = {self.unknown: u(x, t)}
        for name in self.derivatives:
            d[name] = derivative(u, x, t, name[len(self.unknown) + 1 :])
        return self._residual(d, x, t, self.args(args))

    def grid_derivatives(
        self, values: Float[Array, "nt nx"], x: Array, t: Array
    ) -> dict[str, Array]:
        """Finite-difference derivatives (second order) of grid values `(nt, nx)` on
        uniform grids `x` (nx,) and `t` (nt,); periodic in `x` on periodic domains
        (then `x` must exclude `x_max`)."""
        dx = (x[-1] - x[0]) / (x.shape[0] - 1)
        dt = (t[-1] - t[0]) / (t.shape[0] - 1)
        d = {self.unknown: values}
        for name in self.derivatives:
            which = name[len(self.unknown) + 1 :]
            d[name] = _fd_derivative(values, dx, dt, which, self.domain.periodic)
        return d

    def residual_on_grid(
        self, values: Float[Array, "nt nx"], x: Array, t: Array, args: Any = None
    ) -> Float[Array, "nt nx"]:
        """The residual of grid values `(nt, nx)` by second-order finite differences
        (see `grid_derivatives`)."""
        d = self.grid_derivatives(values, x, t)
        X, T = jnp.meshgrid(x, t)
        flat = {k: v.reshape(-1) for k, v in d.items()}
        a = self.args(args)
        out = jax.vmap(lambda dd, xx, tt: self._residual(dd, xx, tt, a))(
            flat, X.reshape(-1), T.reshape(-1)
        )
        return out.reshape(values.shape)

    def initial_value(self, x: ArrayLike, args: Any = None) -> Array:
        """`u(x, t_min)` at the points `x` (any shape)."""
        x = jnp.asarray(x)
        a = self.args(args)
        flat = jax.vmap(lambda xx: jnp.asarray(self.initial(xx, a), x.dtype))(
            x.reshape(-1)
        )
        return flat.reshape(x.shape)

    def boundary_residual(self, u: Callable, t: ArrayLike, args: Any = None) -> Array:
        """All boundary residuals of `u(x, t)` at the scalar time `t`, stacked."""
        t = jnp.asarray(t)
        a = self.args(args)
        return jnp.concatenate(
            [bc.residual(u, t, self.domain, a) for bc in self.boundary]
        )

    # -- structure ------------------------------------------------------------------

    def evolution_rhs(
        self, d: Mapping[str, Array], x: Array, t: Array, args: Any = None
    ) -> Array:
        """`u_t` solved from `R = 0`, assuming `R = u_t + F(x, t, u, u_x, ...)`
        (`F` free of time derivatives): returns `-F`. Used by method-of-lines."""
        d = dict(d)
        d[f"{self.unknown}_t"] = jnp.zeros_like(d[self.unknown])
        return -self._residual(d, x, t, self.args(args))

    def describe(self) -> str:
        """The equation, for messages: its formula, or the callable's name and the
        derivatives it reads."""
        if self.formula is not None:
            return f"{self.formula!r} = 0"
        name = getattr(self._residual, "__name__", type(self._residual).__name__)
        return f"{name!r} (a callable reading {list(self.derivatives)})"

    @property
    def affine(self) -> bool:
        """Whether the residual is affine in the unknown and its derivatives (then
        a hard-constraint layer's least-squares problem is linear). `False` for a
        callable equation (not known)."""
        if self.formula is None:
            return False
        params = tuple(n for n, _ in self.parameters)
        return _is_affine(self.formula, (self.unknown, *self.derivatives), params)

    def require_time_derivative(self, model: str, *, first_order: bool) -> None:
        """Raise `ValueError`, naming `model` and the PDE, unless the PDE has a
        first time derivative `u_t` (`first_order`) or any time derivative.

        The evolution models (`PINNLoss` with its initial-condition term,
        `LagrangianPINN`, `method_of_lines`) need one; a PDE without it (e.g.
        `u_xx + u`) is stationary, and an initial condition does not determine its
        solution.
        """
        u = self.unknown
        ut = f"{u}_t"
        times = [d for d in self.derivatives if "t" in d[len(u) + 1 :]]
        missing = ut not in self.derivatives if first_order else not times
        if missing:
            need = ut if first_order else f"a time derivative ({ut}, {u}_tt, ...)"
            raise ValueError(
                f"{model} solves evolution equations {ut} + F(x, t, {u}, {u}_x, "
                f"...) = 0, but the PDE {self.describe()} has no term in {need}. "
                f"Add the {ut} term to the equation"
                + (
                    "; a callable equation must list it in `derivatives`."
                    if self.formula is None
                    else "."
                )
            )

    def check_evolution_form(self, model: str = "This method") -> None:
        """Raise `ValueError` unless `R = u_t + F` with `F` free of time derivatives."""
        self.require_time_derivative(model, first_order=True)
        u = self.unknown
        bad = [d for d in self.derivatives if "t" in d[len(u) + 1 :] and d != f"{u}_t"]
        if bad or f"{u}_t" not in self.derivatives:
            raise ValueError(
                f"The PDE must read {u}_t + F(x, t, {u}, {u}_x, ...) = 0 for this "
                f"method; it uses time derivatives {bad or 'none'}."
            )
        if self.formula is not None:
            names = ["x", "t", u, *self.derivatives, *(n for n, _ in self.parameters)]
            expr = parse(self.formula, names)
            coeff = sympy.simplify(sympy.diff(expr, sympy.Symbol(f"{u}_t")))
            if coeff != 1:
                raise ValueError(
                    f"The coefficient of {u}_t in {self.formula!r} must be 1 (got "
                    f"{coeff}); divide the equation by it."
                )

    def transport_form(self) -> tuple[Callable, Callable, Callable]:
        """Split `R = u_t + f1 u_x - f2 u_xx + s` with `f1, f2, s` functions of
        `(u, x, t)` and the parameters (the convection-diffusion class of the
        Lagrangian PINN).

        **Returns:**

        `(f1, f2, s)`, each `fn(u, x, t, args) -> scalar` (`args` a full parameter
        dict, see `args`). `f2` is `None` when the PDE has no diffusion term.

        **Raises:**

        `ValueError` when the PDE is a callable, or is not of that form.
        """
        if self.formula is None:
            raise ValueError(
                "The Lagrangian form needs a formula PDE (e.g. 'u_t + c*u_x - "
                "nu*u_xx'); a callable residual cannot be split into transport and "
                "diffusion parts."
            )
        names = tuple(n for n, _ in self.parameters)
        return _transport_form(self.formula, self.unknown, names, self.derivatives)


@functools.lru_cache(maxsize=128)
def _is_affine(formula: str, names: tuple, params: tuple) -> bool:
    expr = parse(formula, ["x", "t", *names, *params])
    syms = [sympy.Symbol(n) for n in names]
    return all(
        sympy.simplify(sympy.diff(expr, a, b)) == 0
        for i, a in enumerate(syms)
        for b in syms[i:]
    )


@functools.lru_cache(maxsize=128)
def _transport_form(formula, u, names, derivatives):
    expr = sympy.expand(parse(formula, ["x", "t", u, *derivatives, *names]))
    ut, ux, uxx = (sympy.Symbol(f"{u}_{s}") for s in ("t", "x", "xx"))
    allowed = {f"{u}_t", f"{u}_x", f"{u}_xx"}
    extra = [d for d in derivatives if d not in allowed]
    if extra:
        raise ValueError(
            f"The Lagrangian form supports u_t + f1(u, x, t) u_x - f2(u, x, t) "
            f"u_xx + s(u, x, t) = 0; {formula!r} also uses {extra}."
        )
    derivs = {ut, ux, uxx}
    parts = {}
    for name, sym in (("u_t", ut), ("f1", ux), ("f2", uxx)):
        coeff = sympy.simplify(sympy.diff(expr, sym))
        if coeff.free_symbols & derivs:
            raise ValueError(
                f"The Lagrangian form needs {formula!r} to be linear in "
                f"{sym} with a coefficient free of derivatives, got {coeff}."
            )
        parts[name] = coeff
    if parts["u_t"] != 1:
        raise ValueError(
            f"The coefficient of {ut} in {formula!r} must be 1 (got "
            f"{parts['u_t']}); divide the equation by it."
        )
    source = sympy.simplify(expr.subs({ut: 0, ux: 0, uxx: 0}))
    variables = [u, "x", "t"]

    def make(e):
        fn = lower(e, variables, names)

        def f(uu, xx, tt, args):
            dtype = jnp.result_type(uu)
            vec = jnp.stack([jnp.asarray(v, dtype) for v in (uu, xx, tt)])
            return fn(vec, args)

        return f

    f2 = None if parts["f2"] == 0 else make(-parts["f2"])
    return make(parts["f1"]), f2, make(source)


def from_spec(spec):
    """Build a `PDE` from a problem table (`sciopt.ProblemSpec`), or a `PDEFamily`
    for tables with `kind = "hard_constraint"`.

    Keys: `equation` (formula), `x` and `t` (intervals), `periodic` (bool),
    `initial` (formula in `x` and the parameters), `parameters` (table), and for
    non-periodic domains `boundary`: a list of tables `{type = "dirichlet" |
    "neumann" | "robin" | "periodic", side = "left" | "right", value = ..., alpha =
    ..., beta = ...}`.

    Family tables add `sample = {name = ["normal", mean, std] | ["uniform", lo,
    hi], ...}` (the instance parameters, in order; numbers may be constant formulas
    such as `"1/3"`), `num_sensors`, and `reference = {kind = "sine_series" |
    "cole_hopf" | "diffusion_sorption" | "method_of_lines", source = "...", ...}`
    (further keys of `reference` are the reference's options, e.g. `cells`).
    """
    data = spec.data
    for key in ("equation", "initial"):
        if key not in data:
            raise ValueError(f"Problem {spec.name!r}: missing key {key!r}.")
    domain = Domain(
        tuple(_eval_number(v) for v in data.get("x", (0.0, 2 * math.pi))),
        tuple(_eval_number(v) for v in data.get("t", (0.0, 1.0))),
        periodic=bool(data.get("periodic", False)),
    )
    boundary = None
    if "boundary" in data:
        boundary = []
        for table in data["boundary"]:
            kind = table.get("type")
            side = table.get("side", "left")
            value = table.get("value", 0.0)
            if kind == "dirichlet":
                boundary.append(DirichletBC(side, value))
            elif kind == "neumann":
                boundary.append(NeumannBC(side, value))
            elif kind == "robin":
                boundary.append(
                    RobinBC(
                        side,
                        _eval_number(table["alpha"]),
                        _eval_number(table["beta"]),
                        value,
                    )
                )
            elif kind == "periodic":
                boundary.append(PeriodicBC())
            else:
                raise ValueError(
                    f"Problem {spec.name!r}: boundary type must be dirichlet, "
                    f"neumann, robin or periodic, got {kind!r}."
                )
    pde = PDE(
        data["equation"],
        domain,
        data["initial"],
        boundary=boundary,
        parameters={k: _eval_number(v) for k, v in data.get("parameters", {}).items()},
    )
    if data.get("kind") != "hard_constraint":
        return pde
    from ._family import PDEFamily

    sample = {
        name: (dist[0], *(_eval_number(v) for v in dist[1:]))
        for name, dist in data.get("sample", {}).items()
    }
    ref = dict(data.get("reference", {}))
    kind = ref.pop("kind", None)
    source = ref.pop("source", "")
    return PDEFamily(
        pde,
        sample,
        num_sensors=int(data.get("num_sensors", 16)),
        reference=kind,
        reference_options=ref,
        reference_source=source,
        name=spec.name,
    )


def _eval_number(value: Any) -> float:
    """A number, or a constant formula such as `"2*pi"`."""
    if isinstance(value, (int, float)):
        return float(value)
    return float(parse(str(value), []))
