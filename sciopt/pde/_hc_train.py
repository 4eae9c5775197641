"""The soft-constraint baseline (PI-SC), the outer training loss and the test metric
of the hard-constrained layers."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optimistix as optx
from jaxtyping import Array, Float, PRNGKeyArray

from .._solution import RESULTS
from ._hc_basis import BasisNetwork
from ._hc_layer import _check_common, _HCBase, HCSolution
from ._hc_problems import HCProblem


class SoftConstraintModel(_HCBase):
    """The soft-constraint baseline (PI-SC): the same basis network with one trained
    weight vector shared by all instances, `u = b(t, x; instance) . w`, trained on
    the residual loss alone (`sciopt.pde.hc_loss`). No per-instance solve.

    ??? cite "References"

        ```bibtex
        @inproceedings{chalapathi2024scaling,
            title={Scaling physics-informed hard constraints with
                   mixture-of-experts},
            author={Chalapathi, Nithin and Du, Yiheng and Krishnapriyan, Aditi S.},
            booktitle={International Conference on Learning Representations},
            year={2024}
        }
        ```
    """

    head: Float[Array, " N"]

    def __init__(
        self,
        problem: HCProblem,
        basis: BasisNetwork,
        *,
        grid: tuple[int, int] = (32, 64),
        key: PRNGKeyArray,
    ):
        """**Arguments:**

        - `problem`, `basis`, `grid`: as for `HardConstraintLayer`.
        - `key`: a `jax.random` key for the initial weight vector.
        """
        _check_common(
            problem, basis, grid, basis.num_basis, "levenberg_marquardt", (1, 1), 0.0
        )
        dtype = basis.mlp.layers[0].weight.dtype
        n = basis.num_basis
        self.head = jr.normal(key, (n,), dtype) / jnp.sqrt(jnp.asarray(n, dtype))
        self.basis = basis
        self.problem = problem
        self.grid = (int(grid[0]), int(grid[1]))
        self.num_points = n
        self.splits = (1, 1)
        self.overlap = 0.0
        self.ridge = 0.0
        self.ic_weight = 1.0
        self.bc_weight = 1.0
        self.method = "levenberg_marquardt"
        self.rtol = 0.0
        self.atol = 0.0
        self.max_steps = 0
        self.adjoint = optx.ImplicitAdjoint()
        self.interface_weight = 0.0
        self.interface_slope = False
        self.boundary_rows = "touching"
        self.mesh = None
        self.mesh_axis = "experts"
        self.verbose = False

    def solve(self, instance: Float[Array, " p"], key: PRNGKeyArray) -> HCSolution:
        """The shared weight vector (no solve), in the layers' `HCSolution` form."""
        self.problem.check_instance(instance)
        del instance, key
        zero = jnp.zeros((1,), self.head.dtype)
        stats = {
            "residual_norm": zero,
            "gradient_norm": zero,
            "num_steps": jnp.zeros((1,), int),
        }
        result = jax.vmap(lambda _: RESULTS.successful)(zero)
        return HCSolution(self.head[None], result, stats)


