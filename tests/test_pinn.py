"""PINN and Lagrangian PINN: losses, chain rule, crossing detection, training."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
import sciopt
import sciopt.pde as P

from .helpers import pde_convection_diffusion, pde_periodic_domain


class _Exact(eqx.Module):
    """A stand-in for a LagrangianPINN with given characteristic and state maps."""

    char: callable = eqx.field(static=True)
    st: callable = eqx.field(static=True)
    dummy: jax.Array = eqx.field(default_factory=lambda: jnp.zeros(1))

    def characteristic(self, xi, t):
        return self.char(xi, t)

    def state(self, xi, t):
        return self.st(xi, t)


def _loss_terms(loss, model):
    terms = eqx.filter_jit(loss.components)(model, jr.key(0))
    return {k: float(v) for k, v in terms.items()}


def test_lpinn_losses_zero_on_exact_solution_and_positive_off_it():
    c, nu = 30.0, 0.01
    pde, _ = pde_convection_diffusion(c=c, nu=nu)
    loss = P.LagrangianPINNLoss(pde, num_interior=64, num_initial=32)
    exact = _Exact(
        lambda xi, t: xi + c * t, lambda xi, t: jnp.exp(-nu * t) * jnp.sin(xi)
    )
    terms = _loss_terms(loss, exact)
    assert max(terms.values()) < 1e-24
    assert float(eqx.filter_jit(loss)(exact, None, jr.key(0))) < 1e-24
    wrong_speed = _Exact(lambda xi, t: xi + 0.9 * c * t, exact.st)
    assert _loss_terms(loss, wrong_speed)["characteristic"] > 1.0
    no_decay = _Exact(exact.char, lambda xi, t: jnp.sin(xi))
    assert _loss_terms(loss, no_decay)["state"] > 1e-6
    wrong_ic = _Exact(exact.char, lambda xi, t: jnp.exp(-nu * t) * jnp.cos(xi))
    assert _loss_terms(loss, wrong_ic)["initial"] > 0.1


def test_lpinn_losses_zero_for_inviscid_burgers():
    # Before the characteristics cross, X = xi + t u0(xi) and U = u0(xi).
    pde = P.PDE("u_t + u*u_x", pde_periodic_domain(0.5), "0.8*sin(x)")
    loss = P.LagrangianPINNLoss(pde, num_interior=64, num_initial=32)
    exact = _Exact(
        lambda xi, t: xi + t * 0.8 * jnp.sin(xi), lambda xi, t: 0.8 * jnp.sin(xi)
    )
    assert max(_loss_terms(loss, exact).values()) < 1e-24
    wrong = _Exact(lambda xi, t: xi + t * jnp.sin(xi), exact.st)
    assert _loss_terms(loss, wrong)["characteristic"] > 1e-3


def test_lpinn_chain_rule():
    # U(xi, t) = w(X(xi, t), t) on a curved (monotone) map: R_u must equal
    # dU/dt - nu w_xx(X, t) + s with w_xx computed directly in x.
    nu = 0.3
    pde = P.PDE(
        "u_t + c*u_x - nu*u_xx + u**2",
        pde_periodic_domain(),
        "sin(x)",
        parameters={"c": 1.0, "nu": nu},
    )

    def X(xi, t):
        return xi + 0.4 * t * jnp.sin(xi) + t

    def w(x, t):
        return jnp.sin(2 * x) * jnp.exp(-t) + 0.3 * jnp.cos(x)

    def U(xi, t):
        return w(X(xi, t), t)

    loss = P.LagrangianPINNLoss(pde)
    wxx = jax.grad(jax.grad(w, 0), 0)
    for xi, t in [(0.3, 0.2), (2.0, 0.9), (5.0, 0.5)]:
        xi, t = jnp.asarray(xi), jnp.asarray(t)
        r_x, r_u = loss.residuals(_Exact(X, U), xi, t)
        dudt = jax.grad(U, 1)(xi, t)
        u = U(xi, t)
        np.testing.assert_allclose(r_u, dudt - nu * wxx(X(xi, t), t) + u**2, rtol=1e-10)
        np.testing.assert_allclose(r_x, jax.grad(X, 1)(xi, t) - 1.0, atol=1e-12)


class _Squeezed(eqx.Module):
    amplitude: jax.Array

    def characteristic(self, xi, t):
        return xi + self.amplitude * t * jnp.sin(xi)

    def state(self, xi, t):
        return jnp.sin(xi)


def test_lpinn_jacobian_floor_keeps_loss_finite():
    # X_xi = 1 + a t cos(xi) reaches 0 (a = 1.5, t >= 2/3): the chain-rule
    # term 1 / X_xi^3 blows up unless X_xi is floored.
    pde, _ = pde_convection_diffusion(c=1.0, nu=0.01)
    model = _Squeezed(jnp.asarray(1.5))

    def evaluate(floor):
        loss = P.LagrangianPINNLoss(pde, num_interior=4096, jacobian_floor=floor)
        return eqx.filter_jit(eqx.filter_value_and_grad(loss))(model, None, jr.key(1))

    value, grads = evaluate(0.2)
    assert bool(jnp.isfinite(value)) and bool(jnp.isfinite(grads.amplitude))
    unguarded, _ = evaluate(1e-12)
    assert float(unguarded) > 10 * float(value)


class _Crossing(P.LagrangianPINN):
    def characteristic(self, xi, t):
        return xi + 2.0 * t * jnp.sin(xi)


class _Mild(P.LagrangianPINN):
    def characteristic(self, xi, t):
        return xi + 0.5 * t * jnp.sin(xi)


def test_lpinn_characteristics_result_and_predict():
    pde = P.PDE("u_t + u*u_x", pde_periodic_domain(), "sin(x)")
    crossing = _Crossing(pde, key=jr.key(0), state_width=4, state_depth=1)
    result, min_jac = crossing.characteristics_result(jnp.linspace(0, 1, 5))
    assert result == sciopt.RESULTS.characteristics_crossed
    assert float(min_jac) == pytest.approx(-1.0, abs=1e-3)
    mild = _Mild(pde, key=jr.key(0), state_width=4, state_depth=1)
    result, min_jac = mild.characteristics_result(jnp.linspace(0, 1, 5))
    assert result == sciopt.RESULTS.successful
    assert float(min_jac) == pytest.approx(0.5, abs=1e-3)
    # predict: maps the (exact, here) Lagrangian state back to the Eulerian grid.
    x, t = P.grid(pde.domain, 64, 5)
    pred = mild.predict(x, t, num_labels=2048)
    # u(X(xi, t), t) = U(xi, t): compare on the moved labels.
    xi = jnp.linspace(0, 2 * math.pi, 9)[:-1]
    moved = pde.domain.wrap(mild.characteristic(xi, t[-1]))
    u_at = jax.vmap(mild.state, in_axes=(0, None))(xi, t[-1])
    interp = jnp.interp(moved, x, pred[-1], period=2 * math.pi)
    np.testing.assert_allclose(interp, u_at, atol=5e-3)


def test_lpinn_predict_advection_exact():
    c = 50.0
    pde = P.PDE("u_t + c*u_x", pde_periodic_domain(), "sin(x)", parameters={"c": c})
    model = P.LagrangianPINN(pde, key=jr.key(0), state_width=8, state_depth=1)
    # The characteristic branch starts at the mean initial speed: exact for
    # constant c.
    xi = jnp.linspace(0.0, 6.0, 7)
    np.testing.assert_allclose(
        jax.vmap(model.characteristic, in_axes=(0, None))(xi, 0.7), xi + 0.7 * c
    )
    exact_state = P.LagrangianPINN(
        pde, key=jr.key(0), state_width=8, state_depth=1, hard_initial=True
    )
    exact_state = eqx.tree_at(
        lambda m: m.state_net.layers[-1].weight,
        exact_state,
        jnp.zeros_like(exact_state.state_net.layers[-1].weight),
    )
    exact_state = eqx.tree_at(
        lambda m: m.state_net.layers[-1].bias,
        exact_state,
        jnp.zeros_like(exact_state.state_net.layers[-1].bias),
    )
    x, t = P.grid(pde.domain, 128, 11)
    ref = P.advection_solution(jnp.sin, x, t, c, pde.domain)
    assert float(P.relative_l2(exact_state.predict(x, t), ref)) < 1e-4


def test_pinn_periodic_embedding_and_loss():
    pde, exact = pde_convection_diffusion()
    model = P.PINN(pde.domain, key=jr.key(0), width=8, depth=2)
    assert model.periodic_embedding
    np.testing.assert_allclose(model(0.0, 0.3), model(2 * math.pi, 0.3), atol=1e-12)
    assert model.predict(jnp.zeros(5), jnp.zeros(3)).shape == (3, 5)
    loss = P.PINNLoss(pde, num_interior=64, num_initial=16)
    terms = eqx.filter_jit(loss.components)(model, jr.key(0))
    assert float(terms["boundary"]) == 0.0  # periodic by construction
    bounded = P.PDE(
        "u_t - u_xx",
        P.Domain((0.0, 1.0)),
        "sin(pi*x)",
        boundary=[P.DirichletBC("left"), P.DirichletBC("right")],
    )
    lb = P.PINNLoss(bounded, num_interior=32, num_initial=8, num_boundary=8)
    m2 = P.PINN(bounded.domain, key=jr.key(1), width=8, depth=2)
    assert not m2.periodic_embedding
    assert float(eqx.filter_jit(lb.components)(m2, jr.key(0))["boundary"]) > 0.0


class _ExactPINN(eqx.Module):
    fn: callable = eqx.field(static=True)

    def __call__(self, x, t):
        return self.fn(x, t)


def test_pinn_loss_zero_on_exact_solution():
    pde, exact = pde_convection_diffusion()
    loss = P.PINNLoss(pde, num_interior=64, num_initial=16, num_boundary=8)
    value = eqx.filter_jit(loss)(_ExactPINN(exact), None, jr.key(0))
    assert float(value) < 1e-24


def test_short_training_reduces_loss_and_is_keyed():
    pde, _ = pde_convection_diffusion(c=1.0, nu=0.05)

    def run(kind, key):
        if kind == "pinn":
            model = P.PINN(pde.domain, key=jr.key(0), width=16, depth=2)
            loss = P.PINNLoss(pde, num_interior=128, num_initial=32)
        else:
            model = P.LagrangianPINN(
                pde,
                key=jr.key(0),
                state_width=16,
                state_depth=2,
                characteristic_width=8,
                characteristic_depth=1,
            )
            loss = P.LagrangianPINNLoss(pde, num_interior=128, num_initial=32)
        fitted = sciopt.fit(
            model, loss, key=key, steps=150, learning_rate=1e-2, chunk_size=150
        )
        return fitted, loss

    for kind in ("pinn", "lpinn"):
        a, loss = run(kind, jr.key(1))
        assert a.losses[-10:].mean() < 0.1 * a.losses[0]
        if kind == "lpinn":  # keyed determinism (the training loop is shared)
            b, _ = run(kind, jr.key(1))
            np.testing.assert_array_equal(a.losses, b.losses)
            assert eqx.tree_equal(a.model, b.model)
        # The loss resamples its collocation points from the key.
        values = jax.jit(jax.vmap(lambda k: loss(a.model, None, k)))(
            jr.split(jr.key(3), 2)
        )
        assert float(values[0]) != float(values[1])


def test_lpinn_bad_inputs():
    per = pde_periodic_domain()
    bounded = P.PDE(
        "u_t + u_x",
        P.Domain((0.0, 1.0)),
        "x",
        boundary=[P.DirichletBC("left"), P.DirichletBC("right")],
    )
    with pytest.raises(ValueError, match="periodic"):
        P.LagrangianPINN(bounded, key=jr.key(0))
    with pytest.raises(ValueError, match="u_xxx"):
        P.LagrangianPINN(P.PDE("u_t + u_xxx", per, "sin(x)"), key=jr.key(0))
    with pytest.raises(ValueError, match="linear"):
        P.LagrangianPINNLoss(P.PDE("u_t + u_x**2", per, "sin(x)"))
    with pytest.raises(ValueError, match="coefficient"):
        P.LagrangianPINN(P.PDE("2*u_t + u_x", per, "sin(x)"), key=jr.key(0))
    callable_pde = P.PDE(lambda d, x, t, a: d["u_t"] + d["u_x"], per, "sin(x)")
    with pytest.raises(ValueError, match="formula"):
        P.LagrangianPINN(callable_pde, key=jr.key(0))
    pde, _ = pde_convection_diffusion()
    with pytest.raises(ValueError, match="jacobian_floor"):
        P.LagrangianPINNLoss(pde, jacobian_floor=0.0)
    with pytest.raises(ValueError, match="num_interior"):
        P.PINNLoss(pde, num_interior=0)
    with pytest.raises(ValueError, match="unknown parameters"):
        P.PINNLoss(pde, args={"q": 1.0})
    with pytest.raises(ValueError, match="velocity_scale"):
        P.LagrangianPINN(pde, key=jr.key(0), velocity_scale=-1.0)
    with pytest.raises(ValueError, match="width"):
        P.PINN(per, key=jr.key(0), width=0)


@pytest.mark.slow
def test_lpinn_beats_pinn_at_large_speed():
    from sciopt.gallery.pinn import reference_solution, train

    c = 50.0
    pde = P.PDE("u_t + c*u_x", pde_periodic_domain(), "sin(x)", parameters={"c": c})
    x, t = P.grid(pde.domain, 256, 101)
    ref = reference_solution(pde, "convection_diffusion", x, t)
    cfg = dict(width=50, depth=4, steps=2000, points=1024, learning_rate=1e-2)
    lpinn = train("lpinn", pde, x, t, ref, **cfg)
    pinn = train("pinn", pde, x, t, ref, **cfg)
    assert lpinn.error < 1e-2
    assert pinn.error > 0.5


def test_float32_models():
    pde, _ = pde_convection_diffusion(c=2.0, nu=0.05)
    pinn = P.PINN(pde.domain, key=jr.key(0), width=8, depth=2, dtype=jnp.float32)
    lpinn = P.LagrangianPINN(
        pde, key=jr.key(0), state_width=8, state_depth=2, dtype=jnp.float32
    )
    for model, loss in (
        (pinn, P.PINNLoss(pde, num_interior=32, num_initial=8)),
        (lpinn, P.LagrangianPINNLoss(pde, num_interior=32, num_initial=8)),
    ):
        value, grads = eqx.filter_jit(eqx.filter_value_and_grad(loss))(
            model, None, jr.key(0)
        )
        assert value.dtype == jnp.float32 and bool(jnp.isfinite(value))
        leaves = jax.tree.leaves(eqx.filter(grads, eqx.is_inexact_array))
        assert all(leaf.dtype == jnp.float32 for leaf in leaves)
    x, t = P.grid(pde.domain, 16, 3, jnp.float32)
    assert lpinn.predict(x, t).dtype == jnp.float32


@pytest.mark.slow
def test_quick_gallery_rows(tmp_path):
    import sciopt.gallery.pinn as G
    from sciopt._problems import load_problem_specs

    specs = {s.name: s for s in load_problem_specs()}
    rows = G.run(specs["pinn_advection"], quick=True, out_dir=tmp_path)
    by_solver = {r.solver: r for r in rows}
    assert by_solver["LagrangianPINN"].passed and by_solver["LagrangianPINN"].checked
    assert not by_solver["PINN"].checked and by_solver["PINN"].error > 0.5
    assert all((tmp_path / f).exists() for r in rows for f in r.figures)
