"""Benchmark: convex ReLU training, sciopt ADMM vs cvxpy (Clarabel, SCS) vs pyscnn.

Squared loss, no bias, patterns sampled from Gaussian directions (the same directions
are given to pyscnn as its gates). Every method's solution is scored with the same
objective, 1/2 ||yhat - y||^2 + beta sum ||v_i||, against the Clarabel optimum at
tolerance 1e-9. The metric is the time to a relative objective gap <= `--target`:
ADMM runs without its residual stopping rule in compiled chunks, scored after each
chunk; the first step count that reaches the gap is then timed with `sciopt.solve`
(first call = compile + run, second call = run). Clarabel/SCS are timed at the loosest
tolerance that reaches the gap. pyscnn's objective is ||yhat - y||^2 / (2n) +
lam sum ||v_i||, so lam = beta / n.

    python benchmarks/bench_relu.py             # (500, 10, 50), default ADMM
    python benchmarks/bench_relu.py --settings  # also rho, balancing, linear solver
    python benchmarks/bench_relu.py --full      # adds (2000, 20, 100)
"""

import argparse
import time

import equinox as eqx
import jax
import numpy as np


jax.config.update("jax_enable_x64", True)

import sciopt  # noqa: E402
import sciopt.relu as sr  # noqa: E402


def instance(n, d, P, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)) / np.sqrt(d)
    U = rng.standard_normal((5, d))
    y = np.maximum(X @ U.T, 0) @ rng.standard_normal(5) + 0.1 * rng.standard_normal(n)
    patterns, gates = sr.sample_patterns(
        jax.random.key(seed), X, P, return_directions=True
    )
    return X, y, patterns, gates


def time_sciopt(problem, solver, max_steps):
    start = time.perf_counter()
    sol = sciopt.solve(problem, solver, max_steps=max_steps, throw=False)
    jax.block_until_ready(sol.value)
    first = time.perf_counter() - start
    start = time.perf_counter()
    sol = sciopt.solve(problem, solver, max_steps=max_steps, throw=False)
    jax.block_until_ready(sol.value)
    run = time.perf_counter() - start
    return sol, run, max(first - run, 0.0)


def run_cvxpy(problem, name, timeout_note):
    start = time.perf_counter()
    try:
        if name == "CLARABEL":
            obj, v = sr.cvxpy_solve(problem, tol=1e-8)
        else:
            obj, v = sr.cvxpy_solve(problem, solver="SCS", eps=1e-6, max_iters=20000)
    except Exception as e:  # noqa: BLE001
        return None, time.perf_counter() - start, f"failed: {type(e).__name__}: {e}"
    return v, time.perf_counter() - start, timeout_note


def run_pyscnn(X, y, gates, beta, solver_name):
    try:
        from scnn.metrics import Metrics
        from scnn.models import ConvexGatedReLU, ConvexReLU
        from scnn.optimize import optimize_model
        from scnn.regularizers import NeuronGL1
        from scnn.solvers import AL, RFISTA
    except Exception as e:  # noqa: BLE001
        return None, float("nan"), f"import failed: {type(e).__name__}: {e}"
    n = X.shape[0]
    G = np.asarray(gates)
    try:
        if solver_name == "AL":
            model = ConvexReLU(G)
            solver = AL(model, tol=1e-8, constraint_tol=1e-8)
        else:
            model = ConvexGatedReLU(G)
            solver = RFISTA(model, tol=1e-8)
        start = time.perf_counter()
        model, _ = optimize_model(
            model,
            solver,
            Metrics(),
            X,
            y[:, None],
            regularizer=NeuronGL1(beta / n),
            return_convex=True,
            unitize_data=False,
            dtype="float64",
        )
        elapsed = time.perf_counter() - start
        params = [np.asarray(p) for p in model.parameters]
        return params, elapsed, ""
    except Exception as e:  # noqa: BLE001
        return None, float("nan"), f"failed: {type(e).__name__}: {e}"


def scnn_objective(problem, gated_problem, params, solver_name):
    P, d = problem.patterns.shape[1], problem.X.shape[1]
    if solver_name == "AL":
        U, W = params[0].reshape(P, d), params[1].reshape(P, d)
        v = np.concatenate([U, W], axis=0)
        return float(problem.objective(v)), float(problem.cone_violation(v))
    U = params[0].reshape(P, d)
    v = np.concatenate([U, np.zeros_like(U)], axis=0)
    return float(gated_problem.objective(v)), 0.0


