"""Benchmarks of `sciopt.nlp` against scipy (SLSQP, trust-constr).

    python benchmarks/bench_nlp.py            # HS subset + PDE control N = 32, 64
    python benchmarks/bench_nlp.py --full     # every HS problem + PDE N = 128
    python benchmarks/bench_nlp.py --part hs  # only the HS suite (or pde, inexact)

HS suite: every solver in the same process; sciopt's compile time (first call minus a
second, compiled call) is reported apart from its run time (the second call). scipy gets
exact gradients and Jacobians from jit-compiled JAX functions (compiled before timing).

PDE control: each (method, N) runs in a fresh subprocess so that its peak memory can be
measured as the process's peak resident set size (`resource.getrusage(...).ru_maxrss`)
minus that of a subprocess that imports the same modules and builds the problem.
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


ROOT = Path(__file__).resolve().parent.parent
HS_SUBSET = [
    "hs006",
    "hs007",
    "hs026",
    "hs027",
    "hs039",
    "hs040",
    "hs042",
    "hs046",
    "hs047",
    "hs049",
    "hs056",
    "hs077",
    "hs078",
    "hs100lnp",
]


def _sketch_steps(y, state, aux):
    from sciopt.nlp import step_stats

    return step_stats(y, state, aux)["sketch_steps"]


def _save_sketch():
    import sciopt

    return sciopt.SaveAt(fn=_sketch_steps)


def _setup():
    import jax

    jax.config.update("jax_enable_x64", True)
    sys.path.insert(0, str(ROOT))


def hs_suite(full: bool):
    _setup()
    import jax
    import jax.numpy as jnp
    import lineax as lx
    import sciopt
    from scipy.optimize import minimize

    global SAVE_SKETCH
    SAVE_SKETCH = _save_sketch()
    specs = sciopt.load_problem_specs(ROOT / "problems" / "nlp_hock_schittkowski.toml")
    specs = [s for s in specs if "expect" not in s.data]
    if not full:
        specs = [s for s in specs if s.name in HS_SUBSET]
    variants = {
        "sciopt adaptive": sciopt.nlp.AdaSketchNewton(),
        "sciopt practical": sciopt.nlp.AdaSketchNewton(accuracy="practical"),
        "sciopt exact (LU)": sciopt.nlp.AdaSketchNewton(linear_solver=lx.LU()),
    }
    rows = []
    for spec in specs:
        problem = spec.build()
        x0 = jnp.asarray(spec.data["x0"])
        ref = spec.data["reference"]["f"]

        def ok(f, ref=ref):
            return abs(f - ref) / max(1.0, abs(ref)) <= 1e-6

        for label, solver in variants.items():
            kwargs = dict(throw=False, max_steps=100, saveat=SAVE_SKETCH)
            t0 = time.perf_counter()
            sol = sciopt.solve(problem, solver, x0, **kwargs)
            jax.block_until_ready(sol.value)
            first = time.perf_counter() - t0
            t0 = time.perf_counter()
            sol = sciopt.solve(problem, solver, x0, **kwargs)
            jax.block_until_ready(sol.value)
            run = time.perf_counter() - t0
            f = float(problem.objective(sol.value, None))
            steps = int(sol.stats["num_steps"])
            sk = np.asarray(sol.history)[1 : steps + 1]
            rows.append(
                dict(
                    problem=spec.name,
                    solver=label,
                    solved=bool(
                        ok(f)
                        and sol.result == sciopt.RESULTS.successful
                        and float(sol.stats["kkt_residual"]) <= 1e-8
                    ),
                    iters=steps,
                    time=run,
                    compile=first - run,
                    sketch=float(np.median(sk))
                    if label != "sciopt exact (LU)"
                    else 0.0,
                )
            )
        fj = jax.jit(lambda x: problem.objective(x, None))
        gj = jax.jit(jax.grad(lambda x: problem.objective(x, None)))
        cj = jax.jit(lambda x: problem.constraints(x, None))
        jj = jax.jit(jax.jacfwd(lambda x: problem.constraints(x, None)))
        x0n = np.asarray(x0)
        for fn in (fj, gj, cj, jj):
            jax.block_until_ready(fn(x0))

        def fun(x):
            return float(fj(x))

        def jac(x):
            return np.asarray(gj(x))

        cons = {
            "type": "eq",
            "fun": lambda x: np.asarray(cj(x)),
            "jac": lambda x: np.asarray(jj(x)),
        }
        for method in ("SLSQP", "trust-constr"):
            t0 = time.perf_counter()
            if method == "SLSQP":
                r = minimize(
                    fun,
                    x0n,
                    jac=jac,
                    method="SLSQP",
                    constraints=cons,
                    options={"ftol": 1e-14, "maxiter": 500},
                )
                nit = int(r.nit)
            else:
                from scipy.optimize import NonlinearConstraint

                nlc = NonlinearConstraint(cons["fun"], 0.0, 0.0, jac=cons["jac"])
                r = minimize(
                    fun,
                    x0n,
                    jac=jac,
                    method="trust-constr",
                    constraints=[nlc],
                    options={"gtol": 1e-10, "xtol": 1e-14, "maxiter": 2000},
                )
                nit = int(r.nit)
            run = time.perf_counter() - t0
            rows.append(
                dict(
                    problem=spec.name,
                    solver=f"scipy {method}",
                    solved=bool(ok(float(r.fun))),
                    iters=nit,
                    time=run,
                    compile=0.0,
                    sketch=0.0,
                )
            )
        done = [r for r in rows if r["problem"] == spec.name]
        print("ROWS" + json.dumps(done), file=sys.stderr, flush=True)
    return rows


def print_hs(rows):
    solvers = list(dict.fromkeys(r["solver"] for r in rows))
    problems = list(dict.fromkeys(r["problem"] for r in rows))
    print("\n### HS suite, per problem: outer iterations (* = not solved)\n")
    print("| problem | " + " | ".join(solvers) + " |")
    print("|---" * (len(solvers) + 1) + "|")
    for p in problems:
        cells = []
        for s in solvers:
            r = next(r for r in rows if r["problem"] == p and r["solver"] == s)
            cells.append(f"{r['iters']}{'' if r['solved'] else '*'}")
        print(f"| {p} | " + " | ".join(cells) + " |")
    print("\n### HS suite, summary\n")
    print(
        "| solver | solved | median outer iterations | median sketch steps per "
        "Newton step | total run time (s) | total compile time (s) |"
    )
    print("|---|---|---|---|---|---|")
    for s in solvers:
        rs = [r for r in rows if r["solver"] == s]
        sk = np.median([r["sketch"] for r in rs]) if "sciopt" in s else float("nan")
        print(
            f"| {s} | {sum(r['solved'] for r in rs)}/{len(rs)} | "
            f"{np.median([r['iters'] for r in rs]):.0f} | "
            f"{'-' if np.isnan(sk) else f'{sk:.0f}'} | "
            f"{sum(r['time'] for r in rs):.3f} | "
            f"{sum(r['compile'] for r in rs):.1f} |"
        )


def inexact_suite():
    """Sketch steps per Newton step for each accuracy rule, and with and without the
    recycled directions on the degenerate problems."""
    _setup()
    import jax.numpy as jnp
    import sciopt

    global SAVE_SKETCH
    SAVE_SKETCH = _save_sketch()
    specs = {
        s.name: s
        for s in sciopt.load_problem_specs(
            ROOT / "problems" / "nlp_hock_schittkowski.toml"
        )
    }
    configs = {
        "adaptive, no floor (the authors' rule)": dict(accuracy_floor=0.0),
        "adaptive (default)": {},
        "practical, kappa = 0.1": dict(accuracy="practical"),
    }
    runs = [
        (p, label, cfg)
        for p in ("hs040", "hs077", "hs100lnp")
        for label, cfg in configs.items()
    ]
    for p in ("hs026", "hs046", "hs047", "hs049"):
        # the defaults: 2 recycled directions (adaptive), 6 (practical)
        for rule, recycled in (("adaptive", (0, 2)), ("practical", (0, 2, 6))):
            for rec in recycled:
                runs.append(
                    (p, f"{rule}, recycle = {rec}", dict(accuracy=rule, recycle=rec))
                )
    print("\n### Sketch steps per Newton step (row sketch)\n")
    print(
        "| problem | rule | solved | Newton steps | median sketch steps per step "
        "| total sketch steps |"
    )
    print("|---|---|---|---|---|---|")
    for name, label, cfg in runs:
        spec = specs[name]
        problem = spec.build()
        solver = sciopt.nlp.AdaSketchNewton(**cfg)
        sol = sciopt.solve(
            problem,
            solver,
            jnp.asarray(spec.data["x0"]),
            throw=False,
            max_steps=100,
            saveat=SAVE_SKETCH,
        )
        k = int(sol.stats["num_steps"])
        sk = np.asarray(sol.history)[1 : k + 1]
        f = float(problem.objective(sol.value, None))
        ref = spec.data["reference"]["f"]
        ok = (
            sol.result == sciopt.RESULTS.successful
            and abs(f - ref) / max(1.0, abs(ref)) <= 1e-6
            and float(sol.stats["kkt_residual"]) <= 1e-8
        )
        print(
            f"| {name} | {label} | {'yes' if ok else 'no'} | {k} | "
            f"{np.median(sk):.0f} | {sk.sum()} |",
            flush=True,
        )


# ------------------------------------------------------------------ PDE control

PDE_CHILD = r"""
import json, resource, sys, time
import numpy as np
sys.path.insert(0, {root!r})
import jax
jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp
import lineax as lx
import scipy.sparse as sp
from scipy.optimize import minimize, LinearConstraint
import sciopt
from sciopt.nlp import pde_control_reference, pde_control_target

