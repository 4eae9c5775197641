"""Gallery hook of `sciopt.relu`: convex training against cvxpy and Adam.

Table keys (see `problems/relu.toml`): `dataset` (`planted`, `one_dimensional`,
`gaussian`, `breast_cancer`, `digits`), sizes `n` / `quick_n` (training samples) and
`d`, `seed`, `beta`, `loss`, `bias`, `num_patterns` / `quick_num_patterns` (sampled;
`patterns = "exact"` enumerates), `kind` (`convex`, `adversarial` with `eps`,
`exact_vs_sampled`), `cvxpy` (compare with cvxpy/Clarabel), `rtol` (the tolerance on
the relative objective gap), `max_steps`, and `adam = {seeds, steps, learning_rate,
widths}` (`widths` defaults to `[2 P, max(8, P // 2)]`).

Every problem with Adam runs also gets a `sciopt.relu.optimal_network` row: the
sampled patterns plus the patterns of every Adam network, then pattern pricing
(Pilanci & Ergen 2020's dual condition; column generation). It passes only when its
network's weight-decay objective is at most the best Adam objective (relative 1e-6);
the sampled-patterns row stays as the plain-sampling baseline.
"""

import math
import pathlib
import time
import types

import jax
import jax.numpy as jnp
import numpy as np
import optax

import sciopt

from ..datasets import load_relu_table
from ..relu import (
    accuracy,
    AdversarialReLUProblem,
    ConvexReLUProblem,
    cvxpy_solve,
    enumerate_patterns,
    FISTA,
    from_spec,
    init_network,
    nonconvex_objective,
    optimal_network,
    sample_directions,
    sample_patterns,
    SampledConvexProgram,
    to_network,
)


def _build(data, quick):
    """The gallery table's problem, and its train/test arrays."""
    spec = types.SimpleNamespace(name=data.get("name", "?"), data=data)
    return from_spec(spec, quick=quick), load_relu_table(data, quick)


def _timed_solve(problem, solver, max_steps):
    start = time.perf_counter()
    sol = sciopt.solve(problem, solver, max_steps=max_steps, throw=False)
    jax.block_until_ready(sol.value)
    first = time.perf_counter() - start
    start = time.perf_counter()
    sol = sciopt.solve(problem, solver, max_steps=max_steps, throw=False)
    jax.block_until_ready(sol.value)
    run = time.perf_counter() - start
    return sol, run, max(first - run, 0.0)


def _status(sol):
    if sol.result == sciopt.RESULTS.successful:
        return "ok"
    if sol.result == sciopt.RESULTS.steps_exhausted:
        return "max_steps"
    return "failed"


def _adam_rows(spec, problem, data, arrays, convex_obj, quick, width):
    X, y, Xt, yt = arrays
    cfg = data.get("adam", {})
    seeds = int(cfg.get("quick_seeds" if quick else "seeds", 3))
    steps = int(cfg.get("quick_steps" if quick else "steps", 2000))
    lr = float(cfg.get("learning_rate", 1e-2))
    loss_name = problem.loss
    beta = float(problem.beta)
    bias = problem.bias

    def loss(net, batch, key):
        return nonconvex_objective(net, X, y, beta, loss_name)

    objs, train_acc, test_acc, times = [], [], [], []
    nets = []
    for seed in range(seeds):
        net = init_network(jax.random.key(100 + seed), X.shape[1], width, bias=bias)
        fit = sciopt.fit(
            net,
            loss,
            key=jax.random.key(seed),
            steps=steps,
            optimiser=optax.adam(lr),
            throw=False,
        )
        objs.append(float(nonconvex_objective(fit.model, X, y, beta, loss_name)))
        times.append(float(fit.wall_time))
        nets.append(fit.model)
        if loss_name != "squared":
            train_acc.append(float(accuracy(fit.model, X, y)))
            test_acc.append(float(accuracy(fit.model, Xt, yt)))
    objs = np.asarray(objs)
    note = (
        f"Adam (lr={lr}, {steps} steps, width {width}) on the non-convex objective, "
        f"{seeds} seeds: objective {objs.min():.6g}..{objs.max():.6g}"
    )
    if test_acc:
        note += (
            f"; train acc {np.mean(train_acc):.3f}±{np.std(train_acc):.3f}, "
            f"test acc {np.mean(test_acc):.3f}±{np.std(test_acc):.3f} "
            f"(min {np.min(test_acc):.3f}, max {np.max(test_acc):.3f})"
        )
    row = sciopt.gallery.GalleryRow(
        problem=spec.name,
        solver=f"Adam x{seeds} (baseline)",
        status="ok",
        objective=float(objs.min()),
        reference=convex_obj,
        error=float((objs.min() - convex_obj) / abs(convex_obj)),
        iterations=steps,
        time=float(np.mean(times)),
        passed=True,
        note=note,
        checked=False,
    )
    return row, nets, test_acc


