"""Denoising losses (proximal matching, l2, l1), the gamma schedule and training."""

import math
from collections.abc import Callable, Sequence
from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from .._fit import fit, FitResult


LossKind = Literal["proximal_matching", "l2", "l1"]


def _per_sample(fn, pred, target):
    axes = tuple(range(1, jnp.ndim(pred)))
    return fn(pred - target, axes)


def _mean(values, weights):
    if weights is None:
        return jnp.mean(values)
    return jnp.mean(jnp.asarray(weights, values.dtype) * values)


def proximal_matching_loss(
    pred: Array,
    target: Array,
    gamma: float | Array,
    weights: Array | None = None,
) -> Float[Array, ""]:
    """The proximal matching loss `mean_i 1 - exp(-||pred_i - target_i||^2 / gamma^2)`.

    As `gamma -> 0` its minimiser over denoisers is the posterior mode (the MAP
    denoiser), unlike the l2 loss (posterior mean) and l1 loss (posterior median). The
    leading axis indexes samples; the norm runs over the others. Optional per-sample
    `weights` (e.g. importance weights) give `mean_i w_i (...)`.

    ??? cite "References"

        ```bibtex
        @inproceedings{fang2024whats,
            title={What's in a Prior? Learned Proximal Networks for Inverse Problems},
            author={Fang, Zhenghan and Buchanan, Sam and Sulam, Jeremias},
            booktitle={International Conference on Learning Representations},
            year={2024}
        }
        ```
    """
    gamma = jnp.asarray(gamma, pred.dtype)
    sq = _per_sample(lambda d, a: jnp.sum(d * d, axis=a), pred, target)
    return _mean(1 - jnp.exp(-sq / (gamma * gamma)), weights)


def l2_loss(
    pred: Array, target: Array, weights: Array | None = None
) -> Float[Array, ""]:
    """`mean_i w_i ||pred_i - target_i||^2` (learns the posterior mean; `w_i = 1`
    without `weights`)."""
    sq = _per_sample(lambda d, a: jnp.sum(d * d, axis=a), pred, target)
    return _mean(sq, weights)


def l1_loss(
    pred: Array, target: Array, weights: Array | None = None
) -> Float[Array, ""]:
    """`mean_i w_i ||pred_i - target_i||_1` (learns the posterior median, per entry;
    `w_i = 1` without `weights`)."""
    ab = _per_sample(lambda d, a: jnp.sum(jnp.abs(d), axis=a), pred, target)
    return _mean(ab, weights)


class TrainingStage(eqx.Module):
    """One stage of LPN training: a loss, a number of Adam steps, a learning rate.

    `gamma` is the proximal matching width (ignored by the l2 and l1 losses). With
    `end_learning_rate` set, the learning rate decays within the stage from
    `learning_rate` (`a`) to `end_learning_rate` (`b`) along `decay`: at step `k` of
    `steps` (`n`), `"cosine"` gives `b + (a - b) (1 + cos(pi k / n)) / 2` (half a
    cosine period, `optax.cosine_decay_schedule`) and `"linear"` gives
    `a + (b - a) k / n` (`optax.linear_schedule`); otherwise it is constant.
    """

    loss: LossKind = eqx.field(static=True)
    steps: int = eqx.field(static=True)
    learning_rate: float = eqx.field(static=True)
    gamma: float | None = eqx.field(static=True, default=None)
    end_learning_rate: float | None = eqx.field(static=True, default=None)
    decay: Literal["cosine", "linear"] = eqx.field(static=True, default="cosine")

    def __check_init__(self):
        if self.loss not in ("proximal_matching", "l2", "l1"):
            raise ValueError(
                f"`loss` must be 'proximal_matching', 'l2' or 'l1', got {self.loss!r}."
            )
        if self.loss == "proximal_matching" and not (
            self.gamma is not None and self.gamma > 0
        ):
            raise ValueError("A proximal matching stage needs a positive `gamma`.")
        if not (isinstance(self.steps, int) and self.steps >= 0):
            raise ValueError(f"`steps` must be a non-negative int, got {self.steps}.")
        if not self.learning_rate > 0:
            raise ValueError("`learning_rate` must be positive.")
        if self.end_learning_rate is not None and not self.end_learning_rate >= 0:
            raise ValueError("`end_learning_rate` must be non-negative.")
        if self.decay not in ("cosine", "linear"):
            raise ValueError(
                f"`decay` must be 'cosine' or 'linear', got {self.decay!r}."
            )


