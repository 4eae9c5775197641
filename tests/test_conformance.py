"""The solver conformance suite: every public solver of `tests/helpers.CONFORMANCE`
under jit, vmap, grad (against central differences), float32, throw, an exhausted
budget, recompilation and its own optimality residual.

Set `SCIOPT_CONFORMANCE_REPORT=path.json` to write the measured gradient errors
(the table of `docs/conformance.md`)."""

import json
import os

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sciopt

from .helpers import CONFORMANCE, count_compilations


GRAD_ERRORS: dict[str, float] = {}


@pytest.fixture(scope="module", autouse=True)
def _report():
    yield
    path = os.environ.get("SCIOPT_CONFORMANCE_REPORT")
    if path:
        with open(path, "w") as f:
            json.dump(GRAD_ERRORS, f, indent=1, sort_keys=True)


# The default test run checks one solver of each family against every check and every
# other solver under `jax.jit`; `pytest -m slow` runs the whole matrix. Each check
# compiles the solve anew (jit, vmap, grad, float32 are different programs), so the full
# matrix takes minutes.
DEFAULT_RUN = {
    "nlp.AdaSketchNewton",
    "relu.ADMM",
    "bilevel.LVHBA(coupled y <= x)",
    "prox.PnPProximalGradient(LPN)",
}


def _cases(check):
    params = []
    for case in CONFORMANCE:
        marks = []
        if check in case.skip:
            marks.append(pytest.mark.skip(reason=case.skip[check]))
        elif check in case.xfail:
            marks.append(pytest.mark.xfail(strict=True, reason=case.xfail[check]))
        if case.slow or (case.name not in DEFAULT_RUN and check != "jit"):
            marks.append(pytest.mark.slow)
        params.append(pytest.param(case, id=case.name, marks=marks))
    return params


def _run(case, problem, solver, y0, args, **kw):
    return (case.run or sciopt.solve)(problem, solver, y0, args, **kw)


def _has_floats(tree):
    return bool(jax.tree.leaves(eqx.filter(tree, eqx.is_inexact_array)))


def _setup(case, dtype=jnp.float64, kind=None):
    """`(f, theta, problem, solver, y0, args)`: `f(theta, **solve_kw)` is the flat
    readout of the solution as a function of the perturbed input `theta` (the
    floating part of `args`, or the problem's data)."""
    problem, solver, y0, args = case.make(dtype)
    if kind is None:
        kind = "args" if _has_floats(args) else "data"
    if kind == "args":
        theta = args
    else:
        theta = case.data(problem)

    def f(theta, **kw):
        if kind == "args":
            p, a = problem, theta
        else:
            p, a = eqx.tree_at(case.data, problem, theta), args
        sol = _run(case, p, solver, y0, a, **kw)
        value = sol.value if case.readout is None else case.readout(sol.value)
        leaves = jax.tree.leaves(eqx.filter(value, eqx.is_inexact_array))
        return jnp.concatenate([jnp.ravel(x) for x in leaves])

    return f, theta, problem, solver, y0, args


def _perturb(theta, scale=1e-2, seed=1):
    rng = np.random.default_rng(seed)
    return jax.tree.map(
        lambda x: x + scale * jnp.asarray(rng.normal(size=x.shape), x.dtype), theta
    )


def _close(a, b, rtol, atol=0.0):
    a, b = np.asarray(a), np.asarray(b)
    scale = 1 + np.max(np.abs(b))
    np.testing.assert_allclose(a, b, rtol=rtol, atol=atol * scale)