def _adam_widths(data, num_patterns):
    widths = data.get("adam", {}).get("widths")
    if widths is None:
        widths = sorted({2 * num_patterns, max(8, num_patterns // 2)}, reverse=True)
    return [int(w) for w in widths]


def _adam_best(spec, problem, data, arrays, convex_obj, quick, widths):
    """Adam rows for every width; the networks of all runs and the best objective."""
    rows, nets, accs = [], [], []
    for width in widths:
        row, width_nets, acc = _adam_rows(
            spec, problem, data, arrays, convex_obj, quick, width
        )
        row.solver = f"{row.solver.replace(' (baseline)', '')}, width {width}"
        row.solver += " (baseline)"
        rows.append(row)
        nets += width_nets
        accs += acc
    best = min(row.objective for row in rows)
    return rows, nets, accs, best


def _optimal_row(spec, data, quick, arrays, problem, adam_nets, adam_best):
    """`optimal_network` with the Adam networks' patterns, checked against the best
    Adam objective (relative 1e-6)."""
    X, y, Xt, yt = arrays
    beta = float(problem.beta)
    loss = problem.loss
    num = int(data.get("quick_num_patterns" if quick else "num_patterns", 20))
    start = time.perf_counter()
    net, sol = optimal_network(
        X,
        y,
        beta,
        loss=loss,
        key=jax.random.key(int(data.get("seed", 0))),
        bias=problem.bias,
        num_patterns=num,
        networks=adam_nets,
        max_rounds=int(data.get("pricing_rounds", 20)),
        throw=False,
    )
    elapsed = time.perf_counter() - start
    obj = float(nonconvex_objective(net, X, y, beta, loss))
    stats = sol.stats
    exact = bool(stats["pricing_exact"])
    passed = obj <= adam_best * (1 + 1e-6) and math.isfinite(obj)
    note = (
        f"sampled ({num}) + Adam networks' patterns ({len(adam_nets)} nets) + "
        f"pricing: {int(stats['pricing_rounds'])} rounds, "
        f"{int(stats['num_patterns'])} patterns in the last program "
        f"({int(stats['patterns_generated'])} generated), largest violation found "
        f"{float(stats['max_violation']):.1e} of beta "
        + (
            "(exact pricing: every pattern checked)"
            if exact
            else f"(search: {int(stats['pricing_searches'])} directions, last round)"
        )
        + f"; certified gap of the last program "
        f"{float(stats['duality_gap']) / abs(obj):.1e}; width {net.width}; "
        f"reference: best Adam objective; {_result_name(sol)}"
    )
    if loss != "squared":
        note += (
            f"; train acc {float(accuracy(net, X, y)):.3f}, "
            f"test acc {float(accuracy(net, Xt, yt)):.3f}"
        )
    else:
        mse = float(jnp.mean(jnp.square(net(jnp.asarray(Xt)) - yt)))
        note += f"; test MSE {mse:.4g}"
    return sciopt.gallery.GalleryRow(
        problem=spec.name,
        solver="optimal_network (sampling + Adam patterns + pricing)",
        status="ok" if passed else "failed",
        objective=obj,
        reference=adam_best,
        error=(obj - adam_best) / abs(adam_best),
        iterations=int(stats["pricing_rounds"]),
        time=elapsed,
        passed=bool(passed),
        note=note,
    )


def _result_name(sol):
    """The result's name (`successful`, `steps_exhausted`, ...)."""
    for name in ("successful", "steps_exhausted", "newton_stalled"):
        if sol.result == getattr(sciopt.RESULTS, name):
            return f"result {name}"
    return "result failed"


def _plot_accuracy(out_dir, name, convex_acc, adam_acc):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 3))
    ax.bar([0], [convex_acc], color="C0", label="convex (ADMM)")
    ax.scatter(np.ones(len(adam_acc)), adam_acc, color="C1", label="Adam seeds")
    ax.set_xticks([0, 1], ["convex", "Adam"])
    lo = min([convex_acc, *adam_acc])
    ax.set_ylim(max(0.0, lo - 0.05), 1.0)
    ax.set_ylabel("test accuracy")
    ax.legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    fname = f"{name}.png"
    fig.savefig(out_dir / fname, dpi=100)
    plt.close(fig)
    return fname


def _plot_1d(out_dir, name, X, y, nets):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = np.linspace(X.min() - 0.2, X.max() + 0.2, 400)[:, None]
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.scatter(X[:, 0], y, s=10, color="k", label="data")
    for label, net in nets.items():
        ax.plot(grid[:, 0], np.asarray(net(jnp.asarray(grid))), label=label)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fname = f"{name}.png"
    fig.savefig(out_dir / fname, dpi=100)
    plt.close(fig)
    return fname


def _admm(data):
    gap_rtol = data.get("admm_gap_rtol")
    return sciopt.relu.ADMM(
        rtol=float(data.get("admm_rtol", 1e-6)),
        atol=float(data.get("admm_atol", 1e-8)),
        relaxation=float(data.get("admm_relaxation", 1.6)),
        gap_rtol=None if gap_rtol is None else float(gap_rtol),
    )


def _convex_row(
    spec, problem, data, quick, arrays, solver_name="ADMM", solver=None, cache=None
):
    """One solve checked against cvxpy (computed once per problem: `cache`) or, where
    cvxpy is not run, against the solver's certified lower bound."""
    max_steps = int(data.get("max_steps", 50_000))
    solver = _admm(data) if solver is None else solver
    cache = {} if cache is None else cache
    sol, run, compile_time = _timed_solve(problem, solver, max_steps)
    obj = float(sol.stats["objective"])
    viol = float(sol.stats["cone_violation"])
    reference, error, passed, note = math.nan, math.nan, True, ""
    rtol = float(data.get("rtol", 1e-4))
    use_cvxpy = bool(data.get("cvxpy", True)) and (
        quick or bool(data.get("cvxpy_full", True))
    )
    if use_cvxpy:
        if "cvxpy" not in cache:
            start = time.perf_counter()
            cache["cvxpy"] = cvxpy_solve(problem, tol=1e-9)[0]
            cache["cvxpy_time"] = time.perf_counter() - start
        reference, cvx_time = cache["cvxpy"], cache["cvxpy_time"]
        error = abs(obj - reference) / abs(reference)
        passed = (
            error <= rtol and viol <= 1e-5 and sol.result == sciopt.RESULTS.successful
        )
        note = f"reference: cvxpy/Clarabel ({cvx_time:.1f} s); "
    elif "duality_gap" in sol.stats:
        # no reference solver: the certified lower bound checks the objective
        reference = float(sol.stats["lower_bound"])
        error = float(sol.stats["duality_gap"]) / abs(obj)
        passed = (
            error <= rtol and viol <= 1e-5 and sol.result == sciopt.RESULTS.successful
        )
        note = "reference: certified lower bound (Lagrangian duality); "
    if "duality_gap" in sol.stats:
        note += f"certified gap {float(sol.stats['duality_gap']) / abs(obj):.1e}; "
    net = to_network(problem, sol)
    X, y, Xt, yt = arrays
    note += (
        f"cone violation {viol:.1e}; compile {compile_time:.1f} s; width {net.width}"
    )
    if problem.loss != "squared":
        note += (
            f"; train acc {float(accuracy(net, X, y)):.3f}, "
            f"test acc {float(accuracy(net, Xt, yt)):.3f}"
        )
    else:
        mse = float(jnp.mean(jnp.square(net(jnp.asarray(Xt)) - yt)))
        note += f"; test MSE {mse:.4g}"
    row = sciopt.gallery.GalleryRow(
        problem=spec.name,
        solver=solver_name,
        status=_status(sol),
        objective=obj,
        reference=reference,
        error=error,
        iterations=int(sol.stats["num_steps"]),
        time=run,
        passed=bool(passed),
        note=note,
    )
    return row, sol, net


def _exact_vs_sampled(spec, data, quick, out_dir):
    X, y, Xt, yt = load_relu_table(data, quick)
    bias = bool(data.get("bias", True))
    beta = float(data["beta"])
    exact = enumerate_patterns(X, bias=bias)
    sampled = sample_patterns(
        jax.random.key(int(data.get("seed", 0))),
        X,
        int(data.get("num_samples", 5000)),
        bias=bias,
    )
    arrays = (X, y, Xt, yt)
    rows, nets = [], {}
    p_exact = ConvexReLUProblem(X, y, exact, beta, bias=bias)
    row_e, sol_e, net_e = _convex_row(
        spec, p_exact, data, quick, arrays, f"ADMM, exact patterns (P={exact.shape[1]})"
    )
    rows.append(row_e)
    nets["convex (exact patterns)"] = net_e
    optimum = row_e.reference if not math.isnan(row_e.reference) else row_e.objective
    p_s = ConvexReLUProblem(X, y, sampled, beta, bias=bias)
    row_s, sol_s, net_s = _convex_row(
        spec, p_s, data, quick, arrays, f"ADMM, sampled patterns (P={sampled.shape[1]})"
    )
    row_s.reference = optimum
    row_s.error = abs(row_s.objective - optimum) / abs(optimum)
    row_s.passed = bool(
        row_s.error <= float(data.get("rtol", 1e-4))
        and sol_s.result == sciopt.RESULTS.successful
    )
    row_s.note = (
        f"same pattern set as the enumeration: {sampled.shape == exact.shape}; "
        + row_s.note.split("; ", 1)[-1]
    )
    rows.append(row_s)
    H = sample_directions(
        jax.random.key(1), X.shape[1], int(data.get("scp_directions", 200)), bias=bias
    )
    scp = SampledConvexProgram(X, y, H, beta, bias=bias)
    sol, run, compile_time = _timed_solve(scp, FISTA(rtol=1e-6), 500_000)
    obj = float(sol.stats["objective"])
    gap = (obj - optimum) / abs(optimum)
    rows.append(
        sciopt.gallery.GalleryRow(
            problem=spec.name,
            solver=f"FISTA, sampled program (N={H.shape[1]})",
            status=_status(sol),
            objective=obj,
            reference=optimum,
            error=gap,
            iterations=int(sol.stats["num_steps"]),
            time=run,
            passed=bool(gap >= -1e-6 and sol.result == sciopt.RESULTS.successful),
            note="an upper bound on the exact optimum (passes when >= it); compile "
            f"{compile_time:.1f} s",
        )
    )
    nets["sampled convex program"] = to_network(scp, sol)
    adam_rows, adam_nets, _, adam_best = _adam_best(
        spec, p_exact, data, arrays, optimum, quick, [2 * exact.shape[1]]
    )
    rows += adam_rows
    best = int(
        np.argmin([float(nonconvex_objective(n, X, y, beta)) for n in adam_nets])
    )
    nets["Adam (best seed)"] = adam_nets[best]
    opt_row = _optimal_row(spec, data, quick, arrays, p_s, adam_nets, adam_best)
    # with exact pricing the result must also match the exact optimum
    opt_row.note += f"; exact optimum {optimum:.8g}"
    opt_row.passed = bool(
        opt_row.passed
        and opt_row.objective <= optimum * (1 + float(data.get("rtol", 1e-4)))
    )
    rows.append(opt_row)
    rows[0].figures = [_plot_1d(out_dir, spec.name, X, y, nets)]
    return rows


def run(spec, *, quick: bool, out_dir: pathlib.Path):
    """Run one `relu` gallery table; returns its `GalleryRow`s."""
    data = spec.data
    out_dir = pathlib.Path(out_dir)
    if data.get("kind") == "exact_vs_sampled":
        return _exact_vs_sampled(spec, data, quick, out_dir)
    problem, arrays = _build(data, quick)
    cache = {}
    row, sol, net = _convex_row(spec, problem, data, quick, arrays, cache=cache)
    row.note = (
        f"plain sampling baseline ({problem.num_patterns} sampled patterns); "
        + row.note
    )
    rows = [row]
    if data.get("interior_point", False):
        solver = sciopt.relu.InteriorPoint(rtol=float(data.get("ip_rtol", 1e-6)))
        ip_row, _, _ = _convex_row(
            spec, problem, data, quick, arrays, "InteriorPoint", solver, cache
        )
        rows.append(ip_row)
    if "adam" in data and not isinstance(problem, AdversarialReLUProblem):
        widths = _adam_widths(data, problem.num_patterns)
        adam_rows, adam_nets, adam_acc, adam_best = _adam_best(
            spec, problem, data, arrays, row.objective, quick, widths
        )
        rows += adam_rows
        rows.append(
            _optimal_row(spec, data, quick, arrays, problem, adam_nets, adam_best)
        )
        if adam_acc:
            X, y, Xt, yt = arrays
            rows[0].figures = [
                _plot_accuracy(
                    out_dir, spec.name, float(accuracy(net, Xt, yt)), adam_acc
                )
            ]
    return rows
