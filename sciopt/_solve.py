"""`sciopt.solve`: the one driver loop of every sciopt solver."""

import functools as ft
import types
from typing import Any

import equinox as eqx
import equinox.internal as eqxi
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx

from ._adjoint import implicit_tangent, ImplicitAdjoint
from ._code_key import wrap_functions
from ._compile import at_top_level, differentiated_at_top_level, jit, top_level
from ._custom_types import Args, Y
from ._misc import check_finite_input, raise_if_failed, tree_all_finite
from ._progress import AbstractProgressMeter, progress_meter
from ._saveat import SaveAt
from ._solution import RESULTS, Solution
from ._solver import AbstractProblem, AbstractSolver


def _iterate(inputs):
    (problem, solver, y0, args, options, max_steps, meter, saveat, while_loop) = inputs
    del inputs
    state0 = solver.init(problem, y0, args, options)
    aux_struct = eqx.filter_eval_shape(
        lambda y, s: solver.step(problem, y, args, options, s)[2], y0, state0
    )
    aux0 = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), aux_struct)

    def terminate_and_result(y, state):
        done, result = solver.terminate(problem, y, args, options, state)
        result = RESULTS.where(tree_all_finite(y), result, RESULTS.nonfinite)
        return done, result

    done0, result0 = terminate_and_result(y0, state0)
    result0 = RESULTS.where(
        tree_all_finite((y0, args)), result0, RESULTS.nonfinite_start
    )
    dynamic_state0, static_state = eqx.partition(state0, eqx.is_array)
    meter_state0 = meter.init()
    history0 = _init_history(saveat, max_steps, y0, state0, aux0)
    carry0 = (
        y0,
        jnp.array(0),
        dynamic_state0,
        aux0,
        done0,
        result0,
        meter_state0,
        history0,
    )

    def cond_fun(carry):
        _, _, _, _, done, result, _, _ = carry
        return jnp.invert(done) & (result == RESULTS.successful)

    def body_fun(carry):
        y, num_steps, dynamic_state, _, _, _, meter_state, history = carry
        state = eqx.combine(static_state, dynamic_state)
        new_y, new_state, aux = solver.step(problem, y, args, options, state)
        done, result = terminate_and_result(new_y, new_state)
        new_dynamic_state, new_static_state = eqx.partition(new_state, eqx.is_array)
        assert eqx.tree_equal(static_state, new_static_state) is True
        num_steps = num_steps + 1
        fraction = jax.lax.stop_gradient(num_steps / max_steps)
        meter_state = meter.step(meter_state, fraction)
        history = _record(saveat, history, num_steps, new_y, new_state, aux)
        return (
            new_y,
            num_steps,
            new_dynamic_state,
            aux,
            done,
            result,
            meter_state,
            history,
        )

    carry = while_loop(cond_fun, body_fun, carry0, max_steps=max_steps)
    y, num_steps, dynamic_state, aux, done, result, meter_state, history = carry
    meter.close(meter_state)
    state = eqx.combine(static_state, dynamic_state)
    result = RESULTS.where(
        (result == RESULTS.successful) & jnp.invert(done),
        RESULTS.steps_exhausted,
        result,
    )
    y, aux, stats = solver.postprocess(problem, y, aux, args, options, state, result)
    # Never report success with a non-finite value or scalar statistic (an objective
    # or a stopping quantity that overflowed). Histories (non-scalar statistics) may be
    # padded with nan past the last step, so they are not checked.
    scalar_stats = [x for x in jax.tree.leaves(stats) if jnp.ndim(x) == 0]
    result = RESULTS.where(
        (result == RESULTS.successful) & jnp.invert(tree_all_finite((y, scalar_stats))),
        RESULTS.nonfinite,
        result,
    )
    static = eqxi.Static(static_state)
    return y, (num_steps, result, dynamic_state, static, aux, stats, history)


def _init_history(saveat, max_steps, y0, state0, aux0):
    if saveat is None:
        return None
    first = saveat.fn(y0, state0, aux0)
    length = max_steps // saveat.every + 1

    def buffer(x):
        x = jnp.asarray(x)
        fill = jnp.nan if jnp.issubdtype(x.dtype, jnp.inexact) else -1
        return jnp.full((length, *x.shape), fill, x.dtype).at[0].set(x)

    return jax.tree.map(buffer, first)


