"""`AdaSketchNewton`: adaptive inexact Newton on the exact augmented Lagrangian."""

from collections.abc import Callable
from typing import Literal

import equinox as eqx
import jax
import jax.lax as lax
import jax.numpy as jnp
import jax.random as jr
import lineax as lx
import numpy as np
from jaxtyping import Array, Float, Int

from .._misc import verbose_printer
from .._solution import RESULTS
from .._solver import AbstractSolver
from ._krylov import SchurComplementCG
from ._problem import EqualityConstrainedProblem
from ._sketch import _key_words, _random_normal, AbstractSketchSolver, RowSketch


class _AdaSketchState(eqx.Module):
    multipliers: Float[Array, " m"]
    grad_lagrangian: Float[Array, " n"]
    constraint: Float[Array, " m"]
    kkt_norm: Float[Array, ""]
    kkt_norm0: Float[Array, ""]
    objective0: Float[Array, ""]
    mu: Float[Array, ""]
    nu: Float[Array, ""]
    delta: Float[Array, ""]
    key: Array
    directions: Float[Array, "p nm"]
    num_steps: Int[Array, ""]
    result: RESULTS
    # The last step's diagnostics (read them per step with `step_stats`).
    sketch_steps: Int[Array, ""]
    step_size: Float[Array, ""]
    regularisation: Float[Array, ""]


def step_stats(y, state, aux) -> dict[str, Array]:
    """What `AdaSketchNewton` did in its last step, for `sciopt.SaveAt`:

    ```python
    sol = sciopt.solve(problem, solver, x0, saveat=sciopt.SaveAt(fn=step_stats))
    sol.history["kkt_residual"]  # entry 0 at x0, entry k after step k
    ```

    Keys: `kkt_residual` (`||grad L||` after the step), `mu`, `nu` (the penalties
    the step used), `sketch_steps` (inner solver steps of the step), `step_size`
    (the accepted step length) and `regularisation` (the Hessian shift). Entry 0
    (the start) has zero sketch steps, step size and shift.
    """
    del y, aux
    return {
        "kkt_residual": state.kkt_norm,
        "mu": state.mu,
        "nu": state.nu,
        "sketch_steps": state.sketch_steps,
        "step_size": state.step_size,
        "regularisation": state.regularisation,
    }


def _kkt_fn(problem, args):
    def lagrangian(x, lam):
        return problem.objective(x, args) + jnp.dot(lam, problem.constraints(x, args))

    grad_x = jax.grad(lagrangian)

    def kkt(x, lam):
        return grad_x(x, lam), problem.constraints(x, args)

    return lagrangian, kkt


# The sketches' key when `options` gives none: fixed, so a solve is reproducible.
_DEFAULT_SEED = 2023


