"""ADMM for the convex ReLU programs (Bai, Gautam & Sojoudi 2023, Algorithm 3.1)."""

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import optimistix as optx
from jaxtyping import Array, Bool, PyTree

from .._misc import verbose_printer
from .._solution import RESULTS
from .._solver import AbstractSolver
from . import _linear
from ._gap import dual_bound
from ._losses import loss_prox, robust_cone_projection, robust_hinge_prox
from ._problem import (
    AbstractConvexReLUProblem,
    AdversarialReLUProblem,
    ConvexReLUVariables,
    data_result,
)


# default tolerances per floating dtype: (rtol, atol); float32's floor of rounding
# error sits near 1e-7 relative, so its residuals cannot reach float64's defaults
DEFAULT_TOLERANCES = {8: (1e-6, 1e-8), 4: (1e-4, 1e-5), 2: (1e-2, 1e-3)}


def default_tolerances(dtype, rtol, atol) -> tuple[float, float]:
    """`(rtol, atol)` with `None` replaced by the default of `dtype`'s precision."""
    default_rtol, default_atol = DEFAULT_TOLERANCES.get(
        jnp.dtype(dtype).itemsize, DEFAULT_TOLERANCES[8]
    )
    return (
        default_rtol if rtol is None else rtol,
        default_atol if atol is None else atol,
    )


class _ADMMState(eqx.Module):
    factors: PyTree
    rho: Array
    primal_residual: Array
    dual_residual: Array
    primal_tolerance: Array
    dual_tolerance: Array
    num_steps: Array
    Mz: Array
    My: Array
    certified: Array
    linear_steps: Array
    data_result: RESULTS


def _group_soft_threshold(z, threshold):
    norms = jnp.linalg.norm(z, axis=1, keepdims=True)
    safe = jnp.where(norms > 0, norms, 1)
    return jax.nn.relu(1 - threshold / safe) * z


def _mt(problem, w, wp, zv, zs, zp, zt):
    """M^T z = w zv + L^T (wp zp) + G^T zs (+ zt for the robust cones), (2P, d)."""
    X = problem.X
    if isinstance(problem, AdversarialReLUProblem):
        return (
            w * zv
            + _linear.loss_map_t(problem, wp * zp)
            + (problem.cone_signs * zs) @ X
            + zt
        )
    if problem.gated:
        return w * zv + _linear.loss_map_t(problem, wp * zp)
    # the loss and cone maps share one (2P, n) x (n, d) product
    mixed = problem.signed_patterns * (wp * zp)[None, :] + problem.cone_signs * zs
    return w * zv + mixed @ X


def _products(problem, w, wp, y: ConvexReLUVariables):
    """(M^T z, M^T dual) of an iterate: the u-step's right-hand side is
    `M^T z - M^T dual / rho`, and the dual residual is `rho ||M^T (z - z_old)||`.
    The solver carries both, so that each step needs only one product of each."""
    one = jnp.ones((), problem.X.dtype)
    Mz = _mt(problem, w, wp, y.v, y.s, y.p, y.t)
    My = _mt(problem, one, one, y.dual_v, y.dual_s, y.dual_p, y.dual_t)
    return Mz, My


