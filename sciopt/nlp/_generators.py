"""Scalable test problems: the HS28 chain (GENHS28) and PDE-constrained control."""

from typing import Any

import jax.numpy as jnp
import numpy as np

from ._problem import EqualityConstrainedProblem


def hs28_chain(n: int = 10) -> EqualityConstrainedProblem:
    """The HS28 chain of size `n` (GENHS28 in CUTEst):

    `min sum_{i<n} (x_i + x_{i+1})^2  s.t.  x_i + 2 x_{i+1} + 3 x_{i+2} = 1`,
    `i = 1..n-2`, from `x0 = (-4, 1, ..., 1)`. A convex QP (n = 3 is HS28).
    """
    if not isinstance(n, int) or n < 3:
        raise ValueError(f"`n` must be an int >= 3, got {n!r}.")

    def objective(x, args):
        return jnp.sum((x[:-1] + x[1:]) ** 2)

    def constraints(x, args):
        return x[:-2] + 2 * x[1:-1] + 3 * x[2:] - 1

    x0 = np.ones(n)
    x0[0] = -4.0
    return EqualityConstrainedProblem(objective, constraints, x0=x0)


def hs28_chain_reference(n: int) -> float:
    """The optimal value of `hs28_chain(n)`, by a dense KKT solve (NumPy)."""
    q = np.zeros((n, n))
    for i in range(n - 1):
        q[i : i + 2, i : i + 2] += 2.0  # Hessian of (x_i + x_{i+1})^2
    a = np.zeros((n - 2, n))
    for i in range(n - 2):
        a[i, i : i + 3] = [1.0, 2.0, 3.0]
    kkt = np.block([[q, a.T], [a, np.zeros((n - 2, n - 2))]])
    rhs = np.concatenate([np.zeros(n), np.ones(n - 2)])
    x = np.linalg.lstsq(kkt, rhs, rcond=None)[0][:n]
    return float(np.sum((x[:-1] + x[1:]) ** 2))


def pde_control_target(grid_n: int) -> np.ndarray:
    """The target state `w_target` of `pde_control` on its `N x N` interior grid."""
    s = np.linspace(-1.0, 1.0, grid_n + 2)[1:-1]
    ss, tt = np.meshgrid(s, s, indexing="ij")
    bump = np.sin(np.pi * (ss + 1) / 2) * np.sin(np.pi * (tt + 1) / 2)
    box = ((np.abs(ss - 0.3) < 0.3) & (np.abs(tt + 0.2) < 0.4)).astype(float)
    return bump + box


def pde_control(grid_n: int = 32, alpha: float = 0.1) -> EqualityConstrainedProblem:
    """Distributed control of the Poisson equation on an `N x N` interior grid of
    `[-1, 1]^2` (zero Dirichlet boundary, `h = 2 / (N + 1)`):

    `min 1/2 ||w - w_target||^2 + alpha/2 ||z||^2  s.t.  Delta_h w + z = 0`,

    with `Delta_h` the 5-point Laplacian. The variables are `x = (w, z)` (`n = 2 N^2`,
    `m = N^2`); `w_target` is a smooth bump plus a box. Starts at `x0 = 0`.
    """
    if not isinstance(grid_n, int) or grid_n < 2:
        raise ValueError(f"`N` must be an int >= 2, got {grid_n!r}.")
    h = 2.0 / (grid_n + 1)
    target = pde_control_target(grid_n).ravel()
    size = grid_n * grid_n

    def objective(x, args):
        w, z = x[:size], x[size:]
        t = jnp.asarray(target, x.dtype)
        return 0.5 * jnp.sum((w - t) ** 2) + 0.5 * alpha * jnp.sum(z**2)

    def constraints(x, args):
        w = x[:size].reshape(grid_n, grid_n)
        z = x[size:]
        wp = jnp.pad(w, 1)
        lap = (
            wp[2:, 1:-1] + wp[:-2, 1:-1] + wp[1:-1, 2:] + wp[1:-1, :-2] - 4 * w
        ) / h**2
        return lap.ravel() + z

    return EqualityConstrainedProblem(objective, constraints, x0=np.zeros(2 * size))


def pde_control_reference(grid_n: int, alpha: float = 0.1) -> float:
    """The optimal value of `pde_control(N, alpha)`, by a sparse direct solve of the
    reduced normal equations `(I + alpha A^T A) w = w_target` (SciPy)."""
    import scipy.sparse as sp
    import scipy.sparse.linalg as spla

    h = 2.0 / (grid_n + 1)
    one = sp.diags([1.0, -2.0, 1.0], [-1, 0, 1], shape=(grid_n, grid_n))
    eye = sp.identity(grid_n)
    lap = (sp.kron(one, eye) + sp.kron(eye, one)) / h**2
    target = pde_control_target(grid_n).ravel()
    w = spla.spsolve((sp.identity(grid_n**2) + alpha * lap.T @ lap).tocsc(), target)
    z = -(lap @ w)
    return float(0.5 * np.sum((w - target) ** 2) + 0.5 * alpha * np.sum(z**2))


def build_generator(data: dict[str, Any], *, quick: bool = False):
    """Build the problem of a generator table (`generator = "hs28_chain"` with `n`,
    or `"pde_control"` with `N` and `alpha`; `quick_n`/`quick_N` in quick mode)."""
    kind = data["generator"]
    if kind == "hs28_chain":
        n = int(data.get("quick_n", data.get("n", 10)) if quick else data.get("n", 10))
        return hs28_chain(n)
    if kind == "pde_control":
        grid_n = int(data.get("quick_N", data["N"]) if quick else data["N"])
        return pde_control(grid_n, float(data.get("alpha", 0.1)))
    raise ValueError(
        f"Problem {data.get('name', '?')!r}: unknown generator {kind!r}; use "
        "'hs28_chain' or 'pde_control'."
    )


def generator_reference(data: dict[str, Any], *, quick: bool = False) -> float:
    """The reference optimum of a generator table (see `build_generator`)."""
    kind = data["generator"]
    if kind == "hs28_chain":
        n = int(data.get("quick_n", data.get("n", 10)) if quick else data.get("n", 10))
        return hs28_chain_reference(n)
    grid_n = int(data.get("quick_N", data["N"]) if quick else data["N"])
    return pde_control_reference(grid_n, float(data.get("alpha", 0.1)))
