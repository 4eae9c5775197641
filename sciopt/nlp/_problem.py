"""`EqualityConstrainedProblem`: min f(x) subject to c(x) = 0."""

from collections.abc import Callable, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.extend.core as jex_core
import jax.numpy as jnp
import numpy as np
from jax.experimental import checkify
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
                "more equality constraints than variables is over-determined: the "
                "extra constraints are either redundant (remove them) or inconsistent "
                "(the problem is infeasible)."
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
        self._check_indexing(y0, args)

    def _check_indexing(self, y0, args):
        """Raise if `objective` or `constraints` index `x` out of bounds at `y0`.

        JAX clamps out-of-bounds indices (`x[2]` of a length-2 `x` reads `x[1]`),
        so a `y0` shorter than the variables the callables use would be solved
        silently as a different problem. The callables are traced once with
        `jax.experimental.checkify`'s index checks (on shapes only), the index
        computations are cut out of the trace, and only they are evaluated: on the
        concrete `y0`/`args` when the error depends on their values, and not at all
        when those are tracers (under `jit`/`vmap`, where only indices fixed at
        trace time, the common `x[2]`, are checked). No float arithmetic of the
        callables runs, so the check costs little next to a solve's compilation.
        """
        leaves = jax.tree.leaves((y0, args))
        concrete = not any(isinstance(v, jax.core.Tracer) for v in leaves)
        struct = jax.tree.map(
            lambda v: (
                jax.ShapeDtypeStruct(jnp.shape(v), jnp.result_type(v))
                if eqx.is_array_like(v)
                else v
            ),
            (y0, args),
        )
        try:
            struct_leaves, struct_def = jax.tree.flatten(struct)
            key = (self.objective, self.constraints, tuple(struct_leaves), struct_def)
            hash(key)
        except TypeError:
            key = None
        if key is not None and key in _INDEX_CHECKS:
            message = _INDEX_CHECKS[key]
        else:
            message, static = self._index_message(struct, leaves, concrete)
            if static and key is not None:
                if len(_INDEX_CHECKS) >= 256:
                    _INDEX_CHECKS.pop(next(iter(_INDEX_CHECKS)))
                _INDEX_CHECKS[key] = message
        if message:
            if "Tracer" in message:  # the payload is traced under jit
                message = "an index is out of bounds."
            raise ValueError(
                f"`objective` or `constraints` index `x` out of bounds for `y0` of "
                f"length {jnp.shape(y0)[0]}: {message.strip()} Pass a `y0` with an "
                "entry for every variable the callables use (JAX would otherwise "
                "clamp the index and solve a different problem)."
            )

    def _index_message(self, struct, leaves, concrete):
        """(message or None, whether it holds for every value of y0/args)."""
        treedef = []

        def errors(y, a):
            def both(y, a):
                return self.objective(y, a), self.constraints(y, a)

            err, _ = checkify.checkify(both, errors=checkify.index_checks)(y, a)
            err_leaves, err_def = jax.tree.flatten(err)
            treedef.append(err_def)
            return err_leaves

        try:
            closed = jax.make_jaxpr(errors)(*struct)
        except Exception:  # noqa: BLE001
            # The callables fail under checkify (e.g. an unsupported primitive):
            # the solve traces them again and reports any real error.
            return None, False
        values, static = _eval_outputs(closed, leaves, concrete)
        if values is None:
            return None, False
        return jax.tree.unflatten(treedef[0], values).get(), static


def _eval_outputs(closed, inputs, concrete):
    """Evaluate only the equations of `closed` that its outputs need.

    Returns `(values, static)`, `static` when they do not depend on the inputs'
    values; `(None, False)` when they do and those are not concrete.
    """
    jaxpr = closed.jaxpr
    needed = {v for v in jaxpr.outvars if isinstance(v, jex_core.Var)}
    kept = []
    for eqn in reversed(jaxpr.eqns):
        if any(v in needed for v in eqn.outvars):
            kept.append(eqn)
            needed.update(v for v in eqn.invars if isinstance(v, jex_core.Var))
    kept.reverse()
    static = not any(v in needed for v in jaxpr.invars)
    if not concrete and not static:
        return None, False
    env = dict(zip(jaxpr.constvars, closed.consts))
    env.update(zip(jaxpr.invars, inputs))

    def read(v):
        return v.val if isinstance(v, jex_core.Literal) else env[v]

    with jax.ensure_compile_time_eval():
        for eqn in kept:
            params = eqn.primitive.get_bind_params(eqn.params)
            subfuns = ()
            if isinstance(params, tuple):  # older JAX: (subfuns, params)
                subfuns, params = params
            out = eqn.primitive.bind(*subfuns, *map(read, eqn.invars), **params)
            if not eqn.primitive.multiple_results:
                out = [out]
            env.update(zip(eqn.outvars, out))
    return [read(v) for v in jaxpr.outvars], static


# Index checks that hold for every value of y0/args, keyed by the callables and the
# shapes (a repeated solve of the same problem pays for the check once).
_INDEX_CHECKS: dict = {}


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
