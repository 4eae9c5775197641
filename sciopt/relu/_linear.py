"""The fixed linear system of the ADMM u-step, factored once.

A = alpha I + I_{2P} (x) (c X^T X) + L^T L, with alpha = 1 (+1 for the robust cones),
c = 1 with cone constraints (G^T G = I (x) X^T X because (2 D_i - I)^2 = I) and 0 for
gated ReLU, and L the loss map: F u = sum_j s_j D_j X u_j (n rows), or for the
adversarial program q = (S D)^T u (n d rows, L^T L = H (x) I_d).
"""

import jax
import jax.numpy as jnp
import lineax as lx

from ._problem import AdversarialReLUProblem


METHODS = ("auto", "dense", "woodbury", "cg", "kron")
MAX_FACTOR = 16384  # the largest matrix side that "auto" factors


def check_method(method: str) -> None:
    if method not in METHODS:
        raise ValueError(f"`linear_solver` must be one of {METHODS}, got {method!r}.")


def resolve_method(method: str, problem, *, differentiable: bool = False) -> str:
    """Pick the factorization: `kron` (exact eigen-solve) for the adversarial program,
    else the dense (2dP)^2 Cholesky or the n x n Woodbury core, whichever is
    smaller, and CG when both exceed `MAX_FACTOR` (2 GiB in float64)."""
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
    if min(n, size) > MAX_FACTOR:
        return "cg"
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


def build(problem, method: str, w, wp):
    """Factor the system (with weight `w` on the identity) once; returns the factors
    (a pytree)."""
    X = problem.X
    n, d = X.shape
    alpha, c, adversarial = _alpha_c(problem, w)
    if method == "dense":
        P2 = 2 * problem.num_patterns
        eye = jnp.eye(P2 * d, dtype=X.dtype).reshape(P2 * d, P2, d)
        A = jax.vmap(lambda e: apply_A(problem, e, w, wp).reshape(-1))(eye)
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
        lambda col: _solution_and_result(
            lx.linear_solve(_psd(B0), col, lx.Cholesky(), throw=False)
        ),
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
    """Solve A u = rhs ((2P, d) arrays)."""
    if method == "dense":
        out = lx.linear_solve(
            _psd(factors["A"]),
            rhs.reshape(-1),
            lx.Cholesky(),
            state=factors["chol"],
            throw=False,
        ).value
        return out.reshape(rhs.shape)
    if method == "kron":
        V, W, denom = factors["V"], factors["W"], factors["denom"]
        return W @ ((W.T @ rhs @ V) / denom) @ V.T
    small = factors["small"]
    if method == "woodbury":
        br = _block_inverse(small, rhs)
        w = loss_map(problem, br)
        z = lx.linear_solve(
            _psd(factors["K"]), w, lx.Cholesky(), state=factors["chol"], throw=False
        ).value
        return br - factors["wp"] * _block_inverse(small, loss_map_t(problem, z))
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
        return sol.value
    raise ValueError(f"Unknown linear solver {method!r}.")