def hc_loss(
    model,
    batch,
    key: PRNGKeyArray,
    *,
    num_points: int = 256,
    pde_weight: float = 1.0,
    ic_weight: float = 1.0,
    bc_weight: float = 1.0,
    data_weight: float = 0.0,
) -> Float[Array, ""]:
    """The outer (training) loss of PI-SC, PI-HC and PI-HC-MoE, for `sciopt.fit`.

    For each instance of the batch: solve the layer's weights, then on the assembled
    solution take the mean squared PDE residual (in units of `u`: the residual is
    scaled by the time span) at `num_points` fresh grid nodes, the mean squared
    initial-condition and boundary misfits on the whole grid edges, the model's
    interface-continuity penalty times its `interface_weight` (MoE), and, when
    `data_weight > 0`, the relative squared error against reference grids. No
    interior solution data are used unless `data_weight > 0`.

    **Arguments:**

    - `model`: a `HardConstraintLayer`, `MoEHardConstraint` or
      `SoftConstraintModel`.
    - `batch`: instances `(B, p)`, or a pair `(instances, references)` with
      references of shape `(B, nt, nx)` on the model's grid (needed for the data
      term).
    - `key`: fresh randomness (collocation points of the solves and of the loss).
    - `num_points`, `pde_weight`, `ic_weight`, `bc_weight`, `data_weight`: as above.

    **Returns:**

    The scalar loss, averaged over the batch.
    """
    if isinstance(batch, (tuple, list)):
        instances, references = batch
    else:
        instances, references = batch, None
    if data_weight > 0 and references is None:
        raise ValueError(
            "`data_weight > 0` needs reference grids: pass `batch = (instances, "
            "references)`."
        )
    problem = model.problem
    nt, nx = model.grid
    dtype = model._dtype()
    t, x = model.coordinates(dtype)
    edge_t = np.arange(nt)
    edge_x = np.arange(nx)

    def one(p, k, ref):
        k_solve, k_t, k_x = jr.split(k, 3)
        w = model.solve(p, k_solve).weights
        it = jr.randint(k_t, (num_points,), 0, nt)
        ix = jr.randint(k_x, (num_points,), 0, nx)
        v = model.values(p, w, it, ix, ("u", "u_t", "u_x", "u_xx"))
        f = jax.vmap(lambda vi, ti, xi: problem.residual(vi, ti, xi, p))(
            v, t[it], x[ix]
        )
        loss = pde_weight * jnp.mean(f**2)
        u_ic = model.values(p, w, np.zeros(nx, int), edge_x)["u"]
        loss = loss + ic_weight * jnp.mean((u_ic - problem.initial(p, x)) ** 2)
        names = ("u", "u_x")
        vl = model.values(p, w, edge_t, np.zeros(nt, int), names)
        vr = model.values(p, w, edge_t, np.full(nt, nx - 1), names)
        left = jax.vmap(lambda vi, ti: problem.left(vi, ti, p))(vl, t)
        right = jax.vmap(lambda vi, ti: problem.right(vi, ti, p))(vr, t)
        loss = loss + bc_weight * (jnp.mean(left**2) + jnp.mean(right**2))
        if model.interface_weight > 0:
            loss = loss + model.interface_weight * model.interface_penalty(p, w)
        if data_weight > 0:
            u = model.predict(p, w)
            loss = loss + data_weight * jnp.sum((u - ref) ** 2) / jnp.sum(ref**2)
        return loss

    keys = jr.split(key, instances.shape[0])
    instances = jnp.asarray(instances, dtype)
    if references is None:
        losses = jax.vmap(lambda p, k: one(p, k, None))(instances, keys)
    else:
        losses = jax.vmap(one)(instances, keys, jnp.asarray(references, dtype))
    return jnp.mean(losses)


@eqx.filter_jit
def _predict_all(model, instances, key):
    keys = jr.split(key, instances.shape[0])

    def one(p, k):
        sol = model.solve(p, k)
        return model.predict(p, sol.weights), sol

    return jax.vmap(one)(instances, keys)


def hc_relative_l2(
    model, instances: Array, references: Array, key: PRNGKeyArray
) -> tuple[Float[Array, " n"], HCSolution]:
    """Test relative L2 error `||u - u_ref|| / ||u_ref||` per instance on the model's
    grid, and the solutions (results and stats of every solve).

    **Arguments:**

    - `model`: a trained layer or baseline.
    - `instances`: shape `(n, p)`.
    - `references`: shape `(n, nt, nx)`, on the model's grid.
    - `key`: collocation points of the solves.
    """
    dtype = model._dtype()
    u, sol = _predict_all(model, jnp.asarray(instances, dtype), key)
    references = jnp.asarray(references, dtype)
    if references.shape != u.shape:
        raise ValueError(
            f"`references` must have shape {u.shape} (instances x grid), got "
            f"{references.shape}."
        )
    num = jnp.sqrt(jnp.sum((u - references) ** 2, axis=(1, 2)))
    den = jnp.sqrt(jnp.sum(references**2, axis=(1, 2)))
    return num / den, sol
