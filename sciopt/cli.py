"""The `sciopt` command: `sciopt gallery`, `sciopt list`."""

import argparse
import sys
import time


def _gallery(ns: argparse.Namespace) -> int:
    import jax

    # The gallery checks references to 1e-6 and tighter: run in float64.
    jax.config.update("jax_enable_x64", True)
    from .gallery import format_table, run_gallery, write_report

    start = time.perf_counter()
    rows = run_gallery(
        quick=ns.quick,
        only=ns.only,
        families=ns.family,
        problem_dir=ns.problems,
        out_dir=ns.out,
    )
    print()
    print(format_table(rows))
    path = write_report(rows, ns.out, ns.quick)
    missed = [r for r in rows if r.checked and not r.passed]
    print(
        f"\n{len(rows)} runs in {time.perf_counter() - start:.0f}s; "
        f"{len(missed)} missed their reference. Report: {path}"
    )
    return 1 if missed else 0


def _list(ns: argparse.Namespace) -> int:
    from ._problems import load_problem_specs

    for spec in load_problem_specs(ns.problems):
        quick = "quick" if spec.quick else "full"
        print(f"{spec.name:34} {spec.family:8} {quick:6} {spec.source.name}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `sciopt` console script."""
    parser = argparse.ArgumentParser(prog="sciopt", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("gallery", help="run the problem gallery and write a report")
    g.add_argument("--quick", action="store_true", help="small sizes, quick problems")
    g.add_argument("--only", action="append", help="problem name or prefix (repeat)")
    g.add_argument("--family", action="append", help="family to run (repeat)")
    g.add_argument("--problems", default=None, help="folder of problem files")
    g.add_argument("--out", default="gallery-out", help="report folder")
    g.set_defaults(func=_gallery)
    ls = sub.add_parser("list", help="list the gallery's problems")
    ls.add_argument("--problems", default=None, help="folder of problem files")
    ls.set_defaults(func=_list)
    ns = parser.parse_args(argv)
    return ns.func(ns)


if __name__ == "__main__":
    sys.exit(main())
