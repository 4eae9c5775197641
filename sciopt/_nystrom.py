"""Randomized Nystrom preconditioning and Nystrom-preconditioned CG as lineax solvers.

Frangella, Tropp and Udell (2023) build a low-rank approximation
`A ~ U diag(lam) U^T` of a positive semidefinite operator from `l` products with a
random test matrix, and precondition `(A + mu I) x = b` with

`P^{-1} = (lam_l + mu) U (diag(lam) + mu I)^{-1} U^T + (I - U U^T)`.

When `l` is about twice the effective dimension `d_eff(mu) = tr(A (A + mu I)^{-1})`
the preconditioned system has a condition number bounded by a constant, so CG needs
`O(log(1/eps))` iterations whatever the condition number of `A + mu I`. NysADMM (Zhao,
Frangella and Udell, 2022) uses the same preconditioner for the linear step of ADMM.
"""

import math
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.flatten_util as jfu
import jax.lax as lax
import jax.numpy as jnp
import jax.random as jr
import jax.tree_util as jtu
import lineax as lx
from jaxtyping import Array, Float, PRNGKeyArray, PyTree


_REFERENCES = r"""
    ??? cite "References"

        ```bibtex
        @article{frangella2023randomized,
            title={Randomized {N}ystr{\"o}m Preconditioning},
            author={Frangella, Zachary and Tropp, Joel A. and Udell, Madeleine},
            journal={SIAM Journal on Matrix Analysis and Applications},
            volume={44},
            number={2},
            pages={718--752},
            year={2023}
        }

        @inproceedings{zhao2022nysadmm,
            title={{NysADMM}: faster composite convex optimization via low-rank
                   approximation},
            author={Zhao, Shipu and Frangella, Zachary and Udell, Madeleine},
            booktitle={Proceedings of the 39th International Conference on
                       Machine Learning},
            series={PMLR},
            volume={162},
            pages={26824--26840},
            year={2022}
        }
        ```
"""


# ---------------------------------------------------------------------------
# A + mu I as a lineax operator.
# ---------------------------------------------------------------------------


class ShiftedLinearOperator(lx.AbstractLinearOperator):
    """The operator `A + shift * I` for a square lineax operator `A`.

    This is how a regularised system `(A + mu I) x = b` is handed to
    [`sciopt.NystromPCG`][]: the solver sketches `A` alone and uses `mu` in the
    preconditioner. Because `shift` is part of the operator, `lineax.linear_solve`
    differentiates through it (e.g. `jax.grad` with respect to `mu`).

    It is positive semidefinite (for lineax's tags) when `A` is and `shift >= 0`; the
    sign of `shift` is not checked (it may be traced).
    """

    operator: lx.AbstractLinearOperator
    shift: Float[Array, ""] | float

    def __check_init__(self):
        if not isinstance(self.operator, lx.AbstractLinearOperator):
            raise TypeError(
                "`ShiftedLinearOperator(operator=...)` must be a lineax operator, got "
                f"{type(self.operator).__name__}; wrap a matrix in "
                "`lineax.MatrixLinearOperator`."
            )
        if jnp.shape(self.shift) != ():
            raise ValueError(
                "`ShiftedLinearOperator(shift=...)` must be a scalar, got shape "
                f"{jnp.shape(self.shift)}."
            )
        in_s = jax.eval_shape(lambda: self.operator.in_structure())
        out_s = jax.eval_shape(lambda: self.operator.out_structure())
        if jtu.tree_structure(in_s) != jtu.tree_structure(out_s) or any(
            a.shape != b.shape
            for a, b in zip(jtu.tree_leaves(in_s), jtu.tree_leaves(out_s))
        ):
            raise ValueError(
                "`ShiftedLinearOperator(operator=...)` must be square (same input and "
                "output structure)."
            )

    def mv(self, vector):
        out = self.operator.mv(vector)
        return jtu.tree_map(
            lambda a, v: a + jnp.asarray(self.shift, a.dtype) * v.astype(a.dtype),
            out,
            vector,
        )

    def as_matrix(self):
        mat = self.operator.as_matrix()
        return mat + jnp.asarray(self.shift, mat.dtype) * jnp.eye(
            mat.shape[0], dtype=mat.dtype
        )

    def transpose(self):
        return ShiftedLinearOperator(self.operator.transpose(), self.shift)

    def in_structure(self):
        return self.operator.in_structure()

    def out_structure(self):
        return self.operator.out_structure()


