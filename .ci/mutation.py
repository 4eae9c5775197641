"""Sampled mutation testing of sciopt's numeric modules.

Plants one small bug at a time (a mutant: an operator, a number, a comparison, a
keyword changed by `mutmut`'s mutation operators) in a copy of the library and runs
the module's test files against it. A mutant the tests fail on is *killed*; one they
pass is a *survivor*: either the tests miss a wrong answer, or the change is
equivalent (it cannot change any result). The score is killed / (sampled -
equivalent).

    python .ci/mutation.py                       # every module, 12 mutants each
    python .ci/mutation.py relu/_admm.py --sample 30 --jobs 2
    python .ci/mutation.py --list                # the modules and their test files

Each module is mutated with `mutmut`'s operators (`pip install mutmut==2.5.1`),
string literals excepted (those mutants change messages, not numbers). A seeded
random sample of the remaining mutants is run, each in its own copy of the source tree
(`--jobs` at a time), with `pytest -x` on the module's test files and a time limit
(a mutant that hangs counts as killed). Mutants listed in `EQUIVALENT` below, with
the reason each cannot change a result, are reported apart and left out of the score.
The report (`--out`, JSON and a Markdown table) lists every survivor as a diff line.
"""

import argparse
import concurrent.futures as cf
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent

# module (under sciopt/) -> test files that should kill its mutants, fastest and
# sharpest first (pytest stops at the first failure).
MODULES: dict[str, list[str]] = {
    "nlp/_adasketch.py": ["test_nlp_oracles.py", "test_nlp.py", "test_nlp_property.py"],
    "nlp/_sketch.py": ["test_nlp_sketch.py", "test_nlp_oracles.py", "test_nlp.py"],
    "relu/_admm.py": ["test_relu_oracles.py", "test_relu.py"],
    "relu/_interior_point.py": ["test_relu_oracles.py", "test_relu.py"],
    "relu/_gap.py": ["test_relu_oracles.py", "test_relu.py"],
    "bilevel/_lv_hba.py": [
        "test_bilevel_oracles.py",
        "test_bilevel.py",
        "test_bilevel_bad_input.py",
    ],
    "bilevel/_bo_rep.py": [
        "test_bilevel_oracles.py",
        "test_bilevel.py",
        "test_bilevel_bad_input.py",
    ],
    "bilevel/_sets.py": [
        "test_bilevel_oracles.py",
        "test_bilevel.py",
        "test_bilevel_bad_input.py",
    ],
    "pde/_hc_layer.py": ["test_pde_oracles.py", "test_hard_constraint.py"],
    "pde/_hc_solve.py": ["test_pde_oracles.py", "test_hard_constraint.py"],
    "pde/_lpinn.py": ["test_pde_oracles.py", "test_pinn.py"],
    "pde/_reference.py": ["test_pde_oracles.py", "test_pde_core.py"],
    "prox/_train.py": ["test_prox_oracles.py", "test_prox_train.py"],
    "prox/_pgd.py": ["test_prox_oracles.py", "test_prox_pnp.py"],
    "prox/_admm.py": ["test_prox_oracles.py", "test_prox_pnp.py"],
}

# (module, line number, mutated line stripped) -> why the mutant cannot change a result.
# (A mutant timed out under load that is listed here is reported as equivalent too.)
EQUIVALENT: dict[tuple[str, int, str], str] = {
    (
        "bilevel/_sets.py",
        255,
        "change = jnp.max(jnp.abs(new_w - w)) / (2 + jnp.max(jnp.abs(new_w)))",
    ): "Hildreth's loop stops at a relative change of 10 machine epsilons; halving "
    "the measured change at most adds one sweep, which moves the projection by about "
    "1e-14, below every oracle's resolution",
    (
        "bilevel/_lv_hba.py",
        190,
        "keys = jr.split(jr.fold_in(jr.wrap_key_data(state.key), k), 5)",
    ): "one more key split changes only which random numbers the stochastic oracles "
    "draw: the same distribution, no deterministic result changes",
    ("relu/_admm.py", 409, "ht = None"): "`ht` is read only for adversarial "
    "problems, and line 409 is in the branch of constrained, non-adversarial ones",
    (
        "relu/_interior_point.py",
        95,
        "step = -_one_at_a_time(jnp.linalg.solve, H, g[:, :, None])[..., 1]",
    ): "the solve's last axis has size 1 and JAX clamps an index past the end, so "
    "`[..., 1]` reads `[..., 0]` (eagerly and under jit)",
    (
        "pde/_hc_layer.py",
        138,
        "verbose: bool = eqx.field(static=True, default=True)",
    ): "only the class-level field default: every constructor sets `verbose` "
    "explicitly (its own default False), and nothing reads the class attribute",
    ("pde/_hc_solve.py", 176, "n = rows.ic_terms.shape[+1]"): "inside the "
    "per-expert solve `ic_terms` is a matrix (rows, basis functions): axes 1 and -1 "
    "are the same axis",
    ("pde/_hc_solve.py", 142, "if m > n:"): "differs only for a square matrix, "
    "where the least-squares and the least-norm branch both return the unique "
    "solution (and a layer's rows always outnumber its weights: the ridge rows "
    "alone are as many)",
}


