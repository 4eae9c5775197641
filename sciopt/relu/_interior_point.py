"""A primal-dual interior-point method for `ConvexReLUProblem`.

The program in conic form, one second-order cone per group:

    min loss(F u, y) + beta sum_g tau_g   s.t.  G_g u_g >= 0,  (tau_g, u_g) in SOC,

solved by Mehrotra's predictor-corrector with Nesterov-Todd scaling. Newton's matrix
is block diagonal (one (d+1) x (d+1) block per group) plus F^T diag(loss'') F of rank
n, solved through the n x n Woodbury core or a reduced system of side P d.
"""

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool

from .._misc import verbose_printer
from .._solution import RESULTS
from .._solver import AbstractSolver
from . import _soc
from ._admm import ADMM
from ._gap import dual_bound
from ._linear import MAX_FACTOR
from ._losses import loss_value
from ._problem import ConvexReLUProblem, ConvexReLUVariables, data_result


LINEAR_SOLVERS = ("auto", "woodbury", "dense")
CHUNK_NUMBERS = 2**22  # the dense path reads X in chunks of about this many numbers
QR_CHUNK_NUMBERS = 5000  # numbers of one group's row chunk in the blocks' QR
LAMBDA_FACTOR = 100.0  # phase one's regularisation is divided by this per level
LAMBDA_RANGE = 1e-16  # ... down to this fraction of its start
SEPARATED_LEVELS = 2  # phase one stops after this many separating centred fits
REFINEMENT_RTOL = 1e2  # refinement stops at a residual of this many eps x ||rhs||
# ... or, earlier in a solve, at this fraction of the certified relative gap (at most
# REFINEMENT_LOOSEST): a direction needs no more accuracy than the gap it closes
REFINEMENT_GAP_FRACTION = 1e-6
REFINEMENT_LOOSEST = 1e-6
# with many samples the group blocks are formed (a product) and factored by Cholesky
# while the certified relative gap is above this and the blocks are well conditioned
# (below GRAM_CONDITION, estimated from the factor's diagonal); by QR after
GRAM_BLOCKS_GAP = 1e-3
GRAM_CONDITION = 1e12
TYPICAL_STEPS = 50  # steps of a solve, for the flop count of `linear_solver="auto"`


def _one_at_a_time(fn, *batched):
    """`fn` applied to each matrix of a batch in turn (`jax.lax.map`), so that every
    LAPACK call on the CPU sees a batch of one.

    jaxlib's CPU LAPACK kernels (jax 0.10) split a batch into chunks, schedule them
    on XLA's intra-op thread pool (the pool the calling kernel itself runs on) and
    block until they finish. When every worker of the pool blocks so, nobody runs the
    chunks and the process deadlocks, idle (the InteriorPoint hang of the gallery;
    `XLA_FLAGS=--xla_cpu_multi_thread_eigen=false` avoided it). A batch of one runs
    inline, without the pool. Other backends keep their batched kernels."""
    if jax.default_backend() != "cpu":
        return fn(*batched)
    return jax.lax.map(lambda args: fn(*args), batched)


