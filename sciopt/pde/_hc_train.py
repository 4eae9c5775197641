"""The soft-constraint baseline (PI-SC) and the outer training loss of the
hard-constrained layers."""

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from .._solution import RESULTS, Solution
from ._family import PDEFamily
from ._hc_basis import BasisNetwork
from ._hc_layer import MoEHardConstraint
from ._hc_solve import boundary_rows, pde_rows
from ._pde import PDE


class SoftConstraintModel(MoEHardConstraint):
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
        problem: PDE | PDEFamily,
        basis: BasisNetwork,
        *,
        grid: tuple[int, int] = (32, 64),
        key: PRNGKeyArray,
    ):
        """**Arguments:**

        - `problem`, `basis`, `grid`: as for `HardConstraintLayer`.
        - `key`: a `jax.random` key for the initial weight vector.
        """
        super().__init__(
            problem,
            basis,
            splits=(1, 1),
            grid=grid,
            num_points=basis.num_basis,
            interface_weight=0.0,
            method="levenberg_marquardt",
        )
        dtype = basis.mlp.layers[0].weight.dtype
        n = basis.num_basis
        self.head = jr.normal(key, (n,), dtype) / jnp.sqrt(jnp.asarray(n, dtype))

    def solve(self, instance, key: PRNGKeyArray, args=None) -> Solution:
        """The shared weight vector (no solve), as the layers' `sciopt.Solution`."""
        self._instance(instance)
        self._overrides(args)
        zero = jnp.zeros((1,), self.head.dtype)
        stats = {
            "residual_norm": zero,
            "gradient_norm": zero,
            "num_steps": jnp.zeros((1,), int),
        }
        result = jax.vmap(lambda _: RESULTS.successful)(zero)
        return Solution(value=self.head[None], result=result, stats=stats, state=None)


def hc_loss(
    model: MoEHardConstraint,
    batch,
    key: PRNGKeyArray,
    *,
    num_points: int = 256,
    pde_weight: float = 1.0,
    ic_weight: float = 1.0,
    bc_weight: float = 1.0,
    data_weight: float = 0.0,
    args: dict | None = None,
) -> Float[Array, ""]:
    """The outer (training) loss of PI-SC, PI-HC and PI-HC-MoE, for `sciopt.fit`.

    For each instance of the batch: solve the layer's weights, then on the assembled
    solution take the mean squared PDE residual (in units of `u`: the residual is
    scaled by the time span) at `num_points` fresh grid nodes, the mean squared
    initial-condition misfit on the grid's first row and the mean squared residual
    of each boundary condition along the grid's edges, the model's
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
    - `args`: overrides of the PDE's other parameters (e.g. `{"nu": nu}`).

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
    pde = model.problem.pde
    u = pde.unknown
    nt, nx = model.grid
    dtype = model._dtype()
    t, x = model.coordinates(dtype)
    edge_t, edge_x = np.arange(nt), np.arange(nx)
    args = model._overrides(args)
    names = (u,) + pde.derivatives
    which = ("",) + tuple(d[len(u) + 1 :] for d in pde.derivatives)

    def by_letter(v):
        return {w: v[n] for w, n in zip(("", "x"), (u, f"{u}_x"))}

    def one(p, k, ref):
        a = model._parameters(p, args)
        k_solve, k_t, k_x = jr.split(k, 3)
        w = model.solve(p, k_solve, args).value
        it = jr.randint(k_t, (num_points,), 0, nt)
        ix = jr.randint(k_x, (num_points,), 0, nx)
        v = model.values(p, w, it, ix, names, args)
        f = pde_rows(
            pde, dict(zip(which, (v[n] for n in names))), t[it], x[ix], a, model.scale
        )
        loss = pde_weight * jnp.mean(f**2)
        u_ic = model.values(p, w, np.zeros(nx, int), edge_x, args=args)[u]
        loss = loss + ic_weight * jnp.mean((u_ic - pde.initial_value(x, a)) ** 2)
        edge = (u, f"{u}_x")
        vl = model.values(p, w, edge_t, np.zeros(nt, int), edge, args)
        vr = model.values(p, w, edge_t, np.full(nt, nx - 1), edge, args)
        bc = boundary_rows(pde, by_letter(vl), by_letter(vr), t, a)
        loss = loss + bc_weight * sum(jnp.mean(r**2) for r, _ in bc)
        if model.interface_weight > 0:
            loss = loss + model.interface_weight * model.interface_penalty(p, w, args)
        if data_weight > 0:
            pred = model.predict(p, w, args=args)
            loss = loss + data_weight * jnp.sum((pred - ref) ** 2) / jnp.sum(ref**2)
        return loss

    keys = jr.split(key, instances.shape[0])
    instances = jnp.asarray(instances, dtype)
    if references is None:
        losses = jax.vmap(lambda p, k: one(p, k, None))(instances, keys)
    else:
        losses = jax.vmap(one)(instances, keys, jnp.asarray(references, dtype))
    return jnp.mean(losses)
