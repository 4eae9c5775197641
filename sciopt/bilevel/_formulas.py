"""Bilevel problems from formulas (strings or sympy expressions)."""

from collections.abc import Sequence

import jax.numpy as jnp

from ..symbolic import lower as lower_formula, lower_vector
from ._problem import BilevelProblem
from ._sets import AbstractSet, Reals


def from_formulas(
    upper: str,
    lower: str,
    x: Sequence[str],
    y: Sequence[str],
    *,
    constraints: Sequence[str] = (),
    equalities: Sequence[str] = (),
    parameters: Sequence[str] = (),
    upper_set: AbstractSet = Reals(),
    lower_set: AbstractSet = Reals(),
    **kwargs,
) -> BilevelProblem:
    """Build a `BilevelProblem` from formulas.

    **Arguments:**

    - `upper`, `lower`: the objectives `F` and `f`, e.g. `"(x1 - 1)**2 + y1**2"`.
    - `x`, `y`: the names of the upper and lower variables, in order (the entries of
        the vectors `x` and `y`).
    - `constraints`: formulas `g_i(x, y)`, each meaning `g_i <= 0`.
    - `equalities`: formulas `h_j(x, y)`, each meaning `h_j = 0`.
    - `parameters`: names bound to the entries of `args` (a vector or a dict).
    - `upper_set`, `lower_set`, `**kwargs`: passed to `BilevelProblem`.

    **Returns:**

    A `BilevelProblem` whose callables take vectors `x` of shape `(len(x),)` and `y`
    of shape `(len(y),)`.

    **Raises:**

    `ValueError` naming the formula when a formula does not parse or uses an unknown
    symbol.
    """
    x, y, parameters = list(x), list(y), list(parameters)
    if not x or not y:
        raise ValueError("`x` and `y` must each name at least one variable.")
    names = x + y

    def wrap(fn):
        def call(xv, yv, args):
            return fn(jnp.concatenate([jnp.ravel(xv), jnp.ravel(yv)]), args)

        return call

    upper_fn = wrap(lower_formula(upper, names, parameters))
    lower_fn = wrap(lower_formula(lower, names, parameters))
    g = (
        wrap(lower_vector(list(constraints), names, parameters))
        if constraints
        else None
    )
    h = wrap(lower_vector(list(equalities), names, parameters)) if equalities else None
    return BilevelProblem(
        upper=upper_fn,
        lower=lower_fn,
        lower_constraints=g,
        lower_equalities=h,
        upper_set=upper_set,
        lower_set=lower_set,
        **kwargs,
    )
