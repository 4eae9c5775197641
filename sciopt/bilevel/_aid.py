"""AID: approximate implicit differentiation with an exact lower-level solve (optimistix
`minimise`, or any sciopt solver for a `NestedProblem`) and fixed-step projected
gradient on x."""

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import optimistix as optx
from jaxtyping import Array, Bool, Float, Int

from .._adjoint import ImplicitAdjoint
from .._misc import tree_all_finite, verbose_printer
from .._solution import RESULTS
from .._solve import solve
from .._solver import AbstractSolver
from ._common import (
    check_tolerances,
    converged,
    final_stats,
    get_key,
    safe_norm,
    start_flags,
    tolerance,
)
from ._implicit import optimality
from ._nested import NestedProblem
from ._problem import BilevelProblem
from ._sets import Reals


class _AIDState(eqx.Module):
    step: Int[Array, ""]
    residual: Float[Array, ""]
    inner_ok: Bool[Array, ""]
    finite_start: Bool[Array, ""]


def _check_unconstrained(problem, name):
    if isinstance(problem, NestedProblem):  # (AID checks for it before)
        raise TypeError(
            f"`{name}` needs the lower objective as a function; a `NestedProblem` "
            "(a sciopt problem as the lower level) is solved by "
            "`sciopt.bilevel.AID(lower_solver=<its sciopt solver>)`."
        )
    if not isinstance(problem, BilevelProblem):
        raise TypeError(f"`{name}` solves `sciopt.bilevel.BilevelProblem`s.")
    if problem.constrained or not isinstance(problem.lower_set, Reals):
        raise ValueError(
            f"`{name}` needs an unconstrained, strongly convex lower level (no "
            "`lower_constraints`, `lower_equalities` or `lower_set`); use "
            "`sciopt.bilevel.LVHBA()` for constrained lower levels."
        )


