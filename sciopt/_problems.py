"""Declarative problem files (`problems/*.toml`) and their loader."""

import dataclasses
import importlib
import keyword
import tomllib
from pathlib import Path
from typing import Any


#: The families a problem table may name (the `sciopt` subpackages that build and
#: solve problems from files).
FAMILIES = ("bilevel", "compose", "nlp", "pde", "prox", "relu")

#: The tasks of the `compose` family (see `sciopt.gallery.compose`).
COMPOSE_TASKS = ("relu_beta", "nlp_batch", "pnp_weight", "pde_coefficient")

# Keys of a table that hold formulas (strings read by `sciopt.symbolic`, never run as
# code), and keys that hold declared names, per family.
_FORMULA_KEYS = {
    "nlp": ("objective", "equalities"),
    "pde": ("equation", "initial", "x", "t", "boundary"),
}
_NAME_KEYS = {"nlp": ("variables", "parameters"), "pde": ("parameters",)}


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
        if self.family not in FAMILIES:
            raise ValueError(
                f"Problem {self.name!r}: unknown family {self.family!r}; the families "
                f"are {', '.join(FAMILIES)}."
            )
        if self.family == "compose":
            raise ValueError(
                f"Problem {self.name!r}: family 'compose' cannot build problems from "
                "files: its tables name a `task` run by `sciopt.gallery.compose`."
            )
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

    `FileNotFoundError` when `path` does not exist or holds no `.toml` file;
    `ValueError` for a file that is not valid TOML, a table without `name`/`family`,
    duplicate names, or no `[[problem]]` table at all.
    """
    path = default_problem_dir() if path is None else Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No problem file or folder {str(path)!r}.")
    files = sorted(path.glob("*.toml")) if path.is_dir() else [path]
    if not files:
        raise FileNotFoundError(f"No problem files (*.toml) in {str(path)!r}.")
    specs: list[ProblemSpec] = []
    seen: dict[str, Path] = {}
    for file in files:
        try:
            with open(file, "rb") as f:
                content = tomllib.load(f)
        except tomllib.TOMLDecodeError as e:
            raise ValueError(f"{file}: not valid TOML ({e}).") from None
        except (OSError, UnicodeDecodeError) as e:
            raise ValueError(f"{file}: cannot be read ({e}).") from None
        tables = content.get("problem", [])
        if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
            raise ValueError(
                f"{file}: `problem` must be a list of tables, written `[[problem]]`."
            )
        for i, table in enumerate(tables):
            for key in ("name", "family"):
                if key not in table:
                    raise ValueError(f"{file}: problem #{i + 1} has no `{key}`.")
                if not isinstance(table[key], str) or not table[key]:
                    raise ValueError(
                        f"{file}: problem #{i + 1}: `{key}` must be a non-empty "
                        f"string, got {table[key]!r}."
                    )
            name = table["name"]
            if name in seen:
                raise ValueError(
                    f"Problem name {name!r} appears in both {seen[name]} and {file}."
                )
            seen[name] = file
            specs.append(ProblemSpec(name, table["family"], dict(table), file))
    if not specs:
        raise ValueError(f"No [[problem]] tables in {str(path)!r}.")
    return specs


def check_spec(spec: ProblemSpec) -> None:
    """Check a problem table before anything runs: a known `family`, a `reference`
    table with its `source`, declared names that are identifiers, and formulas that
    follow the formula grammar (`sciopt.symbolic.parse`; the names they use are
    checked when the problem is built).

    **Raises:**

    `ValueError` naming the file, the problem and the key.
    """
    from .symbolic import check_formula

    where = f"{spec.source}: problem {spec.name!r}"
    if spec.family not in FAMILIES:
        raise ValueError(
            f"{where}: unknown family {spec.family!r}; the families are "
            f"{', '.join(FAMILIES)}."
        )
    reference = spec.data.get("reference")
    if reference is None:
        raise ValueError(
            f"{where} has no key `reference` (a table with the reference values and "
            'their `source`, e.g. reference = { f = 0.0, source = "..." }).'
        )
    if not isinstance(reference, dict) or "source" not in reference:
        raise ValueError(
            f"{where}: key `reference` must be a table with a `source`, got "
            f"{reference!r}."
        )
    if spec.family == "compose" and spec.data.get("task") not in COMPOSE_TASKS:
        raise ValueError(
            f"{where}: key `task` must be one of {', '.join(COMPOSE_TASKS)}, got "
            f"{spec.data.get('task')!r}."
        )
    for key in _NAME_KEYS.get(spec.family, ()):
        names = spec.data.get(key, [])
        if isinstance(names, dict):
            names = list(names)
        if not isinstance(names, list):
            raise ValueError(f"{where}: key `{key}` must be a list of names.")
        for n in names:
            if not (
                isinstance(n, str)
                and n.isidentifier()
                and not n.startswith("__")
                and not keyword.iskeyword(n)
            ):
                raise ValueError(
                    f"{where}: key `{key}`: {n!r} is not a valid name (letters, "
                    "digits and underscores, starting with a letter)."
                )
    for key in _FORMULA_KEYS.get(spec.family, ()):
        if key in spec.data:
            _check_formulas(spec.data[key], f"{where}: key `{key}`", check_formula)


def _check_formulas(value: Any, where: str, check_formula) -> None:
    """Check every string under `value` (a formula, or a list/table of them)."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            try:
                check_formula(v)
            except ValueError as e:
                raise ValueError(f"{where}: {e}") from None
        elif isinstance(v, list):
            stack.extend(v)
        elif isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ValueError(
                f"{where}: expected formulas (strings) or numbers, got {v!r}."
            )


def load_problem(name: str, path: str | Path | None = None):
    """Build the gallery problem called `name` (see `load_problem_specs`)."""
    for spec in load_problem_specs(path):
        if spec.name == name:
            return spec.build()
    raise ValueError(f"No problem named {name!r} in the gallery.")
