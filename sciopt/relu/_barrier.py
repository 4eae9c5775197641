"""A primal barrier (interior-point) method for `ConvexReLUProblem`.

The program is written in epigraph form, one second-order cone per group:

    min loss(F u, y) + beta sum_g tau_g   s.t.  ||u_g|| <= tau_g,  G_g u_g >= 0,

and the barrier problems min t f - sum log(G u) - sum_g log(tau_g^2 - ||u_g||^2) are
solved by damped Newton steps for an increasing t (Boyd & Vandenberghe 2004, 11.3).
The Newton matrix is a block diagonal part (one (d+1) x (d+1) block per group: the
cone and group barriers) plus t F^T diag(loss'') F, the loss term, of rank n; it is
solved through the n x n Woodbury core, so a Newton step costs O(n^2 P d + n^3).
"""

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool

from .._misc import verbose_printer
from .._solution import RESULTS
from .._solver import AbstractSolver
from ._admm import ADMM
from ._gap import dual_bound
from ._losses import loss_value
from ._problem import ADMMVariables, ConvexReLUProblem


def _loss_derivatives(loss: str, yhat, y):
    """The gradient and the (diagonal) curvature of the summed loss at `yhat`."""
    grad_fn = jax.grad(lambda z: loss_value(loss, z, y))
    grad, curvature = jax.jvp(grad_fn, (yhat,), (jnp.ones_like(yhat),))
    return grad, curvature


def _cho_solve(chol, rhs):
    """Batched solve with lower Cholesky factors (..., k, k) and rhs (..., k, m)."""
    z = jax.lax.linalg.triangular_solve(chol, rhs, left_side=True, lower=True)
    return jax.lax.linalg.triangular_solve(
        chol, z, left_side=True, lower=True, transpose_a=True
    )


def _max_step(s, ds, tau, dtau, unorm2, udot, dnorm2):
    """The largest step in (0, inf] that keeps s + a ds > 0 and
    (tau + a dtau)^2 > ||u + a du||^2 with tau + a dtau > 0."""
    inf = jnp.array(jnp.inf, s.dtype)
    lin = jnp.min(jnp.where(ds < 0, -s / jnp.where(ds < 0, ds, -1), inf))
    # (tau + a dtau)^2 - ||u + a du||^2 = qa a^2 + qb a + qc, qc > 0
    qa = dtau**2 - dnorm2
    qb = 2 * (tau * dtau - udot)
    qc = tau**2 - unorm2
    disc = qb**2 - 4 * qa * qc
    sqrt_disc = jnp.sqrt(jnp.maximum(disc, 0))
    # the smallest positive root of the quadratic (stable form), if any
    q = -0.5 * (qb + jnp.where(qb >= 0, 1, -1) * sqrt_disc)
    r1 = jnp.where(qa != 0, q / jnp.where(qa != 0, qa, 1), inf)
    r2 = jnp.where(q != 0, qc / jnp.where(q != 0, q, 1), inf)
    r1 = jnp.where(r1 > 0, r1, inf)
    r2 = jnp.where(r2 > 0, r2, inf)
    soc = jnp.where(disc >= 0, jnp.minimum(r1, r2), inf)
    cone_tau = jnp.where(dtau < 0, -tau / jnp.where(dtau < 0, dtau, -1), inf)
    return jnp.minimum(lin, jnp.min(jnp.minimum(soc, cone_tau)))