@lx.linearise.register(ShiftedLinearOperator)
def _(op):
    return ShiftedLinearOperator(lx.linearise(op.operator), op.shift)


@lx.materialise.register(ShiftedLinearOperator)
def _(op):
    return ShiftedLinearOperator(lx.materialise(op.operator), op.shift)


@lx.diagonal.register(ShiftedLinearOperator)
def _(op):
    d = lx.diagonal(op.operator)
    return d + jnp.asarray(op.shift, d.dtype)


@lx.tridiagonal.register(ShiftedLinearOperator)
def _(op):
    d, lo, up = lx.tridiagonal(op.operator)
    return d + jnp.asarray(op.shift, d.dtype), lo, up


for _check in (
    lx.is_symmetric,
    lx.is_diagonal,
    lx.is_tridiagonal,
    lx.is_lower_triangular,
    lx.is_upper_triangular,
    lx.is_positive_semidefinite,
):
    _check.register(ShiftedLinearOperator)(
        lambda op, _check=_check: _check(op.operator)
    )


@lx.has_unit_diagonal.register(ShiftedLinearOperator)
@lx.is_negative_semidefinite.register(ShiftedLinearOperator)
def _(op):
    return False


@lx.conj.register(ShiftedLinearOperator)
def _(op):
    return ShiftedLinearOperator(lx.conj(op.operator), op.shift)


def _split_shift(operator) -> tuple[lx.AbstractLinearOperator, Any]:
    """`(A, mu)` for `ShiftedLinearOperator(A, mu)` (also tagged), else `(op, 0)`."""
    inner = operator
    while isinstance(inner, lx.TaggedLinearOperator):
        inner = inner.operator
    if isinstance(inner, ShiftedLinearOperator):
        return inner.operator, inner.shift
    return operator, 0.0


# ---------------------------------------------------------------------------
# Matrix-vector products on flat vectors.
# ---------------------------------------------------------------------------


def _as_operator(operator, name: str) -> lx.AbstractLinearOperator:
    if isinstance(operator, lx.AbstractLinearOperator):
        return operator
    if isinstance(operator, (jax.Array, jnp.ndarray)) or hasattr(operator, "__array__"):
        arr = jnp.asarray(operator)
        if arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
            raise ValueError(
                f"`{name}` must be a square matrix or a lineax operator, got shape "
                f"{arr.shape}."
            )
        return lx.MatrixLinearOperator(arr)
    raise TypeError(
        f"`{name}` must be a lineax operator or a square matrix, got "
        f"{type(operator).__name__}."
    )


def _flat_structure(operator: lx.AbstractLinearOperator, name: str):
    """`(n, dtype, flat_mv)`: the operator as a map on flat vectors of size `n`."""
    in_struct = operator.in_structure()
    out_struct = operator.out_structure()
    in_leaves = jtu.tree_leaves(in_struct)
    out_leaves = jtu.tree_leaves(out_struct)
    if jtu.tree_structure(in_struct) != jtu.tree_structure(out_struct) or any(
        a.shape != b.shape for a, b in zip(in_leaves, out_leaves)
    ):
        raise ValueError(
            f"`{name}` must be square (same input and output structure) to be "
            "positive semidefinite."
        )
    if len(in_leaves) == 0:
        raise ValueError(f"`{name}` acts on an empty structure.")
    dtype = jnp.result_type(*[s.dtype for s in in_leaves])
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(
            f"`{name}` must act on real floating arrays, got dtype {dtype}; cast the "
            "operator to float32 or float64."
        )
    n = sum(math.prod(s.shape) for s in in_leaves)
    zeros = jtu.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), in_struct)
    _, unravel = jfu.ravel_pytree(zeros)

    def flat_mv(v):
        out = operator.mv(unravel(v))
        return jnp.concatenate(
            [jnp.reshape(x, (-1,)).astype(dtype) for x in jtu.tree_leaves(out)]
        )

    return n, dtype, flat_mv