N, method = {N}, {method!r}
problem = sciopt.nlp.pde_control(N)
x0 = jnp.zeros(2 * N * N)
ref = pde_control_reference(N)
out = dict(N=N, method=method)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
if method == "baseline":
    pass
elif method.startswith("sciopt"):
    if method == "sciopt sketch":
        solver = sciopt.nlp.AdaSketchNewton(
            accuracy="practical", materialise=False, atol=1e-6,
            linear_solver=sciopt.nlp.BlockSketch(block_size=256, max_steps=100),
        )
    elif method == "sciopt Schur CG":
        solver = sciopt.nlp.AdaSketchNewton(
            materialise=False, atol=1e-6,
            linear_solver=sciopt.nlp.SchurComplementCG(),
        )
    else:
        solver = sciopt.nlp.AdaSketchNewton(
            linear_solver=lx.LU(), materialise=False, atol=1e-6
        )
    steps = 2 if method == "sciopt sketch" else 50
    saveat = sciopt.SaveAt(
        fn=lambda y, s, a: sciopt.nlp.step_stats(y, s, a)["sketch_steps"])
    t0 = time.perf_counter()
    sol = sciopt.solve(problem, solver, x0, throw=False, max_steps=steps, saveat=saveat)
    jax.block_until_ready(sol.value)
    first = time.perf_counter() - t0
    if method == "sciopt sketch":  # slow: one call, compile time not separated
        run = first
    else:
        t0 = time.perf_counter()
        sol = sciopt.solve(problem, solver, x0, throw=False, max_steps=steps,
                           saveat=saveat)
        jax.block_until_ready(sol.value)
        run = time.perf_counter() - t0
    f = float(problem.objective(sol.value, None))
    steps = int(sol.stats["num_steps"])
    out.update(time=run, compile=first - run, iters=steps,
               kkt=float(sol.stats["kkt_residual"]), f=f,
               status=sciopt.RESULTS[sol.result][:60] or "ok",
               sketch=np.asarray(sol.history)[1 : steps + 1].tolist())