def admm_trace(problem, solver, chunk, max_chunks, ref_obj, target):
    """Run ADMM in jit-compiled chunks of `chunk` steps (the same `step` as
    `sciopt.solve`), scoring `v` after each chunk. Returns the first step count whose
    relative gap |f(v) - f*| / f* is <= target, with f(v) and the cone violation."""
    y = problem.default_y0(None)
    state = solver.init(problem, y, None, {})

    @eqx.filter_jit
    def run_chunk(y, state):
        def body(carry, _):
            y, state = carry
            y, state, _ = solver.step(problem, y, None, {}, state)
            return (y, state), None

        (y, state), _ = jax.lax.scan(body, (y, state), None, length=chunk)
        return y, state, problem.objective(y.v), problem.cone_violation(y.v)

    for k in range(1, max_chunks + 1):
        y, state, obj, viol = run_chunk(y, state)
        gap = (float(obj) - ref_obj) / abs(ref_obj)
        if abs(gap) <= target:
            return k * chunk, float(obj), gap, float(viol)
    return None, float(obj), gap, float(viol)


ADMM_SETTINGS = (
    ("default (rho 1, auto solver, balancing on)", {}),
    ("rho 0.1", {"rho": 0.1}),
    ("rho 10", {"rho": 10.0}),
    ("rho 1, balancing off", {"adaptive_rho": False}),
    ("rho 0.1, balancing off", {"rho": 0.1, "adaptive_rho": False}),
    ("rho 10, balancing off", {"rho": 10.0, "adaptive_rho": False}),
    ("linear_solver dense", {"linear_solver": "dense"}),
    ("linear_solver woodbury", {"linear_solver": "woodbury"}),
    ("linear_solver cg", {"linear_solver": "cg"}),
    ("v_weight None (mean col. norm)", {"v_weight": None}),
    ("relaxation 1.6", {"relaxation": 1.6}),
    ("rho 0.1, relaxation 1.6", {"rho": 0.1, "relaxation": 1.6}),
)


class _Rows(list):
    """A row list that prints each row as it arrives (long runs show progress)."""

    def append(self, row):
        super().append(row)
        print_row(row)


def print_row(row):
    size, name, t, c, obj, gap, viol = row
    extra = viol if isinstance(viol, str) else fmt(viol, ".1e")
    print(
        f"| {size} | {name} | {fmt(t, '.3f')} | {fmt(c, '.2f')} | "
        f"{fmt(obj, '.8g')} | {fmt(gap, '.1e')} | {extra} |",
        flush=True,
    )


def compare(
    n, d, P, beta, target, rows, chunk=50, max_steps=20_000, scs=False, settings=None
):
    X, y, patterns, gates = instance(n, d, P)
    P = patterns.shape[1]
    problem = sr.ConvexReLUProblem(X, y, patterns, beta)
    size = f"({n}, {d}, {P})"
    start = time.perf_counter()
    ref_obj, v = sr.cvxpy_solve(problem, tol=1e-9)
    t = time.perf_counter() - start
    ref_obj = float(problem.objective(v))
    viol = float(problem.cone_violation(v))
    rows.append(
        (size, "cvxpy Clarabel tol 1e-9 (reference)", t, None, ref_obj, 0.0, viol)
    )
    # Clarabel at loose tolerances: the loosest that still reaches the target gap
    for tol in (1e-3, 1e-4, 1e-5, 1e-6):
        start = time.perf_counter()
        _, v = sr.cvxpy_solve(problem, tol=tol)
        t = time.perf_counter() - start
        obj = float(problem.objective(v))
        gap = (obj - ref_obj) / abs(ref_obj)
        viol = float(problem.cone_violation(v))
        rows.append((size, f"cvxpy Clarabel tol {tol:g}", t, None, obj, gap, viol))
        if abs(gap) <= target:
            break
    if scs:
        for eps in (1e-4, 1e-5, 1e-6):
            start = time.perf_counter()
            try:
                _, v = sr.cvxpy_solve(problem, solver="SCS", eps=eps, max_iters=100_000)
            except Exception as e:  # noqa: BLE001
                rows.append(
                    (
                        size,
                        f"cvxpy SCS eps {eps:g}",
                        None,
                        None,
                        None,
                        None,
                        f"failed: {type(e).__name__}",
                    )
                )
                break
            t = time.perf_counter() - start
            obj = float(problem.objective(v))
            gap = (obj - ref_obj) / abs(ref_obj)
            viol = float(problem.cone_violation(v))
            rows.append((size, f"cvxpy SCS eps {eps:g}", t, None, obj, gap, viol))
            if abs(gap) <= target:
                break
    for label, kw in settings or ADMM_SETTINGS:
        solver = sr.ADMM(rtol=0.0, atol=0.0, **kw)
        steps, obj, gap, viol = admm_trace(
            problem, solver, chunk, max_steps // chunk, ref_obj, target
        )
        if steps is None:
            rows.append(
                (
                    size,
                    f"sciopt ADMM {label}: not reached in {max_steps} steps",
                    None,
                    None,
                    obj,
                    gap,
                    viol,
                )
            )
            continue
        sol, run, compile_time = time_sciopt(problem, solver, steps)
        obj = float(sol.stats["objective"])
        gap = (obj - ref_obj) / abs(ref_obj)
        rows.append(
            (
                size,
                f"sciopt ADMM {label}, {steps} steps",
                run,
                compile_time,
                obj,
                gap,
                float(sol.stats["cone_violation"]),
            )
        )


