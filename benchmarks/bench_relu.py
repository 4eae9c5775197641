"""Benchmark: convex ReLU training, sciopt ADMM vs cvxpy (Clarabel, SCS) vs pyscnn.

Squared loss, no bias, patterns sampled from Gaussian directions (the same directions
are given to pyscnn as its gates). Every method's solution is scored with the same
objective, 1/2 ||yhat - y||^2 + beta sum ||v_i||, and compared with the Clarabel
optimum. sciopt's first call (compile + run) and a second call (run only) are timed
apart. pyscnn's objective is ||yhat - y||^2 / (2n) + lam sum ||v_i||, so lam = beta / n.

    python benchmarks/bench_relu.py            # the small size, per-step scaling
    python benchmarks/bench_relu.py --full     # (2000, 20, 100) and (10000, 50, 200)
"""

import argparse
import time

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


def compare(n, d, P, beta, cvxpy_ok, scs_ok, rows):
    X, y, patterns, gates = instance(n, d, P)
    P = patterns.shape[1]
    problem = sr.ConvexReLUProblem(X, y, patterns, beta)
    gated = sr.ConvexReLUProblem(X, y, patterns, beta, gated=True)
    size = f"({n}, {d}, {P})"
    ref_obj = None
    if cvxpy_ok:
        v, t, note = run_cvxpy(problem, "CLARABEL", "")
        if v is not None:
            ref_obj = float(problem.objective(v))
            viol = float(problem.cone_violation(v))
            rows.append((size, "cvxpy Clarabel", t, float("nan"), ref_obj, 0.0, viol))
        else:
            rows.append((size, "cvxpy Clarabel", t, float("nan"), None, None, note))
    else:
        rows.append((size, "cvxpy Clarabel", None, None, None, None, "skipped"))
    for rtol in (1e-3, 1e-4, 1e-5, 1e-6):
        solver = sr.ADMM(rtol=rtol, atol=rtol * 1e-2)
        sol, run, compile_time = time_sciopt(problem, solver, 200_000)
        obj = float(sol.stats["objective"])
        gap = (obj - ref_obj) / abs(ref_obj) if ref_obj else float("nan")
        rows.append(
            (
                size,
                f"sciopt ADMM rtol={rtol:g} ({int(sol.stats['num_steps'])} steps)",
                run,
                compile_time,
                obj,
                gap,
                float(sol.stats["cone_violation"]),
            )
        )
        if ref_obj and gap <= 1e-4:
            break
    if scs_ok:
        v, t, note = run_cvxpy(problem, "SCS", "")
        if v is not None:
            obj = float(problem.objective(v))
            gap = (obj - ref_obj) / abs(ref_obj) if ref_obj else float("nan")
            viol = float(problem.cone_violation(v))
            rows.append((size, "cvxpy SCS eps=1e-6", t, float("nan"), obj, gap, viol))
        else:
            rows.append((size, "cvxpy SCS", t, None, None, None, note))
    for name in ("AL", "RFISTA"):
        params, t, note = run_pyscnn(X, y, gates, beta, name)
        label = "pyscnn AL (ReLU)" if name == "AL" else "pyscnn R-FISTA (gated ReLU)"
        if params is None:
            rows.append((size, label, None, None, None, None, note))
            continue
        try:
            obj, viol = scnn_objective(problem, gated, params, name)
        except Exception as e:  # noqa: BLE001
            rows.append((size, label, t, None, None, None, f"unreadable: {e}"))
            continue
        gap = (obj - ref_obj) / abs(ref_obj) if ref_obj else float("nan")
        rows.append((size, label, t, float("nan"), obj, gap, viol))


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


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--full", action="store_true")
    args = parser.parse_args()
    beta = 1e-2
    rows = []
    compare(500, 10, 50, beta, cvxpy_ok=True, scs_ok=True, rows=rows)
    if args.full:
        compare(2000, 20, 100, beta, cvxpy_ok=True, scs_ok=True, rows=rows)
        compare(10000, 50, 200, beta, cvxpy_ok=False, scs_ok=False, rows=rows)
    print(f"jax {jax.__version__}, device {jax.devices()[0].device_kind}")
    print(
        "| (n, d, P) | method | run s | compile s | objective | rel. gap "
        "| cone viol. / note |"
    )
    print("|---|---|---|---|---|---|---|")
    for size, name, t, c, obj, gap, viol in rows:
        extra = viol if isinstance(viol, str) else fmt(viol, ".1e")
        print(
            f"| {size} | {name} | {fmt(t, '.3f')} | {fmt(c, '.2f')} | "
            f"{fmt(obj, '.8g')} | {fmt(gap, '.1e')} | {extra} |"
        )
    ns = (250, 500, 1000, 2000) if not args.full else (500, 1000, 2000, 4000, 8000)
    print()
    print("| n | linear solver | ms per ADMM step | compile s |")
    print("|---|---|---|---|")
    for n, method, t, c in per_step(ns, 10, 20, beta):
        print(f"| {n} | {method} | {t * 1e3:.3f} | {c:.2f} |")


if __name__ == "__main__":
    main()
