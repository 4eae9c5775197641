"""The hard-constraint layers PI-HC and PI-HC-MoE: a basis network whose weights
solve the PDE per instance (per space-time block for the mixture). A single-expert
layer is a mixture with one expert: `HardConstraintLayer` is `MoEHardConstraint`
with `splits = (1, 1)`."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optimistix as optx
from jaxtyping import Array, Float, Int, PRNGKeyArray

from .._adjoint import ImplicitAdjoint
from .._compile import jit
from .._solution import Solution
from ._family import PDEFamily
from ._hc_basis import basis_terms, BasisNetwork
from ._hc_solve import ConstraintRows, letters, METHODS, named, solve_weights
from ._pde import PDE


_CITE = r"""
    ??? cite "References"

        ```bibtex
        @inproceedings{negiar2023learning,
            title={Learning differentiable solvers for systems with hard
                   constraints},
            author={N{\'e}giar, Geoffrey and Mahoney, Michael W. and
                    Krishnapriyan, Aditi S.},
            booktitle={International Conference on Learning Representations},
            year={2023}
        }
        @inproceedings{chalapathi2024scaling,
            title={Scaling physics-informed hard constraints with
                   mixture-of-experts},
            author={Chalapathi, Nithin and Du, Yiheng and Krishnapriyan, Aditi S.},
            booktitle={International Conference on Learning Representations},
            year={2024}
        }
        ```