def _record(saveat, history, num_steps, y, state, aux):
    if saveat is None:
        return history
    # Steps that are not multiples of `every` write out of bounds, which is dropped.
    length = jax.tree.leaves(history)[0].shape[0]
    index = jnp.where(num_steps % saveat.every == 0, num_steps // saveat.every, length)
    value = saveat.fn(y, state, aux)
    return jax.tree.map(
        lambda h, v: h.at[index].set(jnp.asarray(v, h.dtype), mode="drop"),
        history,
        value,
    )


class _PrimalOnly(optx.AbstractAdjoint):
    """The solve's loop alone, for a call that nothing can differentiate: at the top
    level or under `jax.vmap` only, the solution is a concrete array. Tracing the
    implicit adjoint's custom derivative rule there costs time for nothing (under
    `jax.vmap`, JAX traces the whole loop again to batch it)."""

    def apply(self, primal_fn, rewrite_fn, inputs, tags):
        del rewrite_fn, tags
        return primal_fn(inputs + (ft.partial(eqxi.while_loop, kind="lax"),))


_NO_TRACERS_INSIDE = (jax.Array, np.ndarray, str, type, types.ModuleType)


def _holds_tracers(tree, depth=0, seen=None) -> bool:
    """Whether `tree` holds a JAX tracer anywhere we can see: its leaves and, for the
    callables among them, their closures, defaults, bound objects and partial
    arguments. Anything deeper than a few levels counts as holding one."""
    seen = set() if seen is None else seen
    if depth > 8:
        return True
    for leaf in jax.tree.leaves(tree):
        if isinstance(leaf, jax.core.Tracer):
            return True
        if id(leaf) in seen or isinstance(leaf, _NO_TRACERS_INSIDE):
            continue
        seen.add(id(leaf))
        if not callable(leaf):
            # an object of the user's (a bound method's, say): its attributes
            attributes = list(getattr(leaf, "__dict__", {}).values())
            if _holds_tracers(attributes, depth + 1, seen):
                return True
            continue
        inner = []
        fn = getattr(leaf, "__wrapped__", leaf)
        if isinstance(fn, ft.partial):
            inner += [fn.func, fn.args, fn.keywords]
        fn = getattr(fn, "__func__", fn)  # a bound method: its object too
        inner.append(getattr(leaf, "__self__", None))
        if hasattr(fn, "__code__"):
            cells = []
            for cell in fn.__closure__ or ():
                try:
                    cells.append(cell.cell_contents)
                except ValueError:  # an empty cell
                    pass
            inner += [cells, fn.__defaults__, fn.__kwdefaults__]
        elif not isinstance(leaf, (type, eqx.Module)) and hasattr(leaf, "__dict__"):
            inner.append(list(vars(leaf).values()))
        if any(_holds_tracers(x, depth + 1, seen) for x in inner if x is not None):
            return True
    return False


def _solve_differentiated(inputs, statics, linear_solver):
    """`_solve_jit` under a top-level `jax.grad`/`jax.jvp`, differentiated here by the
    implicit function theorem rather than inside the compiled loop: the forward solve
    is then the very program of an undifferentiated call (compiled once, with
    sciopt's compiler options, and cached), and only the tangent is compiled anew."""
    max_steps, meter, saveat = statics
    static_out = []

    def arrays(inputs):
        # a primal of `jax.grad(f)(1.0)` is a typed Python float: an array, as in
        # an undifferentiated call (as a static value, every new value would
        # compile the programs again)
        problem, solver, y0, args, options = inputs
        y0, args = jax.tree.map(_scalar_to_array, (y0, args))
        return problem, solver, y0, args, options

    def run(inputs):
        problem, solver, y0, args, options = inputs
        sol = at_top_level(
            _solve_jit,
            problem,
            solver,
            y0,
            args,
            options,
            max_steps,
            _PrimalOnly(),
            meter,
            saveat,
        )
        dynamic, static = eqx.partition(sol, eqx.is_array)
        static_out.append(static)
        return dynamic

    @eqx.filter_custom_jvp
    def forward(inputs):
        return run(arrays(inputs))

    @forward.def_jvp
    def forward_jvp(primals, tangents):
        (inputs,), (t_inputs,) = primals, tangents
        inputs = arrays(inputs)
        dynamic = run(inputs)
        t_value = _tangent(dynamic.value, inputs, t_inputs, linear_solver)
        t_dynamic = jax.tree.map(lambda _: None, dynamic)
        t_dynamic = eqx.tree_at(
            lambda s: s.value, t_dynamic, t_value, is_leaf=lambda x: x is None
        )
        return dynamic, t_dynamic

    dynamic = forward(inputs)
    return eqx.combine(dynamic, static_out[-1])


def _rewrite(root, _, inputs):
    problem, solver, _, args, options, *_ = inputs
    return solver.optimality(problem, root, args, options)


def _optimality(y, inputs):
    return _rewrite(y, None, inputs)


# one program: its primal half (the Jacobian at the root) is compiled and run once,
# its tangent half staged by JAX's linearisation
_tangent = eqx.filter_jit(ft.partial(implicit_tangent, _optimality))


@jit
def _solve_jit(problem, solver, y0, args, options, max_steps, adjoint, meter, saveat):
    inputs = (problem, solver, y0, args, options, max_steps, meter, saveat)
    if isinstance(
        adjoint,
        (
            ImplicitAdjoint,
            optx.ImplicitAdjoint,
            optx.RecursiveCheckpointAdjoint,
            _PrimalOnly,
        ),
    ):
        # Each adjoint appends its while-loop to `inputs`.
        out = adjoint.apply(_iterate, _rewrite, inputs, frozenset())
    else:
        raise TypeError(
            "`adjoint` must be sciopt.ImplicitAdjoint, optimistix.ImplicitAdjoint or "
            f"optimistix.RecursiveCheckpointAdjoint, got {type(adjoint).__name__}."
        )
    y, (num_steps, result, dynamic_state, static_state, aux, stats, history) = out
    state = eqx.combine(static_state.value, dynamic_state)
    stats = {"num_steps": num_steps, "max_steps": max_steps, **stats}
    return Solution(
        value=y, result=result, stats=stats, state=state, aux=aux, history=history
    )


def _scalar_to_array(leaf):
    if isinstance(leaf, (float, complex, np.floating, np.complexfloating)):
        return jnp.asarray(leaf)
    if isinstance(leaf, np.ndarray) and jnp.issubdtype(leaf.dtype, jnp.inexact):
        return jnp.asarray(leaf)
    return leaf


def _inexact_leaves(tree):
    return [
        x
        for x in jax.tree.leaves(eqx.filter(tree, eqx.is_inexact_array))
        if x is not None
    ]


def _working_dtype(problem, y0, args):
    """The widest floating dtype of the problem's arrays, else of `args`, else of `y0`
    (Python scalars left out).

    Promotion is computed under JAX's standard rules, whatever the caller's
    `jax_numpy_dtype_promotion` setting: a problem that mixes float32 and float64
    arrays works in float64.
    """
    for tree in (problem, args, y0):
        # Python scalars (weakly typed) do not decide the dtype: `args=1.0` with a
        # float32 start works in float32.
        leaves = [
            x for x in _inexact_leaves(tree) if not getattr(x, "weak_type", False)
        ]
        if leaves:
            with jax.numpy_dtype_promotion("standard"):
                return jnp.result_type(*[x.dtype for x in leaves])
    return None


def _cast_to_problem_dtype(problem, y0, args):
    dtype = _working_dtype(problem, y0, args)
    if dtype is None:
        return problem, y0, args
    complex_target = jnp.issubdtype(dtype, jnp.complexfloating)

    def cast(name):
        def _cast(x):
            if not (eqx.is_array(x) and jnp.issubdtype(x.dtype, jnp.inexact)):
                return x
            if jnp.issubdtype(x.dtype, jnp.complexfloating) and not complex_target:
                raise ValueError(
                    f"`{name}` holds a complex array ({x.dtype}) but the problem "
                    f"works in {dtype}: pass real values, or declare the problem "
                    "with complex data."
                )
            return x if x.dtype == dtype else x.astype(dtype)

        return _cast

    return (
        jax.tree.map(cast("problem"), problem),
        jax.tree.map(cast("y0"), y0),
        jax.tree.map(cast("args"), args),
    )


def solve(
    problem: AbstractProblem,
    solver: AbstractSolver,
    y0: Y | None = None,
    args: Args = None,
    options: dict[str, Any] | None = None,
    *,
    max_steps: int | None = None,
    throw: bool = True,
    progress: None | bool | str | AbstractProgressMeter = None,
    adjoint: optx.AbstractAdjoint = ImplicitAdjoint(),
    saveat: SaveAt | None = None,
) -> Solution:
    """Solve `problem` with `solver`, starting from `y0`.

    The loop is jit-compiled and may itself be called under `jax.jit`, `jax.vmap` and
    `jax.grad`. Gradients of the solution with respect to `args` (and any arrays in
    `problem`) flow by implicit differentiation of the solver's optimality condition
    (`adjoint=sciopt.ImplicitAdjoint()`, the default; `optimistix.ImplicitAdjoint()`
    also works) or through the iterates (`optimistix.RecursiveCheckpointAdjoint()`).
    With the implicit adjoints, a call that nothing can differentiate (at the top
    level, or under `jax.vmap` only) traces the loop without the derivative rule, and
    a `jax.grad`/`jax.jvp` called at the top level differentiates outside the
    compiled loop, whose forward program is then that of an undifferentiated call.

    **Arguments:**

    - `problem`: the problem, e.g. `sciopt.nlp.EqualityConstrainedProblem`.
    - `solver`: the solver, e.g. `sciopt.nlp.AdaSketchNewton()`.
    - `y0`: the starting point. `None` uses the problem's default (if it has one).
    - `args`: parameters passed to the problem's callables as `fn(y, args)`. Python
        floats become arrays (a new value does not recompile); floating arrays in
        `y0` and `args` are cast to the problem's dtype (see below). Python ints and
        bools stay static: they may set shapes.
    - `options`: per-call options read by the solver (see each solver).
    - `max_steps`: the largest number of solver steps. `None` (the default) uses the
        solver's own budget, `solver.default_max_steps()`.
    - `throw`: if `True`, a failed solve raises an error with the result's message; if
      `False`, check `sol.result` instead.
    - `progress`: `None`, `True`/`"tqdm"`, `"text"` or a progress meter.
    - `adjoint`: how to differentiate through the solve.
    - `saveat`: a `sciopt.SaveAt` to record iterates (or any function of them) every
        few steps into `sol.history`; `None` records nothing.

    **Dtypes.** The working dtype is the widest dtype of the problem's own floating
    arrays, else that of the floating arrays in `args`, else that of `y0`; floating
    leaves of the problem, `y0` and `args` are cast to it, so a float32 start on a
    float64 problem (or a float64 warm start on a float32 one) solves in the
    problem's precision.

    **Returns:**

    A `sciopt.Solution` with `value`, `result`, `stats` (always `num_steps`,
    `max_steps`), `state` and `aux`.
    """
    if not isinstance(problem, AbstractProblem):
        raise TypeError(
            f"`problem` must be a sciopt problem, got {type(problem).__name__}."
        )
    if not isinstance(solver, AbstractSolver):
        raise TypeError(
            f"`solver` must be a sciopt solver, got {type(solver).__name__}."
        )
    if max_steps is None:
        max_steps = solver.default_max_steps()
    if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
        raise ValueError(f"`max_steps` must be a positive int, got {max_steps!r}.")
    args = jax.tree.map(_scalar_to_array, args)
    if y0 is None:
        y0 = problem.default_y0(args)
    y0 = jax.tree.map(jnp.asarray, y0)
    problem, y0, args = _cast_to_problem_dtype(problem, y0, args)
    check_finite_input("y0", y0)
    check_finite_input("args", args)
    problem.check(y0, args)
    options = {} if options is None else options
    meter = progress_meter(progress)
    if saveat is not None and not isinstance(saveat, SaveAt):
        raise TypeError(f"`saveat` must be a sciopt.SaveAt, got {type(saveat)}.")
    # Callables compare by their code: a re-declared problem reuses the compiled loop.
    problem, solver = wrap_functions((problem, solver))
    implicit = isinstance(adjoint, (ImplicitAdjoint, optx.ImplicitAdjoint))
    if implicit and top_level():
        # nothing can differentiate a solve called outside JAX's transformations
        # (or under vmap only): its loop is traced without the custom derivative
        adjoint = _PrimalOnly()
    if (
        implicit
        and differentiated_at_top_level()
        and not _holds_tracers((problem, solver, options, meter, saveat))
    ):
        # a top-level grad / jvp: the forward solve is the undifferentiated program
        inputs = (problem, solver, y0, args, options)
        sol = _solve_differentiated(
            inputs, (max_steps, meter, saveat), adjoint.linear_solver
        )
    else:
        sol = _solve_jit(
            problem, solver, y0, args, options, max_steps, adjoint, meter, saveat
        )
    if throw:
        # Attached to the value only: states may hold PRNG keys, which host
        # callbacks (the traced check) reject.
        value = raise_if_failed(sol.value, sol.result, RESULTS)
        sol = eqx.tree_at(lambda s: s.value, sol, value)
    return sol
