"""The fixed linear system of the ADMM u-step, factored once.

A = alpha I + I_{2P} (x) (c X^T X) + L^T L, with alpha = 1 (+1 for the robust cones),
c = 1 with cone constraints (G^T G = I (x) X^T X because (2 D_i - I)^2 = I) and 0 for
gated ReLU, and L the loss map: F u = sum_j s_j D_j X u_j (n rows), or for the
adversarial program q = (S D)^T u (n d rows, L^T L = H (x) I_d).

`linear_solver="nystrom"` never forms A: with B = alpha I + I_{2P} (x) (c X^T X)
(block diagonal, its d x d block inverted once) the system in z = B^{1/2} u is
(I + K) z = B^{-1/2} rhs, K = w_p B^{-1/2} L^T L B^{-1/2}, a PSD operator of rank
at most n applied by products with X and the patterns only (O(n d P) each). It is
solved by CG preconditioned with a randomized Nystrom approximation of K sketched
once (Frangella, Tropp & Udell 2023; NysADMM, Zhao, Frangella & Udell 2022).
"""

import jax
import jax.numpy as jnp
import jax.random as jr
import lineax as lx

from .._linear_solve import linear_solve
from .._nystrom import NystromPCG, ShiftedLinearOperator
from ._problem import AdversarialReLUProblem


METHODS = ("auto", "dense", "woodbury", "cg", "kron", "nystrom")
MAX_FACTOR = 16384  # the largest matrix side that "auto" factors
# "auto" goes matrix-free (Nystrom-PCG) when the smaller factored side m = min(n, 2dP)
# exceeds NYSTROM_MIN_SIZE and m^2 > NYSTROM_RATIO * n d P: a factored step costs
# about m^2 (two triangular solves), a matrix-free one a few CG iterations of O(ndP)
# products (the constants measured on a 2-core CPU, docs/benchmarks/relu.md)
NYSTROM_MIN_SIZE = 512
NYSTROM_RATIO = 0.5


def check_method(method: str) -> None:
    if method not in METHODS:
        raise ValueError(f"`linear_solver` must be one of {METHODS}, got {method!r}.")


def resolve_method(method: str, problem, *, differentiable: bool = False) -> str:
    """Pick the factorization: `kron` (exact eigen-solve) for the adversarial program,
    else the dense (2dP)^2 Cholesky or the n x n Woodbury core, whichever is
    smaller, and matrix-free Nystrom-PCG when that side m = min(n, 2dP) exceeds
    `NYSTROM_MIN_SIZE` and m^2 > `NYSTROM_RATIO` n d P, or m exceeds `MAX_FACTOR`
    (a factored step costs about
    m^2, a matrix-free one a few O(ndP) products; the factored paths also hold m^2
    numbers and factor them in m^3)."""
    adversarial = isinstance(problem, AdversarialReLUProblem)
    if adversarial:
        if method in ("woodbury",):
            raise ValueError(
                "`linear_solver='woodbury'` does not apply to AdversarialReLUProblem; "
                "use 'auto', 'kron', 'dense' or 'cg'."
            )
        if method == "auto":
            method = "kron"
        if method == "kron" and differentiable:
            method = "dense"  # eigh has no derivative at repeated eigenvalues
        return method
    if method == "kron":
        raise ValueError(
            "`linear_solver='kron'` applies only to AdversarialReLUProblem; use "
            "'auto', 'dense', 'woodbury' or 'cg'."
        )
    if method != "auto":
        return method
    n, d = problem.X.shape
    size = 2 * d * problem.num_patterns
    m = min(n, size)
    if m > MAX_FACTOR or (
        m > NYSTROM_MIN_SIZE and m * m > NYSTROM_RATIO * n * d * problem.num_patterns
    ):
        return "nystrom"
    return "dense" if size <= n else "woodbury"


def _alpha_c(problem, w):
    adversarial = isinstance(problem, AdversarialReLUProblem)
    alpha = w + 1.0 if adversarial else w
    c = 0.0 if problem.gated else 1.0
    return alpha, c, adversarial


def loss_map(problem, u):
    """L u: predictions (n,) or, for the adversarial program, the (n, d) sums."""
    if isinstance(problem, AdversarialReLUProblem):
        return problem.signed_patterns.T @ u
    P = problem.num_patterns
    # sum_i D_i X (v_i - w_i): one (P, d) x (d, n) product
    return jnp.sum(problem.patterns.T * ((u[:P] - u[P:]) @ problem.X.T), axis=0)


def loss_map_t(problem, p):
    """L^T p, shaped (2P, d)."""
    if isinstance(problem, AdversarialReLUProblem):
        return problem.signed_patterns @ p
    half = (problem.patterns.T * p[None, :]) @ problem.X  # (P, d)
    return jnp.concatenate([half, -half], axis=0)


