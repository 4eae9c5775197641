"""Progress meters for solves and training loops.

sciopt reuses diffrax's progress meters: they run on the host through callbacks and
are safe under `jax.jit`, `jax.vmap` and `jax.grad`. `progress_meter(progress)`
normalises the user's `progress=` argument.
"""

import diffrax as dfx


AbstractProgressMeter = dfx.AbstractProgressMeter
NoProgressMeter = dfx.NoProgressMeter
TextProgressMeter = dfx.TextProgressMeter
TqdmProgressMeter = dfx.TqdmProgressMeter


def progress_meter(progress: None | bool | str | AbstractProgressMeter):
    """Turn `progress=` into a progress meter.

    **Arguments:**

    - `progress`: `None` or `False` (no meter), `True` or `"tqdm"` (a tqdm bar),
      `"text"` (plain text), or any `diffrax.AbstractProgressMeter`.

    **Returns:**

    A `diffrax.AbstractProgressMeter`.
    """
    if progress is None or progress is False:
        return NoProgressMeter()
    if progress is True or progress == "tqdm":
        return TqdmProgressMeter()
    if progress == "text":
        return TextProgressMeter()
    if isinstance(progress, AbstractProgressMeter):
        return progress
    raise ValueError(
        "`progress` must be None, a bool, 'tqdm', 'text' or a progress meter, got "
        f"{progress!r}."
    )
