"""The `sciopt` command: `sciopt gallery`, `sciopt list`.

Errors print one line, `sciopt: error: ...`, on stderr. Exit codes: 0 success; 1 a
problem missed its reference, or a run failed; 2 a usage error (a bad option, a
missing or malformed problem file, a problem table with a missing key or a formula
outside the grammar), found before anything is created; 130 interrupted.
"""

import argparse
import os
import sys
import time
from pathlib import Path


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse would print the usage and exit
        raise _UsageError(f"{message} (see `{self.prog} --help`)")


def _fail(message: object, code: int) -> int:
    text = " ".join(str(message).split())  # one line
    print(f"sciopt: error: {text}", file=sys.stderr)
    return code


def _gallery(ns: argparse.Namespace) -> int:
    from ._problems import check_spec
    from .gallery._run import select_specs

    # Everything is checked before the report folder is created or anything runs.
    try:
        specs = select_specs(
            quick=ns.quick, only=ns.only, families=ns.family, problem_dir=ns.problems
        )
        for spec in specs:
            check_spec(spec)
        out = Path(ns.out)
        if out.exists() and not out.is_dir():
            raise ValueError(f"--out {str(out)!r} exists and is not a folder.")
    except (ValueError, FileNotFoundError) as e:
        return _fail(e, 2)

    import jax

    from ._cache import enable_compilation_cache

    # The gallery checks references to 1e-6 and tighter: run in float64.
    jax.config.update("jax_enable_x64", True)
    # Compiled programs are kept in the per-user cache folder (SCIOPT_CACHE_DIR moves
    # it or, set to "off", turns it off): a second run skips most compilation.
    enable_compilation_cache()
    from .gallery import format_table, run_gallery, write_report

    start = time.perf_counter()
    try:
        rows = run_gallery(
            quick=ns.quick, out_dir=out, specs=specs, tracebacks=ns.traceback
        )
        print()
        print(format_table(rows))
        path = write_report(rows, out, ns.quick)
    except Exception as e:  # not a usage error: a bug, or a full disk
        if ns.traceback:
            raise
        return _fail(f"{type(e).__name__}: {e} (rerun with --traceback)", 1)
    missed = [r for r in rows if r.checked and not r.passed]
    print(
        f"\n{len(rows)} runs in {time.perf_counter() - start:.0f}s; "
        f"{len(missed)} missed their reference. Report: {path}"
    )
    return 1 if missed else 0


def _list(ns: argparse.Namespace) -> int:
    from ._problems import load_problem_specs

    try:
        specs = load_problem_specs(ns.problems)
    except (ValueError, FileNotFoundError) as e:
        return _fail(e, 2)
    for spec in specs:
        quick = "quick" if spec.quick else "full"
        print(f"{spec.name:34} {spec.family:8} {quick:6} {spec.source.name}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="sciopt", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("gallery", help="run the problem gallery and write a report")
    g.add_argument("--quick", action="store_true", help="small sizes, quick problems")
    g.add_argument("--only", action="append", help="problem name or prefix (repeat)")
    g.add_argument("--family", action="append", help="family to run (repeat)")
    g.add_argument("--problems", default=None, help="folder of problem files")
    g.add_argument("--out", default="gallery-out", help="report folder")
    g.add_argument(
        "--traceback",
        action="store_true",
        help="print full tracebacks of failing problems (default: one line each)",
    )
    g.set_defaults(func=_gallery)
    ls = sub.add_parser("list", help="list the gallery's problems")
    ls.add_argument("--problems", default=None, help="folder of problem files")
    ls.set_defaults(func=_list)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `sciopt` console script; returns the exit code."""
    try:
        ns = _parser().parse_args(argv)
        return ns.func(ns)
    except _UsageError as e:
        return _fail(e, 2)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except BrokenPipeError:  # e.g. `sciopt list | head`
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (no flush error at exit)
        return 0


if __name__ == "__main__":
    sys.exit(main())
