"""ICNNs, learned proximal networks, their regulariser, losses and metrics."""

import equinox as eqx
import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
import sciopt
import sciopt.prox as sp
from hypothesis import given

from .helpers import finite_difference_grad, prox_random_icnn


DIM = 4


def _vector_lpn(alpha=0.1, seed=0):
    return sp.LearnedProximalNetwork(prox_random_icnn(jr.key(seed), DIM, alpha=alpha))


def test_icnn_hessian_psd(getkey):
    alpha = 0.1
    psi = prox_random_icnn(getkey(), DIM, alpha=alpha)
    hess = jax.jit(jax.hessian(lambda x: psi(x)))
    for _ in range(5):
        x = 3 * jr.normal(getkey(), (DIM,))
        h = hess(x)
        np.testing.assert_allclose(h, h.T, atol=1e-10)
        assert np.linalg.eigvalsh(np.asarray(h)).min() >= alpha - 1e-8


def test_icnn_with_quadratic_term_is_convex(getkey):
    psi = sp.ICNN((1, 2, 2), 8, 2, key=getkey(), quadratic=True, beta=3.0)
    psi = prox_perturb(psi, getkey())
    hess = jax.jit(jax.hessian(lambda x: psi(x)))
    for _ in range(3):
        h = hess(jr.normal(getkey(), (1, 2, 2))).reshape(4, 4)
        np.testing.assert_allclose(h, h.T, atol=1e-10)
        assert np.linalg.eigvalsh(np.asarray(h)).min() >= -1e-10
    # At initialisation the prox is close to the identity.
    fresh = sp.LearnedProximalNetwork(sp.ICNN(4, 8, 2, key=getkey(), quadratic=True))
    y = jr.normal(getkey(), (4,))
    assert jnp.linalg.norm(fresh(y) - y) < 0.5 * jnp.linalg.norm(y) + 0.5


def test_conv_icnn_hessian_psd(getkey):
    psi = sp.ConvICNN(1, 4, 2, key=getkey(), alpha=0.05, beta=5.0)
    psi = prox_perturb(psi, getkey())
    x = jr.normal(getkey(), (1, 3, 3))
    h = jax.jit(jax.hessian(lambda x: psi(x)))(x).reshape(9, 9)
    np.testing.assert_allclose(h, h.T, atol=1e-10)
    assert np.linalg.eigvalsh(np.asarray(h)).min() >= 0.05 - 1e-8


def prox_perturb(model, key):
    # Move every parameter randomly so the checks do not rely on the initialisation.
    leaves, tree = jax.tree.flatten(eqx.filter(model, eqx.is_inexact_array))
    keys = jr.split(key, len(leaves))
    new = [x + jr.normal(k, x.shape, x.dtype) for x, k in zip(leaves, keys)]
    return eqx.combine(jax.tree.unflatten(tree, new), model)


_PSI = prox_random_icnn(jr.key(1), DIM, alpha=0.0)
_PSI_JIT = eqx.filter_jit(_PSI)
_CONV_PSI = prox_perturb(sp.ConvICNN(1, 4, 2, key=jr.key(2), beta=5.0), jr.key(3))
_CONV_PSI_JIT = eqx.filter_jit(_CONV_PSI)
_floats = st.floats(-5, 5, allow_nan=False, width=64)


@given(
    a=hnp.arrays(np.float64, (DIM,), elements=_floats),
    b=hnp.arrays(np.float64, (DIM,), elements=_floats),
    t=st.floats(0, 1),
)
def test_icnn_convex_along_segments(a, b, t):
    a, b = jnp.asarray(a), jnp.asarray(b)
    t = jnp.asarray(t)
    mid = _PSI_JIT(t * a + (1 - t) * b)
    chord = t * _PSI_JIT(a) + (1 - t) * _PSI_JIT(b)
    assert mid <= chord + 1e-10 * (1 + jnp.abs(chord))


@given(
    a=hnp.arrays(np.float64, (1, 3, 3), elements=_floats),
    b=hnp.arrays(np.float64, (1, 3, 3), elements=_floats),
    t=st.floats(0, 1),
)
def test_conv_icnn_convex_along_segments(a, b, t):
    a, b = jnp.asarray(a), jnp.asarray(b)
    t = jnp.asarray(t)
    mid = _CONV_PSI_JIT(t * a + (1 - t) * b)
    chord = t * _CONV_PSI_JIT(a) + (1 - t) * _CONV_PSI_JIT(b)
    assert mid <= chord + 1e-10 * (1 + jnp.abs(chord))


