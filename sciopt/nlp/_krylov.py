"""A Krylov inner solver for KKT systems: CG on the Schur complement."""

from typing import Any

import jax
import jax.flatten_util as jfu
import jax.numpy as jnp
import lineax as lx
from jaxtyping import Array, PyTree


def _two_norm(x: Array) -> Array:
    return jnp.sqrt(jnp.sum(x**2))


def _cg_solve(
    matvec, b, x0, tol, max_steps, stabilise_every, preconditioner=None
) -> tuple[Array, lx.RESULTS, Array]:
    """`lineax.CG` on `A x = b` (`A` symmetric positive definite, given by `matvec`),
    stopping once `||b - A x||_2 <= tol` (and the last step is below `tol`);
    `x0=None` starts from zero. Returns `(x, result, steps)`."""
    operator = lx.FunctionLinearOperator(
        matvec, jax.ShapeDtypeStruct(b.shape, b.dtype), lx.positive_semidefinite_tag
    )
    solver = lx.CG(
        rtol=0.0,
        atol=tol,
        norm=_two_norm,
        stabilise_every=stabilise_every,
        max_steps=max_steps,
    )
    options = {}
    if x0 is not None:
        options["y0"] = x0
    if preconditioner is not None:
        options["preconditioner"] = preconditioner
    state = solver.init(operator, options)
    x, result, stats = solver.compute(state, b, options)
    return x, result, stats["num_steps"]


