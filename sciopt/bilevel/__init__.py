"""Constrained bilevel optimisation: LV-HBA, BO-REP and an implicit-differentiation
baseline."""

from ._aid import AID as AID
from ._bo_rep import BOREP as BOREP
from ._formulas import from_formulas as from_formulas
from ._lv_hba import LVHBA as LVHBA
from ._nested import NestedProblem as NestedProblem
from ._problem import BilevelProblem as BilevelProblem
from ._sets import (
    AbstractSet as AbstractSet,
    Ball as Ball,
    Box as Box,
    NonNegative as NonNegative,
    Polyhedron as Polyhedron,
    Reals as Reals,
    Simplex as Simplex,
)
from ._spec import from_spec as from_spec