def _interior_directions(problem: ConvexReLUProblem, steps: int):
    """A strictly interior point h_i of every cone {h: (2 D_i - I) X h >= 0}.

    Maximises the margin sigma s.t. (2 D_i - I) X h >= sigma, ||h|| <= 1 by a barrier
    method from (h, sigma) = (0, -1), all patterns at once. Returns the (P, d)
    directions and their margins (a pattern whose cone has an empty interior keeps a
    margin <= 0)."""
    X = problem.X
    n, d = X.shape
    signs = (2 * problem.patterns.T - 1).astype(X.dtype)  # (P, n)
    P = signs.shape[0]
    dtype = X.dtype

    def barrier(h, sigma, t):
        r = signs * (h @ X.T) - sigma[:, None]
        b = 1 - jnp.sum(h**2, axis=1)
        ok = jnp.all(r > 0, axis=1) & (b > 0)
        value = -t * sigma - jnp.sum(jnp.log(jnp.where(r > 0, r, 1)), axis=1)
        value = value - jnp.log(jnp.where(b > 0, b, 1))
        return jnp.where(ok, value, jnp.inf)

    def newton(carry):
        h, sigma, t, k = carry
        r = signs * (h @ X.T) - sigma[:, None]
        b = 1 - jnp.sum(h**2, axis=1)
        w = 1 / r**2
        g_h = -(signs / r) @ X + 2 * h / b[:, None]
        g_s = -t + jnp.sum(1 / r, axis=1)
        H_hh = jnp.einsum("pn,nd,ne->pde", w, X, X)
        H_hh = H_hh + (2 / b)[:, None, None] * jnp.eye(d, dtype=dtype)[None]
        H_hh = H_hh + (4 / b**2)[:, None, None] * h[:, :, None] * h[:, None, :]
        H_hs = -(signs * w) @ X  # (P, d)
        H_ss = jnp.sum(w, axis=1)
        H = jnp.concatenate(
            [
                jnp.concatenate([H_hh, H_hs[:, :, None]], axis=2),
                jnp.concatenate([H_hs, H_ss[:, None]], axis=1)[:, None, :],
            ],
            axis=1,
        )
        g = jnp.concatenate([g_h, g_s[:, None]], axis=1)
        step = -jnp.linalg.solve(H, g[:, :, None])[..., 0]
        dh, ds = step[:, :d], step[:, d]
        slope = jnp.sum(g * step, axis=1)
        f0 = barrier(h, sigma, t)

        def cond(c):
            a, i = c
            trial = barrier(h + a[:, None] * dh, sigma + a * ds, t)
            return jnp.any(trial > f0 + 0.25 * a * slope) & (i < 60)

        def body(c):
            a, i = c
            trial = barrier(h + a[:, None] * dh, sigma + a * ds, t)
            return jnp.where(trial > f0 + 0.25 * a * slope, a / 2, a), i + 1

        a, _ = jax.lax.while_loop(cond, body, (jnp.ones(P, dtype), 0))
        trial = barrier(h + a[:, None] * dh, sigma + a * ds, t)
        a = jnp.where(trial <= f0, a, 0)
        # raise t once a pattern's barrier problem is centred (decrement^2/2 small)
        t = jnp.where(-0.5 * slope <= 1e-2, 10 * t, t)
        return h + a[:, None] * dh, sigma + a * ds, t, k + 1

    def not_done(carry):
        _, sigma, t, k = carry
        # done: a positive margin within a factor 2 of the largest (gap <= m / t)
        done = (sigma > 0) & ((n + 1) / t <= sigma)
        return (k < steps) & ~jnp.all(done)

    h0 = jnp.zeros((P, d), dtype)
    sigma0 = -jnp.ones(P, dtype)
    t0 = jnp.full(P, n + 1, dtype)
    h, sigma, _, _ = jax.lax.while_loop(not_done, newton, (h0, sigma0, t0, 0))
    return jax.lax.stop_gradient(h), jax.lax.stop_gradient(sigma)


def _soc_hessian_root(u, tau):
    """Symmetric square roots Q of the Hessians of -log(tau^2 - ||u||^2) / 2 at every
    group, in the coordinates (u, tau): Q is the quadratic representation of
    x^{-1/2} for x = (tau, u) in the second-order cone's Jordan algebra, so
    Q^2 = Q_{x^{-1}} = 2 x^{-1} x^{-T} - det(x^{-1}) R with R = diag(1, -I)."""
    norm = jnp.linalg.norm(u, axis=1)
    safe = jnp.where(norm > 0, norm, 1)
    direction = u / safe[:, None]
    a = 1 / jnp.sqrt(tau + norm)
    b = 1 / jnp.sqrt(tau - norm)
    v0 = 0.5 * (a + b)
    v1 = (0.5 * (a - b))[:, None] * direction  # (2P, d)
    det = a * b
    v = jnp.concatenate([v1, v0[:, None]], axis=1)  # ordered (u, tau)
    sign = jnp.concatenate([-jnp.ones_like(v1), jnp.ones_like(v0[:, None])], axis=1)
    Q = 2 * v[:, :, None] * v[:, None, :]
    return Q - det[:, None, None] * jax.vmap(jnp.diag)(sign)


