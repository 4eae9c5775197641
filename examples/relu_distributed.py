"""Convex ReLU training across processes with `jax.distributed`.

Every process holds one CPU device (or its GPUs); the rows of `X` are sharded over the
global mesh of all processes' devices, and the same jit-compiled ADMM runs on every
process (single program, multiple data): XLA partitions the O(n d P) products by rows
and reduces across processes. The certified result equals the single-process one up
to the order of floating-point sums.

On one machine, start N local processes:

    python examples/relu_distributed.py --num-processes 2

Across machines, run on each (process ids 0 .. N-1, the same coordinator address,
reachable from every machine):

    python examples/relu_distributed.py --num-processes 2 --process-id 0 \
        --coordinator 10.0.0.1:12345

`--check` also solves on one process and compares.
"""

import argparse
import socket
import subprocess
import sys


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_local(num_processes: int, extra: list[str]) -> int:
    """Start `num_processes` copies of this script on this machine; returns the
    first non-zero exit code (or 0)."""
    coordinator = f"127.0.0.1:{_free_port()}"
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--num-processes",
                str(num_processes),
                "--process-id",
                str(i),
                "--coordinator",
                coordinator,
                *extra,
            ]
        )  # fmt: skip
        for i in range(num_processes)
    ]
    codes = [p.wait() for p in procs]
    return next((c for c in codes if c), 0)


def run(process_id: int, num_processes: int, coordinator: str, args) -> None:
    import jax

    jax.config.update("jax_enable_x64", True)
    if args.cpu:
        # CPU processes exchange data through gloo; GPUs use NCCL by default.
        jax.config.update("jax_platforms", "cpu")
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=coordinator,
        num_processes=num_processes,
        process_id=process_id,
    )
    import numpy as np
    import sciopt
    import sciopt.relu as sr
    from jax.experimental import multihost_utils
    from jax.sharding import Mesh
    from sciopt.datasets import planted_regression

    # Every process builds the same data (the same seed); shard_rows keeps each
    # process's rows on its own devices.
    X, y, _, _ = planted_regression(args.n, args.d, width=4, noise=0.1, seed=0)
    patterns = sr.sample_patterns(jax.random.key(0), X, args.patterns)
    problem = sr.ConvexReLUProblem(X, y, patterns, args.beta)
    mesh = Mesh(np.array(jax.devices()), ("rows",))
    sharded = sr.shard_rows(problem, mesh)
    solver = sr.ADMM(rtol=1e-8, atol=1e-10)
    sol = sciopt.solve(sharded, solver, max_steps=100_000)
    # The scalar statistics are replicated; the weights are sharded over processes:
    # gather them to read them on one process.
    v = multihost_utils.process_allgather(sol.value.v, tiled=True)
    if process_id == 0:
        stats = {k: float(sol.stats[k]) for k in ("objective", "duality_gap")}
        print(
            f"{num_processes} processes, {len(jax.devices())} devices: objective "
            f"{stats['objective']:.12g}, certified gap {stats['duality_gap']:.3g}, "
            f"{int(sol.stats['num_steps'])} steps, |v| {np.linalg.norm(v):.6g}"
        )
        if args.check:
            single = sciopt.solve(
                jax.device_put(problem, jax.local_devices()[0]),
                solver,
                max_steps=100_000,
            )
            diff = abs(float(single.stats["objective"]) - stats["objective"])
            rel = diff / abs(stats["objective"])
            print(f"one process: objective {float(single.stats['objective']):.12g}")
            print(f"relative difference {rel:.3g}")
            if not rel <= 1e-10:
                sys.exit("the distributed objective differs from one process's")
    jax.distributed.shutdown()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num-processes", type=int, default=2)
    parser.add_argument("--process-id", type=int, default=None)
    parser.add_argument("--coordinator", default=None, help="host:port of process 0")
    parser.add_argument("--n", type=int, default=64, help="samples")
    parser.add_argument("--d", type=int, default=3, help="features")
    parser.add_argument("--patterns", type=int, default=8)
    parser.add_argument("--beta", type=float, default=0.1)
    parser.add_argument("--gpu", dest="cpu", action="store_false")
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    if args.process_id is None:
        extra = ["--n", str(args.n), "--d", str(args.d), "--beta", str(args.beta)]
        extra += ["--patterns", str(args.patterns)]
        extra += ([] if args.cpu else ["--gpu"]) + (["--check"] if args.check else [])
        return launch_local(args.num_processes, extra)
    if args.coordinator is None:
        parser.error("--coordinator host:port is needed with --process-id")
    run(args.process_id, args.num_processes, args.coordinator, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
