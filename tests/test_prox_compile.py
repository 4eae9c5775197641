"""Repeated calls with new values (same shapes) reuse their compilations: the prox,
the learned regulariser, plug-and-play solves and the proximal matching schedule."""

import equinox as eqx
import jax
import jax.monitoring
import jax.numpy as jnp
import jax.random as jr
import lineax as lx
import pytest
import sciopt
import sciopt.prox as sp
from sciopt.datasets import laplace_sampler, laplacian_lpn

from .helpers import count_compilations, prox_random_icnn


def _perturbed(model, key, scale=0.1):
    # New parameter values, same structure (as after a training step).
    params, static = eqx.partition(model, eqx.is_inexact_array)
    leaves, tree = jax.tree.flatten(params)
    keys = jr.split(key, len(leaves))
    new = [x + scale * jr.normal(k, x.shape, x.dtype) for x, k in zip(leaves, keys)]
    return eqx.combine(jax.tree.unflatten(tree, new), static)


def test_counter_sees_compilations():
    # The counter is not vacuous: a new shape compiles, a new value does not.
    f = jax.jit(lambda x: jnp.sin(x) * 2)
    a, b, c, d = jnp.zeros(3), jnp.ones(3), jnp.linspace(0.0, 1.0, 3), jnp.ones(4)
    with count_compilations() as n:
        f(a).block_until_ready()
    assert n[0] == 1
    with count_compilations() as n:
        f(b).block_until_ready()
        f(c).block_until_ready()
    assert n[0] == 0
    with count_compilations() as n:
        f(d).block_until_ready()
    assert n[0] == 1


def test_prox_evaluation_does_not_recompile(getkey):
    lpn = sp.LearnedProximalNetwork(prox_random_icnn(getkey(), 4))
    batched = eqx.filter_jit(lambda net, y: jax.vmap(net.prox_and_value)(y))
    jax.block_until_ready(batched(lpn, jr.normal(getkey(), (5, 4))))
    jax.block_until_ready(lpn(jr.normal(getkey(), (4,))))
    with count_compilations() as n:
        for _ in range(3):
            # New data and new network weights, same shapes.
            lpn = _perturbed(lpn, getkey())
            jax.block_until_ready(batched(lpn, jr.normal(getkey(), (5, 4))))
            jax.block_until_ready(lpn(jr.normal(getkey(), (4,))))
    assert n[0] == 0


def test_regularizer_does_not_recompile(getkey):
    lpn = sp.LearnedProximalNetwork(prox_random_icnn(getkey(), 4))
    batched = eqx.filter_jit(lambda net, x: jax.vmap(net.regularizer)(x).value)
    jax.block_until_ready(lpn.regularizer(jr.normal(getkey(), (4,))).value)
    jax.block_until_ready(batched(lpn, jr.normal(getkey(), (3, 4))))
    with count_compilations() as n:
        for _ in range(3):
            lpn = _perturbed(lpn, getkey())
            ev = lpn.regularizer(jr.normal(getkey(), (4,)))
            assert ev.result == sciopt.RESULTS.successful
            jax.block_until_ready(batched(lpn, jr.normal(getkey(), (3, 4))))
    assert n[0] == 0


def _solvers(lpn, value):
    # Hyperparameters passed as plain Python floats, new values every call.
    return [
        sp.PnPProximalGradient(lpn, step_size=0.5 * value),
        sp.PnPADMM(lpn, penalty=value),
        sp.PnPProximalGradient(sp.SoftThreshold(0.1 * value), step_size=value),
        sp.PnPADMM(sp.TotalVariation(0.05 * value, num_iters=10), penalty=value),
    ]


@pytest.mark.parametrize(
    "index", range(4), ids=["pgd-lpn", "admm-lpn", "pgd-st", "admm-tv"]
)
def test_pnp_solve_does_not_recompile(getkey, index):
    shape = (1, 2, 2)
    lpn = sp.LearnedProximalNetwork(
        sp.ICNN(shape, 8, 2, key=getkey(), alpha=0.1, beta=2.0)
    )
    op = lx.MatrixLinearOperator(jr.normal(getkey(), (3, 4)))
    op = lx.FunctionLinearOperator(
        lambda x: op.mv(jnp.ravel(x)), jax.ShapeDtypeStruct(shape, jnp.float64)
    )

    def run(value, weight):
        measurement = jr.normal(getkey(), (3,))
        problem = sp.LinearInverseProblem(op, measurement, data_weight=weight)
        solver = _solvers(lpn, value)[index]
        sol = sciopt.solve(problem, solver, max_steps=8, throw=False)
        return jax.block_until_ready(sol.value)

    run(1.0, 1.0)
    with count_compilations() as n:
        for value, weight in [(0.7, 2.0), (1.3, 0.5), (0.9, 4.0)]:
            run(value, weight)
    assert n[0] == 0


def test_proximal_matching_schedule_compiles_once(getkey):
    # gamma moves along its schedule inside one compiled training loop: a
    # three-stage schedule compiles exactly as much as a single stage.
    sampler = laplace_sampler(16)
    lpn = laplacian_lpn(getkey(), width=8, depth=2)

    def train(stages, sigma):
        res = sp.fit_lpn(
            lpn,
            sigma=sigma,
            stages=stages,
            key=getkey(),
            sampler=sampler,
            chunk_size=10,
        )
        jax.block_until_ready(res.model)
        return res

    def schedule(gammas, rates):
        return [
            sp.TrainingStage("proximal_matching", 10, lr, gamma)
            for gamma, lr in zip(gammas, rates)
        ]

    single = [sp.TrainingStage("proximal_matching", 30, 1e-3, 0.5)]
    train(single, 1.0)  # warm up eager helpers for both forms
    train(schedule([0.6, 0.4, 0.2], [1e-3, 1e-3, 1e-4]), 1.0)
    with count_compilations() as n_single:
        train(single, 0.8)
    with count_compilations() as n_schedule:
        res = train(schedule([0.5, 0.3, 0.1], [1e-3, 3e-4, 1e-4]), 1.2)
    assert res.num_steps == 30
    # One compiled training loop per `fit_lpn` call (`sciopt.fit` compiles its loop
    # per call); a static gamma would compile once per stage.
    assert 1 <= n_schedule[0] == n_single[0]
