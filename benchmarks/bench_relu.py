"""Benchmark: convex ReLU training, sciopt ADMM and InteriorPoint vs cvxpy (Clarabel,
SCS) vs pyscnn.

Squared loss, no bias, `beta = 1e-2`, patterns sampled from Gaussian directions (the
same directions are given to pyscnn as its gate vectors). Every method's solution is
scored with the same objective, 1/2 ||yhat - y||^2 + beta sum ||v_i||, against the
Clarabel optimum at tolerance 1e-9. The metric is the time to a relative objective gap
<= `--target`:

- sciopt ADMM runs without its residual stopping rule in compiled chunks of 50 steps,
  scored after each chunk; the first step count that reaches the gap is then timed
  with `sciopt.solve(..., max_steps=count)` (first call = compile + run, second call
  = run);
- Clarabel / SCS / pyscnn are timed at the loosest tolerance that reaches the gap.

pyscnn minimises ||yhat - y||^2 / (2n) + lam sum ||v_i||, so `lam = beta / n` gives the
same minimiser. It sorts and de-duplicates the patterns of its gates, so its convex
weights are scored with the patterns of the gates it returns (`model.G`). Its R-FISTA
solves the gated-ReLU program (no cone constraints): those rows are compared with the
gated optimum and with sciopt ADMM on `ConvexReLUProblem(..., gated=True)`.

Sizes: `small` (500, 10, 50), `mid` (2000, 20, 100), `large` (10000, 50, 200),
`tall` (20000, 10, 20). InteriorPoint rows use `--ip-linear-solver` (default "auto":
the reduced system of side P d at every size here; "woodbury" for the n x n core).

    python benchmarks/bench_relu.py                      # small, all methods
    python benchmarks/bench_relu.py --sizes small,mid --pyscnn --settings
    python benchmarks/bench_relu.py --per-step           # step cost vs n
    python benchmarks/bench_relu.py --sizes small,mid --interior-point --no-admm \
        --reference-json benchmarks/relu_reference.json  # InteriorPoint only
    python benchmarks/bench_relu.py --write-reference benchmarks/relu_reference.json

Without cvxpy or pyscnn (e.g. on a GPU machine), time ADMM only against the stored
Clarabel optima (`benchmarks/relu_reference.json`; where Clarabel did not finish, the
value ADMM reaches after `--reference-steps` steps stands in, marked as such):

    python benchmarks/bench_relu.py --reference-json benchmarks/relu_reference.json \
        --sizes small,mid --float32 --per-step --full

With `--reference-json`, loose Clarabel and pyscnn rows run only with `--clarabel` and
`--pyscnn`.
"""

import argparse
import hashlib
import json
import multiprocessing as mp
import pathlib
import time

import equinox as eqx
import jax
import numpy as np


jax.config.update("jax_enable_x64", True)
# full float32 matmuls on GPUs (no TF32), so float32 rows are float32 accurate
jax.config.update("jax_default_matmul_precision", "highest")

import jax.numpy as jnp  # noqa: E402
import sciopt  # noqa: E402
import sciopt.relu as sr  # noqa: E402
from sciopt.relu import dual_bound  # noqa: E402


SIZES = {
    "small": (500, 10, 50),
    "mid": (2000, 20, 100),
    "large": (10000, 50, 200),
    # many samples, few patterns: InteriorPoint's dense Newton matrix (side 420)
    "tall": (20000, 10, 20),
}
BETA = 1e-2
CHUNK = 50


