"""PINN vs Lagrangian PINN on u_t + c u_x = 0 with a large speed c.

    python examples/pinn_advection.py [--c 30] [--steps 1000]

Both models get the same network size and step budget; the script prints their
relative L2 errors against the closed form u = sin(x - c t) and saves a plot.
"""

import argparse
import math

import jax
import optax
import sciopt
import sciopt.pde as P


jax.config.update("jax_enable_x64", True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--c", type=float, default=30.0)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--out", default="pinn_advection.png")
    args = parser.parse_args()

    domain = P.Domain((0.0, 2 * math.pi), (0.0, 1.0), periodic=True)
    pde = P.PDE("u_t + c*u_x", domain, "sin(x)", parameters={"c": args.c})
    x, t = P.grid(domain, 256, 101)
    reference = P.advection_solution(jax.numpy.sin, x, t, args.c, domain)
    schedule = optax.exponential_decay(1e-2, max(args.steps // 10, 1), 0.9)

    models = {
        "PINN": (
            P.PINN(domain, key=jax.random.key(0), width=32, depth=3),
            P.PINNLoss(pde, num_interior=1024),
        ),
        "LagrangianPINN": (
            P.LagrangianPINN(pde, key=jax.random.key(0), state_width=32, state_depth=3),
            P.LagrangianPINNLoss(pde, num_interior=1024),
        ),
    }
    for name, (model, loss) in models.items():
        fitted = sciopt.fit(
            model, loss, key=jax.random.key(1), steps=args.steps, learning_rate=schedule
        )
        u = fitted.model.predict(x, t)
        error = float(P.relative_l2(u, reference))
        print(f"{name:15s} relative L2 = {error:.3e}  ({fitted.wall_time:.1f} s)")
        if name == "LagrangianPINN":
            result, min_jac = fitted.model.characteristics_result(t)
            print(
                f"{'':15s} {sciopt.RESULTS[result] or 'characteristics ok'}; "
                f"min X_xi = {float(min_jac):.3f}"
            )
            _plot(x, t, u, reference, args.out, f"LPINN, c={args.c:g}")


def _plot(x, t, u, reference, path, title):
    """Prediction, reference and absolute error as images over (x, t)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), constrained_layout=True)
    extent = (float(x.min()), float(x.max()), float(t.min()), float(t.max()))
    for ax, (name, data) in zip(
        axes,
        (("prediction", u), ("reference", reference), ("|error|", abs(u - reference))),
    ):
        im = ax.imshow(data, origin="lower", aspect="auto", extent=extent)
        ax.set_title(name)
        fig.colorbar(im, ax=ax)
    fig.suptitle(title)
    fig.savefig(path, dpi=90)
    plt.close(fig)


if __name__ == "__main__":
    main()
