import dataclasses
import math


@dataclasses.dataclass
class GalleryRow:
    """One line of the gallery table: one problem solved by one solver.

    **Attributes:**

    - `problem`, `solver`: names.
    - `status`: the solver's result message, or `"ok"`.
    - `objective`: the objective (or metric) reached.
    - `reference`: the reference value it is compared with (`nan` if none).
    - `error`: the error against the reference, in the measure the family states.
    - `iterations`: solver iterations (or training steps).
    - `time`: wall seconds of the solve (compilation excluded where measured).
    - `passed`: whether the row meets its reference tolerance.
    - `figures`: PNG file names (relative to the report folder).
    - `note`: one line shown under the table (e.g. the reference's source).
    - `checked`: `False` for comparison rows (e.g. a baseline expected to fail) that do
      not count towards the gallery's exit code.
    """

    problem: str
    solver: str
    status: str
    objective: float
    reference: float = math.nan
    error: float = math.nan
    iterations: int = 0
    time: float = math.nan
    passed: bool = True
    figures: list[str] = dataclasses.field(default_factory=list)
    note: str = ""
    checked: bool = True