def _mutmut():
    try:
        import mutmut
    except ImportError:
        sys.exit("mutation testing needs mutmut: pip install -e '.[test,mutation]'")
    return mutmut


def mutation_ids(module: str) -> list:
    """Every mutant of `module` that `mutmut` makes, as mutation ids."""
    mutmut = _mutmut()
    path = ROOT / "sciopt" / module
    context = mutmut.Context(source=path.read_text(), filename=str(path))
    return list(mutmut.list_mutations(context))


def describe(module: str, source: str, mid) -> dict | None:
    """The mutant `mid` of `module`: its line, before and after; `None` for a mutant
    of a string literal (those change messages and names, not numbers)."""
    mutated = mutate(module, source, mid)
    new_lines = mutated.splitlines()
    old = source.splitlines()[mid.line_number]
    line = new_lines[mid.line_number] if mid.line_number < len(new_lines) else ""
    if ("'XX" in line or '"XX' in line) and "XX" not in old:
        return None
    return {
        "module": module,
        "id": [mid.line, mid.index, mid.line_number],
        "line_number": mid.line_number + 1,
        "original": old.strip(),
        "mutated": line.strip(),
    }


def sample_mutants(module: str, sample: int, seed: int) -> tuple[int, list[dict]]:
    """A seeded random sample of `sample` non-string mutants of `module`, and how many
    mutants (of every kind) the module has."""
    ids = mutation_ids(module)
    order = random.Random(f"{seed}:{module}").sample(ids, len(ids))
    source = (ROOT / "sciopt" / module).read_text()
    chosen = []
    for mid in order:
        if len(chosen) == sample:
            break
        described = describe(module, source, mid)
        if described is not None:
            chosen.append(described)
    return len(ids), chosen


def mutate(module: str, source: str, mid) -> str:
    mutmut = _mutmut()
    context = mutmut.Context(
        source=source, mutation_id=mid, filename=str(ROOT / "sciopt" / module)
    )
    mutated, count = mutmut.mutate(context)
    assert count == 1, (module, mid)
    return mutated


