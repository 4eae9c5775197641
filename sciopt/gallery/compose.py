"""Gallery hook for the `compose` family: sciopt solves inside other programs.

Each task differentiates through `sciopt.solve` (or a hard-constraint layer) inside an
outer loop or under `jax.vmap`, and checks the outcome against a reference computed
without sciopt:

- `relu_beta`: tune the weight decay `beta` of a convex ReLU network by hypergradient
  descent on a validation loss, through `sciopt.solve(ConvexReLUProblem, ADMM)`;
  reference: a grid of cvxpy (Clarabel) solves.
- `nlp_batch`: a batch of equality-constrained NLPs under `jax.vmap` with per-instance
  gradients with respect to `args`; reference: scipy SLSQP per instance, and central
  differences of SLSQP solutions. One instance is infeasible: its failure is reported
  in its own result code (the solve runs with `throw=False`), the others are checked.
- `pnp_weight`: learn the data weight of a plug-and-play reconstruction (soft-threshold
  prox) by gradient descent on the reconstruction error; reference: a grid of cvxpy
  lasso solves, compared in PSNR.
- `pde_coefficient`: identify the viscosity `nu` of the heat family from noisy
  observations by differentiating through `sciopt.pde.HardConstraintLayer` with
  `args={"nu": ...}`; reference: the true coefficient.

The functions below are what `examples/compose_*.py` run; each returns a dict of the
figures the gallery row and the docs report.
"""

import math
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from .. import RESULTS, solve
from .._problems import COMPOSE_TASKS as TASKS
from ._row import GalleryRow


# ---------------------------------------------------------------------------
# nlp_batch: vmap over instances, per-instance gradients, SLSQP reference
# ---------------------------------------------------------------------------


def _nlp_objective(x, p):
    return 0.5 * jnp.sum((x - p[:4]) ** 2) + 0.25 * jnp.sum(x**4)


def _nlp_constraints(x, p):
    return jnp.stack([x[0] ** 2 + x[1] + x[2] - p[4], x[0] ** 2 + x[3] ** 2 - p[5]])


_NLP_WEIGHTS = np.arange(1.0, 5.0)  # the downstream loss w^T x*(p)


def nlp_instances(batch: int, seed: int = 0, infeasible: int | None = None):
    """`batch` parameter vectors `p = (a_1..a_4, b, r)`: the problem is
    `min 1/2 ||x - a||^2 + 1/4 sum x^4` s.t. `x_1^2 + x_2 + x_3 = b`,
    `x_1^2 + x_4^2 = r`, feasible iff `r >= 0`; instance `infeasible` gets `r = -1`."""
    rng = np.random.default_rng(seed)
    p = rng.normal(size=(batch, 6))
    p[:, 5] = np.abs(p[:, 5]) + 0.5
    if infeasible is not None:
        p[infeasible, 5] = -1.0
    return p


def nlp_batch(batch: int = 8, seed: int = 0, infeasible: int | None = 3) -> dict:
    """Solve `batch` NLPs in one `jax.vmap`-ed call and take each instance's gradient
    of `w^T x*(p)` with respect to its `p` (implicit differentiation of the KKT
    system). Inner solves run with `throw=False`: an instance that fails (here the
    infeasible one) reports its own result code and does not abort the batch."""
    import lineax as lx

    from ..nlp import AdaSketchNewton, EqualityConstrainedProblem

    problem = EqualityConstrainedProblem(_nlp_objective, _nlp_constraints)
    solver = AdaSketchNewton(linear_solver=lx.LU())
    x0 = jnp.ones(4)
    w = jnp.asarray(_NLP_WEIGHTS)

    def one(p):
        def loss(p):
            sol = solve(problem, solver, x0, args=p, throw=False)
            return w @ sol.value, sol

        grad, sol = jax.grad(loss, has_aux=True)(p)
        return sol, grad

    batched = jax.jit(jax.vmap(one))
    params = jnp.asarray(nlp_instances(batch, seed, infeasible))
    t0 = time.perf_counter()
    sols, grads = jax.block_until_ready(batched(params))
    compile_and_run = time.perf_counter() - t0
    t0 = time.perf_counter()
    sols, grads = jax.block_until_ready(batched(params))
    elapsed = time.perf_counter() - t0
    ok = np.asarray(sols.result == RESULTS.successful)
    ref_x, ref_g = [], []
    for p in np.asarray(params):
        x = slsqp_solve(p)
        ref_x.append(x)
        ref_g.append(slsqp_gradient(p) if x is not None else None)
    x_err = g_err = 0.0
    expected_fail = np.zeros(batch, bool)
    for i in range(batch):
        if ref_x[i] is None:
            expected_fail[i] = True
            continue
        x_err = max(x_err, float(np.max(np.abs(np.asarray(sols.value[i]) - ref_x[i]))))
        g = ref_g[i]
        rel = np.max(np.abs(np.asarray(grads[i]) - g)) / max(1.0, np.max(np.abs(g)))
        g_err = max(g_err, float(rel))
    return {
        "batch": batch,
        "successful": ok,
        "expected_failures": expected_fail,
        "failure_messages": [
            RESULTS[jax.tree.map(lambda a: a[i], sols.result)]
            for i in range(batch)
            if not ok[i]
        ],
        "x_error": x_err,
        "grad_error": g_err,
        "steps": np.asarray(sols.stats["num_steps"]),
        "time": elapsed,
        "compile_time": compile_and_run,
    }


