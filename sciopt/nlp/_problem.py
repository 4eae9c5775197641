"""`EqualityConstrainedProblem`: min f(x) subject to c(x) = 0."""

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from .._solver import AbstractProblem
from ..symbolic import lower, lower_vector


class EqualityConstrainedProblem(AbstractProblem):
    """The nonlinear program `min f(x, args)  subject to  c(x, args) = 0`.

    `x` is a flat vector of `n` variables and `c` returns a vector of `m <= n`
    constraint values. Both callables follow the optimistix convention `fn(y, args)`.

    !!! Example

        ```python
        problem = sciopt.nlp.EqualityConstrainedProblem(
            objective=lambda x, r: x[0] + x[1],
            constraints=lambda x, r: jnp.array([x[0] ** 2 + x[1] ** 2 - r**2]),
        )
        sol = sciopt.solve(problem, sciopt.nlp.AdaSketchNewton(), x0, args=1.0)
        ```
    """

    objective: Callable[[Array, Any], Array]
    constraints: Callable[[Array, Any], Array]
    x0: Float[Array, " n"] | None = None
    variables: tuple[str, ...] | None = None

    def __init__(
        self,
        objective: Callable[[Array, Any], Array],
        constraints: Callable[[Array, Any], Array],
        x0: ArrayLike | None = None,
        variables: Sequence[str] | None = None,
    ):
        """**Arguments:**

        - `objective`: `f(x, args) -> scalar`.
        - `constraints`: `c(x, args) -> (m,)` vector; the problem is `c(x) = 0`.
        - `x0`: an optional default starting point (used when `sciopt.solve` gets
            `y0=None`).
        - `variables`: optional names of the entries of `x` (for reports).
        """
        if not callable(objective):
            raise TypeError("`objective` must be a callable `f(x, args) -> scalar`.")
        if not callable(constraints):
            raise TypeError("`constraints` must be a callable `c(x, args) -> (m,)`.")
        self.objective = objective
        self.constraints = constraints
        self.x0 = None if x0 is None else jnp.asarray(x0)
        self.variables = None if variables is None else tuple(variables)

    @classmethod
    def from_formulas(
        cls,
        variables: Sequence[str],
        objective: str,
        equalities: Sequence[str],
        parameters: Sequence[str] = (),
        x0: ArrayLike | None = None,
    ) -> "EqualityConstrainedProblem":
        """Build a problem from formulas (strings or sympy expressions).

        **Arguments:**

        - `variables`: names bound, in order, to the entries of `x`.
        - `objective`: the objective formula, e.g. `"x1 + x2"`.
        - `equalities`: formulas `c_i` meaning `c_i(x) = 0`.
        - `parameters`: names bound to the entries of `args` (a vector, or a dict
            keyed by name).
        - `x0`: an optional default starting point.

        **Returns:**

        An `EqualityConstrainedProblem`.

        **Raises:**

        `ValueError` naming the formula when one does not parse or uses an unknown
        symbol, or when there are more equalities than variables.
        """
        variables = list(variables)
        if len(equalities) == 0:
            raise ValueError("`equalities` must hold at least one formula.")
        if len(equalities) > len(variables):
            raise ValueError(
                f"`equalities` has {len(equalities)} formulas but there are only "
                f"{len(variables)} variables: an equality-constrained problem needs "
                "m <= n."
            )
        f = lower(objective, variables, parameters)
        c = lower_vector(list(equalities), variables, parameters)
        return cls(f, c, x0=x0, variables=variables)

    def default_y0(self, args):
        if self.x0 is None:
            return super().default_y0(args)
        return self.x0

    def shapes(self, x: Array, args: Any) -> tuple[int, int]:
        """Return `(n, m)` (trace-time), checking the callables' output shapes."""
        if jnp.ndim(x) != 1:
            raise ValueError(
                f"`y0` must be a flat vector of variables, got shape {jnp.shape(x)}."
            )
        if not jnp.issubdtype(jnp.result_type(x), jnp.floating):
            raise ValueError(
                f"`y0` must be a floating-point vector, got dtype {jnp.result_type(x)}."
            )
        n = x.shape[0]
        f_struct = jax.eval_shape(self.objective, x, args)
        if getattr(f_struct, "shape", None) != ():
            raise ValueError(
                "`objective` must return a scalar, got shape "
                f"{getattr(f_struct, 'shape', None)}."
            )
        c_struct = jax.eval_shape(self.constraints, x, args)
        c_shape = getattr(c_struct, "shape", None)
        if c_shape is None or len(c_shape) != 1:
            raise ValueError(
                f"`constraints` must return a vector of shape (m,), got {c_shape}."
            )
        m = c_shape[0]
        if m == 0:
            raise ValueError("`constraints` returned no constraints (m = 0).")
        if m > n:
            raise ValueError(
                f"`constraints` returned m = {m} constraints for n = {n} variables: "
                "more equality constraints than variables is over-determined; remove "
                "redundant constraints."
            )
        return n, m

    def check(self, y0, args):
        if self.x0 is not None and jnp.shape(y0) != self.x0.shape:
            raise ValueError(
                f"`y0` has shape {jnp.shape(y0)} but the problem has "
                f"{self.x0.shape[0]} variables."
            )
        if self.variables is not None and jnp.shape(y0) != (len(self.variables),):
            raise ValueError(
                f"`y0` has shape {jnp.shape(y0)} but the problem has variables "
                f"{list(self.variables)}."
            )
        self.shapes(y0, args)


def from_spec(spec) -> EqualityConstrainedProblem:
    """Build the problem of one `[[problem]]` table (a `sciopt.ProblemSpec`).

    Formula tables hold `variables`, `objective`, `equalities` and `x0` (and optionally
    `parameters`); generator tables hold `generator = "hs28_chain"` (key `n`) or
    `generator = "pde_control"` (keys `N`, `alpha`).
    """
    data = spec.data if hasattr(spec, "data") else dict(spec)
    name = data.get("name", "?")
    if "generator" in data:
        from ._generators import build_generator

        return build_generator(data)
    for key in ("variables", "objective", "equalities"):
        if key not in data:
            raise ValueError(f"Problem {name!r}: missing key `{key}`.")
    x0 = data.get("x0")
    if x0 is not None:
        x0 = np.asarray(x0, dtype=float)
        if x0.shape != (len(data["variables"]),):
            raise ValueError(
                f"Problem {name!r}: `x0` has {x0.size} entries for "
                f"{len(data['variables'])} variables."
            )
    return EqualityConstrainedProblem.from_formulas(
        variables=data["variables"],
        objective=data["objective"],
        equalities=data["equalities"],
        parameters=data.get("parameters", ()),
        x0=x0,
    )