def _copy_tree(dest: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("sciopt", "tests", "problems"):
        shutil.copytree(ROOT / name, dest / name, ignore=ignore)
    shutil.copy(ROOT / "pyproject.toml", dest / "pyproject.toml")


def _test_command(module: str) -> list[str]:
    names = [name for name in MODULES[module] if (ROOT / "tests" / name).exists()]
    pytest = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider"]
    return [*pytest, "-p", "no:xdist", *(f"tests/{name}" for name in names)]


def _run_tests(workdir: Path, module: str, timeout: float) -> tuple[str, float]:
    env = dict(os.environ, PYTHONPATH=str(workdir), JAX_PLATFORMS="cpu")
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            _test_command(module),
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return "timeout", time.perf_counter() - start
    elapsed = time.perf_counter() - start
    if proc.returncode == 0:
        return "survived", elapsed
    if proc.returncode == 5:  # no tests collected
        return "no-tests", elapsed
    return "killed", elapsed


def baseline(module: str, workdir: Path) -> float:
    """Run the unmutated tests once: they must pass; returns their run time."""
    status, elapsed = _run_tests(workdir, module, timeout=3600)
    if status != "survived":
        sys.exit(f"{module}: the tests do not pass on the unmutated code ({status})")
    return elapsed


def _classify(result: dict) -> dict:
    """A survivor listed in `EQUIVALENT` is reported as `equivalent`."""
    key = (result["module"], result["line_number"], result["mutated"])
    if key in EQUIVALENT and result["status"] in ("survived", "timeout"):
        result = dict(result, status="equivalent")
    return result


def run_module(
    module: str,
    sample: int,
    seed: int,
    jobs: int,
    verbose: bool,
    log: Path,
    run_missing: bool = True,
) -> dict:
    """Run a sample of `module`'s mutants; each result is appended to `log` (JSON
    lines) as it comes, and mutants already in `log` are not run again."""
    mutmut = _mutmut()
    total, chosen = sample_mutants(module, sample, seed)
    done = {}
    if log.exists():
        for line in log.read_text().splitlines():
            r = json.loads(line)
            done[(r["module"], tuple(r["id"]))] = r
    results = [
        _classify(done[(module, tuple(m["id"]))])
        for m in chosen
        if (module, tuple(m["id"])) in done
    ]
    chosen = [m for m in chosen if (module, tuple(m["id"])) not in done]
    if not run_missing:
        chosen = []
    source = (ROOT / "sciopt" / module).read_text()
    with tempfile.TemporaryDirectory(prefix="sciopt-mut-") as tmp:
        workdirs = [Path(tmp) / f"w{i}" for i in range(max(1, jobs))]
        for w in workdirs:
            _copy_tree(w)
        base = baseline(module, workdirs[0]) if chosen else 0.0
        timeout = 1.5 * base + 60  # a mutant that makes the tests this slow is killed
        free = list(workdirs)

        def one(mutant):
            w = free.pop()
            target = w / "sciopt" / module
            try:
                mid = mutmut.RelativeMutationID(*mutant["id"])
                target.write_text(mutate(module, source, mid))
                status, elapsed = _run_tests(w, module, timeout)
            finally:
                target.write_text(source)
                free.append(w)
            if verbose:
                where = f"{module}:{mutant['line_number']}  {mutant['mutated']}"
                print(f"  {status:10s} {elapsed:6.1f}s  {where}", flush=True)
            result = dict(mutant, status=status, seconds=round(elapsed, 1))
            with log.open("a") as f:
                f.write(json.dumps(result) + "\n")
            return _classify(result)

        start = time.perf_counter()
        with cf.ThreadPoolExecutor(max_workers=len(workdirs)) as pool:
            results += list(pool.map(one, chosen))
        wall = time.perf_counter() - start
    counts = {s: sum(r["status"] == s for r in results) for s in
              ("killed", "timeout", "survived", "equivalent", "no-tests")}  # fmt: skip
    scored = len(results) - counts["equivalent"]
    score = (counts["killed"] + counts["timeout"]) / scored if scored else float("nan")
    return {
        "module": module,
        "tests": MODULES[module],
        "mutants": total,
        "sampled": len(results),
        **counts,
        "score": score,
        "baseline_seconds": round(base, 1),
        "wall_seconds": round(wall, 1),
        "mutant_seconds": round(sum(r.get("seconds", 0.0) for r in results), 1),
        "results": results,
    }


def markdown(reports: list[dict]) -> str:
    rows = [
        "| module | mutants | sampled | killed | timeout | survived | equivalent | score | test time |",  # noqa: E501
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in reports:
        rows.append(
            f"| `{r['module']}` | {r['mutants']} | {r['sampled']} | {r['killed']} | "
            f"{r['timeout']} | {r['survived']} | {r['equivalent']} | "
            f"{100 * r['score']:.0f} % | {r['mutant_seconds']:.0f} s |"
        )
    survivors = [m for r in reports for m in r["results"] if m["status"] == "survived"]
    if survivors:
        rows += ["", "Survivors:", ""]
        for m in survivors:
            rows.append(
                f"- `{m['module']}:{m['line_number']}`: `{m['original']}` -> "
                f"`{m['mutated']}`"
            )
    return "\n".join(rows) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", help="modules under sciopt/")
    parser.add_argument("--sample", type=int, default=12, help="mutants per module")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample")
    parser.add_argument("--jobs", type=int, default=1, help="mutants run at once")
    parser.add_argument("--out", default="mutation-report", help="report path stem")
    parser.add_argument("--list", action="store_true", help="list modules and exit")
    parser.add_argument(
        "--report", action="store_true", help="summarise the log; run nothing"
    )
    parser.add_argument("-q", "--quiet", action="store_true")
    args = parser.parse_args(argv)
    if args.list:
        for module, tests in MODULES.items():
            print(f"{module}: {len(mutation_ids(module))} mutants; {', '.join(tests)}")
        return 0
    modules = args.modules or list(MODULES)
    unknown = [m for m in modules if m not in MODULES]
    if unknown:
        parser.error(f"unknown module(s) {unknown}; choose from {list(MODULES)}")
    reports = []
    for module in modules:
        if not args.quiet:
            print(f"{module}:", flush=True)
        log = Path(f"{args.out}.jsonl")
        report = run_module(
            module,
            args.sample,
            args.seed,
            args.jobs,
            not args.quiet,
            log,
            run_missing=not args.report,
        )
        reports.append(report)
        Path(f"{args.out}.json").write_text(json.dumps(reports, indent=1))
        Path(f"{args.out}.md").write_text(markdown(reports))
    print(markdown(reports))
    low = [r["module"] for r in reports if not r["score"] >= 0.85]
    return 1 if low else 0


if __name__ == "__main__":
    sys.exit(main())