class AdaSketchNewton(AbstractSolver):
    """Adaptive inexact Newton method on the exact augmented Lagrangian, with Newton
    systems solved by randomized iterative sketching (Hong, Na, Mahoney, Kolar, 2023).

    Solves `min f(x) s.t. c(x) = 0` (an `EqualityConstrainedProblem`). It moves the
    primal-dual pair `(x, lam)` (`x` is the iterate of `sciopt.solve`, `lam` lives in
    the solver state); each step

    1. forms the KKT matrix `K = [[B, G^T], [G, 0]]` (`G` the constraint Jacobian,
       `B` the Hessian of the Lagrangian, shifted when the reduced Hessian is not
       positive definite), matrix-free by Hessian-vector products or materialised
       for small problems;
    2. solves `K dz = -grad L` inexactly with `linear_solver` (by default randomized
       Kaczmarz, `RowSketch`, with the last `recycle` Newton directions as extra
       sketches) to the accuracy rule's tolerance;
    3. raises `mu` and lowers `nu` (resuming the sketch from its current iterate)
       until `dz` is a descent direction of the exact augmented Lagrangian
       `L_{mu,nu} = f + lam^T c + mu/2 ||c||^2 + nu/2 ||grad_x L||^2`;
    4. backtracks (Armijo) on `L_{mu,nu}` and updates `x` and `lam` together.

    Where the constraint Jacobian is rank deficient the KKT system is regularised
    (Levenberg-Marquardt), with a restoration step on `||c||^2` as fallback; a
    stationary point of `||c||^2` with `c != 0` stops with `RESULTS.infeasible`, an
    objective that falls without bound on the feasible set with `RESULTS.unbounded`
    (see the arguments `rank_tol`, `infeasibility_tol`, `unbounded_threshold`).

    `sol.value` is `x`; `sol.aux` holds the multipliers `lam`. `sol.stats` holds
    `kkt_residual`, `multipliers`, `mu`, `nu`. Per-step histories come from the
    driver: `saveat=sciopt.SaveAt(fn=sciopt.nlp.step_stats)` records the KKT
    residual, penalties, inner (sketch or CG) steps, step size and Hessian shift of
    every step in `sol.history`.

    Accepted `options`: `key` (a `jax.random` key for the sketches, default a fixed
    key) and `multipliers` (a starting `lam`, default zeros).

    !!! Example

        ```python
        sol = sciopt.solve(problem, sciopt.nlp.AdaSketchNewton(), x0, args=args)
        x, lam = sol.value, sol.aux
        ```

    ??? cite "References"

        ```bibtex
        @inproceedings{hong2023constrained,
            title={Constrained Optimization via Exact Augmented {L}agrangian and
                   Randomized Iterative Sketching},
            author={Hong, Ilgee and Na, Sen and Mahoney, Michael W. and
                    Kolar, Mladen},
            booktitle={Proceedings of the 40th International Conference on
                       Machine Learning},
            series={PMLR},
            volume={202},
            pages={13174--13198},
            year={2023}
        }

        @article{byrd2010infeasibility,
            title={Infeasibility Detection and {SQP} Methods for Nonlinear
                   Optimization},
            author={Byrd, Richard H. and Curtis, Frank E. and Nocedal, Jorge},
            journal={SIAM Journal on Optimization},
            volume={20},
            number={5},
            pages={2281--2299},
            year={2010}
        }

        @article{lucidi1990recursive,
            title={Recursive Quadratic Programming Algorithm That Uses an Exact
                   Augmented {L}agrangian Function},
            author={Lucidi, Stefano},
            journal={Journal of Optimization Theory and Applications},
            volume={67},
            number={2},
            pages={227--245},
            year={1990}
        }
        ```
    """

    linear_solver: lx.AbstractLinearSolver = RowSketch()
    accuracy: Literal["adaptive", "practical"] = "adaptive"
    kappa: float = 0.1
    superlinear: bool = False
    accuracy_floor: float | None = None
    atol: float | None = None
    rtol: float = 0.0
    mu: float = 1.0
    nu: float = 0.1
    delta: float = 0.1
    delta_min: float = 1e-6
    psi_scale: float = 20.0
    regularisation: float = 0.1
    curvature_tol: float = 1e-6
    rank_tol: float = 1e-10
    rank_regularisation: float | None = None
    infeasibility_tol: float | None = None
    unbounded_threshold: float = 1e10
    max_expansions: int = 30
    armijo_c: float = 0.1
    penalty_factor: float = 1.5
    mu_max: float = 1e8
    nu_min: float = 1e-8
    max_backtracks: int = 40
    materialise: bool | None = None
    materialise_limit: int = 500
    num_probes: int = 8
    recycle: int | None = None
    verbose: bool | Callable[..., None] = False

    def __check_init__(self):
        if self.accuracy not in ("adaptive", "practical"):
            raise ValueError(
                f"`accuracy` must be 'adaptive' or 'practical', got {self.accuracy!r}."
            )
        if not isinstance(self.linear_solver, lx.AbstractLinearSolver):
            raise TypeError(
                "`linear_solver` must be a lineax linear solver (e.g. "
                "`sciopt.nlp.RowSketch()` or `lineax.LU()`), got "
                f"{type(self.linear_solver).__name__}."
            )
        if not 0 < self.armijo_c < 0.5:
            raise ValueError(f"`armijo_c` must lie in (0, 0.5), got {self.armijo_c}.")
        if self.recycle is not None and (
            not isinstance(self.recycle, int) or self.recycle < 0
        ):
            raise ValueError(
                f"`recycle` must be a non-negative int or None, got {self.recycle!r}."
            )
        if not isinstance(self.max_expansions, int) or self.max_expansions < 0:
            raise ValueError(
                "`max_expansions` must be a non-negative int, got "
                f"{self.max_expansions!r}."
            )
        if not self.unbounded_threshold > 0:
            raise ValueError(
                "`unbounded_threshold` must be positive, got "
                f"{self.unbounded_threshold!r}."
            )
        if self.infeasibility_tol is not None and not 0 < self.infeasibility_tol < 1:
            raise ValueError(
                "`infeasibility_tol` must lie in (0, 1), got "
                f"{self.infeasibility_tol!r}."
            )
        if self.penalty_factor <= 1:
            raise ValueError(
                f"`penalty_factor` must exceed 1, got {self.penalty_factor}."
            )

    # ----------------------------------------------------------------- helpers

    def _is_dense(self, n, m):
        if self.materialise is None:
            return n + m <= self.materialise_limit
        return self.materialise

    def _num_recycled(self) -> int:
        # The practical rule's looser directions span the near-null directions of
        # K less well than the paper's rule's: it keeps more of them.
        if self.recycle is None:
            return 2 if self.accuracy == "adaptive" else 6
        return self.recycle

    def _tolerance(self, dtype):
        if self.atol is None:
            return float(0.5 * np.sqrt(np.finfo(dtype).eps))
        return self.atol

    def _floor(self, dtype):
        if self.accuracy_floor is None:
            return float(np.sqrt(np.finfo(dtype).eps))
        return self.accuracy_floor

    def _rank_regularisation(self, dtype):
        if self.rank_regularisation is None:
            return float(np.sqrt(np.finfo(dtype).eps))
        return self.rank_regularisation

    def _infeasibility_tol(self, dtype):
        if self.infeasibility_tol is None:
            return float(np.cbrt(np.finfo(dtype).eps))
        return self.infeasibility_tol

    def _problem_check(self, problem):
        if not isinstance(problem, EqualityConstrainedProblem):
            raise TypeError(
                "AdaSketchNewton solves `sciopt.nlp.EqualityConstrainedProblem`s, "
                f"got {type(problem).__name__}."
            )

    # ------------------------------------------------------------------ protocol

    def init(self, problem, y, args, options):
        self._problem_check(problem)
        x = y
        n, m = problem.shapes(x, args)
        dtype = x.dtype
        lam0 = options.get("multipliers", None)
        lam0 = jnp.zeros(m, dtype) if lam0 is None else jnp.asarray(lam0, dtype)
        if lam0.shape != (m,):
            raise ValueError(
                f"`options['multipliers']` must have shape ({m},), got {lam0.shape}."
            )
        _, kkt = _kkt_fn(problem, args)
        gl, c = kkt(x, lam0)
        kkt_norm = jnp.sqrt(jnp.sum(gl**2) + jnp.sum(c**2))
        key = options.get("key", None)
        if key is None:
            key = jr.PRNGKey(_DEFAULT_SEED)
        elif jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
            # Raw key data in the state: typed keys cannot pass `Solution.error_if`.
            key = jr.key_data(key)
        zero = jnp.zeros((), dtype)
        return _AdaSketchState(
            multipliers=lam0,
            grad_lagrangian=gl,
            constraint=c,
            kkt_norm=kkt_norm,
            kkt_norm0=kkt_norm,
            objective0=jnp.asarray(problem.objective(x, args), dtype),
            mu=jnp.asarray(self.mu, dtype),
            nu=jnp.asarray(self.nu, dtype),
            delta=jnp.asarray(self.delta, dtype),
            key=key,
            directions=jnp.zeros((self._num_recycled(), n + m), dtype),
            num_steps=jnp.array(0),
            result=RESULTS.successful,
            sketch_steps=jnp.array(0),
            step_size=zero,
            regularisation=zero,
        )

    def step(self, problem, y, args, options, state):
        # Every variant (dense or matrix-free, sketch, Krylov or exact inner solver,
        # extrapolation on or off) is chosen here in Python from static fields and
        # shapes: only the selected one is traced.
        x, lam = y, state.multipliers
        n = x.shape[0]
        m = lam.shape[0]
        dtype = x.dtype
        lagrangian, kkt = _kkt_fn(problem, args)
        gl, c = state.grad_lagrangian, state.constraint
        kkt_vec = jnp.concatenate([gl, c])
        kkt_norm = state.kkt_norm
        rho = jnp.asarray(self.penalty_factor, dtype)
        one = jnp.ones((), dtype)
        zero = jnp.zeros((), dtype)
        # Randomness: counter-based, from the key words, the step number and the
        # penalty pass (no key splitting inside the compiled step).
        words = jnp.concatenate(
            [_key_words(state.key), jnp.stack([state.num_steps]).astype(jnp.uint32)]
        )

        def kkt_flat(z):
            g, cc = kkt(z[:n], z[n:])
            return jnp.concatenate([g, cc])

        z0 = jnp.concatenate([x, lam])
        zeros_n = jnp.zeros(n, dtype)
        zeros_m = jnp.zeros(m, dtype)
        # Merit-gradient pieces: grad L_{mu,nu} = kkt + mu * pc + nu * pd, with
        # pc = grad(1/2 ||c||^2) = (G^T c, 0) and pd = grad(1/2 ||grad_x L||^2)
        # = (H grad_x L, G grad_x L): the (symmetric) KKT Jacobian applied to (0, c)
        # and (grad_x L, 0).
        pieces = jnp.stack(
            [jnp.concatenate([zeros_n, c]), jnp.concatenate([gl, zeros_m])]
        )
        result = RESULTS.successful
        dense = self._is_dense(n, m)
        if dense:
            kmat = jax.jacfwd(kkt_flat)(z0)
            kmat = 0.5 * (kmat + kmat.T)
            pc, pd = pieces @ kmat
            hess = kmat[:n, :n]
            jac = kmat[n:, :n]
            gram = jac @ jac.T
            # One symmetric eigendecomposition of G G^T gives the rank test and
            # the (regularised) least-squares multipliers below.
            if m == 1:  # no LAPACK call for the 1 x 1 case
                gram_eigs, gram_vecs = gram[0], jnp.ones((1, 1), dtype)
            else:
                gram_eigs, gram_vecs = jnp.linalg.eigh(gram)
            gram_max = jnp.maximum(gram_eigs[-1], one)
            rank_deficient = gram_eigs[0] <= self.rank_tol * gram_max
            # Rank-deficient G (LICQ fails here): a Levenberg-Marquardt / Tikhonov
            # regularisation with tik = sqrt(eps) max(1, lambda_max(G G^T)). The
            # constraint residual is filtered to its part that the linearisation
            # can reach, c_fit = G G^T (G G^T + tik I)^{-1} c (the constraint
            # change of the Levenberg-Marquardt step lm_step below), and the KKT
            # matrix gets -tik I in its (2, 2) block, so K stays invertible and
            # the multiplier step stays bounded (stabilised SQP; Wright 1998,
            # Nocedal & Wright 2006, sections 10.3 and 18.5).
            tik = jnp.where(
                rank_deficient, self._rank_regularisation(dtype) * gram_max, zero
            )
            denom = gram_eigs + tik
            denom = jnp.where(denom > 0, denom, one)
            lm_mult = gram_vecs @ ((gram_vecs.T @ c) / denom)
            c_fit = jnp.where(rank_deficient, gram @ lm_mult, c)
            lm_step = -jac.T @ lm_mult
            xi_g = jnp.maximum(gram_eigs[0], tik)
            hess_f2 = jnp.sum(hess**2)
            jac_f2 = jnp.sum(jac**2)
            if m < n:
                q, _ = jnp.linalg.qr(jac.T, mode="complete")
                basis = q[:, m:]
                reduced = basis.T @ hess @ basis
                if n - m == 1:
                    curv = reduced[0, 0]
                else:
                    curv = jnp.linalg.eigvalsh(0.5 * (reduced + reduced.T))[0]
                reg = jnp.where(
                    curv < self.curvature_tol,
                    self.regularisation + jnp.sqrt(hess_f2),
                    zero,
                )
            else:
                reg = zero
            b_f2 = hess_f2 + 2 * reg * jnp.trace(hess) + n * reg**2
            shift = jnp.concatenate([jnp.full(n, reg, dtype), jnp.full(m, -tik, dtype)])
            operator = lx.MatrixLinearOperator(kmat + jnp.diag(shift), lx.symmetric_tag)
        else:
            # Matrix-free: no rank test (documented); G is taken to have full rank.
            rank_deficient = jnp.array(False)
            c_fit = c
            hess = None
            _, lin = jax.linearize(kkt_flat, z0)
            pc, pd = jax.vmap(lin)(pieces)
            probes = _random_normal(words, 0, (self.num_probes, n), dtype)
            kv = jax.vmap(lambda v: lin(jnp.concatenate([v, zeros_m])))(probes)
            hess_f2 = jnp.mean(jnp.sum(kv[:, :n] ** 2, axis=1))
            jac_f2 = jnp.mean(jnp.sum(kv[:, n:] ** 2, axis=1))
            xi_g = one
            reg = zero
            b_f2 = hess_f2
            operator = lx.FunctionLinearOperator(
                lin, jax.ShapeDtypeStruct((n + m,), dtype), lx.symmetric_tag
            )
        k_fro = jnp.sqrt(b_f2 + 2 * jac_f2)
        psi = (
            self.psi_scale
            * jnp.maximum(b_f2, one)
            / (jnp.minimum(xi_g, one) * min(self.regularisation, 1.0))
        )
        upsilon = jnp.maximum(jnp.maximum(jnp.sqrt(jac_f2), jnp.sqrt(hess_f2)), one)
        beta = self.armijo_c

        # Infeasibility: x is a stationary point of the constraint violation
        # 1/2 ||c||^2 (its gradient G^T c vanishes relative to ||c||) that is not
        # feasible. Byrd, Curtis & Nocedal (2010) stop SQP there as infeasible.
        tau = self._infeasibility_tol(dtype)
        c_norm = jnp.sqrt(jnp.sum(c**2))
        gtc_norm = jnp.sqrt(jnp.sum(pc[:n] ** 2))
        infeasible = (c_norm > float(np.sqrt(tau))) & (
            gtc_norm <= tau * jnp.maximum(jnp.sqrt(jac_f2), one) * c_norm
        )
        # Unboundedness: a (nearly) feasible iterate whose objective fell by more
        # than `unbounded_threshold` times the start's scale (or to -inf).
        f_now = problem.objective(x, args)
        f0 = state.objective0
        feasible = c_norm <= float(np.sqrt(tau))
        unbounded = feasible & (
            (f_now <= f0 - self.unbounded_threshold * jnp.maximum(jnp.abs(f0), one))
            | (f_now == -jnp.inf)
        )
        result = RESULTS.where(unbounded, RESULTS.unbounded, result)
        result = RESULTS.where(infeasible, RESULTS.infeasible, result)
        rhs = -jnp.concatenate([gl, c_fit])

        def delta_trial(mu, nu):
            return (0.5 - beta) * nu / ((1 + mu + nu) * upsilon**2 * psi**2)

        theta = one
        if self.superlinear:
            theta = jnp.minimum(one, jnp.sqrt(kkt_norm))
        # Never ask for more accuracy than termination needs (a residual of atol / 2
        # leaves the next KKT residual near it), except when the penalty loop has
        # to sharpen a direction that is not a descent direction.
        rel_floor = self._floor(dtype) * kkt_norm
        abs_floor = jnp.maximum(rel_floor, 0.5 * self._tolerance(dtype))

        def inner_tol(delta, kappa, first):
            if self.accuracy == "adaptive":
                tol = theta * delta * kkt_norm / (k_fro * psi)
            else:
                tol = theta * kappa * kkt_norm
            return jnp.maximum(tol, jnp.where(first, abs_floor, rel_floor))

        is_sketch = isinstance(self.linear_solver, AbstractSketchSolver)
        is_krylov = isinstance(self.linear_solver, SchurComplementCG)
        is_inexact = is_sketch or is_krylov

        def solve_direction(z_start, tol, counter):
            # `compute` directly (not `lx.linear_solve`): nothing is differentiated
            # here, and it keeps the compiled step small.
            if is_sketch:
                opts = {
                    "key": jnp.concatenate(
                        [words, jnp.stack([counter]).astype(jnp.uint32)]
                    ),
                    "y0": z_start,
                    "tolerance": tol,
                    "subspace": state.directions,
                }
            elif is_krylov:
                opts = {"y0": z_start, "tolerance": tol, "primal_size": n}
            else:
                opts = {}
            lin_state = self.linear_solver.init(operator, opts)
            value, lin_result, lin_stats = self.linear_solver.compute(
                lin_state, rhs, opts
            )
            steps = lin_stats["num_steps"] if is_inexact else jnp.array(0)
            ok = lin_result == lx.RESULTS.successful
            return value, jnp.asarray(steps), ok

        def slope_of(dz, mu, nu):
            return jnp.dot(kkt_vec + mu * pc + nu * pd, dz)

        def is_descent(slope, nu):
            return jnp.isfinite(slope) & (slope <= -0.5 * nu * kkt_norm**2)

        # Penalty loop: raise mu, lower nu (and sharpen the inner accuracy, resuming
        # the inner solve from its current iterate) until dz is a descent direction
        # of the exact augmented Lagrangian. The first pass only solves.
        mu0 = state.mu
        nu0 = state.nu
        delta0 = jnp.maximum(
            self.delta_min, jnp.minimum(state.delta, delta_trial(mu0, nu0))
        )
        kappa0 = jnp.asarray(self.kappa, dtype)
        if is_inexact:
            dz0 = jnp.zeros(n + m, dtype)
            steps0 = jnp.array(0)
            ok0 = jnp.array(False)
        else:
            dz0, steps0, ok0 = solve_direction(None, None, None)

        def pen_cond(carry):
            dz, mu, nu, _, _, _, _, count = carry
            more = (
                jnp.invert(is_descent(slope_of(dz, mu, nu), nu))
                & (mu < self.mu_max)
                & (nu > self.nu_min)
                # Rank-deficient G: the penalties cannot restore the merit's
                # exactness; a non-descent step becomes a restoration step below.
                & jnp.invert(rank_deficient)
                & (result == RESULTS.successful)
            )
            return (count == 0) | more

        def pen_body(carry):
            dz, mu, nu, delta, kappa, steps, inner_ok, count = carry
            first = count == 0
            update = jnp.invert(first)
            mu = jnp.where(update, mu * rho**2, mu)
            nu = jnp.where(update, nu / rho, nu)
            delta = jnp.where(
                update,
                jnp.maximum(
                    self.delta_min, jnp.minimum(delta / rho**4, delta_trial(mu, nu))
                ),
                delta,
            )
            kappa = jnp.where(update, kappa / rho**4, kappa)
            if is_inexact:
                tol = inner_tol(delta, kappa, first)
                dz, more, inner_ok = solve_direction(dz, tol, count)
                steps = steps + more
            return dz, mu, nu, delta, kappa, steps, inner_ok, count + 1

        carry = (dz0, mu0, nu0, delta0, kappa0, steps0, ok0, jnp.array(0))
        dz, mu, nu, delta, _, steps, inner_ok, _ = lax.while_loop(
            pen_cond, pen_body, carry
        )
        slope = slope_of(dz, mu, nu)
        if dense:
            # No descent direction of the merit (G rank deficient, where the
            # penalty loop is skipped, or the penalties at their bounds): a
            # restoration step instead, the (Levenberg-Marquardt) Gauss-Newton
            # step on 1/2 ||c||^2 with the multipliers kept, as in the restoration
            # phase of filter methods (Fletcher & Leyffer 2002). It is a descent
            # direction of ||c||^2 unless G^T c = 0, where the infeasibility test
            # above applies.
            no_merit_descent = jnp.invert(slope < 0) | jnp.invert(jnp.isfinite(slope))
            restore = (
                rank_deficient & jnp.invert(is_descent(slope, nu))
            ) | no_merit_descent
            dz = jnp.where(restore, jnp.concatenate([lm_step, zeros_m]), dz)
            slope = jnp.where(restore, -jnp.dot(c, c_fit), slope)
        else:
            restore = jnp.array(False)
        no_descent = jnp.invert(slope < 0) | jnp.invert(jnp.isfinite(slope))
        result = RESULTS.where(
            (result == RESULTS.successful) & no_descent,
            RESULTS.where(
                rank_deficient,
                RESULTS.rank_deficient_constraints,
                RESULTS.where(
                    inner_ok,
                    RESULTS.not_descent_direction,
                    RESULTS.inner_solve_failed,
                ),
            ),
            result,
        )

        # Armijo backtracking on the exact augmented Lagrangian (on 1/2 ||c||^2 for
        # a restoration step).
        def merit_of(z, g, cc):
            exact = (
                lagrangian(z[:n], z[n:])
                + 0.5 * mu * jnp.sum(cc**2)
                + 0.5 * nu * jnp.sum(g**2)
            )
            if not dense:
                return exact
            return jnp.where(restore, 0.5 * jnp.sum(cc**2), exact)

        merit0 = merit_of(z0, gl, c)

        # Armijo with a roundoff allowance: near the solution the merit's decrease
        # (~ ||grad L||^2) falls below the rounding error of its value.
        roundoff = 16 * jnp.finfo(dtype).eps * jnp.abs(merit0)

        def armijo(alpha, value):
            return jnp.isfinite(value) & (
                value <= merit0 + beta * alpha * slope + roundoff
            )

        # Extrapolation (Nocedal & Wright 2006, section 3.5): when the Hessian was
        # shifted and the step has non-positive curvature, the model has no
        # minimiser along it and the unit step is set by the shift alone; while the
        # Armijo test holds and the merit keeps falling, double the step. An
        # objective unbounded below is then followed geometrically and reported as
        # `unbounded` within a few steps.
        if dense and self.max_expansions > 0:
            dx = dz[:n]
            may_expand = (
                (result == RESULTS.successful)
                & jnp.invert(restore)
                & (reg > 0)
                & (jnp.dot(dx, hess @ dx) <= 0)
            )
        else:
            may_expand = jnp.array(False)

        # One loop for both: halve from alpha = 1 until the Armijo test holds
        # (`expanding` false); if the unit step passed and `may_expand`, double it
        # while the Armijo test holds, the merit falls and ||c|| does not grow. The
        # merit and KKT residual of a trial point are traced once.
        def ls_cond(carry):
            return jnp.invert(carry[-1])

        def ls_body(carry):
            alpha, value, g, cc, trial_alpha, count, expanding, _ = carry
            z = z0 + trial_alpha * dz
            g2, cc2 = kkt(z[:n], z[n:])
            value2 = merit_of(z, g2, cc2)
            passes = armijo(trial_alpha, value2)
            better = passes & (value2 < value) & (jnp.sum(cc2**2) <= jnp.sum(cc**2))
            # Backtracking keeps its last trial (failed or not); extrapolation
            # keeps the last better one.
            keep = jnp.where(expanding, better, True)
            pick = lambda a, b: jnp.where(keep, a, b)  # noqa: E731
            alpha, value = pick(trial_alpha, alpha), pick(value2, value)
            g, cc = pick(g2, g), pick(cc2, cc)
            count = count + 1
            start_expanding = (
                jnp.invert(expanding) & passes & (trial_alpha == 1) & may_expand
            )
            done = jnp.where(
                expanding,
                jnp.invert(better) | (count >= self.max_expansions),
                (passes & jnp.invert(start_expanding)) | (count > self.max_backtracks),
            )
            count = jnp.where(start_expanding, 0, count)
            trial_alpha = jnp.where(
                expanding | start_expanding, 2 * trial_alpha, 0.5 * trial_alpha
            )
            expanding = expanding | start_expanding
            return alpha, value, g, cc, trial_alpha, count, expanding, done

        ls_init = (
            one,
            jnp.asarray(jnp.inf, dtype),
            gl,
            c,
            one,
            jnp.array(0),
            jnp.array(False),
            jnp.array(False),
        )
        alpha, value, g_new, c_new, *_ = lax.while_loop(ls_cond, ls_body, ls_init)
        ls_ok = armijo(alpha, value)
        result = RESULTS.where(
            (result == RESULTS.successful) & jnp.invert(ls_ok),
            RESULTS.line_search_failed,
            result,
        )

        ok = result == RESULTS.successful
        z_new = jnp.where(ok, z0 + alpha * dz, z0)
        g_new = jnp.where(ok, g_new, gl)
        c_new = jnp.where(ok, c_new, c)
        new_norm = jnp.sqrt(jnp.sum(g_new**2) + jnp.sum(c_new**2))

        i = state.num_steps
        verbose_printer(self.verbose)(
            step=("step", i + 1),
            kkt=("KKT residual", new_norm),
            mu=("mu", mu),
            nu=("nu", nu),
            alpha=("step size", alpha),
            sketch=("sketch steps", steps),
        )
        new_state = _AdaSketchState(
            multipliers=z_new[n:],
            grad_lagrangian=g_new,
            constraint=c_new,
            kkt_norm=new_norm,
            kkt_norm0=state.kkt_norm0,
            objective0=state.objective0,
            mu=mu,
            nu=nu,
            delta=delta,
            key=state.key,
            directions=_push_direction(state.directions, dz, ok),
            num_steps=i + 1,
            result=result,
            sketch_steps=steps,
            step_size=alpha,
            regularisation=reg,
        )
        return z_new[:n], new_state, None

    def terminate(self, problem, y, args, options, state):
        tol = self._tolerance(state.kkt_norm.dtype) + self.rtol * state.kkt_norm0
        done = (state.kkt_norm <= tol) | (state.result != RESULTS.successful)
        return done, state.result

    def postprocess(self, problem, y, aux, args, options, state, result):
        x, lam = y, state.multipliers
        stats = {
            "kkt_residual": state.kkt_norm,
            "multipliers": lam,
            "mu": state.mu,
            "nu": state.nu,
        }
        return x, lam, stats

    def optimality(self, problem, y, args, options):
        return kkt_optimality(problem, y, args)


