"""Learned proximal networks, proximal matching and plug-and-play inverse solvers."""

from ._admm import PnPADMM as PnPADMM
from ._icnn import AbstractICNN as AbstractICNN, ConvICNN as ConvICNN, ICNN as ICNN
from ._lpn import LearnedProximalNetwork as LearnedProximalNetwork
from ._metrics import psnr as psnr, ssim as ssim
from ._operators import (
    blur_operator as blur_operator,
    gaussian_sensing_operator as gaussian_sensing_operator,
    projection_operator as projection_operator,
    subsampling_operator as subsampling_operator,
)
from ._pgd import PnPProximalGradient as PnPProximalGradient, step_stats as step_stats
from ._problem import (
    add_noise as add_noise,
    from_spec as from_spec,
    LinearInverseProblem as LinearInverseProblem,
)
from ._prox import (
    AbstractProx as AbstractProx,
    FunctionProx as FunctionProx,
    SoftThreshold as SoftThreshold,
    total_variation as total_variation,
    TotalVariation as TotalVariation,
)
from ._train import (
    denoising_loss as denoising_loss,
    fit_lpn as fit_lpn,
    l1_loss as l1_loss,
    l2_loss as l2_loss,
    proximal_matching_loss as proximal_matching_loss,
    proximal_matching_schedule as proximal_matching_schedule,
    TrainingStage as TrainingStage,
)
