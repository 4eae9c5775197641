"""Shared test utilities and problem lists.

Each family appends its own section (problem lists, solver lists) below the common
utilities.
"""

import contextlib

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import sciopt


# ---------------------------------------------------------------------------
# Common utilities
# ---------------------------------------------------------------------------


def tree_allclose(x, y, *, rtol=1e-5, atol=1e-8):
    return eqx.tree_equal(x, y, typematch=True, rtol=rtol, atol=atol)


@contextlib.contextmanager
def count_compilations():
    """Count XLA compilations (every `jax.jit` cache miss, eager or not) in a block:
    `with count_compilations() as n: ...; assert n[0] == 0`."""
    count = [0]

    def listener(event, duration, **kwargs):
        del duration, kwargs
        if event == "/jax/core/compile/backend_compile_duration":
            count[0] += 1

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield count
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


def finite_difference_grad(fn, x, eps=1e-6):
    """Central finite differences of a scalar `fn` at the vector `x` (float64)."""
    x = np.asarray(x, dtype=np.float64)
    grad = np.zeros_like(x)
    for i in range(x.size):
        e = np.zeros_like(x)
        e.flat[i] = eps
        grad.flat[i] = (
            float(fn(jnp.asarray(x + e))) - float(fn(jnp.asarray(x - e)))
        ) / (2 * eps)
    return grad


# ---------------------------------------------------------------------------
# Core: a toy problem and solver exercising the `sciopt.solve` protocol
# ---------------------------------------------------------------------------


class QuadraticProblem(sciopt.AbstractProblem):
    """min 1/2 x^T A x - b^T x with b = args (closed form x* = A^{-1} b)."""

    matrix: jax.Array

    def default_y0(self, args):
        return jnp.zeros(self.matrix.shape[0], self.matrix.dtype)

    def check(self, y0, args):
        if y0.shape != (self.matrix.shape[0],):
            raise ValueError(f"`y0` must have shape ({self.matrix.shape[0]},).")


class GradientDescent(sciopt.AbstractSolver):
    """Fixed-step gradient descent on `QuadraticProblem` (for core tests only)."""

    learning_rate: float = 0.1
    atol: float = 1e-10

    def init(self, problem, y, args, options):
        return jnp.array(jnp.inf, y.dtype)

    def step(self, problem, y, args, options, state):
        grad = problem.matrix @ y - args
        return y - self.learning_rate * grad, jnp.linalg.norm(grad), None

    def terminate(self, problem, y, args, options, state):
        return state < self.atol, sciopt.RESULTS.successful

    def postprocess(self, problem, y, aux, args, options, state, result):
        return y, aux, {"gradient_norm": state}

    def optimality(self, problem, y, args, options):
        return problem.matrix @ y - args


# --- prox ---


def prox_random_icnn(key, dim, *, alpha=0.1, width=16, depth=3):
    """A vector ICNN with random (not freshly initialised) parameters."""
    import jax.random as jr
    import sciopt.prox

    k_init, k_perturb = jr.split(key)
    psi = sciopt.prox.ICNN(dim, width, depth, key=k_init, alpha=alpha, beta=2.0)
    leaves, tree = jax.tree.flatten(eqx.filter(psi, eqx.is_inexact_array))
    keys = jr.split(k_perturb, len(leaves))
    new = [x + 0.5 * jr.normal(k, x.shape, x.dtype) for x, k in zip(leaves, keys)]
    return eqx.combine(jax.tree.unflatten(tree, new), psi)


# --- bilevel ---


