"""The 1-D Laplacian prior experiment: x ~ Laplace(0, b), y = x + sigma g."""

import jax.numpy as jnp
import jax.random as jr
import numpy as np
from scipy import integrate

from ._icnn import ICNN
from ._lpn import LearnedProximalNetwork
from ._train import TrainingStage


def laplace_sampler(
    batch_size: int, scale: float = 1.0, dtype=None, *, symmetric: bool = False
):
    """`sampler(key)` drawing `batch_size` scalars from Laplace(0, `scale`).

    `symmetric=True` draws half the batch and appends its negation (`batch_size`
    even), so the batch is symmetric like the distribution.
    """
    dtype = jnp.result_type(float) if dtype is None else dtype
    if symmetric and batch_size % 2:
        raise ValueError("`symmetric=True` needs an even `batch_size`.")

    def sampler(key):
        b = jnp.asarray(scale, dtype)
        if symmetric:
            half = b * jr.laplace(key, (batch_size // 2,), dtype)
            return jnp.concatenate([half, -half])
        return b * jr.laplace(key, (batch_size,), dtype)

    return sampler


def soft_threshold(y, threshold):
    """`sign(y) max(|y| - t, 0)` (NumPy)."""
    y = np.asarray(y)
    return np.sign(y) * np.maximum(np.abs(y) - threshold, 0.0)


def posterior_mean_median(y, *, scale=1.0, sigma=1.0):
    """Posterior mean and median of x given y = x + sigma g, x ~ Laplace(0, scale),
    by quadrature (NumPy arrays over the points `y`)."""
    grid = np.linspace(-30, 30, 60001)
    means, medians = [], []
    for v in np.atleast_1d(y):
        logp = -np.abs(grid) / scale - (v - grid) ** 2 / (2 * sigma**2)
        p = np.exp(logp - logp.max())
        cdf = integrate.cumulative_trapezoid(p, grid, initial=0.0)
        means.append(np.trapezoid(grid * p, grid) / cdf[-1])
        medians.append(np.interp(0.5, cdf / cdf[-1], grid))
    return np.array(means), np.array(medians)


def ideal_matching_denoiser(y, gamma, *, scale=1.0, sigma=1.0):
    """The minimiser over all denoisers of the expected proximal matching loss with
    width `gamma`: `argmax_c E[exp(-(c - x)^2 / gamma^2) | y]`, by quadrature and a
    grid search over `c` (spacing 5e-3; NumPy arrays over the points `y`). It tends to
    the soft-threshold (the posterior mode) as `gamma -> 0`."""
    y = np.atleast_1d(np.asarray(y, np.float64))
    xs = np.linspace(-12, 12, 2401)
    log_post = -np.abs(xs)[None] / scale - (y[:, None] - xs[None]) ** 2 / (2 * sigma**2)
    post = np.exp(log_post - log_post.max(axis=1, keepdims=True))
    post /= post.sum(axis=1, keepdims=True)
    cs = np.linspace(-6, 6, 2401)
    kernel = np.exp(-((cs[:, None] - xs[None]) ** 2) / gamma**2)
    return cs[np.argmax(post @ kernel.T, axis=1)]


def laplacian_lpn(key, *, width=50, depth=4, beta=10.0, dtype=None):
    """The scalar LPN of the 1-D experiment (width 50, 4 nonnegative layers)."""
    return LearnedProximalNetwork(
        ICNN("scalar", width, depth, key=key, beta=beta, dtype=dtype)
    )


def laplacian_stages(
    kind: str, *, scale: float = 1.0, quick: bool = False, recipe: str = "default"
) -> tuple[TrainingStage, ...]:
    """Training stages for the 1-D experiment; `scale` multiplies every step count.

    `recipe="authors"` is the authors' notebook: l2 / l1 run 10000 Adam steps at 1e-3
    then 10000 at 1e-4; proximal matching continues from the l1 model with
    `gamma` 0.5 (2000 steps at 1e-3, 2000 at 1e-4), 0.4 (4000 at 1e-4), 0.3 (4000 at
    1e-4), 0.2 (4000 at 1e-5) and 0.1 (4000 at 1e-5, 4000 at 1e-6). At those learning
    rates the last two widths barely move the network, so it ends near the
    `gamma = 0.3` denoiser.

    `recipe="default"`: l2 / l1 run 3000 steps at 1e-3 then 2000 at 1e-4; proximal
    matching pretrains 3000 l1 steps at 1e-3, then anneals `gamma` 0.5 (1000 steps
    at 1e-3), 0.3 (1000 at 1e-3), 0.2 (1000 at 3e-4) and 0.1 (4000 at 1e-4, 1000 at
    3e-5): it really trains at `gamma = 0.1`, whose ideal minimiser is within 0.03
    (RMS) of the MAP denoiser. Narrower widths leave too few samples near each
    target: at `gamma = 0.05` the error grew in our runs.

    `quick=True` gives a short schedule (about 1400 steps, larger learning rates) for
    smoke runs.
    """
    if kind not in ("l2", "l1", "proximal_matching"):
        raise ValueError(f"Unknown loss {kind!r}.")
    if recipe not in ("default", "authors"):
        raise ValueError(f"`recipe` must be 'default' or 'authors', got {recipe!r}.")
    pm = "proximal_matching"
    if quick:
        if kind in ("l2", "l1"):
            return (TrainingStage(kind, 1000, 3e-3),)
        return (
            TrainingStage("l1", 500, 3e-3),
            TrainingStage(pm, 300, 1e-3, 0.5),
            TrainingStage(pm, 300, 1e-3, 0.3),
            TrainingStage(pm, 300, 3e-4, 0.2),
        )
    if recipe == "authors":
        supervised = [(10000, 1e-3, None), (10000, 1e-4, None)]
        matching = [
            (2000, 1e-3, 0.5),
            (2000, 1e-4, 0.5),
            (4000, 1e-4, 0.4),
            (4000, 1e-4, 0.3),
            (4000, 1e-5, 0.2),
            (4000, 1e-5, 0.1),
            (4000, 1e-6, 0.1),
        ]
    else:
        supervised = [(3000, 1e-3, None), (2000, 1e-4, None)]
        matching = [
            (1000, 1e-3, 0.5),
            (1000, 1e-3, 0.3),
            (1000, 3e-4, 0.2),
            (4000, 1e-4, 0.1),
            (1000, 3e-5, 0.1),
        ]

    def n(steps):
        return max(1, int(round(steps * scale)))

    if kind in ("l2", "l1"):
        return tuple(TrainingStage(kind, n(k), lr) for k, lr, _ in supervised)
    if recipe == "authors":
        pretrain = [TrainingStage("l1", n(k), lr) for k, lr, _ in supervised]
    else:
        pretrain = [TrainingStage("l1", n(3000), 1e-3)]
    return tuple(pretrain) + tuple(
        TrainingStage(pm, n(k), lr, gamma) for k, lr, gamma in matching
    )
