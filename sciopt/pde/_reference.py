"""Reference solutions: closed forms (advection, convection-diffusion, heat, Cole-Hopf
viscous Burgers) and diffrax method-of-lines solves on grids (any evolution PDE, and a
finite-volume solver for 1-D diffusion-sorption)."""

from collections.abc import Callable
from typing import Any

import diffrax as dfx
import jax
import jax.numpy as jnp
import numpy as np
import sympy
from jaxtyping import Array, ArrayLike, Float

from .._misc import raise_if_failed
from ..symbolic import lower, parse
from ._domain import Domain, RobinBC
from ._pde import PDE


def _checked_ys(sol: dfx.Solution) -> Array:
    """`sol.ys` of a solve run with `throw=False`, raising with diffrax's message if it
    failed (diffrax's own `throw=True` compiles a host callback into every solve)."""
    return raise_if_failed(
        sol.ys,
        sol.result,
        dfx.RESULTS,
        "The method-of-lines reference solve failed (raise `max_steps` or loosen "
        "`rtol`/`atol`): ",
    )


def advection_solution(
    u0: Callable, x: ArrayLike, t: ArrayLike, c: float, domain: Domain
) -> Float[Array, "nt nx"]:
    """Exact solution `u(x, t) = u0(x - c t)` of `u_t + c u_x = 0` on a periodic
    domain, on the grid `t` (nt,) x `x` (nx,).

    **Arguments:**

    - `u0`: the initial condition, a vectorised function of `x`.
    - `x`, `t`: 1-D grids; `c`: the speed; `domain`: a periodic `Domain`.
    """
    x = jnp.asarray(x)
    t = jnp.asarray(t, x.dtype)
    shifted = domain.wrap(x[None, :] - c * (t[:, None] - domain.t_min))
    return u0(shifted)


def convection_diffusion_solution(
    u0_values: Float[ArrayLike, " nx"],
    t: ArrayLike,
    c: float,
    nu: float,
    domain: Domain,
) -> Float[Array, "nt nx"]:
    """Exact (spectral) solution of `u_t + c u_x = nu u_xx` on a periodic domain for
    an initial condition sampled on the uniform periodic grid (`x_max` left out):
    each Fourier mode `k` is multiplied by `exp(-(nu k^2 + i c k) t)`.

    Exact to rounding for initial conditions resolved by the grid (e.g. `sin x`).
    """
    u0_values = jnp.asarray(u0_values)
    t = jnp.asarray(t, u0_values.dtype) - domain.t_min
    nx = u0_values.shape[0]
    k = 2 * jnp.pi * jnp.fft.rfftfreq(nx, d=domain.length / nx).astype(t.dtype)
    modes = jnp.fft.rfft(u0_values)
    decay = jnp.exp(-(nu * k[None, :] ** 2) * t[:, None])
    phase = c * k[None, :] * t[:, None]
    factor = jax.lax.complex(decay * jnp.cos(phase), -decay * jnp.sin(phase))
    return jnp.fft.irfft(modes[None, :] * factor, n=nx, axis=1).astype(u0_values.dtype)


def heat_sine_series(
    x: ArrayLike,
    t: ArrayLike,
    nu: float,
    coefficients: ArrayLike,
    domain: Domain,
) -> Float[Array, "nt nx"]:
    """Exact solution of `u_t = nu u_xx` with `u = 0` at both ends:
    `u = sum_k b_k exp(-nu (k pi / L)^2 t) sin(k pi (x - x_min) / L)`, `k = 1..K`.

    **Arguments:** `coefficients` are `b_1, ..., b_K` (the sine coefficients of the
    initial condition); `x`, `t` 1-D grids.
    """
    x = jnp.asarray(x)
    t = jnp.asarray(t, x.dtype) - domain.t_min
    b = jnp.asarray(coefficients, x.dtype)
    k = jnp.arange(1, b.shape[0] + 1, dtype=x.dtype)
    lam = (k * jnp.pi / domain.length) ** 2
    modes = jnp.sin(k[:, None] * jnp.pi * (x[None, :] - domain.x_min) / domain.length)
    decay = jnp.exp(-nu * lam[None, :] * t[:, None])
    return (decay * b[None, :]) @ modes