def _np_objective(x, p):
    return 0.5 * np.sum((x - p[:4]) ** 2) + 0.25 * np.sum(x**4)


def _np_constraints(x, p):
    return np.array([x[0] ** 2 + x[1] + x[2] - p[4], x[0] ** 2 + x[3] ** 2 - p[5]])


def slsqp_solve(p, x0=None):
    """The reference: scipy SLSQP (NumPy functions and derivatives written out, no
    JAX), `ftol=1e-14`. `None` when SLSQP reports failure or the constraints are
    violated at its answer (the infeasible instance)."""
    from scipy.optimize import minimize

    p = np.asarray(p, np.float64)
    res = minimize(
        _np_objective,
        np.ones(4) if x0 is None else x0,
        args=(p,),
        jac=lambda x, p: (x - p[:4]) + x**3,
        method="SLSQP",
        constraints=[
            {
                "type": "eq",
                "fun": _np_constraints,
                "args": (p,),
                "jac": lambda x, p: np.array(
                    [[2 * x[0], 1.0, 1.0, 0.0], [2 * x[0], 0.0, 0.0, 2 * x[3]]]
                ),
            }
        ],
        options={"ftol": 1e-14, "maxiter": 500},
    )
    if not res.success or np.max(np.abs(_np_constraints(res.x, p))) > 1e-8:
        return None
    return res.x


def slsqp_gradient(p, eps: float = 1e-2):
    """Five-point central differences of `w^T x*(p)` with SLSQP solutions (each
    warm-started from the solution at `p`, so all follow the same local minimiser)."""
    p = np.asarray(p, np.float64)
    x_mid = slsqp_solve(p)
    g = np.zeros_like(p)
    for j in range(p.size):
        e = np.zeros_like(p)
        e[j] = eps
        f = [_NLP_WEIGHTS @ slsqp_solve(p + k * e, x_mid) for k in (2, 1, -1, -2)]
        g[j] = (-f[0] + 8 * f[1] - 8 * f[2] + f[3]) / (12 * eps)
    return g


# ---------------------------------------------------------------------------
# relu_beta: hypergradient descent on the weight decay of a convex ReLU network
# ---------------------------------------------------------------------------


def _relu_target(X):
    return np.maximum(X @ np.array([1.0, -1.0, 0.5]), 0) - np.maximum(
        X @ np.array([-0.5, 1.0, 1.0]), 0
    )


def relu_data(n: int = 30, n_val: int = 200, num_patterns: int = 8, seed: int = 0):
    """A planted two-neuron regression in 3 dimensions with noise 0.5 (enough that
    the validation loss has an interior best beta): train, validation, patterns."""
    from ..relu import sample_patterns

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    y = _relu_target(X) + 0.5 * rng.normal(size=n)
    Xv = rng.normal(size=(n_val, 3))
    yv = _relu_target(Xv) + 0.5 * rng.normal(size=n_val)
    patterns = sample_patterns(jax.random.key(seed), X, num_patterns)
    return X, y, Xv, yv, patterns


