"""Sampling against pattern pricing for the convex ReLU program, and both against Adam.

For each problem: the convex objective with P sampled patterns (sampling only,
`optimal_network(..., pricing="none")`) for several P; the objective against the
number of patterns along `optimal_network`'s pricing rounds from 16 sampled patterns;
the best of several Adam runs (widths and seeds) on the same weight-decay objective;
`optimal_network` with the Adam networks' patterns; and the time until pricing alone
reaches a network at least as good as Adam's best. Writes a markdown page (and a
plot of objective against patterns when matplotlib is present).

    python benchmarks/bench_relu_pricing.py                      # gallery problems
    python benchmarks/bench_relu_pricing.py --synthetic 2000 20  # (n, d) planted
    python benchmarks/bench_relu_pricing.py --synthetic 10000 50 # long: see the page
"""

import argparse
import json
import pathlib
import time
import tomllib

import jax
import numpy as np
import optax


jax.config.update("jax_enable_x64", True)

import sciopt  # noqa: E402
import sciopt.relu as sr  # noqa: E402
from sciopt.datasets import load_relu_table  # noqa: E402


ROOT = pathlib.Path(__file__).resolve().parents[1]


def _gallery(name, quick):
    tables = tomllib.loads((ROOT / "problems" / "relu.toml").read_text())["problem"]
    data = next(t for t in tables if t["name"] == name)
    X, y, _, _ = load_relu_table(data, quick)
    return (
        np.asarray(X),
        np.asarray(y),
        float(data["beta"]),
        data.get("loss", "squared"),
    )


def _synthetic(n, d, seed=0, width=8, noise=0.1):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    U = rng.standard_normal((width, d + 1)) / np.sqrt(d)
    a = rng.standard_normal(width)
    Xb = np.concatenate([X, np.ones((n, 1))], axis=1)
    y = np.maximum(Xb @ U.T, 0) @ a + noise * rng.standard_normal(n)
    return X, y, 0.1 * np.sqrt(n / 100), "squared"


def _adam(X, y, beta, loss, widths, seeds, steps):
    def objective(net, batch, key):
        return sr.nonconvex_objective(net, X, y, beta, loss)

    nets, objs, start = [], [], time.perf_counter()
    for width in widths:
        for seed in range(seeds):
            net = sr.init_network(
                jax.random.key(100 + seed), X.shape[1], width, bias=True
            )
            fit = sciopt.fit(
                net,
                objective,
                key=jax.random.key(seed),
                steps=steps,
                optimiser=optax.adam(1e-2),
                throw=False,
            )
            nets.append(fit.model)
            objs.append(float(sr.nonconvex_objective(fit.model, X, y, beta, loss)))
    return nets, np.asarray(objs), time.perf_counter() - start


def _priced(X, y, beta, loss, key, args, **kwargs):
    """`optimal_network` from 16 sampled patterns with pricing rounds."""
    _, sol = sr.optimal_network(
        X,
        y,
        beta,
        loss=loss,
        key=key,
        bias=True,
        num_patterns=16,
        max_rounds=args.rounds,
        throw=False,
        **kwargs,
    )
    return sol


def _pricing_alone(X, y, beta, loss, key, best, args):
    """Pricing rounds from 16 sampled patterns, no trained network given."""
    trace = []
    sol = _priced(X, y, beta, loss, key, args, callback=trace.append)
    reach = next(
        (r["time"] for r in trace if r["objective"] <= best * (1 + 1e-6)), None
    )
    return dict(
        objective=float(sol.stats["network_objective"]),
        rounds=int(sol.stats["pricing_rounds"]),
        num_patterns=int(sol.stats["num_patterns"]),
        generated=int(sol.stats["patterns_generated"]),
        max_violation=float(sol.stats["max_violation"]),
        exact=bool(sol.stats["pricing_exact"]),
        time=float(sol.stats["wall_time"]),
        time_to_adam=reach,
        trace=trace,
    )


