"""Inner solves: accelerated projected gradient, and an augmented Lagrangian around it.

They serve two purposes: the exact lower-level solve behind the reported true upper
objective `Phi(x) = F(x, y*(x))`, and the projection onto the coupled set
`{(x, y) in X x Y : g(x, y) <= 0, h(x, y) = 0}` when no closed form is given.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float

from .. import _proximal_gradient as proximal_gradient


def _sq(v):
    return jnp.sum(jnp.square(v))


def fista(
    phi: Callable[[Array], Array],
    project: Callable[[Array], Array],
    w0: Float[Array, " n"],
    *,
    max_steps: int,
    tol: float,
) -> tuple[Array, Array]:
    """Minimise a smooth convex `phi` over a set with FISTA (Beck and Teboulle 2009),
    by the library's one proximal-gradient routine (`sciopt._proximal_gradient`).

    The Lipschitz constant is found by backtracking on the gradient difference
    (`||grad(p) - grad(v)|| <= L ||p - v||`) and the momentum is restarted by the
    gradient test of O'Donoghue and Candes (2015); neither uses function values, so
    the iteration keeps converging below the round-off level of `phi`.

    **Returns:** the point and the norm of its last gradient mapping.
    """
    tol = max(tol, 1e3 * float(jnp.finfo(w0.dtype).eps))
    w, res, _ = proximal_gradient.fista(
        jax.grad(phi),
        lambda z, step: project(z),
        project(w0),
        max_steps=max_steps,
        tol=tol,
    )
    return w, res


def alm(
    objective: Callable[[Array], Array],
    inequalities: Callable[[Array], Array] | None,
    equalities: Callable[[Array], Array] | None,
    project: Callable[[Array], Array],
    w0: Float[Array, " n"],
    *,
    outer_steps: int = 40,
    inner_steps: int = 500,
    tol: float = 1e-10,
    feasibility_tol: float = 1e-8,
) -> tuple[Array, Array, Bool[Array, ""]]:
    """Minimise `objective(w)` over `project`'s set subject to `inequalities(w) <= 0`
    and `equalities(w) = 0` by the augmented Lagrangian method (Hestenes; Powell;
    Rockafellar), each subproblem solved by `fista`.

    **Returns:** the point, its constraint violation (max-norm), and whether the inner
    solves met their tolerance.
    """
    dtype = w0.dtype
    if inequalities is None and equalities is None:
        w, res = fista(objective, project, w0, max_steps=inner_steps, tol=tol)
        return w, jnp.zeros((), dtype), res <= tol
    ineq = inequalities if inequalities is not None else lambda w: jnp.zeros(0, dtype)
    eq = equalities if equalities is not None else lambda w: jnp.zeros(0, dtype)
    lam0 = jnp.zeros_like(ineq(w0))
    mu0 = jnp.zeros_like(eq(w0))

    def violation(w):
        gi = jnp.maximum(ineq(w), 0)
        he = jnp.abs(eq(w))
        return jnp.max(jnp.concatenate([gi, he, jnp.zeros(1, dtype)]))

    def cond(carry):
        _, _, _, _, viol, step, k, _ = carry
        done = (viol <= feasibility_tol) & (step <= jnp.sqrt(tol))
        return (k < outer_steps) & jnp.invert(done)

    def body(carry):
        w, lam, mu, rho, viol, _, k, _ = carry

        def lagrangian(u):
            gi = jnp.maximum(ineq(u) + lam / rho, 0)
            he = eq(u)
            return (
                objective(u)
                + 0.5 * rho * _sq(gi)
                + jnp.vdot(mu, he)
                + 0.5 * rho * _sq(he)
            )

        w_new, res = fista(lagrangian, project, w, max_steps=inner_steps, tol=tol)
        lam = jnp.maximum(lam + rho * ineq(w_new), 0)
        mu = mu + rho * eq(w_new)
        viol_new = violation(w_new)
        rho = jnp.where(viol_new > 0.25 * viol, jnp.minimum(5 * rho, 1e8), rho)
        step = jnp.sqrt(_sq(w_new - w)) / (1 + jnp.sqrt(_sq(w_new)))
        return w_new, lam, mu, rho, viol_new, step, k + 1, res <= 10 * tol

    carry = (
        w0,
        lam0,
        mu0,
        jnp.array(10.0, dtype),
        violation(w0),
        jnp.array(jnp.inf, dtype),
        jnp.array(0),
        jnp.array(True),
    )
    w, _, _, _, viol, _, _, ok = jax.lax.while_loop(cond, body, carry)
    return w, viol, ok
