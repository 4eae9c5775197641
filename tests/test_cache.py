"""The persistent compilation cache: a second process reuses the first's programs."""

import os
import subprocess
import sys

import sciopt


_SCRIPT = """
import jax, jax.numpy as jnp, sciopt
sciopt.enable_compilation_cache()  # the folder comes from SCIOPT_CACHE_DIR
jax.config.update("jax_enable_x64", True)
events = []
jax.monitoring.register_event_listener(lambda name, **kw: events.append(name))
jax.monitoring.register_event_duration_secs_listener(
    lambda name, duration, **kw: events.append(name)
)
problem = sciopt.nlp.EqualityConstrainedProblem(
    objective=lambda x, r: x[0] + x[1],
    constraints=lambda x, r: jnp.array([x[0] ** 2 + x[1] ** 2 - r**2]),
)
sol = sciopt.solve(problem, sciopt.nlp.AdaSketchNewton(), jnp.array([1.0, 0.5]), 1.0)
# a gradient through the solve: its program holds no host callback, so it is cached
grad = jax.grad(
    lambda r: sciopt.solve(
        problem, sciopt.nlp.AdaSketchNewton(), jnp.array([1.0, 0.5]), r
    ).value[0]
)(1.0)
print(float(sol.value[0]), float(grad))
# a program with a host callback gets no cache key: it is compiled, never cached
print("compilations", events.count("/jax/core/compile/backend_compile_duration"))
print("hits", events.count("/jax/compilation_cache/cache_hits"))
"""


def _run(env):
    out = subprocess.run(
        [sys.executable, "-c", _SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout.split()
    return float(out[0]), float(out[1]), int(out[3]), int(out[5])


def test_second_process_hits_the_cache(tmp_path):
    env = {**os.environ, "SCIOPT_CACHE_DIR": str(tmp_path / "cache")}
    first, grad1, compiled_first, hits_first = _run(env)
    second, grad2, compiled_second, hits_second = _run(env)
    assert compiled_first > hits_first  # (a program compiled twice may hit already)
    # every program of the second process, the gradient's included, is a cache hit
    assert hits_second == compiled_second == compiled_first
    assert (first, grad1) == (second, grad2)
    assert abs(first + 2**-0.5) < 1e-8  # the solver stops at a KKT residual ~1e-9
    assert abs(grad1 + 2**-0.5) < 1e-6  # x*(r) = -r / sqrt(2) (1, 1)


def test_cache_folder_choice(monkeypatch, tmp_path):
    import jax

    before = jax.config.jax_compilation_cache_dir
    try:
        monkeypatch.setenv("SCIOPT_CACHE_DIR", "off")
        assert sciopt.enable_compilation_cache() is None
        monkeypatch.setenv("SCIOPT_CACHE_DIR", str(tmp_path / "c"))
        assert sciopt.enable_compilation_cache() == tmp_path / "c"
        # An explicit path wins over the environment.
        assert sciopt.enable_compilation_cache(tmp_path / "d") == tmp_path / "d"
        assert (tmp_path / "d").is_dir()
        monkeypatch.delenv("SCIOPT_CACHE_DIR")
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
        assert sciopt.default_cache_dir() == tmp_path / "xdg" / "sciopt" / "jax"
    finally:
        jax.config.update("jax_compilation_cache_dir", before)
