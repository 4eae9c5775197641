"""The error metric of space-time solutions."""

import jax.numpy as jnp
from jaxtyping import Array, ArrayLike


def relative_l2(prediction: ArrayLike, reference: ArrayLike) -> Array:
    """Relative L2 error `||prediction - reference||_2 / ||reference||_2` over all
    grid points (the Frobenius norm for `(nt, nx)` arrays).

    **Raises:** `ValueError` for mismatched shapes.
    """
    prediction = jnp.asarray(prediction)
    reference = jnp.asarray(reference)
    if prediction.shape != reference.shape:
        raise ValueError(
            f"`prediction` has shape {prediction.shape} but `reference` has shape "
            f"{reference.shape}."
        )
    return jnp.linalg.norm((prediction - reference).ravel()) / jnp.linalg.norm(
        reference.ravel()
    )