class SchurComplementCG(lx.AbstractLinearSolver):
    """Range-space solve of a KKT system by conjugate gradients (a Krylov
    alternative to the sketch solvers, for large, ill-conditioned systems).

    For `[[B, G^T], [G, 0]] (dx, dl) = (r1, r2)` with `B` (`n x n`) positive
    definite and `G` (`m x n`) of full rank, it runs CG on the Schur complement

    `(G B^{-1} G^T) dl = G B^{-1} r1 - r2`,  then  `dx = B^{-1} (r1 - G^T dl)`,

    applying `B^{-1}` by an inner CG (both are `lineax.CG`). Every product comes
    from the operator's matrix-vector product (`B v`, `G v` and `G^T u` are blocks
    of `K (v, 0)` and `K (0, u)`), so nothing is materialised; the cost per CG step
    is two products with `K` plus the inner CG's (which converges in a few steps
    when `B` is well conditioned, e.g. a mass or identity matrix). The KKT residual
    equals the Schur system's residual up to the inner tolerance, so the
    `tolerance` option bounds `||K z - b||`.

    It needs the size `n` of the primal block: `primal_size` or the option of that
    name (`AdaSketchNewton` passes it). If `B` is not positive definite (a
    non-positive `v^T B^{-1} v` for a vector `B^{-1}` was applied to, or a
    non-finite answer) the result is `lineax.RESULTS.breakdown`.

    Accepted `options`: `primal_size`, `tolerance` (absolute, on the Schur
    residual), `y0` (a warm start; its multiplier block starts the CG),
    `preconditioner` (a positive definite `lineax` operator of size `m` that
    approximates the inverse of the Schur complement `G B^{-1} G^T`, passed to the
    outer `lineax.CG`).

    ??? cite "References"

        ```bibtex
        @article{hestenes1952methods,
            title={Methods of Conjugate Gradients for Solving Linear Systems},
            author={Hestenes, Magnus R. and Stiefel, Eduard},
            journal={Journal of Research of the National Bureau of Standards},
            volume={49},
            number={6},
            pages={409--436},
            year={1952}
        }

        @article{benzi2005numerical,
            title={Numerical Solution of Saddle Point Problems},
            author={Benzi, Michele and Golub, Gene H. and Liesen, J{\\"o}rg},
            journal={Acta Numerica},
            volume={14},
            pages={1--137},
            year={2005}
        }
        ```
    """

    rtol: float = 1e-10
    atol: float = 0.0
    max_steps: int = 100_000
    inner_rtol: float = 1e-13
    inner_max_steps: int = 200
    primal_size: int | None = None

    def init(self, operator: lx.AbstractLinearOperator, options: dict[str, Any]):
        if operator.in_size() != operator.out_size():
            raise ValueError(
                "SchurComplementCG needs a square KKT operator, got "
                f"{operator.out_size()} x {operator.in_size()}."
            )
        n = options.get("primal_size", self.primal_size)
        if n is None or not 0 < int(n) < operator.in_size():
            raise ValueError(
                "SchurComplementCG needs the size of the primal block: set "
                "`primal_size` (0 < n < N) or pass `options={'primal_size': n}`; "
                f"got {n!r} for N = {operator.in_size()}."
            )
        return operator, int(n)

    def compute(
        self, state, vector: PyTree[Array], options: dict[str, Any]
    ) -> tuple[PyTree[Array], lx.RESULTS, dict[str, Any]]:
        operator, n = state
        b, unravel_out = jfu.ravel_pytree(vector)
        in_struct = operator.in_structure()
        zeros_in = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), in_struct)
        _, unravel_in = jfu.ravel_pytree(zeros_in)
        size = b.size
        m = size - n
        dtype = b.dtype

        def kmv(z):
            return jfu.ravel_pytree(operator.mv(unravel_in(z)))[0]

        zeros_n = jnp.zeros(n, dtype)
        zeros_m = jnp.zeros(m, dtype)

        def b_mv(v):
            return kmv(jnp.concatenate([v, zeros_m]))[:n]

        def g_mv(v):
            return kmv(jnp.concatenate([v, zeros_m]))[n:]

        def gt_mv(u):
            return kmv(jnp.concatenate([zeros_n, u]))[:n]

        def b_solve(v):
            tol = self.inner_rtol * jnp.linalg.norm(v)
            x, _, _ = _cg_solve(b_mv, v, None, tol, self.inner_max_steps, None)
            return x

        def schur_mv(u):
            return g_mv(b_solve(gt_mv(u)))

        r1, r2 = b[:n], b[n:]
        w1 = b_solve(r1)
        rhs = g_mv(w1) - r2
        tol = options.get("tolerance", None)
        if tol is None:
            tol = self.atol + self.rtol * jnp.linalg.norm(b)
        tol = jnp.asarray(tol, dtype)
        y0 = options.get("y0", None)
        dl0 = zeros_m if y0 is None else jfu.ravel_pytree(y0)[0].astype(dtype)[n:]
        dl, cg_result, steps = _cg_solve(
            schur_mv,
            rhs,
            dl0,
            tol,
            self.max_steps,
            50,
            options.get("preconditioner", None),
        )
        gtdl = gt_mv(dl)
        dx = b_solve(r1 - gtdl)
        z = jnp.concatenate([dx, dl])
        # The Schur residual, and necessary conditions for B (hence the Schur
        # complement) to be positive definite: v^T B^{-1} v > 0 for the vectors
        # B^{-1} was applied to. CG on an indefinite B gives no usable answer.
        w2 = b_solve(gtdl)
        rnorm = jnp.linalg.norm(g_mv(w2) - rhs)
        curvatures = jnp.stack(
            [jnp.dot(r1, w1), jnp.dot(r1 - gtdl, dx), jnp.dot(gtdl, w2)]
        )
        norms = jnp.stack(
            [jnp.dot(r1, r1), jnp.dot(r1 - gtdl, r1 - gtdl), jnp.dot(gtdl, gtdl)]
        )
        definite = jnp.all((curvatures > 0) | (norms == 0))
        finite = jnp.isfinite(rnorm) & jnp.all(jnp.isfinite(z))
        result = lx.RESULTS.where(
            (rnorm <= tol) | (cg_result == lx.RESULTS.successful),
            lx.RESULTS.successful,
            lx.RESULTS.max_steps_reached,
        )
        result = lx.RESULTS.where(finite & definite, result, lx.RESULTS.breakdown)
        stats = {
            "num_steps": steps,
            "max_steps": self.max_steps,
            "residual_norm": rnorm,
        }
        return unravel_in(z), result, stats

    def transpose(self, state, options: dict[str, Any]):
        operator, n = state
        return (operator.transpose(), n), options

    def conj(self, state, options: dict[str, Any]):
        operator, n = state
        return (lx.conj(operator), n), options

    def assume_full_rank(self) -> bool:
        return True


SchurComplementCG.__init__.__doc__ = """**Arguments:**

- `rtol`, `atol`: stop when the Schur residual is at most `atol + rtol ||b||_2`
    (or below the `tolerance` option).
- `max_steps`: the largest number of (outer) CG steps.
- `inner_rtol`, `inner_max_steps`: relative tolerance and step limit of the inner CG
    that applies `B^{-1}`.
- `primal_size`: the size `n` of the primal block (or the `primal_size` option).
"""