def bilevel_ridge(n=20, d=10, seed=0, noise=1.5, batch_size=None):
    """A small ridge hyperparameter problem: x = log penalty, y = weights.

    Returns `(problem, start, phi)` where `phi(x)` is the closed-form upper objective
    (numpy). With `batch_size`, the problem is stochastic (data passed as batches).
    """
    from sciopt.bilevel import BilevelProblem

    rng = np.random.default_rng(seed)
    z_tr, z_va = rng.normal(size=(n, d)), rng.normal(size=(n, d))
    w_true = rng.normal(size=d)
    t_tr = z_tr @ w_true + noise * rng.normal(size=n)
    t_va = z_va @ w_true + noise * rng.normal(size=n)

    def phi(x):
        lam = np.exp(np.asarray(x, np.float64)[0])
        w = np.linalg.solve(z_tr.T @ z_tr / n + lam * np.eye(d), z_tr.T @ t_tr / n)
        return 0.5 * np.mean((z_va @ w - t_va) ** 2)

    if batch_size is None:

        def upper(x, w, args):
            return 0.5 * jnp.mean(jnp.square(z_va @ w - t_va))

        def lower(x, w, args):
            return 0.5 * jnp.mean(jnp.square(z_tr @ w - t_tr)) + 0.5 * jnp.exp(
                x[0]
            ) * jnp.sum(jnp.square(w))

        problem = BilevelProblem(upper, lower)
    else:

        def upper(x, w, args, batch):
            z, t = batch
            return 0.5 * jnp.mean(jnp.square(z @ w - t))

        def lower(x, w, args, batch):
            z, t = batch
            return 0.5 * jnp.mean(jnp.square(z @ w - t)) + 0.5 * jnp.exp(
                x[0]
            ) * jnp.sum(jnp.square(w))

        problem = BilevelProblem(
            upper,
            lower,
            upper_data=(z_va, t_va),
            lower_data=(z_tr, t_tr),
            batch_size=batch_size,
        )
    return problem, (jnp.zeros(1), jnp.zeros(d)), phi


# --- pde core / pinn ---


def pde_periodic_domain(t_max=1.0):
    """The periodic domain [0, 2 pi) x [0, t_max] of the transport problems."""
    import math

    import sciopt.pde

    return sciopt.pde.Domain((0.0, 2 * math.pi), (0.0, t_max), periodic=True)


def pde_convection_diffusion(c=5.0, nu=0.1, t_max=1.0):
    """u_t + c u_x = nu u_xx, u0 = sin x; exact u = exp(-nu t) sin(x - c t)."""
    import sciopt.pde

    pde = sciopt.pde.PDE(
        "u_t + c*u_x - nu*u_xx",
        pde_periodic_domain(t_max),
        "sin(x)",
        parameters={"c": c, "nu": nu},
    )

    def exact(x, t):
        return jnp.exp(-nu * t) * jnp.sin(x - c * t)

    return pde, exact


# --- nlp ---
# Hock-Schittkowski problems of `problems/nlp_hock_schittkowski.toml`. The default
# test run solves NLP_HS_QUICK (each distinct problem compiles anew); `-m slow` runs
# all of them.


def nlp_hs_specs():
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "problems"
    return {
        spec.name: spec
        for spec in sciopt.load_problem_specs(path / "nlp_hock_schittkowski.toml")
    }


NLP_HS_QUICK = ("hs006", "hs040", "hs061", "hs077")


def nlp_objective_error(f, reference):
    """Error of an objective against a reference: relative, or absolute near 0."""
    return abs(float(f) - float(reference)) / max(1.0, abs(float(reference)))


# --- relu ---


def relu_instance(seed, n=16, d=3, num_patterns=6, loss="squared", bias=False):
    """A random convex-ReLU instance with exactly `num_patterns` sampled patterns."""
    import sciopt.relu as sr

    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = rng.standard_normal(n)
    if loss == "bce":
        y = (y > 0).astype(np.float64)
    elif loss == "hinge":
        y = np.where(y > 0, 1.0, -1.0)
    patterns = sr.sample_patterns(jax.random.key(seed), X, 200, bias=bias)
    assert patterns.shape[1] >= num_patterns
    return X, y, patterns[:, :num_patterns]


# --- hard constraints ---


def small_pinn(pde, kind="pinn", *, num_interior=128, num_initial=32):
    """A tiny PINN (`kind="pinn"`) or Lagrangian PINN (`"lpinn"`) for `pde`, and its
    loss: `(model, loss)`."""
    import jax.random as jr
    from sciopt import pde as sp

    sizes = {"num_interior": num_interior, "num_initial": num_initial}
    if kind == "pinn":
        model = sp.PINN(pde.domain, key=jr.key(0), width=16, depth=2)
        return model, sp.PINNLoss(pde, **sizes)
    model = sp.LagrangianPINN(
        pde,
        key=jr.key(0),
        state_width=16,
        state_depth=2,
        characteristic_width=8,
        characteristic_depth=1,
    )
    return model, sp.LagrangianPINNLoss(pde, **sizes)


