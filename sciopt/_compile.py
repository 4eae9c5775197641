"""sciopt's own `jit`: the programs sciopt compiles take XLA compiler options chosen
for a short first call on the CPU."""

import functools
from collections.abc import Callable, Mapping
from typing import Any

import equinox as eqx
import jax


def _top_level() -> bool:
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


# XLA:CPU emits its fusions through the MLIR "fusion emitters" by default; its
# classic LLVM IR emitters compile sciopt's solver loops about twice as fast, at the
# same run time on the benchmarks of docs/benchmarks/latency.md.
DEFAULT_CPU_COMPILER_OPTIONS: Mapping[str, Any] = {
    "xla_cpu_use_fusion_emitters": False,
}
_cpu_options: dict[str, Any] = dict(DEFAULT_CPU_COMPILER_OPTIONS)


def set_cpu_compiler_options(
    options: Mapping[str, Any] | None = DEFAULT_CPU_COMPILER_OPTIONS,
) -> None:
    """Set the XLA compiler options of the programs sciopt compiles for the CPU
    (`sciopt.solve`'s loop, `sciopt.fit`'s training chunk, the hard-constraint
    layers' solve, ...).

    By default sciopt turns XLA:CPU's MLIR fusion emitters off
    (`{"xla_cpu_use_fusion_emitters": False}`): its classic emitters compile a solver's
    loop about twice as fast, at the same run time on the latency and gallery
    benchmarks. Other backends (GPU, TPU) compile with XLA's defaults.

    **Arguments:**

    - `options`: XLA debug options by name (those of `XLA_FLAGS`, without the leading
        `--`); `None` or `{}` compiles with XLA's defaults; no argument restores
        sciopt's default. Programs compiled before the call keep their options; later
        calls compile with the new ones (the persistent cache keys on them).

    Programs that sciopt traces inside a caller's `jax.jit` are compiled as part of
    the caller's program, with the caller's options.
    """
    global _cpu_options
    _cpu_options = {} if options is None else dict(options)


def cpu_compiler_options() -> dict[str, Any]:
    """The XLA compiler options sciopt compiles its CPU programs with (see
    `set_cpu_compiler_options`)."""
    return dict(_cpu_options)


def jit(fn: Callable) -> Callable:
    """`equinox.filter_jit(fn)`, compiled with `cpu_compiler_options()` when it is
    called outside JAX's transformations (or under `jax.vmap` only) and JAX's default
    backend is the CPU; under `jax.jit` or `jax.grad` the caller's program decides."""
    plain = eqx.filter_jit(fn)
    variants: dict[tuple, Callable] = {}

    @functools.wraps(fn)
    def call(*args, **kwargs):
        if not (_cpu_options and _top_level() and jax.default_backend() == "cpu"):
            return plain(*args, **kwargs)
        key = tuple(sorted(_cpu_options.items()))
        compiled = variants.get(key)
        if compiled is None:
            # one wrapper per option set: equinox caches its traces per wrapper
            compiled = variants[key] = eqx.filter_jit(fn, compiler_options=dict(key))
        return compiled(*args, **kwargs)

    return call
