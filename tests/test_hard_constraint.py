import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optimistix as optx
import pytest
import sciopt
import scipy.optimize
from sciopt import pde as sp

from .helpers import hc_small_layer


ROOT = Path(__file__).resolve().parents[1]


# -- references -----------------------------------------------------------------


@pytest.mark.parametrize("name", ["heat", "burgers"])
def test_closed_forms_solve_their_pde(name):
    # The PDE core's autodiff residual of the family's closed-form reference.
    family = sp.PDEFamily.preset(name)
    p = family.sample(jr.key(0), 1)[0]
    t = jr.uniform(jr.key(1), (50,), minval=0.0, maxval=1.0)
    x = jr.uniform(jr.key(2), (50,))
    a = family.args(p)

    def u(y, s):
        return family.reference_solution(p, s[None], y[None])[0, 0]

    res = jax.vmap(lambda y, s: family.pde.residual(u, y, s, a))(x, t)
    assert jnp.max(jnp.abs(res)) < 1e-10
    tt, xx = family.grid(5, 9)
    ref = family.reference_solution(p, tt, xx)
    np.testing.assert_allclose(ref[:, 0], 0.0, atol=1e-14)
    np.testing.assert_allclose(ref[:, -1], 0.0, atol=1e-12)
    np.testing.assert_allclose(ref[0], family.pde.initial_value(xx, a), atol=1e-14)


def test_cole_hopf_family_matches_quadrature():
    # The Burgers family's closed form against the real-line Cole-Hopf quadrature
    # of its (odd, 2-periodic) initial condition, F = -2 nu log(phi0).
    family = sp.PDEFamily.preset("burgers")
    p = family.sample(jr.key(3), 1)[0]
    nu = 0.05
    t, x = family.grid(6, 11)
    k = jnp.arange(1.0, 4.0) * jnp.pi

    def phi0(y):
        return 1 + jnp.cos(y[..., None] * k.reshape((1,) * y.ndim + (3,))) @ p

    ref = sp.burgers_cole_hopf(
        x,
        t,
        nu,
        lambda y: family.pde.initial_value(y, family.args(p)),
        lambda y: -2 * nu * jnp.log(phi0(y)),
    )
    np.testing.assert_allclose(
        family.reference_solution(p, t, x), ref, rtol=1e-9, atol=1e-11
    )


# (The diffusion-sorption reference: tests/test_pde_oracles.py.)


# -- the layer's solve ----------------------------------------------------------


# -- oracles: the solved field, differentiated from outside ---------------------------
#
# The layer's rows are never reused here: PDE, initial and boundary residuals are
# written by hand and evaluated on `predict`, differentiated by `jax.grad`, on a grid
# built by `np.linspace`. A wrong constraint set-up (a boundary row in the wrong grid
# column, a wrong row weight, a wrong derivative letter) changes the least-squares
# problem the layer solves, so its weights stop matching these oracles.

NU = 0.05  # the presets' viscosity


def _heat_u0(p, x):
    return sum(p[k] * jnp.sin((k + 1) * jnp.pi * x) for k in range(p.shape[0]))


def _burgers_u0(p, x):
    k = jnp.arange(1.0, p.shape[0] + 1.0) * jnp.pi
    kx = x[:, None] * k[None, :]
    return 2 * NU * (jnp.sin(kx) @ (k * p)) / (1 + jnp.cos(kx) @ p)


def _heat_residual(u, u_t, u_x, u_xx):
    return u_t - NU * u_xx


def _burgers_residual(u, u_t, u_x, u_xx):
    return u_t + u * u_x - NU * u_xx


class _HeatModes(sp.BasisNetwork):
    """The heat family's three decaying sine modes (exact solutions) and three
    functions that are not, so the least-squares problem has one exact answer."""

    def __call__(self, t, x, sensors):
        k = jnp.arange(1.0, 4.0, dtype=t.dtype) * jnp.pi
        modes = jnp.exp(-NU * k**2 * t) * jnp.sin(k * x)
        return jnp.concatenate([modes, jnp.stack([x, t, x * t * t])])


class _ColeHopf(sp.BasisNetwork):
    """One Burgers instance's Cole-Hopf solution (written out here) and three
    functions that do not solve the PDE."""

    c: jax.Array

    def __init__(self, c, family):
        super().__init__(
            4,
            family.num_sensors,
            family.t_span,
            family.x_span,
            width=2,
            depth=1,
            key=jr.key(0),
        )
        self.c = c

    def __call__(self, t, x, sensors):
        k = jnp.arange(1.0, 4.0) * jnp.pi
        decay = jnp.exp(-NU * k**2 * t)
        phi = 1 + jnp.sum(self.c * decay * jnp.cos(k * x))
        phi_x = -jnp.sum(self.c * decay * k * jnp.sin(k * x))
        u = -2 * NU * phi_x / phi
        return jnp.stack([u, t * jnp.sin(jnp.pi * x), x * (1 - x), t])