def hc_small_layer(pde="burgers", *, kind="layer", num_basis=6, grid=(8, 16), **kw):
    """A tiny PI-HC layer (or MoE with `kind="moe"`) for fast tests, on a preset
    family (by name) or a given `PDE`/`PDEFamily`."""
    import jax.random as jr
    from sciopt import pde as sp

    problem = sp.PDEFamily.preset(pde) if isinstance(pde, str) else pde
    basis = sp.BasisNetwork(
        num_basis,
        problem.num_sensors,
        problem.t_span,
        problem.x_span,
        width=12,
        depth=2,
        key=jr.key(0),
    )
    if kind == "moe":
        kw.setdefault("num_points", 24)
        return problem, sp.MoEHardConstraint(problem, basis, grid=grid, **kw)
    kw.setdefault("num_points", 48)
    return problem, sp.HardConstraintLayer(problem, basis, grid=grid, **kw)


# ---------------------------------------------------------------------------
# Conformance: one list of every public solver with a small problem
# (driven by tests/test_conformance.py; adding a solver is one `Conformance(...)`)
# ---------------------------------------------------------------------------

import dataclasses  # noqa: E402
from collections.abc import Callable  # noqa: E402


CONFORMANCE_CHECKS = (
    "jit",
    "vmap",
    "grad_args",
    "grad_data",
    "float32",
    "throw",
    "steps_exhausted",
    "no_recompile",
    "optimality",
)


@dataclasses.dataclass(frozen=True)
class Conformance:
    """One solver on one small problem, and which conformance checks apply.

    - `make(dtype)` returns `(problem, solver, y0, args)` in that floating dtype.
    - `data(problem)` picks a floating array of the problem ("problem data") that
      the vmap and gradient checks perturb (`None`: the problem holds none).
    - `readout(value)`: the part of the solution the checks compare (default: every
      floating leaf).
    - `skip`: check name -> the reason it does not apply (or why it is expected to
      fail: `xfail` holds those, as strict xfails).
    - `run(problem, solver, y0, args, **kw)`: how to solve (default `sciopt.solve`);
      `optimality(problem, solver, sol, args)`: the optimality residual at the
      solution (default `solver.optimality`).
    - `grad_rtol`: relative tolerance against central differences (float64);
      `f32_atol`: float32 solution against float64; `residual_atol`: the solver's
      optimality residual at its solution.
    """

    name: str
    make: Callable
    data: Callable | None = None
    readout: Callable | None = None
    skip: dict = dataclasses.field(default_factory=dict)
    xfail: dict = dataclasses.field(default_factory=dict)
    grad_rtol: float = 1e-5
    fd_eps: float = 1e-6
    f32_atol: float = 1e-3
    residual_atol: float = 1e-6
    slow: bool = False
    run: Callable | None = None
    optimality: Callable | None = None


def _nlp_case(linear_solver=None, **kw):
    def make(dtype):
        import lineax as lx  # noqa: F401

        problem = sciopt.nlp.EqualityConstrainedProblem(
            objective=lambda x, p: (
                (x[0] - p[0]) ** 2 + (x[1] - p[1]) ** 2 + x[2] ** 2 + x[0] * x[2]
            ),
            constraints=lambda x, p: jnp.stack(
                [x[0] ** 2 + x[1] + x[2] - p[2], x[0] - x[1] + 2 * x[2]]
            ),
        )
        solver = sciopt.nlp.AdaSketchNewton(
            **({} if linear_solver is None else {"linear_solver": linear_solver()}),
            **kw,
        )
        return (
            problem,
            solver,
            jnp.array([0.5, 0.5, 0.5], dtype),
            jnp.array([1.0, -0.5, 2.0], dtype),
        )

    return make


def _relu_case(kind):
    def make(dtype):
        import sciopt.relu as sr

        X, y, patterns = relu_instance(1, n=10, d=2, num_patterns=4)
        X, y = jnp.asarray(X, dtype), jnp.asarray(y, dtype)
        tight = dtype == jnp.float64
        if kind == "admm":
            problem = sr.ConvexReLUProblem(X, y, patterns, 0.3)
            solver = sr.ADMM(
                rtol=1e-10 if tight else 1e-5, atol=1e-12 if tight else 1e-6
            )
        elif kind in ("ip", "ip_dense"):
            problem = sr.ConvexReLUProblem(X, y, patterns, 0.3)
            method = "dense" if kind == "ip_dense" else "auto"
            solver = sr.InteriorPoint(
                rtol=1e-10 if tight else 1e-6, linear_solver=method
            )
        elif kind == "adversarial":
            yy = jnp.where(y > 0, 1.0, -1.0).astype(dtype)
            problem = sr.AdversarialReLUProblem(X, yy, patterns, 0.1, 0.05)
            solver = sr.ADMM(
                rtol=1e-10 if tight else 1e-5, atol=1e-12 if tight else 1e-6
            )
        else:
            # drawn in float64 and cast: a float32 draw gives other directions
            H = sr.sample_directions(jax.random.key(0), 2, 10, dtype=jnp.float64)
            H = H.astype(dtype)
            problem = sr.SampledConvexProgram(X, y, H, 0.2)
            solver = sr.FISTA(rtol=1e-12 if tight else None)
        return problem, solver, None, None

    return make


