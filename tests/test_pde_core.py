"""PDE core: declarations, residual lowering, sampling, references, metrics."""

import math
import types

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
import sciopt.pde as P

from .helpers import pde_convection_diffusion, pde_periodic_domain


def _observed_order(errors, sizes):
    return np.log(errors[0] / errors[-1]) / np.log(sizes[-1] / sizes[0])


# ---------------------------------------------------------------------------
# Residual lowering
# ---------------------------------------------------------------------------


def _test_function(x, t):
    return jnp.sin(x) * jnp.exp(0.3 * t) + 0.2 * jnp.cos(2 * x * t) + x**2 * t


def test_formula_residual_matches_hand_written():
    dom = P.Domain((0.0, 1.0), (0.0, 1.0))
    pde = P.PDE(
        "u_t + u*u_x - nu*u_xx + k*u_xt*x + sin(t)*u_tx",
        dom,
        "0",
        boundary=[P.DirichletBC("left"), P.DirichletBC("right")],
        parameters={"nu": 0.3, "k": 1.7},
    )
    assert pde.derivatives == ("u_t", "u_x", "u_xt", "u_xx")
    u = _test_function
    ux = jax.grad(u, 0)
    ut = jax.grad(u, 1)
    uxx = jax.grad(ux, 0)
    uxt = jax.grad(ux, 1)

    def hand(x, t, nu=0.3, k=1.7):
        return (
            ut(x, t)
            + u(x, t) * ux(x, t)
            - nu * uxx(x, t)
            + k * uxt(x, t) * x
            + jnp.sin(t) * uxt(x, t)
        )

    xs = jnp.linspace(0.1, 0.9, 7)
    ts = jnp.linspace(0.2, 0.8, 7)
    got = jax.vmap(lambda x, t: pde.residual(u, x, t))(xs, ts)
    want = jax.vmap(hand)(xs, ts)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    # Parameter overrides by `args`, also traced.
    got2 = jax.jit(
        lambda nu: jax.vmap(lambda x, t: pde.residual(u, x, t, {"nu": nu}))(xs, ts)
    )(0.9)
    np.testing.assert_allclose(got2, jax.vmap(lambda x, t: hand(x, t, 0.9))(xs, ts))


def _test_function_residual(x, t, c=5.0, nu=0.1):
    """`u_t + c u_x - nu u_xx` of `_test_function`, differentiated by hand."""
    e, s2, c2 = jnp.exp(0.3 * t), jnp.sin(2 * x * t), jnp.cos(2 * x * t)
    u_t = 0.3 * jnp.sin(x) * e - 0.4 * x * s2 + x**2
    u_x = jnp.cos(x) * e - 0.4 * t * s2 + 2 * x * t
    u_xx = -jnp.sin(x) * e - 0.8 * t**2 * c2 + 2 * t
    return u_t + c * u_x - nu * u_xx


def test_callable_and_formula_residuals_match_hand_derivatives():
    pde_f, _ = pde_convection_diffusion()

    def res(d, x, t, args):
        return d["u_t"] + args["c"] * d["u_x"] - args["nu"] * d["u_xx"]

    pde_c = P.PDE(
        res,
        pde_f.domain,
        lambda x, args: jnp.sin(x),
        parameters={"c": 5.0, "nu": 0.1},
        derivatives=["u_t", "u_x", "u_xx"],
    )
    xs = jnp.linspace(0.0, 6.0, 5)
    ts = jnp.linspace(0.0, 1.0, 5)
    want = _test_function_residual(xs, ts)
    for pde in (pde_f, pde_c):
        got = jax.vmap(lambda x, t: pde.residual(_test_function, x, t))(xs, ts)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_residual_vanishes_on_exact_solution_and_float32():
    pde, exact = pde_convection_diffusion()
    xs = jnp.linspace(0.0, 6.0, 9)
    ts = jnp.linspace(0.0, 1.0, 9)
    r = jax.vmap(lambda x, t: pde.residual(exact, x, t))(xs, ts)
    assert float(jnp.max(jnp.abs(r))) < 1e-12
    r32 = jax.vmap(lambda x, t: pde.residual(exact, x, t))(
        xs.astype(jnp.float32), ts.astype(jnp.float32)
    )
    assert r32.dtype == jnp.float32
    assert float(jnp.max(jnp.abs(r32))) < 1e-4
    # ... and positive off it.
    r_off = jax.vmap(
        lambda x, t: pde.residual(lambda a, b: exact(a, b) + 0.1 * a * b, x, t)
    )(xs, ts)
    assert float(jnp.max(jnp.abs(r_off))) > 0.1


