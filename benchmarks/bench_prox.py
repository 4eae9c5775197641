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

Usage: `python benchmarks/bench_prox.py [--part toy|tv|digits|all] [--full]`. The
default sizes finish in a few minutes; `--full` uses the gallery's full settings.
"""

import argparse
import pathlib
import tempfile
import time

import jax


jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import sciopt  # noqa: E402
import sciopt.prox as sp  # noqa: E402
from sciopt.prox import _gallery  # noqa: E402
from sciopt.prox._digits import digits_split  # noqa: E402
from sciopt.prox._toy import posterior_mean_median  # noqa: E402


def bench_toy(full):
    scale, batch, beta = (0.25, 2000, 20.0) if full else (0.05, 1000, 20.0)
    print(f"## Laplacian toy (step scale {scale}, batch {batch}, beta {beta})")
    print(
        "| loss | steps | train s | max vs ST | RMS vs ST | RMS vs post. mean | "
        "RMS vs post. median | max R - R(0) vs abs(x) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for kind in ("l2", "l1", "proximal_matching"):
        start = time.perf_counter()
        lpn, res = _gallery.train_laplacian(
            kind, scale=scale, batch_size=batch, beta=beta
        )
        wall = time.perf_counter() - start
        m = _gallery.laplacian_metrics(lpn)
        mean, median = posterior_mean_median(m["grid"])
        rms_mean = np.sqrt(np.mean((m["prox"] - mean) ** 2))
        rms_median = np.sqrt(np.mean((m["prox"] - median) ** 2))
        print(
            f"| {kind} | {res.num_steps} | {wall:.0f} | {m['max']:.3f} | "
            f"{m['rms']:.3f} | {rms_mean:.3f} | {rms_median:.3f} | "
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
            rows = _gallery.run(specs[name], quick=not full, out_dir=pathlib.Path(tmp))
            for r in rows:
                print(
                    f"| {name} | {r.solver} | {r.objective:.2f} | time {r.time:.2f} s; "
                    f"{r.note} |",
                    flush=True,
                )


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--part", default="all", choices=["toy", "tv", "digits", "all"])
    parser.add_argument("--full", action="store_true")
    args = parser.parse_args()
    print(f"jax {jax.__version__}, {jax.devices()[0].platform}")
    if args.part in ("tv", "all"):
        bench_tv(args.full)
    if args.part in ("digits", "all"):
        bench_digits(args.full)
    if args.part in ("toy", "all"):
        bench_toy(args.full)


if __name__ == "__main__":
    main()
