"""`HardConstraintLayer` (PI-HC): a basis network whose weights solve the PDE."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optimistix as optx
from jaxtyping import Array, Float, Int, PRNGKeyArray

from .._solution import RESULTS
from ._hc_basis import basis_terms, BasisNetwork
from ._hc_problems import HCProblem
from ._hc_solve import ConstraintRows, METHODS, solve_weights


class HCSolution(eqx.Module):
    """The weights found for one instance.

    **Attributes:**

    - `weights`: shape `(K, N)`: one weight vector per expert (`K = 1` for PI-HC).
    - `result`: a `sciopt.RESULTS` per expert (non-finite basis outputs give
      `nonfinite_model`; an unconverged solve `steps_exhausted`).
    - `stats`: per expert: `residual_norm` (2-norm of the residual rows),
      `gradient_norm` (max-norm of `J^T r`, the stationarity residual) and
      `num_steps`.
    """

    weights: Float[Array, "K N"]
    result: RESULTS
    stats: dict[str, Array]


class _HCBase(eqx.Module):
    basis: BasisNetwork
    problem: HCProblem
    grid: tuple[int, int] = eqx.field(static=True)
    num_points: int = eqx.field(static=True)
    splits: tuple[int, int] = eqx.field(static=True)
    overlap: float = eqx.field(static=True)
    ridge: float = eqx.field(static=True)
    ic_weight: float = eqx.field(static=True)
    bc_weight: float = eqx.field(static=True)
    method: str = eqx.field(static=True)
    rtol: float = eqx.field(static=True)
    atol: float = eqx.field(static=True)
    max_steps: int = eqx.field(static=True)
    adjoint: optx.AbstractAdjoint
    interface_weight: float = eqx.field(static=True)
    interface_slope: bool = eqx.field(static=True)
    boundary_rows: str = eqx.field(static=True)
    mesh: jax.sharding.Mesh | None = eqx.field(static=True)
    mesh_axis: str = eqx.field(static=True)
    verbose: bool = eqx.field(static=True)

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
        """Check an instance's length (trace time) and cast it to the basis' dtype."""
        self.problem.check_instance(instance)
        return jnp.asarray(instance, self._dtype())

    def _sample_points(self, key: PRNGKeyArray) -> tuple[Array, Array]:
        """`num_points` grid nodes per expert (indices, shape `(K, m)`)."""
        nt, nx = self.grid
        bt, bx = self.block_shape
        ot = int(round(self.overlap * bt)) if self.splits[0] > 1 else 0
        ox = int(round(self.overlap * bx)) if self.splits[1] > 1 else 0
        et, ex = bt + 2 * ot, bx + 2 * ox
        keys = jr.split(key, self.num_experts)
        local = jax.vmap(
            lambda k: jr.choice(k, et * ex, (self.num_points,), replace=False)
        )(keys)
        k = np.arange(self.num_experts)
        start_t = (k // self.splits[1]) * bt - ot
        start_x = (k % self.splits[1]) * bx - ox
        it = jnp.clip(local // ex + start_t[:, None], 0, nt - 1)
        ix = jnp.clip(local % ex + start_x[:, None], 0, nx - 1)
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
        self, instance: Float[Array, " p"], key: PRNGKeyArray
    ) -> ConstraintRows:
        """The least-squares rows of every expert (leading axis `K`), for one
        instance: per-basis terms at the sampled points and the IC/BC rows that
        touch each block. `sciopt.pde.constraint_residual` turns them into `r`."""
        dtype = self._dtype()
        instance = self._instance(instance)
        sensors = self.problem.sensors(instance)
        t, x = self.coordinates(dtype)
        nt, nx = self.grid
        k, m = self.num_experts, self.num_points
        it, ix = self._sample_points(key)
        names = ("u", "u_t", "u_x", "u_xx")
        pde_t, pde_x = t[it.reshape(-1)], x[ix.reshape(-1)]
        pde_terms = basis_terms(self.basis, sensors, pde_t, pde_x, names)
        pde_terms = jax.tree.map(lambda a: a.reshape(k, m, -1), pde_terms)
        ic_terms = basis_terms(self.basis, sensors, jnp.full_like(x, t[0]), x, ("u",))
        bc_names = ("u", "u_x")
        left_terms = basis_terms(
            self.basis, sensors, t, jnp.full_like(t, x[0]), bc_names
        )
        right_terms = basis_terms(
            self.basis, sensors, t, jnp.full_like(t, x[-1]), bc_names
        )
        ic_mask, left_mask, right_mask = (
            jnp.asarray(a, dtype) for a in self._row_masks()
        )

        def weights(mask, scale):
            count = jnp.maximum(jnp.sum(mask, axis=-1, keepdims=True), 1)
            return scale * mask / jnp.sqrt(count)

        one = jnp.ones((k, m), dtype)
        rows = ConstraintRows(
            pde_terms=pde_terms,
            pde_t=pde_t.reshape(k, m),
            pde_x=pde_x.reshape(k, m),
            pde_w=one / math.sqrt(m),
            ic_terms=jnp.broadcast_to(ic_terms["u"], (k,) + ic_terms["u"].shape),
            ic_target=jnp.broadcast_to(self.problem.initial(instance, x), (k, nx)),
            ic_w=weights(ic_mask, self.ic_weight),
            bc_t=jnp.broadcast_to(t, (k, nt)),
            left_terms=jax.tree.map(
                lambda a: jnp.broadcast_to(a, (k,) + a.shape), left_terms
            ),
            left_w=weights(left_mask, self.bc_weight),
            right_terms=jax.tree.map(
                lambda a: jnp.broadcast_to(a, (k,) + a.shape), right_terms
            ),
            right_w=weights(right_mask, self.bc_weight),
        )
        return self._shard(rows)

    def solve(self, instance: Float[Array, " p"], key: PRNGKeyArray) -> HCSolution:
        """Solve for the weights of every expert, for one instance.

        **Arguments:**

        - `instance`: the instance's parameter vector `p`.
        - `key`: picks the `num_points` collocation points of each expert.

        **Returns:**

        An `HCSolution`. Gradients reach the basis network by the implicit function
        theorem on each expert's stationarity condition `J^T r = 0` (or through the
        iterations with `adjoint=optx.RecursiveCheckpointAdjoint()`).

        The solve is jit-compiled (`equinox.filter_jit`): the first call with a
        layer compiles it, later calls with the same layer structure reuse the
        compilation; under an outer `jax.jit` it is inlined.

        **Raises:**

        `ValueError` when `instance` is not one vector of the problem's
        `num_params` parameters.
        """
        instance = self._instance(instance)
        return _solve_jit(self, instance, key)

    def _solve(self, instance, key) -> HCSolution:
        rows = self.constraint_rows(instance, key)

        def one_expert(r):
            return solve_weights(
                self.problem,
                r,
                instance,
                method=self.method,
                ridge=self.ridge,
                rtol=self.rtol,
                atol=self.atol,
                max_steps=self.max_steps,
                adjoint=self.adjoint,
                verbose=self.verbose,
            )

        omega, result, stats = jax.vmap(one_expert)(rows)
        omega, result, stats = self._shard((omega, result, stats))
        return HCSolution(omega, result, stats)

    # -- evaluation ------------------------------------------------------------
    def values(
        self,
        instance: Float[Array, " p"],
        weights: Float[Array, "K N"],
        it: Int[Array, " n"],
        ix: Int[Array, " n"],
        names=("u",),
    ) -> dict[str, Array]:
        """The assembled solution (and derivatives `names`) at grid nodes `(it, ix)`:
        each node uses the weights of the expert that owns it."""
        dtype = self._dtype()
        instance = self._instance(instance)
        t, x = self.coordinates(dtype)
        terms = basis_terms(
            self.basis, self.problem.sensors(instance), t[it], x[ix], names
        )
        w = weights[self.expert_of(it, ix)]
        return {k: jnp.sum(v * w, axis=-1) for k, v in terms.items()}

    def predict(
        self, instance: Float[Array, " p"], weights: Float[Array, "K N"]
    ) -> Float[Array, "nt nx"]:
        """The assembled solution on the whole `nt x nx` grid."""
        nt, nx = self.grid
        it, ix = np.meshgrid(np.arange(nt), np.arange(nx), indexing="ij")
        u = self.values(instance, weights, it.reshape(-1), ix.reshape(-1))["u"]
        return u.reshape(nt, nx)

    def __call__(
        self, instance: Float[Array, " p"], key: PRNGKeyArray
    ) -> Float[Array, "nt nx"]:
        """Solve for the weights and return the solution on the grid."""
        return self.predict(instance, self.solve(instance, key).weights)

    def interface_penalty(
        self, instance: Float[Array, " p"], weights: Float[Array, "K N"]
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
        terms = basis_terms(
            self.basis,
            self.problem.sensors(instance),
            pts_t,
            pts_x,
            ("u", "u_t", "u_x"),
        )
        dw = weights[b] - weights[a]
        jump = jnp.sum(terms["u"] * dw, axis=-1)
        penalty = jnp.mean(jump**2)
        if self.interface_slope:
            ht = (tn[-1] - tn[0]) / max(nt - 1, 1)
            hx = (xn[-1] - xn[0]) / max(nx - 1, 1)
            slope = jnp.where(
                along_x,
                hx * jnp.sum(terms["u_x"] * dw, axis=-1),
                ht * jnp.sum(terms["u_t"] * dw, axis=-1),
            )
            penalty = penalty + jnp.mean(slope**2)
        return penalty


@eqx.filter_jit
def _solve_jit(layer, instance, key):
    return layer._solve(instance, key)


def check_settings(**settings) -> None:
    """`ValueError` naming the setting unless `ridge`, `ic_weight`, `bc_weight`,
    `rtol`, `atol` are finite and non-negative and `max_steps` a positive int."""
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


def _check_common(problem, basis, grid, num_points, method, splits, overlap):
    if not isinstance(problem, HCProblem):
        raise TypeError(f"`problem` must be an HCProblem, got {type(problem)}.")
    if not isinstance(basis, BasisNetwork):
        raise TypeError(f"`basis` must be a BasisNetwork, got {type(basis)}.")
    if basis.num_sensors != problem.num_sensors:
        raise ValueError(
            f"`basis` takes {basis.num_sensors} sensors but the problem describes "
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
    if method == "auto":
        method = "qr" if problem.affine else "levenberg_marquardt"
    if method not in METHODS:
        raise ValueError(
            f"`method` must be 'auto' or one of {METHODS}, got {method!r}."
        )
    if method == "qr" and not problem.affine:
        raise ValueError(
            f"`method='qr'` needs residuals affine in the weights, but problem "
            f"{problem.name!r} is nonlinear: use 'levenberg_marquardt'."
        )
    return method


class HardConstraintLayer(_HCBase):
    r"""A physics-informed hard-constraint layer (PI-HC).

    A basis network maps the instance (its initial condition at sensor points) and a
    point `(t, x)` to `N` basis functions `b_j`; the solution is `u = sum_j omega_j
    b_j`, where `omega` solves, per instance, the nonlinear least-squares problem

    $$\min_\omega \tfrac12 \|r(\omega)\|^2,\quad r = [F(u)(p_i)/\sqrt m;\ w_{ic}
    (u(t_0, x_j) - u_0(x_j))/\sqrt{n_x};\ w_{bc}\,B(u)(t_l)/\sqrt{n_t};\ \lambda
    \omega]$$

    at `m` grid nodes `p_i` drawn afresh from the `grid` with each key. Per-basis
    derivative terms (`b`, `b_t`, `b_x`, `b_xx`) are computed once by forward-mode
    autodiff, so `omega` enters by contractions only. The solve is optimistix's
    Levenberg-Marquardt (nonlinear PDEs) or a lineax QR solve (when the problem is
    affine in `omega`); `"gauss_newton"` is also available. Gradients use the
    implicit function theorem on `J^T r = 0` (`optx.ImplicitAdjoint`), never the
    unrolled iterations unless `adjoint` says so.

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

    def __init__(
        self,
        problem: HCProblem,
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
        adjoint: optx.AbstractAdjoint = optx.ImplicitAdjoint(),
        verbose: bool = False,
    ):
        """**Arguments:**

        - `problem`: an `HCProblem` (e.g. `sciopt.pde.hc_problem("heat")`).
        - `basis`: a `BasisNetwork` with `num_sensors = problem.num_sensors`.
        - `grid`: `(nt, nx)`: the space-time grid the layer samples from and predicts
          on.
        - `num_points`: `m`, the PDE rows per instance (at least `N`).
        - `ridge`: the weight of the `ridge * omega` rows.
        - `ic_weight`, `bc_weight`: weights of the initial/boundary rows.
        - `method`: `"auto"` (QR if the problem is affine, else Levenberg-Marquardt),
          `"levenberg_marquardt"`, `"gauss_newton"` or `"qr"`.
        - `rtol`, `atol`, `max_steps`: optimistix stopping rule of the nonlinear solve.
        - `adjoint`: `optx.ImplicitAdjoint()` (default) or
          `optx.RecursiveCheckpointAdjoint()` to differentiate the unrolled solve.
        - `verbose`: print the solver's progress.

        **Raises:**

        `ValueError` for `num_points < N`, an unknown `method`, `"qr"` on a nonlinear
        problem, a basis whose sensor count does not match the problem, a negative
        or non-finite `ridge`, `ic_weight`, `bc_weight`, `rtol` or `atol`, or
        `max_steps < 1`.
        """
        method = _check_common(problem, basis, grid, num_points, method, (1, 1), 0.0)
        check_settings(
            ridge=ridge,
            ic_weight=ic_weight,
            bc_weight=bc_weight,
            rtol=rtol,
            atol=atol,
            max_steps=max_steps,
        )
        self.basis = basis
        self.problem = problem
        self.grid = (int(grid[0]), int(grid[1]))
        self.num_points = int(num_points)
        self.splits = (1, 1)
        self.overlap = 0.0
        self.ridge = float(ridge)
        self.ic_weight = float(ic_weight)
        self.bc_weight = float(bc_weight)
        self.method = method
        self.rtol = float(rtol)
        self.atol = float(atol)
        self.max_steps = int(max_steps)
        self.adjoint = adjoint
        self.interface_weight = 0.0
        self.interface_slope = False
        self.boundary_rows = "touching"
        self.mesh = None
        self.mesh_axis = "experts"
        self.verbose = verbose
