"""`BilevelProblem`: the declarative description of a (constrained) bilevel problem."""

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, PRNGKeyArray, PyTree

from .._solver import AbstractProblem
from ._inner import alm
from ._sets import AbstractSet, Polyhedron, Reals


def _call(fn, x, y, args, data, batch_size, key):
    if data is None:
        return fn(x, y, args)
    if key is not None and batch_size is not None:
        n = jax.tree.leaves(data)[0].shape[0]
        idx = jr.randint(key, (batch_size,), 0, n)
        data = jax.tree.map(lambda a: jnp.asarray(a)[idx], data)
    return fn(x, y, args, data)


class BilevelProblem(AbstractProblem):
    r"""A bilevel problem with (possibly coupled) lower-level constraints:

    $$\min_{x \in X,\ y} F(x, y) \quad \text{s.t.} \quad y \in \arg\min_{\theta \in Y}
    \{ f(x, \theta) : g(x, \theta) \le 0,\ h(x, \theta) = 0 \}.$$

    Solve it with `sciopt.solve(problem, solver, (x0, y0), args)`; the solution's
    `value` is `(x, y)`.

    **Arguments:**

    - `upper`: `F(x, y, args) -> scalar`, the upper-level objective.
    - `lower`: `f(x, y, args) -> scalar`, the lower-level objective (convex in `y`).
    - `lower_constraints`: optional `g(x, y, args) -> (l,)`, the constraints
        `g <= 0` of the lower level; they may couple `x` and `y` (LV-HBA assumes them
        jointly convex).
    - `lower_equalities`: optional `h(x, y, args) -> (p,)`, affine equalities `h = 0`.
    - `upper_set`, `lower_set`: the simple sets `X` and `Y` (`Reals`, `Box`, `Ball`,
        `Simplex`, ...), as projections.
    - `coupled_set`: optional `Polyhedron` describing `g` and `h` when they are affine
        in `(x, y)`; projections onto `{(x, y) in X x Y: g <= 0, h = 0}` then need no
        inner nonlinear solve (see `Polyhedron.from_affine`). Without it, constrained
        problems are projected by an inner augmented-Lagrangian solve.
    - `lower_solution`: optional `y*(x, args)` in closed form; used for the reported
        true upper objective instead of the inner lower-level solve. When the lower
        level has several solutions, give the optimistic one (minimising `F`).
    - `upper_data`, `lower_data`: optional data sets (pytrees whose leaves have a
        leading sample axis). When given, the callable is called as
        `F(x, y, args, batch)` (resp. `f`), with all rows for exact evaluations and
        `batch_size` rows drawn at random for the stochastic oracles of the solvers.
    - `batch_size`: the minibatch size of the stochastic oracles (`None`: full data).
    - `lower_steps`: iteration limit of the inner lower-level and projection solves.
    - `lower_tol`: their tolerance.
    """

    upper: Callable[..., Array]
    lower: Callable[..., Array]
    lower_constraints: Callable[..., Array] | None = None
    lower_equalities: Callable[..., Array] | None = None
    upper_set: AbstractSet = Reals()
    lower_set: AbstractSet = Reals()
    coupled_set: Polyhedron | None = None
    lower_solution: Callable[..., Array] | None = None
    upper_data: PyTree | None = None
    lower_data: PyTree | None = None
    batch_size: int | None = eqx.field(static=True, default=None)
    lower_steps: int = eqx.field(static=True, default=2000)
    lower_tol: float = eqx.field(static=True, default=1e-12)

    def __check_init__(self):
        for name in ("upper", "lower"):
            if not callable(getattr(self, name)):
                raise TypeError(f"`{name}` must be a callable `fn(x, y, args)`.")
        for name in ("lower_constraints", "lower_equalities", "lower_solution"):
            value = getattr(self, name)
            if value is not None and not callable(value):
                raise TypeError(f"`{name}` must be a callable or None.")
        for name in ("upper_set", "lower_set"):
            if not isinstance(getattr(self, name), AbstractSet):
                raise TypeError(
                    f"`{name}` must be a set such as `sciopt.bilevel.Box(...)`, got "
                    f"{type(getattr(self, name)).__name__}."
                )
        if self.coupled_set is not None and not isinstance(
            self.coupled_set, Polyhedron
        ):
            raise TypeError("`coupled_set` must be a `sciopt.bilevel.Polyhedron`.")
        if self.batch_size is not None:
            if not isinstance(self.batch_size, int) or self.batch_size < 1:
                raise ValueError(
                    f"`batch_size` must be a positive int, got {self.batch_size!r}."
                )
            if self.upper_data is None and self.lower_data is None:
                raise ValueError("`batch_size` needs `upper_data` or `lower_data`.")

    # -- oracles ---------------------------------------------------------------------

    @property
    def constrained(self) -> bool:
        """Whether the lower level has constraints `g` or `h`."""
        return self.lower_constraints is not None or self.lower_equalities is not None

    @property
    def stochastic(self) -> bool:
        """Whether the oracles draw minibatches."""
        return self.batch_size is not None

    def F(self, x, y, args, key: PRNGKeyArray | None = None) -> Array:
        """The upper objective; a minibatch estimate when `key` is given and the
        problem is stochastic."""
        return _call(self.upper, x, y, args, self.upper_data, self.batch_size, key)

    def f(self, x, y, args, key: PRNGKeyArray | None = None) -> Array:
        """The lower objective (minibatch estimate when `key` is given)."""
        return _call(self.lower, x, y, args, self.lower_data, self.batch_size, key)

    def g(self, x, y, args) -> Array:
        """The inequality constraints as a vector (empty without constraints)."""
        if self.lower_constraints is None:
            return jnp.zeros(0, jnp.result_type(x, y))
        return jnp.atleast_1d(self.lower_constraints(x, y, args))

    def h(self, x, y, args) -> Array:
        """The equality constraints as a vector (empty without them)."""
        if self.lower_equalities is None:
            return jnp.zeros(0, jnp.result_type(x, y))
        return jnp.atleast_1d(self.lower_equalities(x, y, args))

    # -- projections -----------------------------------------------------------------

    def _split(self, w, x, y):
        return w[: x.size].reshape(x.shape), w[x.size :].reshape(y.shape)

    def _project_product(self, w, x, y):
        px, py = self._split(w, x, y)
        px = self.upper_set.project(px)
        py = self.lower_set.project(py)
        return jnp.concatenate([px.ravel(), py.ravel()])

    def _product_is_trivial(self) -> bool:
        return isinstance(self.upper_set, Reals) and isinstance(self.lower_set, Reals)

    def project(self, x, y, args) -> tuple[Array, Array]:
        """Project `(x, y)` onto `C = {(x, y) in X x Y : g(x, y) <= 0, h(x, y) = 0}`.

        Uncoupled problems project `x` and `y` separately; with a `coupled_set`
        (affine constraints) the projection is closed form or Hildreth's method,
        alternated with `X x Y` by Dykstra's algorithm; otherwise it is an inner
        augmented-Lagrangian solve.
        """
        if not self.constrained:
            return self.upper_set.project(x), self.lower_set.project(y)
        w0 = jnp.concatenate([x.ravel(), y.ravel()])
        if self.coupled_set is not None:
            if self._product_is_trivial():
                w = self.coupled_set.project(w0)
            else:
                w = _dykstra(
                    self.coupled_set.project,
                    lambda w: self._project_product(w, x, y),
                    w0,
                    steps=100,
                )
            return self._split(w, x, y)

        def objective(w):
            return 0.5 * jnp.sum(jnp.square(w - w0))

        w, _, _ = alm(
            objective,
            lambda w: self.g(*self._split(w, x, y), args),
            lambda w: self.h(*self._split(w, x, y), args),
            lambda w: self._project_product(w, x, y),
            w0,
            outer_steps=20,
            inner_steps=200,
            tol=self.lower_tol,
        )
        return self._split(w, x, y)

    # -- the exact lower level -------------------------------------------------------

    def solve_lower(self, x, y0, args) -> tuple[Array, Array]:
        """Solve the lower level at `x` from `y0` (an exact solve, to `lower_tol`).

        **Returns:** `y*(x)` and its constraint violation (max-norm; 0 without
        constraints). Uses `lower_solution` when given. When the lower level has
        several solutions, the inner solve returns one of them (reached from `y0`).
        """
        x = jax.lax.stop_gradient(x)
        if self.lower_solution is not None:
            y = self.lower_solution(x, args)
            y = jnp.asarray(y, y0.dtype).reshape(y0.shape)
            return y, jnp.zeros((), y0.dtype)

        def unflat(v):
            return v.reshape(y0.shape)

        def objective(v):
            return self.f(x, unflat(v), args)

        ineq = eq = None
        if self.lower_constraints is not None:
            ineq = lambda v: self.g(x, unflat(v), args)
        if self.lower_equalities is not None:
            eq = lambda v: self.h(x, unflat(v), args)
        v, viol, _ = alm(
            objective,
            ineq,
            eq,
            lambda v: self.lower_set.project(unflat(v)).ravel(),
            y0.ravel(),
            inner_steps=self.lower_steps,
            tol=self.lower_tol,
        )
        return unflat(v), viol

    def upper_value(self, x, args, y0=None) -> Array:
        """The true upper objective `Phi(x) = F(x, y*(x))`, from an exact lower-level
        solve (started from `y0`, default zeros)."""
        x = jnp.asarray(x)
        if y0 is None:
            raise ValueError("`upper_value` needs a starting point `y0` for y.")
        y, _ = self.solve_lower(x, jnp.asarray(y0), args)
        return self.F(x, y, args)

    # -- validation ------------------------------------------------------------------

    def check(self, y0: Any, args: Any) -> None:
        if not (isinstance(y0, tuple | list) and len(y0) == 2):
            raise ValueError(
                "`y0` must be a pair `(x0, y0)` of arrays (upper and lower variables)."
            )
        x0, yy0 = y0
        for value, name in ((x0, "x0"), (yy0, "y0")):
            if not isinstance(value, jax.Array | np.ndarray):
                raise ValueError(f"`{name}` (in `y0`) must be an array.")
            if not jnp.issubdtype(value.dtype, jnp.floating):
                raise ValueError(
                    f"`{name}` (in `y0`) must be a floating-point array, got "
                    f"{value.dtype}."
                )
        if x0.dtype != yy0.dtype:
            raise ValueError(
                f"`x0` and `y0` must share a dtype, got {x0.dtype} and {yy0.dtype}."
            )
        self.upper_set.check_shape(x0.shape, "upper_set")
        self.lower_set.check_shape(yy0.shape, "lower_set")
        key = jr.key(0) if self.stochastic else None
        for fn, name in ((self.F, "upper"), (self.f, "lower")):
            try:
                out = jax.eval_shape(lambda x, y: fn(x, y, args, key), x0, yy0)
            except (ValueError, TypeError) as e:
                raise ValueError(
                    f"`{name}` failed on `(x0, y0)` with shapes {x0.shape}, "
                    f"{yy0.shape}: {e}"
                ) from None
            if out.shape != ():
                raise ValueError(
                    f"`{name}` must return a scalar, got shape {out.shape}; check the "
                    "shapes of `x0` and `y0`."
                )
        for fn, name in ((self.g, "lower_constraints"), (self.h, "lower_equalities")):
            out = jax.eval_shape(lambda x, y: fn(x, y, args), x0, yy0)
            if out.ndim != 1:
                raise ValueError(
                    f"`{name}` must return a vector (or scalar), got shape {out.shape}."
                )
        if self.coupled_set is not None:
            n = self.coupled_set.num_joint()
            if n != x0.size + yy0.size:
                raise ValueError(
                    f"`coupled_set` acts on vectors of size {n}, but `x0` and `y0` "
                    f"have {x0.size} + {yy0.size} entries."
                )
        if self.lower_solution is not None:
            out = jax.eval_shape(lambda x: self.lower_solution(x, args), x0)
            if out.size != yy0.size:
                raise ValueError(
                    f"`lower_solution` returns {out.size} entries, `y0` has {yy0.size}."
                )


def _dykstra(project_a, project_b, w0, steps):
    """Dykstra's alternating projections onto the intersection of two convex sets."""

    def body(_, carry):
        w, p, q = carry
        a = project_a(w + p)
        p = w + p - a
        b = project_b(a + q)
        q = a + q - b
        return b, p, q

    zeros = jnp.zeros_like(w0)
    w, _, _ = jax.lax.fori_loop(0, steps, body, (w0, zeros, zeros))
    return w
