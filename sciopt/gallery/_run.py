"""Running the gallery: every problem file, each with its family's default solvers."""

import importlib
import time
import traceback
from pathlib import Path

from .._problems import load_problem_specs, ProblemSpec
from ._row import GalleryRow


def _run_one(spec: ProblemSpec, *, quick: bool, out_dir: Path) -> list[GalleryRow]:
    try:
        module = importlib.import_module(f"sciopt.{spec.family}._gallery")
    except ModuleNotFoundError:
        return [
            GalleryRow(
                spec.name,
                "-",
                f"unknown family {spec.family!r}",
                float("nan"),
                passed=False,
            )
        ]
    try:
        return module.run(spec, quick=quick, out_dir=out_dir)
    except Exception as e:  # a broken problem must not stop the gallery
        traceback.print_exc()
        return [
            GalleryRow(
                spec.name,
                "-",
                f"error: {type(e).__name__}: {e}",
                float("nan"),
                passed=False,
            )
        ]


def run_gallery(
    *,
    quick: bool = False,
    only: list[str] | None = None,
    families: list[str] | None = None,
    problem_dir: str | Path | None = None,
    out_dir: str | Path = "gallery-out",
    echo=print,
) -> list[GalleryRow]:
    """Run the problem gallery.

    **Arguments:**

    - `quick`: run only problems marked quick, at their quick sizes.
    - `only`: problem names (or name prefixes) to run.
    - `families`: families to run (e.g. `["nlp"]`).
    - `problem_dir`: folder of problem files (default: the bundled gallery).
    - `out_dir`: where figures and `index.md` go.
    - `echo`: called with a line of text as each problem finishes.

    **Returns:**

    The table rows.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    specs = load_problem_specs(problem_dir)
    if only:
        specs = [s for s in specs if any(s.name.startswith(o) for o in only)]
        if not specs:
            raise ValueError(f"No problem matches --only {only}.")
    if families:
        specs = [s for s in specs if s.family in families]
    if quick:
        specs = [s for s in specs if s.quick]
    rows: list[GalleryRow] = []
    for spec in specs:
        t0 = time.perf_counter()
        new_rows = _run_one(spec, quick=quick, out_dir=out_dir)
        for row in new_rows:
            mark = "base" if not row.checked else ("ok" if row.passed else "MISS")
            echo(
                f"[{mark:4}] {row.problem:28} {row.solver:22} error={row.error:.2e} "
                f"({time.perf_counter() - t0:.1f}s)"
            )
        rows.extend(new_rows)
    return rows
