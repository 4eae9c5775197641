"""Recording iterates: run a fixed number of solver steps and keep `x` every few steps
(for convergence plots and benchmarks)."""

import time
from typing import Any

import jax
import numpy as np

from .. import AbstractSolver
from ..bilevel import BilevelProblem


def trace(
    problem: BilevelProblem,
    solver: AbstractSolver,
    start: tuple[Any, Any],
    args: Any = None,
    *,
    steps: int,
    every: int = 1,
    options: dict | None = None,
) -> dict[str, Any]:
    """Run `steps` steps of `solver` (no stopping test) and record the iterates.

    **Returns:** a dict with `x` and `y` (the iterates after steps `every, 2 every,
    ...`), `steps` (those step counts), `compile_time` and `run_time` (wall seconds of
    the ahead-of-time compilation and of the run).
    """
    options = {} if options is None else options
    n_records = steps // every

    def run(start, args):
        state = solver.init(problem, start, args, options)

        def inner(carry, _):
            y, state = carry
            y, state, _ = solver.step(problem, y, args, options, state)
            return (y, state), None

        def outer(carry, _):
            carry, _ = jax.lax.scan(inner, carry, None, length=every)
            return carry, carry[0]

        _, ys = jax.lax.scan(outer, (start, state), None, length=n_records)
        return ys

    t0 = time.perf_counter()
    compiled = jax.jit(run).lower(start, args).compile()
    t1 = time.perf_counter()
    ys = jax.block_until_ready(compiled(start, args))
    t2 = time.perf_counter()
    return dict(
        x=np.asarray(ys[0]),
        y=np.asarray(ys[1]),
        steps=every * np.arange(1, n_records + 1),
        compile_time=t1 - t0,
        run_time=t2 - t1,
    )
