"""Learned proximal networks: exact proximal operators `f = grad psi`."""

import jax
import jax.numpy as jnp
import optimistix as optx
from jaxtyping import Array

from .._misc import raise_if_failed
from .._solution import RESULTS, Solution
from ._icnn import AbstractICNN
from ._prox import AbstractProx


def _evaluate(y, potential):
    return potential(y)


def _conjugate_objective(y, args):
    potential, point = args
    return potential(y) - jnp.vdot(point, y)


def _default_tol(dtype):
    return 1e-9 if jnp.finfo(dtype).bits == 64 else 1e-5


class LearnedProximalNetwork(AbstractProx):
    """A learned proximal network (LPN): `f = grad psi` for an input-convex `psi`.

    Because `psi` is convex, `f` is exactly the proximal operator of a (possibly
    nonconvex) regulariser: `f(y) = argmin_x 1/2 ||y - x||^2 + R(x)` with
    `R(x) = <x, y*> - 1/2 ||x||^2 - psi(y*)` where `f(y*) = x`, i.e. `R` is the convex
    conjugate of `psi` minus `1/2 ||.||^2` (Gribonval and Nikolova). `R` is evaluated by
    solving the convex problem `min_y psi(y) - <x, y>` (`regularizer`).

    !!! Example

        ```python
        icnn = sciopt.prox.ICNN("scalar", width=50, depth=4, key=key)
        lpn = sciopt.prox.LearnedProximalNetwork(icnn)
        x = lpn(1.5)                      # the prox of the learned R at 1.5
        r = lpn.regularizer(x)            # a sciopt.Solution: r.value is R(x)
        ```

    ??? cite "References"

        ```bibtex
        @inproceedings{fang2024whats,
            title={What's in a Prior? Learned Proximal Networks for Inverse Problems},
            author={Fang, Zhenghan and Buchanan, Sam and Sulam, Jeremias},
            booktitle={International Conference on Learning Representations},
            year={2024}
        }

        @article{gribonval2020characterization,
            title={A Characterization of Proximity Operators},
            author={Gribonval, R{\'e}mi and Nikolova, Mila},
            journal={Journal of Mathematical Imaging and Vision},
            volume={62},
            pages={773--789},
            year={2020}
        }
        ```
    """

    potential: AbstractICNN

    def prox(self, y: Array) -> Array:
        """`f(y) = grad psi(y)`, the proximal operator of the learned regulariser."""
        y = jnp.asarray(y)
        self.potential.check_input(y)
        return jax.grad(_evaluate)(y, self.potential)

    def __call__(self, y):
        return self.prox(y)

    def prox_and_value(self, v):
        """`x = f(v)` and `R(x)`, exact and without a solve (`v` is the preimage)."""
        v = jnp.asarray(v)
        psi, x = jax.value_and_grad(_evaluate)(v, self.potential)
        return x, jnp.vdot(x, v) - 0.5 * jnp.vdot(x, x) - psi

    def regularizer(
        self,
        x: Array,
        *,
        max_steps: int = 1000,
        rtol: float | None = None,
        atol: float | None = None,
        y0: Array | None = None,
        throw: bool = True,
    ) -> Solution:
        """Evaluate the learned regulariser `R(x)` by inverting `f` (an inner solve).

        Solves the convex conjugate problem `min_y psi(y) - <x, y>` with
        `optimistix.BFGS` (started at `y0`, default `x`); the minimiser `y*` satisfies
        `f(y*) = x`, and `R(x) = <x, y*> - 1/2 ||x||^2 - psi(y*)`. Gradients with
        respect to `x` and the network flow through the solve by implicit
        differentiation. Works under `jax.jit` and `jax.vmap`.

        **Arguments:**

        - `x`: the point, shaped like the network's input.
        - `max_steps`: the conjugate solve's iteration limit.
        - `rtol`, `atol`: its tolerances (default `1e-9` in float64, `1e-5` in
          float32).
        - `y0`: optional starting point.
        - `throw`: as for `sciopt.solve`: if `True`, a failed inversion raises an
          error with the result's message; if `False`, check `sol.result`.

        **Returns:**

        A `sciopt.Solution` whose `value` is `R(x)`; `result` is
        `RESULTS.successful`, or `RESULTS.inversion_failed` when the conjugate solve
        did not converge (e.g. `x` is outside the range of `f`); `stats` holds
        `num_steps`, `max_steps` and `residual` (`||f(y*) - x||`); `aux["preimage"]`
        is `y*`.
        """
        x = jnp.asarray(x)
        self.potential.check_input(x)
        tol = _default_tol(x.dtype)
        rtol = tol if rtol is None else rtol
        atol = tol if atol is None else atol

        start = x if y0 is None else jnp.asarray(y0, x.dtype)
        sol = optx.minimise(
            _conjugate_objective,
            optx.BFGS(rtol=rtol, atol=atol),
            start,
            args=(self.potential, x),
            max_steps=max_steps,
            throw=False,
        )
        y_star = sol.value
        psi = self.potential(y_star)
        value = jnp.vdot(x, y_star) - 0.5 * jnp.vdot(x, x) - psi
        residual = jnp.linalg.norm(jnp.ravel(self.prox(y_star) - x))
        scale = 1 + jnp.linalg.norm(jnp.ravel(x))
        ok = (sol.result == optx.RESULTS.successful) & (
            residual <= 10 * jnp.sqrt(jnp.asarray(tol, x.dtype)) * scale
        )
        result = RESULTS.where(ok, RESULTS.successful, RESULTS.inversion_failed)
        if throw:
            value = raise_if_failed(value, result, RESULTS)
        return Solution(
            value=value,
            result=result,
            stats={
                "num_steps": sol.stats["num_steps"],
                "max_steps": max_steps,
                "residual": residual,
            },
            state=None,
            aux={"preimage": y_star},
        )
