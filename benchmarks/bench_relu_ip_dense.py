"""Benchmark: the per-step cost of `sciopt.relu.InteriorPoint` against n, with Newton's
system reduced to side P d (`linear_solver="dense"`) or solved through the n x n
Woodbury core (`"woodbury"`).

For each n, a planted squared-loss instance (`bench_relu.instance`, beta = 1e-2) is
built; the jitted `init` runs once, one warm-up `step` compiles, and the mean of
`--steps` further jitted steps is the time per step. Peak memory is XLA's own
accounting of the compiled step (arguments + outputs + temporaries, less aliased
buffers), not the process RSS. The log-log slope of the per-step time against n is a
least-squares fit over the sizes run. `--solve` adds a full solve per size (stopped by
the certified gap, default `rtol`), with compile and run time apart. `--single` runs
one solve only (a user's first call: compile included), stopped at `--rtol`, and
reports its wall time, the time of a separate call of `init` before it (the
phase-one search and, for the squared loss, the loss's Hessian; compile included)
and the process's peak resident memory.

    python benchmarks/bench_relu_ip_dense.py --sizes 2000,4000,8000 --methods \\
        dense,woodbury
    python benchmarks/bench_relu_ip_dense.py --sizes 10000,30000,100000 --solve
    python benchmarks/bench_relu_ip_dense.py --sizes 10000 --d 50 --P 200 --single \
        --rtol 1e-4
    python benchmarks/bench_relu_ip_dense.py --sizes 100000 --d 50 --P 100 --single \
        --rtol 1e-3
"""

import argparse
import math
import pathlib
import resource
import sys
import time

import jax
import numpy as np


jax.config.update("jax_enable_x64", True)

import equinox as eqx  # noqa: E402
import sciopt  # noqa: E402
import sciopt.relu as sr  # noqa: E402


sys.path.insert(0, str(pathlib.Path(__file__).parent))
from bench_relu import instance, make_problem  # noqa: E402


def _bytes(compiled):
    m = compiled.memory_analysis()
    if m is None:
        return float("nan")
    total = m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes
    return total - m.alias_size_in_bytes


def per_step(problem, method, steps):
    """(seconds per step, compile seconds of the step, peak bytes of the step)."""
    solver = sr.InteriorPoint(rtol=1e-14, linear_solver=method)
    state = eqx.filter_jit(lambda p: solver.init(p, None, None, {}))(problem)

    def one(p, s):
        return solver.step(p, None, None, {}, s)[1]

    start = time.perf_counter()
    compiled = jax.jit(one).lower(problem, state).compile()
    compile_time = time.perf_counter() - start
    state = jax.block_until_ready(compiled(problem, state))  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        state = compiled(problem, state)
    jax.block_until_ready(state)
    return (time.perf_counter() - start) / steps, compile_time, _bytes(compiled)


def full_solve(problem, method):
    solver = sr.InteriorPoint(linear_solver=method)
    times = []
    for _ in range(2):
        start = time.perf_counter()
        sol = sciopt.solve(problem, solver, max_steps=500, throw=False)
        jax.block_until_ready(sol.value)
        times.append(time.perf_counter() - start)
    return sol, times[1], max(times[0] - times[1], 0.0)


def single_solve(problem, method, rtol):
    """One solve, compile included: (solution, wall s, init s, peak RSS MiB)."""
    solver = sr.InteriorPoint(rtol=rtol, linear_solver=method)
    start = time.perf_counter()
    jax.block_until_ready(
        eqx.filter_jit(lambda p: solver.init(p, None, None, {}))(problem)
    )
    init = time.perf_counter() - start
    start = time.perf_counter()
    sol = sciopt.solve(problem, solver, max_steps=500, throw=False)
    jax.block_until_ready(sol.value)
    wall = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return sol, wall, init, peak


def slope(ns, ts):
    x, y = np.log(np.asarray(ns, float)), np.log(np.asarray(ts, float))
    return float(np.polyfit(x, y, 1)[0])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="2000,4000,8000")
    parser.add_argument("--d", type=int, default=10)
    parser.add_argument("--P", type=int, default=20)
    parser.add_argument("--methods", default="dense")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--solve", action="store_true", help="add a full solve")
    parser.add_argument("--single", action="store_true", help="one solve only")
    parser.add_argument("--rtol", type=float, default=None, help="for --single")
    args = parser.parse_args()
    ns = [int(s) for s in args.sizes.split(",") if s]
    methods = [m for m in args.methods.split(",") if m]
    device = jax.devices()[0]
    print(f"jax {jax.__version__}, device {device.platform} ({device.device_kind})")
    if args.single:
        print(
            f"InteriorPoint, one solve (compile included), d = {args.d}, P = "
            f"{args.P} sampled, float64, rtol = {args.rtol}"
        )
        print(
            "| n | Newton solve | steps | wall s | init alone s "
            "| certified rel. gap | result | peak RSS MiB |"
        )
        print("|---|---|---|---|---|---|---|---|", flush=True)
        for n in ns:
            X, y, patterns, _ = instance(n, args.d, args.P)
            problem = make_problem(X, y, patterns)
            for method in methods:
                sol, wall, init, peak = single_solve(problem, method, args.rtol)
                gap = float(sol.stats["duality_gap"]) / abs(
                    float(sol.stats["objective"])
                )
                ok = sol.result == sciopt.RESULTS.successful
                print(
                    f"| {n} | {method} | {int(sol.stats['num_steps'])} | "
                    f"{wall:.1f} | {init:.1f} | {gap:.1e} | "
                    f"{'certified' if ok else 'not certified'} | {peak:.0f} |",
                    flush=True,
                )
        return
    print(f"InteriorPoint per step, d = {args.d}, P = {args.P} sampled, float64")
    print(
        "| n | Newton solve | s per step | step compile s | step peak MiB "
        "| solve: steps | run s | compile s | certified rel. gap | result |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|", flush=True)
    times = {m: [] for m in methods}
    for n in ns:
        X, y, patterns, _ = instance(n, args.d, args.P)
        problem = make_problem(X, y, patterns)
        for method in methods:
            t, c, peak = per_step(problem, method, args.steps)
            times[method].append(t)
            cells = ["-"] * 5
            if args.solve:
                sol, run, comp = full_solve(problem, method)
                gap = float(sol.stats["duality_gap"]) / abs(
                    float(sol.stats["objective"])
                )
                ok = sol.result == sciopt.RESULTS.successful
                cells = [
                    str(int(sol.stats["num_steps"])),
                    f"{run:.2f}",
                    f"{comp:.2f}",
                    f"{gap:.1e}",
                    "certified" if ok else "stalled",
                ]
            print(
                f"| {n} | {method} | {t:.4f} | {c:.2f} | {peak / 2**20:.0f} | "
                + " | ".join(cells)
                + " |",
                flush=True,
            )
    for method in methods:
        if len(ns) >= 2 and all(math.isfinite(t) for t in times[method]):
            print(
                f"log-log slope of s per step vs n ({method}): "
                f"{slope(ns, times[method]):.2f}"
            )


if __name__ == "__main__":
    main()
