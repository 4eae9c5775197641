"""The sampled convex program (Bai, Gautam & Sojoudi 2023, section 2) and FISTA."""

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, ArrayLike, PRNGKeyArray

from .._misc import verbose_printer
from .._proximal_gradient import fista_init, fista_step, FISTAState
from .._solution import RESULTS
from .._solver import AbstractProblem, AbstractSolver
from ._losses import check_loss, loss_value
from ._patterns import add_bias_column
from ._problem import _validate, data_result


def sample_directions(
    key: PRNGKeyArray, d: int, num: int, *, bias: bool = False, dtype=None
) -> Array:
    """`num` first-layer directions drawn uniformly on the unit sphere of R^d (R^{d+1}
    with a bias), as a (d, num) array."""
    if not isinstance(num, int) or num < 1:
        raise ValueError(f"`num` must be a positive int, got {num!r}.")
    dtype = jnp.result_type(float) if dtype is None else dtype
    h = jr.normal(key, (d + int(bias), num), dtype=dtype)
    return h / jnp.linalg.norm(h, axis=0, keepdims=True)


class SampledConvexProgram(AbstractProblem):
    """The sampled convex program: fixed first-layer directions, convex in the output.

    min_alpha loss(sum_j (X h_j)_+ alpha_j, y) + beta ||alpha||_1

    over the output weights alpha, for fixed unit directions h_j. Rescaling a neuron
    (h, a) to (t h, a / t) leaves it unchanged and beta/2 (t^2 + a^2/t^2) >= beta |a|,
    so this is the weight-decay training problem restricted to the sampled directions:
    its optimum upper-bounds the global one and approaches it as the number of
    directions grows (a scenario program: its dual samples the constraint
    |lambda^T (X h)_+| <= beta at N directions). Solve with `sciopt.relu.FISTA`.

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
        ```
    """

    X: Array
    y: Array
    directions: Array
    beta: Array
    loss: str = eqx.field(static=True)
    bias: bool = eqx.field(static=True)

    def __init__(
        self,
        X: ArrayLike,
        y: ArrayLike,
        directions: ArrayLike,
        beta: ArrayLike,
        loss: str = "squared",
        *,
        bias: bool = False,
    ):
        """**Arguments:**

        - `X`: (n, d) data without the bias column; `y`: (n,) targets.
        - `directions`: (d, N) first-layer directions ((d + 1, N) with `bias`), e.g.
          from `sciopt.relu.sample_directions`; normalised to unit length.
        - `beta`: weight decay, > 0.
        - `loss`: `"squared"` or `"bce"` (the smooth losses; FISTA needs a gradient).
        - `bias`: append a ones column to `X`.
        """
        check_loss(loss)
        if loss == "hinge":
            raise ValueError(
                "SampledConvexProgram needs a smooth loss: use loss='squared' or 'bce' "
                "(or ConvexReLUProblem with ADMM for the hinge loss)."
            )
        X, y, _, beta = _validate(X, y, jnp.ones((jnp.shape(X)[0], 1)), beta, loss)
        X = add_bias_column(X) if bias else X
        directions = jnp.asarray(directions, X.dtype)
        if directions.ndim != 2 or directions.shape[0] != X.shape[1]:
            raise ValueError(
                f"`directions` must have shape ({X.shape[1]}, N) (d rows"
                f"{', plus one for the bias' if bias else ''}), got "
                f"{directions.shape}."
            )
        self.X, self.y, self.beta, self.loss, self.bias = X, y, beta, loss, bias
        self.directions = directions / jnp.linalg.norm(
            directions, axis=0, keepdims=True
        )

    @property
    def features(self) -> Array:
        """(n, N) the hidden activations (X h_j)_+."""
        return jax.nn.relu(self.X @ self.directions)

    def objective(self, alpha: Array) -> Array:
        return loss_value(
            self.loss, self.features @ alpha, self.y
        ) + self.beta * jnp.sum(jnp.abs(alpha))

    def default_y0(self, args) -> Array:
        return jnp.zeros(self.directions.shape[1], self.X.dtype)

    def check(self, y0, args) -> None:
        if getattr(y0, "shape", None) != (self.directions.shape[1],):
            raise ValueError(
                f"`y0` must be an array of shape ({self.directions.shape[1]},), got "
                f"{type(y0).__name__} {getattr(y0, 'shape', '')}."
            )


class _FISTAState(eqx.Module):
    fista: FISTAState
    residual: Array
    scale: Array
    num_steps: Array
    data_result: RESULTS


def _soft(x, t):
    return jnp.sign(x) * jax.nn.relu(jnp.abs(x) - t)


