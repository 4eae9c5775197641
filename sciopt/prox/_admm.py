"""Plug-and-play ADMM."""

from collections.abc import Callable

import equinox as eqx
import jax.numpy as jnp
import lineax as lx
from jaxtyping import Array, Bool, Float, Int

from .._misc import verbose_printer
from .._solution import RESULTS
from .._solver import AbstractSolver
from ._pgd import check_prox_problem, safe_norm, start_scale, stopping_test
from ._prox import AbstractProx, as_parameter, check_parameter


class _ADMMState(eqx.Module):
    x: Array
    u: Array
    objective: Float[Array, ""]
    primal_residual: Float[Array, ""]
    change: Float[Array, ""]
    num_steps: Int[Array, ""]
    inner_ok: Bool[Array, ""]
    scale: Float[Array, ""]


class PnPADMM(AbstractSolver):
    """Plug-and-play ADMM (scaled form) with penalty `rho`:

        x <- argmin_x D(x) + rho/2 ||x - z + u||^2     (a lineax linear solve)
        z <- prox(x + u)
        u <- u + x - z

    The iterate returned (and carried) is `z`, the prox output. With a prox of a
    regulariser `R`, the splitting targets `F(z) = D(z) + rho R(z)`, reported in
    `stats["objective"]` (`nan` where `R` is unknown) and per step with
    `saveat=sciopt.SaveAt(fn=sciopt.prox.step_stats)`. ADMM does
    not guarantee a monotone `F` for a nonconvex `R`; large `rho` helps.

    Stops when `||x - z||` and `||z_{k+1} - z_k||` are both below
    `atol + rtol ||z||` (norms computed so that they cannot overflow). Returns
    `RESULTS.diverged` when a residual is non-finite or `||z||` grows past
    `1e10 (1 + ||z_0|| + ||A^T y||)`, and `RESULTS.inner_solve_failed` when the
    `x`-update's linear solve fails. The default step budget (`max_steps=None` in
    `sciopt.solve`) is 2000 steps.

    **Fields:**

    - `prox`: a `sciopt.prox.AbstractProx`.
    - `penalty`: `rho` (> 0, stored as a JAX array: new values reuse the compiled
      solve).
    - `rtol`, `atol`: stopping tolerances.
    - `linear_solver`: a lineax solver for the `x` update (default: conjugate
      gradients with tolerances 1e-10 in float64 and 1e-5 in float32, at most 500
      iterations; the system `data_weight A^T A + rho I` is positive definite).
    - `verbose`: `True` prints, every step, the step number, the objective and the
      residuals; or a callable taking them as keyword arguments `name=(label, value)`
      (see `sciopt.verbose_printer`).

    ??? cite "References"

        ```bibtex
        @inproceedings{fang2024whats,
            title={What's in a Prior? Learned Proximal Networks for Inverse Problems},
            author={Fang, Zhenghan and Buchanan, Sam and Sulam, Jeremias},
            booktitle={International Conference on Learning Representations},
            year={2024}
        }

        @inproceedings{venkatakrishnan2013plug,
            title={Plug-and-Play Priors for Model Based Reconstruction},
            author={Venkatakrishnan, Singanallur V. and Bouman, Charles A. and
                    Wohlberg, Brendt},
            booktitle={IEEE Global Conference on Signal and Information Processing},
            pages={945--948},
            year={2013}
        }
        ```
    """

    prox: AbstractProx
    penalty: Float[Array, ""] = eqx.field(default=1.0, converter=as_parameter)
    rtol: float = 1e-5
    atol: float = 1e-8
    linear_solver: lx.AbstractLinearSolver | None = None
    verbose: bool | Callable[..., None] = False

    def __check_init__(self):
        check_parameter("penalty", self.penalty, strict=True)

    def _linear_solver(self, dtype):
        if self.linear_solver is not None:
            return self.linear_solver
        tol = 1e-10 if jnp.finfo(dtype).bits == 64 else 1e-5
        return lx.CG(rtol=tol, atol=tol, max_steps=500)

    def init(self, problem, y, args, options):
        check_prox_problem(self.prox, problem)
        return _ADMMState(
            x=y,
            u=jnp.zeros_like(y),
            objective=jnp.array(jnp.nan, y.dtype),
            primal_residual=jnp.array(jnp.inf, y.dtype),
            change=jnp.array(jnp.inf, y.dtype),
            num_steps=jnp.array(0),
            inner_ok=jnp.array(True),
            scale=start_scale(problem, y),
        )

    def default_max_steps(self) -> int:
        return 2000

    def step(self, problem, y, args, options, state):
        z, u = y, state.u
        rho = jnp.asarray(self.penalty, y.dtype)
        w = jnp.asarray(problem.data_weight, y.dtype)
        a = problem.operator
        system = lx.FunctionLinearOperator(
            lambda v: w * a.transpose().mv(a.mv(v)) + rho * v,
            a.in_structure(),
            tags=(lx.symmetric_tag, lx.positive_semidefinite_tag),
        )
        rhs = w * a.transpose().mv(problem.measurement) + rho * (z - u)
        linear_solver = self._linear_solver(y.dtype)
        sol = lx.linear_solve(
            system, rhs, linear_solver, options={"y0": state.x}, throw=False
        )
        x = sol.value
        new_z, value = self.prox.prox_and_value(x + u)
        new_u = u + x - new_z
        objective = problem.data_fidelity(new_z) + rho * value
        primal = safe_norm(x - new_z)
        change = safe_norm(new_z - z)
        verbose_printer(self.verbose)(
            step=("step", state.num_steps + 1),
            objective=("objective", objective),
            primal=("primal residual", primal),
            change=("change", change),
        )
        new_state = _ADMMState(
            x=x,
            u=new_u,
            objective=objective,
            primal_residual=primal,
            change=change,
            num_steps=state.num_steps + 1,
            inner_ok=sol.result == lx.RESULTS.successful,
            scale=state.scale,
        )
        return new_z, new_state, None

    def terminate(self, problem, y, args, options, state):
        changes = jnp.stack([state.primal_residual, state.change])
        done, diverged = stopping_test(
            y, changes, state.scale, state.num_steps, self.rtol, self.atol
        )
        result = RESULTS.where(diverged, RESULTS.diverged, RESULTS.successful)
        result = RESULTS.where(state.inner_ok, result, RESULTS.inner_solve_failed)
        return done | diverged | jnp.invert(state.inner_ok), result

    def postprocess(self, problem, y, aux, args, options, state, result):
        stats = {
            "objective": state.objective,
            "primal_residual": state.primal_residual,
            "change": state.change,
        }
        return y, aux, stats

    def optimality(self, problem, y, args, options):
        rho = jnp.asarray(self.penalty, y.dtype)
        return y - self.prox(y - problem.gradient(y) / rho)
