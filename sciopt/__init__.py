"""sciopt: differentiable optimisation solvers from scientific-ML research, in JAX.

Families live in subpackages, imported on first use: `sciopt.nlp`, `sciopt.relu`,
`sciopt.bilevel`, `sciopt.pde`, `sciopt.prox`, plus `sciopt.symbolic` (formulas) and
`sciopt.gallery`.
"""

import importlib
import importlib.metadata

from ._adjoint import ImplicitAdjoint as ImplicitAdjoint
from ._cache import (
    default_cache_dir as default_cache_dir,
    enable_compilation_cache as enable_compilation_cache,
)
from ._compile import (
    cpu_compiler_options as cpu_compiler_options,
    set_cpu_compiler_options as set_cpu_compiler_options,
)
from ._fit import fit as fit, FitResult as FitResult
from ._misc import verbose_printer as verbose_printer
from ._nystrom import (
    nystrom_approximation as nystrom_approximation,
    NystromPCG as NystromPCG,
    NystromPreconditioner as NystromPreconditioner,
    ShiftedLinearOperator as ShiftedLinearOperator,
)
from ._problems import (
    load_problem as load_problem,
    load_problem_specs as load_problem_specs,
    ProblemSpec as ProblemSpec,
)
from ._progress import (
    AbstractProgressMeter as AbstractProgressMeter,
    NoProgressMeter as NoProgressMeter,
    TextProgressMeter as TextProgressMeter,
    TqdmProgressMeter as TqdmProgressMeter,
)
from ._saveat import SaveAt as SaveAt
from ._solution import RESULTS as RESULTS, Solution as Solution
from ._solve import solve as solve
from ._solver import (
    AbstractProblem as AbstractProblem,
    AbstractSolver as AbstractSolver,
)


try:
    __version__ = importlib.metadata.version("sciopt")
except importlib.metadata.PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0"

_SUBPACKAGES = (
    "nlp",
    "relu",
    "bilevel",
    "pde",
    "prox",
    "symbolic",
    "gallery",
    "datasets",
)


def __getattr__(name: str):
    if name in _SUBPACKAGES:
        return importlib.import_module(f"sciopt.{name}")
    raise AttributeError(f"module 'sciopt' has no attribute {name!r}")
