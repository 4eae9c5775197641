"""Lowering sympy expressions to JAX functions of a flat vector."""

from collections.abc import Callable, Sequence

import jax.numpy as jnp
import sympy
from jaxtyping import Array

from ._parse import parse


_JAX_MODULE = {
    "Abs": jnp.abs,
    "sign": jnp.sign,
    "Min": jnp.minimum,
    "Max": jnp.maximum,
    "floor": jnp.floor,
    "ceiling": jnp.ceil,
}


def _lambdify(args: list[sympy.Symbol], exprs: list[sympy.Expr]) -> Callable:
    import jax.scipy.special as jsp

    modules = [_JAX_MODULE | {"erf": jsp.erf}, "jax"]
    return sympy.lambdify(args, exprs, modules=modules, cse=True)


def lower_vector(
    expressions: Sequence[str | sympy.Expr],
    variables: Sequence[str],
    parameters: Sequence[str] = (),
) -> Callable[[Array, Array | None], Array]:
    """Lower a list of formulas to `fn(x, args) -> (len(expressions),)`.

    **Arguments:**

    - `expressions`: formulas over `variables` and `parameters`.
    - `variables`: names bound, in order, to the entries of the flat vector `x`.
    - `parameters`: names bound, in order, to the entries of the flat vector `args`
      (or of a dict `args` keyed by name).

    **Returns:**

    A jit-able function `fn(x, args)` returning a JAX vector, in `x`'s dtype.
    """
    variables = list(variables)
    parameters = list(parameters)
    if len(set(variables + parameters)) != len(variables) + len(parameters):
        raise ValueError(
            f"Variable and parameter names must be distinct: {variables}, {parameters}."
        )
    names = variables + parameters
    exprs = [parse(e, names) for e in expressions]
    var_syms = [sympy.Symbol(n) for n in variables]
    par_syms = [sympy.Symbol(n) for n in parameters]
    numeric = _lambdify(var_syms + par_syms, exprs)
    n_var, n_par = len(variables), len(parameters)

    def fn(x, args=None):
        x = jnp.asarray(x)
        if x.shape != (n_var,):
            raise ValueError(
                f"Expected a vector of shape ({n_var},) for variables {variables}, "
                f"got shape {x.shape}."
            )
        if n_par:
            if args is None:
                raise ValueError(
                    f"The formulas need parameters {parameters}: pass them as `args`."
                )
            if isinstance(args, dict):
                missing = [p for p in parameters if p not in args]
                if missing:
                    raise ValueError(f"`args` is missing parameters {missing}.")
                pars = [jnp.asarray(args[p], x.dtype) for p in parameters]
            else:
                a = jnp.asarray(args, x.dtype)
                if a.shape != (n_par,):
                    raise ValueError(
                        f"`args` must have shape ({n_par},) for parameters "
                        f"{parameters}, got {a.shape}."
                    )
                pars = [a[i] for i in range(n_par)]
        else:
            pars = []
        values = numeric(*[x[i] for i in range(n_var)], *pars)
        if not values:
            return jnp.zeros((0,), x.dtype)
        return jnp.stack(
            [jnp.broadcast_to(jnp.asarray(v, x.dtype), ()) for v in values]
        )

    return fn


def lower(
    expression: str | sympy.Expr,
    variables: Sequence[str],
    parameters: Sequence[str] = (),
) -> Callable[[Array, Array | None], Array]:
    """Lower one formula to a scalar function `fn(x, args) -> ()`.

    See `sciopt.symbolic.lower_vector` for the arguments.
    """
    vector_fn = lower_vector([expression], variables, parameters)

    def fn(x, args=None):
        return vector_fn(x, args)[0]

    return fn