def instance(n, d, P, seed=0):
    """A planted ReLU regression problem and its sampled patterns (deterministic:
    NumPy's generator for the data, JAX's threefry for the directions)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)) / np.sqrt(d)
    U = rng.standard_normal((5, d))
    y = np.maximum(X @ U.T, 0) @ rng.standard_normal(5) + 0.1 * rng.standard_normal(n)
    with jax.default_device(jax.devices("cpu")[0]):  # the same draws on every host
        patterns, gates = sr.sample_patterns(
            jax.random.key(seed), X, P, return_directions=True
        )
    return X, y, np.asarray(patterns), np.asarray(gates)


def fingerprint(X, y, patterns):
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(patterns, dtype=np.int8).tobytes())
    h.update(np.round(np.asarray(X), 10).tobytes())
    h.update(np.round(np.asarray(y), 10).tobytes())
    return h.hexdigest()[:16]


def make_problem(X, y, patterns, *, gated=False, dtype=np.float64):
    cast = lambda a: jnp.asarray(a, dtype)  # noqa: E731
    return sr.ConvexReLUProblem(cast(X), cast(y), cast(patterns), BETA, gated=gated)


def score(problem64, v):
    v = np.asarray(v, np.float64)
    return float(problem64.objective(v)), float(problem64.cone_violation(v))


# ----------------------------------------------------------------------------------
# sciopt ADMM
# ----------------------------------------------------------------------------------


def chunk_runner(problem, solver, length):
    """A jit-compiled run of `length` ADMM steps (the same `step` as `sciopt.solve`),
    the initial iterate and the initial solver state."""
    y = problem.default_y0(None)
    state = solver.init(problem, y, None, {})

    @eqx.filter_jit
    def run_chunk(y, state):
        def body(carry, _):
            y, state = carry
            y, state, _ = solver.step(problem, y, None, {}, state)
            return (y, state), None

        return jax.lax.scan(body, (y, state), None, length=length)[0]

    return run_chunk, y, state


def admm_trace(problem, problem64, solver, max_steps, ref_obj, target, chunk=CHUNK):
    """Run a solver (ADMM by default) in jit-compiled chunks of `chunk` steps (the
    same `step` as `sciopt.solve`), scoring `v` in float64 after each chunk. Returns
    the first step count whose relative gap |f(v) - f*| / f* is <= target (None if
    not reached), the last gap and the last objective."""
    run_chunk, y, state = chunk_runner(problem, solver, chunk)
    gap = obj = float("nan")
    for k in range(1, max_steps // chunk + 1):
        y, state = run_chunk(y, state)
        obj, _ = score(problem64, y.v)
        gap = (obj - ref_obj) / abs(ref_obj)
        if abs(gap) <= target:
            return k * chunk, gap, obj
    return None, gap, obj


def interior_point_rows(rows, size, problem, problem64, ref_obj, args):
    """sciopt InteriorPoint: (a) the steps to the relative gap `--target` against the
    reference, timed as for ADMM (a solve of exactly that many steps); (b) a solve
    stopped by its own certified duality gap (default `rtol = 1e-6`)."""
    method = sr.InteriorPoint(linear_solver=args.ip_linear_solver)._linear_solver(
        problem
    )
    label = f"sciopt InteriorPoint ({method})"
    if np.isfinite(ref_obj):
        tracer = sr.InteriorPoint(rtol=1e-14, linear_solver=method)
        admm_row(rows, size, label, problem, problem64, tracer, ref_obj, args, 1, 500)
    solver = sr.InteriorPoint(linear_solver=method)
    sol, run, compile_time = time_solve(problem, solver, 500)
    obj, viol = score(problem64, sol.value.v)
    certified = float(sol.stats["duality_gap"]) / abs(obj)
    status = "certified" if sol.result == sciopt.RESULTS.successful else "stalled"
    rows.add(
        size,
        f"{label} default (rtol 1e-6): {status} after "
        f"{int(sol.stats['num_steps'])} steps",
        run,
        compile_time,
        obj,
        (obj - ref_obj) / abs(ref_obj),
        note=f"certified gap {certified:.1e}, cone viol. {viol:.1e}",
    )


def time_solve(problem, solver, max_steps):
    """(solution, run seconds, compile seconds): the first call compiles and runs,
    the second only runs."""
    times = []
    for _ in range(2):
        start = time.perf_counter()
        sol = sciopt.solve(problem, solver, max_steps=max_steps, throw=False)
        jax.block_until_ready(sol.value)
        times.append(time.perf_counter() - start)
    return sol, times[1], max(times[0] - times[1], 0.0)


def admm_row(
    rows,
    size,
    label,
    problem,
    problem64,
    solver,
    ref_obj,
    args,
    chunk=CHUNK,
    limit=None,
):
    """The steps to `--target` (traced in chunks of `chunk`, at most `limit` or
    `--max-steps`), then a solve of exactly that many steps, timed."""
    limit = args.max_steps if limit is None else limit
    steps, gap, _ = admm_trace(
        problem, problem64, solver, limit, ref_obj, args.target, chunk=chunk
    )
    if steps is None:
        rows.add(size, f"{label}: not reached in {limit} steps", gap=gap)
        return
    sol, run, compile_time = time_solve(problem, solver, steps)
    obj, viol = score(problem64, sol.value.v)
    rows.add(
        size,
        f"{label}, {steps} steps",
        run,
        compile_time,
        obj,
        (obj - ref_obj) / abs(ref_obj),
        viol,
    )


def gap_rule_row(rows, size, label, problem, problem64, ref_obj, args):
    """ADMM stopped by its duality-gap rule (`gap_rtol = --target`): no reference
    needed. The lower bound is recomputed in float64 from the returned iterate.
    With `--single-run` (long solves) the solve runs once: "run" is that call minus
    the compile time of a 1-step solve."""
    solver = sr.ADMM(rtol=0.0, atol=0.0, gap_rtol=args.target)
    if args.single_run:
        _, _, compile_time = time_solve(problem, solver, 1)
        start = time.perf_counter()
        sol = sciopt.solve(problem, solver, max_steps=args.max_steps, throw=False)
        jax.block_until_ready(sol.value)
        run = time.perf_counter() - start - compile_time
    else:
        sol, run, compile_time = time_solve(problem, solver, args.max_steps)
    steps = int(sol.stats["num_steps"])
    y = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), sol.value)
    obj, bound, _ = dual_bound(problem64, y.v, y.dual_s, y.dual_p)
    obj, bound = float(obj), float(bound)
    viol = float(problem64.cone_violation(y.v))
    stopped = "stopped" if steps < args.max_steps else "NOT stopped"
    rows.add(
        size,
        f"{label}, gap rule {stopped} after {steps} steps",
        run,
        compile_time,
        obj,
        (obj - ref_obj) / abs(ref_obj),
        viol,
        note=f"certified gap {(obj - bound) / abs(obj):.1e}, lower bound "
        f"{bound:.10g}, cone viol. {viol:.1e}",
    )


def certify_trace(size, problem, problem64, args, chunk=500):
    """For sizes without a reference: run ADMM (InteriorPoint with
    `--interior-point`, one step per chunk) in compiled chunks for at most
    `--trace-seconds`, printing after each chunk the objective, the best certified
    lower bound so far (float64, from the iterate) and the certified relative gap;
    stops once that gap is <= `--target`."""
    if args.interior_point:
        solver, chunk = sr.InteriorPoint(rtol=1e-14), 1
    else:
        solver = sr.ADMM(rtol=0.0, atol=0.0)
    start = time.perf_counter()
    run_chunk, y, state = chunk_runner(problem, solver, chunk)

    @jax.jit
    def certificate(y):
        y = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), y)
        return dual_bound(problem64, y.v, y.dual_s, y.dual_p)

    best = -np.inf
    print(f"{size}: steps | elapsed s | objective | best lower bound | certified gap")
    for k in range(1, args.max_steps // chunk + 1):
        y, state = run_chunk(y, state)
        obj, bound, _ = (float(a) for a in certificate(y))
        best = max(best, bound)
        gap = (obj - best) / abs(obj)
        elapsed = time.perf_counter() - start
        print(f"{k * chunk} | {elapsed:.0f} | {obj:.10g} | {best:.10g} | {gap:.1e}")
        if gap <= args.target or elapsed > args.trace_seconds:
            return


# the defaults first, then the settings tried with --settings
ADMM_SETTINGS = (
    ("default", {}),
    ("rho 1, relaxation 1 (previous defaults)", {"rho": 1.0, "relaxation": 1.0}),
    ("rho 0.3", {"rho": 0.3}),
    ("rho 0.03", {"rho": 0.03}),
    ("relaxation 1.0", {"relaxation": 1.0}),
    ("balancing off", {"adaptive_rho": False}),
    ("linear_solver dense", {"linear_solver": "dense"}),
    ("linear_solver woodbury", {"linear_solver": "woodbury"}),
)


# ----------------------------------------------------------------------------------
# cvxpy and pyscnn (not needed with --reference-json)
# ----------------------------------------------------------------------------------


def _cvxpy_worker(queue, X, y, patterns, gated, solver, kwargs):
    problem = make_problem(X, y, patterns, gated=gated)
    start = time.perf_counter()
    try:
        _, v = sr.cvxpy_solve(problem, solver=solver, **kwargs)
        queue.put((v, time.perf_counter() - start, ""))
    except Exception as e:  # noqa: BLE001
        queue.put((None, time.perf_counter() - start, f"{type(e).__name__}: {e}"))


def cvxpy_timed(X, y, patterns, gated, solver, timeout, **kwargs):
    """cvxpy in a subprocess killed after `timeout` seconds: (v or None, seconds,
    note)."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(
        target=_cvxpy_worker, args=(queue, X, y, patterns, gated, solver, kwargs)
    )
    start = time.perf_counter()
    proc.start()
    try:
        v, seconds, note = queue.get(timeout=timeout)
    except Exception:  # noqa: BLE001
        proc.kill()
        proc.join()
        return None, time.perf_counter() - start, f"not finished in {timeout:.0f} s"
    proc.join()
    return v, seconds, note


