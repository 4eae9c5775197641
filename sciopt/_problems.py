"""Declarative problem files (`problems/*.toml`) and their loader."""

import dataclasses
import importlib
import tomllib
from pathlib import Path
from typing import Any


@dataclasses.dataclass(frozen=True)
class ProblemSpec:
    """One `[[problem]]` table of a problem file.

    **Attributes:**

    - `name`: unique problem name.
    - `family`: the sciopt subpackage that builds and solves it (`nlp`, `relu`, ...).
    - `data`: every key of the table (formulas, sizes, data sources, references...).
    - `source`: the file it came from.
    """

    name: str
    family: str
    data: dict[str, Any]
    source: Path

    @property
    def quick(self) -> bool:
        """Whether the problem runs in `sciopt gallery --quick` (key `quick`, default
        true)."""
        return bool(self.data.get("quick", True))

    def build(self):
        """Build the sciopt problem object, by `sciopt.<family>.from_spec(spec)`."""
        module = importlib.import_module(f"sciopt.{self.family}")
        if not hasattr(module, "from_spec"):
            raise ValueError(
                f"Problem {self.name!r}: family {self.family!r} cannot build problems "
                "from files."
            )
        return module.from_spec(self)


def default_problem_dir() -> Path:
    """The gallery's problem folder: `./problems` next to the source checkout, or the
    copy bundled in the installed package."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "problems", here / "gallery" / "problems"):
        if candidate.is_dir() and any(candidate.glob("*.toml")):
            return candidate
    raise FileNotFoundError(
        "Could not find the problem gallery: pass a folder with `--problems DIR`."
    )


def load_problem_specs(path: str | Path | None = None) -> list[ProblemSpec]:
    """Read problem specifications from a TOML file or a folder of them.

    **Arguments:**

    - `path`: a `.toml` file, a folder of them, or `None` for the bundled gallery.

    **Returns:**

    A list of `sciopt.ProblemSpec`, in file then table order.

    **Raises:**

    `ValueError` for a table without `name`/`family`, or for duplicate names.
    """
    path = default_problem_dir() if path is None else Path(path)
    files = sorted(path.glob("*.toml")) if path.is_dir() else [path]
    if not files:
        raise FileNotFoundError(f"No problem files (*.toml) in {path}.")
    specs: list[ProblemSpec] = []
    seen: dict[str, Path] = {}
    for file in files:
        with open(file, "rb") as f:
            try:
                content = tomllib.load(f)
            except tomllib.TOMLDecodeError as e:
                raise ValueError(f"{file}: not valid TOML ({e}).") from None
        for i, table in enumerate(content.get("problem", [])):
            for key in ("name", "family"):
                if key not in table:
                    raise ValueError(f"{file}: problem #{i + 1} has no `{key}`.")
            name = table["name"]
            if name in seen:
                raise ValueError(
                    f"Problem name {name!r} appears in both {seen[name]} and {file}."
                )
            seen[name] = file
            specs.append(ProblemSpec(name, table["family"], dict(table), file))
    return specs


def load_problem(name: str, path: str | Path | None = None):
    """Build the gallery problem called `name` (see `load_problem_specs`)."""
    for spec in load_problem_specs(path):
        if spec.name == name:
            return spec.build()
    raise ValueError(f"No problem named {name!r} in the gallery.")
