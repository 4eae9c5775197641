"""CG against Nystrom-PCG against dense Cholesky on regularised PSD systems.

Solves `(A + mu I) x = b` with `A = G diag(s^2) G^T / k` (`G` an `n x k` Gaussian
matrix, `k = min(n, 1000)`), so that `A` is applied by products with `G` only
(`O(nk)`), with a polynomially (`s_j = j^{-1.5}`, `lam_j ~ j^{-3}`) or exponentially
(`s_j = exp(-0.02 j)`) decaying spectrum, and `mu = 1e-6 * ||A||`. For each `n`:
iterations, compile time and run time apart (ahead-of-time `jit(...).lower().compile()`,
then the best of `--repeats` runs), XLA's temporary-buffer size from the compiled
program's memory analysis, the relative residual and the error against the dense
solve. The dense column forms `A` (`n^2` memory) and factorises it.

    python benchmarks/bench_nystrom.py                     # n = 1000 2000 4000 8000
    python benchmarks/bench_nystrom.py --sizes 1000 2000   # quicker
    python benchmarks/bench_nystrom.py --out docs/benchmarks/nystrom-table.md
"""

import argparse
import time

import jax


jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import jax.random as jr  # noqa: E402
import lineax as lx  # noqa: E402
import numpy as np  # noqa: E402
import sciopt  # noqa: E402


def _problem(n, spectrum, seed=0):
    k = min(n, 1000)
    kg, kb = jr.split(jr.key(seed))
    g = jr.normal(kg, (n, k))
    j = jnp.arange(1, k + 1, dtype=jnp.float64)
    s = j**-1.5 if spectrum == "poly" else jnp.exp(-0.02 * (j - 1))
    gs = g * (s / jnp.sqrt(k))[None, :]
    # ||A|| ~ the top eigenvalue, estimated by a few power steps.
    v = jnp.ones(n) / jnp.sqrt(n)
    for _ in range(30):
        w = gs @ (gs.T @ v)
        top = jnp.linalg.norm(w)
        v = w / top
    mu = 1e-6 * top
    b = jr.normal(kb, (n,))
    return gs, mu, b


def _operator(gs):
    n = gs.shape[0]
    return lx.FunctionLinearOperator(
        lambda v: gs @ (gs.T @ v),
        jax.ShapeDtypeStruct((n,), gs.dtype),
        tags=(lx.symmetric_tag, lx.positive_semidefinite_tag),
    )


def _cg(gs, mu, b, rtol, max_steps):
    op = sciopt.ShiftedLinearOperator(_operator(gs), mu)
    op = lx.TaggedLinearOperator(op, lx.positive_semidefinite_tag)
    sol = lx.linear_solve(
        op, b, lx.CG(rtol=rtol, atol=0.0, max_steps=max_steps), throw=False
    )
    return (
        sol.value,
        sol.stats["num_steps"],
        jnp.where(sol.result == lx.RESULTS.successful, 0, 1),
        jnp.array(0),
    )


def _make_pcg(max_rank):
    def _pcg(gs, mu, b, rtol, max_steps):
        op = sciopt.ShiftedLinearOperator(_operator(gs), mu)
        solver = sciopt.NystromPCG(
            rtol=rtol,
            atol=0.0,
            max_rank=max_rank,
            init_rank=16,
            max_steps=max_steps,
            key=jr.key(1),
        )
        sol = lx.linear_solve(op, b, solver, throw=False)
        return (
            sol.value,
            sol.stats["num_steps"],
            jnp.where(sol.result == lx.RESULTS.successful, 0, 1),
            sol.stats["rank"],
        )

    return _pcg


def _dense(gs, mu, b, rtol, max_steps):
    del rtol, max_steps
    a = gs @ gs.T
    n = a.shape[0]
    c = jnp.linalg.cholesky(a + mu * jnp.eye(n))
    x = jax.scipy.linalg.cho_solve((c, True), b)
    return x, jnp.array(0), jnp.array(0), jnp.array(n)


def _run(fn, args, repeats):
    t0 = time.perf_counter()
    compiled = jax.jit(fn, static_argnums=(3, 4)).lower(*args).compile()
    t_compile = time.perf_counter() - t0
    try:
        mem = compiled.memory_analysis().temp_size_in_bytes
    except Exception:  # memory analysis is backend-dependent
        mem = float("nan")
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = compiled(*args[:3])
        jax.block_until_ready(out)
        best = min(best, time.perf_counter() - t0)
    return out, t_compile, best, mem


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[1000, 2000, 4000, 8000]
    )
    parser.add_argument(
        "--dense-max", type=int, default=8000, help="skip the dense solve above"
    )
    parser.add_argument("--spectra", nargs="+", default=["poly", "exp"])
    parser.add_argument("--rtol", type=float, default=1e-6)
    parser.add_argument("--max-rank", type=int, default=512)
    parser.add_argument("--max-steps", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=str, default=None)
    args = parser.parse_args()

    header = (
        "| spectrum | n | method | iterations | rank | compile s | run s | "
        "temp MiB | rel. residual | rel. error vs dense |\n"
        "|---|---|---|---|---|---|---|---|---|---|"
    )
    rows = [header]
    print(header, flush=True)
    for spectrum in args.spectra:
        for n in args.sizes:
            gs, mu, b = _problem(n, spectrum)
            a_mv = jax.jit(lambda v, gs=gs: gs @ (gs.T @ v))
            call = (gs, mu, b, args.rtol, args.max_steps)
            results = {}
            methods = [
                ("CG", _cg),
                ("Nystrom-PCG", _make_pcg(args.max_rank)),
            ]
            if n <= args.dense_max:
                methods.insert(0, ("dense Cholesky", _dense))
            for name, fn in methods:
                (x, steps, code, rank), tc, tr, mem = _run(fn, call, args.repeats)
                results[name] = x
                res = jnp.linalg.norm(a_mv(x) + mu * x - b) / jnp.linalg.norm(b)
                ref = results.get("dense Cholesky")
                err = (
                    float("nan")
                    if ref is None
                    else jnp.linalg.norm(x - ref) / jnp.linalg.norm(ref)
                )
                status = "" if int(code) == 0 else " (not converged)"
                row = (
                    f"| {spectrum} | {n} | {name} | "
                    f"{'-' if name.startswith('dense') else int(steps)}{status} | "
                    f"{'-' if name == 'CG' else int(rank)} | {tc:.2f} | {tr:.3f} | "
                    f"{mem / 2**20:.1f} | {float(res):.1e} | "
                    f"{'-' if name.startswith('dense') else f'{float(err):.1e}'} |"
                )
                rows.append(row)
                print(row, flush=True)
    if args.out:
        with open(args.out, "w") as f:
            f.write("\n".join(rows) + "\n")
    print(f"\njax {jax.__version__}, devices {jax.devices()}, x64, rtol {args.rtol}")
    np.set_printoptions()


if __name__ == "__main__":
    main()
