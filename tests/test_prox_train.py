"""Training learned proximal networks on the 1-D Laplacian prior experiment."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
import sciopt.prox as sp
from sciopt.datasets import (
    laplace_sampler,
    laplacian_lpn,
    posterior_mean_median,
    soft_threshold,
)
from sciopt.gallery.prox import laplacian_metrics, train_laplacian


GRID = np.linspace(-4, 4, 161)


def _rms_to_soft_threshold(lpn):
    f = np.asarray(jax.jit(jax.vmap(lambda y: lpn(y)))(jnp.asarray(GRID)))
    return float(np.sqrt(np.mean((f - soft_threshold(GRID, 1.0)) ** 2))), f


def test_proximal_matching_moves_prox_towards_soft_threshold():
    sampler = laplace_sampler(500)
    lpn = laplacian_lpn(jr.key(0), width=32, depth=3, beta=10.0)
    start = sp.fit_lpn(
        lpn,
        sigma=1.0,
        stages=[sp.TrainingStage("l1", 400, 3e-3)],
        key=jr.key(1),
        sampler=sampler,
    ).model
    pm = sp.fit_lpn(
        start,
        sigma=1.0,
        stages=[
            sp.TrainingStage("proximal_matching", 200, 1e-3, 0.5),
            sp.TrainingStage("proximal_matching", 200, 1e-3, 0.3),
        ],
        key=jr.key(2),
        sampler=sampler,
    )
    assert pm.num_steps == 400 and not pm.diverged
    rms_start, f_start = _rms_to_soft_threshold(start)
    rms_pm, f_pm = _rms_to_soft_threshold(pm.model)
    assert rms_pm < 0.8 * rms_start
    # The dead zone of the soft-threshold appears: f(+-0.5) shrinks towards 0.
    half = np.abs(GRID - 0.5).argmin()
    assert abs(f_pm[half]) < 0.7 * abs(f_start[half])


def test_posterior_references():
    # Quadrature of the posterior, against closed-form facts: odd symmetry and the
    # soft-threshold is the posterior mode, not the mean.
    mean, median = posterior_mean_median(np.array([-2.0, 0.0, 2.0]))
    np.testing.assert_allclose(mean[1], 0.0, atol=1e-12)
    np.testing.assert_allclose(mean[0], -mean[2], rtol=1e-10)
    # Closed form: p(x | y) is proportional to exp(-x - (y - x)^2 / 2) on x >= 0 and
    # exp(x - (y - x)^2 / 2) on x < 0, two Gaussian pieces centred at y - 1 and y + 1
    # with masses e^{-y} Phi(y - 1) and e^{y} Phi(-y - 1), whose means are those of
    # truncated normals; the median solves the CDF = 1/2 with the normal quantile.
    from scipy.stats import norm

    for y in (2.0, 0.7, -1.3):
        (m_grid,), (med_grid,) = posterior_mean_median(np.array([y]))
        lo, hi = y + 1, y - 1
        w_neg, w_pos = np.exp(y) * norm.cdf(-lo), np.exp(-y) * norm.cdf(hi)
        e_neg = lo - norm.pdf(lo) / norm.cdf(-lo)
        e_pos = hi + norm.pdf(hi) / norm.cdf(hi)
        z = w_neg + w_pos
        mean_exact = (w_neg * e_neg + w_pos * e_pos) / z
        if w_neg >= z / 2:  # the median lies in the negative piece
            med_exact = lo + norm.ppf(z / 2 / np.exp(y))
        else:
            med_exact = hi + norm.ppf(norm.cdf(-hi) + (z / 2 - w_neg) / np.exp(-y))
        # The grid quadrature (spacing 1e-3, trapezoid, linear interpolation of the
        # CDF): measured within 6e-8 of the closed forms.
        np.testing.assert_allclose(m_grid, mean_exact, rtol=0, atol=2e-7)
        np.testing.assert_allclose(med_grid, med_exact, rtol=0, atol=2e-7)


@pytest.mark.slow
def test_laplacian_goal_level_run():
    # The gallery's full configuration (about 8 minutes on two shared cores; seeds
    # 0, 1, 2 measured RMS 0.044, 0.049, 0.046 to the soft-threshold).
    results = {}
    for kind, batch in (("l2", 2000), ("proximal_matching", 4000)):
        lpn, _ = train_laplacian(
            kind, scale=1.0, batch_size=batch, beta=10.0, dtype=jnp.float32
        )
        results[kind] = laplacian_metrics(lpn, regularizer=kind != "l2")
    pm = results["proximal_matching"]
    assert pm["rms"] <= 0.055 and pm["max"] <= 0.2
    assert pm["r_converged"] and pm["r_error"] <= 0.15
    l2 = results["l2"]
    mean, _ = posterior_mean_median(l2["grid"])
    assert np.sqrt(np.mean((l2["prox"] - mean) ** 2)) < 0.5 * l2["rms"]
    assert pm["rms"] < 0.3 * l2["rms"]


def test_symmetric_sampler_and_antithetic_noise():
    from sciopt.prox._train import _noise

    x = laplace_sampler(6, symmetric=True)(jr.key(0))
    np.testing.assert_array_equal(x[:3], -x[3:])
    assert len(np.unique(np.abs(np.asarray(x)))) == 3
    g = _noise(jr.key(1), (6, 2), jnp.float64, True)
    np.testing.assert_array_equal(g[:3], -g[3:])
    assert float(jnp.min(jnp.abs(g))) > 0
    with pytest.raises(ValueError, match="even"):
        laplace_sampler(5, symmetric=True)
    lpn = laplacian_lpn(jr.key(0), width=4, depth=1)
    with pytest.raises(ValueError, match="even"):
        sp.fit_lpn(
            lpn,
            sigma=1.0,
            stages=[sp.TrainingStage("l2", 2, 1e-3)],
            key=jr.key(2),
            sampler=laplace_sampler(5),
            antithetic=True,
        )


def test_ideal_matching_denoiser_tends_to_soft_threshold():
    # The best denoiser for the proximal matching loss at width gamma approaches the
    # posterior mode (the soft-threshold) as gamma shrinks; at gamma = 2 it is far.
    from sciopt.datasets import ideal_matching_denoiser

    grid = np.linspace(-4, 4, 81)
    st = soft_threshold(grid, 1.0)
    rms = [
        float(np.sqrt(np.mean((ideal_matching_denoiser(grid, g) - st) ** 2)))
        for g in (2.0, 0.3, 0.1)
    ]
    assert rms[0] > rms[1] > rms[2]
    assert 0.06 < rms[1] < 0.09 and rms[2] < 0.035
    # Odd symmetry and the dead zone.
    f = ideal_matching_denoiser(np.array([-2.0, -0.5, 0.0, 0.5, 2.0]), 0.1)
    np.testing.assert_allclose(f, -f[::-1], atol=6e-3)
    assert abs(f[1]) < 0.05 and abs(f[4] - 1.0) < 0.05


def test_importance_weights_match_the_densities():
    # Weights are p(x) / q(x) for the mixture proposal, in closed form.
    sampler = laplace_sampler(
        1000, proposal_scale=2.0, uniform_fraction=0.2, uniform_radius=5.0
    )
    x, w = sampler(jr.key(0))
    x, w = np.asarray(x), np.asarray(w)
    assert x.shape == w.shape == (1000,)
    assert np.sum(np.abs(x) > 5.0) > 0  # the Laplace part reaches past the box
    p = 0.5 * np.exp(-np.abs(x))
    q = 0.8 * 0.25 * np.exp(-np.abs(x) / 2.0) + 0.2 * (np.abs(x) <= 5.0) / 10.0
    np.testing.assert_allclose(w, p / q, rtol=1e-12)
    # Unweighted samplers still return bare arrays.
    assert not isinstance(laplace_sampler(10)(jr.key(0)), tuple)
    with pytest.raises(ValueError, match="uniform_fraction"):
        laplace_sampler(10, uniform_fraction=1.0)
    with pytest.raises(ValueError, match="proposal_scale"):
        laplace_sampler(10, proposal_scale=0.0)


@pytest.mark.parametrize(
    "proposal",
    [dict(proposal_scale=2.0), dict(proposal_scale=1.5, uniform_fraction=0.1)],
)
def test_importance_weighted_loss_is_unbiased(proposal):
    # The weighted mean over the heavier-tailed proposal estimates the same expected
    # loss as plain Laplace sampling. Moments in closed form (Laplace(0, 1):
    # E 1 = 1, E x^2 = 2, E |x|^3 = 6), and the proximal matching loss of a fixed
    # denoiser (the soft-threshold) against a large plain sample; tolerances are
    # 5 standard errors, and the standard errors are small enough to matter.
    n = 400_000
    x, w = laplace_sampler(n, symmetric=True, **proposal)(jr.key(3))
    x, w = np.asarray(x), np.asarray(w)
    for h, exact in ((np.ones_like(x), 1.0), (x**2, 2.0), (np.abs(x) ** 3, 6.0)):
        est = np.mean(w * h)
        se = np.std(w * h) / np.sqrt(n)
        assert se < 0.03 * exact
        assert abs(est - exact) < 5 * se
    # The loss itself, through the same code path as training.
    noise = np.asarray(jr.normal(jr.key(4), (n,), jnp.float64))
    pred = soft_threshold(x + noise, 1.0)
    weighted = sp.proximal_matching_loss(jnp.asarray(pred), jnp.asarray(x), 0.3, w)
    x_p = np.asarray(laplace_sampler(n)(jr.key(5)))
    noise_p = np.asarray(jr.normal(jr.key(6), (n,), jnp.float64))
    plain_terms = 1 - np.exp(-((soft_threshold(x_p + noise_p, 1.0) - x_p) ** 2) / 0.09)
    weighted_terms = w * (1 - np.exp(-((pred - x) ** 2) / 0.09))
    np.testing.assert_allclose(float(weighted), np.mean(weighted_terms), rtol=1e-12)
    se = np.sqrt(np.var(weighted_terms) / n + np.var(plain_terms) / n)
    assert se < 0.003
    assert abs(float(weighted) - np.mean(plain_terms)) < 5 * se


class _Affine(eqx.Module):
    a: jax.Array
    b: jax.Array

    def __call__(self, y):
        return self.a * y + self.b


def test_weighted_sampler_trains_the_best_affine_denoiser():
    # fit_lpn with an importance-weighted (x, w) sampler and a decaying learning
    # rate: the affine denoiser a y + b minimising E (a (x + g) + b - x)^2 for
    # x ~ Laplace(0, 1) (E x^2 = 2) and g ~ N(0, 1) is a = 2 / (2 + 1), b = 0. The
    # samples come from a Laplace of scale 2 (E x^2 = 8): without the weights the
    # fit would be a = 8/9. Measured a - 2/3 = -4e-5 and -9e-4 on two seeds (the
    # sampling noise of the last batches), |b| < 2e-7.
    sampler = laplace_sampler(1024, symmetric=True, proposal_scale=2.0)
    res = sp.fit_lpn(
        _Affine(jnp.array(0.0), jnp.array(0.3)),
        sigma=1.0,
        stages=[sp.TrainingStage("l2", 300, 3e-2, end_learning_rate=1e-4)],
        key=jr.key(1),
        sampler=sampler,
        antithetic=True,
    )
    assert res.num_steps == 300 and not res.diverged
    np.testing.assert_allclose(float(res.model.a), 2 / 3, atol=4e-3)
    assert abs(float(res.model.b)) < 1e-3


def _documented_learning_rate(stages, k):
    """The learning rate at step `k` from the formula in `TrainingStage`'s docstring
    (written out independently of optax)."""
    begin = 0
    for i, st in enumerate(stages):
        if k < begin + st.steps or i == len(stages) - 1:
            break
        begin += st.steps
    a, n, j = st.learning_rate, st.steps, min(k - begin, st.steps)
    if st.end_learning_rate is None:
        return a
    b = st.end_learning_rate
    if st.decay == "cosine":
        return b + (a - b) * (1 + math.cos(math.pi * j / n)) / 2
    return a + (b - a) * j / n


LR_STAGES = [
    sp.TrainingStage("proximal_matching", 10, 1e-3, 0.5),
    sp.TrainingStage("proximal_matching", 100, 1e-4, 0.1, end_learning_rate=0.0),
    sp.TrainingStage(
        "proximal_matching", 100, 1e-4, 0.1, end_learning_rate=1e-5, decay="linear"
    ),
    sp.TrainingStage("proximal_matching", 30, 2e-4, 0.05, end_learning_rate=5e-5),
    sp.TrainingStage("proximal_matching", 7, 3e-5, 0.05),
]


def test_learning_rate_decay_within_a_stage():
    from sciopt.prox._train import _gammas, _learning_rates

    lr = jax.jit(_learning_rates(LR_STAGES))
    steps = [0, 9, 10, 37, 60, 109, 110, 160, 209, 210, 225, 239, 240, 246, 400]
    values = [float(lr(jnp.asarray(k, jnp.int32))) for k in steps]
    expected = [_documented_learning_rate(LR_STAGES, k) for k in steps]
    np.testing.assert_allclose(values, expected, rtol=1e-12, atol=1e-20)
    # hand-checked points of the formula itself
    np.testing.assert_allclose(
        values[:2] + [values[2], values[4], values[6], values[7]],
        [1e-3, 1e-3, 1e-4, 0.5e-4, 1e-4, 0.55e-4],
        rtol=1e-12,
    )
    gamma = jax.jit(_gammas(LR_STAGES))
    got = [float(gamma(jnp.asarray(k, jnp.int32))) for k in (0, 9, 10, 209, 210, 246)]
    assert got == [0.5, 0.5, 0.1, 0.1, 0.05, 0.05]
    with pytest.raises(ValueError, match="decay"):
        sp.TrainingStage("l2", 10, 1e-3, end_learning_rate=0.0, decay="step")
    with pytest.raises(ValueError, match="end_learning_rate"):
        sp.TrainingStage("l2", 10, 1e-3, end_learning_rate=-1.0)


def test_multi_stage_training_equals_chained_fits():
    """`fit_lpn` over stages equals `sciopt.fit` runs chained by hand: one per group
    of same-loss stages (key `fold_in(key, i)`), each Adam with the documented
    piecewise learning rate."""
    import optax
    import sciopt

    data = jr.laplace(jr.key(3), (40, 1))
    lpn = sp.LearnedProximalNetwork(sp.ICNN(1, width=6, depth=2, key=jr.key(0)))
    stages = [
        sp.TrainingStage("l2", 6, 3e-3),
        sp.TrainingStage("l2", 9, 1e-3, end_learning_rate=1e-4),
        sp.TrainingStage("l2", 5, 2e-3, end_learning_rate=0.0, decay="linear"),
        sp.TrainingStage("l1", 7, 1e-3),
    ]
    key = jr.key(4)
    res = sp.fit_lpn(
        lpn, data, sigma=0.5, stages=stages, key=key, batch_size=8, chunk_size=4
    )

    model, losses = lpn, []
    for i, group in enumerate([stages[:3], stages[3:]]):
        total = sum(st.steps for st in group)
        schedule = jnp.asarray(
            [_documented_learning_rate(group, k) for k in range(total)]
        )
        fit = sciopt.fit(
            model,
            sp.denoising_loss(group[0].loss, sigma=0.5),
            data,
            key=jr.fold_in(key, i),
            steps=len(schedule),
            optimiser=optax.adam(lambda k, s=schedule: s[k]),
            batch_size=8,
            chunk_size=4,
        )
        model = fit.model
        losses.append(np.asarray(fit.losses))
    assert res.num_steps == 27
    np.testing.assert_allclose(res.losses, np.concatenate(losses), rtol=1e-10)
    for a, b in zip(jax.tree.leaves(res.model), jax.tree.leaves(model)):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_laplacian_recipes():
    from sciopt.datasets import LAPLACIAN_FINAL_STEPS, laplacian_stages

    default = laplacian_stages("proximal_matching")
    last = default[-1]
    assert (last.gamma, last.steps, last.learning_rate) == (
        0.1,
        LAPLACIAN_FINAL_STEPS,
        1e-4,
    )
    assert last.end_learning_rate == 0.0 and last.decay == "cosine"
    constant = laplacian_stages("proximal_matching", recipe="constant")
    assert constant[:-2] == default[:-1]
    assert [(s.steps, s.learning_rate, s.end_learning_rate) for s in constant[-2:]] == [
        (4000, 1e-4, None),
        (1000, 3e-5, None),
    ]
    assert laplacian_stages("l1") == laplacian_stages("l1", recipe="constant")
    with pytest.raises(ValueError, match="recipe"):
        laplacian_stages("l1", recipe="fast")
