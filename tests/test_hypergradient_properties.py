"""Property tests of gradients through solves against central finite differences of
cvxpy (Clarabel) solutions, on small random instances.

- Bilevel (LV-HBA): on the convex-quadratic bilevel problems of
  `test_bilevel_properties.py` (coupled linear lower-level constraints, all data in
  `args`), `jax.grad` of `L = w_x . x* + w_y . y*` through `sciopt.solve(PROBLEM,
  LVHBA(...))` with respect to `args` (every coordinate of `a`, `c`, `d`, and one
  random direction in all the data at once) against central differences of `L` at
  the bilevel solutions of the perturbed data: the optimum of the upper objective
  on the active-set piece the solution lies on (a cvxpy QP), with `y*` from a cvxpy
  lower-level solve at that `x*`. Instances whose solution map is not
  differentiable, or nearly so (an active constraint with a multiplier below
  `MARGIN`, an inactive one within `MARGIN` of zero), are rejected by `assume`:
  there the library raises (see `sciopt/bilevel/_implicit.py`), and a finite
  difference straddles a kink.
- Convex ReLU (ADMM): the derivatives in `beta` of the optimal objective and of a
  validation loss of the solution (the squared error of its fitted predictions
  against held-out targets), by `jax.jvp` through `sciopt.solve(problem,
  sciopt.relu.ADMM(...))`, against Richardson-extrapolated central differences of
  the same quantities at cvxpy's solutions (`sciopt.relu.cvxpy_solve`) at `beta`,
  `beta +- h/2` and `beta +- h`, each refined by Newton steps on its own sparsity
  pattern and active cone rows (Clarabel's solutions are accurate to about 1e-6
  only). Draws where that structure differs between the five points, or cannot be
  told with a margin, are rejected by `assume`: the solution map has a kink there.
"""

import cvxpy as cp
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sciopt
import sciopt.bilevel as sb
import sciopt.relu as sr
from hypothesis import assume, given, HealthCheck, settings, strategies as st

from .helpers import relu_instance
from .test_bilevel_properties import _instance, _lower_cvxpy, PROBLEM, TOL


SEEDS = st.integers(0, 2**16)

# -- bilevel ------------------------------------------------------------------------

# Larger than the default tolerance would need many more steps; the solve is then
# made exact by the polish (Newton steps on the optimality condition), and only
# polished solutions are used. Measured on 100 draws: all successful, 86 polished,
# median 870 steps.
LV = sb.LVHBA(alpha=0.2, beta=0.2, eta=0.2, penalty=2.0, rtol=1e-4)
START = (jnp.zeros(2), jnp.zeros(2))
W = np.array([0.7, -1.3, 0.4, 0.9])  # L = W[:2] . x + W[2:] . y
# A multiplier or an inactive constraint this close to zero counts as a kink: a
# step H of the data moves them by H times their sensitivity (below 100 here).
MARGIN = 1e-2
H = 1e-4


def _solve_bilevel(args, throw=True):
    return sciopt.solve(PROBLEM, LV, START, args, max_steps=50_000, throw=throw)


@eqx.filter_jit
def _bilevel_grad(args):
    def loss(args):
        x, y = _solve_bilevel(args).value
        w = jnp.asarray(W)
        return jnp.vdot(w[:2], x) + jnp.vdot(w[2:], y)

    return jax.grad(loss)(args)


def _piece(inst, active, x):
    """`(lambda_S, g)` at `x` on the piece with active rows `active`: the
    multipliers of the active rows and the values of all the rows at the lower-level
    solution of the KKT system with those rows held active."""
    Q, C, A, B, d, c = (inst[k] for k in "QCABdc")
    m, S = Q.shape[0], list(active)
    kkt = np.block([[Q, A[S].T], [A[S], np.zeros((len(S), len(S)))]])
    sol = np.linalg.solve(kkt, np.concatenate([c + C @ x, B[S] @ x + d[S]]))
    return sol[m:], A @ sol[:m] - B @ x - d


def _strictly_inside(inst, active, x, margin):
    lam, g = _piece(inst, active, x)
    rest = [i for i in range(len(g)) if i not in active]
    return np.all(lam > margin) and np.all(g[rest] < -margin)


