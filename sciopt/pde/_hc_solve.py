"""The per-instance least-squares solve for the weights of a hard-constrained layer."""

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
import optimistix as optx
from jaxtyping import Array, Float

from .._misc import tree_all_finite
from .._solution import RESULTS
from ._hc_basis import contract


METHODS = ("levenberg_marquardt", "gauss_newton", "qr")


class ConstraintRows(eqx.Module):
    """The rows of one least-squares problem (one instance, one expert).

    Terms are per-basis derivative arrays of shape `(rows, N)`; weights scale each
    row (a zero weight switches a row off, as for rows outside an expert's block).
    """

    pde_terms: dict[str, Array]
    pde_t: Array
    pde_x: Array
    pde_w: Array
    ic_terms: Array
    ic_target: Array
    ic_w: Array
    bc_t: Array
    left_terms: dict[str, Array]
    left_w: Array
    right_terms: dict[str, Array]
    right_w: Array


def constraint_residual(omega, args, problem, ridge):
    """`r(omega) = [pde rows; IC rows; left BC rows; right BC rows; ridge * omega]`."""
    rows, p = args
    v = contract(rows.pde_terms, omega)
    pde = jax.vmap(lambda vi, ti, xi: problem.residual(vi, ti, xi, p))(
        v, rows.pde_t, rows.pde_x
    )
    ic = rows.ic_terms @ omega - rows.ic_target
    vl = contract(rows.left_terms, omega)
    vr = contract(rows.right_terms, omega)
    left = jax.vmap(lambda vi, ti: problem.left(vi, ti, p))(vl, rows.bc_t)
    right = jax.vmap(lambda vi, ti: problem.right(vi, ti, p))(vr, rows.bc_t)
    return jnp.concatenate(
        [
            rows.pde_w * pde,
            rows.ic_w * ic,
            rows.left_w * left,
            rows.right_w * right,
            ridge * omega,
        ]
    )


def solve_weights(
    problem,
    rows: ConstraintRows,
    p: Array,
    *,
    method: str,
    ridge: float,
    rtol: float,
    atol: float,
    max_steps: int,
    adjoint: optx.AbstractAdjoint,
    verbose: bool = False,
) -> tuple[Float[Array, " N"], RESULTS, dict[str, Array]]:
    """Solve `min_omega 1/2 ||r(omega)||^2` for one instance.

    `method` is `"levenberg_marquardt"` or `"gauss_newton"` (optimistix, gradients by
    `adjoint`, by default the implicit function theorem on `J^T r = 0`), or `"qr"`
    (a lineax QR solve of the linear least-squares problem; only valid when `r` is
    affine in `omega`).

    **Returns:**

    `(omega, result, stats)` with `stats = {"residual_norm", "gradient_norm",
    "num_steps"}`: the 2-norm of `r` and the max-norm of `J^T r` at the solution.
    """
    n = rows.ic_terms.shape[-1]
    dtype = rows.ic_terms.dtype
    args = (rows, p)

    def fn(omega, args):
        return constraint_residual(omega, args, problem, ridge)

    omega0 = jnp.full((n,), problem.omega_init, dtype)
    if method == "qr":
        zero = jnp.zeros((n,), dtype)
        matrix = jax.jacfwd(fn)(zero, args)
        offset = fn(zero, args)
        sol = lx.linear_solve(
            lx.MatrixLinearOperator(matrix), -offset, lx.QR(), throw=False
        )
        omega = sol.value
        result = RESULTS.promote(sol.result)
        num_steps = jnp.array(1)
    else:
        if method == "levenberg_marquardt":
            solver = optx.LevenbergMarquardt(rtol=rtol, atol=atol, verbose=verbose)
        elif method == "gauss_newton":
            solver = optx.GaussNewton(rtol=rtol, atol=atol, verbose=verbose)
        else:
            raise ValueError(f"`method` must be one of {METHODS}, got {method!r}.")
        sol = optx.least_squares(
            fn,
            solver,
            omega0,
            args,
            max_steps=max_steps,
            adjoint=adjoint,
            throw=False,
        )
        omega = sol.value
        result = RESULTS.promote(sol.result)
        exhausted = (result == RESULTS.max_steps_reached) | (
            result == RESULTS.nonlinear_max_steps_reached
        )
        result = RESULTS.where(exhausted, RESULTS.steps_exhausted, result)
        num_steps = sol.stats["num_steps"]
    finite = tree_all_finite(rows)
    result = RESULTS.where(finite, result, RESULTS.nonfinite_model)
    w_star, args_star = jax.lax.stop_gradient((omega, args))
    r, vjp = jax.vjp(lambda w: fn(w, args_star), w_star)
    (grad,) = vjp(r)
    stats = {
        "residual_norm": jnp.linalg.norm(r),
        "gradient_norm": jnp.max(jnp.abs(grad)),
        "num_steps": num_steps,
    }
    return omega, result, stats