class AID(AbstractSolver):
    r"""Implicit-differentiation baseline for unconstrained, strongly convex lower
    levels: each step solves the lower level with an optimistix minimiser
    (warm-started), differentiates $\Phi(x) = F(x, y^*(x))$ through it with
    `sciopt.ImplicitAdjoint` (the implicit function theorem,
    $\nabla\Phi = \nabla_x F - \nabla^2_{xy} f\, [\nabla^2_{yy} f]^{-1} \nabla_y F$),
    and takes a fixed projected gradient step on $x$.

    The lower level may also be any sciopt problem solved by a sciopt solver: for a
    `sciopt.bilevel.NestedProblem`, `lower_solver` is that solver (e.g.
    `sciopt.relu.InteriorPoint()`), each step calls `sciopt.solve` on the lower
    problem at `x` (warm-started, `throw=False`) and differentiates through it by the
    implicit function theorem on the lower solver's own optimality condition.

    Stops (`RESULTS.successful`) when the projected-gradient residual
    $\|x - P_X(x - \nabla\Phi(x))\| \le$ `atol + rtol * ||x||`; otherwise runs to
    `max_steps` (default 1000, `sciopt.solve(..., max_steps=None)`) and returns
    `RESULTS.steps_exhausted`. A failed lower-level solve gives
    `RESULTS.inner_solve_failed`; a too-long step that makes the oracles non-finite,
    `RESULTS.nonfinite`.

    **Arguments:**

    - `learning_rate`: the fixed step on `x`.
    - `lower_solver`: for a `BilevelProblem`, the optimistix minimiser of the lower
        level (default BFGS with tolerances `1e-10` in float64, `1e-5` in float32);
        for a `NestedProblem`, the sciopt solver of its lower problem (required).
    - `lower_max_steps`: its step limit (default `None`: 1000 for an optimistix
        minimiser, the solver's `default_max_steps()` for a sciopt solver).
    - `rtol`, `atol`: the stopping tolerances (default `None`: `1e-8` in float64,
        `1e-4` in float32).
    - `verbose`: print progress.

    **Stats:** as `LVHBA` (`upper_objective` is the true `Phi(x)`), plus `residual`;
    for a `NestedProblem`: `upper_objective`, `lower_solution`, `lower_result` (the
    last lower solve's `RESULTS` code: an inner failure ends the solve with
    `RESULTS.inner_solve_failed` and is reported, not raised) and `residual`.

    ??? cite "References"

        ```bibtex
        @article{pedregosa2016hyperparameter,
            title={Hyperparameter optimization with approximate gradient},
            author={Pedregosa, Fabian},
            journal={International Conference on Machine Learning},
            year={2016}
        }
        @inproceedings{ghadimi2018approximation,
            title={Approximation Methods for Bilevel Programming},
            author={Ghadimi, Saeed and Wang, Mengdi},
            journal={arXiv:1802.02246},
            year={2018}
        }
        ```
    """

    learning_rate: float = 1e-1
    lower_solver: optx.AbstractMinimiser | AbstractSolver | None = None
    lower_max_steps: int | None = eqx.field(static=True, default=None)
    rtol: float | None = None
    atol: float | None = None
    verbose: bool | Callable[..., None] = False

    def __check_init__(self):
        if not self.learning_rate > 0:
            raise ValueError("`learning_rate` must be positive.")
        check_tolerances(self, "rtol", "atol")
        if self.lower_solver is not None and not isinstance(
            self.lower_solver, (optx.AbstractMinimiser, AbstractSolver)
        ):
            raise TypeError(
                "`lower_solver` must be an optimistix minimiser (for a "
                "`BilevelProblem`) or a sciopt solver (for a `NestedProblem`), got "
                f"{type(self.lower_solver).__name__}."
            )

    def default_max_steps(self) -> int:
        return 1000

    def _check_problem(self, problem):
        if isinstance(problem, NestedProblem):
            if not isinstance(self.lower_solver, AbstractSolver):
                raise TypeError(
                    "A `NestedProblem` needs `AID(lower_solver=...)` set to the sciopt "
                    "solver of its lower problem (e.g. `sciopt.relu.InteriorPoint()`)"
                    f", got {type(self.lower_solver).__name__}."
                )
            return
        _check_unconstrained(problem, "AID")
        if isinstance(self.lower_solver, AbstractSolver):
            raise TypeError(
                "A sciopt `lower_solver` needs a `sciopt.bilevel.NestedProblem` (the "
                "lower level as a sciopt problem); for a `BilevelProblem` pass an "
                "optimistix minimiser or None."
            )

    def _nested_solve(self, problem: NestedProblem, x, y0, args):
        lower, lower_args = problem.lower_problem(x, args)
        max_steps = self.lower_max_steps
        if max_steps is None:
            max_steps = self.lower_solver.default_max_steps()
        return solve(
            lower,
            self.lower_solver,
            jax.lax.stop_gradient(y0),
            lower_args,
            max_steps=max_steps,
            throw=False,
        )

    def lower_solve(self, problem: BilevelProblem | NestedProblem, x, y0, args):
        """`y*(x)` by `optimistix.minimise`, or `sciopt.solve` for a `NestedProblem`
        (implicitly differentiable in `x`)."""
        if isinstance(problem, NestedProblem):
            sol = self._nested_solve(problem, x, y0, args)
            return sol.value, sol.result == RESULTS.successful
        solver = self.lower_solver
        if solver is None:
            tol = 1e-10 if y0.dtype == jnp.float64 else 1e-5
            solver = optx.BFGS(rtol=tol, atol=tol)
        sol = optx.minimise(
            lambda y, x: problem.f(x, y, args),
            solver,
            jax.lax.stop_gradient(y0),
            args=x,
            max_steps=1000 if self.lower_max_steps is None else self.lower_max_steps,
            throw=False,
            adjoint=ImplicitAdjoint(),
        )
        return sol.value, sol.result == optx.RESULTS.successful

    def hypergradient(self, problem: BilevelProblem, x, y0, args):
        """`(Phi(x), grad Phi(x), y*(x), ok)` by implicit differentiation."""

        def phi(x):
            y, ok = self.lower_solve(problem, x, y0, args)
            return problem.F(x, y, args), (y, ok)

        (value, (y, ok)), grad = jax.value_and_grad(phi, has_aux=True)(x)
        return value, grad, y, ok

    def _safe_hypergradient(self, problem, x, y0, args):
        # Differentiate only where the oracles are finite: lineax refuses non-finite
        # input, and a diverging x (e.g. a too-long fixed step) must end the solve
        # with a result code rather than an error.
        y_star, ok = self.lower_solve(problem, x, y0, args)
        values = jax.value_and_grad(problem.F, argnums=(0, 1))(x, y_star, args)
        finite = tree_all_finite(values) & ok

        def bad(_):
            nan = jnp.full_like(x, jnp.nan)
            return jnp.array(jnp.nan, x.dtype), nan, y_star, ok

        return jax.lax.cond(
            finite,
            lambda _: self.hypergradient(problem, x, y_star, args),
            bad,
            None,
        )

    def init(self, problem: BilevelProblem, y, args, options: dict[str, Any]):
        self._check_problem(problem)
        x, yy = y
        if isinstance(problem, NestedProblem):
            finite = tree_all_finite((x, yy))
        else:
            finite, _ = start_flags(problem, x, yy, args, get_key(options))
        return _AIDState(
            step=jnp.array(0),
            residual=jnp.array(jnp.inf, x.dtype),
            inner_ok=jnp.array(True),
            finite_start=finite,
        )

    def step(self, problem: BilevelProblem, y, args, options, state: _AIDState):
        x, yy = y
        lr = jnp.asarray(self.learning_rate, x.dtype)
        value, grad, y_star, ok = self._safe_hypergradient(problem, x, yy, args)
        # A failed lower solve ends the run (`inner_solve_failed`) at the last point
        # whose lower solve succeeded.
        new_x = jnp.where(ok, problem.upper_set.project(x - lr * grad), x)
        y_star = jax.tree.map(lambda a, b: jnp.where(ok, a, b), y_star, yy)
        residual = safe_norm(x - problem.upper_set.project(x - grad))
        verbose_printer(self.verbose)(
            step=("AID step", state.step + 1),
            upper=("Phi(x)", value),
            residual=("residual", residual),
        )
        new_state = _AIDState(
            step=state.step + 1,
            residual=residual,
            inner_ok=ok,
            finite_start=state.finite_start,
        )
        return (new_x, y_star), new_state, None

    def terminate(self, problem, y, args, options, state: _AIDState):
        x, _ = y
        rtol = tolerance(self.rtol, x.dtype, 1e-8, 1e-4)
        atol = tolerance(self.atol, x.dtype, 1e-8, 1e-4)
        done = converged(state.residual, atol + rtol * safe_norm(x))
        result = RESULTS.where(
            state.inner_ok, RESULTS.successful, RESULTS.inner_solve_failed
        )
        result = RESULTS.where(state.finite_start, result, RESULTS.nonfinite_start)
        bad = jnp.invert(state.finite_start & state.inner_ok)
        return done | bad, result

    def postprocess(self, problem, y, aux, args, options, state: _AIDState, result):
        x, yy = y
        if isinstance(problem, NestedProblem):
            sol = self._nested_solve(problem, x, yy, args)
            y_star = sol.value
            stats = {
                "upper_objective": problem.F(x, y_star, args),
                "lower_solution": y_star,
                "lower_result": sol.result,
            }
        else:
            y_star, _ = self.lower_solve(problem, x, yy, args)
            stats = final_stats(problem, x, y_star, args)
        stats["residual"] = state.residual
        return (x, y_star), aux, stats

    def optimality(self, problem, y, args, options):
        # The shared bilevel condition (`_implicit.py`): the lower level's
        # stationarity and the upper level's projected hypergradient, raising where
        # the solution map is not differentiable.
        if isinstance(problem, NestedProblem):
            return self._nested_optimality(problem, y, args)
        return optimality(problem, y, args)

    def _nested_optimality(self, problem: NestedProblem, y, args):
        # The lower solver's own condition for y, and the projected hypergradient
        # (through the lower solve) for x: block triangular in (x, y).
        x, yy = y
        lower, lower_args = problem.lower_problem(x, args)
        r_y = self.lower_solver.optimality(lower, yy, lower_args, {})
        _, grad, _, _ = self.hypergradient(problem, x, yy, args)
        r_x = x - problem.upper_set.project(x - grad)
        return r_x, r_y