def antiderivative(initial: str, x0: float = 0.0) -> Callable:
    """`F(y) = int_{x0}^y u0(s) ds` of a formula `u0(x)`, by sympy, as a vectorised
    JAX function (for `burgers_cole_hopf`)."""
    x = sympy.Symbol("x")
    s = sympy.Symbol("s_")
    expr = parse(initial, ["x"])
    integral = sympy.integrate(expr.subs(x, s), (s, x0, x))
    if integral.has(sympy.Integral):
        raise ValueError(
            f"sympy could not integrate the initial condition {initial!r}; pass "
            "`u0_antiderivative` as a function."
        )
    fn = lower(integral, ["x"])
    return lambda y: jnp.vectorize(lambda v: fn(v[None]))(y)


def burgers_cole_hopf(
    x: ArrayLike,
    t: ArrayLike,
    nu: float,
    u0: Callable,
    u0_antiderivative: Callable,
    *,
    num_nodes: int = 4001,
    half_width: float = 16.0,
) -> Float[Array, "nt nx"]:
    """Exact solution of viscous Burgers `u_t + u u_x = nu u_xx` on the real line
    (and so for periodic or odd-symmetric initial data) by the Cole-Hopf transform:

    `u(x, t) = int (x - y)/t w(y) dy / int w(y) dy`,
    `w(y) = exp(-(x - y)^2 / (4 nu t) - F(y) / (2 nu))`, `F' = u0`.

    The integrals are taken in `z = (x - y) / sqrt(4 nu t)` by the trapezoidal rule on
    `[-half_width, half_width]` with `num_nodes` nodes and a log-sum-exp, which
    converges exponentially for these smooth, rapidly decaying integrands (checked
    against refinement in the tests). Times are taken from `t = 0` (then `u = u0`).

    **Arguments:**

    - `x`, `t`: 1-D grids; `nu`: the viscosity (> 0).
    - `u0`, `u0_antiderivative`: vectorised `u0(x)` and `F(x)` (see `antiderivative`).
    """
    if not nu > 0:
        raise ValueError(f"`nu` must be positive for Cole-Hopf, got {nu}.")
    x = jnp.asarray(x)
    t = jnp.asarray(t, x.dtype)
    z = jnp.linspace(-half_width, half_width, num_nodes, dtype=x.dtype)

    def one_time(tt):
        safe_t = jnp.where(tt > 0, tt, jnp.ones_like(tt))
        s = jnp.sqrt(4 * nu * safe_t)
        y = x[:, None] - s * z[None, :]
        logw = -(z[None, :] ** 2) - u0_antiderivative(y) / (2 * nu)
        logw = logw - jnp.max(logw, axis=1, keepdims=True)
        w = jnp.exp(logw)
        value = (s / safe_t) * jnp.sum(z[None, :] * w, axis=1) / jnp.sum(w, axis=1)
        return jnp.where(tt > 0, value, u0(x))

    return jax.lax.map(one_time, t)


# -- method of lines -----------------------------------------------------------------


def _periodic_derivative(u: Array, h: float, which: str, order: int) -> Array:
    def r(k):
        return jnp.roll(u, -k)

    n = len(which)
    if n == 1:
        if order == 2:
            return (r(1) - r(-1)) / (2 * h)
        return (-r(2) + 8 * r(1) - 8 * r(-1) + r(-2)) / (12 * h)
    if n == 2:
        if order == 2:
            return (r(1) - 2 * u + r(-1)) / h**2
        return (-r(2) + 16 * r(1) - 30 * u + 16 * r(-1) - r(-2)) / (12 * h**2)
    if n == 3:
        if order == 2:
            return (r(2) - 2 * r(1) + 2 * r(-1) - r(-2)) / (2 * h**3)
        return (-r(3) + 8 * r(2) - 13 * r(1) + 13 * r(-1) - 8 * r(-2) + r(-3)) / (
            8 * h**3
        )
    raise ValueError("Method of lines supports x-derivatives up to third order.")


