"""An independent reference for the convex ReLU programs: cvxpy (Clarabel) on the
program written out here from its definition (Pilanci & Ergen 2020), one variable
per group and nothing taken from `sciopt.relu` but the raw arrays. The solver tests
in `test_relu.py` and `test_relu_sharding.py` check their objectives and certified
gaps against it; `sciopt.relu.cvxpy_solve` (the library's own reference, used by
the property tests) is checked against it here."""

import numpy as np
import pytest
import sciopt.relu as sr

from .helpers import relu_instance


def reference(X, y, patterns, beta, *, loss="squared", gated=False, bias=False):
    """The optimal value of

        min  loss(sum_i D_i X (v_i - w_i), y) + beta sum_i (||v_i|| + ||w_i||)
        s.t. (2 D_i - I) X v_i >= 0, (2 D_i - I) X w_i >= 0   (not for gated ReLU)

    with `X` given a ones column when `bias`, by Clarabel at 1e-10 tolerances."""
    import cvxpy as cp

    X = np.asarray(X, np.float64)
    y = np.asarray(y, np.float64)
    D = np.asarray(patterns, np.float64)
    if bias:
        X = np.concatenate([X, np.ones((X.shape[0], 1))], axis=1)
    n, d = X.shape
    P = D.shape[1]
    V = [cp.Variable(d) for _ in range(P)]
    W = [cp.Variable(d) for _ in range(P)]
    yhat = sum(cp.multiply(D[:, i], X @ (V[i] - W[i])) for i in range(P))
    if loss == "squared":
        fit = 0.5 * cp.sum_squares(yhat - y)
    elif loss == "bce":  # log(1 + exp(-(2y - 1) yhat))
        fit = cp.sum(cp.logistic(-cp.multiply(2 * y - 1, yhat)))
    else:  # hinge, labels +-1
        fit = cp.sum(cp.pos(1 - cp.multiply(y, yhat)))
    reg = beta * sum(cp.norm(V[i], 2) + cp.norm(W[i], 2) for i in range(P))
    cons = []
    if not gated:
        for i in range(P):
            sign = 2 * D[:, i] - 1
            cons += [cp.multiply(sign, X @ V[i]) >= 0, cp.multiply(sign, X @ W[i]) >= 0]
    prob = cp.Problem(cp.Minimize(fit + reg), cons)
    prob.solve(
        solver="CLARABEL",
        tol_gap_abs=1e-10,
        tol_gap_rel=1e-10,
        tol_feas=1e-10,
        max_iter=500,
    )
    assert prob.status in ("optimal", "optimal_inaccurate"), prob.status
    return float(prob.value)


def problem_reference(problem):
    """`reference` of a `ConvexReLUProblem` from its raw data (`problem.X` already
    carries the bias column)."""
    return reference(
        problem.X,
        problem.y,
        problem.patterns,
        float(problem.beta),
        loss=problem.loss,
        gated=problem.gated,
    )


def objective_and_violation(problem, v):
    """The convex objective and the largest cone violation of a stacked (2P, d)
    group variable (`v_1..v_P` then `w_1..w_P`), in NumPy from the definition."""
    X, y = np.asarray(problem.X), np.asarray(problem.y)
    D = np.asarray(problem.patterns)
    v = np.asarray(v)
    P = D.shape[1]
    yhat = sum(D[:, i] * (X @ (v[i] - v[P + i])) for i in range(P))
    if problem.loss == "squared":
        fit = 0.5 * np.sum((yhat - y) ** 2)
    elif problem.loss == "bce":
        fit = np.sum(np.logaddexp(0.0, -(2 * y - 1) * yhat))
    else:
        fit = np.sum(np.maximum(0.0, 1 - y * yhat))
    objective = fit + float(problem.beta) * np.sum(np.linalg.norm(v, axis=1))
    if problem.gated:
        return objective, 0.0
    signs = np.concatenate([2 * D.T - 1, 2 * D.T - 1])  # (2P, n)
    return objective, float(np.max(np.maximum(0.0, -signs * (v @ X.T))))