def _push_direction(directions, dz, ok):
    """Keep the last Newton directions (normalised, newest first) for recycling."""
    if directions.shape[0] == 0:
        return directions
    norm = jnp.linalg.norm(dz)
    unit = jnp.where(norm > 0, dz / jnp.where(norm > 0, norm, 1), 0 * dz)
    pushed = jnp.concatenate([unit[None], directions[:-1]])
    return jnp.where(ok & jnp.all(jnp.isfinite(unit)), pushed, directions)


def kkt_optimality(problem, x, args):
    """A residual in `x` alone that vanishes exactly at KKT points (full-rank `G`):
    `grad f + G^T lam_ls(x) + G^T c(x)`, with least-squares multipliers
    `lam_ls = -(G G^T)^{-1} G grad f`. Its Jacobian at a solution is
    `P H_L + G^T G` (`P` the projector onto the null space of `G`), invertible under
    the second-order sufficient conditions."""
    grad_f = jax.grad(problem.objective)(x, args)
    c = problem.constraints(x, args)
    jac = jax.jacrev(problem.constraints)(x, args)
    lam = -jnp.linalg.solve(jac @ jac.T, jac @ grad_f)
    return grad_f + jac.T @ (lam + c)


AdaSketchNewton.__init__.__doc__ = """**Arguments:**

- `linear_solver`: the inner solver of `K dz = -grad L`: a sketch (`RowSketch`,
    `BlockSketch`, `GaussianSketch`), the Krylov `SchurComplementCG` (for large,
    ill-conditioned systems with a positive definite Hessian block), or any lineax
    solver (`lineax.LU()`: exact Newton).
- `recycle`: number of previous Newton directions recycled as extra sketches of
    each sketched solve (the `subspace` option of the sketch solvers; 0 turns it
    off; default `None`: 2 for the adaptive rule, 6 for the practical one, whose
    looser directions span the near-null directions less well). They carry the
    near-null directions of `K` near degenerate solutions.
- `accuracy`: `"adaptive"` (the paper's rule) or `"practical"`
    (`||r|| <= kappa ||grad L||`); `kappa` for the latter.
- `superlinear`: sharpen the rule over the iterations
    (`theta_t = min(1, ||grad L||^(1/2))`).
- `accuracy_floor`: relative floor of the inner tolerance (default `sqrt(eps)`; 0
    removes it). The first solve of each Newton step also stops at `atol / 2`.
- `atol`, `rtol`: stop when `||grad L|| <= atol + rtol ||grad L(x0)||` (default `atol`:
    `sqrt(eps) / 2`).
- `mu`, `nu`, `delta`: initial penalties and accuracy parameter (authors: 1, 0.1, 0.1);
    `delta_min` its floor, `psi_scale` the constant of `Psi`.
- `regularisation`, `curvature_tol`: the Hessian shift `xi_B` and the reduced-Hessian
    eigenvalue below which it applies.
- `rank_tol`, `rank_regularisation`: where `lambda_min(G G^T) <= rank_tol *
    max(1, lambda_max(G G^T))` (LICQ fails; materialised `K` only) the step
    solves `[[B, G^T], [G, -tau I]] dz = -(grad_x L, c_fit)` with
    `tau = rank_regularisation * max(1, lambda_max)` (default `sqrt(eps)`) and
    `c_fit = G G^T (G G^T + tau I)^{-1} c`, the part of `c` the linearisation reaches
    (a Levenberg-Marquardt / stabilised Newton step). If that is no descent direction
    of the merit (or the penalty loop found none), a restoration step, the
    Levenberg-Marquardt step on `||c||^2 / 2`, is taken instead.
    `RESULTS.rank_deficient_constraints` only when neither makes progress (a
    rank-deficient, nearly feasible point: LICQ fails at the limit).
- `infeasibility_tol`: `RESULTS.infeasible` at a stationary point of `||c||^2 / 2`
    that is not feasible: `||G^T c|| <= tol * max(1, ||G||_F) ||c||` and
    `||c|| > sqrt(tol)` (default `eps^(1/3)`; Byrd, Curtis and Nocedal, 2010).
- `unbounded_threshold`: `RESULTS.unbounded` at an iterate with `||c|| <=
    sqrt(infeasibility_tol)` and `f(x) <= f(x0) - unbounded_threshold * max(1, |f(x0)|)`
    (or `f = -inf`).
- `max_expansions`: when the Hessian was shifted, the step has non-positive
    curvature and the unit step passes the Armijo test, the step is doubled up to this
    many times while the Armijo test holds, the merit falls and `||c||` does not grow
    (extrapolation, so an unbounded objective is followed geometrically; 0 turns it
    off).
- `armijo_c`, `max_backtracks`: the Armijo constant `beta` and the halving limit.
- `penalty_factor`, `mu_max`, `nu_min`: the update `mu *= rho^2`, `nu /= rho`, and
    its bounds.
- `materialise`, `materialise_limit`: form `K` densely (default: when `n + m <= 500`);
    `num_probes`: Hutchinson probes for norms when matrix-free.
- `verbose`: `True` prints, every step, the step number, the KKT residual, the
    penalties, the step size and the sketch steps; or a callable taking them as
    keyword arguments `name=(label, value)` (see `sciopt.verbose_printer`).
"""