def _piece_solution(inst, active):
    """The minimiser of the upper objective over the affine extension of the piece
    `active` (cvxpy; an unconstrained QP, which Clarabel solves to round-off, where
    the constrained piece QP of `_piece_optimum` sometimes fails at 1e-12). It is
    the bilevel solution on the piece when it lies strictly inside the piece."""
    Q, C, A, B, d, a, b, c = (inst[k] for k in "QCABdabc")
    m, S = Q.shape[0], list(active)
    kkt = np.block([[Q, A[S].T], [A[S], np.zeros((len(S), len(S)))]])
    offset = np.linalg.solve(kkt, np.concatenate([c, d[S]]))
    slope = np.linalg.solve(kkt, np.concatenate([C, B[S]]))
    x = cp.Variable(len(a))
    y = offset[:m] + slope[:m] @ x
    upper = 0.5 * cp.sum_squares(x - a) + 0.5 * cp.sum_squares(y - b)
    prob = cp.Problem(cp.Minimize(upper))
    prob.solve(**TOL)
    assert prob.status == cp.OPTIMAL
    return x.value


def _bilevel_loss(inst, active):
    """`L` at the bilevel solution on the piece `active`, which must lie strictly
    inside the piece: then it is the solution near the unperturbed one. `y*` is
    cvxpy's lower-level solution at `x*`."""
    x = _piece_solution(inst, active)
    assert _strictly_inside(inst, active, x, 0.0)
    y = _lower_cvxpy(inst, x)
    return W[:2] @ x + W[2:] @ y


def _fd(inst, active, direction):
    plus = {k: v + H * direction.get(k, 0.0) for k, v in inst.items()}
    minus = {k: v - H * direction.get(k, 0.0) for k, v in inst.items()}
    return (_bilevel_loss(plus, active) - _bilevel_loss(minus, active)) / (2 * H)


def _check_bilevel(seed):
    inst = _instance(seed)
    args = {k: jnp.asarray(v) for k, v in inst.items()}
    sol = _solve_bilevel(args, throw=False)
    assume(bool(sol.result == sciopt.RESULTS.successful))
    assume(bool(sol.stats["polished"]))
    x, y = (np.asarray(v) for v in sol.value)
    # A polished solution is exact: its y is the lower-level solution at its x.
    # Checked before any draw is rejected: `polish` does not check the signs of the
    # active multipliers, and with `penalty=8` (rtol 1e-4) it returned, as
    # successful and polished, a Newton point with a negative one (instance
    # 36018), whose y is 0.3 from the lower-level solution.
    np.testing.assert_allclose(y, _lower_cvxpy(inst, x), rtol=0, atol=1e-8)
    g = inst["A"] @ y - inst["B"] @ x - inst["d"]
    active = tuple(i for i in range(len(g)) if g[i] > -1e-7)
    assume(_strictly_inside(inst, active, x, MARGIN))
    # ... and x the optimum of its piece: the differences below are of this solution.
    np.testing.assert_allclose(x, _piece_solution(inst, active), rtol=0, atol=1e-8)
    grad = _bilevel_grad(args)
    # On the piece the solution is affine in (a, b, c, d) (central differences are
    # exact up to cvxpy's accuracy, about 1e-11, over 2H) and smooth in (Q, C, A,
    # B). Measured over 100 draws (81 kept): the coordinates at most 2e-10 off, the
    # random direction 7e-8 relative (9e-9 absolute).
    rtol, atol = 1e-6, 1e-8
    for name in "acd":
        for i in range(2):
            e = np.zeros(2)
            e[i] = 1.0
            fd = _fd(inst, active, {name: e})
            np.testing.assert_allclose(grad[name][i], fd, rtol=rtol, atol=atol)
    # One random direction in all the data (Q symmetric), against the directional
    # derivative of the gradient.
    rng = np.random.default_rng(seed + 1)
    direction = {k: rng.normal(size=v.shape) for k, v in inst.items()}
    direction["Q"] = direction["Q"] + direction["Q"].T
    norm = np.sqrt(sum(np.sum(v * v) for v in direction.values()))
    direction = {k: v / norm for k, v in direction.items()}
    fd = _fd(inst, active, direction)
    directional = sum(float(np.sum(grad[k] * direction[k])) for k in inst)
    np.testing.assert_allclose(directional, fd, rtol=rtol, atol=atol)


# slow run only: most of its cost is compiling the gradient program, which the
# persistent cache cannot keep (the default run checks LV-HBA's gradients against
# closed forms in test_bilevel_grad.py and against differences in the conformance
# suite)
@pytest.mark.slow
@settings(max_examples=2)
@given(seed=SEEDS)
def test_lvhba_hypergradient_matches_cvxpy_differences(seed):
    _check_bilevel(seed)