"""


def as_family(problem) -> PDEFamily:
    """A `PDEFamily` from a `PDE` (no instance parameters) or a family."""
    if isinstance(problem, PDEFamily):
        return problem
    if isinstance(problem, PDE):
        return PDEFamily(problem)
    raise TypeError(
        "`problem` must be a sciopt.pde.PDE or a sciopt.pde.PDEFamily (e.g. "
        f"`PDEFamily.preset('heat')`), got {type(problem).__name__}."
    )


def check_settings(**settings) -> None:
    """`ValueError` naming the setting unless `ridge`, `ic_weight`, `bc_weight`,
    `rtol`, `atol`, `interface_weight` are finite and non-negative and `max_steps` a
    positive int."""
    for name, value in settings.items():
        if name == "max_steps":
            if not (isinstance(value, (int, np.integer)) and value >= 1):
                raise ValueError(f"`max_steps` must be a positive int, got {value!r}.")
            continue
        if not (np.isfinite(value) and value >= 0):
            raise ValueError(
                f"`{name}` must be finite and non-negative, got {value!r}"
                + (
                    ": a negative ridge makes the least-squares problem indefinite."
                    if name == "ridge"
                    else "."
                )
            )


class MoEHardConstraint(eqx.Module):
    (
        r"""A mixture of physics-informed hard-constraint experts (PI-HC-MoE); with one
    expert, the hard-constraint layer PI-HC (`HardConstraintLayer`).

    A basis network maps the instance (its initial condition at sensor points) and a
    point `(t, x)` to `N` basis functions `b_j`. A fixed router splits the `nt x nx`
    grid into `K = kt * kx` uniform blocks (`splits = (kt, kx)`); expert `k` owns
    `u = sum_j omega_{k,j} b_j` on its block, where `omega_k` solves, per instance,
    the nonlinear least-squares problem

    $$\min_\omega 	frac12 \|r(\omega)\|^2,\quad r = [T\,R(u)(p_i)/\sqrt m;\ w_{ic}
    (u(t_0, x_j) - u_0(x_j))/\sqrt{n_x};\ w_{bc}\,B(u)(t_l)/\sqrt{n_t};\ \lambda
    \omega]$$

    with `R` the PDE's residual (times the time span `T`, so rows are in units of
    `u`) at `num_points` grid nodes `p_i` of its block (optionally extended by
    `overlap` of a block width into its neighbours) drawn afresh with each key, `u_0`
    the initial condition and `B` the boundary conditions (`RobinBC`: Dirichlet,
    Neumann, Robin; `PeriodicBC`). Per-basis derivative terms are computed once by
    forward-mode autodiff, so `omega` enters by contractions only. The solve is
    optimistix's Levenberg-Marquardt (nonlinear PDEs) or a QR solve (when
    the PDE is affine in the unknown); `"gauss_newton"` is also available. Experts
    are independent problems: they run under `vmap` and, given a `mesh`, are sharded
    over its `mesh_axis`. Gradients (to the basis network and to the PDE's
    parameters passed as `args`) use the implicit function theorem on `J^T r = 0`
    (`sciopt.ImplicitAdjoint`), unless `adjoint` says otherwise.

    Uncoupled experts may disagree across block interfaces; `interface_weight`
    weights a continuity term (value, and slope times the grid step when
    `interface_slope`) that `sciopt.pde.hc_loss` adds to the outer training loss, so
    experts stay independent (and parallel) in the inner solves.

    PDE parameters: an instance vector sets the family's instance parameters; the
    others (e.g. `nu`) are the PDE's defaults or the `args` dict of `solve`,
    `__call__`, `predict`, `values` and `hc_loss`, as arrays that may be traced and
    differentiated.
    """
        + _CITE
    )

    basis: BasisNetwork
    problem: PDEFamily
    grid: tuple[int, int] = eqx.field(static=True, default=(32, 64))
    num_points: int = eqx.field(static=True, default=128)
    splits: tuple[int, int] = eqx.field(static=True, default=(1, 4))
    overlap: float = eqx.field(static=True, default=0.0)
    ridge: float = eqx.field(static=True, default=1e-4)
    ic_weight: float = eqx.field(static=True, default=1.0)
    bc_weight: float = eqx.field(static=True, default=1.0)
    method: str = eqx.field(static=True, default="levenberg_marquardt")
    rtol: float = eqx.field(static=True, default=1e-8)
    atol: float = eqx.field(static=True, default=1e-8)
    max_steps: int = eqx.field(static=True, default=100)
    adjoint: optx.AbstractAdjoint = ImplicitAdjoint()
    interface_weight: float = eqx.field(static=True, default=1.0)
    interface_slope: bool = eqx.field(static=True, default=True)
    boundary_rows: str = eqx.field(static=True, default="all")
    mesh: jax.sharding.Mesh | None = eqx.field(static=True, default=None)
    mesh_axis: str = eqx.field(static=True, default="experts")
    verbose: bool = eqx.field(static=True, default=False)

    def __init__(
        self,
        problem: PDE | PDEFamily,
        basis: BasisNetwork,
        *,
        splits: tuple[int, int] = (1, 4),
        grid: tuple[int, int] = (32, 64),
        num_points: int = 128,
        overlap: float = 0.0,
        interface_weight: float = 1.0,
        interface_slope: bool = True,
        boundary_rows: str = "all",
        mesh: jax.sharding.Mesh | None = None,
        mesh_axis: str = "experts",
        ridge: float = 1e-4,
        ic_weight: float = 1.0,
        bc_weight: float = 1.0,
        method: str = "auto",
        rtol: float = 1e-8,
        atol: float = 1e-8,
        max_steps: int = 100,
        adjoint: optx.AbstractAdjoint = ImplicitAdjoint(),
        verbose: bool = False,
    ):
        """**Arguments:**

        - `problem`: a `PDEFamily` (e.g. `sciopt.pde.PDEFamily.preset("heat")`), or a
          `PDE` (then instances are `None` and only `args` vary).
        - `basis`: a `BasisNetwork` with `num_sensors = family.num_sensors`.
        - `splits`: `(kt, kx)` experts along time and space; each must divide the
          grid's points along its axis.
        - `grid`: `(nt, nx)`: the space-time grid the layer samples from and
          predicts on.
        - `num_points`: PDE rows per expert (at least `N`, at most a block's nodes).
        - `overlap`: fraction of a block's width by which each expert's sampling
          region (and its boundary rows) extends into its neighbours; the assembled
          solution still uses the non-overlapping blocks.
        - `interface_weight`: weight of the interface-continuity term in the outer
          loss (`0` turns it off); `interface_slope`: include the slope jump.
        - `boundary_rows`: `"all"` (default): every expert gets all initial and
          boundary rows, as in the authors' code; `"touching"`: only the rows that
          touch its block (an interior expert then has no lateral data and its block
          problem is ill-posed).
        - `mesh`, `mesh_axis`: a `jax.sharding.Mesh` and its axis over which the
          expert axis is sharded (`K` must be a multiple of that axis' size).
        - `ridge`: the weight of the `ridge * omega` rows.
        - `ic_weight`, `bc_weight`: weights of the initial/boundary rows.
        - `method`: `"auto"` (QR if the PDE is affine, else Levenberg-Marquardt),
          `"levenberg_marquardt"`, `"gauss_newton"` or `"qr"`.
        - `rtol`, `atol`, `max_steps`: optimistix stopping rule of the nonlinear
          solve.
        - `adjoint`: `sciopt.ImplicitAdjoint()` (default) or
          `optx.RecursiveCheckpointAdjoint()` to differentiate the unrolled solve.
        - `verbose`: print the solver's progress.

        **Raises:**

        `TypeError` for a `problem` that is neither a `PDE` nor a `PDEFamily`;
        `ValueError` when an axis of the grid is not divisible by its number of
        experts (naming the axis), for `num_points` below `N`, an unknown `method`,
        `"qr"` on a nonlinear PDE, a basis whose sensor count does not match the
        family, a negative or non-finite `ridge`, `ic_weight`, `bc_weight`, `rtol`,
        `atol` or `interface_weight`, `max_steps < 1`, or a mesh axis that does not
        divide `K`.
        """
        problem = as_family(problem)
        splits = (int(splits[0]), int(splits[1]))
        grid = (int(grid[0]), int(grid[1]))
        self.method = _check_common(
            problem, basis, grid, num_points, method, splits, overlap
        )
        check_settings(
            ridge=ridge,
            ic_weight=ic_weight,
            bc_weight=bc_weight,
            rtol=rtol,
            atol=atol,
            interface_weight=interface_weight,
            max_steps=max_steps,
        )
        if boundary_rows not in ("touching", "all"):
            raise ValueError(
                f"`boundary_rows` must be 'touching' or 'all', got {boundary_rows!r}."
            )
        if mesh is not None:
            if mesh_axis not in mesh.shape:
                raise ValueError(
                    f"`mesh` has no axis {mesh_axis!r}; its axes are "
                    f"{tuple(mesh.shape)}. Pass `mesh_axis`."
                )
            if (splits[0] * splits[1]) % mesh.shape[mesh_axis] != 0:
                raise ValueError(
                    f"{splits[0] * splits[1]} experts cannot be split evenly over "
                    f"the {mesh.shape[mesh_axis]} devices of mesh axis "
                    f"{mesh_axis!r}: use a multiple of that many experts."
                )
            # Experts are placed by sharding constraints, which need "auto" axes.
            mesh = jax.sharding.Mesh(
                mesh.devices,
                mesh.axis_names,
                axis_types=(jax.sharding.AxisType.Auto,) * len(mesh.axis_names),
            )
        self.basis = basis
        self.problem = problem
        self.grid = grid
        self.num_points = int(num_points)
        self.splits = splits
        self.overlap = float(overlap)
        self.ridge = float(ridge)
        self.ic_weight = float(ic_weight)
        self.bc_weight = float(bc_weight)
        self.rtol = float(rtol)
        self.atol = float(atol)
        self.max_steps = int(max_steps)
        self.adjoint = adjoint
        self.interface_weight = float(interface_weight)
        self.interface_slope = bool(interface_slope)
        self.boundary_rows = boundary_rows
        self.mesh = mesh
        self.mesh_axis = mesh_axis
        self.verbose = bool(verbose)

    # -- geometry --------------------------------------------------------------
    @property
    def num_experts(self) -> int:
        return self.splits[0] * self.splits[1]

    @property
    def block_shape(self) -> tuple[int, int]:
        return self.grid[0] // self.splits[0], self.grid[1] // self.splits[1]

    def coordinates(self, dtype=None) -> tuple[Array, Array]:
        """The grid's times and points."""
        return self.problem.grid(*self.grid, dtype)

    def expert_of(self, it: Array, ix: Array) -> Array:
        """Which expert owns grid node `(it, ix)` (index arrays)."""
        bt, bx = self.block_shape
        return (it // bt) * self.splits[1] + ix // bx

    def _dtype(self):
        return self.basis.mlp.layers[0].weight.dtype

    def _instance(self, instance) -> Array:
        """Check an instance's length (trace time) and cast it to the basis' dtype
        (`None`: the PDE as declared, for a family without instance parameters)."""
        if instance is None:
            instance = jnp.zeros((0,), self._dtype())
        self.problem.check_instance(instance)
        return jnp.asarray(instance, self._dtype())

    def _overrides(self, args) -> dict:
        """`args` checked against the PDE's parameters (trace time) and made arrays
        of the basis' dtype, so new values neither recompile nor stop gradients."""
        if args is None:
            return {}
        self.problem.args(jnp.zeros((self.problem.num_params,)), args)
        return {k: jnp.asarray(v, self._dtype()) for k, v in args.items()}

    def _parameters(self, instance, args) -> dict:
        """The PDE's full parameter dict for an (already checked) instance."""
        a = self.problem.args(instance, args)
        return {k: jnp.asarray(v, self._dtype()) for k, v in a.items()}

    @property
    def scale(self) -> float:
        """The factor of the PDE rows: the time span, so they are in units of `u`."""
        return self.problem.pde.domain.duration

    def _sample_points(self, key: PRNGKeyArray) -> tuple[Array, Array]:
        """`num_points` grid nodes per expert (indices, shape `(K, m)`)."""
        nt, nx = self.grid
        bt, bx = self.block_shape
        ot = int(round(self.overlap * bt)) if self.splits[0] > 1 else 0
        ox = int(round(self.overlap * bx)) if self.splits[1] > 1 else 0
        et, ex = bt + 2 * ot, bx + 2 * ox
        keys = jr.split(key, self.num_experts)
        k = np.arange(self.num_experts)
        start_t = (k // self.splits[1]) * bt - ot
        start_x = (k % self.splits[1]) * bx - ox
        if ot == 0 and ox == 0:  # every block lies inside the grid
            local = jax.vmap(
                lambda k: jr.choice(k, et * ex, (self.num_points,), replace=False)
            )(keys)
        else:
            # An extended region sticks out of the grid at the domain's edges: draw
            # without replacement among its nodes inside the grid only (a uniform
            # random subset: the `num_points` smallest of i.i.d. uniforms; the block
            # itself is inside, so there are always enough nodes).
            cell_t = np.arange(et * ex) // ex + start_t[:, None]
            cell_x = np.arange(et * ex) % ex + start_x[:, None]
            inside = (cell_t >= 0) & (cell_t < nt) & (cell_x >= 0) & (cell_x < nx)
            u = jax.vmap(lambda k: jr.uniform(k, (et * ex,)))(keys)
            u = jnp.where(inside, u, 2.0)
            local = jnp.argsort(u, axis=1)[:, : self.num_points]
        it = local // ex + start_t[:, None]
        ix = local % ex + start_x[:, None]
        return it, ix

    def _row_masks(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Which global IC/BC rows touch each expert's (extended) block."""
        nt, nx = self.grid
        bt, bx = self.block_shape
        ot = int(round(self.overlap * bt)) if self.splits[0] > 1 else 0
        ox = int(round(self.overlap * bx)) if self.splits[1] > 1 else 0
        k = np.arange(self.num_experts)
        bi, bj = k // self.splits[1], k % self.splits[1]
        x_idx, t_idx = np.arange(nx), np.arange(nt)
        in_x = (x_idx[None] >= bj[:, None] * bx - ox) & (
            x_idx[None] < (bj[:, None] + 1) * bx + ox
        )
        in_t = (t_idx[None] >= bi[:, None] * bt - ot) & (
            t_idx[None] < (bi[:, None] + 1) * bt + ot
        )
        if self.boundary_rows == "all":
            ones_x = np.ones((self.num_experts, nx), bool)
            ones_t = np.ones((self.num_experts, nt), bool)
            return ones_x, ones_t, ones_t
        ic = in_x & (bi[:, None] * bt - ot <= 0)
        left = in_t & (bj[:, None] * bx - ox <= 0)
        right = in_t & ((bj[:, None] + 1) * bx + ox >= nx)
        return ic, left, right

    def _shard(self, tree):
        if self.mesh is None:
            return tree
        sharding = jax.sharding.NamedSharding(
            self.mesh, jax.sharding.PartitionSpec(self.mesh_axis)
        )
        return jax.tree.map(
            lambda x: jax.lax.with_sharding_constraint(x, sharding), tree
        )

    # -- the solve -------------------------------------------------------------
    def constraint_rows(
        self,
        instance: Float[Array, " p"] | None,
        key: PRNGKeyArray,
        args: dict | None = None,
    ) -> ConstraintRows:
        """The least-squares rows of every expert (leading axis `K`), for one
        instance: per-basis terms at the sampled points and the IC/BC rows that
        touch each block."""
        dtype = self._dtype()
        instance = self._instance(instance)
        args = self._overrides(args)
        a = self._parameters(instance, args)
        pde = self.problem.pde
        sensors = self.problem.sensors(instance, args)
        t, x = self.coordinates(dtype)
        nt, nx = self.grid
        k, m = self.num_experts, self.num_points
        it, ix = self._sample_points(key)
        pde_t, pde_x = t[it.reshape(-1)], x[ix.reshape(-1)]
        pde_terms = basis_terms(self.basis, sensors, pde_t, pde_x, letters(pde))
        pde_terms = jax.tree.map(lambda v: v.reshape(k, m, -1), pde_terms)
        ic_terms = basis_terms(self.basis, sensors, jnp.full_like(x, t[0]), x, ("",))
        edge = ("", "x")
        left_terms = basis_terms(self.basis, sensors, t, jnp.full_like(t, x[0]), edge)
        right_terms = basis_terms(self.basis, sensors, t, jnp.full_like(t, x[-1]), edge)
        ic_mask, left_mask, right_mask = (
            jnp.asarray(v, dtype) for v in self._row_masks()
        )

        def weights(mask, scale):
            count = jnp.maximum(jnp.sum(mask, axis=-1, keepdims=True), 1)
            return scale * mask / jnp.sqrt(count)

        def per_expert(tree):
            return jax.tree.map(lambda v: jnp.broadcast_to(v, (k,) + v.shape), tree)

        rows = ConstraintRows(
            pde_terms=pde_terms,
            pde_t=pde_t.reshape(k, m),
            pde_x=pde_x.reshape(k, m),
            pde_w=jnp.ones((k, m), dtype) / math.sqrt(m),
            ic_terms=per_expert(ic_terms[""]),
            ic_target=per_expert(pde.initial_value(x, a)),
            ic_w=weights(ic_mask, self.ic_weight),
            bc_t=per_expert(t),
            left_terms=per_expert(left_terms),
            left_w=weights(left_mask, self.bc_weight),
            right_terms=per_expert(right_terms),
            right_w=weights(right_mask, self.bc_weight),
        )
        return self._shard(rows)

    def solve(
        self,
        instance: Float[Array, " p"] | None,
        key: PRNGKeyArray,
        args: dict | None = None,
    ) -> Solution:
        """Solve for the weights of every expert, for one instance.

        **Arguments:**

        - `instance`: the instance's parameter vector (a row of
          `family.sample(key, n)`), or `None` for a family without instance
          parameters (a plain `PDE`).
        - `key`: picks the `num_points` collocation points of each expert.
        - `args`: overrides of the PDE's other parameters, e.g. `{"nu": nu}`
          (arrays; traced values are fine and are differentiated).

        **Returns:**

        A `sciopt.Solution` whose `value` has shape `(K, N)`: one weight vector per
        expert (`K = 1` for PI-HC); `result` holds one `sciopt.RESULTS` code per expert
        (non-finite basis outputs give `nonfinite_model`, an unconverged solve
        `steps_exhausted`); `stats` per expert: `residual_norm` (2-norm of the residual
        rows), `gradient_norm` (max-norm of `J^T r`, the stationarity residual) and
        `num_steps`. Gradients reach the basis network and `args` by the
        implicit function theorem on each expert's stationarity condition `J^T r =
        0` (or through the iterations with
        `adjoint=optx.RecursiveCheckpointAdjoint()`).

        The solve is jit-compiled (`equinox.filter_jit`): the first call with a
        layer compiles it, later calls with an equal layer (the same declaration,
        even re-declared) reuse the compilation; under an outer `jax.jit` it is
        inlined.

        **Raises:**

        `ValueError` when `instance` is not one vector of the family's
        `num_params` parameters, or `args` names an unknown parameter.
        """
        instance = self._instance(instance)
        return _solve_jit(self, instance, key, self._overrides(args))

    def _solve(self, instance, key, args) -> Solution:
        rows = self.constraint_rows(instance, key, args)
        a = self._parameters(instance, args)

        def one_expert(r):
            return solve_weights(
                self.problem.pde,
                r,
                a,
                method=self.method,
                ridge=self.ridge,
                scale=self.scale,
                rtol=self.rtol,
                atol=self.atol,
                max_steps=self.max_steps,
                adjoint=self.adjoint,
                verbose=self.verbose,
            )

        omega, result, stats = jax.vmap(one_expert)(rows)
        omega, result, stats = self._shard((omega, result, stats))
        return Solution(value=omega, result=result, stats=stats, state=None)

    # -- evaluation ------------------------------------------------------------
    def _assemble(self, instance, weights, t, x, it, ix, names, args):
        pde = self.problem.pde
        u = pde.unknown
        which = tuple("" if n == u else n[len(u) + 1 :] for n in names)
        sensors = self.problem.sensors(instance, self._overrides(args))
        terms = basis_terms(self.basis, sensors, t, x, which)
        w = weights[self.expert_of(it, ix)]
        return named(pde, {k: jnp.sum(v * w, axis=-1) for k, v in terms.items()})

    def values(
        self,
        instance: Float[Array, " p"] | None,
        weights: Float[Array, "K N"],
        it: Int[Array, " n"],
        ix: Int[Array, " n"],
        names: tuple[str, ...] | None = None,
        args: dict | None = None,
    ) -> dict[str, Array]:
        """The assembled solution and its derivatives `names` (the PDE's names,
        e.g. `("u", "u_x")`; default the unknown) at grid nodes `(it, ix)`: each
        node uses the weights of the expert that owns it."""
        instance = self._instance(instance)
        names = (self.problem.pde.unknown,) if names is None else tuple(names)
        t, x = self.coordinates(self._dtype())
        return self._assemble(instance, weights, t[it], x[ix], it, ix, names, args)

    def predict(
        self,
        instance: Float[Array, " p"] | None,
        weights: Float[Array, "K N"],
        t: Array | None = None,
        x: Array | None = None,
        args: dict | None = None,
    ) -> Array:
        """The assembled solution: on the whole `nt x nx` grid (`(nt, nx)`) when `t`
        and `x` are `None`; else at the points `(t, x)` (arrays of one shape, or
        scalars), each routed to the expert that owns the nearest grid node. The
        pointwise form is differentiable in `t` and `x`."""
        instance = self._instance(instance)
        nt, nx = self.grid
        u = self.problem.pde.unknown
        if t is None and x is None:
            it, ix = np.meshgrid(np.arange(nt), np.arange(nx), indexing="ij")
            it, ix = it.reshape(-1), ix.reshape(-1)
            tg, xg = self.coordinates(self._dtype())
            v = self._assemble(instance, weights, tg[it], xg[ix], it, ix, (u,), args)
            return v[u].reshape(nt, nx)
        if t is None or x is None:
            raise ValueError("Pass both `t` and `x`, or neither (the whole grid).")
        t, x = jnp.broadcast_arrays(
            jnp.asarray(t, self._dtype()), jnp.asarray(x, self._dtype())
        )
        (t0, t1), (x0, x1) = self.problem.t_span, self.problem.x_span
        it = jnp.clip(jnp.rint((t - t0) / (t1 - t0) * (nt - 1)), 0, nt - 1)
        ix = jnp.clip(jnp.rint((x - x0) / (x1 - x0) * (nx - 1)), 0, nx - 1)
        it, ix = (jax.lax.stop_gradient(i).astype(int).reshape(-1) for i in (it, ix))
        v = self._assemble(
            instance, weights, t.reshape(-1), x.reshape(-1), it, ix, (u,), args
        )
        return v[u].reshape(t.shape)

    def __call__(
        self,
        instance: Float[Array, " p"] | None,
        key: PRNGKeyArray,
        args: dict | None = None,
    ) -> Float[Array, "nt nx"]:
        """Solve for the weights and return the solution on the grid."""
        weights = self.solve(instance, key, args).value
        return self.predict(instance, weights, args=args)

    def interface_penalty(
        self,
        instance: Float[Array, " p"] | None,
        weights: Float[Array, "K N"],
        args: dict | None = None,
    ) -> Array:
        """Mean squared jump of the value (and of the normal slope times the grid
        step) across the interfaces between neighbouring experts; zero for `K = 1`."""
        dtype = self._dtype()
        instance = self._instance(instance)
        if self.num_experts == 1:
            return jnp.zeros((), dtype)
        nt, nx = self.grid
        bt, bx = self.block_shape
        kt, kx = self.splits
        pts_t, pts_x, a, b, along_x = [], [], [], [], []
        tn = np.linspace(*self.problem.t_span, nt)
        xn = np.linspace(*self.problem.x_span, nx)
        it = np.arange(nt)
        for c in range(1, kx):
            xm = 0.5 * (xn[c * bx - 1] + xn[c * bx])
            pts_t.append(tn)
            pts_x.append(np.full(nt, xm))
            a.append((it // bt) * kx + c - 1)
            b.append((it // bt) * kx + c)
            along_x.append(np.ones(nt, bool))
        ix = np.arange(nx)
        for r in range(1, kt):
            tm = 0.5 * (tn[r * bt - 1] + tn[r * bt])
            pts_t.append(np.full(nx, tm))
            pts_x.append(xn)
            a.append((r - 1) * kx + ix // bx)
            b.append(r * kx + ix // bx)
            along_x.append(np.zeros(nx, bool))
        pts_t = jnp.asarray(np.concatenate(pts_t), dtype)
        pts_x = jnp.asarray(np.concatenate(pts_x), dtype)
        a, b = np.concatenate(a), np.concatenate(b)
        along_x = jnp.asarray(np.concatenate(along_x))
        sensors = self.problem.sensors(instance, self._overrides(args))
        terms = basis_terms(self.basis, sensors, pts_t, pts_x, ("", "t", "x"))
        dw = weights[b] - weights[a]
        jump = jnp.sum(terms[""] * dw, axis=-1)
        penalty = jnp.mean(jump**2)
        if self.interface_slope:
            ht = (tn[-1] - tn[0]) / max(nt - 1, 1)
            hx = (xn[-1] - xn[0]) / max(nx - 1, 1)
            slope = jnp.where(
                along_x,
                hx * jnp.sum(terms["x"] * dw, axis=-1),
                ht * jnp.sum(terms["t"] * dw, axis=-1),
            )
            penalty = penalty + jnp.mean(slope**2)
        return penalty


@jit
def _solve_jit(layer, instance, key, args):
    return layer._solve(instance, key, args)


def _check_common(problem, basis, grid, num_points, method, splits, overlap):
    if not isinstance(basis, BasisNetwork):
        raise TypeError(f"`basis` must be a BasisNetwork, got {type(basis)}.")
    if basis.num_sensors != problem.num_sensors:
        raise ValueError(
            f"`basis` takes {basis.num_sensors} sensors but the family describes "
            f"instances with {problem.num_sensors}: build the basis with "
            f"`num_sensors={problem.num_sensors}`."
        )
    nt, nx = grid
    if nt < 2 or nx < 2:
        raise ValueError(f"`grid` must have at least 2 points per axis, got {grid}.")
    for axis, n, k in (("t", nt, splits[0]), ("x", nx, splits[1])):
        if k < 1:
            raise ValueError(f"`splits` along {axis} must be positive, got {k}.")
        if n % k != 0:
            raise ValueError(
                f"The grid's {axis} axis has {n} points, which {k} experts along "
                f"{axis} do not divide: choose a number of experts along {axis} that "
                f"divides {n}, or change the grid."
            )
    if not 0 <= overlap < 1:
        raise ValueError(f"`overlap` must be in [0, 1), got {overlap}.")
    block = (nt // splits[0]) * (nx // splits[1])
    if num_points < basis.num_basis:
        raise ValueError(
            f"`num_points`={num_points} is below the number of basis functions "
            f"{basis.num_basis}: the PDE rows alone would be underdetermined. Sample "
            "at least as many points as basis functions."
        )
    if num_points > block:
        raise ValueError(
            f"`num_points`={num_points} exceeds the {block} grid nodes of a block: "
            "lower `num_points` or refine the grid."
        )
    affine = problem.pde.affine
    if method == "auto":
        method = "qr" if affine else "levenberg_marquardt"
    if method not in METHODS:
        raise ValueError(
            f"`method` must be 'auto' or one of {METHODS}, got {method!r}."
        )
    if method == "qr" and not affine:
        raise ValueError(
            f"`method='qr'` needs residuals affine in the weights, but the PDE "
            f"{problem.pde.describe()} is nonlinear (or a callable): use "
            "'levenberg_marquardt'."
        )
    return method


class HardConstraintLayer(MoEHardConstraint):
    (
        """A physics-informed hard-constraint layer (PI-HC): `MoEHardConstraint` with a
    single expert (`splits = (1, 1)`): one weight vector solves the PDE, initial and
    boundary rows on the whole grid. See `MoEHardConstraint` for the method.
    """
        + _CITE
    )

    def __init__(
        self,
        problem: PDE | PDEFamily,
        basis: BasisNetwork,
        *,
        grid: tuple[int, int] = (32, 64),
        num_points: int = 256,
        ridge: float = 1e-4,
        ic_weight: float = 1.0,
        bc_weight: float = 1.0,
        method: str = "auto",
        rtol: float = 1e-8,
        atol: float = 1e-8,
        max_steps: int = 100,
        adjoint: optx.AbstractAdjoint = ImplicitAdjoint(),
        verbose: bool = False,
    ):
        """**Arguments:** as for `MoEHardConstraint` (`num_points` defaults to 256).

        **Raises:** as for `MoEHardConstraint`.
        """
        super().__init__(
            problem,
            basis,
            splits=(1, 1),
            grid=grid,
            num_points=num_points,
            interface_weight=0.0,
            interface_slope=False,
            ridge=ridge,
            ic_weight=ic_weight,
            bc_weight=bc_weight,
            method=method,
            rtol=rtol,
            atol=atol,
            max_steps=max_steps,
            adjoint=adjoint,
            verbose=verbose,
        )
