"""Gallery hook of `sciopt.pde`: dispatches on the problem table's `kind`.

`kind = "pinn"` problems (PINN vs Lagrangian PINN) are run by `_gallery_pinn.run`;
`kind = "hard_constraint"` problems (PI-SC, PI-HC, PI-HC-MoE) by `_gallery_hc.run`.
"""

import importlib


_KINDS = {"pinn": "_gallery_pinn", "hard_constraint": "_gallery_hc"}


def run(spec, *, quick, out_dir):
    kind = spec.data.get("kind")
    if kind not in _KINDS:
        raise ValueError(
            f"Problem {spec.name!r}: `kind` must be one of {sorted(_KINDS)}, got "
            f"{kind!r}."
        )
    module = importlib.import_module(f"sciopt.pde.{_KINDS[kind]}")
    return module.run(spec, quick=quick, out_dir=out_dir)
