"""Randomized Nystrom approximation, preconditioner and Nystrom-PCG (sciopt._nystrom).

Oracles: dense `numpy.linalg.solve` / `eigh`, closed-form derivatives of
`x = (A + mu I)^{-1} b`, finite differences, the effective dimension computed exactly
from the spectrum, and the error bounds of Tropp et al. (2017) that Frangella, Tropp
and Udell (2023) use.
"""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import lineax as lx
import numpy as np
import pytest
import sciopt
from sciopt import (
    nystrom_approximation,
    NystromPCG,
    NystromPreconditioner,
    ShiftedLinearOperator,
)


def _psd(n, eigenvalues, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    a = (q * eigenvalues) @ q.T
    return ((a + a.T) / 2).astype(dtype)


def _poly(n, p=2.0):
    return np.arange(1, n + 1, dtype=np.float64) ** -p


def _exp(n, rate=0.1):
    return np.exp(-rate * np.arange(n, dtype=np.float64))


def _d_eff(eigenvalues, mu):
    return float(np.sum(eigenvalues / (eigenvalues + mu)))


N = 300


@eqx.filter_jit
def _nys_solve(a, b, mu):
    solver = NystromPCG(rtol=1e-10, atol=1e-12, max_rank=128, init_rank=8)
    op = ShiftedLinearOperator(lx.MatrixLinearOperator(a), mu)
    sol = lx.linear_solve(op, b, solver, throw=False)
    return sol.value, sol.result, sol.stats


@pytest.mark.parametrize("spectrum", ["poly", "exp"])
def test_solve_matches_dense_and_rank_follows_d_eff(spectrum):
    eig = _poly(N) if spectrum == "poly" else _exp(N, 0.05)
    a = _psd(N, eig, seed=1)
    b = np.random.default_rng(2).standard_normal(N)
    ranks = []
    for mu in (1e-2, 1e-3, 1e-4):
        x, result, stats = _nys_solve(jnp.asarray(a), jnp.asarray(b), jnp.asarray(mu))
        assert result == lx.RESULTS.successful
        ref = np.linalg.solve(a + mu * np.eye(N), b)
        err = np.linalg.norm(np.asarray(x) - ref) / np.linalg.norm(ref)
        assert err < 1e-6, (spectrum, mu, err)
        ranks.append(int(stats["rank"]))
        # The adaptive rule stops at lam_l <= 10 mu unless it hit max_rank.
        assert float(stats["lam_l_over_mu"]) <= 10.0 or ranks[-1] == 128
    # Smaller mu, larger effective dimension, larger (or equal) adaptive rank.
    assert ranks == sorted(ranks) and ranks[0] < ranks[-1], ranks


@eqx.filter_jit
def _pcg_steps(a, b, mu, u, lam):
    """CG on (A + mu I) x = b preconditioned by P^{-1}(u, lam, mu); u = 0: plain CG."""
    op = lx.TaggedLinearOperator(
        ShiftedLinearOperator(lx.MatrixLinearOperator(a), mu),
        lx.positive_semidefinite_tag,
    )
    precond = NystromPreconditioner(u, lam, mu)
    cg = lx.CG(rtol=1e-8, atol=1e-12, max_steps=2000)
    sol = lx.linear_solve(op, b, cg, options={"preconditioner": precond}, throw=False)
    return sol.value, sol.stats["num_steps"]


# Slow (about 20 s): a measurement of the papers' effective-dimension behaviour; the
# default run keeps the solver's accuracy and its jit/vmap/grad/float32 tests.
@pytest.mark.slow
def test_iterations_flat_in_condition_number_at_twice_d_eff():
    """Frangella et al. Thm 5.1: l = 2 ceil(1.5 d_eff) + 1 gives E[kappa_P] < 28,
    so PCG's iteration count does not grow with kappa(A + mu I); plain CG's does."""
    n = 400
    eig = _poly(n, 4.0)
    a = _psd(n, eig, seed=3)
    b = np.random.default_rng(4).standard_normal(n)
    top = n
    pcg_steps, cg_steps = [], []
    for mu in (1e-4, 1e-6, 1e-8):
        d_eff = _d_eff(eig, mu)
        rank = min(2 * math.ceil(1.5 * d_eff) + 1, n)
        u, lam = nystrom_approximation(jnp.asarray(a), rank, jr.key(5))
        u_pad = jnp.pad(u, ((0, 0), (0, top - rank)))
        lam_pad = jnp.pad(lam, (0, top - rank))
        mu = jnp.asarray(mu)
        x, steps = _pcg_steps(jnp.asarray(a), jnp.asarray(b), mu, u_pad, lam_pad)
        ref = np.linalg.solve(a + mu * np.eye(n), b)
        assert np.linalg.norm(np.asarray(x) - ref) / np.linalg.norm(ref) < 1e-5
        pcg_steps.append(int(steps))
        zeros = jnp.zeros_like(u_pad), jnp.zeros_like(lam_pad)
        _, steps0 = _pcg_steps(jnp.asarray(a), jnp.asarray(b), mu, *zeros)
        cg_steps.append(int(steps0))
        # The preconditioned condition number itself (dense numpy).
        p_inv = np.asarray(NystromPreconditioner(u, lam, mu).as_matrix())
        w, v = np.linalg.eigh(p_inv)
        half = (v * np.sqrt(w)) @ v.T
        ev = np.linalg.eigvalsh(half @ (a + mu * np.eye(n)) @ half)
        assert ev[-1] / ev[0] < 28, (mu, ev[-1] / ev[0])
    # kappa(A + mu I) grows 10^4 -> 10^8: plain CG's count grows, PCG's stays flat.
    assert max(pcg_steps) <= 1.5 * min(pcg_steps) + 5, pcg_steps
    assert cg_steps[-1] > 3 * cg_steps[0], cg_steps
    assert all(5 * p < c for p, c in zip(pcg_steps[1:], cg_steps[1:])), (
        pcg_steps,
        cg_steps,
    )


def test_pcg_far_fewer_iterations_than_cg_exponential_spectrum():
    n = 400
    eig = _exp(n, 0.1)
    a = _psd(n, eig, seed=6)
    b = np.random.default_rng(7).standard_normal(n)
    mu = jnp.asarray(1e-5)  # kappa(A + mu I) = 1e5, d_eff(mu) = 111
    assert 100 < _d_eff(eig, 1e-5) < 120
    u, lam = nystrom_approximation(jnp.asarray(a), 150, jr.key(8))
    u_pad = jnp.pad(u, ((0, 0), (0, n - u.shape[1])))
    lam_pad = jnp.pad(lam, (0, n - u.shape[1]))
    _, pcg = _pcg_steps(jnp.asarray(a), jnp.asarray(b), mu, u_pad, lam_pad)
    zeros = jnp.zeros_like(u_pad), jnp.zeros_like(lam_pad)
    _, cg = _pcg_steps(jnp.asarray(a), jnp.asarray(b), mu, *zeros)
    assert 10 * int(pcg) < int(cg), (int(pcg), int(cg))


def test_approximation_error_within_bound():
    """Tropp, Yurtsever, Udell, Cevher (2017), used by Frangella et al. (Lemma A.1):
    E||A - A_nys||_* <= (1 + k / (l - k - 1)) sum_{j>k} lam_j, and
    E||A - A_nys|| <= (1 + 2k/(p-1)) lam_{k+1} + 2 e^2 l/(p^2-1) sum_{j>k} lam_j,
    l = k + p; and never better than the best rank-l error."""
    n, rank = 300, 40
    eig = _poly(n, 2.0)
    a = _psd(n, eig, seed=9)
    tail = np.concatenate([np.cumsum(eig[::-1])[::-1], [0.0]])  # tail[k] = sum_{j>k}
    trace_bound = min((1 + k / (rank - k - 1)) * tail[k] for k in range(1, rank - 1))
    spec_bound = min(
        (1 + 2 * k / (p - 1)) * eig[k] + 2 * math.e**2 * rank / (p**2 - 1) * tail[k]
        for k in range(1, rank - 1)
        for p in [rank - k]
        if p >= 2
    )
    trace_errs, spec_errs = [], []
    for seed in range(5):
        u, lam = nystrom_approximation(jnp.asarray(a), rank, jr.key(seed))
        u, lam = np.asarray(u), np.asarray(lam)
        assert np.allclose(u.T @ u, np.eye(rank), atol=1e-10)
        err = a - (u * lam) @ u.T
        e = np.linalg.eigvalsh((err + err.T) / 2)
        assert e[0] > -1e-10  # 0 <= A_nys <= A
        trace_errs.append(np.trace(err))
        spec_errs.append(e[-1])
        # Best rank-l errors (eigendecomposition): no rank-l approximation does better.
        assert np.trace(err) >= tail[rank] * (1 - 1e-8)
        assert e[-1] >= eig[rank] * (1 - 1e-8)
    assert np.mean(trace_errs) <= trace_bound, (np.mean(trace_errs), trace_bound)
    assert np.mean(spec_errs) <= spec_bound, (np.mean(spec_errs), spec_bound)


def test_float32_low_rank_sketch_stays_psd_and_solves():
    """A rank-10 operator sketched at rank 60 in float32: the core Omega^T A Omega is
    singular, the shift keeps it positive definite; eigenvalues match numpy's."""
    n = 200
    eig = np.zeros(n)
    eig[:10] = np.logspace(0, -2, 10)
    a32 = _psd(n, eig, seed=10, dtype=np.float32)
    u, lam = nystrom_approximation(jnp.asarray(a32), 60, jr.key(11))
    assert u.dtype == jnp.float32 and lam.dtype == jnp.float32
    lam = np.asarray(lam)
    assert np.all(np.isfinite(lam)) and np.all(lam >= 0)
    np.testing.assert_allclose(lam[:10], eig[:10], rtol=1e-3)
    assert np.all(lam[10:] < 1e-4)
    # Solve a regularised float32 system end to end.
    mu = np.float32(1e-2)  # kappa = 100: float32 reaches rtol 1e-4
    a32 = _psd(n, _exp(n, 0.05), seed=12, dtype=np.float32)
    b32 = np.random.default_rng(13).standard_normal(n).astype(np.float32)
    solver = NystromPCG(rtol=1e-4, atol=1e-6, max_rank=64)
    op = ShiftedLinearOperator(lx.MatrixLinearOperator(jnp.asarray(a32)), mu)
    sol = lx.linear_solve(op, jnp.asarray(b32), solver)
    assert sol.value.dtype == jnp.float32
    ref = np.linalg.solve(a32.astype(np.float64) + 1e-2 * np.eye(n), b32)
    err = np.linalg.norm(np.asarray(sol.value) - ref) / np.linalg.norm(ref)
    assert err < 1e-3, err


def test_grad_wrt_rhs_and_mu():
    n = 120
    eig = _poly(n, 2.0)
    a = jnp.asarray(_psd(n, eig, seed=14))
    rng = np.random.default_rng(15)
    b0 = jnp.asarray(rng.standard_normal(n))
    w = jnp.asarray(rng.standard_normal(n))
    solver = NystromPCG(rtol=1e-12, atol=1e-14, rank=32)

    @jax.jit
    def f(b, mu):
        op = ShiftedLinearOperator(lx.MatrixLinearOperator(a), mu)
        return jnp.dot(w, lx.linear_solve(op, b, solver).value)

    mu0 = 1e-3
    gb, gmu = jax.grad(f, argnums=(0, 1))(b0, mu0)
    m = np.asarray(a) + mu0 * np.eye(n)
    # Closed forms: d/db = M^{-1} w, d/dmu = -w^T M^{-2} b.
    mw = np.linalg.solve(m, np.asarray(w))
    np.testing.assert_allclose(gb, mw, rtol=1e-7, atol=1e-9)
    mb = np.linalg.solve(m, np.asarray(b0))
    np.testing.assert_allclose(gmu, -mw @ mb, rtol=1e-7)
    # Finite differences.
    h = 1e-7
    fd_mu = (f(b0, mu0 + h) - f(b0, mu0 - h)) / (2 * h)
    np.testing.assert_allclose(gmu, fd_mu, rtol=1e-5)
    e = jnp.zeros(n).at[3].set(1.0)
    fd_b = (f(b0 + 1e-4 * e, mu0) - f(b0 - 1e-4 * e, mu0)) / 2e-4
    np.testing.assert_allclose(gb[3], fd_b, rtol=1e-6)


def test_jit_vmap_and_pytree_operator():
    n = 150
    eig = _exp(n, 0.08)
    a = _psd(n, eig, seed=16)
    rng = np.random.default_rng(17)
    bs = rng.standard_normal((3, n))
    mus = np.array([1e-2, 1e-3, 1e-4])
    solver = NystromPCG(rtol=1e-10, atol=1e-12, max_rank=64)

    def solve(b, mu):
        op = ShiftedLinearOperator(lx.MatrixLinearOperator(jnp.asarray(a)), mu)
        return lx.linear_solve(op, b, solver).value

    xs = jax.jit(jax.vmap(solve))(jnp.asarray(bs), jnp.asarray(mus))
    for b, mu, x in zip(bs, mus, xs):
        ref = np.linalg.solve(a + mu * np.eye(n), b)
        assert np.linalg.norm(np.asarray(x) - ref) / np.linalg.norm(ref) < 1e-7
    # A pytree-structured operator (a 2-D variable, like relu's (d, P) blocks),
    # with mu given as the solver's field.
    shape = (15, 10)
    struct = jax.ShapeDtypeStruct(shape, jnp.float64)
    a_j = jnp.asarray(a)
    op = lx.FunctionLinearOperator(
        lambda v: (a_j @ v.reshape(-1)).reshape(shape), struct
    )
    b = jnp.asarray(bs[0]).reshape(shape)
    sol = lx.linear_solve(op, b, NystromPCG(rtol=1e-10, atol=1e-12, mu=1e-4, rank=40))
    ref = np.linalg.solve(a + 1e-4 * np.eye(n), bs[0]).reshape(shape)
    np.testing.assert_allclose(sol.value, ref, rtol=1e-6, atol=1e-8)
    assert int(sol.stats["rank"]) == 40


def test_throw_false_reports_max_steps_and_throw_raises():
    n = 100
    a = jnp.asarray(_psd(n, _poly(n, 2.0), seed=18))
    b = jnp.asarray(np.random.default_rng(19).standard_normal(n))
    op = ShiftedLinearOperator(lx.MatrixLinearOperator(a), 1e-8)
    solver = NystromPCG(rtol=1e-12, atol=1e-14, rank=4, max_steps=2)
    sol = lx.linear_solve(op, b, solver, throw=False)
    assert sol.result == lx.RESULTS.max_steps_reached
    with pytest.raises(eqx.EquinoxRuntimeError):
        lx.linear_solve(op, b, solver, throw=True)


def test_bad_arguments():
    a = jnp.eye(10)
    with pytest.raises(ValueError, match="rank"):
        NystromPCG(rtol=1e-6, atol=1e-6, rank=0)
    with pytest.raises(ValueError, match="init_rank"):
        NystromPCG(rtol=1e-6, atol=1e-6, init_rank=64, max_rank=32)
    with pytest.raises(ValueError, match="mu"):
        NystromPCG(rtol=1e-6, atol=1e-6, mu=-1.0)
    with pytest.raises(ValueError, match="rtol"):
        NystromPCG(rtol=-1.0, atol=1e-6)
    with pytest.raises(ValueError, match="rank"):
        lx.linear_solve(
            lx.MatrixLinearOperator(a), jnp.ones(10), NystromPCG(1e-6, 1e-6, rank=11)
        )
    with pytest.raises(ValueError, match="rank"):
        nystrom_approximation(a, 0, jr.key(0))
    with pytest.raises(ValueError, match="square"):
        nystrom_approximation(jnp.ones((3, 4)), 2, jr.key(0))
    with pytest.raises(ValueError, match="square"):
        ShiftedLinearOperator(lx.MatrixLinearOperator(jnp.ones((3, 4))), 1.0)
    with pytest.raises(ValueError, match="shift"):
        ShiftedLinearOperator(lx.MatrixLinearOperator(a), jnp.ones(2))


def test_exported():
    assert sciopt.NystromPCG is NystromPCG
    assert isinstance(NystromPCG(1e-6, 1e-6), lx.AbstractLinearSolver)