@pytest.mark.parametrize("case", _cases("jit"))
def test_jit(case):
    f, theta, *_ = _setup(case)
    # `throw=False`: raising under jit compiles a host callback into the program,
    # which JAX's persistent cache never keeps; `test_throw` checks it under jit.
    jitted = jax.jit(lambda t: f(t, throw=False))
    # the caller's jit compiles the solve with the caller's (XLA's default) compiler
    # options: the eager call is compared with the same options, so that the check
    # is of jit alone (sciopt's options change rounding, test_compile.py)
    sciopt.set_cpu_compiler_options(None)
    try:
        eager = f(theta)
    finally:
        sciopt.set_cpu_compiler_options()
    _close(jitted(theta), eager, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("case", _cases("no_recompile"))
def test_no_recompile(case):
    f, theta, *_ = _setup(case)
    f(theta)
    new = _perturb(theta)
    with count_compilations() as c:
        f(new)
    assert c[0] == 0


@pytest.mark.parametrize("case", _cases("vmap"))
def test_vmap(case):
    f, theta, *_ = _setup(case)
    other = _perturb(theta)
    batch = jax.tree.map(lambda a, b: jnp.stack([a, b]), theta, other)
    out = jax.vmap(f)(batch)
    _close(out[0], f(theta), rtol=1e-6, atol=1e-8)
    _close(out[1], f(other), rtol=1e-6, atol=1e-8)


def _grad_check(case, kind):
    f, theta, *_ = _setup(case, kind=kind)
    out = f(theta)
    rng = np.random.default_rng(0)
    weights = jnp.asarray(rng.normal(size=out.shape))

    def loss(t):
        return jnp.vdot(weights, f(t))

    direction = jax.tree.map(
        lambda x: jnp.asarray(rng.normal(size=x.shape), x.dtype), theta
    )
    grad = jax.grad(loss)(theta)
    exact = sum(
        float(jnp.vdot(g, d))
        for g, d in zip(jax.tree.leaves(grad), jax.tree.leaves(direction))
    )
    size = max(float(jnp.max(jnp.abs(x))) for x in jax.tree.leaves(theta))
    eps = case.fd_eps * (1 + size)

    def shifted(s):
        return jax.tree.map(lambda x, d: x + s * d, theta, direction)

    fd = (float(loss(shifted(eps))) - float(loss(shifted(-eps)))) / (2 * eps)
    error = abs(exact - fd) / max(abs(fd), 1e-8)
    GRAD_ERRORS[f"{case.name} / {kind}"] = error
    assert error <= case.grad_rtol, (exact, fd)


@pytest.mark.parametrize("case", _cases("grad_args"))
def test_grad_args(case):
    _grad_check(case, "args")


@pytest.mark.parametrize("case", _cases("grad_data"))
def test_grad_data(case):
    _grad_check(case, "data")


@pytest.mark.parametrize("case", _cases("float32"))
def test_float32(case):
    f64, theta64, *_ = _setup(case, jnp.float64)
    problem, solver, y0, args = case.make(jnp.float32)
    sol = _run(case, problem, solver, y0, args)
    value = sol.value if case.readout is None else case.readout(sol.value)
    leaves = jax.tree.leaves(eqx.filter(value, eqx.is_inexact_array))
    assert all(x.dtype == jnp.float32 for x in leaves)
    flat = jnp.concatenate([jnp.ravel(x) for x in leaves])
    _close(flat, f64(theta64), rtol=0.0, atol=case.f32_atol)


@pytest.mark.parametrize("case", _cases("steps_exhausted"))
def test_steps_exhausted(case):
    problem, solver, y0, args = case.make(jnp.float64)
    sol = _run(case, problem, solver, y0, args, max_steps=1, throw=False)
    assert jnp.all(sol.result == sciopt.RESULTS.steps_exhausted)


@pytest.mark.parametrize("case", _cases("throw"))
def test_throw(case):
    problem, solver, y0, args = case.make(jnp.float64)
    with pytest.raises(eqx.EquinoxRuntimeError, match="maximum number of steps"):
        sciopt.solve(problem, solver, y0, args, max_steps=1)

    @eqx.filter_jit
    def under_jit(y0, args):
        return sciopt.solve(problem, solver, y0, args, max_steps=1).value

    with pytest.raises(eqx.EquinoxRuntimeError, match="maximum number of steps"):
        jax.block_until_ready(under_jit(y0, args))


@pytest.mark.parametrize("case", _cases("optimality"))
def test_optimality_residual(case):
    problem, solver, y0, args = case.make(jnp.float64)
    sol = _run(case, problem, solver, y0, args)
    if case.optimality is None:
        residual = solver.optimality(problem, sol.value, args, {})
    else:
        residual = case.optimality(problem, solver, sol, args)
    worst = max(
        (float(jnp.max(jnp.abs(r))) for r in jax.tree.leaves(residual) if r.size),
        default=0.0,
    )
    scale = 1 + max(
        (
            float(jnp.max(jnp.abs(x)))
            for x in jax.tree.leaves(eqx.filter(sol.value, eqx.is_inexact_array))
            if x.size
        ),
        default=0.0,
    )
    assert worst <= case.residual_atol * scale


def test_levenberg_marquardt_runs_in_float32_under_x64():
    # optimistix's LM mixed float64 damping into a float32 system under x64 (lineax
    # refused it); the hard-constraint layers' LM casts it. Closed form: the
    # minimiser of ||sin(w) - a||^2 + ||0.1 w||^2 solves sin(w) - a + 0.01 w / cos(w)
    # = 0, solved here by scipy in float64.
    import optimistix as optx
    import scipy.optimize
    from sciopt.pde._hc_solve import levenberg_marquardt

    def fn(w, a):
        return jnp.concatenate([jnp.sin(w) - a, 0.1 * w])

    a = jnp.full(3, 0.5, jnp.float32)
    sol = optx.least_squares(
        fn, levenberg_marquardt(1e-6, 1e-6), jnp.zeros(3, jnp.float32), a
    )
    assert sol.value.dtype == jnp.float32
    ref = scipy.optimize.brentq(
        lambda w: np.sin(w) - 0.5 + 0.01 * w / np.cos(w), 0.0, 1.0, xtol=1e-14
    )
    np.testing.assert_allclose(sol.value, ref, rtol=1e-5)
