"""Image quality metrics: PSNR and SSIM."""

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float


def psnr(
    estimate: Array, reference: Array, data_range: float = 1.0
) -> Float[Array, ""]:
    """Peak signal-to-noise ratio in dB, `10 log10(data_range^2 / MSE)`."""
    mse = jnp.mean((estimate - reference) ** 2)
    return 10 * jnp.log10(jnp.asarray(data_range**2, mse.dtype) / mse)


def ssim(
    estimate: Array, reference: Array, data_range: float = 1.0, window: int = 3
) -> Float[Array, ""]:
    """Structural similarity (Wang et al., 2004) over the last two axes with a
    `window x window` uniform window (valid positions only), `K1 = 0.01`, `K2 = 0.03`
    and the unbiased local variances, averaged over positions and leading axes. The
    small default window suits 8x8 images."""
    x = jnp.reshape(estimate, (-1, 1) + estimate.shape[-2:])
    y = jnp.reshape(reference, (-1, 1) + reference.shape[-2:]).astype(x.dtype)
    kernel = jnp.ones((1, 1, window, window), x.dtype) / window**2
    n = window * window

    def mean(img):
        return jax.lax.conv_general_dilated(img, kernel, (1, 1), "VALID")

    mx, my = mean(x), mean(y)
    cov_scale = jnp.asarray(n / (n - 1), x.dtype)
    vx = cov_scale * (mean(x * x) - mx * mx)
    vy = cov_scale * (mean(y * y) - my * my)
    cxy = cov_scale * (mean(x * y) - mx * my)
    c1 = jnp.asarray((0.01 * data_range) ** 2, x.dtype)
    c2 = jnp.asarray((0.03 * data_range) ** 2, x.dtype)
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return jnp.mean(s)
