"""Building a convex ReLU problem from a problem-file table."""

import jax

from ._patterns import enumerate_patterns, sample_patterns
from ._problem import AdversarialReLUProblem, ConvexReLUProblem


def _patterns(data, X, quick, key):
    bias = bool(data.get("bias", True))
    if data.get("patterns") == "exact" or data.get("kind") == "exact_vs_sampled":
        return enumerate_patterns(X, bias=bias)
    num = int(data.get("quick_num_patterns" if quick else "num_patterns", 20))
    return sample_patterns(key, X, num, bias=bias)


def _build(data, quick):
    from ..datasets import load_relu_table

    X, y, _, _ = load_relu_table(data, quick)
    key = jax.random.key(int(data.get("seed", 0)))
    patterns = _patterns(data, X, quick, key)
    bias = bool(data.get("bias", True))
    beta = float(data["beta"])
    if data.get("kind") == "adversarial":
        problem = AdversarialReLUProblem(X, y, patterns, beta, data["eps"], bias=bias)
    else:
        problem = ConvexReLUProblem(
            X, y, patterns, beta, data.get("loss", "squared"), bias=bias
        )
    return problem


def from_spec(
    spec, *, quick: bool = False
) -> ConvexReLUProblem | AdversarialReLUProblem:
    """The convex program of a `problems/relu*.toml` table (`spec.build()`).

    The data come from `sciopt.datasets.load_relu_table`; the activation patterns are
    all patterns (`patterns = "exact"` or `kind = "exact_vs_sampled"`, small `d`
    only) or `num_patterns` sampled ones
    (`quick_num_patterns` when `quick`) with the table's `seed`; `kind =
    "adversarial"` builds the robust program with radius `eps`.
    """
    if "beta" not in spec.data or "dataset" not in spec.data:
        raise ValueError(
            f"Problem {spec.name!r}: a relu table needs `dataset` and `beta`."
        )
    return _build(spec.data, quick)
