"""Learn the data weight of a plug-and-play reconstruction through PnP solves.

`PnPProximalGradient(SoftThreshold(t), step_size=1)` on a blurred sparse image; the
squared error to the true image is differentiated with respect to log(data_weight)
through the solve, and the result compared in PSNR with a grid of cvxpy lasso solves
(the PnP fixed point's objective). The code is `sciopt.gallery.compose.pnp_weight`;
see docs/composing.md.

    python examples/compose_pnp_weight.py
"""

import jax


jax.config.update("jax_enable_x64", True)

from sciopt.gallery.compose import pnp_weight  # noqa: E402


def main():
    r = pnp_weight(steps=25)
    if r["failure"] is not None:
        print(f"an inner solve failed, reported: {r['failure']}")
    print(
        f"data weight {r['weight']:.4g}: PSNR {r['start_psnr']:.2f} -> {r['psnr']:.3f} "
        f"dB ({r['time']:.1f} s); cvxpy lasso at that weight {r['psnr_cvxpy']:.3f} dB; "
        f"best of the grid {r['grid_best_psnr']:.3f} dB at {r['grid_best_weight']:.4g}"
    )


if __name__ == "__main__":
    main()
