"""Gallery runner of `sciopt.pde`: dispatches on the problem table's `kind`.

`kind = "pinn"` problems (PINN vs Lagrangian PINN) are run by `gallery.pinn.run`;
`kind = "hard_constraint"` problems (PI-SC, PI-HC, PI-HC-MoE) by
`gallery.hard_constraints.run`.
"""

import importlib


_KINDS = {"pinn": "pinn", "hard_constraint": "hard_constraints"}


def run(spec, *, quick, out_dir):
    kind = spec.data.get("kind")
    if kind not in _KINDS:
        raise ValueError(
            f"Problem {spec.name!r}: `kind` must be one of {sorted(_KINDS)}, got "
            f"{kind!r}."
        )
    module = importlib.import_module(f"sciopt.gallery.{_KINDS[kind]}")
    return module.run(spec, quick=quick, out_dir=out_dir)
