"""Convex sets given by their Euclidean projections.

Simple sets (`Reals`, `Box`, `Ball`, `Simplex`) act on one variable; `Polyhedron` acts
on the joint vector `w = concat(x.ravel(), y.ravel())` of a bilevel problem and
describes the coupled lower-level constraints `A w <= b`, `E w = e`.
"""

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float


class AbstractSet(eqx.Module):
    """A closed convex set, through its Euclidean projection."""

    @abc.abstractmethod
    def project(self, v: Array) -> Array:
        """The closest point of the set to `v` (same shape and dtype as `v`)."""

    def violation(self, v: Array) -> Array:
        """Distance from `v` to the set."""
        return jnp.sqrt(jnp.sum(jnp.square(v - self.project(v))))

    def check_shape(self, shape: tuple[int, ...], name: str) -> None:
        """Raise `ValueError` naming `name` when the set cannot hold `shape`."""
        del shape, name


class Reals(AbstractSet):
    """The whole space (no constraint)."""

    def project(self, v):
        return v


def _as_float(value, dtype):
    return jnp.asarray(value, dtype)


class Box(AbstractSet):
    """The box `lower <= v <= upper`, elementwise (either bound may be infinite).

    **Arguments:**

    - `lower`, `upper`: scalars or arrays broadcastable to the variable's shape.
    """

    lower: Float[ArrayLike, "..."] = -np.inf
    upper: Float[ArrayLike, "..."] = np.inf

    def __check_init__(self):
        lo, hi = np.asarray(self.lower), np.asarray(self.upper)
        if not (isinstance(lo, jax.core.Tracer) or isinstance(hi, jax.core.Tracer)):
            if np.any(np.isnan(lo)) or np.any(np.isnan(hi)):
                raise ValueError("`Box` bounds must not be nan.")
            if np.any(lo > hi):
                raise ValueError("`Box` needs `lower <= upper` elementwise.")

    def project(self, v):
        lo = _as_float(self.lower, v.dtype)
        hi = _as_float(self.upper, v.dtype)
        return jnp.clip(v, jnp.broadcast_to(lo, v.shape), jnp.broadcast_to(hi, v.shape))

    def check_shape(self, shape, name):
        for bound in (self.lower, self.upper):
            try:
                ok = np.broadcast_shapes(np.shape(bound), shape) == tuple(shape)
            except ValueError:
                ok = False
            if not ok:
                raise ValueError(
                    f"The `Box` bounds of `{name}` have shape {np.shape(bound)}, which "
                    f"does not broadcast to the variable's shape {shape}."
                )


def NonNegative() -> Box:
    """The non-negative orthant `v >= 0` (a `Box`)."""
    return Box(0.0, np.inf)


class Ball(AbstractSet):
    """The Euclidean ball `||v - center|| <= radius`.

    **Arguments:**

    - `radius`: a positive scalar.
    - `center`: a scalar or an array of the variable's shape (default 0).
    """

    radius: Float[ArrayLike, ""] = 1.0
    center: Float[ArrayLike, "..."] = 0.0

    def __check_init__(self):
        r = self.radius
        if not isinstance(r, jax.core.Tracer) and not np.all(np.asarray(r) > 0):
            raise ValueError(f"`Ball` needs a positive `radius`, got {r!r}.")

    def project(self, v):
        c = _as_float(self.center, v.dtype)
        r = _as_float(self.radius, v.dtype)
        d = v - c
        norm = jnp.sqrt(jnp.sum(jnp.square(d)))
        scale = jnp.where(norm > r, r / jnp.where(norm > 0, norm, 1), 1)
        return c + scale * d

    def check_shape(self, shape, name):
        if np.ndim(self.center) > 0 and np.shape(self.center) != shape:
            raise ValueError(
                f"The `Ball` center of `{name}` has shape {np.shape(self.center)}, "
                f"expected {shape}."
            )


class Simplex(AbstractSet):
    """The scaled simplex `{v >= 0, sum(v) = total}` (over all entries of `v`).

    Projection by sorting (Held, Wolfe and Crowder 1974; Duchi et al. 2008).
    """

    total: Float[ArrayLike, ""] = 1.0

    def __check_init__(self):
        t = self.total
        if not isinstance(t, jax.core.Tracer) and not np.all(np.asarray(t) > 0):
            raise ValueError(f"`Simplex` needs a positive `total`, got {t!r}.")

    def project(self, v):
        flat = v.ravel()
        total = _as_float(self.total, v.dtype)
        u = jnp.sort(flat)[::-1]
        css = jnp.cumsum(u) - total
        k = jnp.arange(1, flat.size + 1, dtype=v.dtype)
        cond = u - css / k > 0
        rho = jnp.max(jnp.where(cond, jnp.arange(flat.size), -1))
        tau = css[rho] / (rho + 1).astype(v.dtype)
        return jnp.maximum(flat - tau, 0).reshape(v.shape)


