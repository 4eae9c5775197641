"""Plug-and-play proximal gradient descent."""

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from .._misc import safe_norm as safe_norm, verbose_printer
from .._solution import RESULTS
from .._solver import AbstractSolver
from ._problem import LinearInverseProblem
from ._prox import AbstractProx, as_parameter, check_parameter


def check_prox_problem(prox, problem):
    if not isinstance(problem, LinearInverseProblem):
        raise TypeError(
            "The plug-and-play solvers need a `sciopt.prox.LinearInverseProblem`, got "
            f"{type(problem).__name__}."
        )
    if not isinstance(prox, AbstractProx):
        raise TypeError(
            "`prox` must be a `sciopt.prox.AbstractProx` (wrap a plain denoiser with "
            f"`sciopt.prox.FunctionProx`), got {type(prox).__name__}."
        )


def step_stats(y, state, aux) -> dict[str, Array]:
    """What a plug-and-play solver did in its last step, for `sciopt.SaveAt`:

    ```python
    saveat = sciopt.SaveAt(fn=sciopt.prox.step_stats)
    sol = sciopt.solve(problem, sciopt.prox.PnPADMM(prox), saveat=saveat)
    sol.history["objective"]  # entry 0 at the start (nan), entry k after step k
    ```

    Keys: `objective` (`F` at the iterate, `nan` where the prox's regulariser is
    unknown, and at the start), `change` (`||x_k - x_{k-1}||`) and, for `PnPADMM`,
    `primal_residual` (`||x - z||`).
    """
    del y, aux
    stats = {"objective": state.objective, "change": state.change}
    if hasattr(state, "primal_residual"):
        stats["primal_residual"] = state.primal_residual
    return stats


# Growth of the iterate by this factor over its starting scale means divergence.
DIVERGENCE_FACTOR = 1e10


def start_scale(problem, y: Array) -> Float[Array, ""]:
    """The scale divergence is judged against: `1 + ||y0|| + ||A^T b||`."""
    back = problem.operator.transpose().mv(problem.measurement)
    return 1 + safe_norm(y) + safe_norm(back).astype(y.dtype)


def stopping_test(y, changes, scale, num_steps, rtol, atol):
    """`(done, diverged)` for the plug-and-play solvers (both `False` before the
    first step, when `changes` are still `inf`).

    Converged when every entry of `changes` is at most `atol + rtol ||y||`, with all
    the quantities finite (an overflowed norm never passes the test); diverged when a
    change or `||y||` is non-finite, or `||y||` exceeds `DIVERGENCE_FACTOR * scale`.
    """
    norm = safe_norm(y)
    finite = jnp.isfinite(norm) & jnp.all(jnp.isfinite(changes))
    tol = jnp.asarray(atol, norm.dtype) + jnp.asarray(rtol, norm.dtype) * norm
    started = num_steps > 0
    done = started & finite & jnp.all(changes <= tol)
    diverged = started & (jnp.invert(finite) | (norm > DIVERGENCE_FACTOR * scale))
    return done, diverged


class _PGDState(eqx.Module):
    step_size: Float[Array, ""]
    objective: Float[Array, ""]
    change: Float[Array, ""]
    num_steps: Int[Array, ""]
    scale: Float[Array, ""]


class PnPProximalGradient(AbstractSolver):
    """Plug-and-play proximal gradient descent, `x <- prox(x - eta grad D(x))`.

    With a prox of a regulariser `R` (an LPN, the soft-threshold, TV), the iterates
    minimise `F(x) = D(x) + R(x) / eta`, where `D` is the problem's data fidelity and
    `eta` the step size; `F` at the solution is reported in `stats["objective"]`
    (`nan` where `R` is unknown), and per step with
    `saveat=sciopt.SaveAt(fn=sciopt.prox.step_stats)`. For `eta <= 1/L` (`L`
    the Lipschitz constant of `grad D`) `F` decreases monotonically, even for a
    nonconvex learned `R`, because an LPN is an exact prox.

    Stops when `||x_{k+1} - x_k|| <= atol + rtol ||x_{k+1}||` (norms computed so
    that they cannot overflow). Returns `RESULTS.diverged` when a step change is
    non-finite or `||x||` grows past `1e10 (1 + ||x_0|| + ||A^T y||)`, the sign of a
    step size above `2/L`. The default step budget (`max_steps=None` in
    `sciopt.solve`) is 2000 steps.

    **Fields:**

    - `prox`: a `sciopt.prox.AbstractProx`.
    - `step_size`: `eta` (> 0, stored as a JAX array: new values reuse the
      compiled solve); `None` uses `1/L` estimated by power iteration.
    - `rtol`, `atol`: stopping tolerances.
    - `verbose`: `True` prints, every step, the step number, the objective and the
      change of the iterate; or a callable taking them as keyword arguments
      `name=(label, value)` (see `sciopt.verbose_printer`).

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
    step_size: Float[Array, ""] | None = eqx.field(default=None, converter=as_parameter)
    rtol: float = 1e-5
    atol: float = 1e-8
    verbose: bool | Callable[..., None] = False

    def __check_init__(self):
        check_parameter("step_size", self.step_size, strict=True)

    def _eta(self, problem, dtype):
        if self.step_size is None:
            return 1 / jax.lax.stop_gradient(problem.lipschitz()).astype(dtype)
        return jnp.asarray(self.step_size, dtype)

    def init(self, problem, y, args, options):
        check_prox_problem(self.prox, problem)
        nan = jnp.array(jnp.nan, y.dtype)
        return _PGDState(
            step_size=self._eta(problem, y.dtype),
            objective=nan,
            change=jnp.array(jnp.inf, y.dtype),
            num_steps=jnp.array(0),
            scale=start_scale(problem, y),
        )

    def default_max_steps(self) -> int:
        return 2000

    def step(self, problem, y, args, options, state):
        eta = state.step_size
        x, value = self.prox.prox_and_value(y - eta * problem.gradient(y))
        objective = problem.data_fidelity(x) + value / eta
        change = safe_norm(x - y)
        verbose_printer(self.verbose)(
            step=("step", state.num_steps + 1),
            objective=("objective", objective),
            change=("change", change),
        )
        new_state = _PGDState(
            step_size=eta,
            objective=objective,
            change=change,
            num_steps=state.num_steps + 1,
            scale=state.scale,
        )
        return x, new_state, None

    def terminate(self, problem, y, args, options, state):
        done, diverged = stopping_test(
            y, state.change, state.scale, state.num_steps, self.rtol, self.atol
        )
        result = RESULTS.where(diverged, RESULTS.diverged, RESULTS.successful)
        return done | diverged, result

    def postprocess(self, problem, y, aux, args, options, state, result):
        stats = {
            "objective": state.objective,
            "step_size": state.step_size,
            "change": state.change,
        }
        return y, aux, stats

    def optimality(self, problem, y, args, options):
        eta = self._eta(problem, y.dtype)
        return y - self.prox(y - eta * problem.gradient(y))