def _bilevel_box(dtype):
    from sciopt.bilevel import BilevelProblem, LVHBA, Polyhedron

    n = 3
    eye = np.eye(n)
    problem = BilevelProblem(
        lambda x, y, p: 0.5 * jnp.sum((x - p[0]) ** 2) + 0.5 * jnp.sum((y - p[1]) ** 2),
        lambda x, y, p: 0.5 * jnp.sum((y - p[2]) ** 2),
        lower_constraints=lambda x, y, p: y - x,
        coupled_set=Polyhedron(
            a_ineq=np.concatenate([-eye, eye], 1).astype(dtype),
            b_ineq=np.zeros(n, dtype),
        ),
    )
    # Active (y = x) in coordinates 1 and 2, inactive in 0: not symmetric.
    args = tuple(
        jnp.asarray(v, dtype)
        for v in ([1.3, 0.1, 0.7], [0.4, -1.1, -0.2], [0.2, 1.4, 1.9])
    )
    solver = LVHBA(alpha=0.5, beta=0.5, eta=0.5, penalty=8.0)
    return problem, solver, (jnp.zeros(n, dtype), jnp.zeros(n, dtype)), args


def _bilevel_quadratic(solver_name):
    def make(dtype):
        from sciopt.bilevel import AID, BilevelProblem, BOREP

        q = jnp.asarray([[2.0, 0.3], [0.3, 1.0]], dtype)
        m = jnp.asarray([[1.0, 0.5], [-0.4, 0.8]], dtype)
        problem = BilevelProblem(
            lambda x, y, p: (
                0.5 * jnp.sum((x - p[0]) ** 2) + 0.5 * jnp.sum((y - p[1]) ** 2)
            ),
            lambda x, y, p: 0.5 * y @ q @ y - y @ (m @ x),
        )
        tight = dtype == jnp.float64
        if solver_name == "aid":
            # AID is not polished: tight tolerances make its solve smooth in args
            # for the finite differences.
            solver = AID(
                learning_rate=0.5,
                rtol=1e-12 if tight else None,
                atol=1e-12 if tight else None,
            )
        else:
            solver = BOREP(atol=5e-3 if tight else 1e-2)
        args = (jnp.asarray([1.0, -0.5], dtype), jnp.asarray([0.3, 0.8], dtype))
        return problem, solver, (jnp.zeros(2, dtype), jnp.zeros(2, dtype)), args

    return make


def _bilevel_nested(dtype):
    """AID with a sciopt lower solver: the lower level is an equality-constrained QP
    `min_y 1/2 y'Qy - (Mx)'y s.t. 1'y = x_0`, an `EqualityConstrainedProblem` taking
    `x` as its `args`, solved by `AdaSketchNewton(LU)`."""
    import lineax as lx
    from sciopt.bilevel import AID, NestedProblem

    q = jnp.asarray([[2.0, 0.3, 0.0], [0.3, 1.0, 0.2], [0.0, 0.2, 1.5]], dtype)
    m = jnp.asarray([[1.0, 0.5], [-0.4, 0.8], [0.3, -0.2]], dtype)
    lower = sciopt.nlp.EqualityConstrainedProblem(
        objective=lambda y, x: 0.5 * y @ q @ y - y @ (m @ x),
        constraints=lambda y, x: jnp.sum(y, keepdims=True) - x[:1],
    )
    problem = NestedProblem(
        lambda x, y, p: 0.5 * jnp.sum((x - p[0]) ** 2) + 0.5 * jnp.sum((y - p[1]) ** 2),
        lambda x, p: (lower, x),
    )
    tight = dtype == jnp.float64
    solver = AID(
        learning_rate=0.5,
        lower_solver=sciopt.nlp.AdaSketchNewton(linear_solver=lx.LU()),
        rtol=1e-12 if tight else None,
        atol=1e-12 if tight else None,
    )
    args = (jnp.asarray([1.0, -0.5], dtype), jnp.asarray([0.3, 0.8, -0.2], dtype))
    return problem, solver, (jnp.zeros(2, dtype), jnp.zeros(3, dtype)), args


