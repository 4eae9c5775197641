"""`sciopt.fit`: the shared training loop for models (PINNs, layers, learned proxes)."""

import functools
import time
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
from jaxtyping import Array, PRNGKeyArray, PyTree

from ._misc import check_finite_input


class FitResult(eqx.Module):
    """The result of `sciopt.fit`.

    **Attributes:**

    - `model`: the trained model (the last finite one if training diverged and
      `throw=False`).
    - `losses`: NumPy array of the loss at every step (Adam phase, then L-BFGS phase).
    - `num_steps`: number of steps taken.
    - `wall_time`: seconds spent training, compilation included.
    - `compile_time`: seconds spent compiling the first chunk.
    - `diverged`: whether a non-finite loss stopped training early.
    """

    model: Any
    losses: np.ndarray
    num_steps: int
    wall_time: float
    compile_time: float
    diverged: bool


def _minibatch(data, key, batch_size):
    if data is None or batch_size is None:
        return data
    n = jax.tree.leaves(data)[0].shape[0]
    index = jr.choice(key, n, (batch_size,), replace=False)
    return jax.tree.map(lambda x: x[index], data)


def _check_sample_axis(data) -> None:
    """Raise `ValueError` unless every array leaf of `data` has the same first axis."""
    if data is None:
        return
    paths = jax.tree_util.tree_leaves_with_path(data)
    lengths = {}
    for path, leaf in paths:
        shape = np.shape(leaf)
        name = "data" + jax.tree_util.keystr(path)
        if len(shape) == 0:
            raise ValueError(
                f"`{name}` is a scalar: every leaf of `data` needs a leading sample "
                "axis (put constants in the model or the loss instead)."
            )
        lengths[name] = shape[0]
    if len(set(lengths.values())) > 1:
        listed = ", ".join(f"{k}: {v}" for k, v in lengths.items())
        raise ValueError(
            "The leaves of `data` must share their leading (sample) axis, so that "
            f"minibatch rows stay paired; got lengths {listed}."
        )


# One transformation object per kind, so that `fit` called again with the same
# structure reuses its compiled chunk: optax builds new closures on every call of
# `optax.adam(...)`, and a new closure is a new static argument to `jax.jit`.
_ADAM = optax.inject_hyperparams(optax.adam)(learning_rate=1e-3)
_LBFGS = optax.lbfgs()


@functools.cache
def _adam_with_schedule(schedule):
    return optax.adam(schedule)


def _first_order_optimiser(optimiser, learning_rate):
    """The first-order transformation, and how to set its learning rate in its state.

    A float learning rate lives in the optimiser state (`optax.inject_hyperparams`),
    so a new value does not recompile.
    """
    if optimiser is not None:
        return optimiser, None
    if callable(learning_rate):
        try:
            return _adam_with_schedule(learning_rate), None
        except TypeError:  # an unhashable schedule
            return optax.adam(learning_rate), None

    def set_learning_rate(state):
        hyperparams = dict(state.hyperparams)
        old = hyperparams["learning_rate"]
        hyperparams["learning_rate"] = jnp.asarray(learning_rate, old.dtype)
        return state._replace(hyperparams=hyperparams)

    return _ADAM, set_learning_rate


class _FirstOrderStep(eqx.Module):
    loss: Callable
    static: Any
    data: Any
    batch_size: int | None = eqx.field(static=True)
    opt: Any = eqx.field(static=True)
    average: float | None = eqx.field(static=True)

    def __call__(self, carry, k):
        p, (opt_state, avg) = carry
        k_batch, k_loss = jr.split(k)
        batch = _minibatch(self.data, k_batch, self.batch_size)

        def loss_of_params(q):
            return self.loss(eqx.combine(q, self.static), batch, k_loss)

        value, grads = jax.value_and_grad(loss_of_params)(p)
        updates, opt_state = self.opt.update(grads, opt_state, p)
        p = eqx.apply_updates(p, updates)
        if self.average is not None:
            average = self.average
            avg = jax.tree.map(
                lambda a, x: (average * a + (1 - average) * x).astype(x.dtype), avg, p
            )
        return (p, (opt_state, avg)), value


