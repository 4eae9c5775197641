"""Globally optimal two-layer ReLU networks by convex programs."""

from ._admm import ADMM as ADMM
from ._gap import dual_bound as dual_bound
from ._interior_point import InteriorPoint as InteriorPoint
from ._network import (
    accuracy as accuracy,
    init_network as init_network,
    nonconvex_objective as nonconvex_objective,
    predict as predict,
    ReLUNetwork as ReLUNetwork,
    to_network as to_network,
)
from ._optimal import optimal_network as optimal_network
from ._patterns import (
    add_bias_column as add_bias_column,
    cone_matrices as cone_matrices,
    deduplicate_patterns as deduplicate_patterns,
    enumerate_patterns as enumerate_patterns,
    sample_patterns as sample_patterns,
)
from ._pricing import (
    exact_pricing as exact_pricing,
    merge_patterns as merge_patterns,
    network_patterns as network_patterns,
    price_patterns as price_patterns,
    pricing_multiplier as pricing_multiplier,
    PricingResult as PricingResult,
)
from ._problem import (
    AdversarialReLUProblem as AdversarialReLUProblem,
    ConvexReLUProblem as ConvexReLUProblem,
    ConvexReLUVariables as ConvexReLUVariables,
)
from ._reference import cvxpy_solve as cvxpy_solve
from ._scp import (
    FISTA as FISTA,
    sample_directions as sample_directions,
    SampledConvexProgram as SampledConvexProgram,
)
from ._sharding import shard_rows as shard_rows
from ._spec import from_spec as from_spec