def _sketch_products(flat_mv, omega: Float[Array, "n l"]) -> Float[Array, "n l"]:
    # One product per sketch column, batched with vmap.
    return jax.vmap(flat_mv, in_axes=1, out_axes=1)(omega)


def _nystrom_from_sketch(omega, y, shift):
    """Stable Nystrom approximation from `Y = A Omega` (Frangella et al., Alg. 2.1).

    `omega` has orthonormal columns. The core `Omega^T (A + nu I) Omega` is factorised
    by a symmetric eigendecomposition with its eigenvalues floored at `nu` (they are
    at least `nu` in exact arithmetic), so rounding in float32 cannot make the core
    indefinite where a Cholesky factorisation would break down.
    """
    n = omega.shape[0]
    dtype = y.dtype
    eps = jnp.finfo(dtype).eps
    tiny = jnp.finfo(dtype).tiny
    if shift is None:
        # nu = sqrt(n) eps ||Y||_2; ||Y||_F >= ||Y||_2 errs on the safe side.
        nu = math.sqrt(n) * eps * jnp.linalg.norm(y)
    else:
        nu = jnp.asarray(shift, dtype)
    nu = jnp.maximum(nu, tiny ** jnp.asarray(0.5, dtype)).astype(dtype)
    y_nu = y + nu * omega
    core = omega.T @ y_nu
    core = 0.5 * (core + core.T)
    d, v = jnp.linalg.eigh(core)
    d = jnp.maximum(d, nu)
    b = y_nu @ (v / jnp.sqrt(d)[None, :])
    u, s, _ = jnp.linalg.svd(b, full_matrices=False)
    lam = jnp.maximum(s**2 - nu, jnp.zeros((), dtype))
    return u, lam


def _orthonormal_test_matrix(key, n, l, dtype):
    omega = jr.normal(key, (n, l), dtype=dtype)
    q, _ = jnp.linalg.qr(omega)
    return q


def nystrom_approximation(
    operator: lx.AbstractLinearOperator | Float[Array, "n n"],
    rank: int,
    key: PRNGKeyArray,
    *,
    shift: float | Float[Array, ""] | None = None,
) -> tuple[Float[Array, "n rank"], Float[Array, " rank"]]:
    """Randomized Nystrom approximation `A ~ U diag(lam) U^T` of a PSD operator.

    The stable algorithm of Frangella, Tropp and Udell (2023, Algorithm 2.1): draw a
    Gaussian test matrix `Omega` (`n x rank`, orthonormalised), form `Y = A Omega` by
    `rank` matrix-vector products (`jax.vmap`-ed over the columns; `A` is never
    formed), shift by `nu = sqrt(n) eps(||Y||)`, factorise the small core and return
    the eigenpairs of `Y_nu (Omega^T Y_nu)^{-1} Y_nu^T - nu I` (negative values
    clipped to zero).

    **Arguments:**

    - `operator`: a positive semidefinite `lineax` operator (or a square matrix) on
        real floating arrays. Pytree-structured operators are flattened; `U` is in the
        flattened coordinates (those of `jax.flatten_util.ravel_pytree`).
    - `rank`: the sketch size `l` (`1 <= rank <= n`).
    - `key`: a `jax.random` key for the test matrix.
    - `shift`: the stabilising shift `nu`; by default `sqrt(n) * eps * ||Y||_F`, in
        the operator's own precision (so float32 sketches stay positive definite).

    **Returns:** `(U, lam)`, `U` with orthonormal columns (`n x rank`), `lam` the
    approximate eigenvalues in decreasing order.
    """
    op = _as_operator(operator, "operator")
    n, dtype, flat_mv = _flat_structure(op, "operator")
    if not isinstance(rank, int) or isinstance(rank, bool):
        raise TypeError(f"`rank` must be a Python int, got {type(rank).__name__}.")
    if not 1 <= rank <= n:
        raise ValueError(f"`rank` must be between 1 and n = {n}, got {rank}.")
    omega = _orthonormal_test_matrix(key, n, rank, dtype)
    y = _sketch_products(flat_mv, omega)
    return _nystrom_from_sketch(omega, y, shift)


