import jax
import jax.numpy as jnp
import jax.random as jr
import lineax as lx
import numpy as np
import pytest
import sciopt


def _kkt_system(seed, n=6, m=2):
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    hess = q @ np.diag(np.linspace(1.0, 3.0, n)) @ q.T
    jac = rng.normal(size=(m, n))
    kkt = np.block([[hess, jac.T], [jac, np.zeros((m, m))]])
    rhs = rng.normal(size=n + m)
    return kkt, rhs


SKETCHES = [
    sciopt.nlp.RowSketch(rtol=1e-10),
    sciopt.nlp.BlockSketch(block_size=3, rtol=1e-10),
    sciopt.nlp.GaussianSketch(block_size=2, rtol=1e-10),
]


@pytest.mark.parametrize("solver", SKETCHES, ids=lambda s: type(s).__name__)
@pytest.mark.parametrize("matrix_free", [False, True])
def test_sketch_solvers_solve_kkt_systems(solver, matrix_free):
    kkt, rhs = _kkt_system(0)
    matrix = jnp.asarray(kkt)
    if matrix_free:
        operator = lx.FunctionLinearOperator(
            lambda v: matrix @ v, jax.ShapeDtypeStruct((8,), jnp.float64)
        )
    else:
        operator = lx.MatrixLinearOperator(matrix, lx.symmetric_tag)
    sol = lx.linear_solve(operator, jnp.asarray(rhs), solver, throw=False)
    assert sol.result == lx.RESULTS.successful
    # against numpy's lstsq at the precision a 1e-10 relative residual gives on
    # this cond 4.1 matrix (measured: 1.2e-9, 1.1e-9, 3.6e-9 relative error)
    exact = np.linalg.lstsq(kkt, rhs, rcond=None)[0]
    np.testing.assert_allclose(sol.value, exact, rtol=1e-8, atol=1e-10)
    assert np.linalg.norm(kkt @ np.asarray(sol.value) - rhs) <= 1e-10 * np.linalg.norm(
        rhs
    )
    # the default key's sketches: measured 688 (row), 156 (block), 260 (Gaussian)
    # steps, matrix-free or not; the bounds are 10 % above (the block sketch's two
    # residual checks above, 3 steps apart: ceil(8 / 3), one pass over the rows)
    bound = {"RowSketch": 760, "BlockSketch": 162, "GaussianSketch": 286}
    assert 0 < int(sol.stats["num_steps"]) <= bound[type(solver).__name__]


def test_sketch_options_key_warm_start_tolerance_and_cap():
    kkt, rhs = _kkt_system(1)
    operator = lx.MatrixLinearOperator(jnp.asarray(kkt))
    b = jnp.asarray(rhs)
    solver = sciopt.nlp.RowSketch(rtol=1e-8)
    a = lx.linear_solve(operator, b, solver, options={"key": jr.key(1)})
    c = lx.linear_solve(operator, b, solver, options={"key": jr.key(2)})
    assert int(a.stats["num_steps"]) != int(c.stats["num_steps"])  # keyed randomness
    again = lx.linear_solve(operator, b, solver, options={"key": jr.key(1)})
    np.testing.assert_array_equal(a.value, again.value)  # reproducible
    exact = jnp.asarray(np.linalg.solve(kkt, rhs))
    warm = lx.linear_solve(operator, b, solver, options={"y0": exact})
    assert int(warm.stats["num_steps"]) == 0
    loose = lx.linear_solve(operator, b, solver, options={"tolerance": 1e-1})
    tight = lx.linear_solve(operator, b, solver, options={"tolerance": 1e-9})
    assert int(loose.stats["num_steps"]) < int(tight.stats["num_steps"])
    assert float(loose.stats["residual_norm"]) <= 1e-1
    capped = sciopt.nlp.RowSketch(rtol=1e-14, max_steps=16)
    sol = lx.linear_solve(operator, b, capped, throw=False)
    assert sol.result == lx.RESULTS.max_steps_reached
    with pytest.raises(ValueError, match="square"):
        lx.linear_solve(lx.MatrixLinearOperator(jnp.ones((3, 2))), jnp.ones(3), solver)
    with pytest.raises(ValueError, match="block_size"):
        sciopt.nlp.BlockSketch(block_size=0)