def _loss_map_lean(problem, u):
    """L u with (n, d) intermediates only: F u = rowsum(X * (D (u_+ - u_-)))."""
    if isinstance(problem, AdversarialReLUProblem):
        return loss_map(problem, u)
    P = problem.num_patterns
    return jnp.sum(problem.X * (problem.patterns @ (u[:P] - u[P:])), axis=1)


def _loss_map_t_lean(problem, p):
    """L^T p with (n, d) intermediates only: block i is X^T (D_i p)."""
    if isinstance(problem, AdversarialReLUProblem):
        return loss_map_t(problem, p)
    half = problem.patterns.T @ (p[:, None] * problem.X)  # (P, d)
    return jnp.concatenate([half, -half], axis=0)


def _nystrom_operator(problem, factors):
    """I + K on flat z (size 2 P d), K = w_p B^{-1/2} L^T L B^{-1/2}; products by X
    and the patterns only."""
    Bh = factors["inv_sqrt"]
    X = problem.X
    shape = (2 * problem.num_patterns, X.shape[1])

    def k_mv(z):
        u = z.reshape(shape) @ Bh
        out = _loss_map_t_lean(problem, _loss_map_lean(problem, u)) @ Bh
        return factors["wp"] * out.reshape(-1)

    struct = jax.ShapeDtypeStruct((shape[0] * shape[1],), X.dtype)
    inner = lx.FunctionLinearOperator(k_mv, struct, lx.positive_semidefinite_tag)
    return ShiftedLinearOperator(inner, jnp.ones((), X.dtype))


def apply_A(problem, u, w, wp):
    alpha, c, _ = _alpha_c(problem, w)
    X = problem.X
    out = alpha * u + wp * loss_map_t(problem, loss_map(problem, u))
    if c:
        out = out + (u @ X.T) @ X
    return out


def _psd(matrix):
    return lx.MatrixLinearOperator(matrix, lx.positive_semidefinite_tag)


def _small_block(problem, w):
    alpha, c, _ = _alpha_c(problem, w)
    X = problem.X
    d = X.shape[1]
    return alpha * jnp.eye(d, dtype=X.dtype) + c * (X.T @ X)


def build(problem, method: str, w, wp, *, nystrom_rank=None, nystrom_max_rank=64):
    """Factor the system (with weight `w` on the identity) once; returns the factors
    (a pytree)."""
    X = problem.X
    n, d = X.shape
    alpha, c, adversarial = _alpha_c(problem, w)
    if method == "nystrom":
        lam_b, Q = jnp.linalg.eigh(_small_block(problem, w))
        ok = jnp.all(lam_b > 0) & jnp.all(jnp.isfinite(lam_b))
        lam_b = jnp.where(lam_b > 0, lam_b, 1)
        factors = {
            "w": w,
            "wp": wp,
            "inv_sqrt": (Q / jnp.sqrt(lam_b)[None, :]) @ Q.T,
            "sqrt": (Q * jnp.sqrt(lam_b)[None, :]) @ Q.T,
        }
        size = 2 * problem.num_patterns * d
        max_rank = min(nystrom_max_rank, size)
        sketcher = NystromPCG(
            rtol=0.0,
            atol=0.0,
            rank=None if nystrom_rank is None else min(nystrom_rank, size),
            init_rank=min(16, max_rank),
            max_rank=max_rank,
            max_steps=1,
            key=jr.key(0),
        )
        # the sketch of K, once: the system does not depend on rho
        _, precond, used, ratio = sketcher.init(_nystrom_operator(problem, factors), {})
        factors.update(
            precond=precond,
            rank=used,
            lam_l_over_mu=ratio,
            result=lx.RESULTS.where(ok, lx.RESULTS.successful, lx.RESULTS.singular),
        )
        return factors
    if method == "dense":
        P2 = 2 * problem.num_patterns
        eye = jnp.eye(P2 * d, dtype=X.dtype).reshape(P2 * d, P2, d)
        # columns in batches: vmapping all 2dP at once holds (2dP, 2P, n) numbers
        A = jax.lax.map(
            lambda e: apply_A(problem, e, w, wp).reshape(-1), eye, batch_size=64
        )
        A = 0.5 * (A + A.T)
        return {
            "w": w,
            "wp": wp,
            "A": A,
            "chol": lx.Cholesky().init(_psd(A), {}),
            "result": lx.RESULTS.successful,
        }
    if method == "kron":
        lam, V = jnp.linalg.eigh(X.T @ X)
        H = problem.signed_patterns @ problem.signed_patterns.T
        theta, W = jnp.linalg.eigh(H)
        denom = alpha + c * lam[None, :] + wp * theta[:, None]
        return {
            "w": w,
            "wp": wp,
            "V": V,
            "W": W,
            "denom": denom,
            "result": lx.RESULTS.successful,
        }
    B0 = _small_block(problem, w)
    # B0 >= alpha I is well conditioned: keep its inverse (d x d) from one Cholesky
    eye = jnp.eye(d, dtype=X.dtype)
    # throw=False: non-finite data are reported by the solver's result, not raised
    inverse, solved = jax.vmap(
        lambda col: _solution_and_result(linear_solve(_psd(B0), col, lx.Cholesky())),
        in_axes=1,
        out_axes=(1, 0),
    )(eye)
    result = lx.RESULTS.where(
        jnp.all(solved),
        lx.RESULTS.successful,
        lx.RESULTS.singular,
    )
    small = {"inverse": 0.5 * (inverse + inverse.T)}
    if method == "cg":
        return {"w": w, "wp": wp, "small": small, "result": result}
    if method == "woodbury":
        Binv_Xt = _small_solve(small, X.T)  # (d, n)
        M = X @ Binv_Xt
        S = problem.signed_patterns
        K = jnp.eye(n, dtype=X.dtype) + wp * (S.T @ S) * M
        K = 0.5 * (K + K.T)
        return {
            "w": w,
            "wp": wp,
            "small": small,
            "K": K,
            "chol": lx.Cholesky().init(_psd(K), {}),
            "result": result,
        }
    raise ValueError(f"Unknown linear solver {method!r}.")


