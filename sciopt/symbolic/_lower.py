"""Lowering sympy expressions to JAX functions of a flat vector."""

from collections.abc import Callable, Sequence

import jax.numpy as jnp
import sympy
from jaxtyping import Array
from sympy.parsing.sympy_parser import (
    convert_xor,
    parse_expr,
    standard_transformations,
)


_TRANSFORMATIONS = (*standard_transformations, convert_xor)

# Names a formula may use besides its variables and parameters.
_ALLOWED_FUNCTIONS = {
    name: getattr(sympy, name)
    for name in (
        "sin cos tan asin acos atan atan2 sinh cosh tanh asinh acosh atanh exp log "
        "sqrt Abs sign Min Max pi E erf floor ceiling"
    ).split()
}
_ALLOWED_FUNCTIONS["abs"] = sympy.Abs
_ALLOWED_FUNCTIONS["ln"] = sympy.log


def parse(
    expression: str | sympy.Expr | float | int,
    names: Sequence[str],
) -> sympy.Expr:
    """Parse `expression` (a string or a sympy expression) over the symbols `names`.

    **Arguments:**

    - `expression`: e.g. `"x1**2 + sin(x2)"` (`^` is read as a power).
    - `names`: the symbol names the expression may use (variables and parameters).

    **Returns:**

    A sympy expression.

    **Raises:**

    `ValueError` naming the expression when it does not parse, or when it uses a symbol
    outside `names` (and outside the known functions and constants).
    """
    symbols = {name: sympy.Symbol(name) for name in names}
    if isinstance(expression, (int, float)):
        return sympy.sympify(expression)
    if isinstance(expression, str):
        local = {**_ALLOWED_FUNCTIONS, **symbols}
        try:
            expr = parse_expr(
                expression,
                local_dict=local,
                global_dict={"__builtins__": {}, **_sympy_globals()},
                transformations=_TRANSFORMATIONS,
                evaluate=True,
            )
        except Exception as e:  # sympy raises many exception types
            raise ValueError(
                f"Could not parse the formula {expression!r}: {e}. Use Python/sympy "
                "syntax, e.g. 'x1**2 + sin(x2)'."
            ) from None
    elif isinstance(expression, sympy.Basic):
        expr = expression
    else:
        raise TypeError(
            f"A formula must be a string or a sympy expression, got "
            f"{type(expression).__name__}: {expression!r}."
        )
    if not isinstance(expr, sympy.Expr):
        raise ValueError(
            f"The formula {expression!r} is not a scalar expression (got "
            f"{type(expr).__name__})."
        )
    unknown = sorted(str(s) for s in expr.free_symbols if str(s) not in symbols)
    if unknown:
        raise ValueError(
            f"The formula {str(expression)!r} uses unknown symbols {unknown}; the "
            f"known symbols are {list(names)}. Declare them as variables or "
            "parameters."
        )
    undefined = sorted(
        str(f.func)
        for f in expr.atoms(sympy.Function)
        if isinstance(f, sympy.core.function.AppliedUndef)
    )
    if undefined:
        raise ValueError(
            f"The formula {str(expression)!r} calls unknown functions {undefined}."
        )
    return expr


def _sympy_globals():
    return {
        "Integer": sympy.Integer,
        "Float": sympy.Float,
        "Rational": sympy.Rational,
        "Symbol": sympy.Symbol,
        "Function": sympy.Function,
    }


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
