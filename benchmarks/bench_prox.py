"""Benchmarks of `sciopt.prox`.

1. `toy`: the 1-D Laplacian prior experiment. LPNs trained with the l2, l1 and
   proximal matching losses; distances of the learned prox to the soft-threshold (the
   MAP denoiser), the posterior mean and median on [-4, 4], and of the learned
   regulariser to |x| on [-3, 3].
2. `tv`: the TV prox, sciopt (JAX, jit + vmap over a batch of digits) side by side with
   scikit-image's `denoise_tv_chambolle` (NumPy, one image at a time): compile time,
   run time, ratio, and the largest difference between the two results.
3. `digits`: PSNR / SSIM of PnP with the LPN against the soft-threshold and TV
   baselines on the 8x8 digits (denoising at 0.1 and 0.2, deblurring, compressed
   sensing), with wall times.
4. `conv`: the same four digits problems with two LPNs side by side, the dense ICNN
   of the gallery and a convolutional ICNN (`ConvICNN`, 3x3 kernels, the authors'
   MNIST settings `beta = 10`, `alpha = 0.01`), trained with the same schedule:
   PSNR / SSIM, training time (compilation apart) and PnP solve time. The default
   sizes are a smoke run; `--device-run` uses the real sizes, meant for a GPU (it
   needs only jax, equinox, lineax, optimistix, optax, numpy and scikit-learn).

Usage: `python benchmarks/bench_prox.py [--part toy|tv|digits|conv|all] [--full]
[--recipe default|constant|authors] [--seeds 0,1] [--matching-batch N]
[--proposal-scale S] [--uniform-fraction U] [--device-run] [--float32] [--out DIR]`.
The default sizes finish in a few minutes; `--full` uses the gallery's full settings;
`--out` writes the conv tables as Markdown and JSON.
"""

import argparse
import dataclasses
import json
import pathlib
import sys
import tempfile
import time

import jax


# float64 unless `--float32` (decided before any array is created).
jax.config.update("jax_enable_x64", "--float32" not in sys.argv)

import equinox as eqx  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import sciopt  # noqa: E402
import sciopt.prox as sp  # noqa: E402
from sciopt.datasets import (  # noqa: E402
    digits_split,  # noqa: E402
    ideal_matching_denoiser,
    posterior_mean_median,
    soft_threshold,
)
from sciopt.gallery import prox as prox_gallery  # noqa: E402


def _rms(err, mask=None):
    err = err if mask is None else err[mask]
    return float(np.sqrt(np.mean(err**2)))