def proximal_matching_schedule(
    gamma_min: float,
    *,
    steps_per_stage: int,
    num_stages: int = 4,
    learning_rate: float = 1e-4,
    pretrain_steps: int = 0,
    pretrain_learning_rate: float = 1e-3,
) -> tuple[TrainingStage, ...]:
    """The proximal matching schedule: optional l1 pretraining, then proximal matching
    with `gamma` halved each stage, `gamma_s = gamma_min * 2^(num_stages - 1 - s)`,
    from large to small (the authors' image recipe uses 4 stages and
    `gamma_min = 0.08 sqrt(n)` for n-pixel images).

    **Arguments:**

    - `gamma_min`: the last (smallest) `gamma`.
    - `steps_per_stage`: Adam steps per proximal matching stage.
    - `num_stages`: number of proximal matching stages.
    - `learning_rate`: learning rate of the proximal matching stages.
    - `pretrain_steps`: l1 pretraining steps (0: none).
    - `pretrain_learning_rate`: learning rate of the l1 pretraining.

    **Returns:**

    A tuple of `TrainingStage`s for `fit_lpn`.
    """
    if not gamma_min > 0:
        raise ValueError(f"`gamma_min` must be positive, got {gamma_min!r}.")
    if num_stages < 1:
        raise ValueError("`num_stages` must be at least 1.")
    stages = []
    if pretrain_steps > 0:
        stages.append(TrainingStage("l1", pretrain_steps, pretrain_learning_rate))
    for s in range(num_stages):
        gamma = gamma_min * 2.0 ** (num_stages - 1 - s)
        stages.append(
            TrainingStage("proximal_matching", steps_per_stage, learning_rate, gamma)
        )
    return tuple(stages)


def _check_sigma(sigma):
    if not (isinstance(sigma, (int, float)) and math.isfinite(sigma) and sigma > 0):
        raise ValueError(f"`sigma` (the noise level) must be positive, got {sigma!r}.")


def denoising_loss(
    kind: LossKind,
    *,
    sigma: float,
    gamma: float | None = None,
    sampler: Callable[[PRNGKeyArray], Array] | None = None,
) -> Callable[[PyTree, Array | None, PRNGKeyArray], Float[Array, ""]]:
    """A `loss(model, batch, key)` for `sciopt.fit`: noisy inputs `y = x + sigma g`
    are drawn with `key`, and the loss compares `model(y)` with the clean `x`.

    **Arguments:**

    - `kind`: `"proximal_matching"`, `"l2"` or `"l1"`.
    - `sigma`: the noise standard deviation (> 0).
    - `gamma`: the proximal matching width (required for that loss).
    - `sampler`: optional `sampler(key) -> clean batch`, drawing fresh clean samples
      every step (then `batch` is ignored). A sampler may also return `(clean,
      weights)`: per-sample weights of the loss, e.g. importance weights
      (`laplace_sampler(..., proposal_scale=...)`).

    **Returns:**

    The loss function, applying `model` to each sample with `jax.vmap`.
    """
    _check_sigma(sigma)
    TrainingStage(kind, 0, 1.0, gamma)  # validates kind and gamma
    return _make_loss(kind, sigma, lambda model: gamma, lambda model: model, sampler)


