"""LV-HBA: the single-loop, Hessian-free method on the proximal Lagrangian value
function (Yao, Yu, Zeng and Zhang, ICLR 2024)."""

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Bool, Float, Int

from .._misc import verbose_printer
from .._solution import RESULTS
from .._solver import AbstractSolver
from ._common import (
    check_tolerances,
    converged,
    final_stats,
    get_key,
    safe_norm,
    start_flags,
    tolerance,
)
from ._implicit import maybe_polish, optimality
from ._problem import BilevelProblem


class _LVHBAState(eqx.Module):
    theta: Array
    lam: Array
    mu: Array
    z: Array
    z_eq: Array
    step: Int[Array, ""]
    residual: Float[Array, ""]
    scale: Float[Array, ""]
    finite_start: Bool[Array, ""]
    feasible_start: Bool[Array, ""]
    key: Array


class LVHBA(AbstractSolver):
    r"""LV-HBA: a single-loop, Hessian-free method for bilevel problems with convex,
    possibly coupled, lower-level constraints.

    It works on the proximal Lagrangian value function

    $$v_\gamma(x, y, z) = \min_{\theta \in Y} \max_{\lambda \ge 0} f(x, \theta)
    + \lambda^\top g(x, \theta) + \frac{\|\theta - y\|^2}{2\gamma_1}
    - \frac{\|\lambda - z\|^2}{2\gamma_2},$$

    and the penalised objective $F / c_k + f - v_\gamma$ with $c_k = c (k+1)^p$,
    $0 < p < 1/2$. Each step takes one projected gradient step on the inner saddle
    point $(\theta, \lambda)$ (step `eta`), then one on $(x, y)$ (step `alpha`)
    projected onto $C = \{(x, y) \in X \times Y : g(x, y) \le 0\}$, then one on $z$
    (step `beta`). No Hessians are formed. Equalities $h = 0$ get free multipliers
    $\mu$ (and $z_{eq}$). The multipliers and $z$ are clipped to `[0, bound]`
    (equalities: `[-bound, bound]`), the truncation of the paper's set $Z$.

    Projection onto $C$: separate projections when the lower level is unconstrained;
    closed form or Hildreth's method for a `Polyhedron` `coupled_set` (affine
    constraints); an inner augmented-Lagrangian solve otherwise (see
    `BilevelProblem.project`).

    The penalty leaves an $O(1/c_k)$ bias on the iterates, so judge the solution by
    `sol.stats["upper_objective"]` (`F(x, y*(x))` with an exact lower-level solve).

    Stochastic problems (`BilevelProblem(batch_size=...)`) draw one minibatch per
    oracle call from `options["key"]` (default `jax.random.key(0)`).

    **Stats:** `upper_objective` (true `Phi(x)`), `upper_objective_at_iterate`,
    `lower_gap` (`f(x, y) - f(x, y*(x))`), `lower_violation`, `lower_solution`,
    `residual` (the step of `(x, y)` over the step sizes), `penalty` (`c_k`),
    `multipliers` (`(lambda, mu)`).

    **Arguments:**

    - `alpha`: step on `(x, y)`; `alpha_x`: a separate step on `x` (default `alpha`),
        useful when `x` and `y` are scaled differently.
    - `beta`: step on `z`; `eta`: step on `(theta, lambda)`.
    - `gamma1`, `gamma2`: the proximal parameters of `v_gamma`.
    - `penalty`, `penalty_power`: `c` and `p` in `c_k = c (k+1)^p`.
    - `bound`: the clip of the multipliers and `z`.
    - `simultaneous`: `True` updates `(theta, lambda)` simultaneously (both gradients
        at the old point, as in the authors' code); the default `False` updates
        `lambda` with the new `theta` (alternating descent-ascent), which tolerates a
        larger `eta` when the constraints couple strongly.
    - `rtol`, `atol`: the solve stops (`RESULTS.successful`) when
        `residual <= atol + rtol * ||(x, y)||` (default `None`: `1e-6` in float64,
        `1e-5` in float32; the residual falls slowly, as the penalty `c_k` grows,
        so much tighter tolerances need very many steps). Otherwise it runs to
        `max_steps` (default 5000, `sciopt.solve(..., max_steps=None)`) and returns
        `RESULTS.steps_exhausted`; a run of a fixed number of steps, as in the
        paper's experiments, is `max_steps=N` with `throw=False`, judged by its stats.
    - `verbose`: print progress.

    Returns `RESULTS.diverged` when `||(x, y)||` grows past `1e10` times its starting
    scale, `RESULTS.lower_level_infeasible` when the lower level is infeasible at the
    start and `RESULTS.nonfinite_start` when an oracle is not finite there.

    In practice keep `eta >= alpha` (the inner saddle point must track `(x, y)`)
    and `alpha` below `1 / L` for the smoothness `L` of `f` and `F / c`; a larger
    `penalty` lowers the `O(1/c_k)` bias but slows the progress on `F`.

    **Differentiation.** With the default `adjoint=sciopt.ImplicitAdjoint()`,
    gradients of the solution with respect to `args` (and to arrays in the problem)
    come from the implicit function theorem applied to `optimality`: the lower
    level's KKT system with its active set held fixed (coupled inequalities, `h`
    and the set `Y` included) together with the projected-gradient stationarity of
    the upper level, `x = P_X(x - grad Phi(x))` (see `docs/bilevel.md`,
    "Differentiating a bilevel solution"). Where the solution map is not
    differentiable (a weakly active constraint, dependent active gradients, a
    non-unique lower-level solution) the gradient raises instead. The gradient is
    exact at an exact solution: `polish` refines a successful solve by Newton steps
    on that condition (default `None`: when `x.size + y.size <= 100`; dense
    matrices), so the returned value is the exact stationary point and the gradient
    matches finite differences to round-off.

    ??? cite "References"

        ```bibtex
        @inproceedings{yao2024constrained,
            title={Constrained Bi-Level Optimization: Proximal {L}agrangian Value
                   Function Approach and {H}essian-free Algorithm},
            author={Yao, Wei and Yu, Chengming and Zeng, Shangzhi and Zhang, Jin},
            booktitle={International Conference on Learning Representations},
            year={2024},
            url={https://arxiv.org/abs/2401.16164}
        }
        ```
    """

    alpha: float = 1e-2
    alpha_x: float | None = None
    beta: float = 1e-2
    eta: float = 1e-2
    gamma1: float = 1.0
    gamma2: float = 1.0
    penalty: float = 1.0
    penalty_power: float = 0.3
    bound: float = 1e3
    simultaneous: bool = False
    rtol: float | None = None
    atol: float | None = None
    polish: bool | None = None
    verbose: bool | Callable[..., None] = False

    def __check_init__(self):
        for name in ("alpha", "beta", "eta", "gamma1", "gamma2", "penalty", "bound"):
            if not getattr(self, name) > 0:
                raise ValueError(
                    f"`{name}` must be positive, got {getattr(self, name)}."
                )
        if not 0 < self.penalty_power < 0.5:
            raise ValueError(
                f"`penalty_power` must lie in (0, 1/2), got {self.penalty_power}."
            )
        check_tolerances(self, "rtol", "atol")

    def default_max_steps(self) -> int:
        return 5000

    def init(self, problem: BilevelProblem, y, args, options: dict[str, Any]):
        if not isinstance(problem, BilevelProblem):
            raise TypeError(
                "`LVHBA` solves `sciopt.bilevel.BilevelProblem`s; a `NestedProblem` "
                "is solved by `sciopt.bilevel.AID(lower_solver=...)`."
            )
        x, yy = y
        key = get_key(options)
        finite, feasible = start_flags(problem, x, yy, args, key)
        g = problem.g(x, yy, args)
        h = problem.h(x, yy, args)
        return _LVHBAState(
            theta=yy,
            lam=jnp.zeros_like(g),
            mu=jnp.zeros_like(h),
            z=jnp.zeros_like(g),
            z_eq=jnp.zeros_like(h),
            step=jnp.array(0),
            residual=jnp.array(jnp.inf, x.dtype),
            scale=1 + safe_norm((x, yy)),
            finite_start=finite,
            feasible_start=feasible,
            key=jr.key_data(key),
        )

    def step(self, problem: BilevelProblem, y, args, options, state: _LVHBAState):
        x, yy = y
        dtype = x.dtype
        k = state.step
        keys = jr.split(jr.fold_in(jr.wrap_key_data(state.key), k), 4)
        if not problem.stochastic:
            keys = [None] * 4
        alpha, beta, eta = (
            jnp.asarray(v, dtype) for v in (self.alpha, self.beta, self.eta)
        )
        g1, g2 = jnp.asarray(self.gamma1, dtype), jnp.asarray(self.gamma2, dtype)
        bound = jnp.asarray(self.bound, dtype)
        ck = jnp.asarray(self.penalty, dtype) * (k + 1).astype(dtype) ** jnp.asarray(
            self.penalty_power, dtype
        )

        def lagrangian(x, theta, lam, mu, key):
            return (
                problem.f(x, theta, args, key)
                + jnp.vdot(lam, problem.g(x, theta, args))
                + jnp.vdot(mu, problem.h(x, theta, args))
            )

        # (theta, lambda, mu): one projected gradient step on the inner saddle point.
        d_theta = (
            jax.grad(lagrangian, argnums=1)(
                x, state.theta, state.lam, state.mu, keys[0]
            )
            + (state.theta - yy) / g1
        )
        theta = problem.lower_set.project(state.theta - eta * d_theta)
        theta_dual = state.theta if self.simultaneous else theta
        d_lam = -problem.g(x, theta_dual, args) + (state.lam - state.z) / g2
        lam = jnp.clip(state.lam - eta * d_lam, 0, bound)
        d_mu = -problem.h(x, theta_dual, args) + (state.mu - state.z_eq) / g2
        mu = jnp.clip(state.mu - eta * d_mu, -bound, bound)

        # (x, y): one projected gradient step on F / c_k + f - v_gamma.
        grad_upper = jax.grad(problem.F, argnums=(0, 1))(x, yy, args, keys[1])
        grad_lower = jax.grad(problem.f, argnums=(0, 1))(x, yy, args, keys[2])
        grad_v_x = jax.grad(lagrangian)(x, theta, lam, mu, keys[3])
        d_x = grad_upper[0] / ck + grad_lower[0] - grad_v_x
        d_y = grad_upper[1] / ck + grad_lower[1] - (yy - theta) / g1
        alpha_x = alpha if self.alpha_x is None else jnp.asarray(self.alpha_x, dtype)
        new_x, new_y = problem.project(x - alpha_x * d_x, yy - alpha * d_y, args)

        # z: one projected gradient step.
        z = jnp.clip(state.z - beta * (state.z - lam) / g2, 0, bound)
        z_eq = jnp.clip(state.z_eq - beta * (state.z_eq - mu) / g2, -bound, bound)

        residual = safe_norm(((new_x - x) / alpha_x, (new_y - yy) / alpha))
        verbose_printer(self.verbose)(
            step=("LV-HBA step", k + 1),
            upper=("F(x, y)", problem.F(new_x, new_y, args)),
            residual=("residual", residual),
        )
        new_state = _LVHBAState(
            theta=theta,
            lam=lam,
            mu=mu,
            z=z,
            z_eq=z_eq,
            step=k + 1,
            residual=residual,
            scale=state.scale,
            finite_start=state.finite_start,
            feasible_start=state.feasible_start,
            key=state.key,
        )
        return (new_x, new_y), new_state, None

    def terminate(self, problem, y, args, options, state: _LVHBAState):
        x, yy = y
        rtol = tolerance(self.rtol, x.dtype, 1e-6, 1e-5)
        atol = tolerance(self.atol, x.dtype, 1e-6, 1e-5)
        done = converged(state.residual, atol + rtol * safe_norm((x, yy)))
        # Growth by ten orders of magnitude: the steps are too long for the problem.
        diverged = safe_norm((x, yy)) > 1e10 * state.scale
        result = RESULTS.where(diverged, RESULTS.diverged, RESULTS.successful)
        result = RESULTS.where(
            state.feasible_start, result, RESULTS.lower_level_infeasible
        )
        result = RESULTS.where(state.finite_start, result, RESULTS.nonfinite_start)
        bad = jnp.invert(state.finite_start & state.feasible_start) | diverged
        return done | bad, result

    def postprocess(self, problem, y, aux, args, options, state: _LVHBAState, result):
        x, yy = y
        dtype = x.dtype
        (x, yy), polished = maybe_polish(self.polish, problem, x, yy, args, result)
        y = (x, yy)
        stats = final_stats(problem, x, yy, args)
        stats["polished"] = polished
        stats["residual"] = state.residual
        stats["penalty"] = jnp.asarray(self.penalty, dtype) * state.step.astype(
            dtype
        ) ** jnp.asarray(self.penalty_power, dtype)
        stats["multipliers"] = (state.lam, state.mu)
        return y, aux, stats

    def optimality(self, problem, y, args, options):
        return optimality(problem, y, args)
