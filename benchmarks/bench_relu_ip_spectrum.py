"""Benchmark: would a Nystrom preconditioner make InteriorPoint's Newton systems
matrix-free? The spectrum of the Woodbury core along a solve.

InteriorPoint solves Newton's systems through the n x n core I + K,
K = W^1/2 F B^{-1} F^T W^1/2 (PSD). Nystrom-preconditioned CG (Frangella, Tropp &
Udell 2023; Nys-IP-PMM, Chu, Santos & Udell 2024) pays off when K is numerically low
rank: the sketch rank it needs is about twice the effective dimension
d_eff = tr(K (K + I)^{-1}), and each sketch column costs one product with K
(about 8 n d P flops), against 2 n^2 P d flops to form K densely. So a sketch is
cheaper than the dense core only when 8 d_eff / n < 1 (before any CG iteration).

This script runs the solve step by step (float64, planted squared-loss instance of
`bench_relu.instance`), and every `--every` steps forms K and prints its eigenvalue
counts, d_eff, d_eff / n and that flop ratio.

    python benchmarks/bench_relu_ip_spectrum.py --size 500,10,50
    python benchmarks/bench_relu_ip_spectrum.py --size 2000,20,100
"""

import argparse
import pathlib
import sys

import jax
import numpy as np


jax.config.update("jax_enable_x64", True)

import equinox as eqx  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import sciopt.relu as sr  # noqa: E402
from sciopt.relu import _soc  # noqa: E402
from sciopt.relu._interior_point import _group_point, _loss_derivatives  # noqa: E402


sys.path.insert(0, str(pathlib.Path(__file__).parent))
from bench_relu import instance, make_problem  # noqa: E402


def core_eigenvalues(solver, problem, state):
    """The eigenvalues of K at the iterate of `state` (descending)."""
    u, tau, z_cone, z_group = state.u, state.tau, state.z_cone, state.z_group
    s_cone = problem.cone_signs * (u @ problem.X.T)
    _, lcurv = _loss_derivatives(problem.loss, problem.predict_groups(u), problem.y)
    _, W_inv = _soc.nesterov_todd(_group_point(u, tau), z_group)
    _, R_inv = solver._newton_blocks(problem, s_cone, z_cone, W_inv)
    core, _ = solver._woodbury_core(problem, R_inv, lcurv)
    K = core - jnp.eye(core.shape[0], dtype=core.dtype)
    return np.sort(np.linalg.eigvalsh(np.asarray(K)))[::-1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="500,10,50", help="n,d,P")
    parser.add_argument("--every", type=int, default=3)
    parser.add_argument("--max-steps", type=int, default=100)
    args = parser.parse_args()
    n, d, P = (int(s) for s in args.size.split(","))
    X, y, patterns, _ = instance(n, d, P)
    problem = make_problem(X, y, patterns)
    solver = sr.InteriorPoint(linear_solver="woodbury")
    state = eqx.filter_jit(lambda p: solver.init(p, None, None, {}))(problem)
    step = eqx.filter_jit(lambda p, s: solver.step(p, None, None, {}, s)[1])
    print(f"(n, d, P) = ({n}, {d}, {patterns.shape[1]}), float64")
    print(
        "| step | mu | certified rel. gap | largest | # > 1e4 | # > 1e2 | # > 1 "
        "| d_eff | d_eff / n | sketch / dense flops |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|", flush=True)
    for k in range(args.max_steps + 1):
        done = bool(state.certified) or k == args.max_steps
        if k % args.every == 0 or done:
            ev = core_eigenvalues(solver, problem, state)
            d_eff = float(np.sum(ev / (ev + 1)))
            counts = [int(np.sum(ev > t)) for t in (1e4, 1e2, 1)]
            gap = float(state.objective - state.lower_bound) / abs(
                float(state.objective)
            )
            print(
                f"| {k} | {float(state.mu):.1e} | {gap:.1e} | {ev[0]:.1e} | "
                + " | ".join(str(c) for c in counts)
                + f" | {d_eff:.0f} | {d_eff / n:.2f} | {8 * d_eff / n:.1f} |",
                flush=True,
            )
        if done:
            break
        state = step(problem, state)


if __name__ == "__main__":
    main()
