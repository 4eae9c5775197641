"""Linear inverse problems `y = A x + noise` for the plug-and-play solvers."""

import jax
import jax.numpy as jnp
import jax.random as jr
import lineax as lx
import numpy as np
from jaxtyping import Array, Float

from .._misc import check_finite_input
from .._solver import AbstractProblem
from ._prox import check_parameter


class LinearInverseProblem(AbstractProblem):
    """Recover `x` from `y = A x + noise`, with data fidelity
    `D(x) = data_weight / 2 ||A x - y||^2` and a regulariser given by the solver's prox.

    **Arguments:**

    - `operator`: `A`, a `lineax.AbstractLinearOperator` (e.g. from
      `sciopt.prox.blur_operator`); its input structure is the unknown's shape.
    - `measurement`: `y`, shaped like the operator's output.
    - `data_weight`: the weight of the data term (> 0; stored as a JAX array, so new
      values, like new measurements, reuse the compiled solve).
    """

    operator: lx.AbstractLinearOperator
    measurement: Array
    data_weight: Float[Array, ""]

    def __init__(self, operator, measurement, data_weight=1.0):
        if not isinstance(operator, lx.AbstractLinearOperator):
            raise TypeError(
                "`operator` must be a lineax linear operator; wrap a linear function "
                "`fn` with `lineax.FunctionLinearOperator(fn, jax.ShapeDtypeStruct("
                "shape, dtype))`."
            )
        measurement = jnp.asarray(measurement)
        out = operator.out_structure()
        if measurement.shape != out.shape:
            raise ValueError(
                f"`measurement` has shape {measurement.shape}, but the operator maps "
                f"to shape {out.shape}."
            )
        check_finite_input("measurement", measurement)
        # In the operator's dtype, so that every array of the problem shares one
        # dtype (`sciopt.solve` casts `y0` and `args` to it).
        data_weight = jnp.asarray(data_weight, out.dtype)
        check_parameter("data_weight", data_weight, strict=True)
        self.operator = operator
        self.measurement = measurement.astype(out.dtype)
        self.data_weight = data_weight

    @property
    def shape(self) -> tuple[int, ...]:
        return self.operator.in_structure().shape

    def residual(self, x: Array) -> Array:
        return self.operator.mv(x) - self.measurement

    def data_fidelity(self, x: Array) -> Float[Array, ""]:
        """`D(x) = data_weight / 2 ||A x - y||^2`."""
        r = self.residual(x)
        return jnp.asarray(0.5 * self.data_weight, r.dtype) * jnp.vdot(r, r)

    def gradient(self, x: Array) -> Array:
        """`grad D(x) = data_weight A^T (A x - y)`."""
        g = self.operator.transpose().mv(self.residual(x))
        return jnp.asarray(self.data_weight, g.dtype) * g

    def lipschitz(self, num_iters: int = 50) -> Float[Array, ""]:
        """An estimate of the Lipschitz constant `data_weight ||A||^2` of `grad D`, by
        power iteration on `A^T A` (with a 2% safety margin)."""
        struct = self.operator.in_structure()
        v = jr.normal(jr.key(0), struct.shape, struct.dtype)

        def body(_, v):
            w = self.operator.transpose().mv(self.operator.mv(v))
            return w / jnp.linalg.norm(jnp.ravel(w))

        v = jax.lax.fori_loop(0, num_iters, body, v / jnp.linalg.norm(jnp.ravel(v)))
        av = self.operator.mv(v)
        norm2 = jnp.vdot(av, av)
        return jnp.asarray(1.02 * self.data_weight, norm2.dtype) * norm2

    def default_y0(self, args):
        """`A^T y`, the back-projection of the measurement."""
        return self.operator.transpose().mv(self.measurement)

    def check(self, y0, args):
        struct = self.operator.in_structure()
        if jnp.shape(y0) != struct.shape:
            raise ValueError(
                f"`y0` must have the operator's input shape {struct.shape}, got "
                f"{jnp.shape(y0)}."
            )


def add_noise(key, clean: Array, sigma: float) -> Array:
    """`clean + sigma * g` with standard Gaussian `g` (a helper for examples)."""
    if not sigma >= 0:
        raise ValueError(f"`sigma` must be non-negative, got {sigma!r}.")
    clean = jnp.asarray(clean)
    return clean + jnp.asarray(sigma, clean.dtype) * jr.normal(
        key, clean.shape, clean.dtype
    )


def from_spec(spec) -> LinearInverseProblem:
    """Build the inverse problem of a `problems/prox*.toml` table of kind `"digits"`:
    the digit `image_index` of scikit-learn's 8x8 digits, scaled to [0, 1], measured
    by the table's `operator` with Gaussian noise `noise` (seed `seed`)."""
    from ..datasets import digits_problem

    data = spec.data
    if data.get("kind") != "digits":
        raise ValueError(
            f"Problem {spec.name!r}: only tables of kind 'digits' build one problem "
            "object; the Laplacian toy is a training experiment."
        )
    problem, _ = digits_problem(
        operator=data.get("operator", "identity"),
        noise=float(data.get("noise", 0.1)),
        image_index=int(data.get("image_index", 0)),
        seed=int(data.get("seed", 0)),
        blur_sigma=float(data.get("blur_sigma", 1.0)),
        measurement_ratio=float(data.get("measurement_ratio", 0.5)),
        num_angles=int(data.get("num_angles", 4)),
        dtype=np.float64 if jax.config.jax_enable_x64 else np.float32,
    )
    return problem
