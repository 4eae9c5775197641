"""Input-convex neural networks (vector and convolutional forms)."""

import abc
import math
from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, PRNGKeyArray


def _softplus(x, beta):
    return jax.nn.softplus(beta * x) / beta


def _nonneg(raw):
    """The nonnegative weights used on the hidden path: `softplus(raw)`."""
    return jax.nn.softplus(raw)


def _raw_init(key, shape, scale, dtype):
    # Nonnegative weights w = softplus(raw) start uniform on (0, 2 * scale).
    w = jr.uniform(key, shape, dtype, minval=0.01 * scale, maxval=2.0 * scale)
    return jnp.log(jnp.expm1(w))


def _check_beta_alpha(beta, alpha):
    if not beta > 0:
        raise ValueError(f"`beta` must be positive, got {beta!r}.")
    if not alpha >= 0:
        raise ValueError(f"`alpha` must be non-negative, got {alpha!r}.")


class AbstractICNN(eqx.Module):
    """An input-convex potential `psi(x)`: a scalar function convex in `x`."""

    alpha: eqx.AbstractVar[float]

    @abc.abstractmethod
    def __call__(self, x: Array) -> Float[Array, ""]:
        """Evaluate `psi(x)` for one input `x`."""

    @abc.abstractmethod
    def check_input(self, x: Array) -> None:
        """Raise `ValueError` if `x` has the wrong shape for this network."""


