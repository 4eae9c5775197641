"""PDE declarations and the models that solve them: PINNs, Lagrangian PINNs and
hard-constrained PDE layers (single-expert and mixture-of-experts)."""

from ._domain import (
    AbstractBoundaryCondition as AbstractBoundaryCondition,
    DirichletBC as DirichletBC,
    Domain as Domain,
    NeumannBC as NeumannBC,
    PeriodicBC as PeriodicBC,
    RobinBC as RobinBC,
)
from ._family import PDEFamily as PDEFamily
from ._hc_basis import BasisNetwork as BasisNetwork
from ._hc_layer import (
    HardConstraintLayer as HardConstraintLayer,
    MoEHardConstraint as MoEHardConstraint,
)
from ._hc_train import hc_loss as hc_loss, SoftConstraintModel as SoftConstraintModel
from ._lpinn import (
    LagrangianPINN as LagrangianPINN,
    LagrangianPINNLoss as LagrangianPINNLoss,
)
from ._metrics import relative_l2 as relative_l2
from ._pde import derivative as derivative, from_spec as from_spec, PDE as PDE
from ._pinn import PINN as PINN, PINNLoss as PINNLoss
from ._reference import (
    advection_solution as advection_solution,
    antiderivative as antiderivative,
    burgers_cole_hopf as burgers_cole_hopf,
    convection_diffusion_solution as convection_diffusion_solution,
    diffusion_sorption_mol as diffusion_sorption_mol,
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
