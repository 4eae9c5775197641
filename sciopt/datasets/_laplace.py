"""The 1-D Laplacian prior experiment: x ~ Laplace(0, b), y = x + sigma g."""

import jax.numpy as jnp
import jax.random as jr
import numpy as np
from scipy import integrate

from ..prox import ICNN, LearnedProximalNetwork, TrainingStage


def laplace_sampler(
    batch_size: int,
    scale: float = 1.0,
    dtype=None,
    *,
    symmetric: bool = False,
    proposal_scale: float | None = None,
    uniform_fraction: float = 0.0,
    uniform_radius: float = 5.0,
):
    """`sampler(key)` drawing `batch_size` scalars from Laplace(0, `scale`).

    `symmetric=True` draws half the batch and appends its negation (`batch_size`
    even), so the batch is symmetric like the distribution.

    **Importance sampling.** With `proposal_scale` or `uniform_fraction` set, the
    samples come from a heavier-tailed proposal `q` instead and the sampler returns
    `(x, w)` with the importance weights `w = p(x) / q(x)` (`p` the Laplace(0, `scale`)
    density); `fit_lpn` and `denoising_loss` then minimise the weighted mean
    `mean_i w_i loss_i`, an unbiased estimate of the expected loss under `p`. The
    expected loss, hence its minimiser (for every noisy input `y`, the same ideal
    denoiser), is unchanged; only the sampling of the tails changes. The proposal is
    the mixture `(1 - u) Laplace(0, proposal_scale) + u Uniform(-uniform_radius,
    uniform_radius)` with `u = uniform_fraction`, sampled in strata (a fixed share
    `u` of every batch from the uniform part, rounded to a whole number of samples,
    and the weights use that share), which keeps the estimate unbiased.
    `proposal_scale` defaults to `scale`.
    """
    dtype = jnp.result_type(float) if dtype is None else dtype
    if symmetric and batch_size % 2:
        raise ValueError("`symmetric=True` needs an even `batch_size`.")
    if not 0.0 <= uniform_fraction < 1.0:
        raise ValueError(
            f"`uniform_fraction` must lie in [0, 1), got {uniform_fraction!r}."
        )
    if proposal_scale is not None and not proposal_scale > 0:
        raise ValueError(f"`proposal_scale` must be positive, got {proposal_scale!r}.")
    if not uniform_radius > 0:
        raise ValueError(f"`uniform_radius` must be positive, got {uniform_radius!r}.")
    weighted = proposal_scale is not None or uniform_fraction > 0
    n = batch_size // 2 if symmetric else batch_size
    n_uniform = int(round(uniform_fraction * n))
    share = n_uniform / n
    s = scale if proposal_scale is None else proposal_scale

    def draw(key):
        if not weighted:
            return jnp.asarray(scale, dtype) * jr.laplace(key, (n,), dtype)
        k_lap, k_uni = jr.split(key)
        lap = jnp.asarray(s, dtype) * jr.laplace(k_lap, (n - n_uniform,), dtype)
        uni = jr.uniform(
            k_uni,
            (n_uniform,),
            dtype,
            minval=jnp.asarray(-uniform_radius, dtype),
            maxval=jnp.asarray(uniform_radius, dtype),
        )
        return jnp.concatenate([lap, uni])

    def weights(x):
        ax = jnp.abs(x)
        p = jnp.exp(-ax / jnp.asarray(scale, x.dtype)) / jnp.asarray(2 * scale, x.dtype)
        q_lap = jnp.exp(-ax / jnp.asarray(s, x.dtype)) / jnp.asarray(2 * s, x.dtype)
        q_uni = jnp.where(
            ax <= uniform_radius,
            jnp.asarray(1 / (2 * uniform_radius), x.dtype),
            jnp.zeros((), x.dtype),
        )
        u = jnp.asarray(share, x.dtype)
        q = (1 - u) * q_lap + u * q_uni
        return p / q

    def sampler(key):
        x = draw(key)
        if symmetric:
            x = jnp.concatenate([x, -x])
        return (x, weights(x)) if weighted else x

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


# Steps of the last proximal matching phase (`gamma = 0.1`) of the default recipe.
LAPLACIAN_FINAL_STEPS = 8000


def laplacian_stages(
    kind: str,
    *,
    scale: float = 1.0,
    quick: bool = False,
    recipe: str = "default",
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
    at 1e-3), 0.3 (1000 at 1e-3), 0.2 (1000 at 3e-4) and 0.1 (8000 steps whose
    learning rate decays from 1e-4 to 0 along half a cosine): it really trains at
    `gamma = 0.1`, whose ideal minimiser is within 0.03 (RMS) of the MAP denoiser.
    Narrower widths leave too few samples near each target: at `gamma = 0.05` and
    0.08 the error grew in our runs.

    `recipe="constant"` is the previous default: the same, but the `gamma = 0.1`
    phase runs 4000 steps at 1e-4 then 1000 at 3e-5.

    `quick=True` gives a short schedule (about 1400 steps, larger learning rates) for
    smoke runs.
    """
    if kind not in ("l2", "l1", "proximal_matching"):
        raise ValueError(f"Unknown loss {kind!r}.")
    if recipe not in ("default", "constant", "authors"):
        raise ValueError(
            f"`recipe` must be 'default', 'constant' or 'authors', got {recipe!r}."
        )
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

    def n(steps):
        return max(1, int(round(steps * scale)))

    if recipe == "authors":
        supervised = [(10000, 1e-3), (10000, 1e-4)]
        pretrain = [TrainingStage("l1", n(k), lr) for k, lr in supervised]
        matching = [
            TrainingStage(pm, n(k), lr, gamma)
            for k, lr, gamma in [
                (2000, 1e-3, 0.5),
                (2000, 1e-4, 0.5),
                (4000, 1e-4, 0.4),
                (4000, 1e-4, 0.3),
                (4000, 1e-5, 0.2),
                (4000, 1e-5, 0.1),
                (4000, 1e-6, 0.1),
            ]
        ]
    else:
        supervised = [(3000, 1e-3), (2000, 1e-4)]
        pretrain = [TrainingStage("l1", n(3000), 1e-3)]
        matching = [
            TrainingStage(pm, n(1000), 1e-3, 0.5),
            TrainingStage(pm, n(1000), 1e-3, 0.3),
            TrainingStage(pm, n(1000), 3e-4, 0.2),
        ]
        if recipe == "constant":
            matching += [
                TrainingStage(pm, n(4000), 1e-4, 0.1),
                TrainingStage(pm, n(1000), 3e-5, 0.1),
            ]
        else:
            matching.append(
                TrainingStage(
                    pm, n(LAPLACIAN_FINAL_STEPS), 1e-4, 0.1, end_learning_rate=0.0
                )
            )
    if kind in ("l2", "l1"):
        return tuple(TrainingStage(kind, n(k), lr) for k, lr in supervised)
    return tuple(pretrain) + tuple(matching)