def _prox_case(kind):
    def make(dtype):
        import sciopt.prox as sp

        # PnP-PGD with the soft-threshold converges linearly at a rate set by the
        # blur's conditioning on the support: about 110 steps to rtol 1e-12 with
        # sigma 0.5, 12 000 with sigma 1.0 (past the default step budget)
        sigma = 0.5 if kind == "pgd" else 1.0
        op = sp.blur_operator((1, 4, 4), sigma=sigma, size=3, dtype=dtype)
        rng = np.random.default_rng(0)
        x = jnp.asarray(rng.uniform(size=(1, 4, 4)), dtype)
        y = op.mv(x) + jnp.asarray(0.05 * rng.normal(size=(1, 4, 4)), dtype)
        problem = sp.LinearInverseProblem(op, y)
        tight = dtype == jnp.float64
        tol = {"rtol": 1e-12, "atol": 1e-13} if tight else {"rtol": 1e-5}
        if kind == "pgd":
            solver = sp.PnPProximalGradient(sp.SoftThreshold(0.05), **tol)
        elif kind == "admm":
            solver = sp.PnPADMM(sp.TotalVariation(0.02), **tol)
        else:
            import jax.random as jr

            lpn = sp.LearnedProximalNetwork(
                sp.ICNN((1, 4, 4), 8, 2, key=jr.key(1), alpha=0.2, beta=5.0)
            )
            lpn = jax.tree.map(
                lambda a: a.astype(dtype) if eqx.is_inexact_array(a) else a, lpn
            )
            solver = sp.PnPProximalGradient(lpn, **tol)
        return problem, solver, None, None

    return make


_NO_ARGS = "the problem takes no `args`: its data are problem fields (grad_data)"
_NO_DATA = "the problem holds callables only: its data enter through `args`"
_HC_THROW = (
    "the layer returns one result code per expert and instance and never raises: a "
    "training batch must not abort on one instance (steps_exhausted is checked)"
)


def _hc_case(kind):
    """A hard-constraint layer (or mixture) on the Burgers family: the 'solver' is
    the layer's own least-squares solve, differentiated with respect to `nu`."""

    def make(dtype):
        import jax.random as jr

        # tight tolerances in float64: the solve's own accuracy bounds how far jit
        # and eager runs, and central differences, can agree
        tol = 1e-12 if dtype == jnp.float64 else 1e-6
        _, layer = hc_small_layer("burgers", kind=kind, num_basis=5, rtol=tol, atol=tol)
        layer = jax.tree.map(
            lambda a: a.astype(dtype) if eqx.is_inexact_array(a) else a, layer
        )
        instance = layer.problem.sample(jr.key(3), 1)[0].astype(dtype)
        return layer, None, instance, {"nu": jnp.asarray(0.05, dtype)}

    return make


def _hc_run(layer, solver, instance, args, max_steps=None, throw=True):
    import copy

    import jax.random as jr

    del solver, throw
    if max_steps is not None:  # a static field: set on a copy
        layer = copy.copy(layer)
        object.__setattr__(layer, "max_steps", max_steps)
    return layer.solve(instance, jr.key(1), args)


def _hc_optimality(layer, solver, sol, args):
    return sol.stats["gradient_norm"]