@pytest.mark.slow
@settings(max_examples=25, suppress_health_check=[HealthCheck.filter_too_much])
@given(seed=SEEDS)
def test_lvhba_hypergradient_matches_cvxpy_differences_many(seed):
    _check_bilevel(seed)


# -- convex ReLU --------------------------------------------------------------------

ADMM = sr.ADMM(rtol=1e-10, atol=1e-12)
BETAS = st.floats(0.05, 1.0)
BETA_STEP = 1e-3


def _relu_data(seed):
    X, y, patterns = relu_instance(seed, n=10, d=2, num_patterns=4)
    held_out = np.random.default_rng(seed + 1).normal(size=y.shape)
    return X, y, np.asarray(patterns), held_out


def _objective_and_validation(problem, v, held_out):
    """The convex program's objective at `v`, and the squared error of its fitted
    predictions `sum_i D_i X (v_i - w_i)` against held-out targets (unlike `v`,
    which may be non-unique, the predictions are unique: the loss is strictly
    convex in them). In NumPy or JAX, after `v`."""
    xp = jnp if isinstance(v, jax.Array) else np
    beta = problem.beta if xp is jnp else float(problem.beta)
    signed = xp.asarray(problem.signed_patterns)
    X, y = xp.asarray(problem.X), xp.asarray(problem.y)
    n2 = xp.sum(v * v, axis=1)
    # The norm with a zero derivative at a zero group (which stays zero nearby).
    norms = xp.where(n2 > 0, xp.sqrt(xp.where(n2 > 0, n2, 1.0)), 0.0)
    pred = xp.sum(signed * (v @ X.T), axis=0)
    objective = 0.5 * xp.sum((pred - y) ** 2) + beta * xp.sum(norms)
    return objective, xp.sum((pred - held_out) ** 2)


@eqx.filter_jit
def _relu_jvp(beta, X, y, patterns, held_out):
    def fn(beta):
        problem = sr.ConvexReLUProblem(X, y, patterns, beta)
        v = sciopt.solve(problem, ADMM, max_steps=100_000).value.v
        return _objective_and_validation(problem, v, held_out)

    return jax.jvp(fn, (beta,), (jnp.ones_like(beta),))


def _structure(problem, v):
    """`(support, active)`: which groups are nonzero and which cone rows of those
    are active, or `None` when a group norm or a slack is too close to the
    threshold to tell (cvxpy's solutions are accurate to about 1e-6)."""
    norms = np.linalg.norm(v, axis=1)
    if np.any((norms > 1e-5) & (norms < 1e-3)):
        return None
    support = norms > 1e-3
    signs = np.asarray(problem.cone_signs)
    slack = (signs * (v @ np.asarray(problem.X).T))[support]
    slack = slack / (1 + norms[support, None])
    if np.any((slack > 1e-5) & (slack < 1e-3)):
        return None
    return support, slack < 1e-5