def _tolerance_sweep(rows, size, problem64, ref_obj, args, label, solves):
    """Run `solves` (pairs of a tolerance and a thunk returning `cvxpy_timed`'s
    result) from loose to tight, adding a row each, until the gap reaches the
    target or a solve fails."""
    for tol, solve in solves:
        v, t, note = solve()
        if v is None:
            rows.add(size, f"{label} {tol:g}", t, note=note)
            return
        obj, viol = score(problem64, v)
        gap = (obj - ref_obj) / abs(ref_obj)
        rows.add(size, f"{label} {tol:g}", t, None, obj, gap, viol)
        if abs(gap) <= args.target:
            return


def loose_cvxpy_rows(rows, size, X, y, patterns, problem64, ref_obj, args, gated):
    prefix = "gated: " if gated else ""
    solves = [
        (
            tol,
            lambda tol=tol: cvxpy_timed(
                X, y, patterns, gated, "CLARABEL", args.cvxpy_timeout, tol=tol
            ),
        )
        for tol in (1e-3, 1e-4, 1e-5, 1e-6)
    ]
    label = f"{prefix}cvxpy Clarabel tol"
    _tolerance_sweep(rows, size, problem64, ref_obj, args, label, solves)


def scs_rows(rows, size, X, y, patterns, problem64, ref_obj, args):
    solves = [
        (
            eps,
            lambda eps=eps: cvxpy_timed(
                X,
                y,
                patterns,
                False,
                "SCS",
                args.cvxpy_timeout,
                eps=eps,
                max_iters=100_000,
            ),
        )
        for eps in (1e-4, 1e-5, 1e-6)
    ]
    label = "cvxpy SCS eps"
    _tolerance_sweep(rows, size, problem64, ref_obj, args, label, solves)


