"""Identify the viscosity of the heat equation from noisy observations.

The misfit between a hard-constraint layer's solution
`HardConstraintLayer(PDEFamily.preset("heat"), basis)(instance, key, args={"nu": nu})`
and noisy observations of the exact solution is differentiated with respect to
log(nu) through the layer's least-squares solve. The code is
`sciopt.gallery.compose.pde_coefficient`; see docs/composing.md.

    python examples/compose_pde_coefficient.py
"""

import jax


jax.config.update("jax_enable_x64", True)

from sciopt.gallery.compose import pde_coefficient  # noqa: E402


def main():
    r = pde_coefficient(nu_true=0.1, steps=25, train_steps=300)
    print(
        f"nu {r['nu']:.4f} (true {r['nu_true']}), relative error {r['error']:.1e}, "
        f"misfit {r['misfit']:.2e} (noise variance {r['noise_variance']:.0e})"
    )


if __name__ == "__main__":
    main()