def bench_toy(
    full,
    recipe="default",
    seeds=(0,),
    average=None,
    losses=None,
    proposal_scale=None,
    uniform_fraction=0.0,
    matching_batch=None,
):
    scale, batch, beta = (1.0, 2000, 10.0) if full else (0.25, 1000, 10.0)
    if matching_batch is None:  # the gallery's: proximal matching draws more samples
        matching_batch = 4000 if full else batch
    print(
        f"## Laplacian toy (recipe {recipe}, step scale {scale}, batch {batch} "
        f"(proximal matching {matching_batch}), "
        f"beta {beta}, float32 training with symmetric batches, seeds {seeds}, "
        f"averaging {average}, proposal scale {proposal_scale}, uniform fraction "
        f"{uniform_fraction})"
    )
    print(
        "| loss | seed | steps | train s | max vs ST | RMS vs ST | RMS, abs(y) <= 3 | "
        "RMS, 3 < abs(y) <= 4 | RMS vs post. mean | RMS vs post. median | "
        "max R - R(0) vs abs(x) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    grid = np.linspace(-4, 4, 401)
    core = np.abs(grid) <= 3
    for kind in losses or ("l2", "l1", "proximal_matching"):
        if kind == "proximal_matching" and recipe != "authors" and 0 in seeds:
            # Not a trained row: the best any denoiser can do at each width.
            for gamma in (0.3, 0.2, 0.1, 0.05):
                err = ideal_matching_denoiser(grid, gamma) - soft_threshold(grid, 1.0)
                print(
                    f"| ideal minimiser at gamma {gamma} | - | - | - | "
                    f"{np.abs(err).max():.3f} | {_rms(err):.3f} | "
                    f"{_rms(err, core):.3f} | {_rms(err, ~core):.3f} | - | - | - |"
                )
        for seed in seeds:
            start = time.perf_counter()
            lpn, res = prox_gallery.train_laplacian(
                kind,
                scale=scale,
                batch_size=matching_batch if kind == "proximal_matching" else batch,
                beta=beta,
                recipe=recipe,
                seed=seed,
                dtype=jnp.float32,
                average=average,
                proposal_scale=proposal_scale,
                uniform_fraction=uniform_fraction,
            )
            wall = time.perf_counter() - start
            m = prox_gallery.laplacian_metrics(lpn)
            mean, median = posterior_mean_median(m["grid"])
            err = m["prox"] - soft_threshold(m["grid"], 1.0)
            print(
                f"| {kind} | {seed} | {res.num_steps} | {wall:.0f} | {m['max']:.3f} | "
                f"{m['rms']:.3f} | {_rms(err, core):.3f} | {_rms(err, ~core):.3f} | "
                f"{_rms(m['prox'] - mean):.3f} | {_rms(m['prox'] - median):.3f} | "
                f"{m['r_error']:.3f} |",
                flush=True,
            )


def bench_tv(full):
    from skimage.restoration import denoise_tv_chambolle

    _, test = digits_split()
    n = 100
    rng = np.random.default_rng(0)
    noisy = test[:n, 0] + 0.1 * rng.standard_normal((n, 8, 8))
    weight, iters = 0.1, 200 if full else 100
    prox = sp.TotalVariation(weight, num_iters=iters)
    batched = jax.jit(jax.vmap(lambda v: prox(v)))
    start = time.perf_counter()
    jax.block_until_ready(batched(jnp.asarray(noisy)))
    first = time.perf_counter() - start
    runs = []
    for _ in range(5):
        start = time.perf_counter()
        ours = jax.block_until_ready(batched(jnp.asarray(noisy)))
        runs.append(time.perf_counter() - start)
    ours_time = min(runs)
    runs = []
    for _ in range(3):
        start = time.perf_counter()
        theirs = np.stack(
            [
                denoise_tv_chambolle(img, weight=weight, eps=0.0, max_num_iter=iters)
                for img in noisy
            ]
        )
        runs.append(time.perf_counter() - start)
    theirs_time = min(runs)
    # Objective values of both (same TV definition up to scikit-image's boundary).
    obj = jax.vmap(
        lambda x, v: 0.5 * jnp.sum((x - v) ** 2) + weight * sp.total_variation(x)
    )
    f_ours = float(jnp.mean(obj(ours, jnp.asarray(noisy))))
    f_theirs = float(jnp.mean(obj(jnp.asarray(theirs), jnp.asarray(noisy))))
    print(f"## TV prox, {n} digits, {iters} iterations, weight {weight}")
    print("| implementation | compile s | run s | ratio | mean objective |")
    print("|---|---|---|---|---|")
    print(
        f"| sciopt (FGP, jit+vmap) | {first - ours_time:.2f} | {ours_time:.4f} | 1.0 | "
        f"{f_ours:.6f} |"
    )
    print(
        f"| scikit-image (Chambolle) | - | {theirs_time:.4f} | "
        f"{theirs_time / ours_time:.1f} | {f_theirs:.6f} |"
    )
    diff = np.abs(np.asarray(ours) - theirs).max()
    print(f"max |difference| of the two results: {diff:.2e}")


def bench_digits(full):
    specs = {
        s.name: s
        for s in sciopt.load_problem_specs(
            pathlib.Path(__file__).resolve().parents[1] / "problems" / "prox.toml"
        )
    }
    names = [n for n in specs if n.startswith("prox_digits")]
    print(f"## Digits ({'full' if full else 'quick'} gallery settings)")
    print("| problem | method | PSNR dB | note |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            rows = prox_gallery.run(
                specs[name], quick=not full, out_dir=pathlib.Path(tmp)
            )
            for r in rows:
                print(
                    f"| {name} | {r.solver} | {r.objective:.2f} | time {r.time:.2f} s; "
                    f"{r.note} |",
                    flush=True,
                )


def _digits_specs():
    specs = sciopt.load_problem_specs(
        pathlib.Path(__file__).resolve().parents[1] / "problems" / "prox.toml"
    )
    return [s for s in specs if s.name.startswith("prox_digits")]


def bench_conv(device_run, out):
    # Real sizes for a GPU; a smoke run otherwise (a CPU takes minutes even so).
    if device_run:
        common = dict(pretrain_steps=4000, pm_steps=1000, num_test=50, batch_size=64)
        sizes = {"dense": (256, 3), "conv": (64, 3)}
    else:
        common = dict(pretrain_steps=60, pm_steps=10, num_test=5, batch_size=16)
        sizes = {"dense": (32, 2), "conv": (8, 2)}
    device = jax.devices()[0]
    dtype = jnp.result_type(float)
    header = (
        f"{getattr(device, 'device_kind', device.platform)} ({device.platform}), "
        f"jax {jax.__version__}, {jnp.dtype(dtype).name}; l1 pretraining "
        f"{common['pretrain_steps']} steps + proximal matching 4 x {common['pm_steps']}"
        f" steps, batch {common['batch_size']}; {common['num_test']} test digits"
    )
    print(f"## Dense vs convolutional ICNN ({header})", flush=True)
    lines = [
        "| problem | ICNN | parameters | train s | compile s | PnP + LPN | "
        "PnP + soft-threshold | PnP + TV | LPN solve s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    print("\n".join(lines), flush=True)
    records = []
    for spec in _digits_specs():
        for arch, (width, depth) in sizes.items():
            data = {**spec.data, **common, "architecture": arch}
            data.update(width=width, depth=depth)
            r = prox_gallery.evaluate_digits(
                dataclasses.replace(spec, data=data), quick=False
            )
            sc, fit = r["scores"], r["fit"]
            lpn_model = prox_gallery.train_digits_lpn(
                sigma=r["train_sigma"],
                steps=common["pretrain_steps"],
                pm_steps=common["pm_steps"],
                width=width,
                depth=depth,
                architecture=arch,
                batch_size=common["batch_size"],
            )[0]
            params = sum(
                x.size for x in jax.tree.leaves(eqx.filter(lpn_model, eqx.is_array))
            )
            rec = dict(
                problem=spec.name,
                architecture=arch,
                parameters=int(params),
                train_s=fit.wall_time,
                compile_s=fit.compile_time,
                steps=fit.num_steps,
                lpn=sc["LPN"][:2],
                soft_threshold=sc["soft-threshold"][:2],
                tv=sc["TV"][:2],
                back_projection=sc["A^T y"][:2],
                lpn_solve_s=sc["LPN"][2],
            )
            records.append(rec)
            line = (
                f"| {spec.name} | {arch} | {params} | {fit.wall_time:.1f} | "
                f"{fit.compile_time:.1f} | {rec['lpn'][0]:.2f} / {rec['lpn'][1]:.3f} | "
                f"{rec['soft_threshold'][0]:.2f} / {rec['soft_threshold'][1]:.3f} | "
                f"{rec['tv'][0]:.2f} / {rec['tv'][1]:.3f} | {rec['lpn_solve_s']:.3f} |"
            )
            lines.append(line)
            print(line, flush=True)
            if out is not None:  # rewritten after every row: partial runs keep them
                out_dir = pathlib.Path(out)
                out_dir.mkdir(parents=True, exist_ok=True)
                table = header + "\n\n" + "\n".join(lines) + "\n"
                (out_dir / "prox_conv.md").write_text(table)
                (out_dir / "prox_conv.json").write_text(
                    json.dumps({"setting": header, "rows": records}, indent=1)
                )


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--part", default="all", choices=["toy", "tv", "digits", "conv", "all"]
    )
    parser.add_argument("--full", action="store_true")
    parser.add_argument(
        "--device-run", action="store_true", help="conv part at real (GPU) sizes"
    )
    parser.add_argument("--float32", action="store_true", help="run in float32")
    parser.add_argument("--out", default=None, help="folder for the conv tables")
    parser.add_argument(
        "--recipe",
        default="default",
        choices=["default", "constant", "authors"],
        help="toy",
    )
    parser.add_argument("--seeds", default="0", help="toy: comma-separated seeds")
    parser.add_argument(
        "--average", type=float, default=None, help="toy: Polyak averaging decay"
    )
    parser.add_argument("--losses", default=None, help="toy: comma-separated losses")
    parser.add_argument(
        "--proposal-scale",
        type=float,
        default=None,
        help="toy: importance sampling from Laplace(0, this scale)",
    )
    parser.add_argument(
        "--matching-batch",
        type=int,
        default=None,
        help="toy: proximal matching batch size (default: 4000 with --full)",
    )
    parser.add_argument(
        "--uniform-fraction",
        type=float,
        default=0.0,
        help="toy: share of the proposal drawn uniformly on [-5, 5]",
    )
    args = parser.parse_args()
    print(f"jax {jax.__version__}, {jax.devices()[0].platform}")
    if args.part == "conv":
        bench_conv(args.device_run, args.out)
        return
    if args.part in ("tv", "all"):
        bench_tv(args.full)
    if args.part in ("digits", "all"):
        bench_digits(args.full)
    if args.part in ("toy", "all"):
        seeds = tuple(int(v) for v in args.seeds.split(","))
        losses = None if args.losses is None else tuple(args.losses.split(","))
        bench_toy(
            args.full,
            args.recipe,
            seeds,
            args.average,
            losses,
            args.proposal_scale,
            args.uniform_fraction,
            args.matching_batch,
        )


if __name__ == "__main__":
    main()
