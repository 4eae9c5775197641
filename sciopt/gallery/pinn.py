"""Gallery runner for `kind = "pinn"` problems: PINN and Lagrangian PINN side by side.

Table keys (besides those of `sciopt.pde.from_spec`):

- `sweep = {parameter = "c", values = [...], quick_values = [...]}`: optional; one
  pair of rows per value, plus an error-vs-parameter plot.
- `reference = {kind = "convection_diffusion" | "burgers_cole_hopf" |
  "method_of_lines", source = "..."}`.
- `tolerance`, `quick_tolerance`: relative L2 tolerance of the checked LPINN rows;
  `pinn_tolerance` that of the checked PINN rows (default: `tolerance`).
- `pinn_checked_max`: PINN rows of a sweep are checked only when the swept value is
  at most this (larger values are baselines expected to fail); `pinn_checked` (bool)
  does the same without a sweep. Default: PINN rows are unchecked baselines.
- `solvers`: which of `["pinn", "lpinn"]` to run (`quick_solvers` in quick mode).
- `train = {width, depth, steps, points, learning_rate}` and `quick_train = {...}`.
"""

import dataclasses
import math
import time
import types
from pathlib import Path
from typing import Any

import jax
import optax

from .. import fit, FitResult
from ..pde import (
    antiderivative,
    burgers_cole_hopf,
    convection_diffusion_solution,
    from_spec,
    grid,
    LagrangianPINN,
    LagrangianPINNLoss,
    method_of_lines,
    PDE,
    PINN,
    PINNLoss,
    relative_l2,
)
from ._plots import plot_error_curves, plot_solution
from ._row import GalleryRow


_FULL_TRAIN = {
    "width": 50,
    "depth": 4,
    "steps": 2000,
    "points": 1024,
    "learning_rate": 1e-2,
}
_QUICK_TRAIN = {
    "width": 32,
    "depth": 3,
    "steps": 400,
    "points": 512,
    "learning_rate": 1e-2,
}


@dataclasses.dataclass
class TrainResult:
    """One training run: the model, its fit result, its prediction and error."""

    model: Any
    fit: FitResult
    prediction: jax.Array
    error: float
    min_jacobian: float = math.nan
    result_message: str = "ok"


def reference_solution(pde: PDE, kind: str, x, t, args=None) -> jax.Array:
    """The reference `(nt, nx)` for a `reference.kind` of the gallery tables."""
    a = pde.args(args)
    if kind == "convection_diffusion":
        return convection_diffusion_solution(
            pde.initial_value(x, args), t, a["c"], a.get("nu", 0.0), pde.domain
        )
    if kind == "burgers_cole_hopf":
        if pde.initial_formula is None:
            raise ValueError("Cole-Hopf references need a formula initial condition.")
        F = antiderivative(pde.initial_formula, pde.domain.x_min)
        return burgers_cole_hopf(x, t, a["nu"], lambda y: pde.initial_value(y, args), F)
    if kind == "method_of_lines":
        nx = x.shape[0]
        factor = 4
        xf, uf = method_of_lines(
            pde, nx * factor, t, args, order=4 if pde.domain.periodic else 2
        )
        return uf[:, ::factor]
    raise ValueError(
        f"Unknown reference kind {kind!r}: use convection_diffusion, "
        "burgers_cole_hopf or method_of_lines."
    )


