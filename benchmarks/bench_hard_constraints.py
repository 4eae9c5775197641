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


def _models(
    problem, grid, n_basis, m, splits_list, key, interface_weight=1.0, overlap=0.0
):
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
            overlap=overlap,
        )
    return out


def test_errors(model, instances, references, key):
    """Relative L2 error per test instance on the model's grid, and the solves."""
    keys = jr.split(key, instances.shape[0])

    def one(p, k, ref):
        sol = model.solve(p, k)
        return sp.relative_l2(model.predict(p, sol.value), ref), sol

    return eqx.filter_jit(jax.vmap(one))(instances, keys, references)


def accuracy(
    full: bool,
    out: Path,
    seeds=None,
    pdes=None,
    ks=(2, 4, 8),
    overlap=0.0,
    interface_weight=1.0,
    steps=None,
    only=None,
) -> dict:
    if steps is None:
        steps = 600 if full else 200
    if seeds is None:
        seeds = [0, 1, 2] if full else [0, 1]
    grid = (16, 32)
    results = {}
    for pde in pdes or ("burgers", "diffusion_sorption"):
        problem = sp.PDEFamily.preset(pde)
        test = problem.sample(jr.key(1000), 16)
        refs = problem.reference_grid(test, *grid)
        for seed in seeds:
            key = jr.key(seed)
            train = problem.sample(jr.fold_in(key, 7), 64)
            models = _models(
                problem,
                grid,
                16,
                96,
                [(1, k) for k in ks],
                key,
                interface_weight=interface_weight,
                overlap=overlap,
            )
            for name, model in models.items():
                if only is not None and name.split(" ")[0] not in only:
                    continue
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
                err, _ = test_errors(res.model, test, refs, jr.key(3))
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
    tag += f"_k{'-'.join(map(str, ks))}_ov{overlap}_iw{interface_weight}_s{steps}"
    if only:
        tag += "_" + "-".join(only)
    (out / f"hc_accuracy_{tag}.json").write_text(json.dumps(results))
    return results


def _compile_and_time(fn, *args, repeats=3):
    """Compile `fn` once (timed), read XLA's flop count, then time the executable."""
    t0 = time.perf_counter()
    compiled = fn.lower(*args).compile()
    compile_s = time.perf_counter() - t0
    try:
        cost = compiled.cost_analysis()
        cost = cost[0] if isinstance(cost, list) else cost
        flops = float(cost.get("flops", float("nan")))
    except Exception:
        flops = float("nan")

    def call():
        return compiled(*args)

    out = jax.block_until_ready(call())  # warm-up (allocations, autotuning)
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = jax.block_until_ready(call())
        runs.append(time.perf_counter() - t0)
    return compile_s, float(np.median(runs)), flops, out


