"""Proximal operators usable by the plug-and-play solvers."""

import abc
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float


def as_parameter(value: ArrayLike | None) -> Array | None:
    """Store a numeric hyperparameter (a threshold, a step size, a penalty) as a JAX
    array, so that jit-compiled solves reuse their compilation for new values."""
    return None if value is None else jnp.asarray(value)


def check_parameter(name: str, value: Array | None, *, strict: bool) -> None:
    """Raise `ValueError` unless a concrete `value` is finite and positive (`strict`)
    or non-negative; traced values are not checked."""
    if value is None or isinstance(value, jax.core.Tracer):
        return
    v = np.asarray(value)
    ok = np.all(np.isfinite(v)) and (np.all(v > 0) if strict else np.all(v >= 0))
    if not ok:
        kind = "positive" if strict else "non-negative"
        raise ValueError(f"`{name}` must be finite and {kind}, got {value!r}.")


class AbstractProx(eqx.Module):
    """A proximal operator `prox_R(v) = argmin_x 1/2 ||x - v||^2 + R(x)`.

    Subclasses implement `prox_and_value(v) -> (x, R(x))`; the value may be `nan` when
    `R` is unknown. Calling the operator returns `x` only.
    """

    @abc.abstractmethod
    def prox_and_value(self, v: Array) -> tuple[Array, Float[Array, ""]]:
        """Return `x = prox_R(v)` and the regulariser's value `R(x)`."""

    def __call__(self, v: Array) -> Array:
        return self.prox_and_value(v)[0]


class FunctionProx(AbstractProx):
    """Wrap any denoiser `fn(v) -> x` (its regulariser value is unknown: `nan`)."""

    fn: Callable[[Array], Array]

    def prox_and_value(self, v):
        x = self.fn(v)
        return x, jnp.array(jnp.nan, x.dtype)


class SoftThreshold(AbstractProx):
    """The soft-threshold `sign(v) max(|v| - t, 0)`: the prox of `R(x) = t ||x||_1`.

    It is the MAP denoiser of a Laplace prior with scale `b` under Gaussian noise of
    standard deviation `sigma`, with `t = sigma^2 / b`.
    The threshold is stored as a JAX array: new values reuse compiled solves.
    """

    threshold: Float[Array, ""] = eqx.field(converter=as_parameter)

    def __check_init__(self):
        check_parameter("threshold", self.threshold, strict=False)

    def prox_and_value(self, v):
        t = jnp.asarray(self.threshold, v.dtype)
        x = jnp.sign(v) * jnp.maximum(jnp.abs(v) - t, 0)
        return x, t * jnp.sum(jnp.abs(x))


def _grad2(x):
    """Forward differences along the last two axes (zero on the far edge)."""
    zero_row = jnp.zeros_like(x[..., :1, :])
    zero_col = jnp.zeros_like(x[..., :, :1])
    dx = jnp.concatenate([x[..., 1:, :] - x[..., :-1, :], zero_row], axis=-2)
    dy = jnp.concatenate([x[..., :, 1:] - x[..., :, :-1], zero_col], axis=-1)
    return dx, dy


def _div2(px, py):
    """Minus the adjoint of `_grad2`."""
    zero_row = jnp.zeros_like(px[..., :1, :])
    zero_col = jnp.zeros_like(py[..., :, :1])
    px_prev = jnp.concatenate([zero_row, px[..., :-1, :]], axis=-2)
    py_prev = jnp.concatenate([zero_col, py[..., :, :-1]], axis=-1)
    last_row = jnp.zeros_like(px).at[..., -1, :].set(1)
    last_col = jnp.zeros_like(py).at[..., :, -1].set(1)
    return (px * (1 - last_row) - px_prev) + (py * (1 - last_col) - py_prev)


def total_variation(x: Array) -> Float[Array, ""]:
    """Isotropic total variation of an image (last two axes), forward differences."""
    dx, dy = _grad2(x)
    return jnp.sum(jnp.sqrt(dx * dx + dy * dy))


class TotalVariation(AbstractProx):
    """The prox of `R(x) = weight * TV(x)` (isotropic TV over the last two axes), by
    Beck and Teboulle's fast gradient projection on Chambolle's dual problem (step
    1/8, Nesterov momentum).

    A fixed number of iterations (`num_iters`) is run, so the result is an
    approximation; raise it for a tighter prox. The weight is stored as a JAX array:
    new values reuse compiled solves.

    ??? cite "References"

        ```bibtex
        @article{chambolle2004algorithm,
            title={An Algorithm for Total Variation Minimization and Applications},
            author={Chambolle, Antonin},
            journal={Journal of Mathematical Imaging and Vision},
            volume={20},
            number={1},
            pages={89--97},
            year={2004}
        }

        @article{beck2009fast,
            title={Fast Gradient-Based Algorithms for Constrained Total Variation
                   Image Denoising and Deblurring Problems},
            author={Beck, Amir and Teboulle, Marc},
            journal={IEEE Transactions on Image Processing},
            volume={18},
            number={11},
            pages={2419--2434},
            year={2009}
        }
        ```
    """

    weight: Float[Array, ""] = eqx.field(converter=as_parameter)
    num_iters: int = eqx.field(static=True, default=100)

    def __check_init__(self):
        check_parameter("weight", self.weight, strict=False)

    def prox_and_value(self, v):
        if jnp.ndim(v) < 2:
            raise ValueError(
                f"`TotalVariation` acts on images (at least 2 axes), got shape "
                f"{jnp.shape(v)}."
            )
        lam = jnp.asarray(self.weight, v.dtype)
        tau = jnp.asarray(0.125, v.dtype)
        safe = jnp.where(lam > 0, lam, 1)

        def project(px, py):
            # max(1, |p|) with a derivative that is not NaN where |p| = 0 (the
            # image's border, where the gradient's normal component is zero)
            norm2 = px * px + py * py
            outside = norm2 > 1
            scale = jnp.where(outside, jnp.sqrt(jnp.where(outside, norm2, 1)), 1)
            return px / scale, py / scale

        def body(_, carry):
            p, r, t = carry
            gx, gy = _grad2(_div2(*r) - v / safe)
            new_p = project(r[0] + tau * gx, r[1] + tau * gy)
            new_t = (1 + jnp.sqrt(1 + 4 * t * t)) / 2
            momentum = (t - 1) / new_t
            new_r = tuple(a + momentum * (a - b) for a, b in zip(new_p, p))
            return new_p, new_r, new_t

        zeros = (jnp.zeros_like(v), jnp.zeros_like(v))
        carry0 = (zeros, zeros, jnp.ones((), v.dtype))
        p, _, _ = jax.lax.fori_loop(0, self.num_iters, body, carry0)
        x = jnp.where(lam > 0, v - lam * _div2(*p), v)
        return x, lam * total_variation(x)