def run_pyscnn(X, y, gates, name, tol):
    """pyscnn's AL (ReLU) or R-FISTA (gated ReLU) at tolerance `tol`: returns the
    convex weights (2P, d), the patterns they use, and the wall time."""
    from scnn.metrics import Metrics
    from scnn.models import ConvexGatedReLU, ConvexReLU
    from scnn.optimize import optimize_model
    from scnn.regularizers import NeuronGL1
    from scnn.solvers import AL, RFISTA

    n = X.shape[0]
    if name == "AL":
        model = ConvexReLU(gates)
        solver = AL(
            model,
            max_primal_iters=100_000,
            max_dual_iters=100_000,
            tol=tol,
            constraint_tol=tol,
        )
    else:
        model = ConvexGatedReLU(gates)
        solver = RFISTA(model, max_iters=100_000, tol=tol)
    start = time.perf_counter()
    model, _ = optimize_model(
        model,
        solver,
        Metrics(),
        X,
        y[:, None],
        regularizer=NeuronGL1(BETA / n),
        return_convex=True,
        unitize_data=False,
        dtype="float64",
    )
    elapsed = time.perf_counter() - start
    # pyscnn sorts/de-duplicates the patterns: use the gates it kept
    patterns = (X @ np.asarray(model.G) > 0).astype(np.float64)
    first = np.asarray(model.parameters[0])[0]
    second = np.asarray(model.parameters[1])[0] if name == "AL" else 0 * first
    return np.concatenate([first, second], axis=0), patterns, elapsed