def check_certificate(sol, ref, *, objective_rtol, gap_rtol, problem=None):
    """The solver's objective within `objective_rtol` of the independent optimum
    `ref`; its certified lower bound below `ref` (to rounding) and its stated gap
    at most `gap_rtol` and at least the true suboptimality `objective - ref`. With
    `problem`, the reported objective and cone violation are recomputed from the
    returned `v`."""
    objective = float(sol.stats["objective"])
    if problem is not None:
        mine, violation = objective_and_violation(problem, sol.value.v)
        assert objective == pytest.approx(mine, rel=1e-10)
        assert float(sol.stats["cone_violation"]) == pytest.approx(
            violation, rel=1e-8, abs=1e-14
        )
    bound = float(sol.stats["lower_bound"])
    gap = float(sol.stats["duality_gap"])
    scale = abs(ref)
    assert abs(objective - ref) <= objective_rtol * scale, (objective - ref) / scale
    assert bound <= ref + 1e-9 * scale, (bound - ref) / scale
    assert gap == pytest.approx(objective - bound, rel=1e-12, abs=1e-15)
    assert gap <= gap_rtol * scale, gap / scale
    # the gap bounds the suboptimality (an iterate a little outside the cones may
    # sit a little below the optimum: the slack is the cone violation's order)
    assert objective - ref <= gap + 1e-9 * scale


@pytest.mark.parametrize(
    "loss, gated, bias",
    [
        ("squared", False, False),
        ("squared", True, True),
        ("bce", False, True),
        ("hinge", False, False),
        ("hinge", True, False),
    ],
)
def test_library_cvxpy_reference_matches_the_independent_program(loss, gated, bias):
    X, y, patterns = relu_instance(6, n=14, d=2, num_patterns=5, loss=loss, bias=bias)
    problem = sr.ConvexReLUProblem(
        X, y, patterns, 0.15, loss=loss, gated=gated, bias=bias
    )
    ours = reference(X, y, patterns, 0.15, loss=loss, gated=gated, bias=bias)
    assert ours == pytest.approx(problem_reference(problem), rel=1e-9)
    assert sr.cvxpy_solve(problem)[0] == pytest.approx(ours, rel=1e-8)


def _phase_one_reference(X, patterns, steps):
    """The interior-direction search of `InteriorPoint` written out in NumPy for one
    pattern at a time, for `steps` Newton steps: Newton's method with Armijo halving
    on the regularised logistic loss sum_k log(1 + exp(-s_k x_k^T w)) + lam / 2
    ||w||^2 of the pattern's signs s = 2 d - 1, from w = 0 and lam = 1e-2 x 0.25
    sum(X^2) / d; lam divided by 100 once a Newton decrement^2 / 2 <= 1e-2, and the
    pattern done after two such centred fits that separate strictly. Returns the
    unit directions and their margins min_k s_k x_k^T h."""
    n, d = X.shape
    lam0 = 1e-2 * 0.25 * np.sum(X**2) / d
    hs, margins = [], []
    for sign in 2 * np.asarray(patterns, np.float64).T - 1:
        A = sign[:, None] * X

        def loss(w, lam):
            return np.sum(np.logaddexp(0, -A @ w)) + lam / 2 * w @ w

        def margin(w):
            return np.min(A @ w) / np.linalg.norm(w)

        w, lam, separated = np.zeros(d), lam0, 0
        for _ in range(steps):
            if separated >= 2 or lam < 1e-16 * lam0:
                break
            p = 1 / (1 + np.exp(A @ w))
            grad = -A.T @ p + lam * w
            hess = X.T @ (X * (p * (1 - p))[:, None]) + lam * np.eye(d)
            step = -np.linalg.solve(hess, grad)
            slope, f0, a = grad @ step, loss(w, lam), 1.0
            for _ in range(60):
                if loss(w + a * step, lam) <= f0 + a * slope / 4:
                    break
                a /= 2
            if not loss(w + a * step, lam) <= f0:
                a = 0.0
            w = w + a * step
            if -slope / 2 <= 1e-2:
                separated += margin(w) > 0
                lam /= 100
        hs.append(w / np.linalg.norm(w))
        margins.append(margin(w))
    return np.array(hs), np.array(margins)


