"""Equality-constrained nonlinear programs: min f(x) s.t. c(x) = 0."""

from ._adasketch import AdaSketchNewton as AdaSketchNewton, step_stats as step_stats
from ._generators import (
    build_generator as build_generator,
    generator_reference as generator_reference,
    hs28_chain as hs28_chain,
    hs28_chain_reference as hs28_chain_reference,
    pde_control as pde_control,
    pde_control_reference as pde_control_reference,
    pde_control_target as pde_control_target,
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
