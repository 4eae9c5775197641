"""One accelerated proximal-gradient method (FISTA) for the families to share.

Minimises `f(x) + g(x)` for a smooth convex `f` (given by its gradient) and a convex
`g` given by its proximal operator `prox(z, step) = argmin_x g(x) + ||x - z||^2 /
(2 step)` (a projection when `g` is the indicator of a set: then `step` is ignored).

`fista_step` is one iteration (a solver's `step` calls it); `fista` runs the loop to
a tolerance. The step is `1/L` with `L` either given (a Lipschitz constant of `grad
f`) or found by backtracking on the gradient difference `||grad f(p) - grad f(v)|| <=
L ||p - v||` (no function values, so the iteration keeps converging below the
round-off level of `f`), doubling `L` until it holds and shrinking it by `0.9` for the
next step. The momentum is restarted by the gradient test of O'Donoghue and Candes
(2015): when `<v - p, p - x> > 0` the extrapolation is dropped.

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

    @article{odonoghue2015adaptive,
        title={Adaptive Restart for Accelerated Gradient Schemes},
        author={O'Donoghue, Brendan and Cand{\\`e}s, Emmanuel},
        journal={Foundations of Computational Mathematics},
        volume={15},
        number={3},
        pages={715--732},
        year={2015}
    }
    ```
"""

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, Int


Prox = Callable[[Array, Array], Array]

# backtracking doublings per step: 2^60 covers any Lipschitz constant from 1
_MAX_BACKTRACKS = 60
_SHRINK = 0.9


def _norm(x: Array) -> Array:
    return jnp.sqrt(jnp.sum(jnp.square(x)))


class FISTAState(eqx.Module):
    """The state of FISTA.

    - `x`: the last proximal-gradient point (the iterate).
    - `v`: the extrapolated point where the next gradient is taken.
    - `momentum`: Beck and Teboulle's `t_k` (1 after a restart).
    - `lipschitz`: the `L` of the next step (fixed, or the backtracking's start).
    - `residual`: the norm of the last gradient mapping, `L ||x - v||` (`inf`
      before the first step).
    """

    x: Array
    v: Array
    momentum: Float[Array, ""]
    lipschitz: Float[Array, ""]
    residual: Float[Array, ""]


def fista_init(x0: Array, lipschitz: ArrayLike = 1.0) -> FISTAState:
    """The state before the first step, at `x0` (which should lie in the domain of
    `g`: project it first)."""
    dtype = x0.dtype
    return FISTAState(
        x=x0,
        v=x0,
        momentum=jnp.ones((), dtype),
        lipschitz=jnp.asarray(lipschitz, dtype),
        residual=jnp.array(jnp.inf, dtype),
    )


def fista_step(
    grad: Callable[[Array], Array],
    prox: Prox,
    state: FISTAState,
    *,
    backtrack: bool = False,
) -> FISTAState:
    """One FISTA iteration (Beck and Teboulle 2009) with gradient restart.

    **Arguments:**

    - `grad`: the gradient of the smooth part `f`.
    - `prox`: `prox(z, step)`, the proximal operator of `step * g`.
    - `state`: the current `FISTAState`.
    - `backtrack`: find the step by backtracking on the gradient difference, starting
      from `state.lipschitz` (then shrunk by 0.9 for the next step); `False` keeps
      `state.lipschitz` fixed.

    **Returns:**

    The next `FISTAState`; its `x` is the new iterate.
    """
    v = state.v
    gv = grad(v)
    if backtrack:

        def cond(carry):
            _, _, ok, j = carry
            return jnp.invert(ok) & (j < _MAX_BACKTRACKS)

        def body(carry):
            lip, _, _, j = carry
            lip = jnp.where(j > 0, 2 * lip, lip)
            p = prox(v - gv / lip, 1 / lip)
            ok = _norm(grad(p) - gv) <= lip * _norm(p - v)
            return lip, p, ok, j + 1

        init = (state.lipschitz, v, jnp.array(False), jnp.array(0))
        lip, p, _, _ = jax.lax.while_loop(cond, body, init)
        next_lip = _SHRINK * lip
    else:
        lip = state.lipschitz
        p = prox(v - gv / lip, 1 / lip)
        next_lip = lip
    t = state.momentum
    t_new = (1 + jnp.sqrt(1 + 4 * t * t)) / 2
    restart = jnp.vdot(v - p, p - state.x) > 0
    v_new = jnp.where(restart, p, p + ((t - 1) / t_new) * (p - state.x))
    t_new = jnp.where(restart, jnp.ones_like(t), t_new)
    return FISTAState(
        x=p,
        v=v_new,
        momentum=t_new,
        lipschitz=next_lip,
        residual=lip * _norm(p - v),
    )


def fista(
    grad: Callable[[Array], Array],
    prox: Prox,
    x0: Array,
    *,
    max_steps: int,
    tol: float,
    lipschitz: ArrayLike | None = None,
) -> tuple[Array, Float[Array, ""], Int[Array, ""]]:
    """Minimise `f + g` by FISTA until the gradient mapping's norm is at most `tol`
    or `max_steps` steps were taken.

    **Arguments:**

    - `grad`, `prox`: as for `fista_step`.
    - `x0`: the start (in the domain of `g`).
    - `max_steps`, `tol`: the stopping rule, `L ||x_k - v_{k-1}|| <= tol`.
    - `lipschitz`: a Lipschitz constant of `grad` (fixed step `1/L`); `None`
      backtracks from 1.

    **Returns:**

    The last iterate, its gradient-mapping norm and the number of steps.
    """
    backtrack = lipschitz is None
    state = fista_init(x0, 1.0 if backtrack else lipschitz)

    def cond(carry):
        state, k = carry
        return (k < max_steps) & (state.residual > tol)

    def body(carry):
        state, k = carry
        return fista_step(grad, prox, state, backtrack=backtrack), k + 1

    state, k = jax.lax.while_loop(cond, body, (state, jnp.array(0)))
    return state.x, state.residual, k
