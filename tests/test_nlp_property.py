"""Each AdaSketchNewton variant against scipy SLSQP on random well-posed problems:
strongly convex objective (quadratic plus quartic) under random linear equality
constraints, so the KKT point is unique. The data enter through `args` (fixed
shapes), so each variant compiles once."""

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import jax.numpy as jnp
import lineax as lx
import numpy as np
import pytest
import sciopt
from hypothesis import given
from scipy.optimize import minimize

from .helpers import nlp_objective_error


N, M = 4, 2


def objective(x, args):
    q, g, _, _ = args
    return 0.5 * x @ q @ x + g @ x + 0.1 * jnp.sum(x**4)


def constraints(x, args):
    _, _, a, b = args
    return a @ x - b


PROBLEM = sciopt.nlp.EqualityConstrainedProblem(objective, constraints)
VARIANTS = {
    "adaptive": sciopt.nlp.AdaSketchNewton(),
    "practical": sciopt.nlp.AdaSketchNewton(accuracy="practical", superlinear=True),
    "block": sciopt.nlp.AdaSketchNewton(
        accuracy="practical", linear_solver=sciopt.nlp.BlockSketch(block_size=3)
    ),
    "exact": sciopt.nlp.AdaSketchNewton(linear_solver=lx.LU()),
    # B = Q + 1.2 diag(x^2) is positive definite here, as the Schur CG needs.
    "schur": sciopt.nlp.AdaSketchNewton(
        linear_solver=sciopt.nlp.SchurComplementCG(), materialise=False
    ),
}

floats = st.floats(-1.0, 1.0, allow_nan=False, allow_infinity=False)


@st.composite
def instances(draw):
    l = draw(hnp.arrays(np.float64, (N, N), elements=floats))
    q = l @ l.T + 0.5 * np.eye(N)
    g = draw(hnp.arrays(np.float64, (N,), elements=floats))
    a = draw(hnp.arrays(np.float64, (M, N), elements=floats))
    a = a + np.eye(M, N) * 2.0  # keep the rows well separated (full rank)
    b = draw(hnp.arrays(np.float64, (M,), elements=floats))
    return q, g, a, b


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@given(data=instances())
def test_matches_slsqp(variant, data):
    q, g, a, b = data
    args = tuple(jnp.asarray(v) for v in data)
    sol = sciopt.solve(PROBLEM, VARIANTS[variant], jnp.zeros(N), args=args)
    f = float(objective(sol.value, args))
    ref = minimize(
        lambda x: float(objective(jnp.asarray(x), args)),
        np.zeros(N),
        jac=lambda x: 0.0 + q @ x + g + 0.4 * x**3,
        method="SLSQP",
        constraints={"type": "eq", "fun": lambda x: a @ x - b, "jac": lambda x: a},
        options={"ftol": 1e-14, "maxiter": 500},
    )
    assert ref.success
    assert nlp_objective_error(f, ref.fun) <= 1e-6
    np.testing.assert_allclose(sol.value, ref.x, atol=1e-5)
    # |c| <= ||KKT residual|| <= 1e-8
    np.testing.assert_allclose(a @ np.asarray(sol.value), b, atol=1e-8)
    assert float(sol.stats["kkt_residual"]) <= 1e-8
