"""scikit-learn's bundled 8x8 digits as a small image inverse-problem benchmark."""

import jax.numpy as jnp
import jax.random as jr
import numpy as np

from ..prox import (
    blur_operator,
    gaussian_sensing_operator,
    LinearInverseProblem,
    projection_operator,
    subsampling_operator,
)


_OPERATORS = ("identity", "blur", "subsample", "sensing", "projection")


def load_digit_images(dtype=np.float64) -> np.ndarray:
    """All 1797 digits as images of shape `(1, 8, 8)` scaled to [0, 1]."""
    from sklearn.datasets import load_digits

    images = load_digits().images.astype(dtype) / 16.0
    return images[:, None]


def digits_split(dtype=np.float64, num_test: int = 100):
    """A fixed train / test split (the last `num_test` digits are the test set)."""
    images = load_digit_images(dtype)
    return images[:-num_test], images[-num_test:]


def digits_operator(
    name,
    *,
    key,
    image_shape=(1, 8, 8),
    blur_sigma=1.0,
    measurement_ratio=0.5,
    num_angles=4,
    dtype=np.float64,
):
    """Build a named forward operator for the digits problems."""
    import jax
    import lineax as lx

    if name == "identity":
        return lx.IdentityLinearOperator(jax.ShapeDtypeStruct(image_shape, dtype))
    if name == "blur":
        return blur_operator(image_shape, sigma=blur_sigma, size=5, dtype=dtype)
    if name == "subsample":
        n = int(np.prod(image_shape))
        keep = np.asarray(jr.permutation(key, n))[: int(round(measurement_ratio * n))]
        mask = np.zeros(n, bool)
        mask[keep] = True
        return subsampling_operator(mask.reshape(image_shape), dtype=dtype)
    if name == "sensing":
        m = int(round(measurement_ratio * int(np.prod(image_shape))))
        return gaussian_sensing_operator(key, image_shape, m, dtype=dtype)
    if name == "projection":
        return projection_operator(image_shape, num_angles, dtype=dtype)
    raise ValueError(f"`operator` must be one of {_OPERATORS}, got {name!r}.")


def digits_problem(
    *,
    operator="identity",
    noise=0.1,
    image_index=0,
    seed=0,
    blur_sigma=1.0,
    measurement_ratio=0.5,
    num_angles=4,
    dtype=np.float64,
    clean=None,
):
    """A `LinearInverseProblem` for one test digit; returns `(problem, clean)`."""
    if clean is None:
        _, test = digits_split(dtype)
        clean = test[image_index]
    clean = jnp.asarray(clean, dtype)
    key_op, key_noise = jr.split(jr.key(seed))
    op = digits_operator(
        operator,
        key=key_op,
        image_shape=clean.shape,
        blur_sigma=blur_sigma,
        measurement_ratio=measurement_ratio,
        num_angles=num_angles,
        dtype=dtype,
    )
    y = op.mv(clean)
    y = y + jnp.asarray(noise, y.dtype) * jr.normal(key_noise, y.shape, y.dtype)
    return LinearInverseProblem(op, y), clean