# ---------------------------------------------------------------------------
# The preconditioner.
# ---------------------------------------------------------------------------


class NystromPreconditioner(lx.AbstractLinearOperator):
    """The inverse Nystrom preconditioner for `A + mu I`, as a lineax operator.

    Given a Nystrom approximation `A ~ U diag(lam) U^T`
    ([`sciopt.nystrom_approximation`][]) this operator is (Frangella, Tropp and
    Udell, 2023, eq. 5.3)

    `P^{-1} = (lam_l + mu) U (diag(lam) + mu I)^{-1} U^T + (I - U U^T)`,

    with `lam_l` the smallest retained eigenvalue. It is what `lineax.CG` expects as
    its `preconditioner` option (CG applies it to residuals). Columns whose
    eigenvalue is zero (directions the sketch did not capture, or padding) are
    dropped, so `mu = 0` is allowed when `A` is positive definite. Applying it costs
    `O(n l)`.

    **Arguments:**

    - `U`: `n x l` with orthonormal columns.
    - `lam`: the `l` approximate eigenvalues (`>= 0`).
    - `mu`: the regularisation `mu >= 0`.
    """

    U: Float[Array, "n l"]
    lam: Float[Array, " l"]
    mu: Float[Array, ""]

    def __init__(self, U, lam, mu=0.0):
        U = jnp.asarray(U)
        if U.ndim != 2:
            raise ValueError(f"`U` must be an n x l matrix, got shape {U.shape}.")
        lam = jnp.asarray(lam, U.dtype)
        if lam.shape != (U.shape[1],):
            raise ValueError(
                f"`lam` must have shape ({U.shape[1]},) to match `U`, got {lam.shape}."
            )
        keep = lam > 0
        self.U = jnp.where(keep[None, :], U, jnp.zeros((), U.dtype))
        self.lam = jnp.where(keep, lam, jnp.zeros((), U.dtype))
        self.mu = jnp.asarray(mu, U.dtype)

    def _coef(self):
        keep = self.lam > 0
        big = jnp.asarray(jnp.inf, self.lam.dtype)
        lam_l = jnp.min(jnp.where(keep, self.lam, big))
        lam_l = jnp.where(jnp.any(keep), lam_l, jnp.zeros((), self.lam.dtype))
        denom = jnp.where(keep, self.lam + self.mu, jnp.ones((), self.lam.dtype))
        return jnp.where(
            keep, (lam_l + self.mu) / denom - 1, jnp.zeros((), denom.dtype)
        )

    def mv(self, vector):
        return vector + self.U @ (self._coef() * (self.U.T @ vector))

    def as_matrix(self):
        n = self.U.shape[0]
        scaled = self.U * self._coef()[None, :]
        return jnp.eye(n, dtype=self.U.dtype) + scaled @ self.U.T

    def transpose(self):
        return self

    def in_structure(self):
        return jax.ShapeDtypeStruct((self.U.shape[0],), self.U.dtype)

    def out_structure(self):
        return self.in_structure()


@lx.linearise.register(NystromPreconditioner)
@lx.materialise.register(NystromPreconditioner)
@lx.conj.register(NystromPreconditioner)
def _(op):
    return op


@lx.diagonal.register(NystromPreconditioner)
def _(op):
    return 1 + jnp.sum(op.U**2 * op._coef()[None, :], axis=1)


@lx.tridiagonal.register(NystromPreconditioner)
def _(op):
    m = op.as_matrix()
    return jnp.diagonal(m), jnp.diagonal(m, -1), jnp.diagonal(m, 1)


