"""Equality-constrained NLPs with sciopt.nlp: solve, differentiate, batch, and compare
the accuracy rules of the sketched Newton solver on Hock-Schittkowski problem 77.

    python examples/nlp_sketch_newton.py
"""

import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
import sciopt


jax.config.update("jax_enable_x64", True)

# min x1 + x2  s.t.  x1^2 + x2^2 = r^2
problem = sciopt.nlp.EqualityConstrainedProblem(
    objective=lambda x, r: x[0] + x[1],
    constraints=lambda x, r: jnp.array([x[0] ** 2 + x[1] ** 2 - r**2]),
)
solver = sciopt.nlp.AdaSketchNewton()
x0 = jnp.array([-1.0, -0.5])
sol = sciopt.solve(problem, solver, x0, args=1.0)
print("x* =", sol.value, " lambda* =", sol.aux, " steps:", int(sol.stats["num_steps"]))


def optimum(r):
    return sciopt.solve(problem, solver, x0, args=r).value.sum()


print("d/dr (x1* + x2*) =", float(jax.grad(optimum)(1.0)), "(exact: -sqrt(2))")
print("batched over r:", jax.vmap(optimum)(jnp.array([1.0, 2.0, 3.0])))

# HS77 from its formulas, with the three inner solves.
hs077 = sciopt.nlp.EqualityConstrainedProblem.from_formulas(
    variables=["x1", "x2", "x3", "x4", "x5"],
    objective="(x1 - 1)**2 + (x1 - x2)**2 + (x3 - 1)**2 + (x4 - 1)**4 + (x5 - 1)**6",
    equalities=[
        "x1**2*x4 + sin(x4 - x5) - 2*sqrt(2)",
        "x2 + x3**4*x4**2 - 8 - sqrt(2)",
    ],
)
solvers = {
    "adaptive rule (paper)": sciopt.nlp.AdaSketchNewton(),
    "practical rule": sciopt.nlp.AdaSketchNewton(accuracy="practical"),
    "practical, superlinear": sciopt.nlp.AdaSketchNewton(
        accuracy="practical", superlinear=True
    ),
    "block sketch (3 rows)": sciopt.nlp.AdaSketchNewton(
        accuracy="practical", linear_solver=sciopt.nlp.BlockSketch(block_size=3)
    ),
    "exact (LU)": sciopt.nlp.AdaSketchNewton(linear_solver=lx.LU()),
}
for name, s in solvers.items():
    # SaveAt records per-step statistics (entry 0 is the start).
    saveat = sciopt.SaveAt(fn=sciopt.nlp.step_stats)
    sol = sciopt.solve(hs077, s, jnp.full(5, 2.0), saveat=saveat)
    steps = int(sol.stats["num_steps"])
    sketch = np.asarray(sol.history["sketch_steps"])[1 : steps + 1]
    print(
        f"{name:24s} f = {float(hs077.objective(sol.value, None)):.8f} "
        f"Newton steps = {steps:2d}  median sketch steps/step = {np.median(sketch):.0f}"
    )