def method_of_lines(
    pde: PDE,
    nx: int,
    t_eval: ArrayLike,
    args: Any = None,
    *,
    order: int = 2,
    solver: dfx.AbstractSolver | None = None,
    rtol: float = 1e-8,
    atol: float = 1e-10,
    max_steps: int = 200_000,
    dtype: Any = None,
) -> tuple[Float[Array, " nx"], Float[Array, "nt nx"]]:
    """Solve `pde` on a uniform grid by the method of lines (finite differences in
    space, diffrax in time).

    Space: central differences of order `order` (2, or 4 on periodic domains) on a
    uniform grid of `nx` nodes (`x_max` left out on periodic domains; both ends kept
    otherwise). Boundary conditions: Dirichlet nodes follow the boundary value;
    Neumann and Robin conditions use a ghost node (second order). Time: an adaptive
    diffrax solve (`Tsit5` by default; pass `diffrax.Kvaerno5()` for stiff diffusion)
    with `rtol`/`atol`, saved at `t_eval`. The spatial error is `O(h^order)`, checked
    against closed forms and by refinement in the tests.

    The PDE must read `u_t + F(x, t, u, u_x, u_xx, ...) = 0`.

    **Returns:**

    `(x, u)`: the grid `(nx,)` and the solution `(len(t_eval), nx)`.
    """
    pde.check_evolution_form("`method_of_lines`")
    if order not in (2, 4):
        raise ValueError(f"`order` must be 2 or 4, got {order!r}.")
    if order == 4 and not pde.domain.periodic:
        raise ValueError("`order=4` is available on periodic domains only.")
    dom = pde.domain
    dtype = jnp.zeros((), float).dtype if dtype is None else jnp.dtype(dtype)
    if dom.periodic:
        x = jnp.asarray(dom.x_min + dom.length * np.arange(nx) / nx, dtype)
        h = dom.length / nx
    else:
        x = jnp.asarray(np.linspace(dom.x_min, dom.x_max, nx), dtype)
        h = dom.length / (nx - 1)
    t_eval = jnp.asarray(t_eval, dtype)
    a = pde.args(args)
    u = pde.unknown
    space = [d for d in pde.derivatives if "t" not in d[len(u) + 1 :]]
    bcs = [bc for bc in pde.boundary if isinstance(bc, RobinBC)]
    left = next((bc for bc in bcs if bc.side == "left"), None)
    right = next((bc for bc in bcs if bc.side == "right"), None)
    if not dom.periodic and (left is None or right is None):
        raise ValueError(
            "Method of lines on a bounded domain needs a Dirichlet, Neumann or Robin "
            "condition on each side; for periodic problems use "
            "`Domain(..., periodic=True)`."
        )

    def dirichlet_value(bc, tt):
        return bc.target(tt, a) / bc.alpha

    def with_boundary(y, tt):
        if dom.periodic:
            return y
        for bc, i in ((left, 0), (right, -1)):
            if bc is not None and bc.beta == 0.0:
                y = y.at[i].set(dirichlet_value(bc, tt))
        return y

    def spatial(y, tt):
        if dom.periodic:
            return {
                d: _periodic_derivative(y, h, d[len(u) + 1 :], order) for d in space
            }
        # Ghost nodes (second order) from the boundary conditions.
        ghosts = []
        for bc, inner, edge, sign in (
            (left, y[1], y[0], -1.0),
            (right, y[-2], y[-1], 1.0),
        ):
            if bc.beta == 0.0:
                ghosts.append(2 * edge - inner)
            else:
                slope = (bc.target(tt, a) - bc.alpha * edge) / bc.beta
                ghosts.append(inner + sign * 2 * h * slope)
        ext = jnp.concatenate([ghosts[0][None], y, ghosts[1][None]])
        out = {}
        for d in space:
            n = len(d) - len(u) - 1
            if n == 1:
                out[d] = (ext[2:] - ext[:-2]) / (2 * h)
            elif n == 2:
                out[d] = (ext[2:] - 2 * ext[1:-1] + ext[:-2]) / h**2
            else:
                raise ValueError(
                    "Method of lines supports x-derivatives up to second order on "
                    "bounded domains."
                )
        return out

    def rhs(tt, y, _):
        y = with_boundary(y, tt)
        d = spatial(y, tt)
        d[u] = y
        d[f"{u}_t"] = jnp.zeros_like(y)
        tt_b = jnp.broadcast_to(tt, y.shape)
        dy = jax.vmap(lambda dd, xx, ti: pde._residual(dd, xx, ti, a))(d, x, tt_b)
        dy = -dy
        if not dom.periodic:
            for bc, i in ((left, 0), (right, -1)):
                if bc is not None and bc.beta == 0.0:
                    rate = jax.jvp(
                        lambda s: dirichlet_value(bc, s), (tt,), (jnp.ones_like(tt),)
                    )[1]
                    dy = dy.at[i].set(rate)
        return dy

    t0 = jnp.asarray(dom.t_min, dtype)
    y0 = with_boundary(pde.initial_value(x, a), t0)
    sol = dfx.diffeqsolve(
        dfx.ODETerm(rhs),
        dfx.Tsit5() if solver is None else solver,
        t0=dom.t_min,
        t1=float(np.max(np.asarray(t_eval))),
        dt0=None,
        y0=y0,
        saveat=dfx.SaveAt(ts=t_eval),
        stepsize_controller=dfx.PIDController(rtol=rtol, atol=atol),
        max_steps=max_steps,
        throw=False,
    )
    ys = jax.vmap(with_boundary)(_checked_ys(sol), t_eval)
    return x, ys