def test_interior_point_phase_one_against_numpy_and_the_max_margin_program():
    import cvxpy as cp
    import equinox as eqx
    from sciopt.relu._interior_point import _interior_directions

    directions = eqx.filter_jit(_interior_directions)  # one compilation for all
    X, y, patterns = relu_instance(8, n=16, d=3, num_patterns=6)
    problem = sr.ConvexReLUProblem(X, y, patterns, 0.1)
    X = np.asarray(problem.X)
    # the path step by step and to its end, against NumPy
    for steps in (1, 2, 5, 2000):
        h, sigma = directions(problem, np.int32(steps))
        ref_h, ref_sigma = _phase_one_reference(X, problem.patterns, steps)
        np.testing.assert_allclose(h, ref_h, rtol=0, atol=1e-10)
        np.testing.assert_allclose(sigma, ref_sigma, rtol=0, atol=1e-10)
    # the end: unit directions strictly inside every cone, their margins a good
    # share of the largest, the optimum of max sigma s.t. (2 D_i - I) X h >= sigma,
    # ||h|| <= 1 by Clarabel (measured ratios 0.74 to 0.96)
    h, sigma = map(np.asarray, directions(problem, np.int32(2000)))
    ratios = []
    for i, sign in enumerate(2 * np.asarray(problem.patterns, np.float64).T - 1):
        hv, sv = cp.Variable(X.shape[1]), cp.Variable()
        constraints = [cp.multiply(sign, X @ hv) >= sv, cp.norm(hv) <= 1]
        cp.Problem(cp.Maximize(sv), constraints).solve(solver="CLARABEL")
        assert 0 < sigma[i] <= sv.value + 1e-9, (i, sigma[i], sv.value)
        assert np.min(sign * (X @ h[i])) == pytest.approx(sigma[i], abs=1e-12)
        assert h[i] @ h[i] == pytest.approx(1.0)
        ratios.append(sigma[i] / sv.value)
    assert min(ratios) >= 0.5


@pytest.mark.parametrize("gated", [False, True])
def test_dual_bound_is_exact_at_the_zero_optimum_of_zero_labels(gated):
    # labels y = 0: the optimum is 0, at v = 0 (the loss and the regulariser are
    # non-negative and vanish there); the loss multiplier yhat - y is then 0 and
    # the bound (the best scaling of a zero multiplier) must be exactly 0, not 0 / 0
    from sciopt.relu._gap import dual_bound

    X, _, patterns = relu_instance(6, n=14, d=2, num_patterns=5)
    problem = sr.ConvexReLUProblem(X, np.zeros(14), patterns, 0.15, gated=gated)
    zeros = np.zeros((10, 14))
    objective, bound, violation = dual_bound(problem, zeros[:, :2], zeros, zeros[0])
    assert (float(objective), float(bound), float(violation)) == (0.0, 0.0, 0.0)


def test_cvxpy_reference_refuses_an_inaccurate_status():
    X, y, patterns = relu_instance(6, n=14, d=2, num_patterns=5)
    problem = sr.ConvexReLUProblem(X, y, patterns, 0.15)
    # two interior-point iterations cannot reach 1e-10: Clarabel stops at max_iter
    with pytest.raises(RuntimeError, match="did not reach its tolerances"):
        sr.cvxpy_solve(problem, max_iter=2)
    assert sr.cvxpy_solve(problem)[0] > 0
