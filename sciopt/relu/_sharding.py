"""Row sharding of a convex ReLU problem over a device mesh."""

import equinox as eqx
import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec


def shard_rows(problem, mesh: Mesh, axis: str | None = None):
    """Place the rows of `X`, `y` and `patterns` across `mesh` (other arrays
    replicated).

    The ADMM step is written with whole-array operations, so under `jit` XLA
    partitions the O(n d P) products by rows and reduces across devices; the result
    equals the single-device run up to the order of floating-point sums.

    **Arguments:**

    - `problem`: a `ConvexReLUProblem`, `AdversarialReLUProblem` or
      `SampledConvexProgram`.
    - `mesh`: a `jax.sharding.Mesh`.
    - `axis`: the mesh axis to shard over (default: the first); n must be divisible by
      its size.

    **Returns:**

    The same problem with sharded arrays.
    """
    axis = mesh.axis_names[0] if axis is None else axis
    size = mesh.shape[axis]
    n = problem.X.shape[0]
    if n % size:
        raise ValueError(
            f"The number of samples n={n} must be divisible by the mesh axis "
            f"{axis!r} of size {size}; pad or drop rows."
        )
    rows = NamedSharding(mesh, PartitionSpec(axis))
    replicated = NamedSharding(mesh, PartitionSpec())

    def place(name):
        return jax.device_put(getattr(problem, name), rows)

    names = [k for k in ("X", "y", "patterns") if hasattr(problem, k)]
    problem = eqx.tree_at(
        lambda p: [getattr(p, k) for k in names], problem, [place(k) for k in names]
    )
    return jax.tree.map(
        lambda leaf: (
            leaf
            if not isinstance(leaf, jax.Array) or leaf.ndim == 0 or leaf.shape[0] == n
            else jax.device_put(leaf, replicated)
        ),
        problem,
    )