def test_hessian_check_detects_negative_hidden_weights(getkey):
    # The same check fails for the network with its hidden weights negated.
    psi = prox_random_icnn(getkey(), DIM, alpha=0.0)

    def act(u):
        return jax.nn.softplus(psi.beta * u) / psi.beta

    def negated(x):
        z = act(psi.first_weight @ x + psi.first_bias)
        for raw, skip, bias in zip(psi.hidden_raw, psi.skip_weights, psi.hidden_biases):
            z = act(-jax.nn.softplus(raw) @ z + skip @ x + bias)
        return jnp.sum(z)

    hess = jax.jit(jax.hessian(negated))
    mins = [
        np.linalg.eigvalsh(np.asarray(hess(jr.normal(getkey(), (DIM,))))).min()
        for _ in range(10)
    ]
    assert min(mins) < -1e-6


def test_prox_monotone_with_symmetric_psd_jacobian(getkey):
    alpha = 0.1
    lpn = _vector_lpn(alpha)
    f = jax.jit(jax.vmap(lambda y: lpn(y)))
    a = 3 * jr.normal(getkey(), (500, DIM))
    b = 3 * jr.normal(getkey(), (500, DIM))
    inner = jnp.sum((f(a) - f(b)) * (a - b), axis=1)
    assert jnp.all(inner >= alpha * jnp.sum((a - b) ** 2, axis=1) - 1e-10)
    jac = jax.jit(jax.jacfwd(lambda y: lpn(y)))
    for _ in range(5):
        j = np.asarray(jac(3 * jr.normal(getkey(), (DIM,))))
        np.testing.assert_allclose(j, j.T, atol=1e-10)
        assert np.linalg.eigvalsh(j).min() >= alpha - 1e-8


def test_regularizer_inversion_recovers_point(getkey):
    lpn = _vector_lpn(0.1)
    for _ in range(3):
        y0 = 2 * jr.normal(getkey(), (DIM,))
        x, value = lpn.prox_and_value(y0)
        ev = eqx.filter_jit(lambda m, x: m.regularizer(x))(lpn, x)
        assert isinstance(ev, sciopt.Solution)
        assert ev.result == sciopt.RESULTS.successful
        np.testing.assert_allclose(ev.aux["preimage"], y0, atol=1e-6)
        np.testing.assert_allclose(ev.value, value, rtol=1e-8, atol=1e-8)
        assert ev.stats["residual"] < 1e-7
        assert 0 < int(ev.stats["num_steps"]) <= ev.stats["max_steps"]


def test_lpn_is_the_exact_prox_of_its_regularizer(getkey):
    # f(y) minimises 1/2 ||y - x||^2 + R(x): check against random perturbations, with
    # R evaluated by inversion.
    lpn = _vector_lpn(0.1)
    y = 2 * jr.normal(getkey(), (DIM,))
    xhat = lpn(y)
    reg = jax.jit(jax.vmap(lambda x: lpn.regularizer(x).value))

    def obj(x):
        return 0.5 * jnp.sum((y[None] - x) ** 2, axis=-1) + reg(x)

    deltas = jnp.concatenate(
        [s * jr.normal(getkey(), (20, DIM)) for s in (1e-2, 1e-1, 1.0)]
    )
    assert jnp.all(obj(xhat[None] + deltas) >= obj(xhat[None]) - 1e-9)


def test_regularizer_reports_failed_inversion():
    # With alpha = 0 the map f is bounded: a far point is outside its range.
    lpn = sp.LearnedProximalNetwork(sp.ICNN("scalar", 8, 2, key=jr.key(0)))
    ev = lpn.regularizer(jnp.array(1e4), max_steps=50, throw=False)
    assert ev.result == sciopt.RESULTS.inversion_failed
    with pytest.raises(Exception, match="Inverting the learned map"):
        lpn.regularizer(jnp.array(1e4), max_steps=50)


def test_regularizer_gradient_matches_finite_differences(getkey):
    lpn = _vector_lpn(0.1)
    x = jr.normal(getkey(), (DIM,))

    @eqx.filter_jit
    def value(x):
        return lpn.regularizer(x).value

    grad = jax.grad(value)(x)
    fd = finite_difference_grad(value, x, eps=1e-5)
    np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-6)
    # Envelope theorem: grad R(x) = y* - x.
    np.testing.assert_allclose(grad, lpn.regularizer(x).aux["preimage"] - x, atol=1e-7)


def test_wrong_input_shapes_raise(getkey):
    lpn = _vector_lpn()
    with pytest.raises(ValueError, match="shape"):
        lpn(jnp.zeros(DIM + 1))
    conv = sp.LearnedProximalNetwork(
        sp.ConvICNN(1, 4, 1, key=getkey(), image_shape=(8, 8))
    )
    with pytest.raises(ValueError, match="image"):
        conv(jnp.zeros((8, 8)))
    with pytest.raises(ValueError, match="built for images"):
        conv(jnp.zeros((1, 6, 6)))
    assert conv(jnp.zeros((1, 8, 8))).shape == (1, 8, 8)
    with pytest.raises(ValueError, match="beta"):
        sp.ICNN(2, 4, 1, key=getkey(), beta=0.0)


