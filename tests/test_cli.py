"""The `sciopt` command: listing, a one-problem gallery run, and usage errors (exit
code 2, one line on stderr, nothing created)."""

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from sciopt.cli import main


ROOT = Path(__file__).resolve().parents[1]

GOOD_TABLE = """[[problem]]
name = "circle"
family = "nlp"
variables = ["x1", "x2"]
objective = "x1 + x2"
equalities = ["x1^2 + x2^2 - 2"]
x0 = [-1.2, -0.8]
"""


def _folder(tmp_path, text, name="p.toml"):
    folder = tmp_path / "problems"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)
    return str(folder)


def test_list_shows_every_gallery_problem(capsys):
    assert main(["list"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    tables = [
        t["name"]
        for f in sorted((ROOT / "problems").glob("*.toml"))
        for t in tomllib.loads(f.read_text())["problem"]
    ]
    assert len(lines) == len(tables)
    listed = {line.split()[0] for line in lines}
    assert listed == set(tables)
    assert {"hs006", "hs061", "pinn_advection", "relu-planted-regression"} <= listed


def test_gallery_runs_one_problem_and_writes_its_row(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["gallery", "--quick", "--only", "hs006", "--out", str(out)]) == 0
    report = (out / "index.md").read_text()
    rows = [line.split("|") for line in report.splitlines()]
    rows = [r for r in rows if len(r) > 5 and r[1].strip() == "hs006"]
    assert len(rows) >= 1, report
    for row in rows:
        # HS6's optimum is f* = 0 (Hock & Schittkowski 1981, problem 6).
        assert abs(float(row[4])) < 1e-8 and float(row[5]) == 0.0, row
    assert "0 missed their reference" in capsys.readouterr().out


def _bad_cases(tmp_path):
    missing_ref = _folder(tmp_path / "a", GOOD_TABLE)
    with_ref = GOOD_TABLE + 'reference = { f = -2.0, source = "closed form" }\n'
    return {
        "only": (["gallery", "--only", "nonexistent"], "--only 'nonexistent'"),
        "family": (["gallery", "--family", "nosuch"], "Unknown family 'nosuch'"),
        "no folder": (
            ["gallery", "--problems", str(tmp_path / "nowhere")],
            "No problem file or folder",
        ),
        "empty folder": (
            ["gallery", "--problems", _folder(tmp_path / "b", "", "notes.txt")],
            "No problem files",
        ),
        "no tables": (
            ["gallery", "--problems", _folder(tmp_path / "c", "x = 1\n")],
            "No \\[\\[problem\\]\\] tables",
        ),
        "malformed": (
            ["gallery", "--problems", _folder(tmp_path / "d", "[[problem]\n")],
            "p.toml: not valid TOML",
        ),
        "missing reference": (
            ["gallery", "--problems", missing_ref],
            "p.toml: problem 'circle' has no key `reference`",
        ),
        "unknown family in file": (
            [
                "gallery",
                "--problems",
                _folder(tmp_path / "e", with_ref.replace('"nlp"', '"nosuch"')),
            ],
            "problem 'circle': unknown family 'nosuch'",
        ),
        "bad formula": (
            [
                "gallery",
                "--problems",
                _folder(tmp_path / "f", with_ref.replace("x1 + x2", "x1 +* x2")),
            ],
            "problem 'circle': key `objective`: Could not parse",
        ),
        "not quick": (["gallery", "--quick", "--only", "hs007"], "--quick"),
        "bad option": (["gallery", "--bogus"], "unrecognized arguments: --bogus"),
        "no command": ([], "required: command"),
        "list no folder": (
            ["list", "--problems", str(tmp_path / "nowhere")],
            "No problem file or folder",
        ),
    }


@pytest.mark.parametrize(
    "case",
    [
        "only",
        "family",
        "no folder",
        "empty folder",
        "no tables",
        "malformed",
        "missing reference",
        "unknown family in file",
        "bad formula",
        "not quick",
        "bad option",
        "no command",
        "list no folder",
    ],
)
def test_usage_errors_exit_2_with_one_line_and_create_nothing(case, tmp_path, capsys):
    argv, message = _bad_cases(tmp_path)[case]
    out = tmp_path / "out"
    if argv and argv[0] == "gallery":
        argv = [*argv, "--out", str(out)]
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("sciopt: error: ")
    assert re.search(message, lines[0]), lines[0]
    assert "Traceback" not in captured.err and captured.out == ""
    assert not out.exists()


def test_out_that_is_a_file_is_a_usage_error(tmp_path, capsys):
    out = tmp_path / "report.md"
    out.write_text("keep me")
    assert main(["gallery", "--only", "hs006", "--out", str(out)]) == 2
    assert "not a folder" in capsys.readouterr().err
    assert out.read_text() == "keep me"


@pytest.mark.parametrize(
    "argv", [["--family", "nosuch"], ["gallery", "--family", "nosuch"]]
)
def test_module_entry_point_exits_2_without_traceback(argv, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "sciopt.cli", *argv],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},  # this checkout's sciopt
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("sciopt: error: ")
    assert "0 runs" not in proc.stdout
    assert list(tmp_path.iterdir()) == []
