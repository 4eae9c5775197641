"""Per-step cost of relu ADMM, factored u-step against matrix-free Nystrom-PCG.

For each n: a random (n, d, P) squared-loss instance; `ADMM.init` (the factorization
or the Nystrom sketch) is jitted and timed apart from compile, then `warmup` steps
are run (the inexact tolerance schedule tightens with the step number, so early
steps are cheap) and `steps` further jitted steps are timed. Peak memory is XLA's
own accounting of the compiled init and step (arguments + outputs + temporaries),
taken from `compiled.memory_analysis()`, not the process RSS. The log-log slope of
the per-step time against n is a least-squares fit over the sizes run.

    python benchmarks/bench_relu_matrix_free.py --sizes 1000,3000,10000,30000,100000
"""

import argparse
import math
import time

import jax
import numpy as np


def _instance(n, d, P, seed=0):
    import sciopt.relu as sr

    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)) / math.sqrt(d)
    y = rng.standard_normal(n)
    patterns = sr.sample_patterns(jax.random.key(seed), X, 2 * P)[:, :P]
    return sr.ConvexReLUProblem(X, y, patterns, 0.1)


def _bytes(compiled):
    m = compiled.memory_analysis()
    if m is None:
        return float("nan")
    return (
        m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes
    ) - m.alias_size_in_bytes


def run(n, d, P, method, warmup, steps, max_rank):
    import sciopt.relu as sr

    problem = _instance(n, d, P)
    solver = sr.ADMM(linear_solver=method, nystrom_max_rank=max_rank)
    y0 = problem.default_y0(None)
    init = jax.jit(lambda p, y: solver.init(p, y, None, {}))
    step = jax.jit(lambda p, y, s: solver.step(p, y, None, {}, s)[:2])
    t = time.perf_counter()
    init_c = init.lower(problem, y0).compile()
    state = init_c(problem, y0)
    step_c = step.lower(problem, y0, state).compile()
    compile_s = time.perf_counter() - t
    t = time.perf_counter()
    state = jax.block_until_ready(init_c(problem, y0))
    setup_s = time.perf_counter() - t
    y = y0
    for _ in range(warmup):
        y, state = step_c(problem, y, state)
    jax.block_until_ready(state)
    before = int(state.linear_steps)
    t = time.perf_counter()
    for _ in range(steps):
        y, state = step_c(problem, y, state)
    jax.block_until_ready(state)
    per_step = (time.perf_counter() - t) / steps
    cg = (int(state.linear_steps) - before) / steps
    rank = int(state.factors["rank"]) if "rank" in state.factors else 0
    peak = max(_bytes(init_c), _bytes(step_c))
    return dict(
        n=n,
        method=method,
        compile_s=compile_s,
        setup_s=setup_s,
        step_ms=1e3 * per_step,
        cg=cg,
        rank=rank,
        peak_mb=peak / 2**20,
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1000,3000,10000,30000,100000")
    parser.add_argument("--d", type=int, default=20)
    parser.add_argument("--P", type=int, default=50)
    parser.add_argument("--methods", default="dense,nystrom")
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--max-rank", type=int, default=64)
    parser.add_argument("--float32", action="store_true")
    args = parser.parse_args()
    if not args.float32:
        jax.config.update("jax_enable_x64", True)
    sizes = [int(s) for s in args.sizes.split(",")]
    methods = args.methods.split(",")
    print(
        f"# device {jax.devices()[0].device_kind}, d={args.d}, P={args.P}, "
        f"{'float32' if args.float32 else 'float64'}"
    )
    print(
        "| n | u-step | compile s | setup s | per step ms | CG its/step | rank "
        "| peak MiB |"
    )
    print("|---|---|---|---|---|---|---|---|")
    rows = {m: [] for m in methods}
    for n in sizes:
        for m in methods:
            r = run(n, args.d, args.P, m, args.warmup, args.steps, args.max_rank)
            rows[m].append(r)
            print(
                f"| {n} | {m} | {r['compile_s']:.1f} | {r['setup_s']:.2f} | "
                f"{r['step_ms']:.2f} | {r['cg']:.1f} | {r['rank'] or '-'} | "
                f"{r['peak_mb']:.0f} |",
                flush=True,
            )
    for m in methods:
        if len(rows[m]) >= 2:
            ln = np.log([r["n"] for r in rows[m]])
            lt = np.log([r["step_ms"] for r in rows[m]])
            slope = np.polyfit(ln, lt, 1)[0]
            print(f"# {m}: log-log slope of per-step time against n = {slope:.2f}")


if __name__ == "__main__":
    main()