class ICNN(AbstractICNN):
    """A fully connected input-convex network (Amos, Xu and Kolter, 2017).

    psi(x) = w^T z_L + h^T x + alpha/2 ||x||^2 (+ 1/2 ||Q x||^2), with
    z_1 = s(W_0 x + b_0) and z_{k+1} = s(W_k z_k + H_k x + b_k). The
    hidden-to-hidden weights `W_k` and the output weights `w` are nonnegative by
    construction (they are `softplus` of free parameters), and `s` is the softplus
    with sharpness `beta` (convex and non-decreasing), so `psi` is convex in `x` for
    every value of the parameters; `alpha > 0` makes it `alpha`-strongly convex.

    ??? cite "References"

        ```bibtex
        @inproceedings{amos2017input,
            title={Input Convex Neural Networks},
            author={Amos, Brandon and Xu, Lei and Kolter, J. Zico},
            booktitle={International Conference on Machine Learning},
            pages={146--155},
            year={2017}
        }
        ```
    """

    in_size: int | tuple[int, ...] | Literal["scalar"] = eqx.field(static=True)
    beta: float = eqx.field(static=True)
    alpha: float = eqx.field(static=True)
    first_weight: Array
    first_bias: Array
    hidden_raw: tuple[Array, ...]
    skip_weights: tuple[Array, ...]
    hidden_biases: tuple[Array, ...]
    out_raw: Array
    out_skip: Array
    quadratic: Array | None

    def __init__(
        self,
        in_size: int | tuple[int, ...] | Literal["scalar"],
        width: int,
        depth: int,
        *,
        key: PRNGKeyArray,
        beta: float = 10.0,
        alpha: float = 0.0,
        quadratic: bool = False,
        dtype=None,
    ):
        """**Arguments:**

        - `in_size`: input dimension, an input shape (e.g. `(1, 8, 8)` for small
            images, flattened inside), or `"scalar"` for a scalar input.
        - `width`: hidden width.
        - `depth`: number of hidden layers with nonnegative weights (>= 0).
        - `key`: a `jax.random` key for the initialisation.
        - `beta`: sharpness of the softplus activation `log(1 + exp(beta u)) / beta`.
        - `alpha`: weight of the strongly convex term `alpha/2 ||x||^2`.
        - `quadratic`: add a learned convex quadratic `1/2 ||Q x||^2` (`Q` square,
            initialised to the identity, so the prox starts near the identity map).
        - `dtype`: parameter dtype (default: JAX's default float).
        """
        _check_beta_alpha(beta, alpha)
        if isinstance(in_size, (tuple, list)):
            in_size = tuple(int(s) for s in in_size)
            valid = len(in_size) > 0 and all(s > 0 for s in in_size)
        else:
            valid = in_size == "scalar" or (isinstance(in_size, int) and in_size > 0)
        if not valid:
            raise ValueError(
                "`in_size` must be a positive int, a shape tuple or 'scalar', got "
                f"{in_size!r}."
            )
        if width < 1 or depth < 0:
            raise ValueError("`width` must be positive and `depth` non-negative.")
        dtype = jnp.result_type(float) if dtype is None else dtype
        if in_size == "scalar":
            n = 1
        elif isinstance(in_size, tuple):
            n = math.prod(in_size)
        else:
            n = in_size
        keys = jr.split(key, 3 * depth + 4)
        self.in_size = in_size
        self.beta = float(beta)
        self.alpha = float(alpha)
        lim = 1.0 / math.sqrt(n)
        self.first_weight = jr.uniform(keys[0], (width, n), dtype, -lim, lim)
        self.first_bias = jr.uniform(keys[1], (width,), dtype, -lim, lim)
        self.hidden_raw = tuple(
            _raw_init(keys[2 + 3 * i], (width, width), 1.0 / width, dtype)
            for i in range(depth)
        )
        self.skip_weights = tuple(
            jr.uniform(keys[3 + 3 * i], (width, n), dtype, -lim, lim)
            for i in range(depth)
        )
        self.hidden_biases = tuple(
            jr.uniform(keys[4 + 3 * i], (width,), dtype, -lim, lim)
            for i in range(depth)
        )
        self.out_raw = _raw_init(keys[-2], (width,), 1.0 / width, dtype)
        self.out_skip = jnp.zeros((n,), dtype)
        self.quadratic = jnp.eye(n, dtype=dtype) if quadratic else None

    def check_input(self, x):
        if self.in_size == "scalar":
            shape = ()
        elif isinstance(self.in_size, tuple):
            shape = self.in_size
        else:
            shape = (self.in_size,)
        if jnp.shape(x) != shape:
            raise ValueError(
                f"The ICNN expects an input of shape {shape}, got {jnp.shape(x)}; "
                "reshape the input or build the network with another `in_size`."
            )

    def __call__(self, x):
        self.check_input(x)
        v = jnp.reshape(x, (-1,))
        z = _softplus(self.first_weight @ v + self.first_bias, self.beta)
        for raw, skip, bias in zip(
            self.hidden_raw, self.skip_weights, self.hidden_biases
        ):
            z = _softplus(_nonneg(raw) @ z + skip @ v + bias, self.beta)
        out = _nonneg(self.out_raw) @ z + self.out_skip @ v
        if self.quadratic is not None:
            qv = self.quadratic @ v
            out = out + 0.5 * jnp.sum(qv * qv)
        alpha = jnp.asarray(self.alpha, out.dtype)
        return out + 0.5 * alpha * jnp.sum(v * v)


def _conv(x, w, padding="SAME"):
    return jax.lax.conv_general_dilated(
        x[None], w, window_strides=(1, 1), padding=padding
    )[0]


