import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


ROOT = Path(__file__).resolve().parents[1]


def _readme_commands():
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", text, re.S).group(1)
    return [line for line in block.splitlines() if line.strip()]


def test_readme_starts_with_two_commands_and_ci_runs_the_test_one():
    commands = _readme_commands()
    assert len(commands) == 2
    assert "gallery --quick" in commands[0]
    assert "pytest" in commands[1]
    ci = (ROOT / ".ci" / "run").read_text()
    assert commands[1] in ci.splitlines()


def test_citation_cff_lists_references():
    text = (ROOT / "CITATION.cff").read_text()
    assert text.startswith("cff-version: 1.2.0")
    for word in ["Exact Augmented Lagrangian", "Lagrangian PINNs", "Learned Proximal"]:
        assert word in text


@pytest.mark.skipif(
    shutil.which("mkdocs") is None
    and not (Path(sys.executable).parent / "mkdocs").exists(),
    reason="mkdocs not installed",
)
def test_mkdocs_build_strict(tmp_path):
    mkdocs = shutil.which("mkdocs") or str(Path(sys.executable).parent / "mkdocs")
    proc = subprocess.run(
        [mkdocs, "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_readme_quick_start_runs(capsys):
    text = (ROOT / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    exec(compile(code, "README.md", "exec"), {})
    out = capsys.readouterr().out.split("\n")
    assert out[0].strip() == "[-0.70710678 -0.70710678]"
    assert abs(float(out[2]) + 2**0.5) < 1e-8


@pytest.mark.parametrize(
    "family", ["nlp", "relu", "bilevel", "pde", "prox", "datasets"]
)
def test_api_reference_lists_every_public_name(family):
    """Every name a family exports has an entry on its API reference page."""
    init = (ROOT / "sciopt" / family / "__init__.py").read_text()
    exported = set(re.findall(r"\b(\w+) as \1\b", init))
    page = (ROOT / "docs" / "api" / f"{family}.md").read_text()
    listed = set(re.findall(rf"^::: sciopt\.{family}\.(\w+)", page, re.M))
    assert exported - listed == set(), "missing from the API page"
    assert listed - exported == set(), "listed but not exported"
