"""Pieces shared by the bilevel solvers: start-up checks and final statistics."""

import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Bool

from .._misc import safe_norm as safe_norm, tree_all_finite
from ._problem import BilevelProblem


def converged(quantity, tol) -> Array:
    """`quantity <= tol` with both finite: an overflowed norm never passes."""
    return jnp.isfinite(quantity) & jnp.isfinite(tol) & (quantity <= tol)


def tolerance(value: float | None, dtype, float64: float, float32: float) -> float:
    """A stopping tolerance: `value`, or the default for `dtype` when it is `None`
    (float32 iterates cannot reach float64 tolerances)."""
    if value is not None:
        return value
    return float64 if jnp.finfo(dtype).bits >= 64 else float32


def check_tolerances(solver, *names: str) -> None:
    """`ValueError` unless each named tolerance is `None` or non-negative."""
    for name in names:
        value = getattr(solver, name)
        if value is not None and not value >= 0:
            raise ValueError(f"`{name}` must be non-negative or None, got {value}.")


def get_key(options) -> Array:
    """The solver's random key: `options["key"]`, or a fixed default."""
    key = options.get("key")
    if key is None:
        return jr.key(0)
    if not jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jr.wrap_key_data(key)
    return key


def start_flags(
    problem: BilevelProblem, x, y, args, key
) -> tuple[Bool[Array, ""], Bool[Array, ""]]:
    """Whether the oracles are finite at the start, and whether the lower level is
    feasible there (`g(x0, .) <= 0` has a solution in `Y`)."""
    values = (
        problem.F(x, y, args, key),
        problem.f(x, y, args, key),
        problem.g(x, y, args),
        problem.h(x, y, args),
    )
    finite = tree_all_finite(values)
    if problem.constrained:
        _, viol = problem.solve_lower(x, y, args)
        scale = 1 + jnp.max(jnp.abs(jnp.concatenate([values[2], values[3]])))
        feasible = viol <= 1e-6 * scale
    else:
        feasible = jnp.array(True)
    return finite, feasible


def final_stats(problem: BilevelProblem, x, y, args) -> dict[str, Array]:
    """The true upper objective `Phi(x) = F(x, y*(x))` (exact lower-level solve), the
    upper objective at the iterate, the lower-level optimality gap and the
    constraint violation of the iterate."""
    x = jax.lax.stop_gradient(x)
    y = jax.lax.stop_gradient(y)
    y_star, viol_star = problem.solve_lower(x, y, args)
    g = problem.g(x, y, args)
    h = problem.h(x, y, args)
    viol = jnp.max(
        jnp.concatenate([jnp.maximum(g, 0), jnp.abs(h), jnp.zeros(1, x.dtype)])
    )
    return {
        "upper_objective": problem.F(x, y_star, args),
        "upper_objective_at_iterate": problem.F(x, y, args),
        "lower_gap": problem.f(x, y, args) - problem.f(x, y_star, args),
        "lower_violation": viol,
        "lower_solution": y_star,
        "lower_solution_violation": viol_star,
    }
