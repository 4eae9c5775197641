"""`MoEHardConstraint` (PI-HC-MoE): hard constraints solved per space-time block."""

import jax
import optimistix as optx

from ._hc_basis import BasisNetwork
from ._hc_layer import _check_common, _HCBase, check_settings
from ._hc_problems import HCProblem


class MoEHardConstraint(_HCBase):
    r"""A mixture of hard-constraint experts (PI-HC-MoE).

    A fixed router splits the `nt x nx` grid into `K = kt * kx` uniform,
    non-overlapping blocks (`splits = (kt, kx)`). One basis network is shared; each
    expert `k` solves its own weights `omega_k` from `num_points` PDE rows sampled in
    its block (optionally extended by `overlap` of a block width into its
    neighbours) plus the global initial/boundary rows (all of them by default, or
    only those touching its block). The
    solution is assembled piecewise: `u(p) = b(p) . omega_{k(p)}`. Experts are
    independent least-squares problems: they run under `vmap` and, given a `mesh`,
    are sharded over its `mesh_axis` (with the same result as on one device).

    Uncoupled experts may disagree across block interfaces; `interface_weight`
    weights a continuity term (value, and slope times the grid step when
    `interface_slope`) that `sciopt.pde.hc_loss` adds to the outer training loss, so
    experts stay independent (and parallel) in the inner solves.

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

    def __init__(
        self,
        problem: HCProblem,
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
        adjoint: optx.AbstractAdjoint = optx.ImplicitAdjoint(),
        verbose: bool = False,
    ):
        """**Arguments:**

        - `problem`, `basis`, `grid`, `ridge`, `ic_weight`, `bc_weight`, `method`,
          `rtol`, `atol`, `max_steps`, `adjoint`, `verbose`: as for
          `HardConstraintLayer`.
        - `splits`: `(kt, kx)` experts along time and space; each must divide the
          grid's points along its axis.
        - `num_points`: PDE rows per expert (at least `N`, at most a block's nodes).
        - `overlap`: fraction of a block's width by which each expert's sampling
          region (and its boundary rows) extends into its neighbours; the assembled
          solution still uses the non-overlapping blocks.
        - `interface_weight`: weight of the interface-continuity term in the outer
          loss (`0` turns it off).
        - `interface_slope`: include the slope jump in that term.
        - `boundary_rows`: `"all"` (default): every expert gets all initial and
          boundary rows, so its weights fit that data everywhere, as in the
          authors' code; `"touching"`: only the rows that touch its block (an
          interior expert then has no lateral data and its block problem is
          ill-posed; measured worse).
        - `mesh`, `mesh_axis`: a `jax.sharding.Mesh` and its axis over which the
          expert axis is sharded (`K` must be a multiple of that axis' size).

        **Raises:**

        `ValueError` when an axis of the grid is not divisible by its number of
        experts (naming the axis), for `num_points` below `N`, a mesh axis that
        does not divide `K`, or the settings `HardConstraintLayer` rejects.
        """
        splits = (int(splits[0]), int(splits[1]))
        method = _check_common(
            problem, basis, grid, num_points, method, splits, overlap
        )
        check_settings(
            ridge=ridge,
            ic_weight=ic_weight,
            bc_weight=bc_weight,
            rtol=rtol,
            atol=atol,
            max_steps=max_steps,
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
        if boundary_rows not in ("touching", "all"):
            raise ValueError(
                f"`boundary_rows` must be 'touching' or 'all', got {boundary_rows!r}."
            )
        if interface_weight < 0:
            raise ValueError(
                f"`interface_weight` must be non-negative, got {interface_weight}."
            )
        self.basis = basis
        self.problem = problem
        self.grid = (int(grid[0]), int(grid[1]))
        self.num_points = int(num_points)
        self.splits = splits
        self.overlap = float(overlap)
        self.ridge = float(ridge)
        self.ic_weight = float(ic_weight)
        self.bc_weight = float(bc_weight)
        self.method = method
        self.rtol = float(rtol)
        self.atol = float(atol)
        self.max_steps = int(max_steps)
        self.adjoint = adjoint
        self.interface_weight = float(interface_weight)
        self.interface_slope = bool(interface_slope)
        self.boundary_rows = boundary_rows
        self.mesh = mesh
        self.mesh_axis = mesh_axis
        self.verbose = verbose
