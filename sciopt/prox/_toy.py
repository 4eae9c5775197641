"""The 1-D Laplacian prior experiment: x ~ Laplace(0, b), y = x + sigma g."""

import jax.numpy as jnp
import jax.random as jr
import numpy as np
from scipy import integrate

from ._icnn import ICNN
from ._lpn import LearnedProximalNetwork
from ._train import TrainingStage


def laplace_sampler(batch_size: int, scale: float = 1.0, dtype=None):
    """`sampler(key)` drawing `batch_size` scalars from Laplace(0, `scale`)."""
    dtype = jnp.result_type(float) if dtype is None else dtype

    def sampler(key):
        return jnp.asarray(scale, dtype) * jr.laplace(key, (batch_size,), dtype)

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


def laplacian_lpn(key, *, width=50, depth=4, beta=10.0, dtype=None):
    """The scalar LPN of the 1-D experiment (width 50, 4 nonnegative layers)."""
    return LearnedProximalNetwork(
        ICNN("scalar", width, depth, key=key, beta=beta, dtype=dtype)
    )


def laplacian_stages(
    kind: str, *, scale: float = 1.0, final_gamma: float = 0.1, quick: bool = False
) -> tuple[TrainingStage, ...]:
    """Training stages for the 1-D experiment; `scale` multiplies every step count.

    `"l2"`/`"l1"`: Adam at 1e-3 then 1e-4. `"proximal_matching"`: l1 pretraining, then
    proximal matching with gamma 0.5 -> 0.4 -> 0.3 -> 0.2 -> `final_gamma` and
    decreasing learning rates (after the authors' 1-D recipe). `quick=True` gives a
    short schedule (about 1400 steps, larger learning rates) for smoke runs.
    """
    if quick:
        if kind in ("l2", "l1"):
            return (TrainingStage(kind, 1000, 3e-3),)
        pm = "proximal_matching"
        return (
            TrainingStage("l1", 500, 3e-3),
            TrainingStage(pm, 300, 1e-3, 0.5),
            TrainingStage(pm, 300, 1e-3, 0.3),
            TrainingStage(pm, 300, 3e-4, 0.2),
        )

    def n(steps):
        return max(1, int(round(steps * scale)))

    if kind in ("l2", "l1"):
        return (
            TrainingStage(kind, n(10000), 1e-3),
            TrainingStage(kind, n(10000), 1e-4),
        )
    if kind != "proximal_matching":
        raise ValueError(f"Unknown loss {kind!r}.")
    pm = "proximal_matching"
    stages = [
        TrainingStage("l1", n(10000), 1e-3),
        TrainingStage(pm, n(2000), 1e-3, 0.5),
        TrainingStage(pm, n(2000), 1e-4, 0.5),
        TrainingStage(pm, n(4000), 1e-4, 0.4),
        TrainingStage(pm, n(4000), 1e-4, 0.3),
        TrainingStage(pm, n(4000), 1e-4, 0.2),
    ]
    if final_gamma < 0.1:
        stages.append(TrainingStage(pm, n(4000), 1e-4, 0.1))
    stages += [
        TrainingStage(pm, n(4000), 1e-4, final_gamma),
        TrainingStage(pm, n(4000), 1e-5, final_gamma),
    ]
    return tuple(stages)
