r"""The optimality condition of a bilevel solution, for implicit differentiation.

A solution $(x^*, y^*)$ of

$$\min_{x \in X} \Phi(x) = F(x, y^*(x)), \qquad y^*(x) = \arg\min_{y}
\{ f(x, y) : g(x, y) \le 0,\ h(x, y) = 0,\ y \in Y \}$$

is a root of $R(x, y) = (r_x, r_y)$ with

- the lower level's KKT conditions, reduced to the shape of $y$: with $c_A$ the
  active constraints (the active rows of $g$ and of the set $Y$ written as
  constraints, and all of $h$) and $J = \nabla_y c_A$,

  $$r_y = P_N \nabla_y f + J^\top (J J^\top)^{-1} c_A, \qquad
  P_N = I - J^\top (J J^\top)^{-1} J .$$

  The two terms lie in orthogonal subspaces (the null space of $J$ and the range of
  $J^\top$), so $r_y = 0$ exactly when $\nabla_y f + J^\top \lambda = 0$ with
  $\lambda = -(J J^\top)^{-1} J \nabla_y f$ and $c_A = 0$: the KKT system with the
  active set fixed. Its Jacobian in $y$ at the root is
  $P_N \nabla^2_{yy} L + J^\top (J J^\top)^{-1} J$ ($L$ the Lagrangian), nonsingular
  under LICQ and the second-order sufficient condition (Fiacco 1976; Robinson 1980);
- stationarity of the upper level, as a projected-gradient fixed point,

  $$r_x = x - P_X(x - \nabla \Phi(x)), \qquad \nabla \Phi = \nabla_x F
  - (\partial_x r_y)^\top (\partial_y r_y)^{-\top} \nabla_y F,$$

  the hypergradient of the implicit function theorem applied to $r_y$ (for an
  unconstrained lower level the familiar $\nabla_x F - \nabla^2_{xy} f\,
  [\nabla^2_{yy} f]^{-1} \nabla_y F$; Ghadimi and Wang 2018; with active
  constraints the sensitivity of a KKT point, Fiacco 1976).

The active set is read off the point (constraints within a tolerance of zero) and
held fixed (no derivative flows through its choice). The condition is smooth, and
its root differentiable, only where the active set is locally constant. A gradient
through a point where it is not would be silently wrong, so `optimality` raises
when (a) an active inequality has a multiplier at (or below) zero (weakly active:
the solution map has a kink), (b) the active constraint gradients are linearly
dependent (LICQ fails), (c) the Jacobian of $R$ is singular (the lower-level
solution is not unique, or the upper-level minimiser is degenerate), or (d) for a
`Box` upper set, a coordinate at a bound has a zero hypergradient.

All matrices are dense: this is meant for problems with up to a few hundred
variables.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array

from .._solution import RESULTS
from ._problem import BilevelProblem
from ._sets import Ball, Box, Reals, Simplex


def set_constraints(the_set, v) -> tuple[Array, Array]:
    """The set `v in S` as constraint vectors `(ineq <= 0, eq = 0)`."""
    flat = v.ravel()
    empty = jnp.zeros(0, v.dtype)
    if isinstance(the_set, Reals):
        return empty, empty
    if isinstance(the_set, Box):
        lo = jnp.broadcast_to(jnp.asarray(the_set.lower, v.dtype), v.shape).ravel()
        hi = jnp.broadcast_to(jnp.asarray(the_set.upper, v.dtype), v.shape).ravel()
        return jnp.concatenate([lo - flat, flat - hi]), empty
    if isinstance(the_set, Ball):
        c = jnp.broadcast_to(jnp.asarray(the_set.center, v.dtype), v.shape).ravel()
        r = jnp.asarray(the_set.radius, v.dtype)
        return jnp.atleast_1d(0.5 * (jnp.sum(jnp.square(flat - c)) - r**2)), empty
    if isinstance(the_set, Simplex):
        total = jnp.asarray(the_set.total, v.dtype)
        return -flat, jnp.atleast_1d(jnp.sum(flat) - total)
    raise NotImplementedError(
        f"Implicit differentiation does not know the set {type(the_set).__name__} "
        "as constraints; use Reals, Box, Ball or Simplex, or "
        "`adjoint=optimistix.RecursiveCheckpointAdjoint()`."
    )


def _constraints(problem: BilevelProblem, x, y, args):
    """All lower-level constraints at `(x, y)`: values and which are equalities."""
    g_set, h_set = set_constraints(problem.lower_set, y)
    ineq = jnp.concatenate([problem.g(x, y, args), g_set])
    eq = jnp.concatenate([problem.h(x, y, args), h_set])
    values = jnp.concatenate([ineq, eq])
    is_eq = jnp.concatenate([jnp.zeros(ineq.shape, bool), jnp.ones(eq.shape, bool)])
    return values, is_eq


def _tolerances(dtype):
    eps = float(jnp.finfo(dtype).eps)
    return 10 * eps**0.5, eps**0.5  # (activity of a constraint, multiplier sign)


def active_set(problem: BilevelProblem, x, y, args) -> Array:
    """Which lower-level constraints are active at `(x, y)` (equalities always)."""
    values, is_eq = _constraints(problem, x, y, args)
    values = jax.lax.stop_gradient(values)
    act_tol, _ = _tolerances(y.dtype)
    scale = 1 + jnp.max(jnp.abs(jnp.where(jnp.isfinite(values), values, 0)), initial=0)
    return is_eq | (values >= -act_tol * scale)


def lower_residual(problem: BilevelProblem, x, y, args, mask):
    """`r_y` for a fixed active set `mask`, and the multipliers `lambda`."""
    gf = jax.grad(problem.f, argnums=1)(x, y, args).ravel()
    if mask.size == 0:
        return gf.reshape(y.shape), jnp.zeros(0, y.dtype), jnp.ones((0, 0), y.dtype)

    def cons(v):
        return _constraints(problem, x, v.reshape(y.shape), args)[0]

    values = cons(y.ravel())
    jac = jax.jacrev(cons)(y.ravel())
    jac = jnp.where(mask[:, None], jac, 0)
    m = jac @ jac.T + jnp.diag(jnp.where(mask, 0, 1).astype(y.dtype))
    lam = -jnp.linalg.solve(m, jac @ gf)
    c = jnp.where(mask, values, 0)
    r = gf + jac.T @ lam + jac.T @ jnp.linalg.solve(m, c)
    return r.reshape(y.shape), lam, m


def hypergradient(problem: BilevelProblem, x, y, args, mask) -> Array:
    """`grad Phi(x)` at a lower-level KKT point `y` with active set `mask`."""

    def r(x, y):
        return lower_residual(problem, x, y, args, mask)[0].ravel()

    k_yy = jax.jacfwd(r, argnums=1)(x, y).reshape(y.size, y.size)
    gfx, gfy = jax.grad(problem.F, argnums=(0, 1))(x, y, args)
    w = jnp.linalg.solve(k_yy.T, gfy.ravel())
    _, vjp = jax.vjp(lambda x: r(x, y), x)
    return gfx - vjp(w)[0]


def residual(problem: BilevelProblem, x, y, args, mask):
    """`R(x, y) = (r_x, r_y)` with the active set `mask` held fixed."""
    r_y, _, _ = lower_residual(problem, x, y, args, mask)
    grad = hypergradient(problem, x, y, args, mask)
    r_x = x - problem.upper_set.project(x - grad)
    return r_x, r_y


def _flat(tree):
    return jnp.concatenate([jnp.ravel(a) for a in jax.tree.leaves(tree)])


def _jacobian(problem, x, y, args, mask):
    n = x.size

    def fn(w):
        xx, yy = w[:n].reshape(x.shape), w[n:].reshape(y.shape)
        return _flat(residual(problem, xx, yy, args, mask))

    w = jnp.concatenate([x.ravel(), y.ravel()])
    return fn(w), jax.jacfwd(fn)(w)


def degeneracy(problem: BilevelProblem, x, y, args, mask, rnorm) -> dict[str, Array]:
    """The flags of a point where the solution map is not differentiable.

    `rnorm` is the size of the optimality residual at `(x, y)`: at an inexact point
    (an unpolished iterate) a constraint counts as weakly active when both its value
    and its multiplier are within that margin of zero, since the exact solution
    nearby may have it either active or not.
    """
    x, y = jax.lax.stop_gradient((x, y))
    dtype = y.dtype
    eps = float(jnp.finfo(dtype).eps)
    act_tol, lam_tol = _tolerances(dtype)
    values, is_eq = _constraints(problem, x, y, args)
    finite = jnp.where(jnp.isfinite(values), values, 0)
    scale = 1 + jnp.max(jnp.abs(finite), initial=0)
    near = is_eq | (values >= -(act_tol * scale + 10 * rnorm))
    _, lam, _ = lower_residual(problem, x, y, args, near)
    _, _, m = lower_residual(problem, x, y, args, mask)
    gf = jax.grad(problem.f, argnums=1)(x, y, args)
    lam_scale = 1 + jnp.max(jnp.abs(gf))
    margin = (lam_tol + 10 * rnorm) * lam_scale
    weak = jnp.any(near & jnp.invert(is_eq) & (lam <= margin))
    if m.size:
        # Inactive rows of `m` are identity rows: its smallest eigenvalue is small
        # exactly when the active rows of the constraint Jacobian are dependent.
        eig = jnp.linalg.eigvalsh(m)
        licq = eig[0] <= 1e3 * eps * jnp.maximum(1, eig[-1])
    else:
        licq = jnp.array(False)
    _, jac = _jacobian(problem, x, y, args, mask)
    sv = jnp.linalg.svd(jac, compute_uv=False)
    singular = jnp.invert(sv[-1] > 1e2 * jac.shape[0] * eps * sv[0])
    upper = jnp.array(False)
    if isinstance(problem.upper_set, Box):
        grad = hypergradient(problem, x, y, args, mask)
        lo = jnp.broadcast_to(jnp.asarray(problem.upper_set.lower, dtype), x.shape)
        hi = jnp.broadcast_to(jnp.asarray(problem.upper_set.upper, dtype), x.shape)
        scale = 1 + jnp.abs(x)
        at_bound = (jnp.abs(x - lo) <= lam_tol * scale) | (
            jnp.abs(x - hi) <= lam_tol * scale
        )
        flat_grad = jnp.abs(grad) <= lam_tol * (1 + jnp.max(jnp.abs(grad)))
        upper = jnp.any(at_bound & flat_grad)
    return {"weakly_active": weak, "licq": licq, "singular": singular, "upper": upper}


_MESSAGES = {
    "weakly_active": (
        "bilevel implicit gradient: a lower-level inequality is weakly active at the "
        "solution (zero multiplier), so the solution map has a kink there and its "
        "derivative is not defined. Perturb the problem, or differentiate the "
        "iterates with adjoint=optimistix.RecursiveCheckpointAdjoint()."
    ),
    "licq": (
        "bilevel implicit gradient: the active lower-level constraint gradients are "
        "linearly dependent (LICQ fails), so the multipliers and the derivative are "
        "not unique. Remove redundant constraints."
    ),
    "singular": (
        "bilevel implicit gradient: the Jacobian of the optimality condition is "
        "singular: the lower-level solution is not unique (make f strongly convex "
        "in y on the active constraints' null space, e.g. add a small ridge term) or "
        "the upper-level minimiser is degenerate."
    ),
    "upper": (
        "bilevel implicit gradient: x sits on a bound of the upper set with a zero "
        "hypergradient there (weakly active bound): the derivative is not defined."
    ),
}


def optimality(problem: BilevelProblem, y, args):
    """`R(x, y)`, raising (at run time) where its root is not differentiable."""
    x, yy = y
    mask = active_set(problem, x, yy, args)
    r_x, r_y = residual(problem, x, yy, args, mask)
    rnorm = jax.lax.stop_gradient(jnp.max(jnp.abs(_flat((r_x, r_y)))))
    flags = degeneracy(problem, x, yy, args, mask, rnorm)
    # The check sits on a factor of the residual so that it survives linearisation
    # (the implicit adjoint uses only the tangents of this function).
    one = jnp.ones((), yy.dtype)
    for name, flag in flags.items():
        one = eqx.error_if(one, flag, _MESSAGES[name])
    return r_x * one, r_y * one


def polish(problem: BilevelProblem, x, y, args, steps: int = 12):
    """Refine `(x, y)` by Newton steps on `R = 0` with the active set of `(x, y)`.

    Accepted only when the residual falls to round-off level, the active set is
    unchanged (the inactive constraints stay strictly satisfied) and the active
    inequalities' multipliers are non-negative (a negative one means the point is the
    stationary point of another active set, not a KKT point of the lower level);
    otherwise `(x, y)` is returned unchanged. **Returns:** the point and whether it was
    polished.
    """
    x, y = jax.lax.stop_gradient((x, y))
    n = x.size
    dtype = y.dtype
    eps = float(jnp.finfo(dtype).eps)
    mask = active_set(problem, x, y, args)

    def body(_, w):
        xx, yy = w[:n].reshape(x.shape), w[n:].reshape(y.shape)
        r, jac = _jacobian(problem, xx, yy, args, mask)
        delta = jnp.linalg.lstsq(jac, r)[0]
        new = w - delta
        return jnp.where(jnp.all(jnp.isfinite(new)), new, w)

    w0 = jnp.concatenate([x.ravel(), y.ravel()])
    w = jax.lax.fori_loop(0, steps, body, w0)
    new_x, new_y = w[:n].reshape(x.shape), w[n:].reshape(y.shape)
    r = _flat(residual(problem, new_x, new_y, args, mask))
    scale = 1 + jnp.max(jnp.abs(w))
    small = jnp.max(jnp.abs(r)) <= 1e3 * eps * scale
    same = jnp.all(active_set(problem, new_x, new_y, args) == mask)
    values, is_eq = _constraints(problem, new_x, new_y, args)
    feasible = jnp.all(jnp.where(mask, True, values < 0))
    _, lam, _ = lower_residual(problem, new_x, new_y, args, mask)
    _, lam_tol = _tolerances(dtype)
    gf = jax.grad(problem.f, argnums=1)(new_x, new_y, args)
    lam_floor = -lam_tol * (1 + jnp.max(jnp.abs(gf), initial=0))
    dual_feasible = jnp.all(is_eq | jnp.invert(mask) | (lam >= lam_floor))
    ok = small & same & feasible & dual_feasible & jnp.all(jnp.isfinite(w))
    return (jnp.where(ok, new_x, x), jnp.where(ok, new_y, y)), ok


POLISH_SIZE = 100


def maybe_polish(setting, problem, x, y, args, result):
    """`polish` when `setting` says so (`None`: for `x.size + y.size <= POLISH_SIZE`)
    and the solve succeeded. **Returns:** the point and whether it was polished."""
    wanted = setting if setting is not None else x.size + y.size <= POLISH_SIZE
    if not wanted:
        return (x, y), jnp.array(False)

    def run(_):
        y_star, _ = problem.solve_lower(x, y, args)
        return polish(problem, x, y_star, args)

    def skip(_):
        return (x, y), jnp.array(False)

    return jax.lax.cond(result == RESULTS.successful, run, skip, None)
