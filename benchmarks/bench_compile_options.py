"""Benchmark: sciopt's CPU compiler options against XLA's defaults, in one process.

sciopt compiles its small programs on the CPU with `sciopt.cpu_compiler_options()`
(XLA:CPU's classic emitters, `xla_cpu_use_fusion_emitters=False`), larger ones with
XLA's defaults. For each workload and each setting (XLA's defaults everywhere,
sciopt's default, the classic emitters everywhere), the first call is timed (compile
and run), then `--repeats` more calls with the program compiled (the median is the run
time); compile time is the first call less the run time. The persistent compilation
cache is off. Ratios are XLA defaults / the setting (above 1: the setting is faster).

    python benchmarks/bench_compile_options.py
    python benchmarks/bench_compile_options.py --workloads readme,relu_ip_mid
"""

import argparse
import math
import os
import pathlib
import platform
import statistics
import sys
import time

import jax


jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import jax.random as jr  # noqa: E402
import sciopt  # noqa: E402
import sciopt.relu as sr  # noqa: E402


sys.path.insert(0, str(pathlib.Path(__file__).parent))
from bench_relu import instance, make_problem  # noqa: E402


def readme():
    problem = sciopt.nlp.EqualityConstrainedProblem(
        objective=lambda x, r: x[0] + x[1],
        constraints=lambda x, r: jnp.array([x[0] ** 2 + x[1] ** 2 - r**2]),
    )
    solver = sciopt.nlp.AdaSketchNewton()
    return lambda: sciopt.solve(problem, solver, jnp.array([-1.0, -0.5]), args=1.0)


def _relu(n, d, P, solver, max_steps=None):
    X, y, patterns, _ = instance(n, d, P)
    problem = make_problem(X, y, patterns)
    return lambda: sciopt.solve(problem, solver, max_steps=max_steps, throw=False)


def pinn():
    from sciopt import pde as sp

    dom = sp.Domain((0.0, 2 * math.pi), (0.0, 1.0), periodic=True)
    equation = sp.PDE("u_t + c*u_x", dom, "sin(x)", parameters={"c": 10.0})
    model = sp.PINN(dom, key=jr.key(0), width=50, depth=4)
    loss = sp.PINNLoss(equation, num_interior=1024, num_initial=128)
    return lambda: sciopt.fit(model, loss, key=jr.key(1), steps=500).model


WORKLOADS = {
    "readme": ("README quick start (AdaSketchNewton, 2 variables)", readme),
    "relu_ip_small": (
        "relu InteriorPoint (300, 10, 50)",
        lambda: _relu(300, 10, 50, sr.InteriorPoint()),
    ),
    "relu_ip_mid": (
        "relu InteriorPoint (2000, 20, 100), rtol 1e-4",
        lambda: _relu(2000, 20, 100, sr.InteriorPoint(rtol=1e-4)),
    ),
    "relu_admm_small": (
        "relu ADMM (300, 10, 50), 5000 steps",
        lambda: _relu(300, 10, 50, sr.ADMM(), max_steps=5000),
    ),
    "relu_admm_mid": (
        "relu ADMM (2000, 20, 100), 2000 steps",
        lambda: _relu(2000, 20, 100, sr.ADMM(), max_steps=2000),
    ),
    "pinn": ("PINN fit (width 50, depth 4, 1024 points), 500 Adam steps", pinn),
}


SETTINGS = {
    "XLA defaults": lambda: sciopt.set_cpu_compiler_options(None),
    "sciopt (small programs only)": lambda: sciopt.set_cpu_compiler_options(),
    "classic emitters everywhere": lambda: sciopt.set_cpu_compiler_options(
        max_numbers=2**62
    ),
}


def measure(make, setting, repeats):
    # every setting compiles everything anew, the solve's eager glue included
    jax.clear_caches()
    SETTINGS[setting]()
    try:
        call = make()
        start = time.perf_counter()
        jax.block_until_ready(call())
        first = time.perf_counter() - start
        runs = []
        for _ in range(repeats):
            start = time.perf_counter()
            jax.block_until_ready(call())
            runs.append(time.perf_counter() - start)
    finally:
        sciopt.set_cpu_compiler_options()
    run = statistics.median(runs)
    return {"first": first, "run": run, "compile": first - run}


def _ratio(a, b):
    # a compile time within the timer's noise of 0 has no meaningful ratio
    return f"{a / b:.2f}" if b > 1e-3 else "-"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--reverse",
        action="store_true",
        help="measure the settings in reverse order (order effects)",
    )
    args = parser.parse_args()
    machine = f"{platform.machine()}, {os.cpu_count()} cores"
    print(f"Machine: {machine}, jax {jax.__version__}")
    print(f"sciopt's options: {sciopt.cpu_compiler_options()}")
    print()
    print(
        "| workload | setting | first call (s) | compile (s) | run (s) "
        "| compile ratio | run ratio |"
    )
    print("|---|---|---|---|---|---|---|")
    settings = list(SETTINGS)[::-1] if args.reverse else list(SETTINGS)
    for name in args.workloads.split(","):
        label, make = WORKLOADS[name]
        results = {s: measure(make, s, args.repeats) for s in settings}
        base = results["XLA defaults"]
        for setting in SETTINGS:
            r = results[setting]
            print(
                f"| {label} | {setting} | {r['first']:.2f} | {r['compile']:.2f} "
                f"| {r['run']:.3f} | {_ratio(base['compile'], r['compile'])} "
                f"| {_ratio(base['run'], r['run'])} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
