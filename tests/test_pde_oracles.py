"""Reference solutions against independent oracles: the diffusion-sorption
finite-volume reference against a finite-difference method of lines and its
closed-form steady state; a family's method-of-lines reference against the
Cole-Hopf closed form."""

import jax.numpy as jnp
import numpy as np
from sciopt import pde as sp


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