def test_grid_residual_second_order():
    pde, exact = pde_convection_diffusion(c=2.0)
    errors, sizes = [], [32, 64]
    for n in sizes:
        x, t = P.grid(pde.domain, n, n)
        values = exact(x[None, :], t[:, None])
        r = jax.jit(pde.residual_on_grid)(values, x, t)
        errors.append(float(jnp.max(jnp.abs(r))))
    assert 1.8 < _observed_order(errors, sizes) < 2.3


# ---------------------------------------------------------------------------
# Conditions
# ---------------------------------------------------------------------------


def test_boundary_residuals():
    dom = P.Domain((0.0, 1.0), (0.0, 1.0))
    pde = P.PDE(
        "u_t - u_xx",
        dom,
        "x",
        boundary=[P.DirichletBC("left", "t"), P.RobinBC("right", 2.0, 3.0, "a*t")],
        parameters={"a": 2.0},
    )

    def u(x, t):
        return t + x**2  # u(0, t) = t; 2 u(1) + 3 u_x(1) = 2 t + 2 + 6.

    r = pde.boundary_residual(u, 0.5)
    np.testing.assert_allclose(r, [0.0, 2 * 0.5 + 8.0 - 2.0 * 0.5])
    assert pde.initial_value(jnp.array([0.25]))[0] == 0.25
    per = pde_periodic_domain()
    pp = P.PDE("u_t + u_x", per, "sin(x)")
    assert isinstance(pp.boundary[0], P.PeriodicBC)
    np.testing.assert_allclose(
        pp.boundary_residual(lambda x, t: jnp.sin(x - t), 0.3), [0.0, 0.0], atol=1e-12
    )
    neumann = P.NeumannBC("left", 1.5)
    assert (neumann.alpha, neumann.beta) == (0.0, 1.0)


# ---------------------------------------------------------------------------
# Sampling
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["uniform", "lhs", "sobol"])
def test_sampling_in_domain_and_keyed(method):
    dom = P.Domain((-1.0, 2.0), (0.5, 1.5))
    x, t = P.sample_interior(dom, 64, jr.key(0), method)
    assert x.shape == t.shape == (64,)
    assert float(x.min()) >= -1.0 and float(x.max()) < 2.0
    assert float(t.min()) >= 0.5 and float(t.max()) < 1.5
    x2, _ = P.sample_interior(dom, 64, jr.key(0), method)
    x3, _ = P.sample_interior(dom, 64, jr.key(1), method)
    np.testing.assert_array_equal(x, x2)
    assert not np.array_equal(x, x3)
    assert P.sample_initial(dom, 8, jr.key(2), method).shape == (8,)
    tb = P.sample_boundary(dom, 8, jr.key(2), method)
    assert float(tb.min()) >= 0.5
    x32, _ = P.sample_interior(dom, 16, jr.key(0), method, jnp.float32)
    assert x32.dtype == jnp.float32


@pytest.mark.parametrize("method", ["lhs", "sobol"])
def test_stratified_sampling(method):
    # Latin hypercube and (digitally shifted) Sobol points with n = 2^k put exactly
    # one point in each 1/n-stratum of each axis.
    p = np.asarray(P.sample_unit(jr.key(3), 64, 2, method))
    for axis in range(2):
        counts = np.bincount(np.floor(p[:, axis] * 64).astype(int), minlength=64)
        np.testing.assert_array_equal(counts, np.ones(64))


