"""Callables compared by their code: a re-declared lambda reuses compiled programs.

`jax.jit` (through `eqx.filter_jit`) treats a problem's callables as static and
compares them by identity, so a problem re-declared with new lambdas of the same code
(a problem built inside a function that is called again) compiles again. `sciopt.solve`
wraps plain Python functions in `SameCode`, which compares two functions as equal when
they must compute the same thing: the same code object (bytecode, constants, names and
source position), the same globals, equal defaults and equal closure contents.
Closure contents that cannot be hashed (arrays, for instance) are compared by
identity, so no two functions that may differ are ever confused.
"""

import types
from typing import Any


def _cell_key(cell, seen) -> Any:
    try:
        value = cell.cell_contents
    except ValueError:  # an empty cell
        return ("<empty>",)
    return _value_key(value, seen)


def _value_key(value, seen) -> Any:
    if isinstance(value, types.FunctionType):
        if id(value) in seen:  # a recursive closure
            return ("<id>", id(value))
        return _function_key(value, seen | {id(value)})
    try:
        hash(value)
    except TypeError:
        return ("<id>", id(value))
    # Equal-comparing values of different types (1 == 1.0 == True) must not merge.
    return (type(value), value)


def _function_key(fn: types.FunctionType, seen=frozenset()) -> Any:
    seen = seen | {id(fn)}
    closure = tuple(_cell_key(c, seen) for c in fn.__closure__ or ())
    defaults = tuple(_value_key(d, seen) for d in fn.__defaults__ or ())
    kwdefaults = tuple(
        sorted((k, _value_key(v, seen)) for k, v in (fn.__kwdefaults__ or {}).items())
    )
    return (fn.__code__, id(fn.__globals__), closure, defaults, kwdefaults)


class SameCode:
    """A plain Python function that compares (and hashes) by what it computes."""

    __slots__ = ("fn", "_key", "_hash", "__weakref__")

    def __init__(self, fn: types.FunctionType):
        self.fn = fn
        self._key = _function_key(fn)
        try:
            self._hash = hash(self._key)
        except TypeError:  # a closure value that hashes but whose key does not
            self._key = ("<id>", id(fn))
            self._hash = hash(self._key)

    def __call__(self, *args, **kwargs):
        return self.fn(*args, **kwargs)

    def __eq__(self, other):
        return isinstance(other, SameCode) and self._key == other._key

    def __hash__(self):
        return self._hash

    def __repr__(self):
        return f"SameCode({self.fn!r})"

    @property
    def __wrapped__(self):
        return self.fn


def wrap_functions(tree):
    """Wrap every plain Python function leaf of `tree` in `SameCode`."""
    import jax

    def wrap(leaf):
        if isinstance(leaf, types.FunctionType):
            return SameCode(leaf)
        return leaf

    return jax.tree.map(wrap, tree)
