"""Learned proximal networks on a 1-D Laplacian prior.

x ~ Laplace(0, 1) and y = x + N(0, 1). The MAP denoiser is the soft-threshold at 1;
training with the proximal matching loss recovers it (and its regulariser |x|), while
the l2 loss learns the posterior mean. Run: `python examples/prox_laplacian.py`
(the gallery's quick schedule; `main(quick=False)` runs the full one).
"""

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import sciopt
import sciopt.prox as sp
from sciopt.datasets import laplace_sampler, laplacian_stages, soft_threshold


jax.config.update("jax_enable_x64", True)


def main(quick=True):
    grid = np.linspace(-4, 4, 161)
    for kind in ("l2", "proximal_matching"):
        lpn = sp.LearnedProximalNetwork(
            sp.ICNN("scalar", 50, 4, key=jr.key(0), beta=10.0)
        )
        res = sp.fit_lpn(
            lpn,
            sigma=1.0,
            stages=laplacian_stages(kind, quick=quick),
            key=jr.key(1),
            sampler=laplace_sampler(500 if quick else 2000, symmetric=True),
            antithetic=True,
        )
        f = np.asarray(jax.vmap(lambda y: res.model(y))(jnp.asarray(grid)))
        rms = np.sqrt(np.mean((f - soft_threshold(grid, 1.0)) ** 2))
        # R(x) is an inner solve: a sciopt.Solution whose value is R(x)
        r = res.model.regularizer(jnp.asarray(2.0), throw=False)
        r0 = res.model.regularizer(jnp.asarray(0.0))
        print(
            f"{kind}: {res.num_steps} steps, RMS distance to the soft-threshold "
            f"{rms:.3f}, R(2) - R(0) = {float(r.value - r0.value):.3f} (|x| gives 2), "
            f"inversion converged: {bool(r.result == sciopt.RESULTS.successful)}"
        )


if __name__ == "__main__":
    main()
