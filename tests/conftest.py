import os

import jax
import jax.random as jr
import pytest
import sciopt
from hypothesis import HealthCheck, settings


# Compiled programs persist across test runs (and xdist workers) in the per-user
# cache folder; SCIOPT_CACHE_DIR=off turns this off, SCIOPT_CACHE_DIR=DIR moves it.
sciopt.enable_compilation_cache()
jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_numpy_dtype_promotion", "strict")

settings.register_profile(
    "ci",
    max_examples=10,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "nightly",
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("SCIOPT_HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def getkey():
    """Fresh, deterministic keys: `getkey()` returns a new key each call."""
    key = [jr.key(0)]

    def _getkey():
        key[0], sub = jr.split(key[0])
        return sub

    return _getkey
