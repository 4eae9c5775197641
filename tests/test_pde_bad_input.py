"""Bad inputs to the PDE models: wrong instance lengths, negative settings,
wrong coordinate shapes and stationary PDEs are rejected early; the hard-constraint
solve compiles once."""

import math
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from sciopt import pde as sp

from .helpers import count_compilations, hc_small_layer, pde_periodic_domain


# -- hard-constraint layers -------------------------------------------------------


@pytest.mark.parametrize("kind", ["layer", "moe"])
def test_hc_instance_of_wrong_length_is_rejected(kind):
    problem, layer = hc_small_layer("heat", kind=kind)
    n = problem.sample(jr.key(0), 1).shape[1]  # heat: 3 Fourier modes
    assert problem.num_params == n
    good = problem.sample(jr.key(0), 1)[0]
    for bad, got in ((jnp.zeros(n + 2), f"length {n + 2}"), (good[None], "shape")):
        with pytest.raises(ValueError, match=f"`instance` has {got}.*{n} param"):
            layer.solve(bad, jr.key(1))
        with pytest.raises(ValueError, match="`instance`"):
            layer(bad, jr.key(1))
    weights = layer.solve(good, jr.key(1)).value
    with pytest.raises(ValueError, match=f"length {n - 1}"):
        layer.predict(good[:-1], weights)


@pytest.mark.parametrize("kind", ["layer", "moe"])
@pytest.mark.parametrize(
    "setting", [("ridge", -1e-4), ("ridge", math.nan), ("ic_weight", -1.0)]
)
def test_hc_negative_settings_are_rejected(kind, setting):
    name, value = setting
    with pytest.raises(ValueError, match=f"`{name}` must be finite and non-negative"):
        hc_small_layer("heat", kind=kind, **{name: value})
    with pytest.raises(ValueError, match="max_steps"):
        hc_small_layer("heat", kind=kind, max_steps=0)


def test_hc_solve_compiles_once():
    # Levenberg-Marquardt path: un-jitted, every call retraced and recompiled the
    # while loop (seconds a call); jitted inside, later calls reuse the executable.
    problem, layer = hc_small_layer("burgers")
    p = problem.sample(jr.key(0), 2)
    t0 = time.perf_counter()
    first = jax.block_until_ready(layer.solve(p[0], jr.key(1)).value)
    t_first = time.perf_counter() - t0
    with count_compilations() as count:
        t0 = time.perf_counter()
        second = jax.block_until_ready(layer.solve(p[1], jr.key(2)).value)
        t_second = time.perf_counter() - t0
    assert count[0] == 0
    assert t_second < 0.25 * t_first
    assert not np.allclose(first, second)


def test_hc_solve_under_outer_jit_and_grad():
    problem, layer = hc_small_layer("heat")
    p = problem.sample(jr.key(0), 1)[0]

    @eqx.filter_jit
    def loss(layer):
        return jnp.sum(layer(p, jr.key(1)) ** 2)

    grads = eqx.filter_grad(loss)(layer)
    leaves = jax.tree.leaves(eqx.filter(grads, eqx.is_inexact_array))
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in leaves)


# -- PINN and Lagrangian PINN -------------------------------------------------------


def _exact_advection_lpinn(c):
    # The characteristic branch starts at the exact speed; a zero last state layer
    # makes U = u0(xi): the exact solution sin(x - c t).
    pde = sp.PDE("u_t + c*u_x", pde_periodic_domain(), "sin(x)", parameters={"c": c})
    model = sp.LagrangianPINN(
        pde,
        key=jr.key(0),
        state_width=8,
        state_depth=1,
        characteristic_width=8,
        characteristic_depth=1,
    )
    last = model.state_net.layers[-1]
    model = eqx.tree_at(lambda m: m.state_net.layers[-1].weight, model, last.weight * 0)
    return eqx.tree_at(lambda m: m.state_net.layers[-1].bias, model, last.bias * 0)


def test_lpinn_predict_shapes():
    c = 2.0
    model = _exact_advection_lpinn(c)
    x = jnp.linspace(0.0, 2 * math.pi, 40, endpoint=False)
    t = jnp.linspace(0.0, 1.0, 5)
    exact = np.sin(np.asarray(x)[None] - c * np.asarray(t)[:, None])
    predict = eqx.filter_jit(model.predict)
    u = predict(x, t)
    assert u.shape == (5, 40)
    np.testing.assert_allclose(u, exact, atol=1e-3)
    u_scalar = predict(x, jnp.array(0.5))
    assert u_scalar.shape == (40,)
    np.testing.assert_allclose(u_scalar, np.sin(np.asarray(x) - c * 0.5), atol=1e-3)
    xx, tt = jnp.meshgrid(x, t)
    with pytest.raises(ValueError, match=r"`x` of shape \(5, 40\)"):
        predict(xx, tt)
    with pytest.raises(ValueError, match="LagrangianPINN.predict"):
        predict(xx, t)
    pinn = sp.PINN(model.domain, key=jr.key(0), width=8, depth=1)
    grid = eqx.filter_jit(pinn.predict)(x, t)
    assert grid.shape == (5, 40)
    np.testing.assert_allclose(eqx.filter_jit(pinn.predict)(x, t[2]), grid[2])
    with pytest.raises(ValueError, match="PINN.predict"):
        pinn.predict(xx, tt)


@pytest.mark.parametrize("equation", ["u_x + c*u", "u_xx - u*u_x"])
def test_pde_without_time_derivative_is_rejected(equation):
    pde = sp.PDE(equation, pde_periodic_domain(), "sin(x)", parameters={"c": 1.0})
    formula = pde.formula
    for model, build in (
        ("PINNLoss", lambda: sp.PINNLoss(pde)),
        ("LagrangianPINN", lambda: sp.LagrangianPINN(pde, key=jr.key(0))),
        ("LagrangianPINN", lambda: sp.LagrangianPINNLoss(pde)),
        ("method_of_lines", lambda: sp.method_of_lines(pde, 16, jnp.linspace(0, 1, 3))),
    ):
        with pytest.raises(ValueError, match="no term in") as info:
            build()
        message = str(info.value)
        assert model in message and formula in message and "u_t" in message


def test_reference_solve_that_runs_out_of_steps_raises_with_the_remedy():
    pde = sp.PDE("u_t + u_x - 0.1*u_xx", pde_periodic_domain(), "sin(x)")
    t = jnp.linspace(0.0, 1.0, 3)
    with pytest.raises(
        eqx.EquinoxRuntimeError, match="reference solve failed.*max_steps"
    ):
        sp.method_of_lines(pde, 16, t, max_steps=2)
    # Under jit the same failure comes from `equinox.error_if`.
    with pytest.raises(eqx.EquinoxRuntimeError, match="max_steps"):
        eqx.filter_jit(lambda: sp.method_of_lines(pde, 16, t, max_steps=2))()
    x, u = sp.method_of_lines(pde, 16, t)
    assert u.shape == (3, 16) and bool(jnp.all(jnp.isfinite(u)))
