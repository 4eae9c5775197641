"""PDE core, PINNs, Lagrangian PINNs and hard-constrained PDE layers."""

# --- PDE core, PINN and Lagrangian PINN (section owned by the PINN work) ---
from ._domain import (
    AbstractBoundaryCondition as AbstractBoundaryCondition,
    DirichletBC as DirichletBC,
    Domain as Domain,
    NeumannBC as NeumannBC,
    PeriodicBC as PeriodicBC,
    RobinBC as RobinBC,
)
from ._lpinn import (
    LagrangianPINN as LagrangianPINN,
    LagrangianPINNLoss as LagrangianPINNLoss,
)
from ._metrics import (
    plot_error_curves as plot_error_curves,
    plot_solution as plot_solution,
    relative_l2 as relative_l2,
)
from ._pde import derivative as derivative, from_spec as from_spec, PDE as PDE
from ._pinn import PINN as PINN, PINNLoss as PINNLoss
from ._reference import (
    advection_solution as advection_solution,
    antiderivative as antiderivative,
    burgers_cole_hopf as burgers_cole_hopf,
    convection_diffusion_solution as convection_diffusion_solution,
    heat_sine_series as heat_sine_series,
    method_of_lines as method_of_lines,
)
from ._sampling import (
    grid as grid,
    sample_boundary as sample_boundary,
    sample_initial as sample_initial,
    sample_interior as sample_interior,
    sample_unit as sample_unit,
)


# isort: split
# --- end PDE core ---

# --- hard-constraint layers (section owned by the hard-constraint work) ---
from ._hc_basis import basis_terms as basis_terms, BasisNetwork as BasisNetwork
from ._hc_layer import (
    HardConstraintLayer as HardConstraintLayer,
    HCSolution as HCSolution,
)
from ._hc_moe import MoEHardConstraint as MoEHardConstraint
from ._hc_problems import (
    hc_burgers as hc_burgers,
    hc_diffusion_sorption as hc_diffusion_sorption,
    hc_heat as hc_heat,
    hc_problem as hc_problem,
    hc_reference_grid as hc_reference_grid,
    HCProblem as HCProblem,
)
from ._hc_references import diffusion_sorption_mol as diffusion_sorption_mol
from ._hc_solve import (
    constraint_residual as constraint_residual,
    ConstraintRows as ConstraintRows,
    solve_weights as solve_weights,
)
from ._hc_train import (
    hc_loss as hc_loss,
    hc_relative_l2 as hc_relative_l2,
    SoftConstraintModel as SoftConstraintModel,
)


# --- end hard-constraint layers ---