def _noise(key, shape, dtype, antithetic):
    if not antithetic:
        return jr.normal(key, shape, dtype)
    if shape[0] % 2:
        raise ValueError("`antithetic=True` needs an even batch size.")
    half = jr.normal(key, (shape[0] // 2,) + tuple(shape[1:]), dtype)
    return jnp.concatenate([half, -half])


def _make_loss(kind, sigma, get_gamma, get_model, sampler, antithetic=False):
    def loss(model, batch, key):
        key_x, key_noise = jr.split(key)
        clean = sampler(key_x) if sampler is not None else batch
        weights = None
        if isinstance(clean, tuple):  # importance-weighted samples (x, w)
            clean, weights = clean
        if clean is None:
            raise ValueError("Pass clean training data or a `sampler`.")
        s = jnp.asarray(sigma, clean.dtype)
        noisy = clean + s * _noise(key_noise, clean.shape, clean.dtype, antithetic)
        net = get_model(model)
        pred = jax.vmap(lambda y: net(y))(noisy)
        if kind == "proximal_matching":
            return proximal_matching_loss(pred, clean, get_gamma(model), weights)
        if kind == "l2":
            return l2_loss(pred, clean, weights)
        return l1_loss(pred, clean, weights)

    return loss


class _WithGamma(eqx.Module):
    # During proximal matching the width gamma is an array leaf of the trained
    # pytree, moved along its schedule by the optimiser (`_follow_schedule`), so a
    # whole multi-stage schedule compiles once.
    model: PyTree
    gamma: Array


def _follow_schedule(schedule):
    """An optax transformation that sets its parameter to `schedule(step)`: the update
    of step `k` sets the value step `k + 1` uses (the starting value is
    `schedule(0)`)."""

    def init_fn(params):
        del params
        return optax.ScaleByScheduleState(count=jnp.zeros([], jnp.int32))

    def update_fn(updates, state, params):
        value = schedule(state.count + 1)
        new = jax.tree.map(lambda p: jnp.asarray(value, p.dtype) - p, params)
        return new, optax.ScaleByScheduleState(count=state.count + 1)

    return optax.GradientTransformation(init_fn, update_fn)


def _boundaries(stages) -> list[int]:
    """The step counts at which each stage after the first begins."""
    return [int(b) for b in np.cumsum([st.steps for st in stages])[:-1]]


def _float_count(schedule: optax.Schedule) -> optax.Schedule:
    """`schedule` called on the step count as a float (optax's schedules mix the
    integer count with Python floats, which strict dtype promotion refuses)."""

    def wrapped(count):
        return schedule(jnp.asarray(count, jnp.result_type(float)))

    return wrapped


def _gammas(stages) -> optax.Schedule:
    """The proximal matching width of consecutive `stages` as a function of the step
    count: piecewise constant (`optax.join_schedules` of constant schedules)."""
    return _float_count(
        optax.join_schedules(
            [optax.constant_schedule(st.gamma) for st in stages], _boundaries(stages)
        )
    )


def _stage_learning_rate(stage: TrainingStage) -> optax.Schedule:
    """One stage's learning rate as a function of the step count within the stage."""
    if stage.end_learning_rate is None:
        return optax.constant_schedule(stage.learning_rate)
    if stage.decay == "cosine":
        return optax.cosine_decay_schedule(
            stage.learning_rate,
            stage.steps,
            alpha=stage.end_learning_rate / stage.learning_rate,
        )
    return optax.linear_schedule(
        stage.learning_rate, stage.end_learning_rate, stage.steps
    )


def _learning_rates(stages) -> optax.Schedule:
    """The learning rate of consecutive `stages` as a function of the step count:
    each stage's optax schedule (constant, `cosine_decay_schedule` or
    `linear_schedule`), joined by `optax.join_schedules` at the stage boundaries."""
    return _float_count(
        optax.join_schedules(
            [_stage_learning_rate(st) for st in stages], _boundaries(stages)
        )
    )


def _segments(stages):
    """Group consecutive stages with the same loss."""
    groups = []
    for stage in stages:
        if stage.steps == 0:
            continue
        if groups and groups[-1][0].loss == stage.loss:
            groups[-1].append(stage)
        else:
            groups.append([stage])
    return groups


def fit_lpn(
    model: PyTree,
    data: Array | None = None,
    *,
    sigma: float,
    stages: Sequence[TrainingStage],
    key: PRNGKeyArray,
    sampler: Callable[[PRNGKeyArray], Array] | None = None,
    batch_size: int | None = None,
    chunk_size: int = 100,
    antithetic: bool = False,
    average: float | None = None,
    progress: bool = False,
    verbose: bool = False,
    throw: bool = True,
) -> FitResult:
    """Train a learned proximal network as a denoiser, stage by stage, with
    `sciopt.fit` (Adam). Consecutive stages with the same loss run as one `sciopt.fit`
    call (one compilation) whose learning rate and `gamma` follow the stages
    piecewise.

    **Arguments:**

    - `model`: a `LearnedProximalNetwork` (or any denoiser module).
    - `data`: clean training samples with a leading sample axis (or `None` with a
      `sampler`).
    - `sigma`: the noise standard deviation (> 0).
    - `stages`: `TrainingStage`s, e.g. from `proximal_matching_schedule`.
    - `key`: a `jax.random` key.
    - `sampler`: optional `sampler(key) -> clean batch` (infinite data), or `-> (clean,
      weights)` for a weighted loss (see `denoising_loss`).
    - `batch_size`: minibatch size drawn from `data`.
    - `antithetic`: draw the noise in antithetic pairs: the second half of every
      batch gets the negated noise of the first half (a variance reduction; the
      batch size must be even). With a sampler that also returns `-x` for every `x`
      (`laplace_sampler(..., symmetric=True)`), every batch is exactly symmetric.
    - `average`: Polyak averaging of the weights within each `sciopt.fit` call
      (exponential, with this decay; see `sciopt.fit`), `None` for the last iterate.
    - `chunk_size`, `progress`, `verbose`, `throw`: passed to `sciopt.fit`.

    **Returns:**

    A `sciopt.FitResult` whose `losses` concatenate every stage's losses.
    """
    _check_sigma(sigma)
    if data is None and sampler is None:
        raise ValueError("Pass clean training `data` or a `sampler`.")
    if data is not None:
        data = jnp.asarray(data)
        if not bool(jnp.all(jnp.isfinite(data))):
            raise ValueError("`data` contains non-finite values (nan or inf).")
    stages = tuple(stages)
    if not stages or not all(isinstance(s, TrainingStage) for s in stages):
        raise ValueError("`stages` must be a non-empty sequence of TrainingStage.")
    losses, wall, compile_time, done, diverged = [], 0.0, 0.0, 0, False
    for i, group in enumerate(_segments(stages)):
        kind = group[0].loss
        lengths = [st.steps for st in group]
        lr = _learning_rates(group)
        if kind == "proximal_matching":
            gamma = _gammas(group)
            dtype = jax.tree.leaves(eqx.filter(model, eqx.is_inexact_array))[0].dtype
            trainee = _WithGamma(model, jnp.asarray(group[0].gamma, dtype))
            optimiser = optax.multi_transform(
                {"model": optax.adam(lr), "gamma": _follow_schedule(gamma)},
                _WithGamma(
                    jax.tree.map(lambda _: "model", eqx.filter(model, eqx.is_array)),
                    "gamma",
                ),
            )
            loss = _make_loss(
                kind,
                sigma,
                lambda m: m.gamma,
                lambda m: m.model,
                sampler,
                antithetic,
            )
        else:
            trainee, optimiser = model, optax.adam(lr)
            loss = _make_loss(kind, sigma, None, lambda m: m, sampler, antithetic)
        res = fit(
            trainee,
            loss,
            data if sampler is None else None,
            key=jr.fold_in(key, i),
            steps=sum(lengths),
            optimiser=optimiser,
            batch_size=batch_size if sampler is None else None,
            average=average,
            chunk_size=chunk_size,
            progress=progress,
            verbose=verbose,
            throw=throw,
        )
        model = res.model.model if kind == "proximal_matching" else res.model
        losses.append(np.asarray(res.losses))
        wall += res.wall_time
        compile_time += res.compile_time
        done += res.num_steps
        if res.diverged:
            diverged = True
            break
    return FitResult(
        model=model,
        losses=np.concatenate(losses) if losses else np.zeros((0,)),
        num_steps=done,
        wall_time=wall,
        compile_time=compile_time,
        diverged=diverged,
    )
