"""A CRONOS-shaped convex ReLU instance: matrix-free ADMM, its certified gap and the
time per iteration.

CRONOS (Feng, Frangella and Pilanci, NeurIPS 2024) trains the convex two-layer ReLU
program on wide inputs (d in the thousands) by ADMM with Nystrom-preconditioned CG.
This runs sciopt's `ADMM(linear_solver="nystrom")` on a synthetic instance of that
shape (default (n, d, P) = (10000, 3072, 10), squared loss, float64) for a fixed
number of steps and reports: the compile time (ahead-of-time, apart), the run time
and time per step, the objective, the certified lower bound and the relative duality
gap after those steps (the certificate of `ADMM` is a valid bound at any iterate),
and XLA's peak memory of the compiled solve.

    python benchmarks/bench_relu_cronos.py                       # (10000, 3072, 10)
    python benchmarks/bench_relu_cronos.py --n 2000 --d 512 --steps 200
"""

import argparse
import math
import time

import equinox as eqx
import jax
import numpy as np


jax.config.update("jax_enable_x64", True)

import sciopt  # noqa: E402
import sciopt.relu as sr  # noqa: E402


def _instance(n, d, P, beta, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)) / math.sqrt(d)
    w = rng.standard_normal((d, 4))
    y = np.maximum(X @ w, 0).sum(1) + 0.1 * rng.standard_normal(n)
    patterns = sr.sample_patterns(jax.random.key(seed), X, P)
    return sr.ConvexReLUProblem(X, y, patterns, beta)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--d", type=int, default=3072)
    parser.add_argument("--P", type=int, default=10)
    parser.add_argument("--beta", type=float, default=1e-3)
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args()
    start = time.perf_counter()
    problem = _instance(args.n, args.d, args.P, args.beta)
    jax.block_until_ready(problem.X)
    setup = time.perf_counter() - start
    # gap_rtol=0: run exactly `steps` steps (the stopping test never passes)
    solver = sr.ADMM(linear_solver="nystrom", rtol=0.0, atol=0.0, gap_check_every=10)

    @eqx.filter_jit
    def run(problem):
        return sciopt.solve(problem, solver, max_steps=args.steps, throw=False)

    start = time.perf_counter()
    compiled = run.lower(problem).compile()
    compile_time = time.perf_counter() - start
    start = time.perf_counter()
    sol = compiled(problem)
    jax.block_until_ready(sol.value)
    run_time = time.perf_counter() - start
    steps = int(sol.stats["num_steps"])
    objective = float(sol.stats["objective"])
    bound = float(sol.stats["lower_bound"])
    memory = compiled.compiled.memory_analysis()
    peak = (
        float("nan")
        if memory is None
        else (
            memory.argument_size_in_bytes
            + memory.output_size_in_bytes
            + memory.temp_size_in_bytes
            - memory.alias_size_in_bytes
        )
        / 2**30
    )
    print(
        "| (n, d, P) | steps | compile (s) | run (s) | per step (s) | objective "
        "| certified lower bound | relative gap | XLA peak (GiB) | result |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    print(
        f"| ({args.n}, {args.d}, {args.P}) | {steps} | {compile_time:.1f} | "
        f"{run_time:.1f} | {run_time / max(steps, 1):.3f} | {objective:.6g} | "
        f"{bound:.6g} | {(objective - bound) / abs(objective):.2e} | {peak:.2f} | "
        f"{sciopt.RESULTS[sol.result].split('.')[0]} |"
    )
    print(f"(instance setup {setup:.1f} s; beta = {args.beta})")


if __name__ == "__main__":
    main()
