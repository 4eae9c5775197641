"""A lineax solve whose derivatives compile no dead failure check."""

from typing import Any

import jax
import jax.flatten_util
import jax.numpy as jnp
import lineax as lx
from jaxtyping import PyTree


# lineax solvers whose `compute` always returns `RESULTS.successful`.
DIRECT_SOLVERS = (
    lx.AutoLinearSolver,
    lx.LU,
    lx.QR,
    lx.SVD,
    lx.Cholesky,
    lx.Diagonal,
    lx.Triangular,
    lx.Tridiagonal,
)

_NO_STATE = object()


def _ravel(tree: PyTree) -> jax.Array:
    return jax.flatten_util.ravel_pytree(tree)[0]


def linear_solve(
    operator: lx.AbstractLinearOperator,
    vector: PyTree,
    solver: lx.AbstractLinearSolver,
    *,
    state: Any = _NO_STATE,
    options: dict[str, Any] | None = None,
    throw: bool = False,
) -> lx.Solution:
    """`lineax.linear_solve`, with derivatives that compile no failure check where
    none can fire.

    lineax differentiates a solve by further solves, and its transpose rule (the
    reverse pass of `jax.grad`) always compiles their failure check, a host callback;
    JAX's persistent compilation cache does not keep programs with host callbacks,
    so every gradient through such a solve would compile anew in each process. The
    direct solvers (`DIRECT_SOLVERS`) never report a failure (a singular operator
    shows as non-finite values), so for them the check is dead code: the solve runs
    inside `jax.lax.custom_linear_solve`, whose derivatives call the same solver
    (on the transposed operator where it is not symmetric) without a check. Any
    other solver goes to `lineax.linear_solve` unchanged.

    The returned `state` is `None` on the direct path.
    """
    kwargs: dict[str, Any] = {"options": options, "throw": throw}
    if state is not _NO_STATE:
        kwargs["state"] = state
    if not isinstance(solver, DIRECT_SOLVERS):
        return lx.linear_solve(operator, vector, solver, **kwargs)
    kwargs["throw"] = False  # a direct solver reports no failure to throw
    b, unravel_out = jax.flatten_util.ravel_pytree(vector)
    zeros_in = jax.tree.map(
        lambda s: jnp.zeros(s.shape, s.dtype), operator.in_structure()
    )
    _, unravel_in = jax.flatten_util.ravel_pytree(zeros_in)
    symmetric = lx.is_symmetric(operator)

    # Flat vectors: the transpose of `custom_linear_solve` needs every leaf of the
    # right-hand side to carry a tangent, and a pytree's leaf may be a constant.
    def matvec(x):
        return _ravel(operator.mv(unravel_in(x)))

    def solve(_, rhs):
        sol = lx.linear_solve(operator, unravel_out(rhs), solver, **kwargs)
        return _ravel(sol.value), (sol.result, sol.stats)

    def transpose_solve(_, rhs):
        sol = lx.linear_solve(
            operator.T, unravel_in(rhs), solver, options=options, throw=False
        )
        return _ravel(sol.value), (sol.result, sol.stats)

    x, (result, stats) = jax.lax.custom_linear_solve(
        matvec,
        b,
        solve,
        None if symmetric else transpose_solve,
        symmetric=symmetric,
        has_aux=True,
    )
    return lx.Solution(value=unravel_in(x), result=result, stats=stats, state=None)
