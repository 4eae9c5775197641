"""A persistent compilation cache: compiled programs reused across processes."""

import os
from pathlib import Path


_ENV = "SCIOPT_CACHE_DIR"
_OFF = ("", "0", "off", "none", "false")


def default_cache_dir() -> Path:
    """The per-user cache folder: `$XDG_CACHE_HOME/sciopt/jax` (`~/.cache/...`)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "sciopt" / "jax"


def enable_compilation_cache(path: str | os.PathLike | None = None) -> Path | None:
    """Turn on JAX's persistent compilation cache for this process.

    XLA programs compiled once (a solver's loop, a training chunk) are written to
    `path` and read back by later processes that compile the same program, so a second
    run of the gallery or the tests skips most compilation. This uses JAX's own cache
    (`jax_compilation_cache_dir`); sciopt only picks the folder and lowers the
    thresholds so that the many small programs of a solve are cached too.

    **Arguments:**

    - `path`: the cache folder. `None` reads the environment variable
        `SCIOPT_CACHE_DIR`; if that is unset, the per-user folder
        `default_cache_dir()` is used. `SCIOPT_CACHE_DIR=off` (or empty) turns the
        cache off.

    **Returns:**

    The folder in use, or `None` when the cache is off.
    """
    import jax

    if path is None:
        env = os.environ.get(_ENV)
        if env is not None and env.strip().lower() in _OFF:
            return None
        path = env if env is not None else default_cache_dir()
    path = Path(path).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None  # a read-only home: run without the cache
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path
