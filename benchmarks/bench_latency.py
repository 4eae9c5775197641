"""Latency: how long a user waits for a first result, compilation included.

    python benchmarks/bench_latency.py                 # every case, cold and warm cache
    python benchmarks/bench_latency.py --cases readme_solve,optx_bfgs --repeats 3
    python benchmarks/bench_latency.py --markdown docs/benchmarks/latency.md

Each case runs in a fresh Python process (median of `--repeats`), so that nothing is
compiled beforehand. A case reports the wall time of its first call (after the imports)
and of a second call with new data, and splits the first call's compilation with JAX's
own monitoring events: tracing to a jaxpr, lowering to MLIR, and XLA's backend compile,
with the number of backend compilations.

"cold" runs with sciopt's persistent compilation cache turned off; "warm" runs in a
second process that shares a cache folder a first process filled (what a user sees the
second time they run the same program). `--xla-defaults` compiles sciopt's programs
with XLA's default options instead of `sciopt.cpu_compiler_options()`.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent

_PRELUDE = """
import json, os, sys, time
t_start = time.perf_counter()
import jax, jax.numpy as jnp, numpy as np
jax.config.update("jax_enable_x64", True)
import sciopt
if os.environ.get("LATENCY_CACHE"):
    sciopt.enable_compilation_cache(os.environ["LATENCY_CACHE"])
if os.environ.get("LATENCY_XLA_DEFAULTS"):
    sciopt.set_cpu_compiler_options(None)
events = {"trace": 0.0, "lower": 0.0, "compile": 0.0, "compilations": 0}
def _listener(event, duration, **kwargs):
    if event == "/jax/core/compile/jaxpr_trace_duration":
        events["trace"] += duration
    elif event == "/jax/core/compile/jaxpr_to_mlir_module_duration":
        events["lower"] += duration
    elif event == "/jax/core/compile/backend_compile_duration":
        events["compile"] += duration
        events["compilations"] += 1
jax.monitoring.register_event_duration_secs_listener(_listener)
t_import = time.perf_counter() - t_start
def first_and_second(first, second):
    # Count only what the first call compiles (not the problem's construction).
    events.update(trace=0.0, lower=0.0, compile=0.0, compilations=0)
    t0 = time.perf_counter()
    jax.block_until_ready(first())
    t1 = time.perf_counter()
    snapshot = dict(events)
    jax.block_until_ready(second())
    t2 = time.perf_counter()
    print("LATENCY", json.dumps({"import": t_import, "first": t1 - t0,
        "second": t2 - t1, **snapshot}))
"""

_RELU = """
from sciopt.relu import ADMM, ConvexReLUProblem, cvxpy_solve, InteriorPoint
from sciopt.relu import sample_patterns
def problem(seed, n, d, P):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)); y = np.tanh(X @ rng.standard_normal(d))
    P = sample_patterns(jax.random.key(seed), jnp.asarray(X), P)
    return ConvexReLUProblem(X, y, P, 0.1, "squared")
"""
_SMALL = _RELU + "p1, p2 = problem(0, 20, 3, 8), problem(1, 20, 3, 8)\n"
_HELDOUT = _RELU + "p1, p2 = problem(0, 300, 10, 50), problem(1, 300, 10, 50)\n"

CASES = {
    "optx_bfgs": (
        "optimistix BFGS, 2-D Rosenbrock (reference)",
        """