@lx.is_symmetric.register(NystromPreconditioner)
@lx.is_positive_semidefinite.register(NystromPreconditioner)
def _(op):
    return True


@lx.is_diagonal.register(NystromPreconditioner)
@lx.is_tridiagonal.register(NystromPreconditioner)
@lx.has_unit_diagonal.register(NystromPreconditioner)
@lx.is_lower_triangular.register(NystromPreconditioner)
@lx.is_upper_triangular.register(NystromPreconditioner)
@lx.is_negative_semidefinite.register(NystromPreconditioner)
def _(op):
    return False


# ---------------------------------------------------------------------------
# The solver.
# ---------------------------------------------------------------------------


def _rank_schedule(rank, init_rank, max_rank, n):
    if rank is not None:
        return [min(rank, n)]
    ranks = []
    r = min(init_rank, max_rank, n)
    while True:
        ranks.append(r)
        if r >= min(max_rank, n):
            return ranks
        r = min(2 * r, max_rank, n)


def _adaptive_nystrom(flat_mv, n, dtype, key, ranks, mu, rank_tol, shift):
    """Nystrom approximation at the first rank in `ranks` with `lam_l <= tol * mu`.

    Stages reuse the earlier products: stage `k` draws only its new Gaussian columns,
    orthonormalised against the earlier ones, and multiplies those. Stages after the
    stopping rule holds are skipped (`lax.cond`). The result is padded to the largest
    rank with zero eigenvalues, which the preconditioner ignores.
    """
    top = ranks[-1]
    zero = jnp.zeros((), dtype)
    u_pad = jnp.zeros((n, top), dtype)
    lam_pad = jnp.zeros((top,), dtype)
    used = jnp.array(0, jnp.int32)
    done = jnp.array(False)
    omega = jnp.zeros((n, 0), dtype)
    y = jnp.zeros((n, 0), dtype)
    keys = jr.split(key, len(ranks))
    prev = 0
    for stage, r in enumerate(ranks):

        def _products(omega=omega, k=keys[stage], m=r - prev):
            # A new Gaussian block, orthonormalised against the earlier columns
            # (block Gram-Schmidt, twice), so the stage costs O(n r m), not O(n top^2).
            g = jr.normal(k, (n, m), dtype=dtype)
            for _ in range(2):
                g = g - omega @ (omega.T @ g)
                g, _ = jnp.linalg.qr(g)
            return g, _sketch_products(flat_mv, g)

        def _skip(m=r - prev):
            return jnp.zeros((n, m), dtype), jnp.zeros((n, m), dtype)

        om_new, y_new = lax.cond(done, _skip, _products)
        omega = jnp.concatenate([omega, om_new], axis=1)
        y = jnp.concatenate([y, y_new], axis=1)

        def _approx(omega=omega, y=y, r=r):
            u, lam = _nystrom_from_sketch(omega, y, shift)
            u = jnp.pad(u, ((0, 0), (0, top - r)))
            lam = jnp.pad(lam, (0, top - r))
            return u, lam, jnp.array(r, jnp.int32)

        u_pad, lam_pad, used = lax.cond(
            done, lambda u=u_pad, lm=lam_pad, k=used: (u, lm, k), _approx
        )
        lam_last = lam_pad[r - 1]
        done = done | (lam_last <= rank_tol * mu) | (lam_last <= zero)
        prev = r
    lam_last = lam_pad[jnp.maximum(used - 1, 0)]
    return u_pad, lam_pad, used, lam_last


