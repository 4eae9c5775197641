"""Implicit differentiation of a solve without a host callback in the program."""

import functools as ft

import equinox as eqx
import equinox.internal as eqxi
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import lineax as lx
import optimistix as optx

from ._linear_solve import linear_solve


class ImplicitAdjoint(optx.AbstractAdjoint):
    """Differentiate a solve by the implicit function theorem.

    As `optimistix.ImplicitAdjoint`, whose reasoning it follows: the solution
    `y*(theta)` of `optimality(y, theta) = 0` has the tangent
    `-(d optimality / dy)^-1 (d optimality / d theta) t`, solved by `linear_solver`.
    The difference is the tangent solve's failure check. optimistix always compiles
    it, as a host callback inside the program, and JAX's persistent compilation
    cache does not keep programs with host callbacks: every `jax.grad` through a
    solve would be compiled anew in each process. Here the check is compiled only
    for solvers that can report a failure (the iterative ones: CG, GMRES, BiCGStab,
    sciopt's sketch and Nystrom solvers, ...). The direct solvers (LU, QR, SVD,
    Cholesky, diagonal and triangular ones, and `AutoLinearSolver`, which picks one
    of them) never report one (a singular Jacobian shows as non-finite tangents), so
    their check could never fire and is left out, and the gradient program is
    cached like the solve.

    **Arguments:**

    - `linear_solver`: the lineax solver of the tangent system (default
        `lineax.AutoLinearSolver(well_posed=None)`, as optimistix).
    """

    linear_solver: lx.AbstractLinearSolver = lx.AutoLinearSolver(well_posed=None)

    def apply(self, primal_fn, rewrite_fn, inputs, tags):
        inputs = inputs + (ft.partial(eqxi.while_loop, kind="lax"),)
        root, residual = _implicit(
            primal_fn, rewrite_fn, inputs, tags, self.linear_solver
        )
        return root, jtu.tree_map(eqxi.nondifferentiable_backward, residual)


@eqx.filter_custom_jvp
def _implicit(fn_primal, fn_rewrite, inputs, tags, linear_solver):
    del fn_rewrite, tags, linear_solver
    return jtu.tree_map(jnp.asarray, fn_primal(inputs))


def _rewrite_for_jacobian(root, args):
    fn_rewrite, residual, inputs = args
    return fn_rewrite(root, residual, inputs)


@_implicit.def_jvp
def _implicit_jvp(primals, tangents):
    fn_primal, fn_rewrite, inputs, tags, linear_solver = primals
    _, _, t_inputs, _, _ = tangents
    root, residual = _implicit(fn_primal, fn_rewrite, inputs, tags, linear_solver)
    t_root = implicit_tangent(
        _rewrite_for_jacobian,
        root,
        (fn_rewrite, residual, inputs),
        (None, jtu.tree_map(lambda _: None, residual), t_inputs),
        linear_solver,
        tags,
    )
    t_residual = jax.custom_derivatives.zero_from_primal(residual, symbolic_zeros=True)
    return (root, residual), (t_root, t_residual)


def implicit_tangent(optimality, root, args, t_args, linear_solver, tags=frozenset()):
    """The tangent of the root `y*` of `optimality(y, args) = 0` along `t_args` (a
    tangent tree of `args`, `None` where `args` is not differentiated), by the
    implicit function theorem: `-(d optimality / dy)^-1 (d optimality / d args) t`."""
    is_none = lambda t: t is None  # noqa: E731
    no_tangent = jtu.tree_map(is_none, t_args, is_leaf=is_none)
    nondiff, diff = eqx.partition(args, no_tangent, is_leaf=is_none)
    _, jvp_diff = jax.jvp(
        lambda d: optimality(root, eqx.combine(d, nondiff)), (diff,), (t_args,)
    )
    operator = lx.JacobianLinearOperator(optimality, root, args, tags=tags)
    # The failure check is compiled only where it can fire (see `linear_solve`).
    solution = linear_solve(operator, jvp_diff, linear_solver, throw=True).value
    return jtu.tree_map(jnp.negative, solution)