def test_grid():
    x, t = P.grid(pde_periodic_domain(), 8, 3)
    assert x.shape == (8,) and t.shape == (3,)
    assert float(x[-1]) < 2 * math.pi - 0.5  # the periodic end point is left out
    xb, _ = P.grid(P.Domain((0.0, 1.0)), 5, 3)
    np.testing.assert_allclose(xb, [0, 0.25, 0.5, 0.75, 1.0])


# ---------------------------------------------------------------------------
# References
# ---------------------------------------------------------------------------


def test_closed_forms():
    pde, exact = pde_convection_diffusion(c=7.0, nu=0.05)
    x, t = P.grid(pde.domain, 64, 11)
    want = exact(x[None, :], t[:, None])
    spectral = P.convection_diffusion_solution(jnp.sin(x), t, 7.0, 0.05, pde.domain)
    np.testing.assert_allclose(spectral, want, atol=1e-12)
    adv = P.advection_solution(jnp.sin, x, t, 7.0, pde.domain)
    np.testing.assert_allclose(adv, jnp.sin(x[None, :] - 7.0 * t[:, None]), atol=1e-12)
    dom = P.Domain((0.0, 2.0), (0.0, 0.1))
    heat = P.heat_sine_series(x / math.pi, t / 10, 0.5, [1.0, 0.0, 0.3], dom)
    xx, tt = x[None, :] / math.pi, t[:, None] / 10
    want_heat = jnp.exp(-0.5 * (math.pi / 2) ** 2 * tt) * jnp.sin(
        math.pi * xx / 2
    ) + 0.3 * jnp.exp(-0.5 * (3 * math.pi / 2) ** 2 * tt) * jnp.sin(
        3 * math.pi * xx / 2
    )
    np.testing.assert_allclose(heat, want_heat, atol=1e-12)


def test_cole_hopf_solves_burgers():
    nu = 0.1
    dom = pde_periodic_domain(0.5)
    pde = P.PDE("u_t + u*u_x - nu*u_xx", dom, "sin(x)", parameters={"nu": nu})
    F = P.antiderivative("sin(x)")
    np.testing.assert_allclose(F(jnp.array([0.0, math.pi])), [0.0, 2.0], atol=1e-14)
    t = jnp.linspace(0.0, 0.5, 6)
    x, _ = P.grid(dom, 64, 6)
    u = P.burgers_cole_hopf(x, t, nu, jnp.sin, F)
    np.testing.assert_allclose(u[0], jnp.sin(x), atol=1e-14)
    # The quadrature is converged ...
    finer = P.burgers_cole_hopf(x, t, nu, jnp.sin, F, num_nodes=8001, half_width=20.0)
    np.testing.assert_allclose(u, finer, atol=1e-12)

    # ... and the result satisfies the PDE (by autodiff on the transform).
    def single(xx, tt):
        return P.burgers_cole_hopf(xx[None], tt[None], nu, jnp.sin, F)[0, 0]

    residual = jax.jit(jax.vmap(lambda xx, tt: pde.residual(single, xx, tt)))
    r = residual(jnp.array([0.7, 2.5, 4.0]), jnp.array([0.2, 0.4, 0.3]))
    assert float(jnp.max(jnp.abs(r))) < 1e-9


@pytest.mark.parametrize("order", [2, 4])
def test_method_of_lines_periodic_orders(order):
    # u_t + c u_x - nu u_xx + d u_xxx = 0 with u0 = sin x: every periodic stencil
    # (first, second and third derivative) at once; exact
    # u = exp(-nu t) sin(x - (c - d) t).
    c, nu, d = 1.0, 0.1, 0.5
    pde = P.PDE(
        "u_t + c*u_x - nu*u_xx + d*u_xxx",
        pde_periodic_domain(0.5),
        "sin(x)",
        parameters={"c": c, "nu": nu, "d": d},
    )

    def exact(x, t):
        return jnp.exp(-nu * t) * jnp.sin(x - (c - d) * t)

    t = jnp.linspace(0.0, 0.5, 3)
    errors, sizes = [], [16, 32]
    for n in sizes:
        x, u = P.method_of_lines(pde, n, t, order=order)
        errors.append(float(jnp.max(jnp.abs(u - exact(x[None], t[:, None])))))
    assert abs(_observed_order(errors, sizes) - order) < 0.3, errors
    # Measured at 32 nodes: 7.81e-4 (order 2), 3.10e-6 (order 4).
    assert errors[-1] < {2: 8.6e-4, 4: 3.4e-6}[order], errors


