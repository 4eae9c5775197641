"""`SaveAt`: what `sciopt.solve` records while it iterates."""

from collections.abc import Callable
from typing import Any

import equinox as eqx
from jaxtyping import PyTree


def _save_iterate(y, state, aux):
    del state, aux
    return y


class SaveAt(eqx.Module):
    """Which iterates `sciopt.solve` records, and what it keeps of each.

    The history is kept by the driver loop, not by the solvers: any solver can be traced
    the same way (the model is diffrax's `SaveAt`). Pass it as
    `sciopt.solve(..., saveat=SaveAt(every=10))`; the record is `sol.history`, a pytree
    whose leaves have a leading axis of length `max_steps // every + 1`: entry 0 is the
    start, entry `k` the point after step `k * every`. Entries past the last step taken
    are NaN (or -1 for integer leaves); `sol.stats["num_steps"] // every + 1` entries
    are filled.

    **Arguments:**

    - `every`: record every `every` steps.
    - `fn`: `fn(y, state, aux) -> PyTree`, what to keep of an iterate: the iterate
        itself by default; any function of the solver's iterate, state and auxiliary
        output (for example `lambda y, state, aux: problem.objective(y)`) to keep a
        scalar per step instead of the whole point.

    The history costs `(max_steps // every + 1)` times the size of `fn`'s output in
    memory: with large step budgets, record a scalar or raise `every`.
    """

    every: int = eqx.field(static=True, default=1)
    fn: Callable[[Any, Any, Any], PyTree] = eqx.field(
        static=True, default=_save_iterate
    )

    def __check_init__(self):
        if isinstance(self.every, bool) or not isinstance(self.every, int):
            raise TypeError(f"`every` must be an int, got {self.every!r}.")
        if self.every < 1:
            raise ValueError(f"`every` must be >= 1, got {self.every}.")