class _LBFGSStep(eqx.Module):
    loss: Callable
    static: Any
    data: Any
    opt: Any = eqx.field(static=True)

    def __call__(self, carry, k):
        p, opt_state = carry

        def f(q):
            return self.loss(eqx.combine(q, self.static), self.data, k)

        value, grads = optax.value_and_grad_from_state(f)(p, state=opt_state)
        updates, opt_state = self.opt.update(
            grads, opt_state, p, value=value, grad=grads, value_fn=f
        )
        p = optax.apply_updates(p, updates)
        return (p, opt_state), value


@eqx.filter_jit
def _run_chunk(step_fn, params, opt_state, keys):
    # A closure, not the module itself: `scan` hashes its function, and the module
    # holds traced arrays.
    return jax.lax.scan(lambda c, k: step_fn(c, k), (params, opt_state), keys)


def fit(
    model: PyTree,
    loss: Callable[..., Array],
    data: PyTree | None = None,
    *,
    key: PRNGKeyArray,
    steps: int,
    optimiser: optax.GradientTransformation | None = None,
    learning_rate: float | optax.Schedule = 1e-3,
    batch_size: int | None = None,
    lbfgs_steps: int = 0,
    average: float | None = None,
    chunk_size: int = 100,
    filter_spec: Callable[[Any], bool] = eqx.is_inexact_array,
    progress: bool = False,
    verbose: bool = False,
    throw: bool = True,
) -> FitResult:
    """Train `model` by minimising `loss(model, batch, key)`.

    Adam (or `optimiser`) runs for `steps` steps, then optionally full-batch L-BFGS
    (`optax.lbfgs` with its zoom line search) for `lbfgs_steps` steps. The step is
    jit-compiled and repeated inside `jax.lax.scan` in chunks of `chunk_size`; between
    chunks the host checks for a non-finite loss and updates the progress bar.

    **Arguments:**

    - `model`: an `eqx.Module` (or pytree) whose inexact arrays are trained.
    - `loss`: `loss(model, batch, key) -> scalar`. `batch` is a minibatch of `data` (or
      `data` itself, or `None`); `key` is fresh every step, so the loss may resample
      collocation points.
    - `data`: optional pytree of arrays with a shared leading (sample) axis.
    - `key`: a `jax.random` key; the same key gives the same result.
    - `steps`: number of first-order steps.
    - `optimiser`: an optax transformation; defaults to `optax.adam(learning_rate)`.
    - `learning_rate`: used when `optimiser` is `None`.
    - `batch_size`: minibatch size drawn without replacement each step (`None`: all).
    - `lbfgs_steps`: number of full-batch L-BFGS steps after the first phase; the loss
      gets the same key at every L-BFGS step, so resampled points stay fixed there.
    - `average`: if given, a decay `0 < average < 1`: the first-order phase keeps an
      exponential moving average of the trained arrays (Polyak averaging,
      `avg <- average * avg + (1 - average) * params` each step, a window of about
      `1 / (1 - average)` steps) and returns it instead of the last iterate.
    - `chunk_size`: steps per compiled `lax.scan` chunk.
    - `filter_spec`: which leaves of `model` are trained.
    - `progress`: show a tqdm bar.
    - `verbose`: print the loss after every chunk.
    - `throw`: if `True`, a non-finite loss raises `FloatingPointError` naming the last
      finite step; otherwise training stops and `diverged` is set.

    **Returns:**

    A `sciopt.FitResult`.
    """
    if not isinstance(steps, int) or steps < 0:
        raise ValueError(f"`steps` must be a non-negative int, got {steps!r}.")
    if not isinstance(lbfgs_steps, int) or lbfgs_steps < 0:
        raise ValueError(
            f"`lbfgs_steps` must be a non-negative int, got {lbfgs_steps!r}."
        )
    if average is not None and not 0.0 < float(average) < 1.0:
        raise ValueError(f"`average` must lie in (0, 1), got {average!r}.")
    if batch_size is not None and (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, int)
        or batch_size < 1
    ):
        raise ValueError(
            f"`batch_size` must be None (full batch) or an int >= 1, got "
            f"{batch_size!r}."
        )
    _check_sample_axis(data)
    if chunk_size < 1:
        raise ValueError(f"`chunk_size` must be positive, got {chunk_size!r}.")
    check_finite_input("data", data)
    if data is not None and batch_size is not None:
        n = jax.tree.leaves(data)[0].shape[0]
        if batch_size > n:
            raise ValueError(
                f"`batch_size`={batch_size} exceeds the number of samples {n}."
            )
    params, static = eqx.partition(model, filter_spec)
    phases = []
    if steps > 0:
        opt, lr_state = _first_order_optimiser(optimiser, learning_rate)
        step_fn = _FirstOrderStep(loss, static, data, batch_size, opt, average)
        phases.append((steps, opt, step_fn, False, lr_state))
    if lbfgs_steps > 0:
        step_fn = _LBFGSStep(loss, static, data, _LBFGS)
        phases.append((lbfgs_steps, _LBFGS, step_fn, True, None))

    bar = None
    if progress:
        import tqdm

        bar = tqdm.tqdm(total=steps + lbfgs_steps, unit="step")
    losses: list[np.ndarray] = []
    start = time.perf_counter()
    compile_time = 0.0
    diverged = False
    done = 0
    for phase_index, (phase_steps, opt, step_fn, fixed_key, lr_state) in enumerate(
        phases
    ):
        with jax.numpy_dtype_promotion("standard"):
            opt_state = opt.init(params)
        if lr_state is not None:
            opt_state = lr_state(opt_state)
        if not fixed_key:  # first-order phase: carry the running average too
            opt_state = (opt_state, params if average is not None else None)
        phase_key = jr.fold_in(key, phase_index)
        remaining = phase_steps
        while remaining > 0:
            n = min(chunk_size, remaining)
            if fixed_key:
                # L-BFGS needs the same objective every step: one key for the phase.
                keys = jnp.stack([phase_key] * n)
            else:
                keys = jr.split(jr.fold_in(phase_key, done), n)
            t0 = time.perf_counter()
            # optax mixes integer step counts into float maths: trace it under
            # standard promotion even when the caller runs JAX in strict mode.
            with jax.numpy_dtype_promotion("standard"):
                (new_params, new_opt_state), chunk_losses = _run_chunk(
                    step_fn, params, opt_state, keys
                )
            chunk_losses = np.asarray(chunk_losses)
            if compile_time == 0.0:
                compile_time = time.perf_counter() - t0
            finite = np.isfinite(chunk_losses)
            if not finite.all():
                first_bad = int(np.argmin(finite))
                losses.append(chunk_losses[:first_bad])
                diverged = True
                last_finite = done + first_bad - 1
                if bar is not None:
                    bar.close()
                if throw:
                    raise FloatingPointError(
                        f"The training loss became non-finite at step {last_finite + 1}"
                        f" (last finite loss at step {last_finite}). Lower the "
                        "learning rate, rescale the inputs, or use float64; pass "
                        "`throw=False` to keep the last finite model."
                    )
                break
            params, opt_state = new_params, new_opt_state
            losses.append(chunk_losses)
            done += n
            remaining -= n
            if bar is not None:
                bar.update(n)
                bar.set_postfix(loss=f"{chunk_losses[-1]:.3e}")
            if verbose:
                print(f"step {done}: loss {chunk_losses[-1]:.6e}")
        if not fixed_key and average is not None and not diverged:
            params = opt_state[1]
        if diverged:
            break
    if bar is not None and not diverged:
        bar.close()
    wall = time.perf_counter() - start
    all_losses = np.concatenate(losses) if losses else np.zeros((0,))
    return FitResult(
        model=eqx.combine(params, static),
        losses=all_losses,
        num_steps=int(all_losses.shape[0]),
        wall_time=wall,
        compile_time=compile_time,
        diverged=diverged,
    )
