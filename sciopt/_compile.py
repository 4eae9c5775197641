"""sciopt's own `jit`: the programs sciopt compiles take XLA compiler options chosen
for a short first call on the CPU."""

import functools
from collections.abc import Callable, Mapping
from typing import Any

import equinox as eqx
import jax
import numpy as np


def top_level() -> bool:
    """Whether a jit called now compiles a program of its own: no JAX transformation
    is active, or only `jax.vmap` (whose batched jit runs at the top level). JAX
    rejects compiler options on a jit traced into another program."""
    try:
        from jax._src import core
        from jax._src.interpreters.batching import BatchTrace
    except ImportError:  # pragma: no cover - another JAX: its default options
        return False
    trace = core.trace_ctx.trace
    while isinstance(trace, BatchTrace):
        trace = trace.parent_trace
    return isinstance(trace, core.EvalTrace)


def differentiated_at_top_level() -> bool:
    """Whether the only JAX transformation active is a `jax.grad` / `jax.jvp` (or
    `jax.linearize`) called at the top level: its primal values are concrete."""
    try:
        from jax._src import core
        from jax._src.interpreters import ad
    except ImportError:  # pragma: no cover - another JAX
        return False
    trace = core.trace_ctx.trace
    return isinstance(trace, (ad.JVPTrace, ad.LinearizeTrace)) and isinstance(
        trace.parent_trace, core.EvalTrace
    )


def at_top_level(fn: Callable, *args, **kwargs):
    """`fn(*args, **kwargs)` evaluated at the top level (outside the transformations
    that are active): for concrete arguments only."""
    from jax._src import core, source_info_util

    # the name stack too: the transformation's names would enter the program's
    # metadata, and a program that differs in them is compiled again
    with core.set_current_trace(core.eval_trace), source_info_util.reset_name_stack():
        return fn(*args, **kwargs)


# XLA:CPU emits its fusions through MLIR "fusion emitters" by default; its classic LLVM
# IR emitters compile a solver's loop faster but run large elementwise loops slower
# (docs/benchmarks/latency.md): sciopt uses them for small programs only, where
# compilation is most of the wait.
DEFAULT_CPU_COMPILER_OPTIONS: Mapping[str, Any] = {
    "xla_cpu_use_fusion_emitters": False,
}
DEFAULT_MAX_NUMBERS = 2**18
_cpu_options: dict[str, Any] = dict(DEFAULT_CPU_COMPILER_OPTIONS)
_max_numbers = DEFAULT_MAX_NUMBERS


def set_cpu_compiler_options(
    options: Mapping[str, Any] | None = DEFAULT_CPU_COMPILER_OPTIONS,
    *,
    max_numbers: int = DEFAULT_MAX_NUMBERS,
) -> None:
    """Set the XLA compiler options of the small programs sciopt compiles for the CPU
    (`sciopt.solve`'s loop, the hard-constraint layers' solve).

    A first call's wait on a small problem is mostly XLA compiling the solver's loop.
    By default sciopt compiles a program whose array arguments hold at most
    `max_numbers` numbers in all with XLA:CPU's classic emitters instead of its MLIR
    fusion emitters (`{"xla_cpu_use_fusion_emitters": False}`), which compile such a
    loop faster; larger programs, where the fusion emitters' faster elementwise code
    pays (measured on the latency benchmark page), and other backends (GPU, TPU)
    compile with XLA's defaults. The training loops of `sciopt.fit` always do.

    **Arguments:**

    - `options`: XLA debug options by name (those of `XLA_FLAGS`, without the leading
        `--`); `None` or `{}` compiles every program with XLA's defaults; no argument
        restores sciopt's default.
    - `max_numbers`: the largest total size of a program's array arguments (the
        problem's data, the start, `args`) that the options apply to.

    Programs compiled before the call keep their options; later calls compile with
    the new ones (the persistent compilation cache keys on them). A program that
    sciopt traces inside a caller's `jax.jit` is compiled as part of the caller's,
    with the caller's options; under `jax.vmap` alone, and for the forward solve of
    a top-level `jax.grad`, sciopt's apply.
    """
    global _cpu_options, _max_numbers
    if isinstance(max_numbers, bool) or not isinstance(max_numbers, int):
        raise TypeError(f"`max_numbers` must be an int, got {max_numbers!r}.")
    _cpu_options = {} if options is None else dict(options)
    _max_numbers = max_numbers


def cpu_compiler_options() -> dict[str, Any]:
    """The XLA compiler options sciopt compiles its small CPU programs with (see
    `set_cpu_compiler_options`)."""
    return dict(_cpu_options)


def _numbers(tree) -> int:
    # the arrays that `equinox.filter_jit` traces (NumPy's included)
    leaves = jax.tree.leaves(tree)
    return sum(int(x.size) for x in leaves if isinstance(x, (jax.Array, np.ndarray)))


def jit(fn: Callable) -> Callable:
    """`equinox.filter_jit(fn)`, compiled with `cpu_compiler_options()` when JAX's
    default backend is the CPU, the call's array arguments hold at most `max_numbers`
    numbers, and it is called outside JAX's transformations (or under `jax.vmap`
    only): under `jax.jit` or `jax.grad` the caller's program decides."""
    plain = eqx.filter_jit(fn)
    variants: dict[tuple, Callable] = {}

    @functools.wraps(fn)
    def call(*args, **kwargs):
        if not (
            _cpu_options
            and top_level()
            and jax.default_backend() == "cpu"
            and _numbers((args, kwargs)) <= _max_numbers
        ):
            return plain(*args, **kwargs)
        key = tuple(sorted(_cpu_options.items()))
        compiled = variants.get(key)
        if compiled is None:
            # one wrapper per option set: equinox caches its traces per wrapper
            compiled = variants[key] = eqx.filter_jit(fn, compiler_options=dict(key))
        return compiled(*args, **kwargs)

    return call
