"""PINN vs Lagrangian PINN: relative L2 error and wall time at the same budget.

Both models get the same hidden width and depth, the same number of Adam steps and of
resampled collocation points per step (see `sciopt.gallery.pinn.train`). Cases:
u_t + c u_x = 0 for c in {1, 10, 30, 50}; convection-diffusion (c = 30, nu = 0.01);
viscous Burgers (nu = 0.1, Cole-Hopf reference); all with u0 = sin x on [0, 2 pi)
periodic, t in [0, 1], scored on a 256 x 101 grid. The first compiled chunk (compile
plus 250 steps) is timed apart from the remaining steps.

    python benchmarks/bench_pinn.py            # width 50, depth 4, 2000 steps
    python benchmarks/bench_pinn.py --steps 500 --width 32 --depth 3   # smoke
    python benchmarks/bench_pinn.py --full     # 5000 steps, 2048 points
"""

import argparse
import math

import jax


jax.config.update("jax_enable_x64", True)

import sciopt.pde as P  # noqa: E402
from sciopt.gallery.pinn import reference_solution, train  # noqa: E402


def cases():
    dom = P.Domain((0.0, 2 * math.pi), (0.0, 1.0), periodic=True)
    for c in (1.0, 10.0, 30.0, 50.0):
        pde = P.PDE("u_t + c*u_x", dom, "sin(x)", parameters={"c": c})
        yield f"advection c={c:g}", pde, "convection_diffusion"
    pde = P.PDE(
        "u_t + c*u_x - nu*u_xx", dom, "sin(x)", parameters={"c": 30.0, "nu": 0.01}
    )
    yield "conv.-diff. c=30 nu=0.01", pde, "convection_diffusion"
    pde = P.PDE("u_t + u*u_x - nu*u_xx", dom, "sin(x)", parameters={"nu": 0.1})
    yield "Burgers nu=0.1", pde, "burgers_cole_hopf"


MODELS = {
    "pinn": ("PINN", "pinn", {}),
    "pinn-hard": ("PINN, hard IC", "pinn", {"pinn_options": {"hard_initial": True}}),
    "lpinn": ("LPINN", "lpinn", {}),
    "lpinn-soft": (
        "LPINN, soft IC (paper)",
        "lpinn",
        {"lpinn_options": {"hard_initial": False}},
    ),
    "lpinn-rest": (
        "LPINN, rest start",
        "lpinn",
        {"lpinn_options": {"initial_speed": 0.0}},
    ),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--width", type=int, default=50)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--points", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", default=None, help="substring of the case names")
    parser.add_argument(
        "--models", default="pinn,lpinn", help=f"comma-separated, from {list(MODELS)}"
    )
    parser.add_argument(
        "--ablation",
        action="store_true",
        help="at c = 50 also: PINN with a hard IC, LPINN with a soft IC, LPINN "
        "whose characteristics start at rest",
    )
    parser.add_argument("--full", action="store_true")
    a = parser.parse_args()
    if a.full:
        a.steps, a.points = 5000, 2048
    cfg = dict(
        width=a.width,
        depth=a.depth,
        steps=a.steps,
        points=a.points,
        learning_rate=1e-2,
        seed=a.seed,
    )
    print(f"jax {jax.__version__}, backend {jax.default_backend()}, float64; {cfg}")
    print()
    print("| case | model | rel. L2 | min X_xi | first chunk (s) | rest (s) |")
    print("|---|---|---|---|---|---|")
    for name, pde, ref_kind in cases():
        if a.only and a.only not in name:
            continue
        x, t = P.grid(pde.domain, 256, 101)
        ref = reference_solution(pde, ref_kind, x, t)
        models = a.models.split(",")
        if a.ablation and name == "advection c=50":
            models += [m for m in ("pinn-hard", "lpinn-soft", "lpinn-rest")]
        for model in dict.fromkeys(models):
            label, kind, opts = MODELS[model]
            tr = train(kind, pde, x, t, ref, **opts, **cfg)
            first = tr.fit.compile_time
            rest = tr.fit.wall_time - first
            jac = "-" if kind == "pinn" else f"{tr.min_jacobian:.3f}"
            print(
                f"| {name} | {label} | {tr.error:.2e} | {jac} | {first:.1f} | "
                f"{rest:.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
