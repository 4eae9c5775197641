"""Constrained bilevel optimisation with LV-HBA, and BO-REP on an unbounded-smoothness
upper level.

1. A bilevel problem whose lower level has a coupled inequality `y <= x`, written with
   callables; LV-HBA reaches the closed-form solution (two coordinates active, two
   inactive) and reports the true upper objective `Phi(x) = F(x, y*(x))`.
2. The same kind of problem from formulas, with a nonlinear coupling `||y||^2 <= x`.
3. `Phi(x) = sum cosh(A x - b)`: fixed-step AID diverges, BO-REP converges.

Run: `python examples/bilevel_coupled.py`.
"""

import jax
import jax.numpy as jnp
import numpy as np
import sciopt
import sciopt.bilevel as sb


jax.config.update("jax_enable_x64", True)


def coupled_inequality():
    a = jnp.array([1.0, 0.0, 2.0, 1.0])
    b = jnp.array([0.5, -1.0, 0.0, 0.0])
    c = jnp.array([0.0, 1.0, -1.0, 2.0])
    problem = sb.BilevelProblem(
        upper=lambda x, y, args: (
            0.5 * jnp.sum((x - a) ** 2) + 0.5 * jnp.sum((y - b) ** 2)
        ),
        lower=lambda x, y, args: 0.5 * jnp.sum((y - c) ** 2),
        lower_constraints=lambda x, y, args: y - x,
    )
    x0, y0 = jnp.zeros(4), jnp.zeros(4)
    # The constraints are affine: give their polyhedron for exact projections.
    problem = sb.BilevelProblem(
        problem.upper,
        problem.lower,
        lower_constraints=problem.lower_constraints,
        coupled_set=sb.Polyhedron.from_affine(problem, x0, y0),
    )
    solver = sb.LVHBA(alpha=0.5, beta=0.5, eta=0.5, penalty=8.0)
    sol = sciopt.solve(problem, solver, (x0, y0))
    x, _ = sol.value
    print("LV-HBA x =", np.round(np.asarray(x), 6), "(closed form [1, -0.5, 2, 0.5])")
    print("  Phi(x) =", float(sol.stats["upper_objective"]), "(closed form 1.125)")
    print("  multipliers =", np.round(np.asarray(sol.stats["multipliers"][0]), 3))


def from_formulas():
    problem = sb.from_formulas(
        upper="0.5*(x1 - 1)**2 + 0.5*(y1**2 + y2**2)",
        lower="0.5*((y1 - 2)**2 + y2**2)",
        x=["x1"],
        y=["y1", "y2"],
        constraints=["y1**2 + y2**2 - x1"],
        upper_set=sb.Box(0.0, 10.0),
    )
    solver = sb.LVHBA(alpha=0.5, beta=0.5, eta=0.2, penalty=2.0)
    # A fixed budget of 1500 steps: `throw=False` keeps the iterate when the stopping
    # test has not held yet (`sol.result` says so).
    start = (jnp.array([2.0]), jnp.zeros(2))
    sol = sciopt.solve(problem, solver, start, max_steps=1500, throw=False)
    print("formulas: x =", float(sol.value[0][0]), "(closed form 0.5)")
    print("  result:", sciopt.RESULTS[sol.result].split(".")[0] or "converged")


def unbounded_smoothness():
    rng = np.random.default_rng(0)
    a = np.eye(4) + 0.15 * rng.normal(size=(4, 4))
    b = rng.normal(size=4)
    problem = sb.BilevelProblem(
        upper=lambda x, y, args: jnp.sum(jnp.cosh(y - b)),
        lower=lambda x, y, args: 0.5 * jnp.sum((y - a @ x) ** 2),
    )
    x_star = np.linalg.solve(a, b)
    start = (jnp.asarray(x_star + 3.0), jnp.zeros(4))
    aid = sb.AID(learning_rate=1 / np.linalg.norm(a, 2) ** 2)
    sol = sciopt.solve(problem, aid, start, max_steps=200, throw=False)
    print("AID (step 1/L at x*):", sciopt.RESULTS[sol.result].split(".")[0])
    borep = sb.BOREP(
        learning_rate=0.1,
        decay=0.05,
        lower_learning_rate=0.5,
        z_learning_rate=0.5,
    )
    sol = sciopt.solve(problem, borep, start, max_steps=2000, throw=False)
    print("BO-REP: ||x - x*|| =", float(np.linalg.norm(sol.value[0] - x_star)))


if __name__ == "__main__":
    coupled_inequality()
    from_formulas()
    unbounded_smoothness()
