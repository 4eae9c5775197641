"""Reference solutions against independent oracles: the diffusion-sorption
finite-volume reference against a finite-difference method of lines and its
closed-form steady state; a family's method-of-lines reference against the
Cole-Hopf closed form."""

import jax.numpy as jnp
import numpy as np
import pytest
from sciopt import pde as sp

from .helpers import pde_periodic_domain


def test_diffusion_sorption_reference_against_method_of_lines_and_steady_state():
    family = sp.PDEFamily.preset("diffusion_sorption")
    a = family.args(jnp.array([0.1]))
    # The same PDE divided by the retardation factor R(u) (method_of_lines wants
    # u_t + F = 0), solved by finite differences on nodes instead of finite volumes.
    r = "(1 + (1 - porosity)/porosity*rho_s*k_f*n_f*(Max(u, 0) + 1e-6)**(n_f - 1))"
    divided = sp.PDE(
        f"u_t - D*u_xx/{r}",
        family.pde.domain,
        "u0",
        boundary=family.pde.boundary,
        parameters={k: float(v) for k, v in a.items()},
    )
    t = jnp.linspace(0.0, 500.0, 6)
    x, mol = sp.method_of_lines(divided, 33, t)
    # One reference solve: the transient, then t = 1e5, when it is steady.
    u = sp.diffusion_sorption_mol(
        jnp.asarray(0.1), jnp.concatenate([t, jnp.array([1e5])]), x, cells=128
    )
    u, steady = u[:-1], u[-1]
    # Measured: 7.3e-4 (the 33-node finite differences' error; 1.4e-4 at 65 nodes).
    assert float(jnp.max(jnp.abs(u - mol))) < 1e-3
    np.testing.assert_allclose(u[1:, 0], 1.0, atol=1e-12)  # left boundary
    assert jnp.all((u >= -1e-8) & (u <= 1 + 1e-8))  # maximum principle
    # Steady state: u'' = 0, u(0) = 1, u(1) + D u'(1) = 0, so u = 1 - x / (1 + D),
    # which second-order finite volumes hold exactly (sorption only slows the way
    # there: the slowest mode decays like exp(-t / 1e3)). Measured: 9.4e-13.
    np.testing.assert_allclose(steady, 1 - x / (1 + float(a["D"])), atol=1e-11)


def test_method_of_lines_family_reference_matches_cole_hopf():
    preset = sp.PDEFamily.preset("burgers")
    family = sp.PDEFamily(
        preset.pde,
        {f"c{k}": ("uniform", -0.25, 0.25) for k in (1, 2, 3)},
        num_sensors=16,
        reference="method_of_lines",
    )
    p = jnp.array([0.2, -0.15, 0.1])
    mol = family.reference_grid(p[None], 5, 17)[0]  # 65 nodes, kept every 4th
    exact = preset.reference_grid(p[None], 5, 17)[0]
    # Measured: 2.1e-4 (second-order differences, h = 1/64; max |u| = 0.27).
    assert float(jnp.max(jnp.abs(mol - exact))) < 2.5e-4


def _stencil_symbols(k, h, order):
    """What each periodic central-difference stencil does to `exp(i k x)`: the first
    and third derivatives multiply it by `i s1`, `i s3`, the second by `-s2`."""
    kh = k * h
    if order == 2:
        s1 = np.sin(kh) / h
        s2 = 4 * np.sin(kh / 2) ** 2 / h**2
        s3 = (np.sin(2 * kh) - 2 * np.sin(kh)) / h**3
    else:
        s1 = (8 * np.sin(kh) - np.sin(2 * kh)) / (6 * h)
        s2 = (30 - 32 * np.cos(kh) + 2 * np.cos(2 * kh)) / (12 * h**2)
        s3 = (-np.sin(3 * kh) + 8 * np.sin(2 * kh) - 13 * np.sin(kh)) / (4 * h**3)
    return s1, s2, s3


@pytest.mark.parametrize("order", [2, 4])
def test_method_of_lines_is_its_semi_discrete_closed_form(order):
    """On a periodic grid a Fourier mode stays a Fourier mode: for
    `u_t + c u_x - nu u_xx + d u_xxx = 0`, `u0 = sin(k x)`, the spatially discrete
    system is solved exactly by `exp(-nu s2 t) sin(k x - (c s1 + d s3) t)` with each
    stencil's symbol, so the method of lines must reproduce it to the time
    integrator's tolerance (every stencil coefficient and the choice of stencil are
    checked, not only the order of the error)."""
    c, nu, d, nx = 1.0, 0.1, 0.5, 16
    h = 2 * np.pi / nx
    t = jnp.linspace(0.0, 1.0, 3)
    for k in (1, 3):
        pde = sp.PDE(
            "u_t + c*u_x - nu*u_xx + d*u_xxx",
            pde_periodic_domain(1.0),
            f"sin({k}*x)",
            parameters={"c": c, "nu": nu, "d": d},
        )
        x, u = sp.method_of_lines(pde, nx, t, order=order)
        s1, s2, s3 = _stencil_symbols(k, h, order)
        tt, xx = np.asarray(t)[:, None], np.asarray(x)[None]
        exact = np.exp(-nu * s2 * tt) * np.sin(k * xx - (c * s1 + d * s3) * tt)
        # Measured: at most 5.6e-9 (order 4, k = 1; rtol 1e-8 in time).
        np.testing.assert_allclose(np.asarray(u), exact, atol=1e-7)


def test_method_of_lines_keeps_the_requested_dtype():
    pde = sp.PDE("u_t + u_x", pde_periodic_domain(1.0), "sin(x)")
    t = jnp.linspace(0.0, 0.5, 2)
    x, u = sp.method_of_lines(pde, 16, t, dtype=jnp.float32)
    assert x.dtype == jnp.float32 and u.dtype == jnp.float32
    x, u = sp.method_of_lines(pde, 16, t)
    assert x.dtype == jnp.float64 and u.dtype == jnp.float64  # x64 is on in the tests