def relu_predict(v, X):
    """Traceable predictions of the network of a convex solution `v` ((2P, d), the
    solution's `value.v`): `sum_i (X v_i)_+ - (X w_i)_+`. This is exactly the
    network `sciopt.relu.to_network` recovers (ReLU is positively homogeneous, so
    `(x^T v/sqrt|v|)_+ sqrt|v| = (x^T v)_+`), without its data-dependent width."""
    v = v.reshape(2, -1, v.shape[-1])
    return jnp.sum(jax.nn.relu(X @ v[0].T) - jax.nn.relu(X @ v[1].T), axis=1)


def relu_beta(
    n: int = 30,
    num_patterns: int = 8,
    steps: int = 15,
    beta0: float = 0.05,
    grid_size: int = 41,
    seed: int = 0,
    solver: str = "admm",
) -> dict:
    """Tune `log beta` by gradient descent on the validation loss `1/2 mean (f(x) -
    y)^2` of the recovered network, differentiating through the convex solve.
    A step that raises the loss is rejected and the step size halved (the validation
    loss is piecewise smooth in beta: groups switch on and off). The inner solve runs
    with `throw=False` and the loop stops, reporting the code, on an inner failure."""
    from ..relu import ADMM, ConvexReLUProblem, cvxpy_solve, InteriorPoint

    X, y, Xv, yv, patterns = relu_data(n, 200, num_patterns, seed)
    inner = ADMM(rtol=1e-8, atol=1e-10) if solver == "admm" else InteriorPoint()

    def val_loss(v):
        return 0.5 * jnp.mean((relu_predict(v, Xv) - yv) ** 2)

    @jax.jit
    def value_and_grad(log_beta):
        def loss(log_beta):
            problem = ConvexReLUProblem(X, y, patterns, jnp.exp(log_beta))
            sol = solve(problem, inner, throw=False)
            return val_loss(sol.value.v), sol

        return jax.value_and_grad(loss, has_aux=True)(log_beta)

    t0 = time.perf_counter()
    log_beta = jnp.log(beta0)
    (best, sol), g = value_and_grad(log_beta)
    lr, inner_steps, history, failure = 4.0, 0, [], None
    for _ in range(steps):
        history.append((float(jnp.exp(log_beta)), float(best)))
        inner_steps += int(sol.stats["num_steps"])
        trial = log_beta - lr * g
        (val, trial_sol), trial_g = value_and_grad(trial)
        if trial_sol.result != RESULTS.successful:
            failure = RESULTS[trial_sol.result]  # reported, not raised
            break
        if val < best:
            log_beta, best, sol, g, lr = trial, val, trial_sol, trial_g, lr * 1.5
        else:
            lr /= 2
    elapsed = time.perf_counter() - t0
    beta = float(jnp.exp(log_beta))
    # reference: cvxpy solves on a log grid, and at the tuned beta
    grid = np.geomspace(1e-3, 10.0, grid_size)
    grid_loss = []
    for b in grid:
        _, v = cvxpy_solve(ConvexReLUProblem(X, y, patterns, float(b)))
        grid_loss.append(float(val_loss(jnp.asarray(v))))
    _, v = cvxpy_solve(ConvexReLUProblem(X, y, patterns, beta))
    tuned_cvxpy = float(val_loss(jnp.asarray(v)))
    k = int(np.argmin(grid_loss))
    return {
        "beta": beta,
        "val_loss": float(best),
        "val_loss_cvxpy": tuned_cvxpy,
        "grid_best_beta": float(grid[k]),
        "grid_best_loss": float(grid_loss[k]),
        "start_loss": history[0][1] if history else float(best),
        "steps": len(history),
        "inner_steps": inner_steps,
        "failure": failure,
        "time": elapsed,
    }


# ---------------------------------------------------------------------------
# pde_coefficient: identify nu of the heat family through a hard-constraint layer
# ---------------------------------------------------------------------------


