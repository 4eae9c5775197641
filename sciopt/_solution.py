"""`Solution` and `RESULTS`: what every sciopt solver returns."""

from typing import Any

import equinox as eqx
import optimistix as optx
from jaxtyping import ArrayLike, PyTree


class RESULTS(optx.RESULTS):  # pyright: ignore
    """Result codes of sciopt solvers.

    Extends `optimistix.RESULTS` (and so `lineax.RESULTS`) with codes for constrained,
    bilevel and learned-model problems. Every message says what to try next.
    `RESULTS[sol.result]` gives the message of a result.
    """

    steps_exhausted = (
        "The maximum number of steps was reached before the stopping tolerances were "
        "met. Increase `max_steps`, loosen `rtol`/`atol`, or check the problem scaling "
        "(float32 may not reach tight tolerances)."
    )
    rank_deficient_constraints = (
        "The constraint Jacobian is rank deficient at a (nearly) feasible point where "
        "no step makes progress: the constraint qualification (LICQ) fails there and "
        "the point may have no Lagrange multipliers. Reformulate the constraints "
        "(remove redundant ones, avoid squared constraints such as c(x)**2 = 0) or "
        "start from another `y0`."
    )
    not_descent_direction = (
        "No descent direction of the merit function was found even after the penalty "
        "updates; the penalty parameters hit their bounds. Try a larger `mu_max`, a "
        "different `y0`, or the exact inner solver."
    )
    line_search_failed = (
        "The line search could not satisfy the Armijo condition. The problem may be "
        "badly scaled or non-smooth near the iterate; try float64, another `y0`, or a "
        "smaller `armijo_c`."
    )
    inner_solve_failed = (
        "An inner (linear or subproblem) solve did not reach its accuracy. Raise the "
        "inner iteration limit or use an exact inner solver."
    )
    infeasible = (
        "The iterates reached a stationary point of the constraint violation ||c||^2 "
        "with c != 0: the problem appears (locally) infeasible. Check the constraints "
        "and the data for inconsistent equalities; if a feasible point should exist, "
        "start from another `y0`."
    )
    unbounded = (
        "The objective fell without bound on the feasible set: the problem appears "
        "unbounded below. Check the objective's sign, add constraints or "
        "regularisation, or raise the solver's `unbounded_threshold`."
    )
    lower_level_infeasible = (
        "The lower-level problem is infeasible at the current upper-level point: no y "
        "satisfies g(x, y) <= 0. Start from an upper-level point where the lower level "
        "is feasible."
    )
    characteristics_crossed = (
        "The learned characteristics crossed (the map xi -> X(xi, t) lost "
        "monotonicity, X_xi <= 0): a shock formed or the network is not yet trained. "
        "The Lagrangian frame does not hold past a shock; use a shorter time horizon "
        "or an Eulerian method."
    )
    nonfinite_start = (
        "The starting point `y0` or the parameters `args` contain non-finite values "
        "(nan or inf). Pass finite values."
    )
    nonfinite_data = (
        "The problem data (`X`, `y`, `patterns`, `beta` or another array of the "
        "problem) contain nan or inf. Clean or impute them; built outside `jax.jit`, "
        "the problem's constructor raises a ValueError naming the array."
    )
    invalid_data = (
        "The problem data are outside their domain: `beta` <= 0, `patterns` with "
        "entries other than 0 and 1 or an all-zero column, labels `y` outside the "
        "loss's domain ({0, 1} for 'bce', {-1, +1} for 'hinge'), or `eps` < 0. Fix "
        "that input; built outside `jax.jit`, the problem's constructor raises a "
        "ValueError naming it."
    )
    inversion_failed = (
        "Inverting the learned map (a convex conjugate solve) did not converge; the "
        "returned value is inaccurate. Raise the inner `max_steps` or check that the "
        "point lies in the map's range."
    )
    nonfinite_model = (
        "The model produced non-finite values (inf or nan). Lower the learning rate, "
        "check the inputs' scaling, or use float64."
    )
    newton_stalled = (
        "The interior-point Newton steps stopped making progress before the duality "
        "gap met `rtol`: in this precision the barrier problems cannot be solved "
        "more accurately. The returned point is strictly feasible and "
        "`stats['duality_gap']` certifies its accuracy. Use float64 or loosen `rtol`."
    )
    empty_cone_interior = (
        "No strictly interior point was found for an activation pattern's cone "
        "{h: (2 D_i - I) X h >= 0}: its interior is empty (no direction activates "
        "exactly that pattern strictly, e.g. equal rows of X with different "
        "activations) or the search needs more steps. Raise `phase_one_steps`, remove "
        "the degenerate pattern, or solve with `sciopt.relu.ADMM`."
    )
    diverged = (
        "The iterates diverged (grew by many orders of magnitude). Lower the step "
        "sizes (PnP-PGD: `step_size` below 2/L, or `None`; LV-HBA: keep "
        "`eta * ||grad_y g||` below 1 and `alpha` below 1/L)."
    )


class Solution(eqx.Module):
    """The result of `sciopt.solve`.

    **Attributes:**

    - `value`: the solution (for example `x`, or `(x, y)` for bilevel problems).
    - `result`: a `sciopt.RESULTS` code; `RESULTS[sol.result]` is its message.
    - `stats`: statistics of the solve. Always holds `num_steps` and `max_steps`, plus
        the residuals the solver watches (each solver documents its entries).
    - `state`: the solver's final internal state.
    - `aux`: auxiliary output of the solver (for example Lagrange multipliers).
    - `history`: what `sciopt.SaveAt` recorded (`None` unless `saveat` was given).
    """

    value: PyTree[Any]
    result: RESULTS
    stats: dict[str, PyTree[ArrayLike]]
    state: Any
    aux: Any = None
    history: PyTree[Any] = None