@pytest.mark.parametrize("kind", ["dirichlet", "neumann", "robin"])
def test_method_of_lines_bounded_second_order(kind):
    dom = P.Domain((0.0, 1.0), (0.0, 0.1))
    # u = exp(-pi^2 t) cos(pi x) + a t-dependent linear part fitted to each kind.
    if kind == "dirichlet":
        bcs = [
            P.DirichletBC("left", "exp(-pi**2*t)"),
            P.DirichletBC("right", "-exp(-pi**2*t) - 1"),
        ]
        init = "cos(pi*x) - x"
    elif kind == "neumann":
        bcs = [P.NeumannBC("left", "-1"), P.NeumannBC("right", "-1")]
        init = "cos(pi*x) - x"
    else:  # u + u_x at x = 1: -exp(-pi^2 t) - 1 - 1
        bcs = [
            P.NeumannBC("left", "-1"),
            P.RobinBC("right", 1.0, 1.0, "-exp(-pi**2*t) - 2"),
        ]
        init = "cos(pi*x) - x"
    pde = P.PDE("u_t - u_xx", dom, init, boundary=bcs)
    t = jnp.linspace(0.0, 0.1, 3)
    errors, sizes = [], [11, 21]
    for n in sizes:
        x, u = P.method_of_lines(pde, n, t)
        want = (
            jnp.exp(-(math.pi**2) * t[:, None]) * jnp.cos(math.pi * x[None]) - x[None]
        )
        errors.append(float(jnp.max(jnp.abs(u - want))))
    order = np.log(errors[0] / errors[-1]) / np.log((sizes[-1] - 1) / (sizes[0] - 1))
    assert 1.7 < order < 2.4, errors
    # Measured at 21 nodes: 2.71e-4 (Dirichlet), 7.57e-4 (Neumann), 7.59e-4 (Robin).
    bound = {"dirichlet": 3.0e-4, "neumann": 8.5e-4, "robin": 8.5e-4}[kind]
    assert errors[-1] < bound, errors


def test_method_of_lines_burgers_matches_cole_hopf():
    nu = 0.1
    dom = pde_periodic_domain(0.5)
    pde = P.PDE("u_t + u*u_x - nu*u_xx", dom, "sin(x)", parameters={"nu": nu})
    t = jnp.linspace(0.0, 0.5, 3)
    x, u = P.method_of_lines(pde, 128, t, order=4)
    ref = P.burgers_cole_hopf(x, t, nu, jnp.sin, P.antiderivative("sin(x)"))
    assert float(jnp.max(jnp.abs(u - ref))) < 1.3e-6  # measured: 1.0e-6


# ---------------------------------------------------------------------------
# Metrics, specs, bad input
# ---------------------------------------------------------------------------


def test_relative_l2_and_plots(tmp_path):
    ref = jnp.ones((3, 4))
    assert float(P.relative_l2(1.1 * ref, ref)) == pytest.approx(0.1)
    a = np.asarray(jr.normal(jr.key(0), (3, 4)))
    b = np.asarray(jr.normal(jr.key(1), (3, 4)))
    want = np.sqrt(np.sum((a - b) ** 2) / np.sum(b**2))
    assert float(P.relative_l2(a, b)) == pytest.approx(want, rel=1e-14)
    with pytest.raises(ValueError, match="shape"):
        P.relative_l2(jnp.ones((3,)), ref)
    x, t = jnp.linspace(0, 1, 4), jnp.linspace(0, 1, 3)
    from sciopt.gallery._plots import plot_error_curves, plot_solution

    p = plot_solution(x, t, ref, ref, tmp_path / "a.png", title="x")
    q = plot_error_curves([1, 2], {"a": [0.1, 0.2]}, tmp_path / "b.png")
    assert p.stat().st_size > 0 and q.stat().st_size > 0


