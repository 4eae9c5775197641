"""Tune the weight decay beta of a convex ReLU network by hypergradient descent.

The validation loss of the recovered network is differentiated with respect to
log(beta) through `sciopt.solve(ConvexReLUProblem(..., beta), ADMM())` (implicit
differentiation), and compared with a grid of cvxpy solves. The code is
`sciopt.gallery.compose.relu_beta`; see docs/composing.md.

    python examples/compose_relu_beta.py
"""

import jax


jax.config.update("jax_enable_x64", True)

from sciopt.gallery.compose import relu_beta  # noqa: E402


def main():
    r = relu_beta(steps=30)
    if r["failure"] is not None:
        print(f"an inner solve failed, reported: {r['failure']}")
    print(
        f"beta {r['beta']:.4g}: validation loss {r['start_loss']:.4f} -> "
        f"{r['val_loss']:.4f} in {r['steps']} outer steps ({r['time']:.1f} s); "
        f"cvxpy at that beta {r['val_loss_cvxpy']:.4f}; best of the cvxpy grid "
        f"{r['grid_best_loss']:.4f} at beta {r['grid_best_beta']:.4g}"
    )


if __name__ == "__main__":
    main()
