"""Plots of the PDE gallery rows (matplotlib stays out of the solver packages)."""

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from jaxtyping import ArrayLike


def plot_solution(
    x: ArrayLike,
    t: ArrayLike,
    prediction: ArrayLike,
    reference: ArrayLike,
    path: str | Path,
    *,
    title: str = "",
) -> Path:
    """Save a PNG with three panels: prediction, reference and absolute error, each
    an image over `(x, t)` from `(nt, nx)` arrays. Returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x, t = np.asarray(x), np.asarray(t)
    pred, ref = np.asarray(prediction), np.asarray(reference)
    extent = (x.min(), x.max(), t.min(), t.max())
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), constrained_layout=True)
    vmin, vmax = ref.min(), ref.max()
    panels = (
        ("prediction", pred, "RdBu_r", vmin, vmax),
        ("reference", ref, "RdBu_r", vmin, vmax),
        ("|error|", np.abs(pred - ref), "viridis", None, None),
    )
    for ax, (name, data, cmap, lo, hi) in zip(axes, panels):
        im = ax.imshow(
            data,
            origin="lower",
            aspect="auto",
            extent=extent,
            cmap=cmap,
            vmin=lo,
            vmax=hi,
        )
        ax.set_title(name)
        ax.set_xlabel("x")
        ax.set_ylabel("t")
        fig.colorbar(im, ax=ax)
    if title:
        fig.suptitle(title)
    path = Path(path)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_error_curves(
    values: Sequence[float],
    errors: dict[str, Sequence[float]],
    path: str | Path,
    *,
    xlabel: str = "c",
    title: str = "",
) -> Path:
    """Save a log-scale plot of errors (one curve per label in `errors`) against
    `values` (e.g. the convection speed). Returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.6), constrained_layout=True)
    for label, errs in errors.items():
        ax.semilogy(values, errs, "o-", label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("relative L2 error")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    if title:
        ax.set_title(title)
    path = Path(path)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_panels(path, t, x, panels) -> None:
    """Save images of `(title, u)` panels, `u` of shape `(nt, nx)` on the grid `t`
    x `x`, side by side with one colour scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 2.8))
    extent = (float(x[0]), float(x[-1]), float(t[-1]), float(t[0]))
    vmin = min(float(np.min(u)) for _, u in panels)
    vmax = max(float(np.max(u)) for _, u in panels)
    for ax, (title, u) in zip(np.atleast_1d(axes), panels):
        im = ax.imshow(u, aspect="auto", extent=extent, vmin=vmin, vmax=vmax)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("x")
    np.atleast_1d(axes)[0].set_ylabel("t")
    fig.colorbar(im, ax=axes, shrink=0.8)
    fig.savefig(path, dpi=80)
    plt.close(fig)
