"""The per-instance least-squares solve for the weights of a hard-constrained layer."""

import equinox as eqx
import jax
import jax.numpy as jnp
import optimistix as optx
from jaxtyping import Array, Float

from .._misc import tree_all_finite
from .._solution import RESULTS
from ._domain import PeriodicBC, RobinBC
from ._hc_basis import contract
from ._pde import PDE


METHODS = ("levenberg_marquardt", "gauss_newton", "qr")


class _DampedNewtonDescent(optx.DampedNewtonDescent):
    """optimistix's damped Newton descent with the damping cast to the residual's
    dtype: its trust region keeps the step size in the default float dtype, so with
    `jax_enable_x64` a float32 solve mixed float64 damping rows into a float32
    system and lineax refused it (the class of optimistix issues 155 and 207)."""

    def step(self, step_size, state):
        dtype = jax.tree.leaves(state.f_info.residual)[0].dtype
        return super().step(jnp.asarray(step_size, dtype), state)


def levenberg_marquardt(rtol: float, atol: float, verbose=False):
    """`optimistix.LevenbergMarquardt` that also runs in float32 under x64."""
    solver = optx.LevenbergMarquardt(rtol=rtol, atol=atol, verbose=verbose)
    descent = _DampedNewtonDescent(linear_solver=solver.descent.linear_solver)
    return eqx.tree_at(lambda s: s.descent, solver, descent)


class ConstraintRows(eqx.Module):
    """The rows of one least-squares problem (one instance, one expert).

    Terms are per-basis derivative arrays of shape `(rows, N)`, keyed by derivative
    letters (`""`, `"t"`, `"xx"`, ...); weights scale each row (a zero weight
    switches a row off, as for rows outside an expert's block).
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


def letters(pde: PDE) -> tuple[str, ...]:
    """The derivative letters the PDE's residual reads (`""` for the unknown)."""
    n = len(pde.unknown) + 1
    return ("",) + tuple(d[n:] for d in pde.derivatives)


def named(pde: PDE, values: dict[str, Array]) -> dict[str, Array]:
    """Values keyed by letters -> keyed by the PDE's names (`u`, `u_x`, ...)."""
    u = pde.unknown
    return {(u if k == "" else f"{u}_{k}"): v for k, v in values.items()}


def pde_rows(pde: PDE, values, t, x, args, scale) -> Array:
    """`scale * R` at the points, from values keyed by letters."""
    d = named(pde, values)
    return scale * jax.vmap(lambda di, ti, xi: pde._residual(di, xi, ti, args))(d, t, x)


def boundary_rows(pde: PDE, left, right, t, args) -> list[tuple[Array, str]]:
    """Each boundary condition's residual at the times `t`, with its side
    (`"left"`, `"right"` or `"both"`), from the value (`""`) and slope (`"x"`) of
    the solution at both ends."""
    out = []
    for bc in pde.boundary:
        if isinstance(bc, PeriodicBC):
            out.append((left[""] - right[""], "both"))
            out.append((left["x"] - right["x"], "both"))
        elif isinstance(bc, RobinBC):
            v = left if bc.side == "left" else right
            target = jax.vmap(lambda tt: bc.target(tt, args))(t)
            r = bc.alpha * v[""] - jnp.asarray(target, v[""].dtype)
            if bc.beta != 0.0:
                r = r + bc.beta * v["x"]
            out.append((r, bc.side))
        else:
            raise TypeError(
                f"Hard-constraint layers support RobinBC (Dirichlet, Neumann) and "
                f"PeriodicBC boundary conditions, got {type(bc).__name__}."
            )
    return out