class _InteriorPointState(eqx.Module):
    u: Array
    tau: Array
    t: Array
    decrement: Array
    objective: Array
    lower_bound: Array
    certified: Array
    num_centrings: Array
    margin: Array
    stalled: Array


class InteriorPoint(AbstractSolver):
    """An interior-point (barrier) method for `sciopt.relu.ConvexReLUProblem` with a
    smooth loss (`"squared"` or `"bce"`) and cone constraints.

    Solves the epigraph form

        min loss(F u, y) + beta sum_g tau_g  s.t.  ||u_g|| <= tau_g,  G_g u_g >= 0

    by the barrier method: damped Newton steps (backtracking, a fraction 0.99 of the
    way to the boundary) on t f - sum log(G u) - sum_g log(tau_g^2 - ||u_g||^2),
    multiplying t by `mu` each time the Newton decrement lambda^2 / 2 falls below
    `centring_tol` (Boyd & Vandenberghe 2004, 11.3). Newton's matrix is block
    diagonal (one (d+1) x (d+1) block per group: the cone and group barriers) plus
    t F^T diag(loss'') F of rank n; it is solved through the n x n Woodbury core, the
    blocks factored by QR of their stacked square roots (forming the blocks squares
    their condition number, O(t^2) near the solution, and breaks a Cholesky
    factorization in float64 from t ~ 1e9). A step costs O(n^2 P d + n^3) and a
    solve takes 100-250 steps, against 10^4-10^5 steps of O(n d P + n^2) for `ADMM`
    at the same accuracy.

    The start is strictly feasible: v_i = w_i = c h_i with h_i a strictly interior
    direction of pattern i's cone (a barrier method on the margin, all patterns at
    once), so the start predicts 0. A pattern whose cone has an empty interior stops
    the solve with `RESULTS.empty_cone_interior`; use `ADMM` then.

    Every step certifies the duality gap by Lagrangian weak duality (the bound of
    `ADMM`'s `stats["lower_bound"]`) with the barrier's cone multipliers 1 / (t G u);
    the solve stops when `objective - lower_bound <= atol + rtol |objective|`. The
    iterate is strictly feasible (cone violation 0). This is a float64 method: in
    float32 the barrier problems cannot be solved beyond a relative gap of about
    1e-2 and the solve stops with `RESULTS.newton_stalled`.

    **Arguments:**

    - `rtol`, `atol`: the certified duality gap to stop at.
    - `mu`: the factor by which t grows after each centring (default 20).
    - `centring_tol`: the Newton decrement lambda^2 / 2 below which a barrier problem
      counts as solved (or the rounding level of the barrier, when larger).
    - `ridge`: an optional ridge `ridge * t` added to the block diagonal part (a
      damped Newton step; default 0).
    - `phase_one_steps`: the most Newton steps of the search for interior directions.
    - `verbose`: print t, the Newton decrement, the step and the certified gap every
      step.

    `Solution.value` is an `ADMMVariables` (as for `ADMM`): `value.v` is the convex
    solution; `s` the cone values G u, `dual_s = -1 / (t s)` the cone multipliers,
    `p` the predictions, `dual_p` the loss gradient and `dual_v` the group
    multipliers. `Solution.stats` holds `objective`, `lower_bound` (the best
    certified bound seen), `duality_gap`, `cone_violation`, `t`, `centrings` and
    `margin` (the smallest interior margin of the start).

    ??? cite "References"

        ```bibtex
        @book{boyd2004convex,
            title={Convex Optimization},
            author={Boyd, Stephen and Vandenberghe, Lieven},
            publisher={Cambridge University Press},
            year={2004}
        }

        @book{nocedal2006numerical,
            title={Numerical Optimization},
            author={Nocedal, Jorge and Wright, Stephen J.},
            edition={2},
            publisher={Springer},
            year={2006}
        }
        ```
    """

    rtol: float = 1e-6
    atol: float = 1e-10
    mu: float = 20.0
    centring_tol: float = 1e-4
    ridge: float = 0.0
    phase_one_steps: int = eqx.field(static=True, default=200)
    verbose: bool | Callable[..., None] = eqx.field(static=True, default=False)

    def __check_init__(self):
        if not isinstance(self.rtol, jax.core.Tracer) and not self.rtol > 0:
            raise ValueError(f"`rtol` must be positive, got {self.rtol!r}.")
        if not isinstance(self.mu, jax.core.Tracer) and not self.mu > 1:
            raise ValueError(f"`mu` must be > 1, got {self.mu!r}.")
        if not isinstance(self.centring_tol, jax.core.Tracer) and not (
            self.centring_tol > 0
        ):
            raise ValueError(
                f"`centring_tol` must be positive, got {self.centring_tol!r}."
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
        if problem.gated:
            raise ValueError(
                "`sciopt.relu.InteriorPoint` solves the program with cone "
                "constraints (gated=False); for gated ReLU use `sciopt.relu.ADMM`, "
                "which needs no cone splitting there."
            )

    def init(self, problem, y, args, options: dict[str, Any]):
        self._check_problem(problem)
        X = problem.X
        dtype = X.dtype
        P = problem.num_patterns
        h, margins = _interior_directions(problem, self.phase_one_steps)
        norms = jnp.linalg.norm(h, axis=1, keepdims=True)
        h = h / jnp.where(norms > 0, norms, 1)
        # small groups: the start predicts 0 (v_i = w_i) and its norms stay O(1)
        scale = 1.0 / jnp.sqrt(jnp.asarray(2 * P, dtype))
        u = scale * jnp.concatenate([h, h], axis=0)
        tau = jnp.linalg.norm(u, axis=1) + scale
        f0 = self._objective(problem, u, tau)
        t = self._num_barrier_terms(problem) / jnp.maximum(f0, jnp.finfo(dtype).tiny)
        inf = jnp.array(jnp.inf, dtype)
        return _InteriorPointState(
            u=u,
            tau=tau,
            t=t,
            decrement=inf,
            objective=f0,
            lower_bound=-inf,
            certified=jnp.array(False),
            num_centrings=jnp.zeros((), jnp.int32),
            margin=jnp.min(margins),
            stalled=jnp.array(False),
        )

    def _num_barrier_terms(self, problem):
        groups = 2 * problem.num_patterns
        return groups * problem.X.shape[0] + 2 * groups

    def _objective(self, problem, u, tau):
        yhat = problem.predict_groups(u)
        return loss_value(problem.loss, yhat, problem.y) + problem.beta * jnp.sum(tau)

    def _direction(self, problem, u, tau, t):
        """The Newton direction (du, dtau) of the barrier problem with weight t at
        (u, tau), the squared Newton decrement and the cone values s = G u."""
        X = problem.X
        n, d = X.shape
        dtype = X.dtype
        P = problem.num_patterns
        XuT = u @ X.T  # (2P, n)
        s = problem.cone_signs * XuT
        yhat = jnp.sum(problem.signed_patterns * XuT, axis=0)
        lgrad, lcurv = _loss_derivatives(problem.loss, yhat, problem.y)
        q = tau**2 - jnp.sum(u**2, axis=1)
        weighted = t * problem.signed_patterns * lgrad[None, :] - problem.cone_signs / s
        grad_u = weighted @ X + 2 * u / q[:, None]
        grad_tau = t * problem.beta - 2 * tau / q
        # the block diagonal part B, one (d + 1) x (d + 1) block per group, as R^T R
        # from a QR factorization of its square-root factors stacked: the cone
        # term diag(1 / s) [X 0] and the group-cone term sqrt(2) Q (Q^2 the Hessian
        # of -log(tau^2 - ||u||^2), up to the factor 2). B's curvature ranges from
        # O(1) to O(t^2) near the solution, so forming B and factoring it by Cholesky
        # fails in float64 from t ~ 1e9; the QR works on the square roots.
        eye = jnp.eye(d, dtype=dtype)
        cone_rows = jnp.concatenate(
            [
                (1 / s)[:, :, None] * X[None, :, :],
                jnp.zeros((2 * P, n, 1), dtype),
            ],
            axis=2,
        )  # (2P, n, d + 1)
        group_rows = jnp.sqrt(2.0).astype(dtype) * _soc_hessian_root(u, tau)
        stacked = jnp.concatenate([cone_rows, group_rows], axis=1)
        if self.ridge:
            ridge_rows = jnp.sqrt(self.ridge * t) * jnp.eye(d + 1, dtype=dtype)
            stacked = jnp.concatenate(
                [stacked, jnp.broadcast_to(ridge_rows, (2 * P, d + 1, d + 1))], axis=1
            )
        R = jnp.linalg.qr(stacked, mode="r")  # (2P, d + 1, d + 1), B = R^T R

        def block_solve(r):  # B^{-1} r for r of shape (2P, d + 1, k)
            w = jax.lax.linalg.triangular_solve(
                R, r, left_side=True, lower=False, transpose_a=True
            )
            return jax.lax.linalg.triangular_solve(R, w, left_side=True, lower=False)

        rhs = -jnp.concatenate([grad_u, grad_tau[:, None]], axis=1)
        a = block_solve(rhs[:, :, None])[..., 0]
        e_u = jnp.concatenate([eye, jnp.zeros((1, d), dtype)], axis=0)
        E = block_solve(jnp.broadcast_to(e_u, (2 * P, d + 1, d)))[:, :d, :]
        E = E[:P] + E[P:]  # (P, d, d)
        # core = I + W^1/2 (sum_i D_i X E_i X^T D_i) W^1/2 with W = t loss'', formed
        # as A C^T with the (n, P d) matrices A = [D_i X], C = [D_i X E_i]
        root_w = jnp.sqrt(t * jnp.maximum(lcurv, 0))
        DX = problem.patterns[:, :, None] * X[:, None, :]  # (n, P, d)
        A = (root_w[:, None, None] * DX).reshape(n, P * d)
        C = jnp.einsum("npd,pde->npe", DX, E).reshape(n, P * d) * root_w[:, None]
        core = A @ C.T
        core = jnp.eye(n, dtype=dtype) + 0.5 * (core + core.T)
        core_chol = jnp.linalg.cholesky(core)
        Fa = root_w * jnp.sum(problem.signed_patterns * (a[:, :d] @ X.T), axis=0)
        w = root_w * _cho_solve(core_chol, Fa[:, None])[:, 0]
        Ftw = (problem.signed_patterns * w[None, :]) @ X  # (2P, d)
        correction = jnp.concatenate([Ftw, jnp.zeros((2 * P, 1), dtype)], axis=1)
        step = a - block_solve(correction[:, :, None])[..., 0]
        decrement = jnp.sum(rhs * step)  # lambda^2 = -gradient . step
        return step[:, :d], step[:, d], decrement, s, yhat

    def _barrier_value(self, problem, t, s, yhat, u, tau):
        f = loss_value(problem.loss, yhat, problem.y) + problem.beta * jnp.sum(tau)
        q = tau**2 - jnp.sum(u**2, axis=1)
        ok = jnp.all(q > 0) & jnp.all(tau > 0) & jnp.all(s > 0)
        value = t * f - jnp.sum(jnp.log(jnp.where(q > 0, q, 1)))
        value = value - jnp.sum(jnp.log(jnp.where(s > 0, s, 1)))
        return jnp.where(ok, value, jnp.inf)

    def step(self, problem, y, args, options, state: _InteriorPointState):
        X = problem.X
        u, tau, t = state.u, state.tau, state.t
        du, dtau, decrement, s, yhat = self._direction(problem, u, tau, t)
        dXuT = du @ X.T
        ds = problem.cone_signs * dXuT
        dyhat = jnp.sum(problem.signed_patterns * dXuT, axis=0)
        a_max = _max_step(
            s,
            ds,
            tau,
            dtau,
            jnp.sum(u**2, axis=1),
            jnp.sum(u * du, axis=1),
            jnp.sum(du**2, axis=1),
        )
        a0 = jnp.minimum(1.0, 0.99 * a_max).astype(X.dtype)
        phi0 = self._barrier_value(problem, t, s, yhat, u, tau)
        # the rounding level of phi (~ eps (t |f| + #terms))
        eps = jnp.finfo(X.dtype).eps
        resolvable = 10 * eps * (t * jnp.abs(state.objective) + s.size + 2 * tau.size)

        def trial(a):
            return self._barrier_value(
                problem, t, s + a * ds, yhat + a * dyhat, u + a * du, tau + a * dtau
            )

        def backtrack(c):  # Armijo with c = 1/4
            a, i = c
            return (trial(a) > phi0 - 0.25 * a * decrement + resolvable) & (i < 50)

        a, _ = jax.lax.while_loop(backtrack, lambda c: (c[0] / 2, c[1] + 1), (a0, 0))
        finite = jnp.isfinite(decrement) & jnp.all(jnp.isfinite(du))
        accepted = finite & (trial(a) <= phi0 + resolvable)
        u = jnp.where(accepted, u + a * du, u)
        tau = jnp.where(accepted, tau + a * dtau, tau)
        # centred: the decrement (an estimate of phi - min phi) is below the
        # tolerance or below what rounding in phi can resolve
        centred = 0.5 * decrement <= jnp.maximum(self.centring_tol, resolvable)
        # the certificate, with the barrier's cone multipliers 1 / (t s)
        objective, bound, _ = self._certificate(problem, u, t)
        # every bound is valid: keep the best (right after t grows it is loose)
        bound = jnp.maximum(bound, state.lower_bound)
        certified = objective - bound <= self.atol + self.rtol * jnp.abs(objective)
        new_t = jnp.where(centred & ~certified, self.mu * t, t)
        verbose_printer(self.verbose)(
            t=("t", t),
            decrement=("Newton decrement", decrement),
            step=("step", a),
            gap=("certified gap", objective - bound),
        )
        new_state = _InteriorPointState(
            u=u,
            tau=tau,
            t=new_t,
            decrement=decrement,
            objective=objective,
            lower_bound=bound,
            certified=certified,
            num_centrings=state.num_centrings + centred.astype(jnp.int32),
            margin=state.margin,
            stalled=~accepted & ~certified,
        )
        return self._variables(problem, u, tau, t), new_state, None

    def _certificate(self, problem, u, t):
        s = problem.cone_signs * (u @ problem.X.T)
        zeros = jnp.zeros((problem.X.shape[0],), problem.X.dtype)
        return dual_bound(problem, u, -1 / (t * s), zeros)

    def _variables(self, problem, u, tau, t):
        XuT = u @ problem.X.T
        s = problem.cone_signs * XuT
        yhat = jnp.sum(problem.signed_patterns * XuT, axis=0)
        lgrad, _ = _loss_derivatives(problem.loss, yhat, problem.y)
        q = tau**2 - jnp.sum(u**2, axis=1)
        empty = jnp.zeros((0, problem.X.shape[1]), u.dtype)
        return ADMMVariables(
            u=u,
            v=u,
            s=s,
            p=yhat,
            t=empty,
            dual_v=2 * u / (t * q)[:, None],
            dual_s=-1 / (t * s),
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
        return state.certified | bad_start | state.stalled, result

    def optimality(self, problem, y, args, options):
        """The fixed-point residual of one `ADMM` step at `y` (as for `ADMM`): the
        barrier's iterate carries consistent multipliers (`dual_s = -1 / (t G u)`,
        `dual_v` the group subgradient, `dual_p` the loss gradient), so the implicit
        function theorem through ADMM's fixed point differentiates the solution."""
        return ADMM().optimality(problem, y, args, options)

    def postprocess(self, problem, y, aux, args, options, state, result):
        stats = {
            "objective": state.objective,
            "lower_bound": state.lower_bound,
            "duality_gap": state.objective - state.lower_bound,
            "cone_violation": problem.cone_violation(state.u),
            "t": state.t,
            "centrings": state.num_centrings,
            "margin": state.margin,
        }
        return y, aux, stats