class FISTA(AbstractSolver):
    """FISTA with adaptive restart for `sciopt.relu.SampledConvexProgram`.

    Each step is one iteration of the library's proximal-gradient routine
    (`sciopt._proximal_gradient.fista_step`: Beck and Teboulle 2009, with the
    gradient restart of O'Donoghue and Candes 2015) with the soft-threshold as the
    proximal operator of the l1 penalty. Step 1/L with L = ||Phi||_2^2 times the
    loss curvature bound (1 for squared, 1/4 for cross-entropy), Phi the hidden
    activations. Stops when the proximal-gradient
    residual ||alpha - prox(alpha - grad / L)|| L <= atol + rtol ||grad|| (`None`,
    the default: `rtol = 1e-8, atol = 1e-10` in float64, `1e-5, 1e-6` in float32).
    The default step budget of `sciopt.solve(..., max_steps=None)` is 100 000.
    `Solution.stats` holds `objective` and `residual`. `verbose`: `True` prints the
    step number and the residual every step; or a callable taking them as keyword
    arguments `name=(label, value)` (see `sciopt.verbose_printer`).

    ??? cite "References"

        ```bibtex
        @article{beck2009fast,
            title={A Fast Iterative Shrinkage-Thresholding Algorithm for Linear
                   Inverse Problems},
            author={Beck, Amir and Teboulle, Marc},
            journal={SIAM Journal on Imaging Sciences},
            volume={2},
            number={1},
            pages={183--202},
            year={2009}
        }
        ```
    """

    rtol: float | None = None
    atol: float | None = None
    verbose: bool | Callable[..., None] = False

    def _lipschitz(self, problem):
        Phi = jax.lax.stop_gradient(problem.features)
        curvature = 1.0 if problem.loss == "squared" else 0.25
        return curvature * jnp.linalg.norm(Phi, 2) ** 2 + 1e-12

    def _grad(self, problem, alpha):
        return jax.grad(
            lambda a: loss_value(problem.loss, problem.features @ a, problem.y)
        )(alpha)

    def init(self, problem, y, args, options: dict[str, Any]) -> _FISTAState:
        if not isinstance(problem, SampledConvexProgram):
            raise TypeError(
                "`sciopt.relu.FISTA` solves SampledConvexProgram, got "
                f"{type(problem).__name__}."
            )
        dtype = y.dtype
        return _FISTAState(
            fista=fista_init(y, self._lipschitz(problem)),
            residual=jnp.array(jnp.inf, dtype),
            scale=jnp.zeros((), dtype),
            num_steps=jnp.array(0),
            data_result=data_result(problem),
        )

    def step(self, problem, y, args, options, state: _FISTAState):
        def prox(z, step):
            return _soft(z, step * problem.beta)

        fista = fista_step(lambda a: self._grad(problem, a), prox, state.fista)
        new = fista.x
        t = 1 / fista.lipschitz
        # the stopping residual is the gradient mapping at the new iterate
        grad_new = self._grad(problem, new)
        residual = jnp.linalg.norm(new - prox(new - t * grad_new, t)) / t
        verbose_printer(self.verbose)(
            step=("step", state.num_steps + 1),
            residual=("prox-grad residual", residual),
        )
        new_state = _FISTAState(
            fista=fista,
            residual=residual,
            scale=jnp.linalg.norm(grad_new),
            num_steps=state.num_steps + 1,
            data_result=state.data_result,
        )
        return new, new_state, None

    def terminate(self, problem, y, args, options, state):
        rtol = self.rtol
        if rtol is None:
            rtol = 1e-8 if jnp.dtype(y.dtype).itemsize >= 8 else 1e-5
        atol = self.atol
        if atol is None:
            atol = 1e-10 if jnp.dtype(y.dtype).itemsize >= 8 else 1e-6
        # an overflowed residual or scale would pass `inf <= inf`: it must not
        finite = jnp.isfinite(state.residual) & jnp.isfinite(state.scale)
        initial = (state.residual == jnp.inf) & (state.scale == 0)  # no step yet
        overflow = ~finite & ~initial
        done = finite & (state.residual <= atol + rtol * state.scale)
        bad_data = state.data_result != RESULTS.successful
        result = RESULTS.where(
            bad_data,
            state.data_result,
            RESULTS.where(overflow, RESULTS.nonfinite, RESULTS.successful),
        )
        return done | overflow | bad_data, result

    def default_max_steps(self) -> int:
        """FISTA is a first-order method: thousands of steps on ordinary instances."""
        return 100_000

    def postprocess(self, problem, y, aux, args, options, state, result):
        return y, aux, {"objective": problem.objective(y), "residual": state.residual}

    def optimality(self, problem, y, args, options):
        t = 1 / self._lipschitz(problem)
        grad = self._grad(problem, y)
        return (y - _soft(y - t * grad, t * problem.beta)) / t
