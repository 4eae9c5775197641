"""Property tests of the affine hard-constraint solve against cvxpy (Clarabel).

For the heat family (`u_t - nu u_xx = 0`, `u = 0` at both ends, `u_0 = sum_k a_k
sin(k pi x)`), with a drawn instance `a`, viscosity `nu` (passed as `args`) and
collocation key, the weights `layer.solve(a, key, {"nu": nu})` of a
`HardConstraintLayer` (one expert) and of a `MoEHardConstraint` (1 x 2 experts,
`boundary_rows="touching"`) must be cvxpy's minimiser of the documented
least-squares problem of each expert (docs/hard-constraints.md),

    1/2 || [ T (b_t - nu b_xx) w / sqrt(m)                     (PDE rows)
             w_ic (b(t_0, x_j) w - u_0(x_j)) / sqrt(n_ic)      (initial rows)
             w_bc b(t_l, x_0) w / sqrt(n_left)                  (left rows)
             w_bc b(t_l, x_1) w / sqrt(n_right)                 (right rows)
             ridge w ] ||^2,

built here from `predict` alone: the per-basis values and derivatives `b, b_t,
b_xx` are derivatives of `predict` (linear in the weights) by `jax.jacfwd`, at the
layer's collocation points (`constraint_rows(...).pde_t/pde_x`), at the grid's first
time (initial rows) and on both ends (boundary rows), on a grid built by
`np.linspace`; "touching" keeps only the initial/boundary rows on the edges of the
expert's block. The layer's reported residual norm must be the norm of these rows.

`sciopt.pde._hc_solve.qr_least_squares` (the solve behind `method="qr"`) is also
compared with cvxpy directly: least squares for a tall matrix, the least-norm
solution of the (consistent) system for a wide one.
"""

import math

import cvxpy as cp
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from sciopt.pde._hc_solve import qr_least_squares

from .helpers import hc_small_layer


TOL = {"solver": "CLARABEL", "tol_gap_abs": 1e-12, "tol_gap_rel": 1e-12}
TOL |= {"tol_feas": 1e-12}

SEEDS = st.integers(0, 2**16)
NUS = st.floats(0.01, 0.5)
RIDGE, IC_WEIGHT, BC_WEIGHT = 1e-3, 2.0, 0.5


def _layer(kind):
    kw = dict(ridge=RIDGE, ic_weight=IC_WEIGHT, bc_weight=BC_WEIGHT)
    if kind == "moe":
        kw.update(splits=(1, 2), boundary_rows="touching")
    family, layer = hc_small_layer("heat", kind=kind, **kw)
    assert layer.method == "qr"
    return family, layer


# Built once per module: each layer's solve and row construction compile once.
LAYERS = {kind: _layer(kind) for kind in ("layer", "moe")}


@eqx.filter_jit
def _basis_terms(layer, p, key, args):
    """Per-basis values/derivatives from `predict` (linear in the weights)."""
    n, k = layer.basis.num_basis, layer.num_experts

    def basis(t, x):
        def u(w):
            weights = jnp.broadcast_to(w, (k, n))
            return layer.predict(p, weights, t, x, args=args)

        return jax.jacfwd(u)(jnp.zeros(n))

    b_t = jax.vmap(jax.vmap(jax.jacfwd(basis, 0)))
    b_xx = jax.vmap(jax.vmap(jax.jacfwd(jax.jacfwd(basis, 1), 1)))
    b = jax.vmap(basis)
    rows = layer.constraint_rows(p, key, args)
    nt, nx = layer.grid
    (t0, t1), (x0, x1) = layer.problem.t_span, layer.problem.x_span
    tg = jnp.asarray(np.linspace(t0, t1, nt))
    xg = jnp.asarray(np.linspace(x0, x1, nx))
    return {
        "t": b_t(rows.pde_t, rows.pde_x),
        "xx": b_xx(rows.pde_t, rows.pde_x),
        "ic": b(jnp.full(nx, t0), xg),
        "left": b(tg, jnp.full(nt, x0)),
        "right": b(tg, jnp.full(nt, x1)),
        "x": xg,
    }


def _rows_on(layer, expert):
    """Which initial / left / right rows an expert keeps."""
    nt, nx = layer.grid
    if layer.boundary_rows == "all":
        return np.ones(nx, bool), np.ones(nt, bool), np.ones(nt, bool)
    kt, kx = layer.splits
    bi, bj = divmod(expert, kx)
    in_t = np.arange(nt) // (nt // kt) == bi
    in_x = np.arange(nx) // (nx // kx) == bj
    return in_x & (bi == 0), in_t & (bj == 0), in_t & (bj == kx - 1)


