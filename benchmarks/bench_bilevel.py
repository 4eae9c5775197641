"""Benchmark of `sciopt.bilevel`: iterations and wall time to reach a distance to x*.

Runs LV-HBA, BO-REP, the AID baseline (optimistix minimise + ImplicitAdjoint) and a
plain value-function penalty method (fixed penalty, inner gradient steps; written
here with `jax.lax.scan`) side by side on the closed-form gallery problems, and the
data hyper-cleaning problem (accuracy and time). Compile time is reported apart from
run time (ahead-of-time compilation, then one timed run).

    python benchmarks/bench_bilevel.py            # a few minutes
    python benchmarks/bench_bilevel.py --full     # larger hyper-cleaning problem
"""

import argparse
import platform
import time

import jax


jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp
import numpy as np
from sciopt import datasets as lib
from sciopt.bilevel import AID, BOREP, LVHBA
from sciopt.gallery.bilevel import trace


def value_penalty_trace(case, *, penalty, lr, inner_lr, inner_steps, steps, every):
    """Plain value-function penalty: gradient steps on F + c (f(x, y) - f(x, theta))
    with theta from `inner_steps` warm-started gradient steps on f(x, .)."""
    problem = case.problem

    def run(start):
        x, y = start

        def inner(theta, x):
            def body(_, t):
                return t - inner_lr * jax.grad(problem.f, argnums=1)(x, t, None)

            return jax.lax.fori_loop(0, inner_steps, body, theta)

        def step(carry, _):
            x, y, theta = carry
            theta = inner(theta, x)
            gfx, gfy = jax.grad(problem.F, argnums=(0, 1))(x, y, None)
            lfx, lfy = jax.grad(problem.f, argnums=(0, 1))(x, y, None)
            tx = jax.grad(problem.f, argnums=0)(x, theta, None)
            x = problem.upper_set.project(x - lr * (gfx + penalty * (lfx - tx)))
            y = y - lr * (gfy + penalty * lfy)
            return (x, y, theta), None

        def outer(carry, _):
            carry, _ = jax.lax.scan(step, carry, None, length=every)
            return carry, carry[0]

        _, xs = jax.lax.scan(outer, (x, y, y), None, length=steps // every)
        return xs

    t0 = time.perf_counter()
    compiled = jax.jit(run).lower(case.start).compile()
    t1 = time.perf_counter()
    xs = jax.block_until_ready(compiled(case.start))
    t2 = time.perf_counter()
    return dict(
        x=np.asarray(xs),
        steps=every * np.arange(1, steps // every + 1),
        compile_time=t1 - t0,
        run_time=t2 - t1,
    )


def first_hit(tr, x_star, target):
    scale = max(1.0, float(np.linalg.norm(x_star)))
    n = len(tr["steps"])
    dist = np.linalg.norm(tr["x"].reshape(n, -1) - x_star.ravel(), axis=1) / scale
    dist = np.where(np.isfinite(dist), dist, np.inf)
    hit = np.nonzero(dist <= target)[0]
    total = int(tr["steps"][-1])
    if len(hit) == 0:
        return None, None, float(dist[-1])
    k = int(tr["steps"][hit[0]])
    return k, tr["run_time"] * k / total, float(dist[-1])


def closed_form_table(target):
    cases = {
        "toy equality (1), n=10": lib.toy_equality(10),
        "coupled y <= x (2a)": lib.coupled_box(),
        "coupled ||y||^2 <= x (2c)": lib.coupled_ball(),
        "ridge, diabetes (3)": lib.ridge(),
        "cosh, n=4 (5)": lib.cosh_problem(),
        "cosh, n=4, far start (5)": lib.cosh_problem(distance=8.0),
    }
    lip = cases["cosh, n=4 (5)"].extra["local_lipschitz"]
    runs = {
        "toy equality (1), n=10": [
            ("LVHBA", LVHBA(alpha=0.2, beta=0.2, eta=0.2, penalty=16.0), 4000, 10),
        ],
        "coupled y <= x (2a)": [
            ("LVHBA", LVHBA(alpha=0.5, beta=0.5, eta=0.5, penalty=8.0), 2000, 10),
        ],
        "coupled ||y||^2 <= x (2c)": [
            ("LVHBA", LVHBA(alpha=0.5, beta=0.5, eta=0.2, penalty=2.0), 2000, 10),
        ],
        "ridge, diabetes (3)": [
            ("AID (step 100)", AID(learning_rate=100.0), 200, 1),
            (
                "BOREP",
                BOREP(
                    learning_rate=0.05,
                    decay=0.01,
                    lower_learning_rate=0.3,
                    z_learning_rate=0.3,
                ),
                2000,
                10,
            ),
            ("LVHBA", LVHBA(alpha=0.1, beta=0.1, eta=0.1, penalty=2.0), 4000, 10),
            (
                "penalty c=10",
                dict(penalty=10.0, lr=0.02, inner_lr=0.2, inner_steps=5),
                4000,
                10,
            ),
        ],
        "cosh, n=4 (5)": [
            (
                "BOREP",
                BOREP(
                    learning_rate=0.1,
                    decay=0.05,
                    lower_learning_rate=0.5,
                    z_learning_rate=0.5,
                ),
                2000,
                5,
            ),
            ("AID step 1/L*", AID(learning_rate=1 / lip), 300, 1),
            ("AID step 0.3/L*", AID(learning_rate=0.3 / lip), 300, 1),
            ("AID step 0.1/L*", AID(learning_rate=0.1 / lip), 600, 1),
            ("LVHBA", LVHBA(alpha=0.05, beta=0.05, eta=0.05, penalty=2.0), 4000, 10),
            (
                "penalty c=10",
                dict(penalty=10.0, lr=0.005, inner_lr=0.5, inner_steps=5),
                4000,
                10,
            ),
        ],
        "cosh, n=4, far start (5)": [
            (
                "BOREP",
                BOREP(
                    learning_rate=0.1,
                    decay=0.05,
                    lower_learning_rate=0.5,
                    z_learning_rate=0.5,
                ),
                2000,
                5,
            )
        ]
        + [
            (f"AID step {f:g}/L*", AID(learning_rate=f / lip), 2000, 5)
            for f in (1.0, 0.1, 0.01, 0.001)
        ],
    }
    lines = [
        f"| problem | method | iterations to {target:g} | time to {target:g} (ms) "
        "| final distance | compile (s) |",
        "|---|---|---|---|---|---|",
    ]
    for name, case in cases.items():
        for label, solver, steps, every in runs[name]:
            if isinstance(solver, dict):
                tr = value_penalty_trace(case, steps=steps, every=every, **solver)
            else:
                tr = trace(
                    case.problem,
                    solver,
                    case.start,
                    case.args,
                    steps=steps,
                    every=every,
                )
            k, t, final = first_hit(tr, np.asarray(case.x_star), target)
            hit = "not reached" if k is None else str(k)
            tt = "-" if t is None else f"{1e3 * t:.2f}"
            lines.append(
                f"| {name} | {label} | {hit} (of {steps}) | {tt} | {final:.1e} | "
                f"{tr['compile_time']:.1f} |"
            )
            print(lines[-1], flush=True)
    for name in (
        "toy equality (1), n=10",
        "coupled y <= x (2a)",
        "coupled ||y||^2 <= x (2c)",
    ):
        lines.append(
            f"| {name} | AID, BOREP, penalty | not applicable (coupled "
            "lower-level constraints) | | | |"
        )
    return "\n".join(lines)


def hyperclean_table(full):
    params = dict(n_train=1000, n_val=300) if full else dict(n_train=500, n_val=200)
    case = lib.hyperclean(**params)
    data = case.extra["data"]
    z_te, t_te = data["z_te"], data["t_te"]
    runs = [
        (
            "BOREP",
            BOREP(learning_rate=1.0, lower_learning_rate=1.0, z_learning_rate=1.0),
            300,
        ),
        ("LVHBA", LVHBA(alpha=0.5, alpha_x=100.0, beta=0.5, eta=0.5, penalty=0.5), 600),
        ("AID", AID(learning_rate=100.0), 30),
    ]
    y0, _ = case.problem.solve_lower(jnp.zeros(params["n_train"]), case.start[1], None)
    corrupted = lib.bilevel_accuracy(y0, z_te, t_te)
    lines = [
        f"Corrupted-label training: test accuracy {corrupted:.3f}.",
        "",
        "| method | steps | test accuracy (final iterate y) | run time (s) | "
        "compile (s) | accuracy after 10% of the run time |",
        "|---|---|---|---|---|---|",
    ]
    for label, solver, steps in runs:
        tr = trace(
            case.problem, solver, case.start, steps=steps, every=max(1, steps // 10)
        )
        accs = [lib.bilevel_accuracy(w, z_te, t_te) for w in tr["y"]]
        lines.append(
            f"| {label} | {steps} | {accs[-1]:.3f} | {tr['run_time']:.2f} | "
            f"{tr['compile_time']:.1f} | {accs[0]:.3f} |"
        )
        print(lines[-1], flush=True)
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--full", action="store_true")
    parser.add_argument("--target", type=float, default=1e-2)
    args = parser.parse_args()
    print(f"jax {jax.__version__}, {platform.machine()}, {platform.processor()}")
    print(closed_form_table(args.target))
    print()
    print(hyperclean_table(args.full))


if __name__ == "__main__":
    main()
