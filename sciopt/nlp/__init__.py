"""Equality-constrained nonlinear programs: min f(x) s.t. c(x) = 0."""

from ._adasketch import AdaSketchNewton as AdaSketchNewton
from ._generators import (
    hs28_chain as hs28_chain,
    pde_control as pde_control,
)
from ._krylov import SchurComplementCG as SchurComplementCG
from ._problem import (
    EqualityConstrainedProblem as EqualityConstrainedProblem,
    from_spec as from_spec,
)
from ._sketch import (
    AbstractSketchSolver as AbstractSketchSolver,
    BlockSketch as BlockSketch,
    GaussianSketch as GaussianSketch,
    RowSketch as RowSketch,
)