def _solution_and_result(solution):
    return solution.value, solution.result == lx.RESULTS.successful


def _small_solve(small, rhs):
    """B0^{-1} rhs for rhs of shape (d, k)."""
    return small["inverse"] @ rhs


def _block_inverse(small, r):
    """(I_{2P} (x) B0)^{-1} r for r of shape (2P, d)."""
    return _small_solve(small, r.T).T


def solve(problem, method: str, factors, rhs, u_prev, *, cg_rtol, cg_max_steps):
    """Solve A u = rhs ((2P, d) arrays); returns `(u, inner CG iterations)`."""
    zero = jnp.zeros((), jnp.int32)
    if method == "nystrom":
        # (I + K) z = B^{-1/2} rhs, z = B^{1/2} u; warm start at the previous u.
        # Stops when max |residual| <= cg_rtol max |rhs| (lineax's elementwise rule
        # with rtol alone would demand exact zeros where the rhs vanishes)
        b = (rhs @ factors["inv_sqrt"]).reshape(-1)
        z0 = (u_prev @ factors["sqrt"]).reshape(-1)
        atol = cg_rtol * jnp.max(jnp.abs(b))
        sol = lx.linear_solve(
            _nystrom_operator(problem, factors),
            b,
            lx.CG(rtol=0.0, atol=atol, max_steps=cg_max_steps),
            options={"preconditioner": factors["precond"], "y0": z0},
            throw=False,
        )
        u = sol.value.reshape(rhs.shape) @ factors["inv_sqrt"]
        return u, sol.stats["num_steps"]
    if method == "dense":
        out = linear_solve(
            _psd(factors["A"]), rhs.reshape(-1), lx.Cholesky(), state=factors["chol"]
        ).value
        return out.reshape(rhs.shape), zero
    if method == "kron":
        V, W, denom = factors["V"], factors["W"], factors["denom"]
        return W @ ((W.T @ rhs @ V) / denom) @ V.T, zero
    small = factors["small"]
    if method == "woodbury":
        br = _block_inverse(small, rhs)
        w = loss_map(problem, br)
        z = linear_solve(
            _psd(factors["K"]), w, lx.Cholesky(), state=factors["chol"]
        ).value
        u = br - factors["wp"] * _block_inverse(small, loss_map_t(problem, z))
        return u, zero
    if method == "cg":
        struct = jax.ShapeDtypeStruct(rhs.shape, rhs.dtype)
        op = lx.FunctionLinearOperator(
            lambda u: apply_A(problem, u, factors["w"], factors["wp"]),
            struct,
            lx.positive_semidefinite_tag,
        )
        pre = lx.FunctionLinearOperator(
            lambda r: _block_inverse(small, r), struct, lx.positive_semidefinite_tag
        )
        sol = lx.linear_solve(
            op,
            rhs,
            lx.CG(rtol=cg_rtol, atol=0.0, max_steps=cg_max_steps),
            options={"y0": u_prev, "preconditioner": pre},
            throw=False,
        )
        return sol.value, sol.stats["num_steps"]
    raise ValueError(f"Unknown linear solver {method!r}.")