def test_float32(getkey):
    psi = sp.ICNN(DIM, 8, 2, key=getkey(), alpha=0.1, dtype=jnp.float32)
    lpn = sp.LearnedProximalNetwork(psi)
    y = jnp.ones(DIM, jnp.float32)
    x = lpn(y)
    assert x.dtype == jnp.float32
    ev = lpn.regularizer(x)
    assert ev.result == sciopt.RESULTS.successful and ev.value.dtype == jnp.float32
    np.testing.assert_allclose(ev.aux["preimage"], y, atol=1e-3)


def test_losses_closed_form():
    pred = jnp.array([[0.0, 1.0], [2.0, 2.0]])
    target = jnp.array([[0.0, 0.0], [0.0, 2.0]])
    np.testing.assert_allclose(sp.l2_loss(pred, target), (1.0 + 4.0) / 2)
    np.testing.assert_allclose(sp.l1_loss(pred, target), (1.0 + 2.0) / 2)
    gamma = 1.5
    expected = np.mean(1 - np.exp(-np.array([1.0, 4.0]) / gamma**2))
    np.testing.assert_allclose(sp.proximal_matching_loss(pred, target, gamma), expected)


def test_schedule_and_loss_validation():
    stages = sp.proximal_matching_schedule(
        0.1, steps_per_stage=10, pretrain_steps=5, num_stages=4
    )
    assert stages[0].loss == "l1"
    np.testing.assert_allclose([s.gamma for s in stages[1:]], [0.8, 0.4, 0.2, 0.1])
    with pytest.raises(ValueError, match="sigma"):
        sp.denoising_loss("l2", sigma=0.0)
    with pytest.raises(ValueError, match="sigma"):
        sp.denoising_loss("l2", sigma=-1.0)
    with pytest.raises(ValueError, match="gamma"):
        sp.denoising_loss("proximal_matching", sigma=0.1)
    lpn = _vector_lpn()
    with pytest.raises(ValueError, match="sigma"):
        sp.fit_lpn(lpn, jnp.zeros((4, DIM)), sigma=0.0, stages=stages, key=jr.key(0))
    with pytest.raises(ValueError, match="non-finite"):
        sp.fit_lpn(
            lpn,
            jnp.full((4, DIM), jnp.nan),
            sigma=0.1,
            stages=stages,
            key=jr.key(0),
        )


def test_psnr_ssim_match_skimage(getkey):
    metrics = pytest.importorskip("skimage.metrics")
    a = jr.uniform(getkey(), (8, 8))
    b = jnp.clip(a + 0.1 * jr.normal(getkey(), (8, 8)), 0, 1)
    np.testing.assert_allclose(
        sp.psnr(a, b),
        metrics.peak_signal_noise_ratio(np.asarray(b), np.asarray(a), data_range=1.0),
        rtol=1e-10,
    )
    ref = metrics.structural_similarity(
        np.asarray(a), np.asarray(b), data_range=1.0, win_size=3
    )
    np.testing.assert_allclose(sp.ssim(a, b), ref, rtol=1e-8)


def test_lpn_and_its_regularizer_against_finite_differences_and_scipy(getkey):
    # f = grad psi: central differences of psi (the ICNN itself, eps 1e-5: error
    # O(eps^2) plus round-off, measured 6e-11). R(x) = max_y <x, y> - psi(y) -
    # ||x||^2 / 2, with the maximum found by scipy's BFGS on psi(y) - <x, y> (its
    # own finite-difference gradients; its maximiser is 2e-7 from the preimage y,
    # the value flat there): measured 7e-15 from `regularizer` and from
    # `prox_and_value` at the preimage.
    import scipy.optimize

    lpn = _vector_lpn(0.1)
    psi = eqx.filter_jit(lpn.potential)
    for _ in range(2):
        y = 2 * jr.normal(getkey(), (DIM,))
        fd = finite_difference_grad(psi, y, eps=1e-5)
        x = lpn(y)
        np.testing.assert_allclose(x, fd, rtol=0, atol=1e-9)
        xn = np.asarray(x)
        res = scipy.optimize.minimize(
            lambda v: float(psi(jnp.asarray(v))) - xn @ v,
            np.zeros(DIM),
            method="BFGS",
            options={"gtol": 1e-10},
        )
        r_scipy = -res.fun - 0.5 * xn @ xn
        x2, value = lpn.prox_and_value(y)
        np.testing.assert_array_equal(x2, x)
        r = lpn.regularizer(x).value
        np.testing.assert_allclose(r, r_scipy, rtol=0, atol=1e-10)
        np.testing.assert_allclose(value, r_scipy, rtol=0, atol=1e-10)
