"""Running the gallery: every problem file, each with its family's default solvers."""

import importlib
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

import jax

from .._problems import FAMILIES, load_problem_specs, ProblemSpec
from ._row import GalleryRow


def _run_one(
    spec: ProblemSpec, *, quick: bool, out_dir: Path, tracebacks: bool = False
) -> list[GalleryRow]:
    if spec.family not in FAMILIES:
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
        module = importlib.import_module(f"sciopt.gallery.{spec.family}")
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
        if tracebacks:
            traceback.print_exc()
        else:
            message = " ".join(str(e).split())
            print(f"{spec.name}: {type(e).__name__}: {message}", file=sys.stderr)
        return [
            GalleryRow(
                spec.name,
                "-",
                f"error: {type(e).__name__}: {e}",
                float("nan"),
                passed=False,
            )
        ]


def select_specs(
    *,
    quick: bool = False,
    only: Sequence[str] | None = None,
    families: Sequence[str] | None = None,
    problem_dir: str | Path | None = None,
) -> list[ProblemSpec]:
    """The problem tables a gallery run selects (see `run_gallery`).

    **Raises:**

    `FileNotFoundError` when `problem_dir` does not exist or holds no problem file;
    `ValueError` for an unknown family, an `only` entry that matches no problem, or
    a selection that leaves no problem.
    """
    specs = load_problem_specs(problem_dir)
    where = "the gallery" if problem_dir is None else str(problem_dir)
    if families:
        unknown = [f for f in families if f not in FAMILIES]
        if unknown:
            raise ValueError(
                f"Unknown family {unknown[0]!r}; the families are "
                f"{', '.join(FAMILIES)}."
            )
    if only:
        for o in only:
            if not any(s.name.startswith(o) for s in specs):
                raise ValueError(
                    f"No problem matches --only {o!r} in {where}; `sciopt list` "
                    "shows the names."
                )
        specs = [s for s in specs if any(s.name.startswith(o) for o in only)]
    if families:
        specs = [s for s in specs if s.family in families]
    if quick:
        specs = [s for s in specs if s.quick]
    if not specs:
        parts = [f"--only {list(only)}"] if only else []
        parts += [f"--family {list(families)}"] if families else []
        parts += ["--quick (leaves out tables with quick = false)"] if quick else []
        raise ValueError(
            f"No problem matches the selection {' '.join(parts)} in {where}; "
            "`sciopt list` shows the problems and their families."
        )
    return specs


def run_gallery(
    *,
    quick: bool = False,
    only: list[str] | None = None,
    families: list[str] | None = None,
    problem_dir: str | Path | None = None,
    out_dir: str | Path = "gallery-out",
    echo=print,
    specs: Sequence[ProblemSpec] | None = None,
    tracebacks: bool = False,
) -> list[GalleryRow]:
    """Run the problem gallery.

    **Arguments:**

    - `quick`: run only problems marked quick, at their quick sizes.
    - `only`: problem names (or name prefixes) to run.
    - `families`: families to run (e.g. `["nlp"]`).
    - `problem_dir`: folder of problem files (default: the bundled gallery).
    - `out_dir`: where figures and `index.md` go; created once the selection is
      valid.
    - `echo`: called with a line of text as each problem finishes.
    - `specs`: the tables to run, already selected (by `select_specs`); then `only`,
      `families` and `problem_dir` are not used.
    - `tracebacks`: print the traceback of a problem that fails (default: one line).

    **Returns:**

    The table rows.

    **Raises:**

    `ValueError`/`FileNotFoundError` from `select_specs`, before anything is created.
    """
    if specs is None:
        specs = select_specs(
            quick=quick, only=only, families=families, problem_dir=problem_dir
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows: list[GalleryRow] = []
    for spec in specs:
        t0 = time.perf_counter()
        new_rows = _run_one(spec, quick=quick, out_dir=out_dir, tracebacks=tracebacks)
        for row in new_rows:
            mark = "base" if not row.checked else ("ok" if row.passed else "MISS")
            echo(
                f"[{mark:4}] {row.problem:28} {row.solver:22} error={row.error:.2e} "
                f"({time.perf_counter() - t0:.1f}s)"
            )
        rows.extend(new_rows)
        # Drop this problem's compiled programs: every loaded XLA:CPU program keeps
        # memory mappings, and a process that keeps them all reaches the kernel's
        # limit on mappings per process (`vm.max_map_count`, 65530 by default) and is
        # killed. Problems rarely share programs; the persistent cache reloads them.
        jax.clear_caches()
    return rows
