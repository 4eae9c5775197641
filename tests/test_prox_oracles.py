"""The proximal family against oracles outside the code under test: a hand-written
Adam loop for the proximal-matching schedule, closed forms of the Laplace posterior
and of the best affine denoiser, linear systems solved by NumPy for plug-and-play
fixed points, cvxpy for TV and lasso, and step-count bounds on fixed instances."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
import sciopt
import sciopt.prox as sp


# -- proximal-matching training: the gamma schedule ------------------------------------


class _Affine(eqx.Module):
    """The denoiser `a y + b`: its proximal-matching loss has a closed-form gradient."""

    a: jax.Array
    b: jax.Array

    def __call__(self, y):
        return self.a * y + self.b


_PM_DATA = np.asarray(jr.laplace(jr.key(7), (16,)))


def _adam_on_matching_loss(gammas, learning_rates, a, b):
    """Adam (optax defaults: b1 0.9, b2 0.999, eps 1e-8) on the noiseless proximal
    matching loss `mean_i 1 - exp(-(a x_i + b - x_i)^2 / gamma_k^2)` of `_Affine`,
    with gradients in closed form: written out in NumPy, independently of sciopt and
    optax. Returns the final `(a, b)` and the loss at every step."""
    p, m, v, losses = np.array([a, b]), np.zeros(2), np.zeros(2), []
    for t, (gamma, lr) in enumerate(zip(gammas, learning_rates)):
        d = p[0] * _PM_DATA + p[1] - _PM_DATA
        e = np.exp(-d * d / gamma**2)
        losses.append(np.mean(1 - e))
        gd = 2 * d * e / gamma**2
        g = np.array([np.mean(gd * _PM_DATA), np.mean(gd)])
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        m_hat, v_hat = m / (1 - 0.9 ** (t + 1)), v / (1 - 0.999 ** (t + 1))
        p = p - lr * m_hat / (np.sqrt(v_hat) + 1e-8)
    return p, np.array(losses)


# Three halving stages (gamma 1.6, 0.8, 0.4) with different learning rates.
_PM_STAGES = [
    sp.TrainingStage("proximal_matching", 6, 0.05, 1.6),
    sp.TrainingStage("proximal_matching", 5, 0.03, 0.8),
    sp.TrainingStage("proximal_matching", 7, 0.02, 0.4),
]


@pytest.fixture(scope="module")
def pm_run():
    # sigma = 1e-30 leaves the noisy inputs equal to the clean ones in float64, and
    # the sampler ignores its key: the loss is deterministic, so the hand-written
    # Adam loop must reproduce the training to round-off.
    model = _Affine(jnp.array(0.3), jnp.array(0.2))
    res = sp.fit_lpn(
        model,
        sigma=1e-30,
        stages=_PM_STAGES,
        key=jr.key(0),
        sampler=lambda key: jnp.asarray(_PM_DATA),
        chunk_size=5,
    )
    return np.array([float(res.model.a), float(res.model.b)]), np.asarray(res.losses)


def _per_step(stages, attr):
    return np.concatenate([[getattr(st, attr)] * st.steps for st in stages])


def test_proximal_matching_schedule_follows_its_stages(pm_run):
    # The stages' proximal_matching_schedule gammas halve: 1.6, 0.8, 0.4; every step
    # uses its own stage's gamma and learning rate (a schedule frozen at its first
    # stage fails by 1e-1; one lagging a step behind, as fit_lpn once did, by 1.6e-1).
    sched = sp.proximal_matching_schedule(0.4, steps_per_stage=1, num_stages=3)
    assert [s.gamma for s in sched] == [1.6, 0.8, 0.4]
    params, losses = pm_run
    gammas = _per_step(_PM_STAGES, "gamma")
    lrs = _per_step(_PM_STAGES, "learning_rate")
    p, ref_losses = _adam_on_matching_loss(gammas, lrs, 0.3, 0.2)
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(params, p, rtol=1e-12, atol=1e-14)


def test_proximal_matching_schedule_defaults():
    # The signature's defaults (the authors' image recipe): 4 halving stages at
    # learning rate 1e-4, no pretraining; pretraining is l1 at 1e-3.
    pm = "proximal_matching"
    expected = tuple(sp.TrainingStage(pm, 7, 1e-4, g) for g in (0.8, 0.4, 0.2, 0.1))
    assert sp.proximal_matching_schedule(0.1, steps_per_stage=7) == expected
    with_pretraining = sp.proximal_matching_schedule(
        0.1, steps_per_stage=7, pretrain_steps=3
    )
    assert with_pretraining == (sp.TrainingStage("l1", 3, 1e-3), *expected)


def test_fit_lpn_stops_at_a_diverged_stage():
    # A learning rate of 1e200 sends the l2 stage's loss to inf on its second step:
    # training stops there (the later l1 stage does not run), with the one finite
    # loss, that of the starting model, computed by hand.
    res = sp.fit_lpn(
        _Affine(jnp.array(0.3), jnp.array(0.2)),
        sigma=1e-30,
        stages=[sp.TrainingStage("l2", 6, 1e200), sp.TrainingStage("l1", 4, 1e-3)],
        key=jr.key(0),
        sampler=lambda key: jnp.asarray(_PM_DATA),
        chunk_size=5,
        throw=False,
    )
    assert res.diverged and res.num_steps == 1
    assert 0 < res.compile_time <= res.wall_time  # the one stage's timings
    first = np.mean((0.3 * _PM_DATA + 0.2 - _PM_DATA) ** 2)
    np.testing.assert_allclose(res.losses, [first], rtol=1e-14)


# -- plug-and-play fixed points with a linear denoiser ---------------------------------


class _QuadraticProx(sp.AbstractProx):
    """The prox of `R(x) = 1/2 x^T Q x`, `(I + Q)^{-1} v`: a linear denoiser, so the
    plug-and-play fixed point solves a linear system."""

    q: jax.Array

    def prox_and_value(self, v):
        x = jnp.linalg.solve(jnp.eye(v.size, dtype=v.dtype) + self.q, v)
        return x, 0.5 * x @ self.q @ x


def _linear_pnp_instance():
    rng = np.random.default_rng(3)
    n, m, w = 12, 8, 2.0
    g = rng.normal(size=(n, n))
    q = g @ g.T / n + 0.1 * np.eye(n)  # SPD, not diagonal
    op = sp.gaussian_sensing_operator(jr.key(1), (n,), m)
    b = rng.normal(size=m)
    problem = sp.LinearInverseProblem(op, jnp.asarray(b), data_weight=w)
    return problem, np.asarray(op.as_matrix()), b, w, q


def test_pnp_pgd_linear_denoiser_fixed_point_and_step_count():
    # x = prox_R(x - eta grad D(x)) with R = x^T Q x / 2 means
    # (eta w A^T A + Q) x = eta w A^T b; the objective is D(x) + R(x) / eta.
    problem, a, b, w, q = _linear_pnp_instance()
    eta = 0.5 / (w * np.linalg.norm(a, 2) ** 2)
    solver = sp.PnPProximalGradient(
        _QuadraticProx(jnp.asarray(q)), step_size=eta, rtol=1e-10, atol=1e-12
    )
    sol = sciopt.solve(problem, solver, max_steps=1000)
    x = np.linalg.solve(eta * w * a.T @ a + q, eta * w * a.T @ b)
    np.testing.assert_allclose(sol.value, x, atol=2e-9)  # measured 3.2e-10
    objective = 0.5 * w * np.sum((a @ x - b) ** 2) + 0.5 * x @ q @ x / eta
    np.testing.assert_allclose(sol.stats["objective"], objective, rtol=1e-12)
    # A contraction with a fixed rate: measured 118 steps.
    assert 110 <= int(sol.stats["num_steps"]) <= 125


def test_pnp_admm_linear_denoiser_fixed_point_and_step_count():
    # z = prox_R(x + u) at the fixed point of scaled ADMM minimises D(z) + rho R(z):
    # (w A^T A + rho Q) z = w A^T b; the objective is D(z) + rho R(z).
    problem, a, b, w, q = _linear_pnp_instance()
    rho = 0.5
    solver = sp.PnPADMM(
        _QuadraticProx(jnp.asarray(q)), penalty=rho, rtol=1e-10, atol=1e-12
    )
    sol = sciopt.solve(problem, solver, max_steps=1000)
    z = np.linalg.solve(w * a.T @ a + rho * q, w * a.T @ b)
    np.testing.assert_allclose(sol.value, z, atol=2e-9)  # measured 5.3e-10
    objective = 0.5 * w * np.sum((a @ z - b) ** 2) + rho * 0.5 * z @ q @ z
    np.testing.assert_allclose(sol.stats["objective"], objective, rtol=1e-12)
    # Measured 55 steps; a halved dual step (u <- u + (x - z) / 2) takes 122.
    assert 52 <= int(sol.stats["num_steps"]) <= 60


def test_pnp_pgd_default_step_size_is_one_over_lipschitz():
    # step_size=None: eta = 1 / L with L = 1.02 w ||A||_2^2 (power iteration with a
    # 2% margin; ||A||_2 from NumPy's SVD). The fixed point depends on eta, so the
    # solution is checked with the NumPy eta.
    problem, a, b, w, q = _linear_pnp_instance()
    eta = 1 / (1.02 * w * np.linalg.norm(a, 2) ** 2)
    solver = sp.PnPProximalGradient(
        _QuadraticProx(jnp.asarray(q)), rtol=1e-10, atol=1e-12
    )
    sol = sciopt.solve(problem, solver, max_steps=1000)
    # 50 power iterations on this instance: measured 4e-16 relative.
    np.testing.assert_allclose(sol.stats["step_size"], eta, rtol=1e-10)
    x = np.linalg.solve(eta * w * a.T @ a + q, eta * w * a.T @ b)
    np.testing.assert_allclose(sol.value, x, atol=2e-9)  # measured 3.9e-10
    assert 100 <= int(sol.stats["num_steps"]) <= 115  # measured 107


def _numpy_pnp_steps(a, b, w, q, solver_kind, rtol=1e-5, atol=1e-8):
    """The PnP iteration with the linear denoiser `(I + Q)^{-1}`, written out in NumPy
    (exact linear solves), from the default start `A^T b`, with the documented
    stopping rule. Returns the steps taken and the last iterate."""
    n = q.shape[0]
    prox = np.linalg.inv(np.eye(n) + q)
    z = a.T @ b
    eta = 1 / (1.02 * w * np.linalg.norm(a, 2) ** 2)
    u = np.zeros(n)
    for k in range(1, 2001):
        if solver_kind == "pgd":
            new = prox @ (z - eta * w * a.T @ (a @ z - b))
            changes = [np.linalg.norm(new - z)]
        else:
            x = np.linalg.solve(w * a.T @ a + np.eye(n), w * a.T @ b + (z - u))
            new = prox @ (x + u)
            u = u + x - new
            changes = [np.linalg.norm(x - new), np.linalg.norm(new - z)]
        z = new
        if max(changes) <= atol + rtol * np.linalg.norm(z):
            return k, z
    raise AssertionError("no convergence")


@pytest.mark.parametrize("solver_kind", ["pgd", "admm"])
def test_pnp_default_tolerances_stop_where_numpy_does(solver_kind):
    # Default step size / penalty (1) and tolerances (rtol 1e-5, atol 1e-8): the
    # solver stops on the same step as the NumPy iteration with the documented
    # stopping rule (44 PGD and 28 ADMM steps), at the same iterate (measured 3e-16
    # apart).
    problem, a, b, w, q = _linear_pnp_instance()
    prox = _QuadraticProx(jnp.asarray(q))
    if solver_kind == "pgd":
        solver = sp.PnPProximalGradient(prox)
    else:
        solver = sp.PnPADMM(prox)
    sol = sciopt.solve(problem, solver)
    k, z = _numpy_pnp_steps(a, b, w, q, solver_kind)
    assert int(sol.stats["num_steps"]) == k
    np.testing.assert_allclose(sol.value, z, rtol=0, atol=1e-9)
