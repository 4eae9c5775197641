"""Forward operators for linear inverse problems, as lineax linear operators."""

import math

import jax
import jax.numpy as jnp
import jax.random as jr
import lineax as lx
import numpy as np
from jaxtyping import Array, PRNGKeyArray


def _struct(image_shape, dtype):
    dtype = jnp.result_type(float) if dtype is None else dtype
    return jax.ShapeDtypeStruct(tuple(int(s) for s in image_shape), dtype)


def _check_image_shape(image_shape):
    if len(image_shape) < 2 or any(int(s) < 1 for s in image_shape):
        raise ValueError(
            f"`image_shape` must be (H, W) or (C, H, W) with positive sizes, got "
            f"{tuple(image_shape)}."
        )


def blur_operator(
    image_shape: tuple[int, ...], *, sigma: float = 1.0, size: int = 5, dtype=None
) -> lx.FunctionLinearOperator:
    """Gaussian blur (zero boundary, a symmetric operator) over the last two axes.

    **Arguments:**

    - `image_shape`: `(H, W)` or `(C, H, W)`.
    - `sigma`: the Gaussian's standard deviation in pixels (> 0).
    - `size`: odd kernel size.
    - `dtype`: float dtype of the images.
    """
    _check_image_shape(image_shape)
    if not sigma > 0 or size < 1 or size % 2 == 0:
        raise ValueError("`sigma` must be positive and `size` a positive odd int.")
    struct = _struct(image_shape, dtype)
    r = np.arange(size) - size // 2
    g = np.exp(-(r**2) / (2 * sigma**2))
    kernel = np.outer(g, g) / np.sum(g) ** 2
    kernel = jnp.asarray(kernel[None, None], struct.dtype)

    def apply(x):
        h, w = x.shape[-2:]
        flat = jnp.reshape(x, (-1, 1, h, w))
        out = jax.lax.conv_general_dilated(flat, kernel, (1, 1), "SAME")
        return jnp.reshape(out, x.shape)

    return lx.FunctionLinearOperator(apply, struct, tags=lx.symmetric_tag)


def subsampling_operator(mask: Array, *, dtype=None) -> lx.FunctionLinearOperator:
    """Keep the pixels where `mask` is true (inpainting / subsampled measurements).

    **Arguments:**

    - `mask`: a boolean array shaped like the image.
    - `dtype`: float dtype of the images.
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim < 1 or not mask.any():
        raise ValueError("`mask` must be a boolean array with at least one True.")
    index = jnp.asarray(np.flatnonzero(mask))
    struct = _struct(mask.shape, dtype)

    def apply(x):
        return jnp.ravel(x)[index]

    return lx.FunctionLinearOperator(apply, struct)


def gaussian_sensing_operator(
    key: PRNGKeyArray,
    image_shape: tuple[int, ...],
    num_measurements: int,
    *,
    dtype=None,
) -> lx.FunctionLinearOperator:
    """Compressed sensing: `m` random Gaussian measurements `Phi x` with entries of
    variance `1/m` (so `E ||Phi x||^2 = ||x||^2`).

    **Arguments:**

    - `key`: a `jax.random` key.
    - `image_shape`: shape of the unknown.
    - `num_measurements`: `m`.
    - `dtype`: float dtype.
    """
    if num_measurements < 1:
        raise ValueError("`num_measurements` must be positive.")
    struct = _struct(image_shape, dtype)
    n = math.prod(struct.shape)
    phi = jr.normal(key, (num_measurements, n), struct.dtype) / math.sqrt(
        num_measurements
    )

    def apply(x):
        return phi @ jnp.ravel(x)

    return lx.FunctionLinearOperator(apply, struct)


def projection_operator(
    image_shape: tuple[int, ...], num_angles: int, *, dtype=None
) -> lx.FunctionLinearOperator:
    """A simple parallel-beam tomography-like projection: for each of `num_angles`
    angles in [0, pi), the image (last two axes) is rotated about its centre with
    bilinear interpolation (zero outside) and summed along its rows.

    **Arguments:**

    - `image_shape`: `(H, W)` or `(C, H, W)`.
    - `num_angles`: number of projection angles.
    - `dtype`: float dtype.
    """
    _check_image_shape(image_shape)
    if num_angles < 1:
        raise ValueError("`num_angles` must be positive.")
    struct = _struct(image_shape, dtype)
    h, w = struct.shape[-2:]
    ci, cj = (h - 1) / 2, (w - 1) / 2
    ii, jj = np.meshgrid(np.arange(h) - ci, np.arange(w) - cj, indexing="ij")
    coords = []
    for theta in np.arange(num_angles) * np.pi / num_angles:
        c, s = np.cos(theta), np.sin(theta)
        coords.append((c * ii - s * jj + ci, s * ii + c * jj + cj))
    coords = jnp.asarray(np.array(coords), struct.dtype)  # (angles, 2, h, w)

    def project_one(img):
        def rotate(c):
            return jax.scipy.ndimage.map_coordinates(
                img, [c[0], c[1]], order=1, mode="constant", cval=0.0
            )

        return jnp.sum(jax.vmap(rotate)(coords), axis=-2)  # (angles, w)

    def apply(x):
        flat = jnp.reshape(x, (-1, h, w))
        return jnp.reshape(jax.vmap(project_one)(flat), x.shape[:-2] + (num_angles, w))

    return lx.FunctionLinearOperator(apply, struct)