CONFORMANCE = [
    Conformance("nlp.AdaSketchNewton", _nlp_case(), skip={"grad_data": _NO_DATA}),
    Conformance(
        "nlp.AdaSketchNewton(LU)",
        _nlp_case(lambda: __import__("lineax").LU()),
        skip={"grad_data": _NO_DATA},
    ),
    Conformance(
        "nlp.AdaSketchNewton(RowSketch)",
        _nlp_case(lambda: sciopt.nlp.RowSketch(rtol=1e-10)),
        skip={"grad_data": _NO_DATA},
    ),
    Conformance(
        "nlp.AdaSketchNewton(BlockSketch)",
        _nlp_case(lambda: sciopt.nlp.BlockSketch(block_size=2, rtol=1e-10)),
        skip={"grad_data": _NO_DATA},
    ),
    Conformance(
        "nlp.AdaSketchNewton(GaussianSketch)",
        _nlp_case(lambda: sciopt.nlp.GaussianSketch(block_size=2, rtol=1e-10)),
        skip={"grad_data": _NO_DATA},
    ),
    Conformance(
        "nlp.AdaSketchNewton(SchurComplementCG)",
        _nlp_case(lambda: sciopt.nlp.SchurComplementCG(), materialise=False),
        skip={"grad_data": _NO_DATA},
    ),
    Conformance(
        "relu.ADMM",
        _relu_case("admm"),
        data=lambda p: p.X,
        readout=lambda v: v.v,
        skip={"grad_args": _NO_ARGS},
        grad_rtol=1e-4,
    ),
    Conformance(
        "relu.InteriorPoint",
        _relu_case("ip"),
        data=lambda p: p.X,
        readout=lambda v: v.v,
        skip={"grad_args": _NO_ARGS},
        # The primal solution is accurate to ~3e-7 at rtol 1e-10 (the gap is
        # quadratic in the error), so central differences need a wider step.
        fd_eps=1e-3,
        grad_rtol=1e-4,
    ),
    Conformance(
        "relu.InteriorPoint(dense)",
        _relu_case("ip_dense"),
        data=lambda p: p.X,
        readout=lambda v: v.v,
        skip={"grad_args": _NO_ARGS},
        fd_eps=1e-3,  # as above
        grad_rtol=1e-4,
    ),
    Conformance(
        "relu.ADMM(adversarial)",
        _relu_case("adversarial"),
        data=lambda p: p.X,
        readout=lambda v: v.v,
        skip={"grad_args": _NO_ARGS},
        grad_rtol=1e-4,
    ),
    Conformance(
        "relu.SampledConvexProgram+FISTA",
        _relu_case("scp"),
        data=lambda p: p.X,
        skip={"grad_args": _NO_ARGS},
        grad_rtol=1e-4,
    ),
    Conformance(
        "bilevel.LVHBA(coupled y <= x)", _bilevel_box, skip={"grad_data": _NO_DATA}
    ),
    Conformance(
        "bilevel.BOREP", _bilevel_quadratic("borep"), skip={"grad_data": _NO_DATA}
    ),
    Conformance(
        "bilevel.AID",
        _bilevel_quadratic("aid"),
        skip={"grad_data": _NO_DATA},
        # AID is not polished: its BFGS lower solves stop at 1e-10, so differences
        # with step 1e-6 carry errors up to ~1e-4 (measured 1.9e-5); step 1e-4 has a
        # truncation error of ~1e-8 on this quadratic-in-y problem
        fd_eps=1e-4,
    ),
    Conformance(
        "bilevel.AID(NestedProblem, nlp lower level)",
        _bilevel_nested,
        skip={"grad_data": _NO_DATA},
        slow=True,
    ),
    Conformance(
        "prox.PnPProximalGradient(SoftThreshold)",
        _prox_case("pgd"),
        data=lambda p: p.measurement,
        skip={"grad_args": _NO_ARGS},
        grad_rtol=1e-4,
    ),
    Conformance(
        "prox.PnPADMM(TotalVariation)",
        _prox_case("admm"),
        data=lambda p: p.measurement,
        skip={"grad_args": _NO_ARGS},
        grad_rtol=1e-4,
    ),
    Conformance(
        "prox.PnPProximalGradient(LPN)",
        _prox_case("lpn"),
        data=lambda p: p.measurement,
        skip={"grad_args": _NO_ARGS},
        grad_rtol=1e-4,
    ),
    *(
        Conformance(
            name,
            _hc_case(kind),
            run=_hc_run,
            optimality=_hc_optimality,
            skip={"grad_data": _NO_DATA, "throw": _HC_THROW},
            # LM's answer moves by ~1e-12 from one nu to the next: differences with
            # step 1e-6 were off by 6e-4, with 1e-5 by 2.5e-8
            fd_eps=1e-5,
            **kw,
        )
        for name, kind, kw in (
            ("pde.HardConstraintLayer", "layer", {"grad_rtol": 1e-5}),
            # the mixture's weights are larger and its float32 solve less accurate
            # (measured: gradient 1.9e-5 from differences, float32 within 3e-3
            # relative of float64)
            ("pde.MoEHardConstraint", "moe", {"grad_rtol": 1e-4, "f32_atol": 1e-2}),
        )
    ),
]


def jaxpr_shapes(jaxpr):
    """The shapes of every value a jaxpr computes, inner jaxprs (loops, conds,
    scans) included."""
    for eqn in jaxpr.eqns:
        for v in eqn.outvars:
            yield tuple(getattr(v.aval, "shape", ()))
        for p in eqn.params.values():
            for j in p if isinstance(p, (list, tuple)) else [p]:
                inner = getattr(j, "jaxpr", None)
                if inner is not None and hasattr(inner, "eqns"):
                    yield from jaxpr_shapes(inner)
                elif hasattr(j, "eqns"):
                    yield from jaxpr_shapes(j)
