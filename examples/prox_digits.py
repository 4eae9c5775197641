"""Plug-and-play deblurring of 8x8 digits with a learned proximal network.

Trains an LPN denoiser on scikit-learn's digits (noise 0.1, l1 pretraining then
proximal matching), then deblurs a test digit with PnP-ADMM and reports PSNR and the
objective D(z) + rho R(z) per iteration. Run: `python examples/prox_digits.py`.
"""

import jax
import jax.numpy as jnp
import jax.random as jr
import sciopt
import sciopt.prox as sp
from sciopt.datasets import digits_problem, digits_split


jax.config.update("jax_enable_x64", True)


def main(pretrain_steps=1000, pm_steps=250):
    train, _ = digits_split()
    lpn = sp.LearnedProximalNetwork(sp.ICNN((1, 8, 8), 256, 3, key=jr.key(0)))
    stages = sp.proximal_matching_schedule(
        0.64, steps_per_stage=pm_steps, pretrain_steps=pretrain_steps
    )
    lpn = sp.fit_lpn(
        lpn, jnp.asarray(train), sigma=0.1, stages=stages, key=jr.key(1), batch_size=64
    ).model
    problem, clean = digits_problem(operator="blur", noise=0.02, image_index=3)
    baseline = problem.default_y0(None)
    saveat = sciopt.SaveAt(fn=sp.step_stats)
    sol = sciopt.solve(
        problem, sp.PnPADMM(lpn, penalty=0.05), max_steps=50, throw=False, saveat=saveat
    )
    print(f"PSNR A^T y: {float(sp.psnr(jnp.clip(baseline, 0, 1), clean)):.2f} dB")
    value = float(sp.psnr(jnp.clip(sol.value, 0, 1), clean))
    print(f"PSNR PnP-ADMM + LPN: {value:.2f} dB")
    k = int(sol.stats["num_steps"])
    print("objective per iteration:", sol.history["objective"][1 : min(k, 10) + 1])


if __name__ == "__main__":
    main()
