"""Convex ReLU ADMM across two processes (`jax.distributed`, CPU, gloo) against one
process: the example `examples/relu_distributed.py` with `--check`."""

import re
import subprocess
import sys
from pathlib import Path

import pytest


ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_two_processes_equal_one():
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "relu_distributed.py"),
         "--num-processes", "2", "--check"],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert "2 processes, 2 devices" in out.stdout, out.stdout
    gap = float(re.search(r"certified gap (\S+),", out.stdout).group(1))
    rel = float(re.search(r"relative difference (\S+)", out.stdout).group(1))
    # the same program on the same data: equal up to the order of sums (measured 0)
    assert rel <= 1e-10
    assert gap <= 1e-6