def _field_checks(layer, p, w, residual, u0):
    """Max |PDE residual| on every grid node, max |u(0, x) - u0(x)| on the grid's
    first row and max |u| on both edges, by differentiating `predict`."""
    nt, nx = layer.grid
    tg, xg = np.linspace(0.0, 1.0, nt), np.linspace(0.0, 1.0, nx)
    T, X = (jnp.asarray(a.ravel()) for a in np.meshgrid(tg, xg, indexing="ij"))

    def f(t, x):
        return layer.predict(p, w, t, x)

    u_t, u_x = jax.grad(f, 0), jax.grad(f, 1)
    u_xx = jax.grad(u_x, 1)
    pde = jax.vmap(lambda t, x: residual(f(t, x), u_t(t, x), u_x(t, x), u_xx(t, x)))
    tg, xg = jnp.asarray(tg), jnp.asarray(xg)
    ic = jax.vmap(f)(jnp.zeros_like(xg), xg) - u0(xg)
    ends = jnp.stack([jax.vmap(f)(tg, jnp.zeros_like(tg)), jax.vmap(f)(tg, 1 + 0 * tg)])
    return [jnp.max(jnp.abs(v)) for v in (pde(T, X), ic, ends)]


@pytest.mark.parametrize("case", ["heat", "heat-moe", "burgers"])
def test_exact_basis_solve_meets_pde_initial_and_boundary_conditions(case):
    # With an exact solution in the span of the basis and no ridge, the least-squares
    # solution is that solution: the residual of every row vanishes to rounding.
    name = case.split("-")[0]
    family = sp.PDEFamily.preset(name)
    p = family.sample(jr.key(1), 1)[0]
    kw = dict(grid=(8, 16), ridge=0.0)
    if name == "heat":
        basis = _HeatModes(
            6, 16, family.t_span, family.x_span, width=2, depth=1, key=jr.key(0)
        )
        expected = jnp.concatenate([p, jnp.zeros(3)])
        residual, u0 = _heat_residual, lambda x: _heat_u0(p, x)
    else:
        basis = _ColeHopf(p, family)
        expected = jnp.array([1.0, 0.0, 0.0, 0.0])
        residual, u0 = _burgers_residual, lambda x: _burgers_u0(p, x)
        kw.update(rtol=1e-12, atol=1e-12)
    if case == "heat-moe":
        layer = sp.MoEHardConstraint(family, basis, splits=(2, 2), num_points=24, **kw)
    else:
        layer = sp.HardConstraintLayer(family, basis, num_points=48, **kw)
    sol = layer.solve(p, jr.key(2))
    assert np.all(np.asarray(sol.result._value) == 0)
    np.testing.assert_allclose(
        sol.value, jnp.broadcast_to(expected, sol.value.shape), atol=1e-12
    )
    if name == "burgers":
        # Levenberg-Marquardt from zero: 15 steps measured.
        assert int(sol.stats["num_steps"][0]) <= 17
    w = sol.value
    errors = eqx.filter_jit(_field_checks)(layer, p, w, residual, u0)
    # Measured: all below 3e-16 (rounding).
    assert max(float(e) for e in errors) < 1e-13, errors
    ref = family.reference_grid(p[None], *layer.grid)[0]
    assert float(sp.relative_l2(layer.predict(p, w), ref)) < 1e-13


