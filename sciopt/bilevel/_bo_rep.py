"""BO-REP: bilevel optimisation with normalised momentum, lower-level initialisation
refinement and periodic lower-level updates (Hao, Gong and Liu, ICLR 2024)."""

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
from ._aid import _check_unconstrained
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


class _BOREPState(eqx.Module):
    y_start: Array
    z: Array
    momentum: Array
    step: Int[Array, ""]
    momentum_norm: Float[Array, ""]
    lower_gradient_norm: Float[Array, ""]
    z_residual: Float[Array, ""]
    finite_start: Bool[Array, ""]
    key: Array


def _sgd(problem, x, y, args, key, steps, learning_rate):
    """`steps` (stochastic) gradient steps on the lower level, warm-started at `y`."""

    def body(i, y):
        k = jr.fold_in(key, i) if problem.stochastic else None
        return y - learning_rate * jax.grad(problem.f, argnums=1)(x, y, args, k)

    return jax.lax.fori_loop(0, steps, body, y)


class BOREP(AbstractSolver):
    r"""BO-REP: bilevel optimisation for upper levels with unbounded smoothness
    (gradients whose Lipschitz constant grows with the gradient norm, like `cosh`).

    For an unconstrained, strongly convex lower level $f$ and an upper level $F$:

    - initialisation refinement: `init_steps` steps of epoch-SGD on $f(x_0, \cdot)$
      (`init_epochs` epochs, halving the step size each epoch);
    - periodic updates: every `period` steps, `lower_steps` warm-started SGD steps on
      $f(x_k, \cdot)$;
    - the linear system $\nabla^2_{yy} f\, z = \nabla_y F$ tracked by one projected
      SGD step per iteration, $z \leftarrow \Pi_{\|z\| \le R}(z - \nu(\nabla^2_{yy} f
      z - \nabla_y F))$, with Hessian-vector products only;
    - normalised momentum on $x$: $m \leftarrow \beta m + (1-\beta)(\nabla_x F -
      \nabla^2_{xy} f\, z)$, $x \leftarrow P_X(x - \eta\, m / \|m\|)$.

    The normalised step makes the method stable where fixed-step gradient descent
    diverges. The step `learning_rate` sets the final accuracy (about `eta` times
    the local condition number); pass `decay` to shrink it as `eta / (1 + decay k)`.

    Stochastic problems (`BilevelProblem(batch_size=...)`) draw a minibatch per oracle
    call from `options["key"]`.

    **Arguments:** `learning_rate` ($\eta$), `momentum` ($\beta$), `lower_learning_rate`
    (SGD step on $y$), `z_learning_rate` ($\nu$), `radius` ($R$), `period` ($I$),
    `lower_steps` ($N$), `init_steps` ($T_0$), `init_epochs`, `decay`, `atol` (stop,
    with `RESULTS.successful`, when $\|m\|$, the lower-level gradient
    $\|\nabla_y f\|$ and the residual $\|\nabla^2_{yy} f\, z - \nabla_y F\|$ of the
    linear system are all at most `atol`; default `None`: `1e-6` in float64, `1e-4`
    in float32), `verbose`.

    Without `decay` the normalised steps keep their length $\eta$, so $x$ settles in
    a neighbourhood of size about $\eta$ and $\|m\|$ stops falling at a level set by
    $\eta$: choose `atol` above that level, or `decay > 0`. Otherwise the solve runs
    to `max_steps` (default 2000, `sciopt.solve(..., max_steps=None)`) and returns
    `RESULTS.steps_exhausted`; a run of a fixed number of steps, as in the paper's
    experiments, is `max_steps=N` with `throw=False`, judged by its stats.

    **Stats:** as `LVHBA` (`upper_objective` is the true $\Phi(x)$), plus
    `momentum_norm`, `lower_gradient_norm` and `z_residual` (of the last step).

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
        @inproceedings{hao2024bilevel,
            title={Bilevel Optimization under Unbounded Smoothness: A New Algorithm
                   and Convergence Analysis},
            author={Hao, Jie and Gong, Xiaochuan and Liu, Mingrui},
            booktitle={International Conference on Learning Representations},
            year={2024},
            url={https://arxiv.org/abs/2401.09587}
        }
        ```
    """

    learning_rate: float = 1e-2
    momentum: float = 0.9
    lower_learning_rate: float = 1e-1
    z_learning_rate: float = 1e-1
    radius: float = 1e3
    period: int = eqx.field(static=True, default=2)
    lower_steps: int = eqx.field(static=True, default=5)
    init_steps: int = eqx.field(static=True, default=200)
    init_epochs: int = eqx.field(static=True, default=4)
    decay: float = 0.0
    atol: float | None = None
    polish: bool | None = None
    verbose: bool | Callable[..., None] = False

    def __check_init__(self):
        for name in (
            "learning_rate",
            "lower_learning_rate",
            "z_learning_rate",
            "radius",
        ):
            if not getattr(self, name) > 0:
                raise ValueError(
                    f"`{name}` must be positive, got {getattr(self, name)}."
                )
        if not 0 <= self.momentum < 1:
            raise ValueError(f"`momentum` must lie in [0, 1), got {self.momentum}.")
        if self.period < 1 or self.lower_steps < 0 or self.init_steps < 0:
            raise ValueError("`period` must be >= 1; `lower_steps`, `init_steps` >= 0.")
        if self.init_epochs < 1:
            raise ValueError("`init_epochs` must be >= 1.")
        if not self.decay >= 0:
            raise ValueError(f"`decay` must be non-negative, got {self.decay}.")
        check_tolerances(self, "atol")

    def default_max_steps(self) -> int:
        return 2000

    def init(self, problem: BilevelProblem, y, args, options: dict[str, Any]):
        _check_unconstrained(problem, "BOREP")
        x, yy = y
        key = get_key(options)
        finite, _ = start_flags(problem, x, yy, args, key)
        y_start = self._refine(problem, x, yy, args, jr.fold_in(key, 2**31))
        return _BOREPState(
            y_start=y_start,
            z=jnp.zeros_like(yy),
            momentum=jnp.zeros_like(x),
            step=jnp.array(0),
            momentum_norm=jnp.array(jnp.inf, x.dtype),
            lower_gradient_norm=jnp.array(jnp.inf, x.dtype),
            z_residual=jnp.array(jnp.inf, x.dtype),
            finite_start=finite,
            key=jr.key_data(key),
        )

    def _refine(self, problem, x, y, args, key):
        """Epoch-SGD on the lower level at the starting point."""
        per_epoch = -(-self.init_steps // self.init_epochs)
        lr = jnp.asarray(self.lower_learning_rate, y.dtype)
        for epoch in range(self.init_epochs):
            y = _sgd(problem, x, y, args, jr.fold_in(key, epoch), per_epoch, lr)
            lr = lr / 2
        return y

    def step(self, problem: BilevelProblem, y, args, options, state: _BOREPState):
        x, yy = y
        dtype = x.dtype
        k = state.step
        key = jr.wrap_key_data(state.key)
        yy = jnp.where(k == 0, state.y_start, yy)
        step_key, key_z1, key_z2, key_x1, key_x2 = jr.split(jr.fold_in(key, k), 5)
        if not problem.stochastic:
            key_z1 = key_z2 = key_x1 = key_x2 = None
        lower_lr = jnp.asarray(self.lower_learning_rate, dtype)
        yy = jax.lax.cond(
            k % self.period == 0,
            lambda y: _sgd(problem, x, y, args, step_key, self.lower_steps, lower_lr),
            lambda y: y,
            yy,
        )

        # z: one projected SGD step on 1/2 z^T H z - z^T grad_y F.
        def grad_y_lower(x, y, key):
            return jax.grad(problem.f, argnums=1)(x, y, args, key)

        lower_grad, hz = jax.jvp(
            lambda y: grad_y_lower(x, y, key_z1), (yy,), (state.z,)
        )
        grad_upper_y = jax.grad(problem.F, argnums=1)(x, yy, args, key_z2)
        nu = jnp.asarray(self.z_learning_rate, dtype)
        z_residual = safe_norm(hz - grad_upper_y)
        z = state.z - nu * (hz - grad_upper_y)
        radius = jnp.asarray(self.radius, dtype)
        norm_z = safe_norm(z)
        z = jnp.where(norm_z > radius, radius / jnp.where(norm_z > 0, norm_z, 1), 1) * z

        # Hypergradient estimate and normalised momentum on x.
        grad_upper_x = jax.grad(problem.F, argnums=0)(x, yy, args, key_x1)
        cross = jax.grad(lambda x: jnp.vdot(grad_y_lower(x, yy, key_x2), z))(x)
        estimate = grad_upper_x - cross
        beta = jnp.asarray(self.momentum, dtype)
        m = beta * state.momentum + (1 - beta) * estimate
        m_norm = safe_norm(m)
        eta = jnp.asarray(self.learning_rate, dtype) / (
            1 + jnp.asarray(self.decay, dtype) * k.astype(dtype)
        )
        new_x = problem.upper_set.project(
            x - eta * m / jnp.where(m_norm > 0, m_norm, 1)
        )
        verbose_printer(self.verbose)(
            step=("BO-REP step", k + 1),
            upper=("F(x, y)", problem.F(new_x, yy, args)),
            momentum=("|m|", m_norm),
        )
        new_state = _BOREPState(
            y_start=state.y_start,
            z=z,
            momentum=m,
            step=k + 1,
            momentum_norm=m_norm,
            lower_gradient_norm=safe_norm(lower_grad),
            z_residual=z_residual,
            finite_start=state.finite_start,
            key=state.key,
        )
        return (new_x, yy), new_state, None

    def terminate(self, problem, y, args, options, state: _BOREPState):
        x, _ = y
        atol = tolerance(self.atol, x.dtype, 1e-6, 1e-4)
        # The momentum estimates the hypergradient only once y and z have caught
        # up with x: all three must be small.
        worst = jnp.maximum(
            state.momentum_norm,
            jnp.maximum(state.lower_gradient_norm, state.z_residual),
        )
        done = converged(worst, jnp.asarray(atol, x.dtype))
        result = RESULTS.where(
            state.finite_start, RESULTS.successful, RESULTS.nonfinite_start
        )
        return done | jnp.invert(state.finite_start), result

    def postprocess(self, problem, y, aux, args, options, state: _BOREPState, result):
        x, yy = y
        (x, yy), polished = maybe_polish(self.polish, problem, x, yy, args, result)
        y = (x, yy)
        stats = final_stats(problem, x, yy, args)
        stats["polished"] = polished
        stats["momentum_norm"] = state.momentum_norm
        stats["lower_gradient_norm"] = state.lower_gradient_norm
        stats["z_residual"] = state.z_residual
        return y, aux, stats

    def optimality(self, problem, y, args, options):
        return optimality(problem, y, args)
