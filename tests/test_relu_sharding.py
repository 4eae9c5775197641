import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np


ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent(
    """
    import json
    import jax
    jax.config.update("jax_enable_x64", True)
    import numpy as np
    import sciopt
    import sciopt.relu as sr
    from jax.sharding import Mesh

    sciopt.enable_compilation_cache()  # as the test suite (SCIOPT_CACHE_DIR)

    assert len(jax.devices()) == 4, jax.devices()
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 3))
    y = rng.standard_normal(64)
    patterns = sr.sample_patterns(jax.random.key(0), X, 8)
    problem = sr.ConvexReLUProblem(X, y, patterns, 0.2)
    mesh = Mesh(np.array(jax.devices()), ("data",))
    sharded = sr.shard_rows(problem, mesh)
    assert len(sharded.X.sharding.device_set) == 4
    assert sharded.X.addressable_shards[0].data.shape == (16, 3)
    for method in ["woodbury"]:
        solver = sr.ADMM(linear_solver=method)
        a = sciopt.solve(problem, solver, max_steps=20000)
        b = sciopt.solve(sharded, solver, max_steps=20000)
        assert b.value.v.sharding.device_set == sharded.X.sharding.device_set
        assert int(a.stats["num_steps"]) == int(b.stats["num_steps"])
        np.testing.assert_allclose(b.value.v, a.value.v, rtol=0, atol=1e-9)
        np.testing.assert_allclose(
            b.stats["objective"], a.stats["objective"], rtol=1e-12
        )
    keys = ["objective", "lower_bound", "duality_gap", "num_steps"]
    print(json.dumps({k: float(b.stats[k]) for k in keys}))
    print("OK")
    """
)


def test_sharded_rows_equal_single_device():
    env = dict(os.environ)
    env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().endswith("OK")
    # the sharded solve against the independent cvxpy program (the same data)
    import jax
    import sciopt.relu as sr

    from .test_relu_oracles import reference

    stats = json.loads(proc.stdout.strip().splitlines()[-2])
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 3))
    y = rng.standard_normal(64)
    patterns = np.asarray(sr.sample_patterns(jax.random.key(0), X, 8))
    ref = reference(X, y, patterns, 0.2)
    # default tolerances (measured: objective 7.7e-8 above the optimum, certified
    # gap 5.1e-6 relative, 3981 steps)
    assert abs(stats["objective"] - ref) <= 1e-6 * ref
    assert stats["lower_bound"] <= ref * (1 + 1e-9)
    assert stats["objective"] - ref <= stats["duality_gap"] + 1e-9 * ref
    assert stats["duality_gap"] <= 1e-5 * ref
    assert stats["num_steps"] <= 4_400
