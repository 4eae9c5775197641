"""Shared test utilities and problem lists.

Each family appends its own section (problem lists, solver lists) below the common
utilities.
"""

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


def hc_small_layer(pde="burgers", *, kind="layer", num_basis=6, grid=(8, 16), **kw):
    """A tiny PI-HC layer (or MoE with `kind="moe"`) for fast tests."""
    import jax.random as jr
    from sciopt import pde as sp

    problem = sp.hc_problem(pde)
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