def pde_coefficient(
    nu_true: float = 0.1,
    nu0: float = 0.03,
    noise: float = 0.01,
    num_basis: int = 16,
    grid: tuple[int, int] = (8, 16),
    steps: int = 15,
    train_steps: int = 0,
    seed: int = 0,
) -> dict:
    """Fit `nu` of the heat family (`u_t = nu u_xx`, sine-series initial condition)
    to noisy observations of the closed-form solution on the layer's grid, by
    gradient descent on `log nu` of the squared misfit of the layer's solution
    `HardConstraintLayer(family, basis)(instance, key, args={"nu": nu})`; the
    gradient flows through the layer's least-squares solve by the implicit function
    theorem. With `train_steps`, the basis is first trained (`sciopt.fit`, `hc_loss`)
    on the family at its default `nu = 0.05`, not at the coefficient sought."""
    import jax.random as jr

    from ..pde import BasisNetwork, HardConstraintLayer, PDEFamily

    family = PDEFamily.preset("heat")
    basis = BasisNetwork(
        num_basis,
        family.num_sensors,
        family.t_span,
        family.x_span,
        width=16,
        depth=2,
        key=jr.key(seed),
    )
    layer = HardConstraintLayer(family, basis, grid=grid, num_points=64)
    if train_steps:  # train the basis on the family at its default nu (0.05)
        from .. import fit
        from ..pde import hc_loss

        train = family.sample(jr.key(seed + 3), 32)
        layer = fit(
            layer,
            hc_loss,
            train,
            key=jr.key(seed + 4),
            steps=train_steps,
            batch_size=4,
        ).model
    instance = family.sample(jr.key(seed + 1), 1)[0]
    exact = family.reference_grid(instance[None], *grid, args={"nu": nu_true})[0]
    rng = np.random.default_rng(seed)
    observed = exact + noise * jnp.asarray(rng.normal(size=exact.shape))

    @jax.jit
    def value_and_grad(log_nu):
        def loss(log_nu):
            u = layer(instance, jr.key(seed + 2), args={"nu": jnp.exp(log_nu)})
            return jnp.mean((u - observed) ** 2)

        return jax.value_and_grad(loss)(log_nu)

    t0 = time.perf_counter()
    log_nu = jnp.log(nu0)
    best, g = value_and_grad(log_nu)
    lr = 0.5 / max(float(jnp.abs(g)), 1e-12)
    for _ in range(steps):
        trial = log_nu - lr * g
        val, trial_g = value_and_grad(trial)
        if val < best:
            log_nu, best, g, lr = trial, val, trial_g, lr * 1.5
        else:
            lr /= 2
    nu = float(jnp.exp(log_nu))
    return {
        "nu": nu,
        "nu_true": nu_true,
        "error": abs(nu - nu_true) / nu_true,
        "misfit": float(best),
        "noise_variance": noise**2,
        "steps": steps,
        "time": time.perf_counter() - t0,
    }


# ---------------------------------------------------------------------------
# gallery hook
# ---------------------------------------------------------------------------


def _row_relu_beta(spec, data, quick):
    r = relu_beta(
        n=int(data.get("n", 30)),
        num_patterns=int(data.get("num_patterns", 8)),
        steps=int(data.get("quick_steps" if quick else "steps", 15)),
        grid_size=int(data.get("grid_size", 41)),
        solver=str(data.get("solver", "admm")),
    )
    tol = float(data.get("rtol", 1e-2))
    error = (r["val_loss_cvxpy"] - r["grid_best_loss"]) / r["grid_best_loss"]
    passed = r["failure"] is None and error <= tol
    return GalleryRow(
        spec.name,
        "ADMM hypergradient" if data.get("solver", "admm") == "admm" else "IP hyper",
        "ok" if r["failure"] is None else r["failure"].split(".")[0],
        r["val_loss_cvxpy"],
        reference=r["grid_best_loss"],
        error=error,
        iterations=r["steps"],
        time=r["time"],
        passed=passed,
        note=(
            f"beta {r['beta']:.4g} (grid best {r['grid_best_beta']:.4g}), validation "
            f"loss {r['start_loss']:.4f} -> {r['val_loss']:.4f}; "
            f"{data['reference']['source']}"
        ),
    )