def test_full_block_is_exact_in_one_step():
    kkt, rhs = _kkt_system(2)
    solver = sciopt.nlp.BlockSketch(block_size=100, rtol=1e-12, check_every=1)
    sol = lx.linear_solve(
        lx.MatrixLinearOperator(jnp.asarray(kkt)), jnp.asarray(rhs), solver
    )
    assert int(sol.stats["num_steps"]) == 1
    np.testing.assert_allclose(sol.value, np.linalg.solve(kkt, rhs), rtol=1e-9)
    # the default block is 8 rows: exact in one step on 8 rows, not on 9
    for n, one_step in ((6, True), (7, False)):
        kkt, rhs = _kkt_system(2, n=n, m=2)
        sol = lx.linear_solve(
            lx.MatrixLinearOperator(jnp.asarray(kkt)),
            jnp.asarray(rhs),
            sciopt.nlp.BlockSketch(rtol=1e-12, check_every=1, max_steps=1),
            throw=False,
        )
        assert int(sol.stats["block_size"]) == 8
        assert (sol.result == lx.RESULTS.successful) == one_step


def test_recycled_subspace_resolves_near_null_direction():
    # A symmetric system with one tiny eigenvalue: Kaczmarz converges at a rate of
    # about 1e-8 per row along its eigenvector; with that direction recycled as a
    # sketch (the `subspace` option) it converges at the rate of the rest.
    rng = np.random.default_rng(3)
    q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    eigs = np.array([1e-4, 1.0, -1.5, 2.0, 3.0, -2.5])
    kkt = q @ np.diag(eigs) @ q.T
    rhs = rng.normal(size=6)
    operator = lx.MatrixLinearOperator(jnp.asarray(kkt), lx.symmetric_tag)
    solver = sciopt.nlp.RowSketch(rtol=1e-10, max_steps=5_000)
    b = jnp.asarray(rhs)
    plain = lx.linear_solve(operator, b, solver, throw=False)
    assert plain.result == lx.RESULTS.max_steps_reached
    near_null = q[:, :1].T + 1e-6 * rng.normal(size=(1, 6))  # approximately known
    other = rng.normal(size=(1, 6))
    subspace = jnp.asarray(np.concatenate([near_null, other]))
    sol = lx.linear_solve(operator, b, solver, options={"subspace": subspace})
    np.testing.assert_allclose(sol.value, np.linalg.solve(kkt, rhs), rtol=1e-6)
    assert int(sol.stats["num_steps"]) < 1_000
    with pytest.raises(ValueError, match="subspace"):
        lx.linear_solve(operator, b, solver, options={"subspace": jnp.ones((2, 5))})


def test_schur_complement_cg_solves_kkt_systems():
    kkt, rhs = _kkt_system(4, n=7, m=3)
    operator = lx.FunctionLinearOperator(
        lambda v: jnp.asarray(kkt) @ v, jax.ShapeDtypeStruct((10,), jnp.float64)
    )
    solver = sciopt.nlp.SchurComplementCG(rtol=1e-12, primal_size=7)
    sol = lx.linear_solve(operator, jnp.asarray(rhs), solver)
    np.testing.assert_allclose(sol.value, np.linalg.solve(kkt, rhs), rtol=1e-9)
    assert 0 < int(sol.stats["num_steps"]) <= 3 + 5  # m = 3 in exact arithmetic
    by_option = lx.linear_solve(
        operator,
        jnp.asarray(rhs),
        sciopt.nlp.SchurComplementCG(rtol=1e-12),
        options={"primal_size": 7},
    )
    np.testing.assert_allclose(by_option.value, sol.value, rtol=1e-12)
    with pytest.raises(ValueError, match="primal_size"):
        lx.linear_solve(operator, jnp.asarray(rhs), sciopt.nlp.SchurComplementCG())
    # B indefinite: CG breaks down, reported as such (not a silent NaN).
    bad = kkt.copy()
    bad[:7, :7] = -np.eye(7) + 2 * np.diag(np.arange(7) % 2)
    bad_op = lx.MatrixLinearOperator(jnp.asarray(bad))
    out = lx.linear_solve(bad_op, jnp.asarray(rhs), solver, throw=False)
    assert out.result == lx.RESULTS.breakdown