def timing(
    full: bool,
    out: Path,
    points=None,
    ks=(4,),
    grid=None,
    batch_size=2,
    repeats=3,
    mesh_devices=0,
) -> dict:
    problem = sp.PDEFamily.preset("diffusion_sorption")
    if points is None:
        points = [100, 1000, 10_000, 100_000] if full else [100, 1000, 10_000]
    if grid is None:
        grid = (256, 512) if full else (128, 128)
    batch = problem.sample(jr.key(0), batch_size)
    basis = sp.BasisNetwork(
        16,
        problem.num_sensors,
        problem.t_span,
        problem.x_span,
        width=32,
        depth=2,
        key=jr.key(1),
    )
    names = ["PI-HC"] + [f"PI-HC-MoE K={k}" for k in ks]
    if mesh_devices > 1:
        names += [f"PI-HC-MoE K={k} sharded x{mesh_devices}" for k in ks]
    rows = []
    for m in points:
        models = {
            "PI-HC": sp.HardConstraintLayer(problem, basis, grid=grid, num_points=m)
        }
        for k in ks:
            if m // k < basis.num_basis:
                print(
                    f"| PI-HC-MoE K={k} | {m} | skipped: {m // k} points per "
                    f"expert < {basis.num_basis} basis functions |"
                )
                continue
            models[f"PI-HC-MoE K={k}"] = sp.MoEHardConstraint(
                problem, basis, grid=grid, splits=(1, k), num_points=m // k
            )
            if mesh_devices > 1 and k % mesh_devices == 0:
                mesh = jax.make_mesh((mesh_devices,), ("experts",))
                models[f"PI-HC-MoE K={k} sharded x{mesh_devices}"] = (
                    sp.MoEHardConstraint(
                        problem,
                        basis,
                        grid=grid,
                        splits=(1, k),
                        num_points=m // k,
                        mesh=mesh,
                    )
                )
        for name, model in models.items():
            loss = ft.partial(sp.hc_loss, num_points=128)
            params, static = eqx.partition(model, eqx.is_array)

            @jax.jit
            def train_step(params, batch, key):
                model = eqx.combine(params, static)
                return eqx.filter_value_and_grad(loss)(model, batch, key)

            @jax.jit
            def infer(params, batch, key):
                model = eqx.combine(params, static)
                keys = jr.split(key, batch.shape[0])
                return jax.vmap(lambda p, k: model.solve(p, k))(batch, keys)

            key = jr.key(2)
            c_train, t_train, f_train, _ = _compile_and_time(
                train_step, params, batch, key, repeats=repeats
            )
            c_inf, t_inf, f_inf, sol = _compile_and_time(
                infer, params, batch, key, repeats=repeats
            )
            steps = np.asarray(sol.stats["num_steps"])
            row = dict(
                model=name,
                points=m,
                train_s=t_train,
                train_compile_s=c_train,
                infer_s=t_inf,
                infer_compile_s=c_inf,
                lm_steps_mean=float(steps.mean()),
                lm_steps_max=int(steps.max()),
                solves=int(steps.size),
                train_gflop=f_train / 1e9,
                infer_gflop=f_inf / 1e9,
            )
            rows.append(row)
            print(
                f"| {name} | {m} | {1e3 * t_train:.1f} | {1e3 * t_inf:.1f} | "
                f"{c_train:.1f} | {row['lm_steps_mean']:.1f} (max "
                f"{row['lm_steps_max']}) x {row['solves']} | "
                f"{row['train_gflop']:.3g} | {row['infer_gflop']:.3g} |",
                flush=True,
            )
    platform_name = jax.devices()[0].platform
    if mesh_devices > 1:
        platform_name += f"_mesh{mesh_devices}"
    (out / f"hc_timing_{platform_name}.json").write_text(json.dumps(rows))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(8, 3))
        for ax, field, title in (
            (axes[0], "train_s", "training step"),
            (axes[1], "infer_s", "inference"),
        ):
            for name in names:
                r = [x for x in rows if x["model"] == name]
                ax.loglog(
                    [x["points"] for x in r], [x[field] for x in r], "o-", label=name
                )
            ax.set_xlabel("sampled points (total)")
            ax.set_ylabel(f"seconds (batch of {batch_size})")
            ax.set_title(f"{title} ({platform_name})")
            ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / f"hc_timing_{platform_name}.png", dpi=90)
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
    parser.add_argument("--points", type=int, nargs="*", default=None)
    parser.add_argument("--ks", type=int, nargs="*", default=None)
    parser.add_argument("--grid", type=int, nargs=2, default=None)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument(
        "--mesh",
        type=int,
        default=0,
        help="also time MoE with experts sharded over this many devices",
    )
    parser.add_argument("--overlap", type=float, default=0.0)
    parser.add_argument("--interface-weight", type=float, default=1.0)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument(
        "--only", nargs="*", default=None, help="model kinds: PI-SC PI-HC PI-HC-MoE"
    )
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"jax {jax.__version__}, {platform.machine()}, {jax.devices()}")
    if args.part in ("timing", "all"):
        print(
            "| model | points | train step ms | inference ms | train compile s "
            "| LM steps x solves | train GFLOP | infer GFLOP |"
        )
        timing(
            args.full,
            out,
            points=args.points,
            ks=(4,) if args.ks is None else tuple(args.ks),
            grid=None if args.grid is None else tuple(args.grid),
            batch_size=args.batch,
            mesh_devices=args.mesh,
        )
    if args.part in ("accuracy", "all"):
        accuracy(
            args.full,
            out,
            seeds=args.seeds,
            pdes=args.pdes,
            ks=(2, 4, 8) if args.ks is None else tuple(args.ks),
            overlap=args.overlap,
            interface_weight=args.interface_weight,
            steps=args.steps,
            only=args.only,
        )


if __name__ == "__main__":
    main()
