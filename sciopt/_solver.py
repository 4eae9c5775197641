"""The solver and problem protocols shared by every sciopt family."""

import abc
from typing import Any, Generic, TypeVar

import equinox as eqx
from jaxtyping import Array, Bool, PyTree

from ._custom_types import Args, Y
from ._solution import RESULTS


SolverState = TypeVar("SolverState")
Aux = TypeVar("Aux")


class AbstractProblem(eqx.Module):
    """A problem: data (callables, arrays, sets) for a solver to act on.

    Subclasses hold their callables and arrays as fields. Two optional hooks:

    - `default_y0(args)`: the starting point used when `sciopt.solve` gets `y0=None`.
    - `check(y0, args)`: trace-time validation of shapes and dtypes; raise `ValueError`
      naming the argument and what to change.
    """

    def default_y0(self, args: Args) -> Y:
        raise ValueError(
            f"{type(self).__name__} has no default starting point: pass `y0` to "
            "`sciopt.solve`."
        )

    def check(self, y0: Y, args: Args) -> None:
        del y0, args


class AbstractSolver(eqx.Module, Generic[SolverState, Aux]):
    """An iterative solver, in the protocol of optimistix.

    `sciopt.solve` calls `init` once, then `step` until `terminate` says stop (or
    `max_steps` is reached), then `postprocess`. `optimality` returns a residual that
    vanishes at a solution, with the same structure as `y`; the implicit adjoint
    differentiates through it (implicit function theorem).
    """

    @abc.abstractmethod
    def init(
        self, problem: AbstractProblem, y: Y, args: Args, options: dict[str, Any]
    ) -> SolverState:
        """Build the solver state at the starting point `y`."""

    @abc.abstractmethod
    def step(
        self,
        problem: AbstractProblem,
        y: Y,
        args: Args,
        options: dict[str, Any],
        state: SolverState,
    ) -> tuple[Y, SolverState, Aux]:
        """Take one step; return the new iterate, the new state and auxiliary output."""

    @abc.abstractmethod
    def terminate(
        self,
        problem: AbstractProblem,
        y: Y,
        args: Args,
        options: dict[str, Any],
        state: SolverState,
    ) -> tuple[Bool[Array, ""], RESULTS]:
        """Whether to stop, and with which result."""

    @abc.abstractmethod
    def postprocess(
        self,
        problem: AbstractProblem,
        y: Y,
        aux: Aux,
        args: Args,
        options: dict[str, Any],
        state: SolverState,
        result: RESULTS,
    ) -> tuple[Y, Aux, dict[str, PyTree]]:
        """Return the final value, auxiliary output and the solver's statistics."""

    def default_max_steps(self) -> int:
        """The step budget `sciopt.solve` uses when it gets `max_steps=None`.

        Newton-type solvers need tens of steps, first-order splitting methods
        (ADMM, proximal gradient) thousands: each solver overrides this with a budget
        that suits it.
        """
        return 256

    def optimality(
        self, problem: AbstractProblem, y: Y, args: Args, options: dict[str, Any]
    ) -> PyTree:
        """A residual that is zero at a solution, shaped like `y` (for implicit AD)."""
        raise NotImplementedError(
            f"{type(self).__name__} does not define an optimality condition, so it "
            "cannot be differentiated implicitly; pass "
            "`adjoint=optimistix.RecursiveCheckpointAdjoint()` to `sciopt.solve`."
        )
