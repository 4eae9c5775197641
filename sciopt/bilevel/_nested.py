"""A bilevel problem whose lower level is any sciopt problem, solved by a sciopt
solver (composition: e.g. a convex ReLU program under a validation loss)."""

from collections.abc import Callable

import jax
from jaxtyping import Array, PyTree

from .._solver import AbstractProblem
from ._sets import AbstractSet, Reals


class NestedProblem(AbstractProblem):
    r"""The bilevel problem

    $$\min_{x \in X} F(x, y^*(x)), \qquad y^*(x) = \text{the solution of the sciopt
    problem } \mathcal{P}(x),$$

    where $\mathcal{P}(x)$ is any sciopt problem (a `ConvexReLUProblem`, an
    `EqualityConstrainedProblem`, a plug-and-play problem, another `BilevelProblem`...)
    built from `x`. Solve it with `sciopt.bilevel.AID(lower_solver=...)`, where the
    lower solver is the sciopt solver of $\mathcal{P}$ (for example
    `sciopt.relu.InteriorPoint()`): each outer step solves $\mathcal{P}(x)$ with
    `sciopt.solve` (warm-started at the previous lower solution, `throw=False`) and
    differentiates $F(x, y^*(x))$ through that solve by the implicit function theorem
    applied to the lower solver's optimality condition (as `sciopt.solve` always
    does). The solution's `value` is `(x, y)` with `y` the lower solution's value.

    **Arguments:**

    - `upper`: `F(x, y, args) -> scalar`, the upper objective; `y` is the value of the
        lower solution (e.g. `ConvexReLUVariables`).
    - `lower`: `P(x, args)`: the lower problem at `x`, either a sciopt problem or a
        pair `(problem, lower_args)` when the lower problem takes `args`. `x` may
        enter as a problem field (e.g. `beta` of a `ConvexReLUProblem`) or through
        `lower_args`: gradients flow through both.
    - `upper_set`: the simple set `X` of `x` (`Reals`, `Box`, ...), as a projection.

    `start(x0, args)` gives `(x0, y0)` with the lower problem's default start.
    """

    upper: Callable[..., Array]
    lower: Callable[..., AbstractProblem | tuple[AbstractProblem, PyTree]]
    upper_set: AbstractSet = Reals()

    def __check_init__(self):
        for name in ("upper", "lower"):
            if not callable(getattr(self, name)):
                raise TypeError(f"`{name}` must be a callable (see NestedProblem).")
        if not isinstance(self.upper_set, AbstractSet):
            raise TypeError(
                "`upper_set` must be a set such as `sciopt.bilevel.Box(...)`, got "
                f"{type(self.upper_set).__name__}."
            )

    def lower_problem(self, x, args) -> tuple[AbstractProblem, PyTree]:
        """The lower problem at `x` and its `args`."""
        out = self.lower(x, args)
        if isinstance(out, AbstractProblem):
            return out, None
        if (
            isinstance(out, tuple)
            and len(out) == 2
            and isinstance(out[0], AbstractProblem)
        ):
            return out
        raise TypeError(
            "`lower(x, args)` must return a sciopt problem or a pair "
            f"`(problem, lower_args)`, got {type(out).__name__}."
        )

    def F(self, x, y, args) -> Array:
        """The upper objective."""
        return self.upper(x, y, args)

    def start(self, x0, args: PyTree = None):
        """`(x0, y0)`: `x0` and the lower problem's default starting point at `x0`."""
        x0 = jax.numpy.asarray(x0)
        problem, lower_args = self.lower_problem(x0, args)
        return x0, problem.default_y0(lower_args)
