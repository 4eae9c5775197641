import math

import pytest
import sciopt
from sciopt.gallery import format_table, GalleryRow, run_gallery, write_report


def _write(tmp_path, text, name="p.toml"):
    path = tmp_path / name
    path.write_text(text)
    return tmp_path


def test_problem_files_load_and_validate(tmp_path):
    d = _write(tmp_path, '[[problem]]\nname = "a"\nfamily = "x"\nquick = false\n')
    (spec,) = sciopt.load_problem_specs(d)
    assert spec.name == "a" and spec.family == "x" and not spec.quick
    _write(tmp_path, '[[problem]]\nname = "a"\nfamily = "y"\n', "q.toml")
    with pytest.raises(ValueError, match="appears in both"):
        sciopt.load_problem_specs(tmp_path)
    bad = tmp_path / "bad"
    bad.mkdir()
    _write(bad, '[[problem]]\nfamily = "x"\n')
    with pytest.raises(ValueError, match="has no `name`"):
        sciopt.load_problem_specs(bad)
    _write(bad, "[[problem]\n")
    with pytest.raises(ValueError, match="not valid TOML"):
        sciopt.load_problem_specs(bad)


def test_bundled_gallery_loads():
    # every [[problem]] of problems/*.toml, read here with tomllib, is loaded once,
    # with its family and data
    import tomllib
    from pathlib import Path

    expected = {}
    for path in sorted((Path(__file__).parents[1] / "problems").glob("*.toml")):
        for table in tomllib.loads(path.read_text())["problem"]:
            assert table["name"] not in expected, table["name"]
            expected[table["name"]] = table
    specs = sciopt.load_problem_specs()
    assert sorted(s.name for s in specs) == sorted(expected)
    for spec in specs:
        assert spec.family == expected[spec.name]["family"], spec.name


def test_unknown_family_is_a_missed_row(tmp_path):
    d = _write(tmp_path, '[[problem]]\nname = "a"\nfamily = "nosuchfamily"\n')
    rows = run_gallery(problem_dir=d, out_dir=tmp_path / "out", echo=lambda s: None)
    assert len(rows) == 1 and not rows[0].passed
    with pytest.raises(ValueError, match="No problem matches"):
        run_gallery(problem_dir=d, out_dir=tmp_path / "out", only=["zzz"])


def test_table_and_report(tmp_path):
    rows = [
        GalleryRow(
            "p1", "s1", "ok", 1.0, 1.0, 0.0, 5, 0.1, figures=["p1.png"], note="n"
        ),
        GalleryRow(
            "p2", "s2", "diverged", math.nan, 2.0, math.inf, 9, 0.2, passed=False
        ),
        GalleryRow(
            "p2", "base", "ok", 3.0, 2.0, 0.5, 9, 0.2, passed=False, checked=False
        ),
    ]
    text = format_table(rows)
    assert "MISS" in text and "baseline" in text and "p1" in text
    path = write_report(rows, tmp_path, quick=True)
    content = path.read_text()
    assert "1 missed their reference" in content
    assert "![p1](p1.png)" in content


# The tables that describe a task or a training experiment, not one problem object.
NOT_BUILT = {
    "compose-relu-beta": "family 'compose' cannot build problems from files",
    "compose-nlp-batch": "family 'compose' cannot build problems from files",
    "compose-pnp-weight": "family 'compose' cannot build problems from files",
    "compose-pde-coefficient": "family 'compose' cannot build problems from files",
    "prox_laplacian_toy": "the Laplacian toy is a training experiment",
}


def test_every_bundled_problem_builds_or_says_why():
    """`spec.build()` gives a problem object of its family for every gallery table
    but the listed ones, which fail with the listed reason."""
    import sciopt.bilevel
    import sciopt.nlp
    import sciopt.pde
    import sciopt.prox
    import sciopt.relu

    types = {
        "nlp": sciopt.nlp.EqualityConstrainedProblem,
        "relu": (sciopt.relu.ConvexReLUProblem, sciopt.relu.AdversarialReLUProblem),
        "bilevel": sciopt.bilevel.BilevelProblem,
        "prox": sciopt.prox.LinearInverseProblem,
        "pde": (sciopt.pde.PDE, sciopt.pde.PDEFamily),
    }
    failed = {}
    for spec in sciopt.load_problem_specs():
        try:
            problem = spec.build()
        except ValueError as e:
            failed[spec.name] = str(e)
            continue
        assert isinstance(problem, types[spec.family]), (spec.name, type(problem))
    assert sorted(failed) == sorted(NOT_BUILT)
    for name, message in failed.items():
        assert name in message and NOT_BUILT[name] in message, message


def test_relu_tables_build_their_convex_program():
    """`spec.build()` builds every relu table, from the data and pattern keys."""
    import numpy as np
    import sciopt.datasets
    import sciopt.relu

    specs = [s for s in sciopt.load_problem_specs() if s.family == "relu"]
    assert len(specs) >= 4
    for spec in specs:
        problem = spec.build()
        assert isinstance(
            problem, (sciopt.relu.ConvexReLUProblem, sciopt.relu.AdversarialReLUProblem)
        ), spec.name
        X, y, _, _ = sciopt.datasets.load_relu_table(spec.data)
        np.testing.assert_array_equal(np.asarray(problem.y), y)
        assert problem.X.shape[0] == X.shape[0] == spec.data["n"]
        assert float(problem.beta) == spec.data["beta"]
        patterns = np.asarray(problem.patterns)
        assert set(np.unique(patterns)) <= {0, 1}
        if spec.data.get("kind") == "exact_vs_sampled":
            exact = sciopt.relu.enumerate_patterns(X, bias=spec.data.get("bias", True))
            assert patterns.shape == np.shape(exact)
        else:
            # Sampled patterns are deduplicated: at most `num_patterns` remain.
            assert 1 <= patterns.shape[-1] <= spec.data.get("num_patterns", 20)
