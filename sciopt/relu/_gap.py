"""A Lagrangian dual bound for the convex ReLU programs, hence a duality gap.

For `ConvexReLUProblem` (squared, cross-entropy or hinge loss, with or without the
cone constraints), weak duality gives, for every `lam` in the domain of the loss's
conjugate and every `mu_j >= 0` with

    ||X^T (s_j D_j lam - (2 D_j - I) mu_j)||_2 <= beta   for every group j,

the lower bound `-loss*(lam) <= f*` on the optimum (for gated ReLU, `mu = 0`). ADMM's
iterate supplies the candidate: `lam` the gradient of the loss at the predictions of
`v` (for the hinge loss, the loss split's multiplier clipped into the conjugate's
domain), `mu = (-dual_s)_+` the cone multipliers; the pair is then scaled by the
largest `t` in `[0, 1]` (squared loss: the best `t`) that makes it dual feasible.
"""

import jax
import jax.numpy as jnp
from jax.scipy.special import xlogy
from jaxtyping import Array, Float

from ._linear import loss_map_t
from ._losses import loss_value
from ._problem import ConvexReLUProblem


def _conjugate_bound(loss: str, lam, y, t):
    """-loss*(t lam) for the summed losses (lam already in the conjugate's domain)."""
    if loss == "squared":  # loss = 1/2 ||z - y||^2, loss*(l) = 1/2 ||l||^2 + l^T y
        return -0.5 * t**2 * jnp.sum(lam**2) - t * jnp.dot(lam, y)
    if loss == "hinge":  # loss* (l) = sum l_k y_k on -1 <= l_k y_k <= 0
        return -t * jnp.dot(lam, y)
    # bce: a_k = -(2 y_k - 1) l_k in [0, 1], loss*(l) = sum a log a + (1 - a) log(1 - a)
    a = t * (-(2 * y - 1) * lam)
    return -jnp.sum(xlogy(a, a) + xlogy(1 - a, 1 - a))


def _loss_multiplier(problem: ConvexReLUProblem, yhat, dual_p):
    y = problem.y
    if problem.loss == "squared":
        return yhat - y
    if problem.loss == "bce":
        sign = 2 * y - 1
        return -sign * jax.nn.sigmoid(-sign * yhat)
    return y * jnp.clip(y * dual_p, -1, 0)  # hinge: y in {-1, +1}


def dual_bound(
    problem: ConvexReLUProblem,
    v: Float[Array, "2P d"],
    dual_s: Float[Array, "2P n"],
    dual_p: Float[Array, " n"],
) -> tuple[Array, Array, Array]:
    """The objective at `v`, a lower bound on the optimum built from the iterate, and
    the relative cone violation of `v` (max violation / max |X v_j|).

    The objective minus the bound bounds `objective(v) - f*` from above whether or not
    `v` is feasible; the cone violation says how far `v` is from feasibility.
    """
    XvT = v @ problem.X.T  # (2P, n), shared by the predictions and the cones
    yhat = jnp.sum(problem.signed_patterns * XvT, axis=0)
    objective = loss_value(problem.loss, yhat, problem.y) + problem.regulariser(v)
    lam = _loss_multiplier(problem, yhat, dual_p)
    if problem.gated:
        violation = jnp.zeros((), v.dtype)
        groups = loss_map_t(problem, lam)  # the rows X^T (s_j D_j lam)
    else:
        scale = jnp.maximum(jnp.max(jnp.abs(XvT)), jnp.finfo(v.dtype).tiny)
        violation = jnp.max(jax.nn.relu(-problem.cone_signs * XvT)) / scale
        mu = jax.nn.relu(-dual_s)
        weighted = problem.signed_patterns * lam[None, :] - problem.cone_signs * mu
        groups = weighted @ problem.X
    largest = jnp.max(jnp.linalg.norm(groups, axis=1))
    # the largest dual-feasible scaling (inf when every group's norm is 0)
    t_max = problem.beta / jnp.where(largest > 0, largest, 0)
    if problem.loss == "squared":  # maximise the concave quadratic in t
        norm2 = jnp.sum(lam**2)
        best = -jnp.dot(lam, problem.y) / jnp.where(norm2 > 0, norm2, 1)
        t = jnp.clip(best, 0, t_max)
    else:
        t = jnp.minimum(1, t_max)
    bound = _conjugate_bound(problem.loss, lam, problem.y, t)
    return objective, bound, violation
