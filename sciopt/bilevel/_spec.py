"""Building a bilevel problem from a problem-file table."""

from ._problem import BilevelProblem


def from_spec(spec) -> BilevelProblem:
    """The `BilevelProblem` of a `problems/bilevel*.toml` table (`spec.build()`).

    The table's `kind` names a problem of `sciopt.datasets` (`bilevel_case`) and its
    `params` table gives that builder's keyword arguments.
    """
    from ..datasets import bilevel_case

    data = spec.data
    return bilevel_case(
        data.get("kind"), dict(data.get("params", {})), spec.name
    ).problem
