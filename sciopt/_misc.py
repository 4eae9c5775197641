"""Small shared helpers: verbose printing, finiteness checks, norms."""

import os
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
from jaxtyping import Array, Bool, PyTree


def verbose_printer(verbose: bool | Callable[..., None]) -> Callable[..., None]:
    """Turn a solver's `verbose` field into a printing function.

    The returned function takes keyword arguments `name=(label, value)` and prints
    them with `jax.debug.print`, so it works under `jit`, `vmap` and `grad`.
    `verbose` may be `True`, `False` or a callable with that signature.
    """
    if callable(verbose):
        return verbose
    if verbose is True:
        return _print_verbose
    if verbose is False:
        return _no_verbose
    raise TypeError(f"`verbose` must be a bool or a callable, got {type(verbose)}.")


def _print_verbose(**kwargs: tuple[str, Any]) -> None:
    labels = [label for label, _ in kwargs.values()]
    values = [value for _, value in kwargs.values()]
    fmt = ", ".join(f"{label}: {{}}" for label in labels)
    jax.debug.print(fmt, *values, ordered=True)


def _no_verbose(**kwargs: tuple[str, Any]) -> None:
    del kwargs


def tree_all_finite(tree: PyTree) -> Bool[Array, ""]:
    """`True` (as a JAX scalar) when every inexact leaf of `tree` is finite."""
    leaves = [
        jnp.all(jnp.isfinite(x))
        for x in jtu.tree_leaves(tree)
        if isinstance(x, (jax.Array, np.ndarray))
        and jnp.issubdtype(x.dtype, jnp.inexact)
    ]
    if not leaves:
        return jnp.array(True)
    return jnp.stack(leaves).all()


def check_finite_input(name: str, value: PyTree) -> None:
    """Raise `ValueError` naming `name` when concrete input data holds NaN or inf.

    Traced values are skipped (checked at run time by the solvers instead).
    """
    for leaf in jtu.tree_leaves(value):
        if isinstance(leaf, jax.core.Tracer):
            continue
        if isinstance(leaf, (jax.Array, np.ndarray, float)):
            arr = np.asarray(leaf)
            if np.issubdtype(arr.dtype, np.inexact) and not np.all(np.isfinite(arr)):
                raise ValueError(
                    f"`{name}` contains non-finite values (nan or inf); "
                    "clean or impute the data before solving."
                )


def safe_norm(tree) -> Array:
    """The Euclidean norm of a pytree, computed as `m ||x / m||` with `m` the largest
    absolute entry, so that it does not overflow while the entries are finite (a
    stopping test on it cannot pass because a norm overflowed to `inf`)."""
    leaves = [jnp.ravel(leaf) for leaf in jax.tree.leaves(tree)]
    if not leaves:
        return jnp.array(0.0)
    dtype = jnp.result_type(*[leaf.dtype for leaf in leaves])
    x = jnp.concatenate([leaf.astype(dtype) for leaf in leaves])
    m = jnp.max(jnp.abs(x), initial=0)
    safe_m = jnp.where((m > 0) & jnp.isfinite(m), m, 1)
    return jnp.where(jnp.isfinite(m), safe_m * jnp.linalg.norm(x / safe_m), m)


def raise_if_failed(value: PyTree, result, results: Any, context: str = "") -> PyTree:
    """`value`, raising `equinox.EquinoxRuntimeError` when `result` (an item of the
    enumeration `results`, e.g. `sciopt.RESULTS` or `diffrax.RESULTS`) is not
    `results.successful`; the message is `context` followed by the result's message.

    A program holding `equinox.error_if`'s host callback is never kept by JAX's
    persistent compilation cache, so a concrete result (an eager call) is checked
    here in Python and nothing is compiled for it; a traced or batched result (under
    `jit`/`vmap`) is attached to `value` by `equinox.error_if` (`context` is then not
    added). `EQX_ON_ERROR` other than `raise` is honoured by leaving every case to
    `equinox.error_if`.
    """
    if not result.is_traced() and os.environ.get("EQX_ON_ERROR", "raise") == "raise":
        # compared in NumPy: an eager JAX comparison would compile a program
        failed = np.asarray(result._value) != np.asarray(results.successful._value)
        if failed.ndim == 0:
            if failed:
                raise eqx.EquinoxRuntimeError(context + results[result])
            return value
    return result.error_if(value, result != results.successful)