class Polyhedron(eqx.Module):
    """Affine coupled constraints `A w <= b` and `E w = e` on the joint vector
    `w = concat(x.ravel(), y.ravel())`.

    Give it to `BilevelProblem(coupled_set=...)` when the lower-level constraints are
    affine in `(x, y)`: projections onto it are then computed without an inner
    nonlinear solve. Equalities alone are projected in closed form (one least-squares
    solve); with inequalities Hildreth's method (cyclic dual coordinate ascent, exact
    in the limit) sweeps over the rows until the point stops moving, at most `sweeps`
    times.

    **Arguments:**

    - `a_ineq`, `b_ineq`: the rows `A` (shape `(l, n_x + n_y)`) and `b` (shape `(l,)`).
    - `a_eq`, `b_eq`: the rows `E` (shape `(p, n_x + n_y)`) and `e`.
    - `sweeps`: the most Hildreth sweeps per projection (ignored without
        inequalities).
    """

    a_ineq: Float[Array, "l w"] | None = None
    b_ineq: Float[Array, " l"] | None = None
    a_eq: Float[Array, "p w"] | None = None
    b_eq: Float[Array, " p"] | None = None
    sweeps: int = eqx.field(static=True, default=200)

    def __check_init__(self):
        for a, b, name in (
            (self.a_ineq, self.b_ineq, "ineq"),
            (self.a_eq, self.b_eq, "eq"),
        ):
            if (a is None) != (b is None):
                raise ValueError(f"Give both `a_{name}` and `b_{name}`, or neither.")
            if a is not None:
                if (
                    np.ndim(a) != 2
                    or np.ndim(b) != 1
                    or np.shape(a)[0] != np.shape(b)[0]
                ):
                    raise ValueError(
                        f"`a_{name}` must have shape (rows, n_x + n_y) and `b_{name}` "
                        f"shape (rows,); got {np.shape(a)} and {np.shape(b)}."
                    )
                if np.any(np.all(np.asarray(a) == 0, axis=1)):
                    raise ValueError(f"`a_{name}` has an all-zero row.")
        if self.a_ineq is None and self.a_eq is None:
            raise ValueError("`Polyhedron` needs `a_ineq`/`b_ineq` or `a_eq`/`b_eq`.")

    @classmethod
    def from_affine(cls, problem, x, y, args=None, sweeps: int = 200) -> "Polyhedron":
        """The polyhedron of a problem whose constraints are affine in `(x, y)`.

        The rows are read off the Jacobians of `lower_constraints` and
        `lower_equalities` at `(x, y)` (exact when they are affine).
        """
        x, y = jnp.asarray(x), jnp.asarray(y)
        w = jnp.concatenate([x.ravel(), y.ravel()])

        def split(w):
            return w[: x.size].reshape(x.shape), w[x.size :].reshape(y.shape)

        kwargs = {}
        for fn, name in (
            (problem.lower_constraints, "ineq"),
            (problem.lower_equalities, "eq"),
        ):
            if fn is None:
                continue
            value = lambda w, fn=fn: jnp.atleast_1d(fn(*split(w), args))
            a = jax.jacfwd(value)(w)
            kwargs[f"a_{name}"] = a
            kwargs[f"b_{name}"] = a @ w - value(w)
        return cls(**kwargs, sweeps=sweeps)

    def num_joint(self) -> int:
        a = self.a_ineq if self.a_ineq is not None else self.a_eq
        return int(np.shape(a)[1])

    def project(self, w: Array) -> Array:
        """Project the joint vector `w`."""
        dtype = w.dtype
        if self.a_ineq is None:
            e = jnp.asarray(self.a_eq, dtype)
            r = e @ w - jnp.asarray(self.b_eq, dtype)
            return w - e.T @ jnp.linalg.lstsq(e @ e.T, r)[0]
        rows = [jnp.asarray(self.a_ineq, dtype)]
        rhs = [jnp.asarray(self.b_ineq, dtype)]
        is_eq = [jnp.zeros(rows[0].shape[0], bool)]
        if self.a_eq is not None:
            rows.append(jnp.asarray(self.a_eq, dtype))
            rhs.append(jnp.asarray(self.b_eq, dtype))
            is_eq.append(jnp.ones(rows[-1].shape[0], bool))
        a = jnp.concatenate(rows)
        b = jnp.concatenate(rhs)
        eq = jnp.concatenate(is_eq)
        norms = jnp.sum(jnp.square(a), axis=1)

        def row(carry, i):
            w, lam = carry
            delta = (a[i] @ w - b[i]) / norms[i]
            delta = jnp.where(eq[i], delta, jnp.maximum(delta, -lam[i]))
            return (w - delta * a[i], lam.at[i].add(delta)), None

        tol = 10 * jnp.finfo(dtype).eps

        def cond(carry):
            _, _, change, k = carry
            return (k < self.sweeps) & (change > tol)

        def sweep(carry):
            w, lam, _, k = carry
            new_w, lam = jax.lax.scan(row, (w, lam), jnp.arange(a.shape[0]))[0]
            change = jnp.max(jnp.abs(new_w - w)) / (1 + jnp.max(jnp.abs(new_w)))
            return new_w, lam, change, k + 1

        lam0 = jnp.zeros(a.shape[0], dtype)
        init = (w, lam0, jnp.array(jnp.inf, dtype), jnp.array(0))
        w, _, _, _ = jax.lax.while_loop(cond, sweep, init)
        return w