class ConvICNN(AbstractICNN):
    """A convolutional input-convex network for images of shape `(C, H, W)`.

    z_1 = s(conv(x; K_0) + b_0), z_{k+1} = s(conv(z_k; P_k) + conv(x; Q_k) + b_k),
    psi(x) = sum over pixels of (w^T z_L) + alpha/2 ||x||^2. The kernels `P_k` and the
    channel weights `w` are nonnegative by construction (`softplus` of free
    parameters); `s` is the softplus with sharpness `beta`. Every layer keeps the
    image size ("same" padding), so the network takes images of any spatial size
    unless `image_shape` pins it.

    ??? cite "References"

        ```bibtex
        @inproceedings{amos2017input,
            title={Input Convex Neural Networks},
            author={Amos, Brandon and Xu, Lei and Kolter, J. Zico},
            booktitle={International Conference on Machine Learning},
            pages={146--155},
            year={2017}
        }
        ```
    """

    in_channels: int = eqx.field(static=True)
    image_shape: tuple[int, int] | None = eqx.field(static=True)
    beta: float = eqx.field(static=True)
    alpha: float = eqx.field(static=True)
    first_kernel: Array
    first_bias: Array
    hidden_raw: tuple[Array, ...]
    skip_kernels: tuple[Array, ...]
    hidden_biases: tuple[Array, ...]
    out_raw: Array

    def __init__(
        self,
        in_channels: int,
        channels: int,
        depth: int,
        *,
        key: PRNGKeyArray,
        kernel_size: int = 3,
        image_shape: tuple[int, int] | None = None,
        beta: float = 10.0,
        alpha: float = 0.0,
        dtype=None,
    ):
        """**Arguments:**

        - `in_channels`: number of image channels `C`.
        - `channels`: hidden channels.
        - `depth`: number of hidden layers with nonnegative kernels (>= 0).
        - `key`: a `jax.random` key for the initialisation.
        - `kernel_size`: odd convolution kernel size.
        - `image_shape`: optional `(H, W)` the network accepts (others raise).
        - `beta`: sharpness of the softplus activation.
        - `alpha`: weight of the strongly convex term `alpha/2 ||x||^2`.
        - `dtype`: parameter dtype (default: JAX's default float).
        """
        _check_beta_alpha(beta, alpha)
        if in_channels < 1 or channels < 1 or depth < 0:
            raise ValueError(
                "`in_channels` and `channels` must be positive, `depth` non-negative."
            )
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"`kernel_size` must be odd, got {kernel_size}.")
        dtype = jnp.result_type(float) if dtype is None else dtype
        k = kernel_size
        keys = jr.split(key, 3 * depth + 3)
        self.in_channels = in_channels
        self.image_shape = None if image_shape is None else tuple(image_shape)
        self.beta = float(beta)
        self.alpha = float(alpha)
        lim = 1.0 / math.sqrt(in_channels * k * k)
        self.first_kernel = jr.uniform(
            keys[0], (channels, in_channels, k, k), dtype, -lim, lim
        )
        self.first_bias = jr.uniform(keys[1], (channels, 1, 1), dtype, -lim, lim)
        self.hidden_raw = tuple(
            _raw_init(
                keys[2 + 3 * i],
                (channels, channels, k, k),
                1.0 / (channels * k * k),
                dtype,
            )
            for i in range(depth)
        )
        self.skip_kernels = tuple(
            jr.uniform(keys[3 + 3 * i], (channels, in_channels, k, k), dtype, -lim, lim)
            for i in range(depth)
        )
        self.hidden_biases = tuple(
            jr.uniform(keys[4 + 3 * i], (channels, 1, 1), dtype, -lim, lim)
            for i in range(depth)
        )
        self.out_raw = _raw_init(keys[-1], (channels,), 1.0 / channels, dtype)

    def check_input(self, x):
        shape = jnp.shape(x)
        if len(shape) != 3 or shape[0] != self.in_channels:
            raise ValueError(
                f"The convolutional ICNN expects an image of shape ({self.in_channels},"
                f" H, W), got {shape}; add the channel axis first."
            )
        if self.image_shape is not None and shape[1:] != self.image_shape:
            raise ValueError(
                f"The convolutional ICNN was built for images of shape "
                f"({self.in_channels}, {self.image_shape[0]}, {self.image_shape[1]}), "
                f"got {shape}."
            )

    def __call__(self, x):
        self.check_input(x)
        z = _softplus(_conv(x, self.first_kernel) + self.first_bias, self.beta)
        for raw, skip, bias in zip(
            self.hidden_raw, self.skip_kernels, self.hidden_biases
        ):
            z = _softplus(_conv(z, _nonneg(raw)) + _conv(x, skip) + bias, self.beta)
        out = jnp.sum(jnp.tensordot(_nonneg(self.out_raw), z, axes=1))
        alpha = jnp.asarray(self.alpha, out.dtype)
        return out + 0.5 * alpha * jnp.sum(x * x)