def per_step(ns, d, P, beta):
    out = []
    for n in ns:
        X, y, patterns, _ = instance(n, d, P)
        problem = sr.ConvexReLUProblem(X, y, patterns, beta)
        for method in ("woodbury", "dense", "cg"):
            solver = sr.ADMM(linear_solver=method)
            steps = 200
            sol, run, compile_time = time_sciopt(problem, solver, steps)
            out.append((n, method, run / int(sol.stats["num_steps"]), compile_time))
    return out


def fmt(x, spec):
    if x is None:
        return "-"
    if isinstance(x, float) and np.isnan(x):
        return "-"
    return format(x, spec)


def pyscnn_rows(n, d, P, beta, ref_obj, rows):
    X, y, patterns, gates = instance(n, d, P)
    problem = sr.ConvexReLUProblem(X, y, patterns, beta)
    gated = sr.ConvexReLUProblem(X, y, patterns, beta, gated=True)
    size = f"({n}, {d}, {patterns.shape[1]})"
    for name in ("AL", "RFISTA"):
        params, t, note = run_pyscnn(X, y, gates, beta, name)
        label = "pyscnn AL (ReLU)" if name == "AL" else "pyscnn R-FISTA (gated ReLU)"
        if params is None:
            rows.append((size, label, None, None, None, None, note))
            continue
        obj, viol = scnn_objective(problem, gated, params, name)
        gap = (obj - ref_obj) / abs(ref_obj)
        rows.append((size, label, t, None, obj, gap, viol))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--full", action="store_true", help="add (2000, 20, 100)")
    parser.add_argument("--pyscnn", action="store_true", help="add pyscnn rows")
    parser.add_argument("--target", type=float, default=1e-4, help="relative gap")
    parser.add_argument("--scs", action="store_true", help="add SCS rows (slow)")
    parser.add_argument(
        "--settings", action="store_true", help="try rho / linear solver / balancing"
    )
    parser.add_argument("--per-step", action="store_true", help="per-step table")
    args = parser.parse_args()
    beta = 1e-2
    print(f"jax {jax.__version__}, device {jax.devices()[0].device_kind}")
    print(f"time to relative objective gap <= {args.target:g} against Clarabel")
    print(
        "| (n, d, P) | method | run s | compile s | objective | rel. gap "
        "| cone viol. / note |"
    )
    print("|---|---|---|---|---|---|---|", flush=True)
    rows = _Rows()
    settings = ADMM_SETTINGS if args.settings else ADMM_SETTINGS[:1]
    compare(500, 10, 50, beta, args.target, rows, scs=args.scs, settings=settings)
    if args.pyscnn:
        pyscnn_rows(500, 10, 50, beta, rows[0][4], rows)
    if args.full:
        compare(2000, 20, 100, beta, args.target, rows, settings=ADMM_SETTINGS[:1])
    if args.per_step:
        ns = (250, 500, 1000, 2000)
        print()
        print("| n | linear solver | ms per ADMM step | compile s |")
        print("|---|---|---|---|")
        for n, method, t, c in per_step(ns, 10, 20, beta):
            print(f"| {n} | {method} | {t * 1e3:.3f} | {c:.2f} |")


if __name__ == "__main__":
    main()