def train(
    kind: str,
    pde: PDE,
    x,
    t,
    reference,
    *,
    width: int,
    depth: int,
    steps: int,
    points: int,
    learning_rate: float,
    seed: int = 0,
    args=None,
    lpinn_options: dict | None = None,
    decay: float = 0.9,
    pinn_options: dict | None = None,
) -> TrainResult:
    """Train a `PINN` (`kind="pinn"`) or `LagrangianPINN` (`kind="lpinn"`) with Adam
    (learning rate multiplied by `decay` every 10% of the steps); score it on the
    grid.

    Both get `width` x `depth` hidden layers (the LPINN's characteristic branch has
    depth 2), `points` resampled collocation points per step and 256 initial points.
    `lpinn_options` go to the `LagrangianPINN` constructor, `pinn_options` to the
    `PINN` one (`hard_initial=True` there builds in the initial condition)."""
    key_model, key_fit = jax.random.split(jax.random.key(seed))
    schedule = optax.exponential_decay(
        learning_rate, max(steps // 10, 1), decay, staircase=True
    )
    if kind == "pinn":
        opts = dict(pinn_options or {})
        if opts.pop("hard_initial", False):
            opts["initial"] = lambda x: pde.initial(x, pde.args(args))
        model = PINN(pde.domain, key=key_model, width=width, depth=depth, **opts)
        loss = PINNLoss(pde, num_interior=points, num_initial=256, args=args)
    elif kind == "lpinn":
        model = LagrangianPINN(
            pde,
            key=key_model,
            state_width=width,
            state_depth=depth,
            characteristic_width=width,
            characteristic_depth=2,
            **(lpinn_options or {}),
        )
        loss = LagrangianPINNLoss(pde, num_interior=points, num_initial=256, args=args)
    else:
        raise ValueError(f"`kind` must be 'pinn' or 'lpinn', got {kind!r}.")
    res = fit(
        model,
        loss,
        key=key_fit,
        steps=steps,
        learning_rate=schedule,
        chunk_size=max(min(steps, 250), 1),
        throw=False,
    )
    pred = res.model.predict(x, t)
    err = float(relative_l2(pred, reference))
    out = TrainResult(res.model, res, pred, err)
    if kind == "lpinn":
        from .. import RESULTS

        result, min_jac = res.model.characteristics_result(t)
        out.min_jacobian = float(min_jac)
        if result != RESULTS.successful:
            out.result_message = RESULTS[result]
    if res.diverged:
        out.result_message = "diverged (non-finite loss)"
    return out


def run(spec, *, quick: bool, out_dir: Path) -> list[GalleryRow]:
    data = spec.data
    base = from_spec(spec)
    sweep = data.get("sweep")
    if sweep is not None:
        name = sweep["parameter"]
        values = (
            sweep.get("quick_values", sweep["values"]) if quick else sweep["values"]
        )
        cases = []
        for v in values:
            params = {**data.get("parameters", {}), name: float(v)}
            case_spec = types.SimpleNamespace(
                name=spec.name, data={**data, "parameters": params}
            )
            cases.append((f"{name}={v:g}", from_spec(case_spec), float(v)))
    else:
        cases = [("", base, math.nan)]
    train_cfg = dict(_QUICK_TRAIN if quick else _FULL_TRAIN)
    train_cfg.update(data.get("quick_train" if quick else "train", {}))
    solvers = data.get("quick_solvers" if quick else "solvers", ["pinn", "lpinn"])
    tol = float(data.get("quick_tolerance" if quick else "tolerance", 5e-2))
    pinn_tol = float(data.get("pinn_tolerance", tol))
    pinn_max = data.get("pinn_checked_max")
    ref_cfg = data.get("reference", {})
    ref_kind = ref_cfg.get("kind", "method_of_lines")
    source = ref_cfg.get("source", ref_kind)
    x, t = grid(base.domain, 256, 101)
    rows: list[GalleryRow] = []
    curves: dict[str, list[float]] = {s: [] for s in solvers}
    for label, pde, value in cases:
        ref = reference_solution(pde, ref_kind, x, t)
        for solver in solvers:
            t0 = time.perf_counter()
            tr = train(solver, pde, x, t, ref, **train_cfg)
            elapsed = time.perf_counter() - t0
            curves[solver].append(tr.error)
            if solver == "lpinn":
                checked = True
            elif sweep is None:
                checked = bool(data.get("pinn_checked", False))
            else:
                checked = pinn_max is not None and value <= float(pinn_max)
            row_tol = tol if solver == "lpinn" else pinn_tol
            passed = tr.error <= row_tol and tr.result_message == "ok"
            tag = f"{spec.name}_{label.replace('=', '')}_{solver}".strip("_")
            fig = f"{tag}.png".replace("__", "_")
            plot_solution(
                x,
                t,
                tr.prediction,
                ref,
                out_dir / fig,
                title=f"{spec.name} {label} {solver}: rel. L2 {tr.error:.2e}",
            )
            note = f"reference: {source}; tolerance {row_tol:g}"
            if solver == "lpinn":
                note += f"; min X_xi = {tr.min_jacobian:.3f}"
            if not checked:
                note += "; baseline (expected to fail at large speeds)"
            rows.append(
                GalleryRow(
                    problem=f"{spec.name} {label}".strip(),
                    solver="PINN" if solver == "pinn" else "LagrangianPINN",
                    status=tr.result_message,
                    objective=float(tr.fit.losses[-1])
                    if tr.fit.num_steps
                    else math.nan,
                    reference=0.0,
                    error=tr.error,
                    iterations=tr.fit.num_steps,
                    time=elapsed,
                    passed=bool(passed) if checked else True,
                    figures=[fig],
                    note=note,
                    checked=checked,
                )
            )
    if sweep is not None and len(cases) > 1:
        fig = f"{spec.name}_error_vs_{sweep['parameter']}.png"
        plot_error_curves(
            [v for _, _, v in cases],
            {
                ("PINN" if s == "pinn" else "LagrangianPINN"): e
                for s, e in curves.items()
            },
            out_dir / fig,
            xlabel=sweep["parameter"],
            title=spec.name,
        )
        for row in rows:
            row.figures.append(fig)
    return rows