def pyscnn_rows(rows, size, X, y, gates, ref_obj, ref_gated, args):
    for name, ref, gated in (("AL", ref_obj, False), ("RFISTA", ref_gated, True)):
        label = "pyscnn AL (ReLU)" if name == "AL" else "gated: pyscnn R-FISTA"
        for tol in (1e-6, 1e-7, 1e-8, 1e-9, 1e-10, 1e-11):
            try:
                v, patterns, t = run_pyscnn(X, y, gates, name, tol)
            except Exception as e:  # noqa: BLE001
                rows.add(size, label, note=f"failed: {type(e).__name__}: {e}")
                break
            problem64 = make_problem(X, y, patterns, gated=gated)
            obj, viol = score(problem64, v)
            gap = (obj - ref) / abs(ref)
            rows.add(size, f"{label} tol {tol:g}", t, None, obj, gap, viol)
            if abs(gap) <= args.target or t > args.cvxpy_timeout:
                break


# ----------------------------------------------------------------------------------
# Rows, references, main
# ----------------------------------------------------------------------------------


class Rows(list):
    """Table rows, printed as they arrive (long runs show progress)."""

    def add(
        self,
        size,
        name,
        t=None,
        c=None,
        obj=None,
        gap=None,
        viol=None,
        note="",
    ):
        row = (size, name, t, c, obj, gap, viol, note)
        self.append(row)
        extra = note if note else fmt(viol, ".1e")
        print(
            f"| {size} | {name} | {fmt(t, '.3f')} | {fmt(c, '.2f')} | "
            f"{fmt(obj, '.10g')} | {fmt(gap, '.1e')} | {extra} |",
            flush=True,
        )


def fmt(x, spec):
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return "-"
    return format(x, spec)


def write_reference(path, sizes, args):
    """Clarabel (tol 1e-9) optima of the ReLU and gated programs per size."""
    out = {}
    if path.exists():
        out = json.loads(path.read_text())
    for key in sizes:
        n, d, P = SIZES[key]
        X, y, patterns, _ = instance(n, d, P)
        entry = {
            "n": n,
            "d": d,
            "num_samples": P,
            "num_patterns": int(patterns.shape[1]),
            "beta": BETA,
            "fingerprint": fingerprint(X, y, patterns),
        }
        for gated, field in ((False, "objective"), (True, "objective_gated")):
            v, t, note = cvxpy_timed(
                X, y, patterns, gated, "CLARABEL", args.cvxpy_timeout, tol=1e-9
            )
            if v is None:
                entry[field] = None
                entry[field + "_note"] = f"Clarabel tol 1e-9: {note}"
                print(key, field, note, flush=True)
                continue
            obj, viol = score(make_problem(X, y, patterns, gated=gated), v)
            entry[field] = obj
            entry[field + "_note"] = (
                f"Clarabel tol 1e-9, {t:.1f} s, cone violation {viol:.1e}"
            )
            print(key, field, obj, entry[field + "_note"], flush=True)
        out[key] = entry
        path.write_text(json.dumps(out, indent=1) + "\n")


def _min_time(problem, solver, max_steps, repeats=3):
    """(min run seconds over `repeats` calls, compile seconds)."""
    sol, best, compile_time = time_solve(problem, solver, max_steps)
    for _ in range(repeats - 1):
        start = time.perf_counter()
        sol = sciopt.solve(problem, solver, max_steps=max_steps, throw=False)
        jax.block_until_ready(sol.value)
        best = min(best, time.perf_counter() - start)
    return best, compile_time


