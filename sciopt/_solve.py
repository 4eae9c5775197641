"""`sciopt.solve`: the one driver loop of every sciopt solver."""

from typing import Any

import equinox as eqx
import equinox.internal as eqxi
import jax
import jax.numpy as jnp
import optimistix as optx

from ._custom_types import Args, Y
from ._misc import check_finite_input, tree_all_finite
from ._progress import AbstractProgressMeter, progress_meter
from ._solution import RESULTS, Solution
from ._solver import AbstractProblem, AbstractSolver


def _iterate(inputs):
    (problem, solver, y0, args, options, max_steps, meter, while_loop) = inputs
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
    carry0 = (y0, jnp.array(0), dynamic_state0, aux0, done0, result0, meter_state0)

    def cond_fun(carry):
        _, _, _, _, done, result, _ = carry
        return jnp.invert(done) & (result == RESULTS.successful)

    def body_fun(carry):
        y, num_steps, dynamic_state, _, _, _, meter_state = carry
        state = eqx.combine(static_state, dynamic_state)
        new_y, new_state, aux = solver.step(problem, y, args, options, state)
        done, result = terminate_and_result(new_y, new_state)
        new_dynamic_state, new_static_state = eqx.partition(new_state, eqx.is_array)
        assert eqx.tree_equal(static_state, new_static_state) is True
        num_steps = num_steps + 1
        fraction = jax.lax.stop_gradient(num_steps / max_steps)
        meter_state = meter.step(meter_state, fraction)
        return (new_y, num_steps, new_dynamic_state, aux, done, result, meter_state)

    carry = while_loop(cond_fun, body_fun, carry0, max_steps=max_steps)
    y, num_steps, dynamic_state, aux, done, result, meter_state = carry
    meter.close(meter_state)
    state = eqx.combine(static_state, dynamic_state)
    result = RESULTS.where(
        (result == RESULTS.successful) & jnp.invert(done),
        RESULTS.steps_exhausted,
        result,
    )
    y, aux, stats = solver.postprocess(problem, y, aux, args, options, state, result)
    return y, (num_steps, result, dynamic_state, eqxi.Static(static_state), aux, stats)


def _rewrite(root, _, inputs):
    problem, solver, _, args, options, *_ = inputs
    return solver.optimality(problem, root, args, options)


@eqx.filter_jit
def _solve_jit(problem, solver, y0, args, options, max_steps, adjoint, meter):
    inputs = (problem, solver, y0, args, options, max_steps, meter)
    if isinstance(adjoint, optx.ImplicitAdjoint):
        # optimistix's implicit adjoint appends the while-loop to `inputs`.
        out = adjoint.apply(_iterate, _rewrite, inputs, frozenset())
    elif isinstance(adjoint, optx.RecursiveCheckpointAdjoint):
        out = adjoint.apply(_iterate, _rewrite, inputs, frozenset())
    else:
        raise TypeError(
            "`adjoint` must be optimistix.ImplicitAdjoint or "
            f"optimistix.RecursiveCheckpointAdjoint, got {type(adjoint).__name__}."
        )
    y, (num_steps, result, dynamic_state, static_state, aux, stats) = out
    state = eqx.combine(static_state.value, dynamic_state)
    stats = {"num_steps": num_steps, "max_steps": max_steps, **stats}
    return Solution(value=y, result=result, stats=stats, state=state, aux=aux)


def solve(
    problem: AbstractProblem,
    solver: AbstractSolver,
    y0: Y | None = None,
    args: Args = None,
    options: dict[str, Any] | None = None,
    *,
    max_steps: int = 256,
    throw: bool = True,
    progress: None | bool | str | AbstractProgressMeter = None,
    adjoint: optx.AbstractAdjoint = optx.ImplicitAdjoint(),
) -> Solution:
    """Solve `problem` with `solver`, starting from `y0`.

    The loop is jit-compiled and may itself be called under `jax.jit`, `jax.vmap` and
    `jax.grad`. Gradients of the solution with respect to `args` (and any arrays in
    `problem`) flow by implicit differentiation of the solver's optimality condition
    (`adjoint=optimistix.ImplicitAdjoint()`, the default) or through the iterates
    (`optimistix.RecursiveCheckpointAdjoint()`).

    **Arguments:**

    - `problem`: the problem, e.g. `sciopt.nlp.EqualityConstrainedProblem`.
    - `solver`: the solver, e.g. `sciopt.nlp.AdaSketchNewton()`.
    - `y0`: the starting point. `None` uses the problem's default (if it has one).
    - `args`: parameters passed to the problem's callables as `fn(y, args)`.
    - `options`: per-call options read by the solver (see each solver).
    - `max_steps`: the largest number of solver steps.
    - `throw`: if `True`, a failed solve raises an error with the result's message; if
      `False`, check `sol.result` instead.
    - `progress`: `None`, `True`/`"tqdm"`, `"text"` or a progress meter.
    - `adjoint`: how to differentiate through the solve.

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
    if not isinstance(max_steps, int) or max_steps < 1:
        raise ValueError(f"`max_steps` must be a positive int, got {max_steps!r}.")
    if y0 is None:
        y0 = problem.default_y0(args)
    y0 = jax.tree.map(jnp.asarray, y0)
    check_finite_input("y0", y0)
    check_finite_input("args", args)
    problem.check(y0, args)
    options = {} if options is None else options
    meter = progress_meter(progress)
    sol = _solve_jit(problem, solver, y0, args, options, max_steps, adjoint, meter)
    if throw:
        # Attach the check to the value only: states may hold PRNG keys, which host
        # callbacks reject.
        value = sol.result.error_if(sol.value, sol.result != RESULTS.successful)
        sol = eqx.tree_at(lambda s: s.value, sol, value)
    return sol
