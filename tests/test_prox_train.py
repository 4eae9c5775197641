"""Training learned proximal networks on the 1-D Laplacian prior experiment."""

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
import sciopt.prox as sp
from sciopt.prox._gallery import laplacian_metrics, train_laplacian
from sciopt.prox._toy import (
    laplace_sampler,
    laplacian_lpn,
    posterior_mean_median,
    soft_threshold,
)


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
    assert 1.0 < mean[2] < 2.0 and 1.0 < median[2] < 2.0


@pytest.mark.slow
def test_laplacian_goal_level_run():
    # The gallery's full configuration (about 10 minutes on two shared cores).
    results = {}
    for kind in ("l2", "proximal_matching"):
        lpn, _ = train_laplacian(kind, scale=0.25, batch_size=2000, beta=20.0)
        results[kind] = laplacian_metrics(lpn, regularizer=kind != "l2")
    pm = results["proximal_matching"]
    assert pm["rms"] <= 0.08 and pm["max"] <= 0.25
    assert pm["r_converged"] and pm["r_error"] <= 0.3
    l2 = results["l2"]
    mean, _ = posterior_mean_median(l2["grid"])
    assert np.sqrt(np.mean((l2["prox"] - mean) ** 2)) < 0.5 * l2["rms"]
    assert pm["rms"] < 0.5 * l2["rms"]