def _scan_row_chunks(update, init, width, *rows, numbers=None):
    """`update(carry, *chunk_rows)` folded over row chunks of the arrays in `rows`
    (rows on axis 0, padded with zero rows), from `init`; each chunk holds about
    `numbers / width` rows (`width`: the numbers a row's largest intermediate
    holds; `numbers` defaults to `CHUNK_NUMBERS`) and at least 64, so that no
    intermediate over all n rows is held at once."""
    n = rows[0].shape[0]
    numbers = CHUNK_NUMBERS if numbers is None else numbers
    chunk = int(max(64, min(n, numbers // width)))
    chunks = -(-n // chunk)
    pad = chunks * chunk - n
    stacked = tuple(
        jnp.pad(a, ((0, pad),) + ((0, 0),) * (a.ndim - 1)).reshape(
            (chunks, chunk) + a.shape[1:]
        )
        for a in rows
    )
    total, _ = jax.lax.scan(lambda c, r: (update(c, *r), None), init, stacked)
    return total


def _sum_over_row_chunks(term, width, *rows):
    """`term(*rows)` (a pytree of arrays that adds up over rows) summed over row
    chunks of the arrays in `rows` (rows on axis 0), each chunk of about
    `CHUNK_NUMBERS / width` rows (`width`: the numbers a row's largest intermediate
    holds), so that no intermediate over all n rows is held at once."""
    n = rows[0].shape[0]
    chunk = int(max(64, min(n, CHUNK_NUMBERS // width)))
    if chunk >= n:
        return term(*rows)
    shapes = jax.eval_shape(term, *(a[:chunk] for a in rows))
    zero = jax.tree.map(lambda t: jnp.zeros(t.shape, t.dtype), shapes)

    def accumulate(total, *chunk_rows):
        return jax.tree.map(jnp.add, total, term(*chunk_rows))

    return _scan_row_chunks(accumulate, zero, width, *rows)


def _weighted_grams(w, X):
    """sum_k w[p, k] x_k x_k^T for every row p of `w` (shape (P, d, d)), over row
    chunks of X, so that no (P, n, d) product is held at once."""
    P, d = w.shape[0], X.shape[1]
    return _sum_over_row_chunks(
        lambda x, wt: jnp.einsum("cp,cd,ce->pde", wt, x, x), P * d, X, w.T
    )


def _loss_gram(problem, lcurv):
    """G = A^T diag(lcurv) A, A = [D_1 X ... D_P X] (n, P d): the loss's Hessian in
    the pattern coordinates, over row chunks of X."""
    P, d = problem.num_patterns, problem.X.shape[1]

    def term(x, masks):
        # A^T formed as (P d, rows), then A^T (A^T)^T: XLA:CPU multiplies a
        # transposed left operand more slowly (docs/benchmarks/relu.md)
        a_t = (masks.T[:, None, :] * x.T[None, :, :]).reshape(P * d, x.shape[0])
        return a_t @ a_t.T

    root_w = jnp.sqrt(jnp.maximum(lcurv, 0))
    return _sum_over_row_chunks(
        term, P * d, problem.X, root_w[:, None] * problem.patterns
    )


def _group_rows(W_inv):
    """The scaling's W_g^{-1} reordered from (tau, u) to (u, tau)."""
    order = np.r_[1 : W_inv.shape[-1], 0]
    return W_inv[:, order][:, :, order]


def _loss_derivatives(loss: str, yhat, y):
    """The gradient and the (diagonal) curvature of the summed loss at `yhat`."""
    grad_fn = jax.grad(lambda z: loss_value(loss, z, y))
    grad, curvature = jax.jvp(grad_fn, (yhat,), (jnp.ones_like(yhat),))
    return grad, curvature


def _interior_directions(problem: ConvexReLUProblem, steps: int):
    """A strictly interior point h_i of every cone {h: (2 D_i - I) X h >= 0}.

    Fits, for every pattern at once, the l2-regularised logistic regression of the
    signs s_i = 2 d_i - 1 on X without intercept, min_w sum_k log(1 + exp(-s_ik x_k^T
    w)) + lam_i / 2 ||w||^2, by damped Newton steps, and divides lam_i by
    `LAMBDA_FACTOR` each time a pattern's fit is centred (Newton decrement^2 / 2 <=
    1e-2) while w does not separate its signs strictly. As lam -> 0 the direction
    of w tends to the maximum-margin separator (Rosset, Zhu & Hastie 2004), so a
    cone with an interior is found; the fit stops for a pattern once its
    normalised w has a positive margin min_k s_ik x_k^T w / ||w||, or once lam_i
    falls below `LAMBDA_RANGE` times its start (an empty or numerically empty
    interior). Returns the (P, d) unit directions and their margins (a margin <= 0:
    no interior found).

    Each step costs the per-pattern Hessians X^T diag(p (1 - p)) X, O(n P d^2), over
    row chunks of X; the fits need a few steps per level of lam. It replaces a
    barrier method on the margin whose steps grew with n (the relu benchmark page
    compares the two). The reference is in `InteriorPoint`'s docstring.
    """
    X = problem.X
    n, d = X.shape
    signs = (2 * problem.patterns.T - 1).astype(X.dtype)  # (P, n)
    P = signs.shape[0]
    dtype = X.dtype
    # the start lam: 1e-2 of the logistic Hessian's mean eigenvalue at w = 0
    lam0 = 1e-2 * 0.25 * jnp.sum(X**2) / d
    lam0 = jnp.where(lam0 > 0, lam0, 1.0)

    def loss(w, lam, m=None):  # m: the signed products s_ik x_k^T w, if at hand
        m = signs * (w @ X.T) if m is None else m
        return jnp.sum(jax.nn.softplus(-m), axis=1) + 0.5 * lam * jnp.sum(w**2, 1)

    def margins(w):
        norms = jnp.linalg.norm(w, axis=1)
        m = jnp.min(signs * (w @ X.T), axis=1)
        return jnp.where(norms > 0, m / jnp.where(norms > 0, norms, 1), -jnp.inf)

    def finished(separated, lam):
        return (separated >= SEPARATED_LEVELS) | (lam < LAMBDA_RANGE * lam0)

    def newton(carry):
        w, lam, separated, k = carry
        m = signs * (w @ X.T)
        p = jax.nn.sigmoid(-m)  # the loss's derivative in -m
        g = -(signs * p) @ X + lam[:, None] * w
        H = _weighted_grams(p * (1 - p), X)
        H = H + lam[:, None, None] * jnp.eye(d, dtype=dtype)[None]
        step = -_one_at_a_time(jnp.linalg.solve, H, g[:, :, None])[..., 0]
        slope = jnp.sum(g * step, axis=1)
        f0 = loss(w, lam, m)

        def cond(c):
            a, trial, i = c
            return jnp.any(trial > f0 + 0.25 * a * slope) & (i < 60)

        def body(c):  # halve the steps of the patterns that fail Armijo
            a, trial, i = c
            a = jnp.where(trial > f0 + 0.25 * a * slope, a / 2, a)
            return a, loss(w + a[:, None] * step, lam), i + 1

        a0 = jnp.ones(P, dtype)
        a, trial, _ = jax.lax.while_loop(cond, body, (a0, loss(w + step, lam), 0))
        active = ~finished(separated, lam)
        a = jnp.where((trial <= f0) & active, a, 0)
        w = w + a[:, None] * step
        # a lower lam once a pattern's fit is centred; a centred fit that
        # separates counts towards the levels asked for
        centred = active & (-0.5 * slope <= 1e-2)
        separated = separated + (centred & (margins(w) > 0)).astype(jnp.int32)
        lam = jnp.where(centred, lam / LAMBDA_FACTOR, lam)
        return w, lam, separated, k + 1

    def not_done(carry):
        _, lam, separated, k = carry
        return (k < steps) & ~jnp.all(finished(separated, lam))

    w0 = jnp.zeros((P, d), dtype)
    lam_start = jnp.full(P, lam0, dtype)
    zero = jnp.zeros(P, jnp.int32)
    w, _, _, _ = jax.lax.while_loop(not_done, newton, (w0, lam_start, zero, 0))
    norms = jnp.linalg.norm(w, axis=1, keepdims=True)
    h = w / jnp.where(norms > 0, norms, 1)
    return jax.lax.stop_gradient(h), jax.lax.stop_gradient(margins(w))


class _InteriorPointState(eqx.Module):
    u: Array
    tau: Array
    z_cone: Array
    z_group: Array
    mu: Array
    objective: Array
    lower_bound: Array
    certified: Array
    margin: Array
    stalled: Array
    num_steps: Array
    data_result: RESULTS
    gram: Array | None  # the squared loss's Hessian of the dense path (P d, P d)


def _triangular_factor(stacked):
    """The upper-triangular R of the QR factorization of each (m, k) matrix of the
    batch `stacked` (R^T R = stacked^T stacked, without forming the Gram matrix).

    Tall blocks are split into row chunks whose R factors are stacked and factored
    again (a one-level TSQR): the same R up to row signs, in about 0.65x the time of
    one batched QR at (2000, 20, 100)."""
    batch, m, k = stacked.shape
    chunks = max(1, min(8, m // 256))
    if chunks > 1:
        pad = (-m) % chunks
        stacked = jnp.pad(stacked, ((0, 0), (0, pad), (0, 0)))
        stacked = stacked.reshape(batch * chunks, (m + pad) // chunks, k)
        stacked = _one_at_a_time(_qr_r, stacked).reshape(batch, chunks * k, k)
    return _one_at_a_time(_qr_r, stacked)


def _qr_r(a):
    return jnp.linalg.qr(a, mode="r")


def _group_point(u, tau):
    """The (2P, d + 1) cone points (tau_g, u_g)."""
    return jnp.concatenate([tau[:, None], u], axis=1)


class InteriorPoint(AbstractSolver):
    """A primal-dual interior-point method for `sciopt.relu.ConvexReLUProblem` with a
    smooth loss (`"squared"` or `"bce"`) and cone constraints.

    Solves the conic form

        min loss(F u, y) + beta sum_g tau_g
        s.t. (2 D_i - I) X u_g >= 0,  ||u_g|| <= tau_g

    by Mehrotra's predictor-corrector (an affine-scaling predictor, the centring
    parameter sigma = (mu_affine / mu)^3 and a second-order corrector) plus Gondzio's
    centrality correctors on the cone constraints, with Nesterov-Todd scaling on the
    group cones, a step of `step_fraction` of the way to the boundary, and multipliers
    z >= 0 on the cone constraints and z_g in the second-order cones (an
    infeasible-start dual; the primal iterate stays strictly feasible). Newton's
    matrix is block diagonal (one (d+1) x (d+1) block B_g per group: X^T diag(z_g /
    s_g) X and the scaling W_g^{-2}) plus F^T diag(loss'') F of rank n, and the loss
    sees only the differences u_i - u_{P+i} of each pattern's two groups. It is solved
    either through the n x n Woodbury core (`linear_solver="woodbury"`), or through
    the reduced system of side P d in those differences (`"dense"`): with E the
    difference map and G = A^T diag(loss'') A (A = [D_1 X ... D_P X]), the blocks'
    contribution M = E B^{-1} E^T = L L^T is block diagonal and the system
    I + L^T G L (eigenvalues >= 1) is formed and factored by Cholesky after a
    symmetric diagonal scaling. For the squared loss G is constant and formed once;
    X is read in row chunks, so the memory and the time per step grow linearly in n.
    The blocks B_g are factored by QR of their stacked square roots (forming them
    squares a condition number that grows like 1/mu; tall stacks by a one-level
    TSQR, Demmel et al. 2012, or updated over row chunks of X); with many samples
    they are formed by one product and factored by Cholesky instead while that is
    safe (an estimated condition number below 1e12, the certified relative gap
    above 1e-3, no breakdown), much cheaper early in a solve. M's factor L is found
    by QR of the stacked u-rows of the blocks' inverse factors. Every solve is
    followed by `refinement_steps` steps of iterative refinement against Newton's
    matrix applied matrix-free (Higham 2002, ch. 12): late in a solve a factored solve
    loses the dual residual and, without refinement, the certified gap stops
    improving early. A step costs O(n^2 P d + n^3) (Woodbury) or
    O(n P d^2 + P^3 d^3) (dense; the squared loss's G once, O(n P^2 d^2)), and a
    solve takes a few tens of steps, against 10^4-10^5 steps of O(n d P + n^2) for
    `ADMM` at the same accuracy.

    The start is strictly feasible: v_i = w_i = c h_i with h_i a strictly interior unit
    direction of pattern i's cone (from a path of regularised logistic fits of the
    pattern's signs, all patterns at once; Rosset, Zhu & Hastie 2004), so the start
    predicts 0, and c = max |y| / max_k ||x_k|| (squared loss) or
    1 / max_k ||x_k|| (cross-entropy), the data's units. A pattern whose cone has an
    empty interior stops the solve with `RESULTS.empty_cone_interior`; use `ADMM`
    then.

    Every step certifies the duality gap by Lagrangian weak duality (the bound of
    `ADMM`'s `stats["lower_bound"]`, from the iterate's cone multipliers); the solve
    stops when `objective - lower_bound <= atol + rtol |objective|`. The iterate is
    strictly feasible (cone violation 0 up to rounding). This is a float64 method: in
    float32 the scaled Newton systems lose their accuracy early and the solve stops
    with `RESULTS.newton_stalled` (measured on the relu benchmark page).

    **Arguments:**

    - `rtol`, `atol`: the certified duality gap to stop at (`rtol=None`, the
      default: 1e-6 in float64, 1e-3 in float32).
    - `step_fraction`: the fraction of the step to the boundary taken (default 0.99).
    - `phase_one_steps`: the most Newton steps of the search for interior directions
      (it stops once every pattern has one, at two levels of the regularisation).
    - `centrality_correctors`: the most centrality correctors per step (default 2).
      Each re-solves Newton's system with the factorization at hand for a direction
      that pushes the products s_k z_k of the cone constraints, at twice the current
      step, into [0.1, 10] sigma mu (Gondzio 1996); it is kept when it lengthens the
      step by at least 1 %. 0 turns them off.
    - `refinement_steps`: the most steps of iterative refinement of every Newton
      solve (default `None`: 2 with the Woodbury core, 5 with the reduced system,
      whose formed loss Hessian G loses more digits; each costs one more solve with
      the factorization at hand and one product with Newton's matrix, O(n d P)); they
      lower the floor at which the certified gap stalls, and stop early once the
      residual is below 100 eps times the right-hand side, or, while the certified
      relative gap is large, below 1e-6 times that gap (at most 1e-6 times the
      right-hand side: an inexact Newton direction, Dembo, Eisenstat & Steihaug
      1982), so that early steps refine little or not at all. 0 turns them off.
    - `linear_solver`: `"auto"` (the default), `"woodbury"` or `"dense"`: how
      Newton's systems are solved (above). `"auto"` picks the one of fewer flops per
      step (the reduced system must have half the Woodbury core's): the Woodbury
      core when n is below about P d, the reduced system otherwise. The factored
      side (n, or P d) must be at most 16 384; beyond it use
      `ADMM(linear_solver="nystrom")`, which forms no matrix.
    - `verbose`: `True` prints, every step (with `jax.debug.print`, so also under
      `jit`), the step number, the duality measure mu, sigma, the step length and
      the certified gap; or a callable taking those as keyword arguments `name=(label,
      value)` (see `sciopt.verbose_printer`).

    `Solution.value` is a `ConvexReLUVariables` (as for `ADMM`): `value.v` is the convex
    solution; `s` the cone values G u, `dual_s = -z` the cone multipliers, `p` the
    predictions, `dual_p` the loss gradient and `dual_v` the group subgradients.
    `Solution.stats` holds `objective`, `lower_bound` (the best certified bound
    seen), `duality_gap`, `cone_violation`, `mu` (the duality measure), `margin` (the
    smallest interior margin of the start).

    ??? cite "References"

        ```bibtex
        @article{mehrotra1992implementation,
            title={On the Implementation of a Primal-Dual Interior Point Method},
            author={Mehrotra, Sanjay},
            journal={SIAM Journal on Optimization},
            volume={2},
            number={4},
            pages={575--601},
            year={1992}
        }

        @article{gondzio1996multiple,
            title={Multiple centrality corrections in a primal-dual method for
                   linear programming},
            author={Gondzio, Jacek},
            journal={Computational Optimization and Applications},
            volume={6},
            number={2},
            pages={137--156},
            year={1996}
        }

        @article{nesterov1997self,
            title={Self-Scaled Barriers and Interior-Point Methods for Convex
                   Programming},
            author={Nesterov, Yurii E. and Todd, Michael J.},
            journal={Mathematics of Operations Research},
            volume={22},
            number={1},
            pages={1--42},
            year={1997}
        }

        @article{demmel2012communication,
            title={Communication-optimal Parallel and Sequential {QR} and {LU}
                   Factorizations},
            author={Demmel, James and Grigori, Laura and Hoemmen, Mark and
                    Langou, Julien},
            journal={SIAM Journal on Scientific Computing},
            volume={34},
            number={1},
            pages={A206--A239},
            year={2012}
        }

        @article{rosset2004margin,
            title={Margin Maximizing Loss Functions},
            author={Rosset, Saharon and Zhu, Ji and Hastie, Trevor},
            journal={Advances in Neural Information Processing Systems},
            volume={16},
            year={2004}
        }

        @article{dembo1982inexact,
            title={Inexact {N}ewton Methods},
            author={Dembo, Ron S. and Eisenstat, Stanley C. and Steihaug, Trond},
            journal={SIAM Journal on Numerical Analysis},
            volume={19},
            number={2},
            pages={400--408},
            year={1982}
        }

        @book{higham2002accuracy,
            title={Accuracy and Stability of Numerical Algorithms},
            author={Higham, Nicholas J.},
            edition={2},
            publisher={SIAM},
            year={2002}
        }

        @incollection{vandenberghe2010cvxopt,
            title={The {CVXOPT} Linear and Quadratic Cone Program Solvers},
            author={Vandenberghe, Lieven},
            year={2010},
            note={Technical report, UCLA}
        }
        ```
    """

    rtol: float | None = None
    atol: float = 1e-10
    step_fraction: float = 0.99
    phase_one_steps: int = eqx.field(static=True, default=2000)
    centrality_correctors: int = eqx.field(static=True, default=2)
    refinement_steps: int | None = eqx.field(static=True, default=None)
    linear_solver: str = eqx.field(static=True, default="auto")
    verbose: bool | Callable[..., None] = False

    def __check_init__(self):
        if (
            self.rtol is not None
            and not isinstance(self.rtol, jax.core.Tracer)
            and not self.rtol > 0
        ):
            raise ValueError(f"`rtol` must be positive, got {self.rtol!r}.")
        if not isinstance(self.step_fraction, jax.core.Tracer) and not (
            0 < self.step_fraction < 1
        ):
            raise ValueError(
                f"`step_fraction` must lie in (0, 1), got {self.step_fraction!r}."
            )
        if self.centrality_correctors < 0:
            raise ValueError(
                "`centrality_correctors` must be >= 0, got "
                f"{self.centrality_correctors!r}."
            )
        if self.linear_solver not in LINEAR_SOLVERS:
            raise ValueError(
                f"`linear_solver` must be one of {LINEAR_SOLVERS}, got "
                f"{self.linear_solver!r}."
            )
        if self.refinement_steps is not None and self.refinement_steps < 0:
            raise ValueError(
                f"`refinement_steps` must be >= 0, got {self.refinement_steps!r}."
            )
        if self.phase_one_steps < 1:
            raise ValueError(
                f"`phase_one_steps` must be >= 1, got {self.phase_one_steps!r}."
            )

    def _check_problem(self, problem):
        if not isinstance(problem, ConvexReLUProblem):
            raise TypeError(
                "`sciopt.relu.InteriorPoint` solves ConvexReLUProblem, got "
                f"{type(problem).__name__}; use `sciopt.relu.ADMM` for "
                "AdversarialReLUProblem."
            )
        if problem.loss not in ("squared", "bce"):
            raise ValueError(
                "`sciopt.relu.InteriorPoint` needs a smooth loss ('squared' or "
                f"'bce'), got loss={problem.loss!r}; use `sciopt.relu.ADMM`."
            )
        n, d = problem.X.shape
        side = problem.num_patterns * d
        method = self._linear_solver(problem)
        factored = n if method == "woodbury" else side
        if factored > MAX_FACTOR:
            raise ValueError(
                f"`sciopt.relu.InteriorPoint(linear_solver={self.linear_solver!r})` "
                f"factors a matrix of side {factored} every step ('woodbury': n = "
                f"{n}; 'dense': P d = {side}), more than {MAX_FACTOR}. "
                "Use `sciopt.relu.ADMM` (its `linear_solver='nystrom'` forms no "
                "matrix)."
            )
        if problem.gated:
            raise ValueError(
                "`sciopt.relu.InteriorPoint` solves the program with cone "
                "constraints (gated=False); for gated ReLU use `sciopt.relu.ADMM`, "
                "which needs no cone splitting there."
            )

    def _linear_solver(self, problem) -> str:
        """`"woodbury"` (the n x n core) or `"dense"` (the reduced system of side
        P d): the given one, or for `"auto"` the one of fewer flops per step
        (forming and factoring; the squared loss's Hessian of the dense path is
        formed once, counted as a share of a solve of `TYPICAL_STEPS` steps); the
        reduced system must have half the flops."""
        if self.linear_solver != "auto":
            return self.linear_solver
        n, d = problem.X.shape
        P = problem.num_patterns
        woodbury = 2 * n * n * P * d + n**3 / 3
        gram = 2 * n * (P * d) ** 2
        if problem.loss == "squared":
            gram = gram / TYPICAL_STEPS
        dense = gram + 4 * P * n * d * d + 4 * P * P * d**3 + (P * d) ** 3 / 3
        # the reduced system's many small factorizations cost more than their flops
        # on small problems (measured on the latency page): it must win by 2x
        return "dense" if 2 * dense < woodbury else "woodbury"

    def _degree(self, problem):
        groups = 2 * problem.num_patterns
        return groups * problem.X.shape[0] + groups

    def init(self, problem, y, args, options: dict[str, Any]):
        self._check_problem(problem)
        X = problem.X
        dtype = X.dtype
        # data traced under jit are checked here (concrete data by the constructor);
        # invalid data skip the phase-one search
        data = data_result(problem)
        steps = jnp.where(data == RESULTS.successful, self.phase_one_steps, 0)
        h, margins = _interior_directions(problem, steps)
        norms = jnp.linalg.norm(h, axis=1, keepdims=True)
        h = h / jnp.where(norms > 0, norms, 1)
        # the start predicts 0 (v_i = w_i), with group norms in the data's units:
        # one group of that norm predicts max |y| (a logit of 1 for cross-entropy)
        # at the largest sample (fewer steps than unit-free norms 1 / sqrt(2P) on
        # the benchmark problems: docs/benchmarks/relu.md)
        largest = jnp.max(jnp.linalg.norm(X, axis=1))
        target = jnp.max(jnp.abs(problem.y)) if problem.loss == "squared" else 1.0
        scale = jax.lax.stop_gradient(
            jnp.where(target > 0, target, 1.0) / jnp.where(largest > 0, largest, 1.0)
        )
        u = scale * jnp.concatenate([h, h], axis=0)
        tau = jnp.linalg.norm(u, axis=1) + scale
        s_cone = problem.cone_signs * (u @ X.T)
        s_group = _group_point(u, tau)
        f0 = loss_value(problem.loss, problem.predict_groups(u), problem.y)
        f0 = f0 + problem.beta * jnp.sum(tau)
        # a centred dual start: z o s = mu0 e with the duality gap mu0 m = f0
        mu0 = jnp.maximum(f0, jnp.finfo(dtype).tiny) / self._degree(problem)
        z_cone = mu0 / jnp.where(s_cone > 0, s_cone, 1)
        z_group = mu0 * _soc.power(s_group, -1.0)
        inf = jnp.array(jnp.inf, dtype)
        gram = None
        if self._linear_solver(problem) == "dense" and problem.loss == "squared":
            # the squared loss's curvature is 1: its Hessian is formed once
            gram = _loss_gram(problem, jnp.ones(X.shape[0], dtype))
        return _InteriorPointState(
            u=u,
            tau=tau,
            z_cone=z_cone,
            z_group=z_group,
            mu=mu0,
            objective=f0,
            lower_bound=-inf,
            certified=jnp.array(False),
            margin=jnp.min(margins),
            stalled=jnp.array(False),
            num_steps=jnp.array(0),
            data_result=data,
            gram=gram,
        )

    def _newton_blocks(self, problem, s_cone, z_cone, W_inv, gap=None):
        """The group blocks B_g of Newton's matrix: returns the stacked roots of the
        scaling W_g^{-2} in the order (u, tau) and the (2P, d + 1, d + 1) inverses of
        the triangular factors R_g (B_g = R_g^T R_g)."""
        X = problem.X
        n, d = X.shape
        dtype = X.dtype
        P = problem.num_patterns
        # B_g = R_g^T R_g from the QR of the stacked roots diag(sqrt(z / s)) [X 0]
        # and W_g^{-1} (symmetric, W_g^{-2} the group cone's scaled Hessian),
        # reordered from (tau, u) to (u, tau)
        group_rows = _group_rows(W_inv)
        roots = jnp.sqrt(z_cone / s_cone)

        def cone_rows(x, root):  # (2P, rows, d + 1): diag(sqrt(z / s)) [X 0]
            rows = root.T[:, :, None] * x[None, :, :]
            return jnp.pad(rows, ((0, 0), (0, 0), (0, 1)))

        if 2 * P * (n + d + 1) * (d + 1) <= CHUNK_NUMBERS:
            stacked = jnp.concatenate([cone_rows(X, roots.T), group_rows], axis=1)
            R = _triangular_factor(stacked)
        else:
            # many samples: R updated over row chunks of X (R^T R adds up), so
            # that no (2P, n, d) stack is held. A group's chunk is kept to about
            # `QR_CHUNK_NUMBERS` numbers: small QRs that stay in the cache ran
            # faster than a few tall ones (docs/benchmarks/relu.md)
            def by_qr():
                return _scan_row_chunks(
                    lambda R, x, root: _one_at_a_time(
                        _qr_r, jnp.concatenate([R, cone_rows(x, root)], axis=1)
                    ),
                    group_rows,
                    d + 1,
                    X,
                    roots.T,
                    numbers=QR_CHUNK_NUMBERS,
                )

            if gap is None:
                R = by_qr()
            else:
                # early in a solve the blocks are well conditioned: formed by one
                # product over row chunks and factored by Cholesky, they cost far
                # less than the row-chunked QR, with the same iterates
                # (docs/benchmarks/relu.md). Forming squares their condition number,
                # which grows like 1/mu: QR once the gap is small or the estimate
                # (the factor's diagonal) large; a breakdown (nan) falls back too
                blocks = jnp.einsum("gki,gkj->gij", group_rows, group_rows)
                blocks = blocks.at[:, :d, :d].add(_weighted_grams(z_cone / s_cone, X))
                R_gram = jnp.swapaxes(
                    _one_at_a_time(
                        lambda b: jax.lax.linalg.cholesky(b, symmetrize_input=False),
                        blocks,
                    ),
                    1,
                    2,
                )
                diagonal = jnp.abs(jnp.diagonal(R_gram, axis1=1, axis2=2))
                ratio = jnp.max(diagonal, axis=1) / jnp.min(diagonal, axis=1)
                use = (
                    (gap > GRAM_BLOCKS_GAP)
                    & jnp.all(jnp.isfinite(R_gram))
                    & jnp.all(ratio**2 < GRAM_CONDITION)
                )
                R = jax.lax.cond(use, lambda: R_gram, by_qr)
        # B^{-1} = R^{-1} R^{-T} through the explicit (d+1) x (d+1) inverses: XLA's
        # CPU batched triangular solve is much slower with transpose_a (see
        # docs/benchmarks/relu.md), and the inverses turn every later block solve
        # into two small batched products
        eye = jnp.broadcast_to(jnp.eye(d + 1, dtype=dtype), R.shape)
        R_inv = _one_at_a_time(
            lambda r, e: jax.lax.linalg.triangular_solve(
                r, e, left_side=True, lower=False
            ),
            R,
            eye,
        )
        return group_rows, R_inv

    def _woodbury_core(self, problem, R_inv, lcurv):
        """The n x n Woodbury core I + W^1/2 F B^{-1} F^T W^1/2 (W = loss''), and
        W^1/2."""
        X = problem.X
        n, d = X.shape
        P = problem.num_patterns
        # formed as A C^T with the (n, P d) matrices A = [D_i X], C = [D_i X E_i],
        # E_i the sum of the u-blocks of B^{-1} over the two groups of pattern i
        R_inv_u = R_inv[:, :d, :]
        E = jnp.einsum("gik,gjk->gij", R_inv_u, R_inv_u)
        E = E[:P] + E[P:]
        root_w = jnp.sqrt(jnp.maximum(lcurv, 0))
        masks = root_w[:, None] * problem.patterns  # (n, P)
        A = (masks[:, :, None] * X[:, None, :]).reshape(n, P * d)
        XE = jnp.einsum("nd,pde->npe", X, E)  # X E_i before masking: fewer flops
        C = (masks[:, :, None] * XE).reshape(n, P * d)
        core = A @ C.T
        return jnp.eye(n, dtype=X.dtype) + 0.5 * (core + core.T), root_w

    def _dense_solve(self, problem, s_cone, z_cone, W_inv, lcurv, gram=None, gap=None):
        """Newton's matrix solved through its reduced system of side P d, formed and
        factored by Cholesky; X is read in row chunks, so nothing of size n x n or
        (2P, n, d) is held. Returns the group rows of the scaling and the solve, for
        right-hand sides of shape (2P, d + 1).

        Newton's matrix is blkdiag(B_g) + E^T G E: E takes the difference
        u_i - u_{P+i} of the two groups of pattern i (the prediction only sees it)
        and G = A^T diag(loss'') A, A = [D_1 X ... D_P X], is the loss's Hessian in
        it. With t = E x, x = B^{-1} (r - E^T G t) and (I + M G) t = E B^{-1} r,
        M = E B^{-1} E^T block diagonal (d x d blocks). With M = L L^T that is the
        symmetric positive definite (I + L^T G L) s = L^{-1} E B^{-1} r, t = L s:
        eigenvalues at least 1 (a Woodbury core in the pattern coordinates). G is
        `gram` when given (the squared loss: loss'' = 1, formed once by `init`)."""
        X = problem.X
        d = X.shape[1]
        dtype = X.dtype
        P = problem.num_patterns
        # B_g^{-1} = R_g^{-1} R_g^{-T} from the QR of the blocks' stacked roots, and
        # L from the QR of [R_i^{-1}; R_{P+i}^{-1}]^T (u rows): nothing squared
        group_rows, R_inv = self._newton_blocks(problem, s_cone, z_cone, W_inv, gap)
        pair = jnp.concatenate(
            [
                jnp.swapaxes(R_inv[:P, :d, :], 1, 2),
                jnp.swapaxes(R_inv[P:, :d, :], 1, 2),
            ],
            axis=1,
        )  # (P, 2 (d + 1), d), M_i = pair_i^T pair_i
        L = jnp.swapaxes(_one_at_a_time(_qr_r, pair), 1, 2)
        eye = jnp.broadcast_to(jnp.eye(d, dtype=dtype), L.shape)
        L_inv = _one_at_a_time(
            lambda m, e: jax.lax.linalg.triangular_solve(
                m, e, left_side=True, lower=True
            ),
            L,
            eye,
        )
        if gram is None:
            gram = _loss_gram(problem, lcurv)
        G = gram.reshape(P, d, P, d)
        # scaled symmetrically by its diagonal (which spans many orders of magnitude
        # late in a solve: z / s grows like 1 / mu), folded into L so that the
        # (P d)^2 matrix is formed once: D^-1 (I + L^T G L) D^-1, D^2 its diagonal
        # (from G's diagonal blocks alone)
        diagonal_blocks = G[jnp.arange(P), :, jnp.arange(P), :]  # (P, d, d)
        scale = jnp.sqrt(1 + jnp.einsum("pki,pkl,pli->pi", L, diagonal_blocks, L))
        L_scaled = L / scale[:, None, :]
        scale = scale.reshape(-1)
        core = jnp.einsum("pki,pkql,qlj->piqj", L_scaled, G, L_scaled)
        core = core.reshape(P * d, P * d) + jnp.diag(1 / scale**2)
        # the lower triangle is factored (no symmetrized copy of the matrix)
        factor = (jax.lax.linalg.cholesky(core, symmetrize_input=False), True)

        def block_solve(r):  # B^{-1} r, r of shape (2P, d + 1)
            w = jnp.einsum("gji,gj->gi", R_inv, r)
            return jnp.einsum("gij,gj->gi", R_inv, w)

        def solve(rhs):
            a = block_solve(rhs)
            c = jnp.einsum("pij,pj->pi", L_inv, a[:P, :d] - a[P:, :d])
            s = jax.scipy.linalg.cho_solve(factor, c.reshape(-1) / scale) / scale
            t = jnp.einsum("pij,pj->pi", L, s.reshape(P, d))
            Gt = (gram @ t.reshape(-1)).reshape(P, d)
            correction = jnp.concatenate([Gt, -Gt], axis=0)
            correction = jnp.pad(correction, ((0, 0), (0, 1)))
            return a - block_solve(correction)

        return group_rows, solve

    def _woodbury_solve(self, problem, s_cone, z_cone, W_inv, lcurv, gap=None):
        """Newton's matrix solved through the n x n Woodbury core; returns the group
        rows of the scaling and the solve, for right-hand sides of shape
        (2P, d + 1)."""
        X = problem.X
        d = X.shape[1]
        dtype = X.dtype
        P = problem.num_patterns
        group_rows, R_inv = self._newton_blocks(problem, s_cone, z_cone, W_inv, gap)

        def block_solve(r):  # B^{-1} r, r of shape (2P, d + 1, k)
            w = jnp.einsum("gji,gjk->gik", R_inv, r)
            return jnp.einsum("gij,gjk->gik", R_inv, w)

        core, root_w = self._woodbury_core(problem, R_inv, lcurv)
        core_factor = jax.scipy.linalg.cho_factor(core, lower=True)

        def solve(rhs):
            a = block_solve(rhs[:, :, None])[..., 0]
            Fa = root_w * jnp.sum(problem.signed_patterns * (a[:, :d] @ X.T), axis=0)
            w = root_w * jax.scipy.linalg.cho_solve(core_factor, Fa)
            Ftw = (problem.signed_patterns * w[None, :]) @ X  # (2P, d)
            correction = jnp.concatenate([Ftw, jnp.zeros((2 * P, 1), dtype)], axis=1)
            return a - block_solve(correction[:, :, None])[..., 0]

        return group_rows, solve

    def _factor(self, problem, s_cone, z_cone, W_inv, lcurv, gram=None, gap=None):
        """Factor Newton's matrix F^T diag(lcurv) F + blkdiag(B_g) (at the side
        `_linear_solver` picks); returns its solve, refined against the matrix
        applied matrix-free, for right-hand sides of shape (2P, d + 1) in the order
        (u, tau). `gap`, the certified relative gap of the iterate, loosens the
        refinement's goal early in a solve (`None`: refine to rounding level)."""
        X = problem.X
        d = X.shape[1]
        dtype = X.dtype
        P = problem.num_patterns
        method = self._linear_solver(problem)
        if method == "dense":
            group_rows, solve = self._dense_solve(
                problem, s_cone, z_cone, W_inv, lcurv, gram, gap
            )
        else:
            group_rows, solve = self._woodbury_solve(
                problem, s_cone, z_cone, W_inv, lcurv, gap
            )
        refinement_steps = self.refinement_steps
        if refinement_steps is None:
            refinement_steps = 5 if method == "dense" else 2

        def apply(x):  # Newton's matrix times x, matrix-free, O(n d P)
            XxT = x[:, :d] @ X.T  # (2P, n)
            cone = ((z_cone / s_cone) * XxT) @ X
            group = jnp.einsum("gij,gjk,gk->gi", group_rows, group_rows, x)
            Fx = jnp.sum(problem.signed_patterns * XxT, axis=0)
            loss_part = (problem.signed_patterns * (lcurv * Fx)[None, :]) @ X
            return group + jnp.concatenate(
                [cone + loss_part, jnp.zeros((2 * P, 1), dtype)], axis=1
            )

        # refinement stops early once the residual is at rounding level: early in
        # a solve the factored solve is accurate already, and at large P d every
        # extra solve reads the whole factor
        tol = REFINEMENT_RTOL * jnp.finfo(dtype).eps
        if gap is not None:
            # an inexact Newton direction (Dembo, Eisenstat & Steihaug 1982): while
            # the certified gap is large the factored solve is accurate enough, and
            # refinement starts as the gap closes. nan (no bound yet) -> loosest
            loose = jnp.minimum(REFINEMENT_GAP_FRACTION * gap, REFINEMENT_LOOSEST)
            loose = jnp.where(jnp.isnan(loose), REFINEMENT_LOOSEST, loose)
            tol = jnp.maximum(tol, loose)

        def refined_solve(rhs):
            # a loop, not unrolled: the solve is compiled twice, not once a step
            goal = tol * jnp.linalg.norm(rhs)

            def cond(carry):
                _, r, i = carry
                return (i < refinement_steps) & (jnp.linalg.norm(r) > goal)

            def body(carry):
                x, r, i = carry
                x = x + solve(r)
                return x, rhs - apply(x), i + 1

            x = solve(rhs)
            x, _, _ = jax.lax.while_loop(cond, body, (x, rhs - apply(x), 0))
            return x

        return refined_solve

    def step(self, problem, y, args, options, state: _InteriorPointState):
        X = problem.X
        d = X.shape[1]
        u, tau, z_cone, z_group = state.u, state.tau, state.z_cone, state.z_group
        XuT = u @ X.T
        s_cone = problem.cone_signs * XuT
        s_group = _group_point(u, tau)
        yhat = jnp.sum(problem.signed_patterns * XuT, axis=0)
        lgrad, lcurv = _loss_derivatives(problem.loss, yhat, problem.y)
        W, W_inv = _soc.nesterov_todd(s_group, z_group)
        lam_group = jnp.einsum("gij,gj->gi", W, z_group)
        degree = self._degree(problem)
        mu = (jnp.sum(s_cone * z_cone) + jnp.sum(s_group * z_group)) / degree
        # dual residual: gradient of the Lagrangian in (u, tau)
        res_u = problem.signed_patterns * lgrad[None, :] - problem.cone_signs * z_cone
        res_u = res_u @ X - z_group[:, 1:]
        res_tau = problem.beta - z_group[:, 0]
        gap = (state.objective - state.lower_bound) / jnp.abs(state.objective)
        solve = self._factor(problem, s_cone, z_cone, W_inv, lcurv, state.gram, gap)
        W_inv2 = jnp.einsum("gij,gjk->gik", W_inv, W_inv)

        def cone_parts(du, target_cone):
            # the orthant's ds and dz, recomputed from du where needed instead of
            # carried: each is a (2P, n) array, the largest of a step at large n
            ds_cone = problem.cone_signs * (du @ X.T)
            return ds_cone, (target_cone - z_cone * ds_cone) / s_cone

        def expand(delta, target_cone):
            du, dtau, ds_group, dz_group = delta
            ds_cone, dz_cone = cone_parts(du, target_cone)
            return du, dtau, ds_cone, ds_group, dz_cone, dz_group

        def direction(target_cone, target_group):
            # lam o (W^-T ds + W dz) = target, ds = G~ dx, H dx = -res + G~^T W^-1 r;
            # returns (du, dtau, ds_group, dz_group), the orthant's by `cone_parts`
            r_group = _soc.divide(lam_group, target_group)
            # W^-1 (lam^-1 o target) for the orthant is target / s (W = sqrt(s / z))
            wr_cone = target_cone / s_cone
            wr_group = jnp.einsum("gij,gj->gi", W_inv, r_group)
            rhs_u = -res_u + (problem.cone_signs * wr_cone) @ X + wr_group[:, 1:]
            rhs_tau = -res_tau + wr_group[:, 0]
            dx = solve(jnp.concatenate([rhs_u, rhs_tau[:, None]], axis=1))
            du, dtau = dx[:, :d], dx[:, d]
            ds_group = _group_point(du, dtau)
            dz_group = wr_group - jnp.einsum("gij,gj->gi", W_inv2, ds_group)
            return du, dtau, ds_group, dz_group

        def longest(ds_cone, ds_group, dz_cone, dz_group):
            return jnp.minimum(
                jnp.minimum(
                    _soc.orthant_max_step(s_cone, ds_cone),
                    _soc.max_step(s_group, ds_group),
                ),
                jnp.minimum(
                    _soc.orthant_max_step(z_cone, dz_cone),
                    _soc.max_step(z_group, dz_group),
                ),
            )

        affine_cone = -(s_cone * z_cone)
        affine_group = -_soc.product(lam_group, lam_group)

        def targets(k, delta, target_cone, target_group, a, sigma):
            # k = 0: the predictor (affine scaling). k = 1: Mehrotra's corrector,
            # sigma = (mu_affine / mu)^3 from the predictor `delta`, with the
            # second-order term (W^-T ds_aff) o (W dz_aff). k >= 2: centrality
            # correctors (Gondzio 1996), pushing the products s_k z_k of the cone
            # constraints at twice the step into [0.1, 10] sigma mu.
            delta = expand(delta, target_cone)
            a_aff = jnp.minimum(1.0, longest(*delta[2:]))
            gap_aff = jnp.sum((s_cone + a_aff * delta[2]) * (z_cone + a_aff * delta[4]))
            gap_aff = gap_aff + jnp.sum(
                (s_group + a_aff * delta[3]) * (z_group + a_aff * delta[5])
            )
            sigma_aff = jnp.clip(gap_aff / (mu * degree), 0.0, 1.0) ** 3
            scaled_ds = jnp.einsum("gij,gj->gi", W_inv, delta[3])
            scaled_dz = jnp.einsum("gij,gj->gi", W, delta[5])
            corrector_cone = sigma_aff * mu + affine_cone - delta[2] * delta[4]
            corrector_group = (
                sigma_aff * mu * _soc.identity_like(lam_group)
                - _soc.product(lam_group, lam_group)
                - _soc.product(scaled_ds, scaled_dz)
            )
            centre = sigma * mu
            trial = jnp.minimum(1.0, 2 * a)
            products = (s_cone + trial * delta[2]) * (z_cone + trial * delta[4])
            push = jnp.clip(products, 0.1 * centre, 10 * centre) - products
            push = jnp.maximum(push, -10 * centre)
            cone = jnp.where(
                k == 0,
                affine_cone,
                jnp.where(k == 1, corrector_cone, target_cone + push),
            )
            group = jnp.where(
                k == 0, affine_group, jnp.where(k == 1, corrector_group, target_group)
            )
            return cone, group, jnp.where(k == 1, sigma_aff, sigma)

        def next_direction(k, carry):
            # one loop for every direction of the step, so that `direction` (and
            # Newton's solve in it) is compiled once
            delta, target_cone, target_group, a, sigma = carry
            cone, group, sigma = targets(k, *carry)
            new = direction(cone, group)
            a_new = self.step_fraction * longest(*expand(new, cone)[2:])
            a_new = jnp.minimum(1.0, a_new)
            # a corrector is kept if it lengthens the step by at least 1 %
            keep = (k < 2) | (a_new >= 1.01 * a)
            delta = jax.tree.map(lambda c, o: jnp.where(keep, c, o), new, delta)
            target_cone = jnp.where(keep, cone, target_cone)
            target_group = jnp.where(keep, group, target_group)
            return delta, target_cone, target_group, jnp.where(keep, a_new, a), sigma

        zero = jnp.zeros((), X.dtype)
        start = (
            (
                jnp.zeros_like(u),
                jnp.zeros_like(tau),
                jnp.zeros_like(s_group),
                jnp.zeros_like(z_group),
            ),
            jnp.zeros_like(z_cone),
            jnp.zeros_like(z_group),
            zero,
            zero,
        )
        delta, target_cone, _, a, sigma = jax.lax.fori_loop(
            0, 2 + self.centrality_correctors, next_direction, start
        )
        du, dtau, _, _, dz_cone, dz_group = expand(delta, target_cone)
        finite = (
            jnp.isfinite(a) & jnp.all(jnp.isfinite(du)) & jnp.all(jnp.isfinite(dz_cone))
        )
        a = jnp.where(finite, a, 0).astype(X.dtype)
        u = jnp.where(finite, u + a * du, u)
        tau = jnp.where(finite, tau + a * dtau, tau)
        z_cone = jnp.where(finite, z_cone + a * dz_cone, z_cone)
        z_group = jnp.where(finite, z_group + a * dz_group, z_group)
        objective, bound, _ = self._certificate(problem, u, z_cone)
        # every bound is valid: keep the best
        bound = jnp.maximum(bound, state.lower_bound)
        rtol = self.rtol
        if rtol is None:
            rtol = 1e-6 if jnp.dtype(X.dtype).itemsize >= 8 else 1e-3
        # an overflowed objective or bound certifies nothing (inf <= inf)
        certified = (
            jnp.isfinite(objective)
            & jnp.isfinite(bound)
            & (objective - bound <= self.atol + rtol * jnp.abs(objective))
        )
        verbose_printer(self.verbose)(
            step=("step", state.num_steps + 1),
            mu=("mu", mu),
            sigma=("sigma", sigma),
            length=("step length", a),
            gap=("certified gap", objective - bound),
        )
        new_state = _InteriorPointState(
            u=u,
            tau=tau,
            z_cone=z_cone,
            z_group=z_group,
            mu=mu,
            objective=objective,
            lower_bound=bound,
            certified=certified,
            margin=state.margin,
            stalled=(~finite | (a == 0)) & ~certified,
            num_steps=state.num_steps + 1,
            data_result=state.data_result,
            gram=state.gram,
        )
        return self._variables(problem, u, z_cone, z_group), new_state, None

    def _certificate(self, problem, u, z_cone):
        zeros = jnp.zeros((problem.X.shape[0],), problem.X.dtype)
        return dual_bound(problem, u, -z_cone, zeros)

    def _variables(self, problem, u, z_cone, z_group):
        XuT = u @ problem.X.T
        yhat = jnp.sum(problem.signed_patterns * XuT, axis=0)
        lgrad, _ = _loss_derivatives(problem.loss, yhat, problem.y)
        empty = jnp.zeros((0, problem.X.shape[1]), u.dtype)
        return ConvexReLUVariables(
            u=u,
            v=u,
            s=problem.cone_signs * XuT,
            p=yhat,
            t=empty,
            dual_v=-z_group[:, 1:],
            dual_s=-z_cone,
            dual_p=lgrad,
            dual_t=empty,
        )

    def terminate(
        self, problem, y, args, options, state: _InteriorPointState
    ) -> tuple[Bool[Array, ""], RESULTS]:
        # no interior point: a margin at rounding level (or nan) is no margin
        scale = jnp.max(jnp.linalg.norm(problem.X, axis=1))
        bad_start = ~(state.margin > 100 * jnp.finfo(problem.X.dtype).eps * scale)
        result = RESULTS.where(
            bad_start,
            RESULTS.empty_cone_interior,
            RESULTS.where(state.stalled, RESULTS.newton_stalled, RESULTS.successful),
        )
        bad_data = state.data_result != RESULTS.successful
        result = RESULTS.where(bad_data, state.data_result, result)
        return state.certified | bad_start | state.stalled | bad_data, result

    def optimality(self, problem, y, args, options):
        """The fixed-point residual of one `ADMM` step at `y` (as for `ADMM`): the
        iterate carries consistent multipliers (`dual_s` the cone multipliers,
        `dual_v` the group subgradients, `dual_p` the loss gradient), so the
        implicit function theorem through ADMM's fixed point differentiates the
        solution."""
        return ADMM().optimality(problem, y, args, options)

    def postprocess(self, problem, y, aux, args, options, state, result):
        stats = {
            "objective": state.objective,
            "lower_bound": state.lower_bound,
            "duality_gap": state.objective - state.lower_bound,
            "cone_violation": problem.cone_violation(state.u),
            "mu": state.mu,
            "margin": state.margin,
        }
        return y, aux, stats
