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


@pytest.fixture(scope="module", autouse=True)
def _free_compiled_programs():
    """Drop each test module's compiled programs when the module is done.

    Every loaded XLA:CPU executable keeps memory mappings for its code; a test worker
    that keeps all of the suite's programs reaches the kernel's limit on mappings per
    process (`vm.max_map_count`, 65530 by default) and is killed in the middle of a
    test ("LLVM compilation error: Cannot allocate memory"). Programs are rarely
    shared across test modules, and the persistent compilation cache reloads them.
    """
    yield
    jax.clear_caches()


@pytest.fixture
def getkey():
    """Fresh, deterministic keys: `getkey()` returns a new key each call."""
    key = [jr.key(0)]

    def _getkey():
        key[0], sub = jr.split(key[0])
        return sub

    return _getkey
