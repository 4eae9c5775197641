"""Formulas (sympy) lowered to jit-able JAX functions.

Formula strings are parsed by a whitelist grammar (`sciopt.symbolic.parse`), never
evaluated as Python.
"""

from ._lower import (
    lower as lower,
    lower_vector as lower_vector,
)
from ._parse import (
    check_formula as check_formula,
    CONSTANTS as CONSTANTS,
    FUNCTIONS as FUNCTIONS,
    parse as parse,
)