def _system(layer, terms, expert, a, nu):
    """The documented least-squares rows of one expert: `(M, r)` with residual
    `M w - r`."""
    duration = layer.problem.t_span[1] - layer.problem.t_span[0]
    ic_on, left_on, right_on = _rows_on(layer, expert)
    x = np.asarray(terms["x"])
    u0 = sum(a[k] * np.sin((k + 1) * np.pi * x) for k in range(a.shape[0]))
    b_t, b_xx = (np.asarray(terms[k][expert]) for k in ("t", "xx"))
    mats = [duration * (b_t - nu * b_xx) / math.sqrt(layer.num_points)]
    rhs = [np.zeros(layer.num_points)]
    if ic_on.any():
        scale = layer.ic_weight / math.sqrt(ic_on.sum())
        mats.append(scale * np.asarray(terms["ic"])[ic_on])
        rhs.append(scale * u0[ic_on])
    for name, on in (("left", left_on), ("right", right_on)):
        if on.any():
            scale = layer.bc_weight / math.sqrt(on.sum())
            mats.append(scale * np.asarray(terms[name])[on])
            rhs.append(np.zeros(on.sum()))
    n = layer.basis.num_basis
    mats.append(layer.ridge * np.eye(n))
    rhs.append(np.zeros(n))
    return np.concatenate(mats), np.concatenate(rhs)


def _check_layer(kind, seed, nu):
    family, layer = LAYERS[kind]
    rng = np.random.default_rng(seed)
    a = rng.normal(size=family.num_params) / np.arange(1, family.num_params + 1)
    key = jr.key(seed)
    args = {"nu": jnp.asarray(nu)}
    p = jnp.asarray(a)
    sol = layer.solve(p, key, args)
    assert np.all(np.asarray(sol.result._value) == 0)
    terms = _basis_terms(layer, p, key, args)
    for expert in range(layer.num_experts):
        mat, rhs = _system(layer, terms, expert, a, nu)
        w_ref = cp.Variable(mat.shape[1])
        prob = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(mat @ w_ref - rhs)))
        prob.solve(**TOL)
        assert prob.status == cp.OPTIMAL
        w_ref = w_ref.value
        w = np.asarray(sol.value[expert])
        norm = np.linalg.norm(mat @ w - rhs)
        # The rows are at least as small at the layer's weights as at cvxpy's, to
        # round-off (measured: never more than 5e-15 relative larger, 150 draws).
        assert norm <= np.linalg.norm(mat @ w_ref - rhs) * (1 + 1e-12)
        # Clarabel's minimiser of least-squares problems of condition number up to
        # 1.6e3: measured at most 2e-8 (relative to the largest weight) from the
        # layer's over 150 draws; the layer's weights are within 2e-13 of numpy's
        # `lstsq`, so that difference is Clarabel's.
        atol = 1e-6 * np.abs(w_ref).max()
        np.testing.assert_allclose(w, w_ref, rtol=0, atol=atol)
        # The reported residual norm is the norm of these rows at the weights.
        np.testing.assert_allclose(sol.stats["residual_norm"][expert], norm, rtol=1e-10)


@pytest.mark.parametrize("kind", ["layer", "moe"])
@settings(max_examples=3)
@given(seed=SEEDS, nu=NUS)
def test_affine_layer_weights_match_cvxpy_least_squares(kind, seed, nu):
    _check_layer(kind, seed, nu)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["layer", "moe"])
@settings(max_examples=25)
@given(seed=SEEDS, nu=NUS)
def test_affine_layer_weights_match_cvxpy_least_squares_many(kind, seed, nu):
    _check_layer(kind, seed, nu)


# -- qr_least_squares ---------------------------------------------------------------


def _check_qr(shape, seed, log_cond):
    rng = np.random.default_rng(seed)
    m, n = shape
    # Singular values spread over `log_cond` decades.
    u, _ = np.linalg.qr(rng.normal(size=(m, m)))
    v, _ = np.linalg.qr(rng.normal(size=(n, n)))
    s = np.logspace(0, -log_cond, min(m, n))
    a = u[:, : s.size] * s @ v[:, : s.size].T
    b = rng.normal(size=m)
    x = np.asarray(qr_least_squares(jnp.asarray(a), jnp.asarray(b)))
    ref = cp.Variable(n)
    if m >= n:
        prob = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(a @ ref - b)))
    else:
        prob = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(ref)), [a @ ref == b])
    prob.solve(**TOL)
    assert prob.status == cp.OPTIMAL
    scale = np.abs(ref.value).max()
    # Measured at most 3e-10 relative off (300 draws per shape, condition numbers
    # up to 1e3): Clarabel's accuracy (QR is within 6e-14 of numpy's `lstsq`).
    np.testing.assert_allclose(x, ref.value, rtol=0, atol=1e-8 * scale)


@pytest.mark.parametrize("shape", [(12, 5), (4, 9)])
@settings(max_examples=4)
@given(seed=SEEDS, log_cond=st.floats(0.0, 3.0))
def test_qr_least_squares_matches_cvxpy(shape, seed, log_cond):
    _check_qr(shape, seed, log_cond)


@pytest.mark.slow
@pytest.mark.parametrize("shape", [(12, 5), (4, 9)])
@settings(max_examples=50)
@given(seed=SEEDS, log_cond=st.floats(0.0, 3.0))
def test_qr_least_squares_matches_cvxpy_many(shape, seed, log_cond):
    _check_qr(shape, seed, log_cond)