def _lowbias32(x):
    """Wellons' `lowbias32` 32-bit finaliser in Python integers (the published
    constants), the reference for the hash the sketches draw their rows from."""
    mask = 0xFFFFFFFF
    x ^= x >> 16
    x = (x * 0x7FEB352D) & mask
    x ^= x >> 15
    x = (x * 0x846CA68B) & mask
    return x ^ (x >> 16)


def test_counter_hash_and_normals_against_their_definitions():
    from sciopt.nlp._sketch import _key_words, _mix, _random_normal
    from scipy import stats

    words = np.array([0, 1, 2, 0x7FFFFFFF, 0x80000000, 0xDEADBEEF, 0xFFFFFFFF])
    words = np.concatenate([words, np.random.default_rng(5).integers(0, 2**32, 64)])
    mixed = np.asarray(_mix(jnp.asarray(words, jnp.uint32)))
    np.testing.assert_array_equal(mixed, [_lowbias32(int(w)) for w in words])
    # Box-Muller normals: 2e5 draws against N(0, 1) (Kolmogorov-Smirnov; measured
    # p = 0.031, statistic 3.2e-3; the draws are fixed, so the test is too) and
    # their first two moments within about 4.5 standard errors of the sample
    # (2.2e-3 and 3.2e-3; measured mean -2.9e-3, variance 0.9957)
    z = np.asarray(_random_normal(_key_words(jr.key(0)), 3, (200_000,), jnp.float64))
    assert stats.kstest(z, "norm").pvalue > 1e-3
    assert abs(z.mean()) <= 1e-2 and abs(z.var() - 1) <= 1.5e-2


def test_recycled_directions_are_orthonormalised_as_a_pseudo_inverse_would():
    from sciopt.nlp._sketch import _orthonormalise

    rng = np.random.default_rng(6)
    target = rng.normal(size=100)

    def pinv_projection(w):  # W (W^T W)^+ W^T z at the cut-off of `pinv`
        gram_pinv = np.linalg.pinv(w.T @ w, rtol=10 * w.shape[1] * 2.2e-16)
        return w @ gram_pinv @ (w.T @ target)

    # independent columns: Q orthonormal, Q y the projection of the solution z
    # onto span(W) when the right-hand sides are W^T z (as V b = V K z is)
    w = rng.normal(size=(100, 3))
    q, y = _orthonormalise(jnp.asarray(w), jnp.asarray(w.T @ target))
    np.testing.assert_allclose(np.asarray(q).T @ np.asarray(q), np.eye(3), atol=1e-13)
    np.testing.assert_allclose(np.asarray(q) @ y, pinv_projection(w), rtol=1e-11)
    # a second column 3e-7 away from the first (relative to the largest column
    # norm 10: below the cut-off sqrt(10 p eps) = 6.6e-8) is dropped, as pinv
    # drops the Gram matrix's eigenvalue 4.5e-14 (< 10 p eps x 200); kept, it
    # would add the direction e_0 to the projection
    ones = np.ones(100)
    w = np.stack([ones, ones + 3e-7 * np.eye(100)[0]], axis=1)
    q, y = _orthonormalise(jnp.asarray(w), jnp.asarray(w.T @ target))
    assert np.all(np.asarray(q)[:, 1] == 0) and float(y[1]) == 0
    np.testing.assert_allclose(np.asarray(q) @ y, pinv_projection(w), rtol=1e-6)