def _independent_rows(layer, p, key, residual, u0, expert=0, touching=False):
    """The documented least-squares residual `r(omega)` of one expert, from
    `predict`: `T R / sqrt(m)` at its collocation points, `(u(0, x) - u0) /
    sqrt(n_ic)`, `u(t, edge) / sqrt(n_edge)` (Dirichlet zero) and `ridge * omega`;
    with `touching`, only the initial/boundary rows on the expert's block edges."""
    nt, nx = layer.grid
    kt, kx = layer.splits
    bi, bj = divmod(expert, kx)
    bx = nx // kx
    tg, xg = jnp.linspace(0.0, 1.0, nt), jnp.linspace(0.0, 1.0, nx)
    ic_on = np.ones(nx, bool)
    left_on = right_on = True
    if touching:
        ic_on = (np.arange(nx) // bx == bj) & (bi == 0)
        left_on, right_on = bj == 0, bj == kx - 1
    rows = layer.constraint_rows(p, key)
    pt, px = rows.pde_t[expert], rows.pde_x[expert]
    duration = 1.0  # the presets' time span

    def r(w):
        weights = jnp.broadcast_to(w, (layer.num_experts, w.shape[0]))

        def f(t, x):
            return layer.predict(p, weights, t, x)

        u_t, u_x = jax.grad(f, 0), jax.grad(f, 1)
        u_xx = jax.grad(u_x, 1)
        pde = jax.vmap(
            lambda t, x: residual(f(t, x), u_t(t, x), u_x(t, x), u_xx(t, x))
        )(pt, px)
        ic = (jax.vmap(f)(jnp.zeros(nx), xg) - u0(xg))[ic_on]
        left = jax.vmap(f)(tg, jnp.zeros(nt)) if left_on else jnp.zeros(0)
        right = jax.vmap(f)(tg, jnp.ones(nt)) if right_on else jnp.zeros(0)
        return jnp.concatenate(
            [
                duration * pde / math.sqrt(layer.num_points),
                layer.ic_weight * ic / math.sqrt(ic.shape[0]),
                layer.bc_weight * left / math.sqrt(nt),
                layer.bc_weight * right / math.sqrt(nt),
                layer.ridge * w,
            ]
        )

    return r


class _Functions(sp.BasisNetwork):
    """A basis of given functions `fns(t, x) -> (N,)`."""

    fns: object = eqx.field(static=True)

    def __init__(self, fns, n, t_span, x_span):
        super().__init__(n, 16, t_span, x_span, width=2, depth=1, key=jr.key(0))
        self.fns = fns

    def __call__(self, t, x, sensors):
        return self.fns(t, x)


@pytest.mark.parametrize("kind", ["robin", "periodic"])
def test_exact_basis_solve_meets_robin_and_periodic_conditions(kind):
    # Non-zero Dirichlet data, a Robin condition and periodic rows: the exact
    # solution is in the span, so the solve must return it.
    if kind == "robin":
        # u = exp(-pi^2 t) cos(pi x) - x: u(0, t) = exp(-pi^2 t) and
        # u + u_x = -exp(-pi^2 t) - 2 at x = 1.
        pde = sp.PDE(
            "u_t - u_xx",
            sp.Domain((0.0, 1.0), (0.0, 0.1)),
            "cos(pi*x) - x",
            boundary=[
                sp.DirichletBC("left", "exp(-pi**2*t)"),
                sp.RobinBC("right", 1.0, 1.0, "-exp(-pi**2*t) - 2"),
            ],
        )

        def fns(t, x):
            e = jnp.exp(-(jnp.pi**2) * t)
            return jnp.stack([e * jnp.cos(jnp.pi * x), x, jnp.ones_like(x), t, x * x])

        expected = jnp.array([1.0, -1.0, 0.0, 0.0, 0.0])

        def exact(t, x):
            return jnp.exp(-(jnp.pi**2) * t) * jnp.cos(jnp.pi * x) - x

        def conditions(f, t):
            u_x = jax.grad(f, 1)
            e = jnp.exp(-(jnp.pi**2) * t)
            left = f(t, 0.0) - e
            right = f(t, 1.0) + u_x(t, 1.0) + e + 2
            return jnp.stack([left, right])
    else:
        # u = exp(-nu t) sin(x - c t) on [0, 2 pi), c = 1, nu = 0.1.
        pde = sp.PDE(
            "u_t + c*u_x - nu*u_xx",
            sp.Domain((0.0, 2 * math.pi), (0.0, 1.0), periodic=True),
            "sin(x)",
            parameters={"c": 1.0, "nu": 0.1},
        )

        def fns(t, x):
            e = jnp.exp(-0.1 * t)
            return jnp.stack(
                [e * jnp.sin(x) * jnp.cos(t), e * jnp.cos(x) * jnp.sin(t), x, t * x]
            )

        expected = jnp.array([1.0, -1.0, 0.0, 0.0])

        def exact(t, x):
            return jnp.exp(-0.1 * t) * jnp.sin(x - t)

        def conditions(f, t):
            u_x = jax.grad(f, 1)
            end = 2 * jnp.pi  # the layer's grid holds both ends
            return jnp.stack([f(t, 0.0) - f(t, end), u_x(t, 0.0) - u_x(t, end)])

    dom = pde.domain
    basis = _Functions(
        fns, expected.shape[0], (dom.t_min, dom.t_max), (dom.x_min, dom.x_max)
    )
    layer = sp.HardConstraintLayer(pde, basis, grid=(8, 16), num_points=48, ridge=0.0)
    sol = layer.solve(None, jr.key(2))
    assert int(sol.result._value[0]) == 0
    # Measured: 1e-15.
    np.testing.assert_allclose(sol.value[0], expected, atol=1e-11)
    t, x = layer.coordinates()
    u = layer.predict(None, sol.value)
    np.testing.assert_allclose(u, exact(t[:, None], x[None, :]), atol=1e-11)

    def f(tt, xx):
        return layer.predict(None, sol.value, tt, xx)

    bc = jax.vmap(lambda tt: conditions(f, tt))(t)
    np.testing.assert_allclose(bc, 0.0, atol=1e-11)


@pytest.mark.parametrize("kind", ["layer", "moe-touching"])
def test_affine_solve_is_least_squares_of_independent_rows(kind):
    # A trained-size MLP basis: the rows no longer vanish; the layer's weights must
    # be numpy's least-squares solution of the rows built above.
    if kind == "layer":
        family, layer = hc_small_layer("heat")
    else:
        family, layer = hc_small_layer(
            "heat", kind="moe", splits=(1, 2), boundary_rows="touching"
        )
    assert layer.method == "qr"
    p = family.sample(jr.key(1), 1)[0]
    key = jr.key(2)
    sol = layer.solve(p, key)
    assert np.all(np.asarray(sol.result._value) == 0)
    assert np.all(np.asarray(sol.stats["num_steps"]) == 1)  # one direct solve
    n = layer.basis.num_basis
    for k in range(layer.num_experts):
        r = _independent_rows(
            layer,
            p,
            key,
            _heat_residual,
            lambda x: _heat_u0(p, x),
            k,
            touching=kind != "layer",
        )
        a = np.asarray(jax.jit(jax.jacfwd(r))(jnp.zeros(n)))
        b = -np.asarray(jax.jit(r)(jnp.zeros(n)))
        expected = np.linalg.lstsq(a, b, rcond=None)[0]
        # Measured: 1e-12 relative (condition number ~1e3).
        np.testing.assert_allclose(sol.value[k], expected, rtol=1e-9, atol=1e-9)
        # The layer's residual norm is the norm of these rows at its weights.
        np.testing.assert_allclose(
            float(sol.stats["residual_norm"][k]),
            np.linalg.norm(a @ expected - b),
            rtol=1e-9,
        )


# Steps from zero, measured: Levenberg-Marquardt 36, Gauss-Newton 9; LM's count at
# this tight tolerance depends on the host's floating-point code paths (41 on an
# AVX-512 host, with XLA's default options and sciopt's alike).
@pytest.mark.parametrize(
    "method, max_steps", [("levenberg_marquardt", 45), ("gauss_newton", 11)]
)
def test_nonlinear_solve_minimises_independent_rows(method, max_steps):
    kw = {} if method == "levenberg_marquardt" else {"method": method}
    family, layer = hc_small_layer("burgers", rtol=1e-10, atol=1e-10, **kw)
    assert layer.method == method
    p = family.sample(jr.key(1), 1)[0]
    key = jr.key(2)
    sol = layer.solve(p, key)
    assert int(sol.result._value[0]) == 0
    assert float(sol.stats["gradient_norm"][0]) < 1e-8
    assert int(sol.stats["num_steps"][0]) <= max_steps
    fn = jax.jit(
        _independent_rows(layer, p, key, _burgers_residual, lambda x: _burgers_u0(p, x))
    )
    jac = jax.jit(jax.jacfwd(fn))
    oracle = scipy.optimize.least_squares(
        lambda w: np.asarray(fn(jnp.asarray(w))),
        np.asarray(sol.value[0]) + 0.05,
        jac=lambda w: np.asarray(jac(jnp.asarray(w))),
        xtol=1e-15,
        ftol=1e-15,
        gtol=1e-15,
    )
    # Measured: 1e-12 relative.
    np.testing.assert_allclose(sol.value[0], oracle.x, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(
        float(sol.stats["residual_norm"][0]), np.linalg.norm(oracle.fun), rtol=1e-9
    )


# Slow (about 45 s): the default run differentiates the layer against central
# differences in tests/test_pde_declaration.py (with respect to nu) and trains it.
@pytest.mark.slow
def test_implicit_gradient_matches_finite_differences_and_unrolled(getkey):
    tight = dict(rtol=1e-13, atol=1e-13, max_steps=300)
    problem, layer = hc_small_layer("burgers", **tight)
    _, unrolled = hc_small_layer(
        "burgers", adjoint=optx.RecursiveCheckpointAdjoint(), **tight
    )
    p = problem.sample(getkey(), 1)[0]
    key = getkey()
    direction = jr.normal(getkey(), layer.basis.mlp.layers[-1].weight.shape)
    weights_out = jr.normal(getkey(), (layer.basis.num_basis,))

    def f(eps, model):
        model = eqx.tree_at(
            lambda m: m.basis.mlp.layers[-1].weight,
            model,
            model.basis.mlp.layers[-1].weight + eps * direction,
        )
        sol = model.solve(p, key)
        return jnp.sum(sol.value[0] * weights_out)

    grad = eqx.filter_jit(lambda e, m: jax.grad(f)(e, m))
    f = eqx.filter_jit(f)
    g_ift = float(grad(0.0, layer))
    g_unrolled = float(grad(0.0, unrolled))
    h = 1e-5
    g_fd = (float(f(h, layer)) - float(f(-h, layer))) / (2 * h)
    assert abs(g_ift) > 1e-3
    assert abs(g_ift - g_fd) <= 1e-5 * abs(g_fd)
    assert abs(g_ift - g_unrolled) <= 1e-5 * abs(g_unrolled)


def test_float32_solve_reaches_the_exact_solution():
    family = sp.PDEFamily.preset("heat")
    basis = _HeatModes(
        6,
        16,
        family.t_span,
        family.x_span,
        width=2,
        depth=1,
        key=jr.key(0),
        dtype=jnp.float32,
    )
    layer = sp.HardConstraintLayer(
        family, basis, grid=(8, 16), num_points=48, ridge=0.0
    )
    p = family.sample(jr.key(1), 1, jnp.float32)[0]
    sol = layer.solve(p, jr.key(2))
    assert sol.value.dtype == jnp.float32
    assert int(sol.result._value[0]) == 0
    expected = np.concatenate([np.asarray(p, np.float64), np.zeros(3)])
    # Measured: 2e-6 (float32 QR, condition number ~1e2).
    np.testing.assert_allclose(sol.value[0], expected, atol=2e-5)


# -- bad input ------------------------------------------------------------------


def test_bad_input_errors():
    problem = sp.PDEFamily.preset("heat")
    basis = sp.BasisNetwork(8, problem.num_sensors, (0, 1), (0, 1), key=jr.key(0))
    with pytest.raises(ValueError, match="underdetermined"):
        sp.HardConstraintLayer(problem, basis, grid=(8, 16), num_points=4)
    with pytest.raises(ValueError, match="x axis"):
        sp.MoEHardConstraint(problem, basis, grid=(8, 18), splits=(1, 4), num_points=8)
    with pytest.raises(ValueError, match="t axis"):
        sp.MoEHardConstraint(problem, basis, grid=(9, 16), splits=(2, 1), num_points=8)
    with pytest.raises(ValueError, match="nonlinear"):
        sp.HardConstraintLayer(sp.PDEFamily.preset("burgers"), basis, method="qr")
    with pytest.raises(ValueError, match="method"):
        sp.HardConstraintLayer(problem, basis, method="newton")
    wrong = sp.BasisNetwork(8, 3, (0, 1), (0, 1), key=jr.key(0))
    with pytest.raises(ValueError, match="sensors"):
        sp.HardConstraintLayer(problem, wrong)
    with pytest.raises(ValueError, match="positive"):
        sp.PDEFamily.preset("burgers", modes=4, amplitude=0.3)


def test_nonfinite_basis_and_unconverged_solve_give_result_codes(getkey):
    problem, layer = hc_small_layer("burgers", max_steps=2, rtol=1e-12, atol=1e-12)
    p = problem.sample(getkey(), 1)[0]
    sol = layer.solve(p, getkey())
    assert sol.result == sciopt.RESULTS.steps_exhausted
    assert jnp.isfinite(sol.stats["residual_norm"][0])
    bias = layer.basis.mlp.layers[0].bias
    broken = eqx.tree_at(lambda m: m.basis.mlp.layers[0].bias, layer, bias * jnp.nan)
    sol = broken.solve(p, getkey())
    assert sol.result == sciopt.RESULTS.nonfinite_model


# -- mixture of experts ---------------------------------------------------------


def _interface_penalty_by_hand(moe, p, w):
    """Mean square of the value jump and of the grid step times the normal-slope
    jump, at the midpoints between neighbouring blocks (from the basis itself)."""
    (nt, nx), (kt, kx) = moe.grid, moe.splits
    bt, bx = nt // kt, nx // kx
    tg, xg = np.linspace(0.0, 1.0, nt), np.linspace(0.0, 1.0, nx)
    pts = []  # (t, x, expert before, expert after, normal axis, grid step)
    for c in range(1, kx):
        xm = 0.5 * (xg[c * bx - 1] + xg[c * bx])
        for i in range(nt):
            a = (i // bt) * kx + c - 1
            pts.append((tg[i], xm, a, a + 1, 1, 1 / (nx - 1)))
    for r in range(1, kt):
        tm = 0.5 * (tg[r * bt - 1] + tg[r * bt])
        for j in range(nx):
            a = (r - 1) * kx + j // bx
            pts.append((tm, xg[j], a, a + kx, 0, 1 / (nt - 1)))
    t, x, a, b, axis, h = (np.array(v) for v in zip(*pts))
    sensors = moe.problem.sensors(p)

    def u(tx, dw):
        return moe.basis(tx[0], tx[1], sensors) @ dw

    tx, dw = jnp.stack([t, x], axis=1), w[b] - w[a]
    jumps = jax.vmap(u)(tx, dw)
    slopes = jax.vmap(jax.grad(u))(tx, dw)[np.arange(len(pts)), axis] * h
    return jnp.mean(jumps**2) + jnp.mean(slopes**2)


def test_moe_routes_rows_and_assembles_blocks(getkey):
    problem, moe = hc_small_layer(
        "heat", kind="moe", splits=(2, 2), boundary_rows="touching"
    )
    p = problem.sample(getkey(), 1)[0]
    key = getkey()
    _, moe_all = hc_small_layer("heat", kind="moe", splits=(2, 2))
    assert moe_all.boundary_rows == "all"
    rows_all = moe_all.constraint_rows(p, key)
    assert np.all(np.asarray(rows_all.ic_w) > 0)
    assert np.all(np.asarray(rows_all.right_w) > 0)
    rows = moe.constraint_rows(p, key)
    # IC rows touch the two experts at t = 0; left/right BC rows one column each.
    ic_on = np.asarray(rows.ic_w > 0)
    assert ic_on[0, :8].all() and not ic_on[0, 8:].any()
    assert ic_on[1, 8:].all() and not ic_on[1, :8].any()
    assert not ic_on[2:].any()
    left_on = np.asarray(rows.left_w > 0)
    assert left_on[0, :4].all() and not left_on[0, 4:].any() and left_on[2, 4:].all()
    assert not left_on[1].any() and not left_on[3].any()
    # Sampled points lie in each expert's block.
    nt, nx = moe.grid
    t, x = moe.coordinates()
    assert jnp.all(rows.pde_t[0] <= t[3]) and jnp.all(rows.pde_x[0] <= x[7])
    assert jnp.all(rows.pde_t[3] >= t[4]) and jnp.all(rows.pde_x[3] >= x[8])
    sol = moe.solve(p, key)
    assert sol.value.shape == (4, 6)
    u = moe.predict(p, sol.value)
    b = jax.vmap(
        lambda ti: jax.vmap(lambda xi: moe.basis(ti, xi, problem.sensors(p)))(x)
    )(t)
    np.testing.assert_allclose(u[:4, :8], b[:4, :8] @ sol.value[0], rtol=1e-12)
    np.testing.assert_allclose(u[4:, 8:], b[4:, 8:] @ sol.value[3], rtol=1e-12)
    # Pointwise predict (a (2, 3) array of points off the nodes): the basis at the
    # point times the weights of the expert owning the nearest node.
    tp = jnp.array([[0.05, 0.2, 0.47], [0.62, 0.9, 1.0]])
    xp = jnp.array([[0.01, 0.52, 0.44], [0.31, 0.97, 0.55]])
    it = np.rint(np.asarray(tp) * (nt - 1)).astype(int)
    ix = np.rint(np.asarray(xp) * (nx - 1)).astype(int)
    owner = (it // 4) * 2 + ix // 8
    bp = jax.vmap(lambda tq, xq: moe.basis(tq, xq, problem.sensors(p)))(
        tp.ravel(), xp.ravel()
    )
    want = jnp.sum(bp * sol.value[owner.ravel()], axis=-1)
    got = moe.predict(p, sol.value, tp, xp)
    assert got.shape == (2, 3)
    np.testing.assert_allclose(got.ravel(), want, rtol=1e-12)
    np.testing.assert_allclose(
        moe.interface_penalty(p, sol.value),
        _interface_penalty_by_hand(moe, p, sol.value),
        rtol=1e-12,
    )
    same = jnp.broadcast_to(sol.value[:1], sol.value.shape)
    assert float(moe.interface_penalty(p, same)) < 1e-24
    # hc_loss adds the penalty times interface_weight, 1 by default (the signature).
    assert moe.interface_weight == 1.0 and moe.interface_slope


def test_moe_overlap_extends_sampling(getkey):
    problem, moe = hc_small_layer("heat", kind="moe", splits=(1, 4), overlap=0.5)
    p = problem.sample(getkey(), 1)[0]
    rows = moe.constraint_rows(p, getkey())
    nt, nx = moe.grid
    # Every sampled point is a grid node, and no node is drawn twice.
    it = np.rint(np.asarray(rows.pde_t) * (nt - 1))
    ix = np.rint(np.asarray(rows.pde_x) * (nx - 1))
    np.testing.assert_allclose(it / (nt - 1), rows.pde_t, atol=1e-14)
    np.testing.assert_allclose(ix / (nx - 1), rows.pde_x, atol=1e-14)
    for k in range(4):  # the end experts' regions are clipped at the grid's ends
        assert len(set(zip(it[k], ix[k]))) == moe.num_points
    # Expert 1 owns x[4:8]; with half-block overlap it samples in x[2:10], on both
    # sides of its block. The first and last experts are clipped at the ends.
    assert ix[1].min() == 2 and ix[1].max() == 9
    assert ix[0].min() == 0 and ix[0].max() == 5
    assert ix[3].min() == 10 and ix[3].max() == 15
    # Interfaces between four blocks along x (midpoints x = 7/30, 15/30, 23/30): the
    # penalty by hand on random weights (no solve needed).
    w = jr.normal(getkey(), (4, moe.basis.num_basis))
    np.testing.assert_allclose(
        moe.interface_penalty(p, w), _interface_penalty_by_hand(moe, p, w), rtol=1e-12
    )


@pytest.mark.parametrize(
    "with_grad",
    # the forward solve in the default run; the gradient through the sharded
    # mixture (about 50 s, mostly compilation) in the slow run
    [False, pytest.param(True, marks=pytest.mark.slow)],
)
def test_sharded_experts_equal_unsharded(with_grad):
    script = textwrap.dedent(
        """
        import jax, jax.numpy as jnp, jax.random as jr, equinox as eqx, numpy as np
        jax.config.update("jax_enable_x64", True)
        import sciopt
        from sciopt import pde as sp
        sciopt.enable_compilation_cache()  # as the test session does
        assert jax.device_count() == 4
        problem = sp.PDEFamily.preset("burgers")
        basis = sp.BasisNetwork(6, problem.num_sensors, problem.t_span,
                                problem.x_span, width=12, depth=2, key=jr.key(0))
        mesh = jax.make_mesh((4,), ("experts",))
        kw = dict(grid=(8, 16), num_points=24, splits=(1, 4))
        plain = sp.MoEHardConstraint(problem, basis, **kw)
        sharded = sp.MoEHardConstraint(problem, basis, mesh=mesh, **kw)
        p = problem.sample(jr.key(1), 2)

        def loss(m):
            u = jax.vmap(lambda q: m(q, jr.key(2)))(p)
            return jnp.sum(u ** 2)

        solve = eqx.filter_jit(lambda m: m.solve(p[0], jr.key(2)).value)
        w = solve(sharded)
        assert len(w.sharding.device_set) == 4, w.sharding
        if WITH_GRAD:
            f = eqx.filter_jit(eqx.filter_value_and_grad(loss))
            (la, ga), (lb, gb) = f(plain), f(sharded)
            diff = max(float(jnp.max(jnp.abs(a - b)))
                       for a, b in zip(jax.tree.leaves(ga), jax.tree.leaves(gb)))
        else:
            la, lb = jnp.sum(solve(plain) ** 2), jnp.sum(w ** 2)
            diff = float(jnp.max(jnp.abs(solve(plain) - w)))
        print("LOSS", abs(float(la) - float(lb)), "GRAD", diff)
        """
    ).replace("WITH_GRAD", str(with_grad))
    env = dict(os.environ)
    env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("LOSS")][0]
    _, loss_diff, _, grad_diff = line.split()
    assert float(loss_diff) < 1e-10
    assert float(grad_diff) < 1e-8


# -- training -------------------------------------------------------------------


class _Poly(sp.BasisNetwork):
    """`b = (t, x^2)`: with weights (1, 1), `u = t + x^2`, whose heat residual
    `u_t - nu u_xx = 1 - 2 nu` is the same at every point."""

    def __call__(self, t, x, sensors):
        return jnp.stack([t, x * x])


def test_loss_terms_by_hand():
    family = sp.PDEFamily.preset("heat")
    basis = _Poly(2, 16, family.t_span, family.x_span, width=2, depth=1, key=jr.key(0))
    model = sp.SoftConstraintModel(family, basis, grid=(8, 16), key=jr.key(3))
    model = eqx.tree_at(lambda m: m.head, model, jnp.array([1.0, 1.0]))
    p = family.sample(jr.key(4), 2)
    refs = family.reference_grid(p, 8, 16)
    tg, xg = np.linspace(0.0, 1.0, 8), np.linspace(0.0, 1.0, 16)
    u = tg[:, None] + xg[None, :] ** 2
    pde = (1 - 2 * NU) ** 2  # times the time span, 1
    ic = np.mean([np.mean((xg**2 - _heat_u0(q, xg)) ** 2) for q in p])
    bc = np.mean(tg**2) + np.mean((tg + 1) ** 2)  # u = 0 wanted at both ends
    data = np.mean([np.sum((u - r) ** 2) / np.sum(r**2) for r in refs])
    weights = dict(pde_weight=2.0, ic_weight=3.0, bc_weight=5.0, data_weight=7.0)
    got = sp.hc_loss(model, (p, refs), jr.key(5), num_points=16, **weights)
    np.testing.assert_allclose(got, 2 * pde + 3 * ic + 5 * bc + 7 * data, rtol=1e-12)
    got = sp.hc_loss(model, p, jr.key(6), num_points=16, pde_weight=0.0, ic_weight=0.0)
    np.testing.assert_allclose(got, bc, rtol=1e-12)
    with pytest.raises(ValueError, match="references"):
        sp.hc_loss(model, p, jr.key(5), data_weight=1.0)


def _test_errors(model, instances, references, key):
    keys = jr.split(key, instances.shape[0])

    def one(p, k, ref):
        return sp.relative_l2(model.predict(p, model.solve(p, k).value), ref)

    return eqx.filter_jit(jax.vmap(one))(instances, keys, references)


@pytest.mark.slow
def test_hard_constraints_beat_soft_constraints_on_a_small_budget():
    problem = sp.PDEFamily.preset("heat")
    grid = (16, 32)
    train = problem.sample(jr.key(10), 64)
    test = problem.sample(jr.key(11), 16)
    refs = problem.reference_grid(test, *grid)
    basis = sp.BasisNetwork(
        16,
        problem.num_sensors,
        problem.t_span,
        problem.x_span,
        width=32,
        depth=2,
        key=jr.key(0),
    )
    models = {
        "sc": sp.SoftConstraintModel(problem, basis, grid=grid, key=jr.key(3)),
        "hc": sp.HardConstraintLayer(problem, basis, grid=grid, num_points=96),
        "moe": sp.MoEHardConstraint(
            problem, basis, grid=grid, num_points=96, splits=(1, 2)
        ),
    }
    errors = {}
    for name, model in models.items():
        res = sciopt.fit(
            model,
            sp.hc_loss,
            train,
            key=jr.key(5),
            steps=150,
            batch_size=4,
            chunk_size=150,
        )
        err = _test_errors(res.model, test, refs, jr.key(7))
        errors[name] = float(err.mean())
    assert errors["hc"] < errors["sc"]
    assert errors["moe"] < errors["sc"]


@pytest.mark.slow
def test_hard_constraints_beat_soft_constraints_fast():
    problem, layer = hc_small_layer("heat")
    _, moe = hc_small_layer("heat", kind="moe", splits=(1, 2))
    soft = sp.SoftConstraintModel(problem, layer.basis, grid=layer.grid, key=jr.key(3))
    train = problem.sample(jr.key(10), 16)
    test = problem.sample(jr.key(11), 8)
    refs = problem.reference_grid(test, *layer.grid)
    errors = {}
    for name, model in {"sc": soft, "hc": layer, "moe": moe}.items():
        res = sciopt.fit(
            model,
            sp.hc_loss,
            train,
            key=jr.key(5),
            steps=20,
            batch_size=4,
            chunk_size=20,
        )
        err = _test_errors(res.model, test, refs, jr.key(7))
        errors[name] = float(err.mean())
    assert errors["hc"] < 0.5 * errors["sc"], errors
    assert errors["moe"] < 0.5 * errors["sc"], errors


@pytest.mark.parametrize("shape", [(9, 4), (3, 5)])
def test_qr_least_squares_against_numpy_and_differences(shape):
    """The affine solve: least squares (tall) and least norm (wide) against
    `numpy.linalg.lstsq`, and its derivative against central differences."""
    from sciopt.pde._hc_solve import qr_least_squares

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=shape), rng.normal(size=shape[0])
    x = qr_least_squares(jnp.asarray(a), jnp.asarray(b))
    np.testing.assert_allclose(x, np.linalg.lstsq(a, b, rcond=None)[0], rtol=1e-12)
    da, db = rng.normal(size=shape), rng.normal(size=shape[0])
    w = rng.normal(size=shape[1])

    def f(eps):
        return jnp.dot(w, qr_least_squares(jnp.asarray(a) + eps * da, b + eps * db))

    eps = 1e-6
    fd = (f(eps) - f(-eps)) / (2 * eps)
    np.testing.assert_allclose(jax.grad(f)(0.0), fd, rtol=1e-7)