def _refine(problem, v, structure_masks):
    """Newton steps on the optimality conditions of the program restricted to the
    structure of cvxpy's solution `v` (its nonzero groups, where the norms are
    smooth, and their active cone rows, as equalities): Clarabel's solutions of
    this SOCP are only accurate to about 1e-6 in the predictions (1e-7 relative),
    too little for differences over a step of 1e-3; the refined ones are exact to
    round-off. Returns `None` unless the steps converge with positive multipliers
    on the active rows and the inactive rows and zero groups unchanged."""
    support, active = structure_masks
    X, y = np.asarray(problem.X), np.asarray(problem.y)
    beta = float(problem.beta)
    signed = np.asarray(problem.signed_patterns)  # (2P, n)
    signs = np.asarray(problem.cone_signs)  # (2P, n)
    groups = np.flatnonzero(support)
    if groups.size == 0:
        return np.zeros_like(v)  # exact: every group is zero
    d = X.shape[1]
    feats = [signed[s][:, None] * X for s in groups]  # (n, d) each
    rows = [(k, j) for k, s in enumerate(groups) for j in np.flatnonzero(active[k])]
    G = np.zeros((len(rows), d * len(groups)))
    for r, (k, j) in enumerate(rows):
        G[r, k * d : (k + 1) * d] = signs[groups[k], j] * X[j]
    F = np.concatenate(feats, axis=1)  # (n, d |S|)
    z = v[groups].ravel()

    def gradient(z):
        blocks = z.reshape(-1, d)
        norms = np.linalg.norm(blocks, axis=1, keepdims=True)
        return F.T @ (F @ z - y) + beta * (blocks / norms).ravel()

    def hessian(z):
        blocks = z.reshape(-1, d)
        h = F.T @ F
        for k, b in enumerate(blocks):
            n = np.linalg.norm(b)
            u = b / n
            h[k * d : (k + 1) * d, k * d : (k + 1) * d] += (
                beta * (np.eye(d) - np.outer(u, u)) / n
            )
        return h

    mu = np.linalg.lstsq(G.T, gradient(z), rcond=None)[0] if rows else np.zeros(0)
    for _ in range(20):
        r = np.concatenate([gradient(z) - G.T @ mu, G @ z])
        kkt = np.block([[hessian(z), -G.T], [G, np.zeros((len(rows), len(rows)))]])
        step = np.linalg.lstsq(kkt, -r, rcond=None)[0]
        z, mu = z + step[: z.size], mu + step[z.size :]
    r = np.concatenate([gradient(z) - G.T @ mu, G @ z])
    if not np.max(np.abs(r)) < 1e-11 or np.any(mu <= 1e-8):
        return None
    refined = np.zeros_like(v)
    refined[groups] = z.reshape(-1, d)
    slack = (signs * (refined @ X.T))[support]
    if np.any(slack[~active] <= 1e-8) or np.any(
        np.linalg.norm(refined[groups], axis=1) <= 1e-8
    ):
        return None
    return refined


def _cvxpy_reference(X, y, patterns, beta, held_out):
    """`(objective, validation)` at cvxpy's solution refined on its structure, and
    that structure (`None` where it cannot be told, or the refinement fails)."""
    problem = sr.ConvexReLUProblem(X, y, patterns, beta)
    try:
        _, v = sr.cvxpy_solve(problem, tol=1e-10)
    except RuntimeError as err:  # Clarabel stopped short of its tolerances
        assert "did not reach its tolerances" in str(err)
        return None, None
    structure = _structure(problem, v)
    if structure is None:
        return None, None
    refined = _refine(problem, v, structure)
    if refined is None:
        return None, None
    values = _objective_and_validation(problem, refined, held_out)
    return values, tuple(m.tobytes() for m in structure)


def _check_relu(seed, beta):
    X, y, patterns, held_out = _relu_data(seed)
    refs, structures = {}, set()
    for s in (-2, -1, 0, 1, 2):
        refs[s], structure = _cvxpy_reference(
            X, y, patterns, beta + s * BETA_STEP / 2, held_out
        )
        structures.add(structure)
    # The same sparsity pattern and active cone rows at the five points: the
    # solution map is smooth over [beta - h, beta + h].
    assume(len(structures) == 1 and None not in structures)
    arrays = (jnp.asarray(a) for a in (X, y, patterns, held_out))
    values, derivatives = _relu_jvp(jnp.asarray(beta), *arrays)
    # The solve itself: ADMM (rtol 1e-10) against the refined reference, measured
    # at most 7e-9 relative over 300 draws (260 kept).
    np.testing.assert_allclose(values, refs[0], rtol=1e-7)
    # Measured over the same draws: the objective's derivative at most 3e-7
    # relative from the differences, the validation loss's 3e-6 (ADMM's accuracy;
    # plain central differences at h = 1e-3 are up to 2e-5 off on curved draws).
    for k, rtol in enumerate((1e-6, 2e-5)):
        # Richardson's extrapolation of central differences at h and h/2 (error
        # O(h^4)).
        wide = (refs[2][k] - refs[-2][k]) / (2 * BETA_STEP)
        narrow = (refs[1][k] - refs[-1][k]) / BETA_STEP
        fd = (4 * narrow - wide) / 3
        np.testing.assert_allclose(derivatives[k], fd, rtol=rtol, atol=1e-8)


@settings(max_examples=3, suppress_health_check=[HealthCheck.filter_too_much])
@given(seed=SEEDS, beta=BETAS)
def test_relu_beta_derivatives_match_cvxpy_differences(seed, beta):
    _check_relu(seed, beta)


@pytest.mark.slow
@settings(max_examples=25, suppress_health_check=[HealthCheck.filter_too_much])
@given(seed=SEEDS, beta=BETAS)
def test_relu_beta_derivatives_match_cvxpy_differences_many(seed, beta):
    _check_relu(seed, beta)