def test_from_spec():
    spec = types.SimpleNamespace(
        name="demo",
        data={
            "equation": "u_t - nu*u_xx",
            "x": [0.0, 1.0],
            "t": [0.0, 0.5],
            "initial": "sin(pi*x)",
            "parameters": {"nu": 0.2},
            "boundary": [
                {"type": "dirichlet", "side": "left"},
                {"type": "robin", "side": "right", "alpha": 1.0, "beta": -0.1},
            ],
        },
    )
    pde = P.from_spec(spec)
    assert pde.domain.t_max == 0.5 and not pde.domain.periodic
    assert dict(pde.parameters) == {"nu": 0.2}
    spec.data["boundary"][0]["type"] = "bogus"
    with pytest.raises(ValueError, match="boundary type"):
        P.from_spec(spec)
    periodic = types.SimpleNamespace(
        name="p",
        data={
            "equation": "u_t + u_x",
            "x": [0, "2*pi"],
            "initial": "sin(x)",
            "periodic": True,
        },
    )
    assert P.from_spec(periodic).domain.x_max == pytest.approx(2 * math.pi)


def test_bad_inputs():
    per = pde_periodic_domain()
    with pytest.raises(ValueError, match="zero or negative length"):
        P.Domain((1.0, 1.0), (0.0, 1.0))
    with pytest.raises(ValueError, match="`t`"):
        P.Domain((0.0, 1.0), (0.0, 0.0))
    with pytest.raises(ValueError, match="finite"):
        P.Domain((0.0, math.inf))
    with pytest.raises(ValueError, match="not finite"):
        P.PDE("u_t + c*u_x", per, "sin(x)", parameters={"c": math.nan})
    with pytest.raises(ValueError, match="unknown symbols"):
        P.PDE("u_t + q*u_x", per, "sin(x)")
    with pytest.raises(ValueError, match="unknown symbols"):
        P.PDE("u_t + u_x", per, "sin(y)")
    with pytest.raises(ValueError, match="boundary"):
        P.PDE("u_t + u_x", P.Domain((0.0, 1.0)), "x")
    with pytest.raises(ValueError, match="one condition per side"):
        P.PDE("u_t + u_x", P.Domain((0.0, 1.0)), "x", boundary=[P.DirichletBC("left")])
    with pytest.raises(ValueError, match="side"):
        P.DirichletBC("top")
    pde = P.PDE("u_t + c*u_x", per, "sin(x)", parameters={"c": 1.0})
    with pytest.raises(ValueError, match="unknown parameters"):
        pde.args({"nu": 1.0})
    with pytest.raises(ValueError, match="not finite"):
        pde.args({"c": math.inf})
    with pytest.raises(ValueError, match="method"):
        P.sample_unit(jr.key(0), 4, 1, "grid")
    with pytest.raises(ValueError, match="no term in u_t"):
        P.method_of_lines(P.PDE("u_tt - u_xx", per, "sin(x)"), 8, jnp.array([0.0]))
    with pytest.raises(ValueError, match="time derivatives"):
        P.method_of_lines(P.PDE("u_t - u_xt", per, "sin(x)"), 8, jnp.array([0.0]))
    with pytest.raises(ValueError, match="coefficient"):
        P.method_of_lines(P.PDE("2*u_t + u_x", per, "sin(x)"), 8, jnp.array([0.0]))
    with pytest.raises(ValueError, match="positive"):
        P.burgers_cole_hopf(jnp.zeros(2), jnp.zeros(1), 0.0, jnp.sin, jnp.cos)