def run(name, X, y, beta, loss, args):
    out = {"problem": name, "n": X.shape[0], "d": X.shape[1], "beta": beta}
    key = jax.random.key(0)
    sampling = []
    for P in args.sampled:
        start = time.perf_counter()
        _, sol = sr.optimal_network(
            X,
            y,
            beta,
            loss=loss,
            key=key,
            bias=True,
            num_patterns=P,
            pricing="none",
            throw=False,
        )
        sampling.append(
            dict(
                sampled=P,
                num_patterns=int(sol.stats["num_patterns"]),
                objective=float(sol.stats["network_objective"]),
                time=time.perf_counter() - start,
            )
        )
        print(name, "sampling", sampling[-1], flush=True)
    out["sampling"] = sampling
    nets, objs, adam_time = _adam(
        X, y, beta, loss, args.widths, args.seeds, args.adam_steps
    )
    best = float(objs.min())
    out["adam"] = dict(
        best=best, worst=float(objs.max()), runs=len(objs), time=adam_time
    )
    print(name, "adam", out["adam"], flush=True)
    out["pricing"] = (
        None
        if args.no_pricing_alone
        else _pricing_alone(X, y, beta, loss, key, best, args)
    )
    sol = _priced(X, y, beta, loss, key, args, networks=nets)
    out["with_adam"] = dict(
        objective=float(sol.stats["network_objective"]),
        rounds=int(sol.stats["pricing_rounds"]),
        num_patterns=int(sol.stats["num_patterns"]),
        max_violation=float(sol.stats["max_violation"]),
        time=float(sol.stats["wall_time"]),
    )
    print(name, "with Adam patterns", out["with_adam"], flush=True)
    return out


def _markdown(results):
    lines = [
        "| problem | method | patterns | objective | vs best Adam | time (s) |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        best = r["adam"]["best"]
        tag = f"{r['problem']} (n={r['n']}, d={r['d']})"

        def rel(v):
            return f"{(v - best) / abs(best):+.2e}"

        for s in r["sampling"]:
            lines.append(
                f"| {tag} | sampling only ({s['sampled']} directions) | "
                f"{s['num_patterns']} | {s['objective']:.6g} | {rel(s['objective'])} "
                f"| {s['time']:.1f} |"
            )
        a = r["adam"]
        lines.append(
            f"| {tag} | Adam, best of {a['runs']} runs | - | {best:.6g} | 0 | "
            f"{a['time']:.1f} (all runs) |"
        )
        p = r["pricing"]
        if p is not None:
            kind = "exact" if p["exact"] else "search"
            reach = (
                "never" if p["time_to_adam"] is None else f"{p['time_to_adam']:.1f} s"
            )
            lines.append(
                f"| {tag} | pricing from 16 sampled ({p['rounds']} rounds, {kind}; "
                f"violation {p['max_violation']:.1e}; at Adam's best after {reach}) "
                f"| {p['num_patterns']} ({p['generated']} generated) | "
                f"{p['objective']:.6g} | {rel(p['objective'])} | {p['time']:.1f} |"
            )
        w = r["with_adam"]
        lines.append(
            f"| {tag} | 16 sampled + Adam patterns + pricing ({w['rounds']} rounds) | "
            f"{w['num_patterns']} | {w['objective']:.6g} | {rel(w['objective'])} | "
            f"{w['time']:.1f} |"
        )
    return "\n".join(lines)


def _plot(results, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    results = [r for r in results if r["sampling"] or r["pricing"] is not None]
    if not results:
        return None  # nothing plotted against the number of patterns
    fig, axes = plt.subplots(1, len(results), figsize=(4.5 * len(results), 3.2))
    axes = np.atleast_1d(axes)
    for ax, r in zip(axes, results):
        s = r["sampling"]
        ax.plot(
            [x["num_patterns"] for x in s],
            [x["objective"] for x in s],
            "o-",
            label="sampling only",
        )
        t = r["pricing"]["trace"] if r["pricing"] is not None else []
        ax.plot(
            [x["num_patterns"] for x in t],
            [x["objective"] for x in t],
            "s-",
            label="pricing rounds",
        )
        ax.axhline(r["adam"]["best"], color="k", ls="--", label="best Adam")
        ax.set_xscale("log")
        ax.set_xlabel("patterns in the program")
        ax.set_ylabel("weight-decay objective")
        ax.set_title(r["problem"], fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--synthetic", nargs=2, type=int, action="append", default=[])
    parser.add_argument("--no-gallery", action="store_true")
    parser.add_argument("--full", action="store_true", help="full gallery sizes")
    parser.add_argument("--sampled", nargs="*", type=int, default=[16, 64, 256])
    parser.add_argument(
        "--no-pricing-alone",
        action="store_true",
        help="skip pricing from sampled patterns alone (run only with Adam's patterns)",
    )
    parser.add_argument("--widths", nargs="+", type=int, default=[16, 64])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--adam-steps", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks"))
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    problems = []
    if not args.no_gallery:
        for name in ("relu-planted-regression", "relu-breast-cancer"):
            problems.append((name, *_gallery(name, not args.full)))
    for n, d in args.synthetic:
        problems.append((f"planted (n={n}, d={d})", *_synthetic(n, d)))
    results = [run(name, X, y, beta, loss, args) for name, X, y, beta, loss in problems]
    out = pathlib.Path(args.out)
    table = _markdown(results)
    print(table)
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(results, indent=1))
    plot = _plot(results, out / "relu-pricing.png")
    print("plot:", plot)


if __name__ == "__main__":
    main()