import optimistix as optx
def rosenbrock(x, a):
    return (a - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2
solver = optx.BFGS(rtol=1e-8, atol=1e-8)
first_and_second(
    lambda: optx.minimise(rosenbrock, solver, jnp.array([-1.2, 1.0]), 1.0).value,
    lambda: optx.minimise(rosenbrock, solver, jnp.array([-1.0, 1.5]), 1.0).value,
)
""",
    ),
    "readme_solve": (
        "README quick start: first `sciopt.solve` (AdaSketchNewton)",
        """
problem = sciopt.nlp.EqualityConstrainedProblem(
    objective=lambda x, r: x[0] + x[1],
    constraints=lambda x, r: jnp.array([x[0] ** 2 + x[1] ** 2 - r**2]),
)
solver = sciopt.nlp.AdaSketchNewton()
first_and_second(
    lambda: sciopt.solve(problem, solver, jnp.array([-1.0, -0.5]), args=1.0).value,
    lambda: sciopt.solve(problem, solver, jnp.array([-1.0, -0.5]), args=2.0).value,
)
""",
    ),
    "readme_block": (
        "the README block as a whole (solve, grad, vmap)",
        """
problem = sciopt.nlp.EqualityConstrainedProblem(
    objective=lambda x, r: x[0] + x[1],
    constraints=lambda x, r: jnp.array([x[0] ** 2 + x[1] ** 2 - r**2]),
)
solver = sciopt.nlp.AdaSketchNewton()
def optimum(r):
    x = sciopt.solve(problem, solver, jnp.array([-1.0, -0.5]), args=r).value
    return x[0] + x[1]
def block(scale):
    sol = sciopt.solve(problem, solver, jnp.array([-1.0, -0.5]), args=scale)
    return (sol.value, jax.grad(optimum)(scale),
            jax.vmap(optimum)(jnp.array([1.0, 2.0]) * scale))
first_and_second(lambda: block(1.0), lambda: block(2.0))
""",
    ),
    "relu_interior_point": (
        "relu InteriorPoint, n = 20",
        _SMALL
        + """first_and_second(lambda: sciopt.solve(p1, InteriorPoint()).value,
                 lambda: sciopt.solve(p2, InteriorPoint()).value)
""",
    ),
    "relu_admm": (
        "relu ADMM, n = 20",
        _SMALL
        + """first_and_second(lambda: sciopt.solve(p1, ADMM()).value,
                 lambda: sciopt.solve(p2, ADMM()).value)
""",
    ),
    "relu_heldout_ip": (
        "convex ReLU (n, d, P) = (300, 10, 50), InteriorPoint",
        _HELDOUT
        + """first_and_second(lambda: sciopt.solve(p1, InteriorPoint()).value,
                 lambda: sciopt.solve(p2, InteriorPoint()).value)
""",
    ),
    "relu_heldout_clarabel": (
        "convex ReLU (300, 10, 50), cvxpy + Clarabel (reference)",
        _HELDOUT
        + """first_and_second(lambda: cvxpy_solve(p1), lambda: cvxpy_solve(p2))
""",
    ),
}


def _run_case(name: str, cache: str | None, xla_defaults: bool = False) -> dict:
    code = _PRELUDE + textwrap.dedent(CASES[name][1])
    env = dict(os.environ)
    env.pop("LATENCY_CACHE", None)
    env.pop("LATENCY_XLA_DEFAULTS", None)
    if xla_defaults:
        env["LATENCY_XLA_DEFAULTS"] = "1"
    env["SCIOPT_CACHE_DIR"] = "off"
    if cache:
        env["LATENCY_CACHE"] = cache
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
        cwd=ROOT,
    )
    for line in out.stdout.splitlines():
        if line.startswith("LATENCY "):
            return json.loads(line[len("LATENCY ") :])
    raise RuntimeError(f"case {name} failed:\n{out.stderr[-3000:]}")


def measure(name: str, repeats: int, warm: bool, xla_defaults: bool = False) -> dict:
    runs = []
    for _ in range(repeats):
        if warm:
            with tempfile.TemporaryDirectory() as cache:
                _run_case(name, cache, xla_defaults)  # fills the cache
                runs.append(_run_case(name, cache, xla_defaults))
        else:
            runs.append(_run_case(name, None, xla_defaults))
    keys = runs[0].keys()
    median = {k: statistics.median(r[k] for r in runs) for k in keys}
    median["runs"] = runs
    return median


def _table(results: dict) -> str:
    lines = [
        "| case | cache | first call (s) | trace (s) | lower (s) | XLA compile (s) "
        "| compilations | second call, new data (s) | import (s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for (name, mode), r in results.items():
        lines.append(
            f"| {CASES[name][0]} | {mode} | {r['first']:.2f} | {r['trace']:.2f} | "
            f"{r['lower']:.2f} | {r['compile']:.2f} | {r['compilations']:.0f} | "
            f"{r['second']:.3f} | {r['import']:.2f} |"
        )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--modes", default="cold,warm")
    parser.add_argument("--json", default=None, help="write the raw runs here")
    parser.add_argument(
        "--xla-defaults",
        action="store_true",
        help="compile sciopt's programs with XLA's default options "
        "(`sciopt.set_cpu_compiler_options(None)`), for a before/after comparison",
    )
    args = parser.parse_args()
    results = {}
    for name in args.cases.split(","):
        for mode in args.modes.split(","):
            results[(name, mode)] = r = measure(
                name, args.repeats, mode == "warm", args.xla_defaults
            )
            print(
                f"{name:24} {mode:5} first {r['first']:.2f}s (trace {r['trace']:.2f}, "
                f"lower {r['lower']:.2f}, compile {r['compile']:.2f}, "
                f"{r['compilations']:.0f} compilations) second {r['second']:.3f}s",
                flush=True,
            )
    print()
    print(f"Machine: {platform.machine()}, {os.cpu_count()} cores, {platform.system()}")
    print(_table(results))
    if args.json:
        Path(args.json).write_text(
            json.dumps({f"{k[0]}/{k[1]}": v for k, v in results.items()}, indent=1)
        )


if __name__ == "__main__":
    main()