else:
    h = 2.0 / (N + 1)
    one = sp.diags([1.0, -2.0, 1.0], [-1, 0, 1], shape=(N, N))
    eye = sp.identity(N)
    lap = ((sp.kron(one, eye) + sp.kron(eye, one)) / h**2).tocsr()
    a = sp.hstack([lap, sp.identity(N * N)]).tocsr()
    t = pde_control_target(N).ravel()
    alpha = 0.1
    diag = np.concatenate([np.ones(N * N), alpha * np.ones(N * N)])
    shift = np.concatenate([t, np.zeros(N * N)])
    fun = lambda x: 0.5 * np.sum(diag * (x - shift) ** 2)
    jac = lambda x: diag * (x - shift)
    hessp = lambda x, p: diag * p
    t0 = time.perf_counter()
    r = minimize(fun, np.zeros(2 * N * N), jac=jac, hessp=hessp, method="trust-constr",
                 constraints=[LinearConstraint(a, 0.0, 0.0)],
                 options={{"gtol": 1e-8 if "1e-8" in method else 1e-6, "xtol": 1e-14,
                          "maxiter": 5000}})
    run = time.perf_counter() - t0
    g = jac(r.x) + a.T @ r.v[0]
    kkt = float(np.sqrt(np.sum(g**2) + np.sum((a @ r.x) ** 2)))
    out.update(time=run, compile=0.0, iters=int(r.nit), kkt=kkt, f=float(r.fun),
               status=r.message[:60])