# -- diffusion-sorption ---------------------------------------------------------------


def _retardation(
    u: Array, porosity: float, rho_s: float, k_f: float, n_f: float
) -> Array:
    """The Freundlich retardation factor `R(u) = 1 + (1 - phi)/phi rho_s k_f n_f
    (u + 1e-6)^(n_f - 1)`, with `u` clipped at zero (the power is undefined below)."""
    c = (1 - porosity) / porosity * rho_s * k_f * n_f
    return 1 + c * (jnp.maximum(u, 0) + 1e-6) ** (n_f - 1)


def diffusion_sorption_mol(
    u0: Float[Array, ""],
    t: Float[Array, " nt"],
    x: Float[Array, " nx"],
    *,
    diffusion: float = 5e-4,
    porosity: float = 0.29,
    rho_s: float = 2880.0,
    k_f: float = 3.5e-4,
    n_f: float = 0.874,
    left: float = 1.0,
    cells: int = 128,
    rtol: float = 1e-7,
    atol: float = 1e-9,
    max_steps: int = 16384,
) -> Float[Array, "nt nx"]:
    """Method-of-lines reference for 1-D diffusion-sorption on `0 < x < 1`.

    Solves `R(u) u_t = D u_xx` from the constant state `u(0, x) = u0`, with
    `u(t, 0) = left` and the outflow condition `u(t, 1) + D u_x(t, 1) = 0`, on
    `cells` finite-volume cells (ghost cells placed so that both boundary conditions
    hold at the faces to second order), integrated by diffrax's `Kvaerno5` with a PID
    step-size controller, and interpolated linearly to the points `x` at times `t`.
    """
    dtype = jnp.result_type(u0, t, x)
    h = 1.0 / cells
    centres = (jnp.arange(cells, dtype=dtype) + 0.5) * h
    ratio = (diffusion / h - 0.5) / (diffusion / h + 0.5)

    def rhs(_, c, __):
        g_left = 2 * left - c[0]
        g_right = ratio * c[-1]
        padded = jnp.concatenate([g_left[None], c, g_right[None]])
        lap = (padded[:-2] - 2 * c + padded[2:]) / h**2
        r = _retardation(c, porosity, rho_s, k_f, n_f)
        return diffusion * lap / r

    y0 = jnp.full((cells,), u0, dtype)
    sol = dfx.diffeqsolve(
        dfx.ODETerm(rhs),
        dfx.Kvaerno5(),
        t0=t[0],
        t1=t[-1],
        dt0=None,
        y0=y0,
        saveat=dfx.SaveAt(ts=t),
        stepsize_controller=dfx.PIDController(rtol=rtol, atol=atol),
        max_steps=max_steps,
        throw=False,
    )
    c = _checked_ys(sol)
    face_left = jnp.full((t.shape[0], 1), left, dtype)
    face_right = (c[:, -1:] * (1 + ratio)) / 2
    nodes = jnp.concatenate([jnp.zeros((1,), dtype), centres, jnp.ones((1,), dtype)])
    values = jnp.concatenate([face_left, c, face_right], axis=1)
    # The initial state is discontinuous at x = 0: report the constant state there.
    values = values.at[0].set(jnp.where(nodes > 0, u0, left))
    return jax.vmap(lambda v: jnp.interp(x, nodes, v))(values)