def constraint_residual(omega, args, pde: PDE, ridge, scale) -> Array:
    """`r(omega) = [PDE rows; IC rows; boundary rows; ridge * omega]` for
    `args = (rows, parameters)`."""
    rows, a = args
    pde_r = pde_rows(
        pde, contract(rows.pde_terms, omega), rows.pde_t, rows.pde_x, a, scale
    )
    ic = rows.ic_terms @ omega - rows.ic_target
    weights = {
        "left": rows.left_w,
        "right": rows.right_w,
        "both": jnp.maximum(rows.left_w, rows.right_w),
    }
    bc = boundary_rows(
        pde,
        contract(rows.left_terms, omega),
        contract(rows.right_terms, omega),
        rows.bc_t,
        a,
    )
    return jnp.concatenate(
        [rows.pde_w * pde_r, rows.ic_w * ic]
        + [weights[side] * r for r, side in bc]
        + [ridge * omega]
    )


def qr_least_squares(
    matrix: Float[Array, "m n"], rhs: Float[Array, " m"]
) -> Float[Array, " n"]:
    """The least-squares solution of `matrix @ x = rhs` (the least-norm one when
    `m < n`), by a reduced QR factorisation and a triangular solve.

    Differentiated by JAX's own rules for `qr` and `solve_triangular` (exact for a
    matrix of full rank), not by `lineax.linear_solve`'s: lineax's derivative of a
    least-squares solve always compiles its error check as a host callback, and a
    program with a host callback is never kept by JAX's persistent compilation cache,
    so every training program of a hard-constraint layer would compile afresh in each
    process. A rank-deficient matrix gives non-finite output, as lineax's QR does.
    """
    m, n = matrix.shape
    if m >= n:
        q, r = jnp.linalg.qr(matrix, mode="reduced")
        return jax.scipy.linalg.solve_triangular(r, q.T @ rhs, lower=False)
    q, r = jnp.linalg.qr(matrix.T, mode="reduced")
    return q @ jax.scipy.linalg.solve_triangular(r.T, rhs, lower=True)


def solve_weights(
    pde: PDE,
    rows: ConstraintRows,
    a: dict,
    *,
    method: str,
    ridge: float,
    scale: float,
    rtol: float,
    atol: float,
    max_steps: int,
    adjoint: optx.AbstractAdjoint,
    verbose: bool = False,
) -> tuple[Float[Array, " N"], RESULTS, dict[str, Array]]:
    """Solve `min_omega 1/2 ||r(omega)||^2` for one instance (parameters `a`).

    `method` is `"levenberg_marquardt"` or `"gauss_newton"` (optimistix, gradients by
    `adjoint`, by default the implicit function theorem on `J^T r = 0`), or `"qr"`
    (a QR solve of the linear least-squares problem, `qr_least_squares`; only valid
    when `r` is affine in `omega`). Gradients reach the basis network and the PDE's
    parameters `a` alike.

    **Returns:**

    `(omega, result, stats)` with `stats = {"residual_norm", "gradient_norm",
    "num_steps"}`: the 2-norm of `r` and the max-norm of `J^T r` at the solution.
    """
    n = rows.ic_terms.shape[-1]
    dtype = rows.ic_terms.dtype
    args = (rows, a)

    def fn(omega, args):
        return constraint_residual(omega, args, pde, ridge, scale)

    omega0 = jnp.zeros((n,), dtype)
    if method == "qr":
        matrix = jax.jacfwd(fn)(omega0, args)
        offset = fn(omega0, args)
        omega = qr_least_squares(matrix, -offset)
        result = RESULTS.where(
            tree_all_finite(omega), RESULTS.successful, RESULTS.singular
        )
        num_steps = jnp.array(1)
    else:
        if method == "levenberg_marquardt":
            solver = levenberg_marquardt(rtol, atol, verbose)
        elif method == "gauss_newton":
            solver = optx.GaussNewton(rtol=rtol, atol=atol, verbose=verbose)
        else:
            raise ValueError(f"`method` must be one of {METHODS}, got {method!r}.")
        sol = optx.least_squares(
            fn, solver, omega0, args, max_steps=max_steps, adjoint=adjoint, throw=False
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