def per_step(ns, d, P, methods, dtype, steps=500):
    """Setup (factorization) time, per-step time and compile time of ADMM vs n: the
    best of three runs of 1 and of `steps + 1` steps; their difference / `steps` is
    the per-step time."""
    print()
    print(f"per-step cost, d = {d}, P = {P} sampled, {np.dtype(dtype).name}")
    print("| n | linear solver | setup s | ms per step | compile s |")
    print("|---|---|---|---|---|", flush=True)
    for n in ns:
        X, y, patterns, _ = instance(n, d, P)
        problem = make_problem(X, y, patterns, dtype=dtype)
        for method in methods:
            solver = sr.ADMM(rtol=0.0, atol=0.0, linear_solver=method)
            t1, c1 = _min_time(problem, solver, 1)
            t2, c2 = _min_time(problem, solver, steps + 1)
            step_ms = max(t2 - t1, 0.0) / steps * 1e3
            print(
                f"| {n} | {method} | {t1:.3f} | {step_ms:.3f} | {max(c1, c2):.2f} |",
                flush=True,
            )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="small", help="comma list of " + str(SIZES))
    parser.add_argument("--target", type=float, default=1e-4, help="relative gap")
    parser.add_argument("--max-steps", type=int, default=30_000)
    parser.add_argument("--settings", action="store_true", help="other ADMM settings")
    parser.add_argument("--float32", action="store_true", help="add float32 ADMM")
    parser.add_argument("--gated", action="store_true", help="add gated ADMM rows")
    parser.add_argument("--pyscnn", action="store_true", help="add pyscnn rows")
    parser.add_argument("--scs", action="store_true", help="add SCS rows (slow)")
    parser.add_argument("--no-cvxpy", action="store_true", help="skip loose Clarabel")
    parser.add_argument("--no-admm", action="store_true", help="skip ADMM rows")
    parser.add_argument(
        "--interior-point", action="store_true", help="add InteriorPoint rows"
    )
    parser.add_argument(
        "--ip-linear-solver",
        default="auto",
        choices=["auto", "woodbury", "dense"],
        help="InteriorPoint's Newton solve",
    )
    parser.add_argument(
        "--clarabel",
        action="store_true",
        help="loose Clarabel rows (default without --reference-json)",
    )
    parser.add_argument("--cvxpy-timeout", type=float, default=600.0)
    parser.add_argument("--per-step", action="store_true", help="step cost vs n")
    parser.add_argument("--full", action="store_true", help="bigger per-step sizes")
    parser.add_argument("--reference-json", type=pathlib.Path, default=None)
    parser.add_argument("--write-reference", type=pathlib.Path, default=None)
    parser.add_argument(
        "--reference-steps",
        type=int,
        default=50_000,
        help="ADMM steps that stand in for a missing stored optimum",
    )
    parser.add_argument(
        "--gap-rule",
        action="store_true",
        help="add rows of ADMM stopped by its duality-gap rule (gap_rtol = target)",
    )
    parser.add_argument(
        "--gap-rule-only",
        action="store_true",
        help="only the gap-rule rows (no stand-in reference needed)",
    )
    parser.add_argument(
        "--single-run", action="store_true", help="gap-rule solves run once"
    )
    parser.add_argument(
        "--trace-seconds",
        type=float,
        default=None,
        help="trace ADMM's (InteriorPoint's with --interior-point) certified gap "
        "(float32 with --float32) for this long",
    )
    args = parser.parse_args()
    sizes = [s for s in args.sizes.split(",") if s]
    for s in sizes:
        if s not in SIZES:
            parser.error(f"unknown size {s!r}; choose from {sorted(SIZES)}")
    device = jax.devices()[0]
    print(f"jax {jax.__version__}, device {device.platform} ({device.device_kind})")
    if args.write_reference is not None:
        write_reference(args.write_reference, sizes, args)
        return
    stored = {}
    if args.reference_json is not None:
        stored = json.loads(args.reference_json.read_text())
    print(f"time to relative objective gap <= {args.target:g} against Clarabel")
    print(
        "| (n, d, P) | method | run s | compile s | objective | rel. gap "
        "| cone viol. / note |"
    )
    print("|---|---|---|---|---|---|---|", flush=True)
    rows = Rows()
    for key in sizes:
        n, d, P = SIZES[key]
        X, y, patterns, gates = instance(n, d, P)
        size = f"({n}, {d}, {patterns.shape[1]})"
        problem64 = make_problem(X, y, patterns)
        gated64 = make_problem(X, y, patterns, gated=True)
        if args.reference_json is not None:
            entry = stored.get(key)
            if entry is None or entry["fingerprint"] != fingerprint(X, y, patterns):
                raise SystemExit(
                    f"{args.reference_json} has no matching entry for {key}: "
                    "regenerate it with --write-reference."
                )
            ref_obj, ref_gated = entry["objective"], entry["objective_gated"]
            if ref_obj is not None:
                rows.add(
                    size, "stored reference", obj=ref_obj, note=entry["objective_note"]
                )
            elif args.gap_rule_only or args.trace_seconds is not None:
                ref_obj = float("nan")
            else:
                # no independent optimum: the value ADMM reaches after many steps
                _, _, ref_obj = admm_trace(
                    problem64,
                    problem64,
                    sr.ADMM(rtol=0.0, atol=0.0),
                    args.reference_steps,
                    float("nan"),
                    args.target,
                )
                rows.add(
                    size,
                    f"ADMM after {args.reference_steps} steps (reference; not "
                    "independent)",
                    obj=ref_obj,
                    note=entry["objective_note"],
                )
        else:
            v, t, note = cvxpy_timed(
                X, y, patterns, False, "CLARABEL", args.cvxpy_timeout, tol=1e-9
            )
            if v is None:
                rows.add(size, "cvxpy Clarabel tol 1e-9", t, note=note)
                continue
            ref_obj, viol = score(problem64, v)
            rows.add(
                size, "cvxpy Clarabel tol 1e-9 (reference)", t, None, ref_obj, 0.0, viol
            )
            ref_gated = None
            if args.pyscnn or args.gated:
                v, t, note = cvxpy_timed(
                    X, y, patterns, True, "CLARABEL", args.cvxpy_timeout, tol=1e-9
                )
                ref_gated = score(gated64, v)[0] if v is not None else None
                rows.add(
                    size,
                    "gated: cvxpy Clarabel tol 1e-9 (reference)",
                    t,
                    None,
                    ref_gated,
                    0.0,
                    note=note,
                )
        # with stored optima, cvxpy and pyscnn run only when asked for
        if args.clarabel or (args.reference_json is None and not args.no_cvxpy):
            loose_cvxpy_rows(
                rows, size, X, y, patterns, problem64, ref_obj, args, False
            )
        if args.scs:
            scs_rows(rows, size, X, y, patterns, problem64, ref_obj, args)
        if args.pyscnn and ref_gated is not None:
            pyscnn_rows(rows, size, X, y, gates, ref_obj, ref_gated, args)
        if args.trace_seconds is not None:
            dtype = np.float32 if args.float32 else np.float64
            problem = make_problem(X, y, patterns, dtype=dtype)
            certify_trace(size, problem, problem64, args)
            continue
        if args.gap_rule or args.gap_rule_only:
            label = "sciopt ADMM default"
            gap_rule_row(rows, size, label, problem64, problem64, ref_obj, args)
            if args.float32:
                problem32 = make_problem(X, y, patterns, dtype=np.float32)
                label += ", float32"
                gap_rule_row(rows, size, label, problem32, problem64, ref_obj, args)
        if args.interior_point:
            interior_point_rows(rows, size, problem64, problem64, ref_obj, args)
        if args.no_admm or args.gap_rule_only:
            continue
        settings = ADMM_SETTINGS if args.settings else ADMM_SETTINGS[:1]
        for label, kw in settings:
            solver = sr.ADMM(rtol=0.0, atol=0.0, **kw)
            admm_row(
                rows,
                size,
                f"sciopt ADMM {label}",
                problem64,
                problem64,
                solver,
                ref_obj,
                args,
            )
        if args.float32:
            problem32 = make_problem(X, y, patterns, dtype=np.float32)
            solver = sr.ADMM(rtol=0.0, atol=0.0)
            admm_row(
                rows,
                size,
                "sciopt ADMM default, float32",
                problem32,
                problem64,
                solver,
                ref_obj,
                args,
            )
        if (args.gated or args.pyscnn) and ref_gated is not None:
            solver = sr.ADMM(rtol=0.0, atol=0.0)
            admm_row(
                rows,
                size,
                "gated: sciopt ADMM default",
                gated64,
                gated64,
                solver,
                ref_gated,
                args,
            )
    if args.per_step:
        ns = (500, 1000, 2000, 4000, 8000) if args.full else (500, 1000, 2000, 4000)
        per_step(ns, 10, 20, ("woodbury", "dense"), np.float64)
        if args.float32:
            per_step(ns, 10, 20, ("woodbury", "dense"), np.float32)


if __name__ == "__main__":
    main()
