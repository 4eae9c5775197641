"""Reference solutions for the hard-constraint problems.

Closed forms for the heat equation (sine series) and for viscous Burgers (Cole-Hopf),
and a diffrax method-of-lines solver for 1-D diffusion-sorption.
"""

import math

import diffrax as dfx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float


def _mode_axes(coeffs, t, x):
    t, x = jnp.broadcast_arrays(
        jnp.asarray(t, coeffs.dtype), jnp.asarray(x, coeffs.dtype)
    )
    k = jnp.arange(1, coeffs.shape[0] + 1, dtype=coeffs.dtype)
    k = k.reshape((1,) * t.ndim + (-1,))
    return t[..., None], x[..., None], k


def heat_sine_series(
    coeffs: Float[Array, " k"], nu: float, t: Array, x: Array
) -> Array:
    """`u(t, x) = sum_k a_k exp(-nu (k pi)^2 t) sin(k pi x)`.

    Solves `u_t = nu u_xx` on `0 < x < 1` with `u(t, 0) = u(t, 1) = 0`. `t` and `x`
    broadcast against each other.
    """
    t, x, k = _mode_axes(coeffs, t, x)
    modes = jnp.exp(-nu * (k * math.pi) ** 2 * t) * jnp.sin(k * math.pi * x)
    return modes @ coeffs


def burgers_cole_hopf(
    coeffs: Float[Array, " k"], nu: float, t: Array, x: Array
) -> Array:
    """Cole-Hopf solution of `u_t + u u_x = nu u_xx` on `0 < x < 1`, `u = 0` at both
    ends.

    With `phi = 1 + sum_k c_k exp(-nu (k pi)^2 t) cos(k pi x)` (a heat solution with
    zero-flux ends; needs `sum |c_k| < 1` so that `phi > 0`), `u = -2 nu phi_x / phi`.
    """
    t, x, k = _mode_axes(coeffs, t, x)
    decay = jnp.exp(-nu * (k * math.pi) ** 2 * t)
    phi = 1 + (decay * jnp.cos(k * math.pi * x)) @ coeffs
    phi_x = -(decay * k * math.pi * jnp.sin(k * math.pi * x)) @ coeffs
    return -2 * nu * phi_x / phi


def retardation(
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
        r = retardation(c, porosity, rho_s, k_f, n_f)
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
    )
    c = sol.ys
    face_left = jnp.full((t.shape[0], 1), left, dtype)
    face_right = (c[:, -1:] * (1 + ratio)) / 2
    nodes = jnp.concatenate([jnp.zeros((1,), dtype), centres, jnp.ones((1,), dtype)])
    values = jnp.concatenate([face_left, c, face_right], axis=1)
    # The initial state is discontinuous at x = 0: report the constant state there.
    values = values.at[0].set(jnp.where(nodes > 0, u0, left))
    return jax.vmap(lambda v: jnp.interp(x, nodes, v))(values)
