"""Data sets and toy problems used by the gallery, the examples and the benchmarks.

Loaders of small public data (scikit-learn's bundled breast-cancer, digits and
diabetes sets), synthetic generators with known answers, and the named problems of the
bilevel gallery with their closed-form or independently computed references.
"""

from ._bilevel import (
    bilevel_accuracy as bilevel_accuracy,
    bilevel_case as bilevel_case,
    BILEVEL_PROBLEMS as BILEVEL_PROBLEMS,
    BilevelCase as BilevelCase,
    cosh_problem as cosh_problem,
    coupled_ball as coupled_ball,
    coupled_box as coupled_box,
    coupled_box_solution as coupled_box_solution,
    coupled_polyhedron as coupled_polyhedron,
    coupled_polyhedron_reference as coupled_polyhedron_reference,
    hyperclean as hyperclean,
    hyperclean_data as hyperclean_data,
    ridge as ridge,
    ridge_data as ridge_data,
    ridge_phi as ridge_phi,
    toy_equality as toy_equality,
    toy_equality_solution as toy_equality_solution,
)
from ._digits import (
    digits_operator as digits_operator,
    digits_problem as digits_problem,
    digits_split as digits_split,
    load_digit_images as load_digit_images,
)
from ._laplace import (
    ideal_matching_denoiser as ideal_matching_denoiser,
    laplace_sampler as laplace_sampler,
    LAPLACIAN_FINAL_STEPS as LAPLACIAN_FINAL_STEPS,
    laplacian_lpn as laplacian_lpn,
    laplacian_stages as laplacian_stages,
    posterior_mean_median as posterior_mean_median,
    soft_threshold as soft_threshold,
)
from ._relu import (
    gaussian_blobs as gaussian_blobs,
    load_relu_table as load_relu_table,
    one_dimensional as one_dimensional,
    planted_regression as planted_regression,
    sklearn_binary as sklearn_binary,
)