out["ref"] = ref
out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print("RESULT" + json.dumps(out))
"""


def pde_suite(sizes, timeout, sketch_timeout):
    rows = []
    for N in sizes:
        for method in (
            "baseline",
            "sciopt Schur CG",
            "sciopt sketch",
            "sciopt dense KKT (LU)",
            "scipy trust-constr",
            "scipy trust-constr gtol=1e-8",
        ):
            limit = sketch_timeout if method == "sciopt sketch" else timeout
            if method == "sciopt dense KKT (LU)" and N >= 128:
                n = 3 * N * N
                rows.append(
                    dict(
                        N=N,
                        method=method,
                        status=(
                            "not run: the dense KKT matrix needs "
                            f"{n * n * 8 / 2**30:.0f} GiB"
                        ),
                    )
                )
                continue
            code = PDE_CHILD.format(root=str(ROOT), N=N, method=method)
            t0 = time.perf_counter()
            try:
                proc = subprocess.run(
                    [sys.executable, "-c", code],
                    capture_output=True,
                    text=True,
                    timeout=limit,
                )
                line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT")]
                if line:
                    rows.append(json.loads(line[0][6:]))
                else:
                    rows.append(
                        dict(N=N, method=method, status="failed: " + proc.stderr[-200:])
                    )
            except subprocess.TimeoutExpired:
                rows.append(
                    dict(N=N, method=method, status=f"timed out after {limit} s")
                )
            print(
                f"  N={N} {method}: {time.perf_counter() - t0:.0f}s",
                file=sys.stderr,
                flush=True,
            )
    return rows


def print_pde(rows):
    print("\n### PDE control (n = 2N^2, m = N^2)\n")
    print(
        "| N | method | status | outer iterations | KKT residual | objective error "
        "| run time (s) | compile time (s) | peak memory above baseline (MB) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for N in sorted({r["N"] for r in rows}):
        base = next((r for r in rows if r["N"] == N and r["method"] == "baseline"), {})
        for r in rows:
            if r["N"] != N or r["method"] == "baseline":
                continue
            if "time" not in r:
                print(f"| {N} | {r['method']} | {r['status']} | | | | | | |")
                continue
            err = abs(r["f"] - r["ref"]) / abs(r["ref"])
            mem = r["peak_rss_mb"] - base.get("peak_rss_mb", 0.0)
            print(
                f"| {N} | {r['method']} | {r['status']} | {r['iters']} | "
                f"{r['kkt']:.1e} | {err:.1e} | {r['time']:.2f} | "
                f"{r['compile']:.1f} | {mem:.0f} |"
            )


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--full", action="store_true")
    parser.add_argument(
        "--part", choices=["hs", "pde", "inexact", "all"], default="all"
    )
    parser.add_argument("--timeout", type=int, default=600)
    parser.add_argument(
        "--sketch-timeout",
        type=int,
        default=120,
        help="time limit of the (slow) sketched PDE runs",
    )
    parser.add_argument(
        "--sizes", type=str, default=None, help="PDE grid sizes, e.g. 32,64,128"
    )
    args = parser.parse_args()
    import jax

    print(f"jax {jax.__version__}")
    if args.part in ("hs", "all"):
        print_hs(hs_suite(args.full))
    if args.part in ("inexact", "all"):
        inexact_suite()
    if args.part in ("pde", "all"):
        sizes = [32, 64, 128] if args.full else [32, 64]
        if args.sizes:
            sizes = [int(v) for v in args.sizes.split(",")]
        print_pde(pde_suite(sizes, args.timeout, args.sketch_timeout))


if __name__ == "__main__":
    main()
