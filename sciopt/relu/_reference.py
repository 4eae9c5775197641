"""Reference solutions of the convex programs by cvxpy (Clarabel), for tests and
benchmarks. cvxpy is imported on first use."""

import numpy as np

from ._problem import AdversarialReLUProblem


def cvxpy_solve(
    problem,
    *,
    solver: str = "CLARABEL",
    tol: float = 1e-10,
    accept_inaccurate: bool = False,
    **kwargs,
):
    """Solve a `ConvexReLUProblem` or `AdversarialReLUProblem` with cvxpy.

    **Arguments:**

    - `problem`: the problem (its arrays are copied to NumPy).
    - `solver`: the cvxpy solver name (`"CLARABEL"`, `"SCS"`, ...).
    - `tol`: Clarabel's feasibility and gap tolerances (ignored by other solvers).
    - `accept_inaccurate`: return a solution whose status is `optimal_inaccurate`
        (the solver stopped short of its tolerances) instead of raising.
    - `kwargs`: passed to `cvxpy.Problem.solve`.

    Raises `RuntimeError` naming the status unless cvxpy reports `optimal` (or
    `optimal_inaccurate` with `accept_inaccurate=True`): a reference must not be
    silently inaccurate.

    **Returns:**

    `(objective, v)` with `v` the (2P, d) stacked group variable.
    """
    import cvxpy as cp

    X = np.asarray(problem.X, np.float64)
    y = np.asarray(problem.y, np.float64)
    D = np.asarray(problem.patterns, np.float64)
    beta = float(problem.beta)
    n, d = X.shape
    P = D.shape[1]
    V = cp.Variable((d, P))
    W = cp.Variable((d, P))
    XV, XW = X @ V, X @ W
    signs = 2 * D - 1
    reg = beta * (cp.sum(cp.norm(V, 2, axis=0)) + cp.sum(cp.norm(W, 2, axis=0)))
    if isinstance(problem, AdversarialReLUProblem):
        e = np.asarray(problem.eps_weights, np.float64)
        Q = (V - W) @ D.T  # (d, n): column k is q_k
        yhat = cp.sum(cp.multiply(X.T, Q), axis=0)
        robust = cp.sum(cp.abs(cp.multiply(e[:, None], Q)), axis=0)
        loss = cp.sum(cp.pos(1 - cp.multiply(y, yhat) + robust))
        mv = cp.sum(cp.abs(cp.multiply(e[:, None], V)), axis=0)
        mw = cp.sum(cp.abs(cp.multiply(e[:, None], W)), axis=0)
        cons = [
            cp.multiply(signs, XV) >= np.ones((n, 1)) @ cp.reshape(mv, (1, P), "C"),
            cp.multiply(signs, XW) >= np.ones((n, 1)) @ cp.reshape(mw, (1, P), "C"),
        ]
    else:
        yhat = cp.sum(cp.multiply(D, XV - XW), axis=1)
        if problem.loss == "squared":
            loss = 0.5 * cp.sum_squares(yhat - y)
        elif problem.loss == "bce":
            loss = cp.sum(cp.logistic(-cp.multiply(2 * y - 1, yhat)))
        else:
            loss = cp.sum(cp.pos(1 - cp.multiply(y, yhat)))
        cons = (
            []
            if problem.gated
            else [cp.multiply(signs, XV) >= 0, cp.multiply(signs, XW) >= 0]
        )
    prob = cp.Problem(cp.Minimize(loss + reg), cons)
    if solver.upper() == "CLARABEL":
        kwargs = {
            "tol_gap_abs": tol,
            "tol_gap_rel": tol,
            "tol_feas": tol,
            "max_iter": 500,
            **kwargs,
        }
    prob.solve(solver=solver, **kwargs)
    accepted = {cp.OPTIMAL} | ({cp.OPTIMAL_INACCURATE} if accept_inaccurate else set())
    if V.value is None or prob.status not in accepted:
        raise RuntimeError(
            f"cvxpy ({solver}) did not reach its tolerances: status {prob.status}. "
            "Loosen `tol`, try another `solver`, or pass `accept_inaccurate=True`."
        )
    v = np.concatenate([V.value.T, W.value.T], axis=0)
    return float(prob.value), v
