"""Gallery report: a text table for the terminal, `index.md` with figures."""

import math
from pathlib import Path

from ._row import GalleryRow


_COLUMNS = (
    "problem",
    "solver",
    "status",
    "objective",
    "reference",
    "error",
    "iterations",
    "time",
)


def _cell(row: GalleryRow, column: str) -> str:
    value = getattr(row, column)
    if column == "status":
        text = "baseline" if not row.checked else ("ok" if row.passed else "MISS")
        if value not in ("ok", ""):
            text += f" ({value[:24]}...)" if len(value) > 24 else f" ({value})"
        return text
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        if column == "time":
            return f"{value:.2f}s"
        return f"{value:.6g}" if column != "error" else f"{value:.1e}"
    return str(value)


def format_table(rows: list[GalleryRow], markdown: bool = False) -> str:
    """The gallery table as plain text (aligned) or markdown."""
    cells = [[_cell(r, c) for c in _COLUMNS] for r in rows]
    if markdown:
        lines = ["| " + " | ".join(_COLUMNS) + " |", "|" + "---|" * len(_COLUMNS)]
        lines += ["| " + " | ".join(c) + " |" for c in cells]
        return "\n".join(lines)
    widths = [
        max(len(h), *(len(c[i]) for c in cells)) if cells else len(h)
        for i, h in enumerate(_COLUMNS)
    ]
    fmt = "  ".join(f"{{:{w}}}" for w in widths)
    lines = [fmt.format(*_COLUMNS), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*c) for c in cells]
    return "\n".join(lines)


def write_report(rows: list[GalleryRow], out_dir: str | Path, quick: bool) -> Path:
    """Write `out_dir/index.md`: the table, then each problem's notes and figures."""
    out_dir = Path(out_dir)
    n_missed = sum(1 for r in rows if r.checked and not r.passed)
    lines = [
        "# sciopt gallery" + (" (quick)" if quick else ""),
        "",
        f"{len(rows)} runs, {n_missed} missed their reference.",
        "",
        format_table(rows, markdown=True),
        "",
    ]
    seen_figures: set[str] = set()
    by_problem: dict[str, list[GalleryRow]] = {}
    for r in rows:
        by_problem.setdefault(r.problem, []).append(r)
    for problem, prows in by_problem.items():
        notes = [r.note for r in prows if r.note]
        figures = [f for r in prows for f in r.figures if f not in seen_figures]
        if not notes and not figures:
            continue
        lines += [f"## {problem}", ""]
        for note in dict.fromkeys(notes):
            lines += [note, ""]
        for fig in figures:
            seen_figures.add(fig)
            lines += [f"![{problem}]({fig})", ""]
    path = out_dir / "index.md"
    path.write_text("\n".join(lines))
    return path
