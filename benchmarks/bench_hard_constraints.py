"""Benchmarks of the hard-constrained PDE layers (sciopt.pde).

1. Accuracy: test relative L2 of PI-SC vs PI-HC vs PI-HC-MoE (K = 2, 4, 8) on viscous
   Burgers and diffusion-sorption at the same training budget, over test instances
   and seeds (`--part accuracy`).
2. Cost: time per training step and per inference against the number of sampled
   points for PI-HC and PI-HC-MoE (K = 4), compile time apart, with XLA's flop
   counts (`--part timing`); a PNG plot of the times.

The default sizes are bounded (minutes on a 2-core CPU); `--full` runs more steps,
seeds and points. The paper's numbers (ICLR 2024) are at full GPU scale: compare
orderings, not absolute values.

Usage: python benchmarks/bench_hard_constraints.py [--part accuracy|timing|all]
       [--full] [--out DIR]
"""

import argparse
import functools as ft
import json
import platform
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.random as jr
import numpy as np


jax.config.update("jax_enable_x64", True)

import sciopt  # noqa: E402
from sciopt import pde as sp  # noqa: E402


def _models(problem, grid, n_basis, m, splits_list, key, interface_weight=1.0):
    basis = sp.BasisNetwork(
        n_basis,
        problem.num_sensors,
        problem.t_span,
        problem.x_span,
        width=32,
        depth=2,
        key=key,
    )
    out = {
        "PI-SC": sp.SoftConstraintModel(
            problem, basis, grid=grid, key=jr.fold_in(key, 1)
        ),
        "PI-HC": sp.HardConstraintLayer(problem, basis, grid=grid, num_points=m),
    }
    for splits in splits_list:
        k = splits[0] * splits[1]
        block = (grid[0] // splits[0]) * (grid[1] // splits[1])
        out[f"PI-HC-MoE K={k}"] = sp.MoEHardConstraint(
            problem,
            basis,
            grid=grid,
            splits=splits,
            num_points=min(m, block),
            interface_weight=interface_weight,
        )
    return out


def accuracy(full: bool, out: Path, seeds=None, pdes=None) -> dict:
    steps = 600 if full else 200
    if seeds is None:
        seeds = [0, 1, 2] if full else [0, 1]
    grid = (16, 32)
    results = {}
    for pde in pdes or ("burgers", "diffusion_sorption"):
        problem = sp.hc_problem(pde)
        test = problem.sample(jr.key(1000), 16)
        refs = sp.hc_reference_grid(problem, test, *grid)
        for seed in seeds:
            key = jr.key(seed)
            train = problem.sample(jr.fold_in(key, 7), 64)
            models = _models(problem, grid, 16, 96, [(1, 2), (1, 4), (1, 8)], key)
            for name, model in models.items():
                res = sciopt.fit(
                    model,
                    ft.partial(sp.hc_loss, num_points=128),
                    train,
                    key=jr.fold_in(key, 9),
                    steps=steps,
                    batch_size=4,
                    chunk_size=steps,
                    throw=False,
                )
                err, _ = sp.hc_relative_l2(res.model, test, refs, jr.key(3))
                err = np.asarray(err)
                results.setdefault(pde, {}).setdefault(name, []).append(
                    {"seed": seed, "errors": err.tolist(), "wall": res.wall_time}
                )
                print(
                    f"{pde:20s} seed {seed} {name:16s} rel L2 {100 * err.mean():6.1f}"
                    f" +- {100 * err.std():5.1f}%  ({res.wall_time:.0f}s)",
                    flush=True,
                )
    print("\nSummary (mean +- std over test instances and seeds):")
    for pde, by_model in results.items():
        for name, runs in by_model.items():
            allerr = np.concatenate([r["errors"] for r in runs])
            seed_means = [np.mean(r["errors"]) for r in runs]
            print(
                f"| {pde} | {name} | {100 * allerr.mean():.1f} +- "
                f"{100 * allerr.std():.1f}% | seed means "
                + ", ".join(f"{100 * s:.1f}%" for s in seed_means)
                + " |"
            )
    tag = "_".join(pdes or ["all"]) + "_" + "_".join(map(str, seeds))
    (out / f"hc_accuracy_{tag}.json").write_text(json.dumps(results))
    return results


def _time(fn, *args, repeats=3):
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    first = time.perf_counter() - t0
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        runs.append(time.perf_counter() - t0)
    return first, float(np.median(runs))


def timing(full: bool, out: Path) -> dict:
    problem = sp.hc_problem("diffusion_sorption")
    points = [100, 1000, 10_000, 100_000] if full else [100, 1000, 10_000]
    grid = (256, 512) if full else (128, 128)
    batch = problem.sample(jr.key(0), 2)
    basis = sp.BasisNetwork(
        16,
        problem.num_sensors,
        problem.t_span,
        problem.x_span,
        width=32,
        depth=2,
        key=jr.key(1),
    )
    rows = []
    for m in points:
        models = {
            "PI-HC": sp.HardConstraintLayer(problem, basis, grid=grid, num_points=m),
            "PI-HC-MoE K=4": sp.MoEHardConstraint(
                problem, basis, grid=grid, splits=(1, 4), num_points=m // 4
            ),
        }
        for name, model in models.items():
            loss = ft.partial(sp.hc_loss, num_points=128)

            @eqx.filter_jit
            def train_step(model, batch, key):
                return eqx.filter_value_and_grad(loss)(model, batch, key)

            @eqx.filter_jit
            def infer(model, batch, key):
                keys = jr.split(key, batch.shape[0])
                return jax.vmap(lambda p, k: model.solve(p, k))(batch, keys)

            key = jr.key(2)
            c_train, t_train = _time(train_step, model, batch, key)
            c_inf, t_inf = _time(infer, model, batch, key)
            sol = infer(model, batch, key)
            steps = np.asarray(sol.stats["num_steps"])
            flops = {}
            for label, fn in (("train", train_step), ("infer", infer)):
                try:
                    cost = fn.lower(model, batch, key).compile().cost_analysis()
                    cost = cost[0] if isinstance(cost, list) else cost
                    flops[label] = float(cost.get("flops", float("nan")))
                except Exception:
                    flops[label] = float("nan")
            row = dict(
                model=name,
                points=m,
                train_s=t_train,
                train_compile_s=c_train - t_train,
                infer_s=t_inf,
                infer_compile_s=c_inf - t_inf,
                lm_steps_mean=float(steps.mean()),
                solves=int(steps.size),
                train_gflop=flops["train"] / 1e9,
                infer_gflop=flops["infer"] / 1e9,
            )
            rows.append(row)
            print(
                f"| {name} | {m} | {1e3 * t_train:.1f} | {1e3 * t_inf:.1f} | "
                f"{row['train_compile_s']:.1f} | {row['lm_steps_mean']:.1f} x "
                f"{row['solves']} | {row['train_gflop']:.3g} | "
                f"{row['infer_gflop']:.3g} |",
                flush=True,
            )
    (out / "hc_timing.json").write_text(json.dumps(rows))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(8, 3))
        for ax, field, title in (
            (axes[0], "train_s", "training step"),
            (axes[1], "infer_s", "inference"),
        ):
            for name in ("PI-HC", "PI-HC-MoE K=4"):
                r = [x for x in rows if x["model"] == name]
                ax.loglog(
                    [x["points"] for x in r], [x[field] for x in r], "o-", label=name
                )
            ax.set_xlabel("sampled points (total)")
            ax.set_ylabel("seconds (batch of 2)")
            ax.set_title(title)
            ax.legend()
        fig.tight_layout()
        fig.savefig(out / "hc_timing.png", dpi=90)
    except Exception as e:  # plotting is optional
        print("plot skipped:", e)
    return {"rows": rows}


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--part", default="all", choices=["accuracy", "timing", "all"])
    parser.add_argument("--full", action="store_true")
    parser.add_argument("--out", default="bench-out")
    parser.add_argument("--seeds", type=int, nargs="*", default=None)
    parser.add_argument("--pdes", nargs="*", default=None)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"jax {jax.__version__}, {platform.machine()}, {jax.devices()}")
    if args.part in ("timing", "all"):
        print(
            "| model | points | train step ms | inference ms | train compile s "
            "| LM steps x solves | train GFLOP | infer GFLOP |"
        )
        timing(args.full, out)
    if args.part in ("accuracy", "all"):
        accuracy(args.full, out, seeds=args.seeds, pdes=args.pdes)


if __name__ == "__main__":
    main()