def _row_nlp_batch(spec, data, quick):
    r = nlp_batch(
        batch=int(data.get("batch", 8)), infeasible=data.get("infeasible", None)
    )
    failed_as_expected = bool(np.all(r["successful"] == ~r["expected_failures"]))
    tol_x, tol_g = float(data.get("x_atol", 1e-6)), float(data.get("grad_rtol", 1e-4))
    passed = failed_as_expected and r["x_error"] <= tol_x and r["grad_error"] <= tol_g
    nfail = int((~r["successful"]).sum())
    return GalleryRow(
        spec.name,
        "vmap AdaSketchNewton(LU)",
        "ok" if failed_as_expected else "unexpected result codes",
        r["grad_error"],
        reference=0.0,
        error=r["grad_error"],
        iterations=int(np.max(r["steps"])),
        time=r["time"],
        passed=passed,
        note=(
            f"{r['batch']} instances, {nfail} reported failed (infeasible, as "
            f"expected: {failed_as_expected}); max |x - x_SLSQP| {r['x_error']:.1e}, "
            f"max rel. gradient error vs SLSQP differences {r['grad_error']:.1e}"
        ),
    )


def _row_pnp_weight(spec, data, quick):
    r = pnp_weight(
        size=int(data.get("size", 10)),
        steps=int(data.get("quick_steps" if quick else "steps", 15)),
        grid_size=int(data.get("grid_size", 41)),
    )
    tol = float(data.get("psnr_atol", 0.05))
    error = r["grid_best_psnr"] - r["psnr_cvxpy"]  # dB below the grid's best
    agree = abs(r["psnr"] - r["psnr_cvxpy"])  # PnP fixed point vs the lasso
    passed = r["failure"] is None and error <= tol and agree <= tol
    return GalleryRow(
        spec.name,
        "PnP-PGD hypergradient",
        "ok" if r["failure"] is None else r["failure"].split(".")[0],
        r["psnr_cvxpy"],
        reference=r["grid_best_psnr"],
        error=error,
        iterations=r["steps"],
        time=r["time"],
        passed=passed,
        note=(
            f"data weight {r['weight']:.4g} (grid best {r['grid_best_weight']:.4g}), "
            f"PSNR {r['start_psnr']:.2f} -> {r['psnr']:.3f} dB (cvxpy lasso at the "
            f"same weight {r['psnr_cvxpy']:.3f} dB); {data['reference']['source']}"
        ),
    )


def _row_pde_coefficient(spec, data, quick):
    r = pde_coefficient(
        nu_true=float(data.get("nu_true", 0.1)),
        noise=float(data.get("noise", 0.01)),
        steps=int(data.get("quick_steps" if quick else "steps", 15)),
        train_steps=int(data.get("quick_train_steps" if quick else "train_steps", 0)),
    )
    tol = float(data.get("rtol", 0.1))
    return GalleryRow(
        spec.name,
        "HardConstraintLayer grad",
        "ok",
        r["nu"],
        reference=r["nu_true"],
        error=r["error"],
        iterations=r["steps"],
        time=r["time"],
        passed=r["error"] <= tol,
        note=(
            f"nu {r['nu']:.4f} (true {r['nu_true']}), misfit {r['misfit']:.2e} "
            f"(noise variance {r['noise_variance']:.0e}); "
            f"{data['reference']['source']}"
        ),
    )


_ROWS = {
    "pde_coefficient": _row_pde_coefficient,
    "relu_beta": _row_relu_beta,
    "nlp_batch": _row_nlp_batch,
    "pnp_weight": _row_pnp_weight,
}


def run(spec, *, quick: bool, out_dir: Path) -> list[GalleryRow]:
    data = spec.data
    task = data.get("task")
    if task not in _ROWS:
        raise ValueError(
            f"Problem {spec.name!r}: `task` must be one of {', '.join(TASKS)}, got "
            f"{task!r}."
        )
    with jax.enable_x64(True):
        return [_ROWS[task](spec, data, quick)]


# ---------------------------------------------------------------------------
# pnp_weight: learn the data weight of a plug-and-play reconstruction
# ---------------------------------------------------------------------------


def pnp_data(size: int = 10, spikes: int = 8, noise: float = 0.05, seed: int = 0):
    """A sparse `(1, size, size)` image (`spikes` pixels in [0.5, 1]), its blurred
    noisy measurement, and the blur operator."""
    from ..prox import blur_operator

    rng = np.random.default_rng(seed)
    x = np.zeros(size * size)
    x[rng.choice(size * size, spikes, replace=False)] = rng.uniform(0.5, 1.0, spikes)
    x = jnp.asarray(x.reshape(1, size, size))
    op = blur_operator((1, size, size), sigma=1.0, size=5, dtype=jnp.float64)
    y = op.mv(x) + noise * jnp.asarray(rng.normal(size=x.shape))
    return x, y, op


