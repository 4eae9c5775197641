"""Formulas (sympy) lowered to jit-able JAX functions."""

from ._lower import (
    lower as lower,
    lower_vector as lower_vector,
    parse as parse,
)