class NystromPCG(lx.AbstractLinearSolver):
    """Conjugate gradients with a randomized Nystrom preconditioner, as a lineax solver.

    Solves `(A + mu I) x = b` for a positive semidefinite operator `A` and `mu >= 0`
    (Frangella, Tropp and Udell, 2023). `init` sketches `A` by matrix-vector
    products only ([`sciopt.nystrom_approximation`][]) and builds the preconditioner
    [`sciopt.NystromPreconditioner`][]; `compute` runs `lineax.CG` with it.

    How `mu` is given:

    - pass `ShiftedLinearOperator(A, mu)` as the operator: the solver sketches `A` and
        preconditions with `mu`; `lineax.linear_solve` differentiates through `mu`
        (it is part of the operator);
    - or pass `A` and set the solver's `mu`: the solver then solves
        `(A + mu I) x = b` (not `A x = b`); gradients flow through `A` and `b` but
        not this `mu`;
    - both add up; neither means `mu = 0` (then `A` must be positive definite).

    Sketch rank: a fixed `rank`, or (`rank=None`) adaptive: starting at `init_rank`
    and doubling up to `max_rank`, reusing the earlier products, until the smallest
    sketched eigenvalue satisfies `lam_l <= rank_tol * mu`, the paper's
    `lam_l / mu` rule (then the preconditioned condition number is about
    `1 + rank_tol` plus the approximation error over `mu`). A rank near twice the
    effective dimension `d_eff(mu) = tr(A (A + mu I)^{-1})` makes the iteration count
    independent of the condition number. The preconditioner costs `O(n max_rank)`
    memory and time per application. With `mu = 0` the rule cannot hold unless the
    sketch finds `A` numerically low rank, so the rank grows to `max_rank`.

    `A` is assumed symmetric positive semidefinite; lineax tags are not required and
    not checked. Non-convergence within `max_steps` gives
    `RESULTS.max_steps_reached`; a breakdown (e.g. an indefinite operator) gives a
    non-finite solution, which `lineax.linear_solve` reports as `RESULTS.singular`
    (raised unless `throw=False`).

    **Arguments:**

    - `rtol`, `atol`: CG's tolerances (lineax's rule: the residual below
        `atol + rtol * |b|` elementwise in `norm`).
    - `rank`: a fixed sketch size, or `None` for the adaptive rule.
    - `max_rank`: the largest sketch size of the adaptive rule.
    - `init_rank`: the first sketch size of the adaptive rule.
    - `rank_tol`: the adaptive rule's `lam_l / mu` target.
    - `mu`: an extra regularisation added to the operator (see above).
    - `key`: the `jax.random` key for the sketch (default `jax.random.key(0)`; the
        solution does not depend on it beyond the tolerance, the iteration count
        does a little).
    - `shift`: the sketch's stabilising shift (default `sqrt(n) eps ||Y||`).
    - `norm`: CG's norm (default lineax's max norm).
    - `max_steps`: CG's iteration limit (default `10 n`).
    - `stabilise_every`: recompute the residual every so many CG steps.

    `stats` holds `num_steps` (CG iterations), `max_steps`, `rank` (the sketch size
    used) and `lam_l_over_mu` (the adaptive rule's ratio, `inf` when `mu = 0`).
    """

    rtol: float
    atol: float
    rank: int | None = eqx.field(static=True, default=None)
    max_rank: int = eqx.field(static=True, default=256)
    init_rank: int = eqx.field(static=True, default=16)
    rank_tol: float = 10.0
    mu: float | Float[Array, ""] = 0.0
    key: PRNGKeyArray | None = None
    shift: float | None = None
    norm: Callable[[PyTree], Array] | None = eqx.field(static=True, default=None)
    max_steps: int | None = eqx.field(static=True, default=None)
    stabilise_every: int | None = eqx.field(static=True, default=10)

    def __check_init__(self):
        for name in ("rtol", "atol"):
            v = getattr(self, name)
            if isinstance(v, (int, float)) and (v < 0 or not math.isfinite(v)):
                raise ValueError(f"`{name}` must be finite and non-negative, got {v}.")
        if self.rank is not None and (
            not isinstance(self.rank, int)
            or isinstance(self.rank, bool)
            or self.rank < 1
        ):
            raise ValueError(
                f"`rank` must be a positive int or None, got {self.rank!r}."
            )
        for name in ("max_rank", "init_rank"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"`{name}` must be a positive int, got {v!r}.")
        if self.init_rank > self.max_rank:
            raise ValueError(
                f"`init_rank` ({self.init_rank}) must not exceed `max_rank` "
                f"({self.max_rank})."
            )
        if isinstance(self.rank_tol, (int, float)) and not self.rank_tol > 0:
            raise ValueError(f"`rank_tol` must be positive, got {self.rank_tol}.")
        if isinstance(self.mu, (int, float)) and not self.mu >= 0:
            raise ValueError(f"`mu` must be non-negative, got {self.mu}.")
        if self.max_steps is not None and (
            not isinstance(self.max_steps, int) or self.max_steps < 1
        ):
            raise ValueError(
                f"`max_steps` must be a positive int or None, got {self.max_steps!r}."
            )

    def _cg(self, n):
        kwargs = dict(
            rtol=self.rtol,
            atol=self.atol,
            stabilise_every=self.stabilise_every,
            max_steps=10 * n if self.max_steps is None else self.max_steps,
        )
        if self.norm is not None:
            kwargs["norm"] = self.norm
        return lx.CG(**kwargs)

    def init(self, operator: lx.AbstractLinearOperator, options: dict[str, Any]):
        del options
        if not isinstance(operator, lx.AbstractLinearOperator):
            raise TypeError(
                f"`NystromPCG` needs a lineax operator, got {type(operator).__name__}."
            )
        a_op, op_mu = _split_shift(operator)
        n, dtype, a_mv = _flat_structure(a_op, "operator")
        mu = jnp.asarray(op_mu, dtype) + jnp.asarray(self.mu, dtype)
        if self.rank is not None and self.rank > n:
            raise ValueError(
                f"`NystromPCG(rank=...)` must be at most the system size n = {n}, got "
                f"{self.rank}."
            )
        key = jr.key(0) if self.key is None else self.key
        ranks = _rank_schedule(self.rank, self.init_rank, self.max_rank, n)
        u, lam, used, lam_last = _adaptive_nystrom(
            a_mv,
            n,
            dtype,
            key,
            ranks,
            mu,
            jnp.asarray(self.rank_tol, dtype),
            self.shift,
        )
        precond = NystromPreconditioner(u, lam, mu)

        def system_mv(v):
            return a_mv(v) + mu * v

        flat_op = lx.FunctionLinearOperator(
            system_mv,
            jax.ShapeDtypeStruct((n,), dtype),
            tags=(lx.symmetric_tag, lx.positive_semidefinite_tag),
        )
        cg_state = self._cg(n).init(flat_op, {})
        ratio = jnp.where(mu > 0, lam_last / jnp.where(mu > 0, mu, 1), jnp.inf)
        return cg_state, precond, used, ratio.astype(dtype)

    def compute(self, state, vector, options: dict[str, Any]):
        cg_state, precond, used, ratio = state
        n = precond.U.shape[0]
        dtype = precond.U.dtype
        flat_b, unravel = jfu.ravel_pytree(vector)
        flat_b = flat_b.astype(dtype)
        cg_options = {"preconditioner": precond}
        if "y0" in options:
            flat_y0, _ = jfu.ravel_pytree(options["y0"])
            cg_options["y0"] = flat_y0.astype(dtype)
        x, result, stats = self._cg(n).compute(cg_state, flat_b, cg_options)
        stats = {
            "num_steps": stats["num_steps"],
            "max_steps": stats["max_steps"],
            "rank": used,
            "lam_l_over_mu": ratio,
        }
        return unravel(x), result, stats

    def transpose(self, state, options: dict[str, Any]):
        # A + mu I is symmetric and the preconditioner is symmetric.
        del options
        return state, {}

    def conj(self, state, options: dict[str, Any]):
        del options
        return state, {}

    def assume_full_rank(self):
        return True

    # lineax >= 0.1.2 names these separately.
    def allow_dependent_columns(self, operator):
        return False

    def allow_dependent_rows(self, operator):
        return False


NystromPCG.__doc__ = (NystromPCG.__doc__ or "") + _REFERENCES
nystrom_approximation.__doc__ = (nystrom_approximation.__doc__ or "") + _REFERENCES