def psnr(x, ref):
    """PSNR in dB for images with peak 1."""
    return -10 * jnp.log10(jnp.mean((x - ref) ** 2))


def _lasso_cvxpy(A, y, weight, lam):
    """argmin weight/2 ||A x - y||^2 + lam ||x||_1 by cvxpy (Clarabel)."""
    import cvxpy as cp

    x = cp.Variable(A.shape[1])
    objective = 0.5 * weight * cp.sum_squares(A @ x - y) + lam * cp.norm1(x)
    cp.Problem(cp.Minimize(objective)).solve(solver="CLARABEL")
    return x.value


def pnp_weight(
    size: int = 10,
    threshold: float = 0.01,
    step_size: float = 1.0,
    steps: int = 15,
    weight0: float = 0.3,
    max_weight: float = 1.8,
    max_steps: int = 20_000,
    grid_size: int = 41,
    seed: int = 0,
) -> dict:
    """Learn the data weight `w` of `PnPProximalGradient(SoftThreshold(t),
    step_size=eta)` by gradient descent on `log w` of the squared error to the true
    image, differentiating through the solve (`w` is problem data,
    `LinearInverseProblem(..., data_weight=w)`). The fixed point minimises
    `w/2 ||A x - y||^2 + (t/eta) ||x||_1`, so the reference grid is a lasso solved by
    cvxpy; `w <= max_weight < 2/(eta ||A||^2)` keeps the step convergent."""
    from ..prox import LinearInverseProblem, PnPProximalGradient, SoftThreshold

    x_true, y, op = pnp_data(size, seed=seed)
    inner = PnPProximalGradient(
        SoftThreshold(threshold), step_size=step_size, rtol=1e-9, atol=1e-12
    )
    log_max = math.log(max_weight)

    @jax.jit
    def value_and_grad(log_w):
        def loss(log_w):
            problem = LinearInverseProblem(op, y, data_weight=jnp.exp(log_w))
            sol = solve(problem, inner, throw=False, max_steps=max_steps)
            return jnp.mean((sol.value - x_true) ** 2), sol

        return jax.value_and_grad(loss, has_aux=True)(log_w)

    t0 = time.perf_counter()
    log_w = jnp.log(weight0)
    (best, sol), g = value_and_grad(log_w)
    start = float(best)
    lr, taken, failure = 1.0 / max(float(jnp.abs(g)), 1e-12), 0, None
    for _ in range(steps):
        taken += 1
        trial = jnp.minimum(log_w - lr * g, log_max)
        (val, trial_sol), trial_g = value_and_grad(trial)
        if trial_sol.result != RESULTS.successful:
            failure = RESULTS[trial_sol.result]
            break
        if val < best:
            log_w, best, sol, g, lr = trial, val, trial_sol, trial_g, lr * 1.5
        else:
            lr /= 2
    elapsed = time.perf_counter() - t0
    weight = float(jnp.exp(log_w))
    A = np.asarray(
        jax.jacfwd(lambda v: op.mv(v.reshape(x_true.shape)).ravel())(
            jnp.zeros(x_true.size)
        )
    )
    lam = threshold / step_size
    yv, xt = np.asarray(y).ravel(), np.asarray(x_true).ravel()
    grid = np.geomspace(0.02, max_weight, grid_size)
    grid_psnr = [float(psnr(_lasso_cvxpy(A, yv, w, lam), xt)) for w in grid]
    k = int(np.argmax(grid_psnr))
    return {
        "weight": weight,
        "psnr": float(psnr(sol.value, x_true)),
        "psnr_cvxpy": float(psnr(_lasso_cvxpy(A, yv, weight, lam), xt)),
        "start_psnr": float(-10 * np.log10(start)),
        "grid_best_weight": float(grid[k]),
        "grid_best_psnr": grid_psnr[k],
        "steps": taken,
        "failure": failure,
        "time": elapsed,
    }