class ADMM(AbstractSolver):
    """ADMM for `sciopt.relu.ConvexReLUProblem` and `AdversarialReLUProblem`.

    The splitting of Bai et al.: u = v (group-lasso prox), G u = s (projection onto the
    nonnegative orthant, or onto the robust cones), plus a split p = L u of the loss
    (its prox: closed form for squared and hinge losses, a safeguarded scalar solve for
    cross-entropy and the robust hinge). Every split has the same penalty rho, so the
    u-step matrix A = I + G^T G + L^T L does not depend on rho: it is factored once
    (`linear_solver`: dense (2dP)^2 Cholesky, the n x n Woodbury core,
    block-preconditioned CG, or sketched once for matrix-free Nystrom-PCG) and
    every step costs O(n d P + (dP)^2), O(n d P + n^2) or a few O(n d P) products,
    and residual balancing of rho is free. The dual step is gamma * rho. Each step
    carries M^T z and M^T dual (M the stacked split maps), so one product with the
    pattern-weighted data gives the next right-hand side and both residuals.

    **Arguments:**

    - `rtol`, `atol`: the residual stopping rule below. `None` (the default) takes
      the default of the problem's precision: `(1e-6, 1e-8)` in float64, `(1e-4,
      1e-5)` in float32 (whose rounding error keeps the residuals from float64's
      tolerances).
    - `rho`: the initial penalty (default 0.1, chosen by measurement).
    - `gamma`: the dual step, in (0, 1.618).
    - `relaxation`: over-relaxation alpha in (0, 2) (Boyd et al. 2011, 3.4.3;
      default 1.6).
    - `adaptive_rho`, `rho_update_every`, `rho_update_until`, `rho_balance`: residual
      balancing: every `rho_update_every` steps up to `rho_update_until`, double
      (halve) rho when the primal (dual) residual exceeds `rho_balance` times the
      other.
    - `v_weight`, `loss_weight`: penalty weights of the splits u = v and p = L u
      relative to the cone split (`v_weight=None`: the mean squared column norm of X).
    - `linear_solver`: `"auto"`, `"dense"`, `"woodbury"`, `"cg"`, `"nystrom"` or
      `"kron"` (adversarial problems). `"auto"` factors the smaller of the
      (2dP)^2 system and the n x n Woodbury core, side m = min(n, 2dP), unless
      m > 512 and m^2 > n d P / 2, where it goes matrix-free (`"nystrom"`: a
      factored step costs about m^2, a matrix-free one a few O(ndP) products);
      adversarial problems take `"kron"`.
    - `cg_rtol`, `cg_max_steps`: the inner CG solve (`linear_solver="cg"`; for
      `"nystrom"`, `cg_rtol` is the floor of the schedule below, raised to
      `10 eps` of the precision).
    - `nystrom_rank`, `nystrom_max_rank`, `inexact_c` (`linear_solver="nystrom"`):
      the u-step is solved matrix-free by CG on the block-diagonally scaled system
      `(I + K) z = B^{-1/2} rhs` (`B = w I + I (x) X^T X`, `K` the loss map's part,
      applied by products with `X` and the patterns: O(ndP) per product, nothing
      n x n or (2dP)^2 formed), preconditioned by a randomized Nystrom
      approximation of `K` (`sciopt.NystromPCG`, Frangella, Tropp & Udell 2023)
      sketched once in `init` (the system does not depend on rho, so residual
      balancing never re-sketches): a fixed `nystrom_rank` or the adaptive rank up
      to `nystrom_max_rank`. Each solve is warm-started at the previous `u` and
      inexact, to `max|r| <= rtol_k max|b|` with the summable schedule
      `rtol_k = max(cg_rtol, inexact_c / k^1.5)` of NysADMM (Zhao, Frangella &
      Udell 2022), at most `cg_max_steps` iterations: the approach of CRONOS
      (Feng, Frangella & Pilanci, NeurIPS 2024) for this program. The stopping
      tests (residuals, duality gap) are the same as for the factored paths.
    - `verbose`: `True` prints, every step, the step number, the primal and dual
      residuals and rho; or a callable taking them as keyword arguments `name=(label,
      value)` (see `sciopt.verbose_printer`).

    - `gap_rtol`: also stop when the duality gap certifies the objective:
      `objective(v) - lower_bound <= atol + gap_rtol |objective(v)|` with the cone
      violation of `v` at most `gap_rtol` times its largest activation `max |X v_i|`
      (`ConvexReLUProblem` only; default `None`: the residual rule alone).
    - `gap_check_every`: steps between two evaluations of the gap (each costs about
      a third of a step).

    Stops when the primal and dual residuals meet
    `r_p <= atol + rtol max(||M u||, ||z||)` and
    `r_d <= atol + rtol max(||M^T y||, ||w y_v||)` (Boyd et al. 2011, section 3.3),
    or when the duality gap meets `gap_rtol`. The u-block carries no objective, so
    `M^T y` tends to zero at a solution and Boyd's scale alone would leave only
    `atol`; the term of the split u = v (plus the robust cones' `y_t`) keeps the size
    of the terms that cancel, as OSQP scales its dual residual by the largest of its
    terms (Stellato et al. 2020, section 3.4). The
    lower bound is Lagrangian weak duality at the iterate's multipliers (the loss's
    gradient at the predictions of `v`, the cone multipliers `(-dual_s)_+`), scaled to
    dual feasibility. It bounds `objective(v) - f*` from above; it tightens as the
    dual iterates converge, which on sampled-pattern programs with small `beta` is
    no sooner than the residual rule. (The scaling of a dual candidate into dual
    feasibility is the construction of Ndiaye et al. 2017.)

    `Solution.value` is a `ConvexReLUVariables`; `value.v` (or `value.weights`) is the
    convex solution. `Solution.stats` holds `objective` (the convex objective at `v`),
    `cone_violation`, `primal_residual`, `dual_residual`, `rho` and
    `linear_solver_steps` (inner CG iterations in all; `nystrom_rank`, the sketch
    size, with `"nystrom"`); for
    `ConvexReLUProblem` also `lower_bound` (a certified lower bound on the optimum)
    and `duality_gap` (`objective - lower_bound`).

    Data traced under `jax.jit` (which the problem's constructor cannot check) are
    checked in `init`: nan or inf in `X`, `y`, `patterns` or `beta` stop the solve
    with `RESULTS.nonfinite_data`, `beta <= 0`, pattern entries other than 0/1 or
    labels outside the loss's domain with `RESULTS.invalid_data`, before any step.
    Residuals, scales, objectives or bounds that overflowed never pass a stopping
    test: the solve stops with `RESULTS.nonfinite`. The default step budget of
    `sciopt.solve(..., max_steps=None)` is 100 000 (`default_max_steps`).

    ??? cite "References"

        ```bibtex
        @article{bai2023efficient,
            title={Efficient Global Optimization of Two-Layer {ReLU} Networks:
                   Quadratic-Time Algorithms and Adversarial Training},
            author={Bai, Yatong and Gautam, Tanmay and Sojoudi, Somayeh},
            journal={SIAM Journal on Mathematics of Data Science},
            volume={5},
            number={2},
            pages={446--474},
            year={2023}
        }

        @article{ndiaye2017gap,
            title={Gap Safe Screening Rules for Sparsity Enforcing Penalties},
            author={Ndiaye, Eugene and Fercoq, Olivier and Gramfort, Alexandre and
                    Salmon, Joseph},
            journal={Journal of Machine Learning Research},
            volume={18},
            number={128},
            pages={1--33},
            year={2017}
        }

        @article{boyd2011distributed,
            title={Distributed Optimization and Statistical Learning via the
                   Alternating Direction Method of Multipliers},
            author={Boyd, Stephen and Parikh, Neal and Chu, Eric and Peleato, Borja
                    and Eckstein, Jonathan},
            journal={Foundations and Trends in Machine Learning},
            volume={3},
            number={1},
            pages={1--122},
            year={2011}
        }

        @article{stellato2020osqp,
            title={{OSQP}: an operator splitting solver for quadratic programs},
            author={Stellato, Bartolomeo and Banjac, Goran and Goulart, Paul and
                    Bemporad, Alberto and Boyd, Stephen},
            journal={Mathematical Programming Computation},
            volume={12},
            number={4},
            pages={637--672},
            year={2020}
        }
        ```
    """

    rtol: float | None = None
    atol: float | None = None
    rho: float = 0.1
    gamma: float = 1.0
    adaptive_rho: bool = True
    rho_update_every: int = eqx.field(static=True, default=100)
    rho_update_until: int = eqx.field(static=True, default=5000)
    rho_balance: float = 3.0
    v_weight: float | None = 1.0
    loss_weight: float = 1.0
    relaxation: float = 1.6
    linear_solver: str = eqx.field(static=True, default="auto")
    cg_rtol: float = 1e-10
    cg_max_steps: int = eqx.field(static=True, default=200)
    nystrom_rank: int | None = eqx.field(static=True, default=None)
    nystrom_max_rank: int = eqx.field(static=True, default=64)
    inexact_c: float = 0.1
    gap_rtol: float | None = None
    gap_check_every: int = eqx.field(static=True, default=50)
    verbose: bool | Callable[..., None] = False

    def __check_init__(self):
        if (
            self.gap_rtol is not None
            and not isinstance(self.gap_rtol, jax.core.Tracer)
            and not self.gap_rtol > 0
        ):
            raise ValueError(f"`gap_rtol` must be positive, got {self.gap_rtol!r}.")
        if self.gap_check_every < 1:
            raise ValueError(
                f"`gap_check_every` must be >= 1, got {self.gap_check_every!r}."
            )
        _linear.check_method(self.linear_solver)
        if self.nystrom_rank is not None and (
            not isinstance(self.nystrom_rank, int) or self.nystrom_rank < 1
        ):
            raise ValueError(
                f"`nystrom_rank` must be a positive int or None, got "
                f"{self.nystrom_rank!r}."
            )
        if not isinstance(self.nystrom_max_rank, int) or self.nystrom_max_rank < 1:
            raise ValueError(
                "`nystrom_max_rank` must be a positive int, got "
                f"{self.nystrom_max_rank!r}."
            )
        if not isinstance(self.inexact_c, jax.core.Tracer) and not self.inexact_c > 0:
            raise ValueError(f"`inexact_c` must be positive, got {self.inexact_c!r}.")
        if not isinstance(self.rho, jax.core.Tracer) and not self.rho > 0:
            raise ValueError(f"`rho` must be positive, got {self.rho!r}.")
        if not isinstance(self.gamma, jax.core.Tracer) and not (0 < self.gamma < 1.618):
            raise ValueError(
                f"`gamma` (the dual step) must lie in (0, 1.618), got {self.gamma!r}."
            )
        if not isinstance(self.relaxation, jax.core.Tracer) and not (
            0 < self.relaxation < 2
        ):
            raise ValueError(
                f"`relaxation` must lie in (0, 2), got {self.relaxation!r}."
            )
        if not isinstance(self.rho_balance, jax.core.Tracer) and not (
            self.rho_balance > 1
        ):
            raise ValueError(f"`rho_balance` must be > 1, got {self.rho_balance!r}.")

    def _check_problem(self, problem):
        if not isinstance(problem, AbstractConvexReLUProblem):
            raise TypeError(
                "`sciopt.relu.ADMM` solves ConvexReLUProblem or "
                f"AdversarialReLUProblem, got {type(problem).__name__}."
            )
        if self.gap_rtol is not None and isinstance(problem, AdversarialReLUProblem):
            raise ValueError(
                "`gap_rtol` (the duality-gap stopping rule) applies to "
                "ConvexReLUProblem only; use `rtol`/`atol` for AdversarialReLUProblem."
            )

    def init(self, problem, y, args, options: dict[str, Any]) -> _ADMMState:
        self._check_problem(problem)
        method = _linear.resolve_method(self.linear_solver, problem)
        dtype = problem.X.dtype
        inf = jnp.array(jnp.inf, dtype)
        factors = self._build(problem, method)
        Mz, My = _products(problem, factors["w"], factors["wp"], y)
        # data traced under jit are checked here (concrete data by the constructor);
        # a failed factorization of finite data is the linear solver's result
        data = data_result(problem)
        data = RESULTS.where(
            data == RESULTS.successful, RESULTS.promote(factors["result"]), data
        )
        return _ADMMState(
            factors=factors,
            rho=jnp.asarray(self.rho, dtype),
            primal_residual=inf,
            dual_residual=inf,
            primal_tolerance=jnp.zeros((), dtype),
            dual_tolerance=jnp.zeros((), dtype),
            num_steps=jnp.zeros((), jnp.int32),
            Mz=Mz,
            My=My,
            certified=jnp.array(False),
            linear_steps=jnp.zeros((), jnp.int32),
            data_result=data,
        )

    def _build(self, problem, method):
        return _linear.build(
            problem,
            method,
            self._v_weight(problem),
            self._loss_weight(problem),
            nystrom_rank=self.nystrom_rank,
            nystrom_max_rank=self.nystrom_max_rank,
        )

    def _cg_rtol(self, dtype, num_steps):
        """The inner tolerance at ADMM step `num_steps + 1`: fixed `cg_rtol` for
        `"cg"`, the summable schedule `max(floor, inexact_c / k^1.5)` (NysADMM)
        for `"nystrom"`."""
        floor = max(self.cg_rtol, 10 * float(jnp.finfo(dtype).eps))
        if num_steps is None:
            return floor
        k = (num_steps + 1).astype(dtype)
        return jnp.maximum(floor, self.inexact_c / k**1.5).astype(dtype)

    def _update(
        self, problem, y: ConvexReLUVariables, method, factors, rho, Mz, My, k=None
    ):
        """One ADMM step; returns the new iterate, the pieces of the residuals,
        the products `M^T z`, `M^T dual` of the new iterate (see `_products`) and the
        inner CG iterations of the u-step."""
        adversarial = isinstance(problem, AdversarialReLUProblem)
        constrained = not problem.gated
        X = problem.X
        w, wp = factors["w"], factors["wp"]
        rhs = Mz - My / rho
        u, linear_steps = _linear.solve(
            problem,
            method,
            factors,
            rhs,
            y.u,
            cg_rtol=(
                self._cg_rtol(X.dtype, k) if method == "nystrom" else self.cg_rtol
            ),
            cg_max_steps=self.cg_max_steps,
        )
        if constrained:
            uX = u @ X.T  # shared by the cone map G u and the loss map
            Gu = problem.cone_signs * uX
            if adversarial:
                Lu = _linear.loss_map(problem, u)
            else:
                Lu = jnp.sum(problem.signed_patterns * uX, axis=0)
        else:
            Lu = _linear.loss_map(problem, u)
        a = self.relaxation
        hv = a * u + (1 - a) * y.v  # over-relaxed copies (Boyd et al. 2011, 3.4.3)
        hp = a * Lu + (1 - a) * y.p
        v = _group_soft_threshold(hv + y.dual_v / (w * rho), problem.beta / (w * rho))
        if adversarial:
            e = problem.eps_weights
            p = jax.vmap(robust_hinge_prox, in_axes=(0, 0, 0, None, None))(
                hp + y.dual_p / (wp * rho), X, problem.y, e, wp * rho
            )
        else:
            p = loss_prox(problem.loss, hp + y.dual_p / (wp * rho), problem.y, wp * rho)
        if constrained:
            hs = a * Gu + (1 - a) * y.s
            if adversarial:
                ht = a * u + (1 - a) * y.t
                s, t = jax.vmap(robust_cone_projection, in_axes=(0, 0, None))(
                    hs + y.dual_s / rho, ht + y.dual_t / rho, problem.eps_weights
                )
            else:
                ht = y.t
                s, t = jax.nn.relu(hs + y.dual_s / rho), y.t
        else:
            Gu, hs, s, ht, t = y.s, y.s, y.s, y.t, y.t
        step = self.gamma * rho
        new = ConvexReLUVariables(
            u=u,
            v=v,
            s=s,
            p=p,
            t=t,
            dual_v=y.dual_v + w * step * (hv - v),
            dual_s=y.dual_s + step * (hs - s),
            dual_p=y.dual_p + wp * step * (hp - p),
            dual_t=(y.dual_t + step * (ht - t)) if adversarial else y.dual_t,
        )
        new_Mz, new_My = _products(problem, w, wp, new)
        # residuals (Boyd et al. 2011, 3.3); the dual one is rho ||M^T (z - z_old)||
        ut = u if adversarial else y.t
        sw = jnp.sqrt(w)
        swp = jnp.sqrt(wp)
        primal = optx.two_norm((sw * (u - v), Gu - s, swp * (Lu - p), ut - t))
        dual = rho * optx.two_norm(new_Mz - Mz)
        primal_scale = jnp.maximum(
            optx.two_norm((sw * u, Gu, swp * Lu, ut)),
            optx.two_norm((sw * v, s, swp * p, t)),
        )
        # u carries no objective, so M^T dual -> 0 at a solution and Boyd's scale
        # ||M^T dual|| alone degenerates to zero (leaving only atol); the u = v
        # term w dual_v (and dual_t) stays the size of the forces that cancel
        forces = (w * new.dual_v, new.dual_t) if adversarial else (w * new.dual_v,)
        dual_scale = jnp.maximum(optx.two_norm(new_My), optx.two_norm(forces))
        return (
            new,
            primal,
            dual,
            primal_scale,
            dual_scale,
            new_Mz,
            new_My,
            linear_steps,
        )

    def _v_weight(self, problem):
        """The penalty weight of the split u = v relative to the others (default
        the mean squared column norm of X, which balances I against X^T X)."""
        if self.v_weight is not None:
            return jnp.asarray(self.v_weight, problem.X.dtype)
        X = jax.lax.stop_gradient(problem.X)
        return jnp.sum(jnp.square(X)) / X.shape[1]

    def _loss_weight(self, problem):
        return jnp.asarray(self.loss_weight, problem.X.dtype)

    def step(self, problem, y, args, options, state: _ADMMState):
        method = _linear.resolve_method(self.linear_solver, problem)
        rtol, atol = default_tolerances(problem.X.dtype, self.rtol, self.atol)
        new, primal, dual, pscale, dscale, Mz, My, linear_steps = self._update(
            problem,
            y,
            method,
            state.factors,
            state.rho,
            state.Mz,
            state.My,
            state.num_steps,
        )
        rho = state.rho
        if self.adaptive_rho:
            check = ((state.num_steps + 1) % self.rho_update_every == 0) & (
                state.num_steps < self.rho_update_until
            )
            up = check & (primal > self.rho_balance * dual)
            down = check & (dual > self.rho_balance * primal)
            rho = jnp.where(up, 2 * rho, jnp.where(down, rho / 2, rho))
            rho = jnp.clip(rho, 1e-6 * self.rho, 1e6 * self.rho)
        if self.gap_rtol is None:
            certified = jnp.array(False)
        else:

            def certify():
                objective, bound, violation = dual_bound(
                    problem, new.v, new.dual_s, new.dual_p
                )
                gap_ok = objective - bound <= atol + self.gap_rtol * jnp.abs(objective)
                # an overflowed objective or bound certifies nothing
                finite = jnp.isfinite(objective) & jnp.isfinite(bound)
                return finite & gap_ok & (violation <= self.gap_rtol)

            check = (state.num_steps + 1) % self.gap_check_every == 0
            certified = jax.lax.cond(check, certify, lambda: jnp.array(False))
        verbose_printer(self.verbose)(
            step=("step", state.num_steps + 1),
            primal=("primal residual", primal),
            dual=("dual residual", dual),
            rho=("rho", state.rho),
        )
        new_state = _ADMMState(
            factors=state.factors,
            rho=rho,
            primal_residual=primal,
            dual_residual=dual,
            primal_tolerance=atol + rtol * pscale,
            dual_tolerance=atol + rtol * dscale,
            num_steps=state.num_steps + 1,
            Mz=Mz,
            My=My,
            certified=certified,
            linear_steps=state.linear_steps + linear_steps.astype(jnp.int32),
            data_result=state.data_result,
        )
        return new, new_state, None

    def terminate(
        self, problem, y, args, options, state: _ADMMState
    ) -> tuple[Bool[Array, ""], RESULTS]:
        # a residual or a scale that overflowed would pass `inf <= inf`: it must not
        finite = (
            jnp.isfinite(state.primal_residual)
            & jnp.isfinite(state.dual_residual)
            & jnp.isfinite(state.primal_tolerance)
            & jnp.isfinite(state.dual_tolerance)
        )
        overflow = (state.num_steps > 0) & ~finite
        converged = (
            finite
            & (state.primal_residual <= state.primal_tolerance)
            & (state.dual_residual <= state.dual_tolerance)
        )
        bad_data = state.data_result != RESULTS.successful
        result = RESULTS.where(
            bad_data,
            state.data_result,
            RESULTS.where(overflow, RESULTS.nonfinite, RESULTS.successful),
        )
        return converged | state.certified | overflow | bad_data, result

    def default_max_steps(self) -> int:
        """ADMM takes thousands of cheap steps (10^4-10^5 for tolerances near 1e-6 on
        degenerate programs)."""
        return 100_000

    def postprocess(self, problem, y, aux, args, options, state, result):
        stats = {
            "objective": problem.objective(y.v),
            "cone_violation": problem.cone_violation(y.v),
            "primal_residual": state.primal_residual,
            "dual_residual": state.dual_residual,
            "rho": state.rho,
            "linear_solver_steps": state.linear_steps,
        }
        if "rank" in state.factors:
            stats["nystrom_rank"] = state.factors["rank"]
        if not isinstance(problem, AdversarialReLUProblem):
            objective, bound, _ = dual_bound(problem, y.v, y.dual_s, y.dual_p)
            stats["lower_bound"] = bound
            stats["duality_gap"] = objective - bound
        return y, aux, stats

    def optimality(self, problem, y, args, options):
        """The fixed-point residual T(y) - y of one ADMM step (at the initial rho;
        the fixed points do not depend on rho because the duals are unscaled)."""
        method = _linear.resolve_method(
            self.linear_solver, problem, differentiable=True
        )
        factors = self._build(problem, method)
        rho = jnp.asarray(self.rho, problem.X.dtype)
        Mz, My = _products(problem, factors["w"], factors["wp"], y)
        new = self._update(problem, y, method, factors, rho, Mz, My)[0]
        return jax.tree.map(lambda a, b: a - b, new, y)
