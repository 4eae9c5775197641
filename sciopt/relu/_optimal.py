"""`optimal_network`: sampled patterns, trained networks' patterns and pattern
pricing (column generation) around the convex ReLU program."""

import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import ArrayLike, PRNGKeyArray

from .._solution import RESULTS, Solution
from .._solve import solve
from ._admm import ADMM
from ._interior_point import InteriorPoint
from ._losses import check_loss
from ._network import ReLUNetwork, to_network
from ._patterns import _as_data, deduplicate_patterns, sample_patterns
from ._pricing import (
    exact_pricing,
    global_lower_bound,
    merge_patterns,
    network_patterns,
    price_patterns,
    pricing_multiplier,
)
from ._problem import ConvexReLUProblem


def _bucket(P: int, multiple: int) -> int:
    """The smallest of `multiple * {1, 1.5, 2, 3, 4, 6, 8, ...}` that is >= P."""
    if multiple <= 1:
        return P
    size = multiple
    while True:
        if size >= P:
            return size
        if 3 * size // 2 >= P:
            return 3 * size // 2
        size *= 2


def _padded(patterns: np.ndarray, multiple: int) -> np.ndarray:
    """Repeat the first column up to a bucket size (`_bucket`): a repeated pattern
    leaves the optimum unchanged, and equal shapes reuse the compiled solver across
    pricing rounds."""
    P = patterns.shape[1]
    target = _bucket(P, multiple)
    if target == P:
        return patterns
    return np.concatenate([patterns, np.repeat(patterns[:, :1], target - P, 1)], 1)


def _active(patterns: np.ndarray, value, rtol: float) -> np.ndarray:
    """Which of the (unpadded) patterns carry a group of norm > rtol * the largest
    (padding copies of the first pattern count for it)."""
    v = np.asarray(value.v if hasattr(value, "v") else value)
    norms = np.linalg.norm(v, axis=1).reshape(2, -1).max(axis=0)
    P = patterns.shape[1]
    active = norms[:P] > rtol * norms.max(initial=0.0)
    if norms.shape[0] > P:
        active[0] |= bool(np.any(norms[P:] > rtol * norms.max()))
    return active


def _default_solver(loss: str):
    if loss == "hinge":
        return ADMM()
    return InteriorPoint(rtol=1e-8)


def optimal_network(
    X: ArrayLike,
    y: ArrayLike,
    beta: float,
    *,
    loss: str = "squared",
    key: PRNGKeyArray,
    bias: bool | None = None,
    num_patterns: int = 64,
    networks: list[ReLUNetwork] | None = None,
    max_rounds: int = 20,
    tol: float = 1e-4,
    solver=None,
    pricing: str = "auto",
    num_starts: int = 128,
    search_steps: int = 60,
    smooth_steps: int = 300,
    max_new: int = 32,
    pad_to: int = 16,
    prune: bool = True,
    max_steps: int | None = None,
    throw: bool = True,
    verbose: bool = False,
    callback=None,
) -> tuple[ReLUNetwork, Solution]:
    """A two-layer ReLU network from the convex program, with patterns generated
    until no pattern found violates the dual condition.

    1. Patterns: `num_patterns` sampled Gaussian directions (`sample_patterns`),
       merged with the activation patterns of `networks` (`network_patterns`;
       e.g. Adam-trained networks). A network whose patterns are all in the set is a
       feasible point of the program with a convex objective at most its
       weight-decay objective (Pilanci & Ergen 2020), so the result is at least as
       good as every network given, up to the solver's tolerance.
    2. Solve the convex program (`InteriorPoint(rtol=1e-8)` for the squared and
       cross-entropy losses, `ADMM` for the hinge loss, or `solver`).
    3. Price: with `lam = -grad loss(yhat)`, search for unit directions u with
       `|lam^T (X u)_+| > beta (1 + tol)` (`price_patterns`: multi-start projected
       subgradient ascent and annealed smoothed ascent from `num_starts` random
       directions and from the current and given networks' neurons; or
       `exact_pricing` over every pattern when the data
       with the bias column have rank <= 3). Add up to `max_new` new violating
       patterns and re-solve (column generation: Lübbecke & Desrosiers 2005).
    4. Stop when no new violating pattern is found or after `max_rounds` rounds;
       recover the network (`to_network`).

    What is proved: the final program's objective is certified by its duality gap
    (`stats["duality_gap"]`, the program over the final patterns). With exact
    pricing (`stats["pricing_exact"]`), `max_violation <= tol` proves the result
    optimal over all patterns up to `tol`, hence globally optimal for every network
    width (and `stats["global_lower_bound"]` is a lower bound on the global
    optimum); with the search it proves only that no violating pattern was found in
    `stats["pricing_searches"]` searches of the last round.

    The final network keeps the groups of norm > 1e-12 of the largest (an
    interior-point solution has no exact zeros). The solvers start every round
    from scratch (they take no warm start of another pattern set); the pattern count
    is padded to a bucket size (`pad_to`) with a repeated pattern so that rounds of
    equal padded size reuse the compiled solver.

    **Arguments:**

    - `X`, `y`, `beta`, `loss`: the data (without the bias column), targets,
      weight decay and loss, as for `ConvexReLUProblem`.
    - `key`: a JAX PRNG key (pattern sampling and the random pricing starts).
    - `bias`: a first-layer bias; `None` takes it from `networks`, else `False`.
    - `num_patterns`: sampled directions at the start (0: only `networks`).
    - `networks`: `ReLUNetwork`s whose patterns are added.
    - `max_rounds`: the most pricing rounds (solves after the first).
    - `tol`: the relative violation `|lam^T (X u)_+| / beta - 1` that counts.
    - `solver`: the convex solver; it must return `stats["objective"]`.
    - `pricing`: `"auto"` (exact when rank <= 3 with the bias column, else the
      search), `"exact"`, `"search"` or `"none"` (sampling only).
    - `num_starts`, `search_steps`, `smooth_steps`: random starts, subgradient
      ascent steps and smoothed-ascent steps of the search (`price_patterns`).
    - `max_new`: the most patterns added per round.
    - `pad_to`: pad the pattern count up to `pad_to * {1, 1.5, 2, 3, 4, 6, ...}`
      (1: no padding).
    - `prune`: before each re-solve, drop the patterns whose groups are zero (norm
      <= 1e-6 of the largest) in the last solution, as column generation drops
      non-basic columns: the last solution stays feasible, so the objective does
      not rise (up to that threshold), and the program stays small.
    - `max_steps`: the solver's step budget (`None`: the solver's default).
    - `throw`: raise when a solve fails (a result other than `successful` or
      `newton_stalled`, whose point is feasible); else return it.
    - `verbose`: print each round's objective, violation and pattern count.
    - `callback`: called after each round's pricing with a dict (`round`,
      `objective`, `num_patterns`, `max_violation`, `new_patterns`, `time`: seconds
      since the call began), e.g. to record the objective against the patterns.

    **Returns:**

    `(network, solution)`: the recovered `ReLUNetwork` and the last solve's
    `sciopt.Solution` whose `stats` add `max_violation` (relative, the largest found
    in the last round), `num_patterns` (distinct, in the last program),
    `patterns_generated` (sampled, from networks and priced, in all), `pricing_rounds`,
    `pricing_searches`, `pricing_exact`, `global_lower_bound` (nan unless exact),
    `network_objective` and `wall_time`. `result` is `steps_exhausted` when
    `max_rounds` ended with violating patterns left.

    ??? cite "References"

        ```bibtex
        @inproceedings{pilanci2020neural,
            title={Neural Networks are Convex Regularizers: Exact Polynomial-time
                   Convex Optimization Formulations for Two-layer Networks},
            author={Pilanci, Mert and Ergen, Tolga},
            booktitle={International Conference on Machine Learning},
            pages={7695--7705},
            year={2020}
        }

        @article{lubbecke2005selected,
            title={Selected Topics in Column Generation},
            author={L{\\"u}bbecke, Marco E. and Desrosiers, Jacques},
            journal={Operations Research},
            volume={53},
            number={6},
            pages={1007--1023},
            year={2005}
        }
        ```
    """
    start_time = time.perf_counter()
    check_loss(loss)
    if pricing not in ("auto", "exact", "search", "none"):
        raise ValueError(
            f"`pricing` must be 'auto', 'exact', 'search' or 'none', got {pricing!r}."
        )
    for name, value in (("max_rounds", max_rounds), ("num_patterns", num_patterns)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"`{name}` must be an int >= 0, got {value!r}.")
    if not isinstance(pad_to, int) or pad_to < 1:
        raise ValueError(f"`pad_to` must be a positive int, got {pad_to!r}.")
    if not tol >= 0:
        raise ValueError(f"`tol` must be >= 0, got {tol!r}.")
    networks = [] if networks is None else list(networks)
    if bias is None:
        bias = bool(networks[0].bias) if networks else False
    for net in networks:
        if bool(getattr(net, "bias", False)) != bias:
            raise ValueError(
                f"Every network in `networks` must have bias={bias} (the `bias` "
                "argument); got one with a different bias."
            )
    Xb = _as_data(X, bias)
    n, d = Xb.shape
    rank = int(np.linalg.matrix_rank(Xb))
    if pricing == "auto":
        pricing = "exact" if rank <= 3 else "search"
    solver = _default_solver(loss) if solver is None else solver

    sets = []
    if num_patterns > 0:
        sets.append(sample_patterns(key, X, num_patterns, bias=bias))
    for net in networks:
        sets.append(network_patterns(net, X, bias=bias))
    if not sets:
        raise ValueError("No patterns: pass `num_patterns > 0` or `networks`.")
    patterns = np.asarray(merge_patterns(*sets))
    given_starts = [np.asarray(net.first) for net in networks]

    def solve_with(patterns):
        padded = _padded(patterns, pad_to)
        problem = ConvexReLUProblem(X, y, padded, beta, loss, bias=bias)
        sol = solve(problem, solver, max_steps=max_steps, throw=False)
        ok = bool(sol.result == RESULTS.successful) or bool(
            sol.result == RESULTS.newton_stalled
        )
        if throw and not ok:
            raise RuntimeError(
                f"optimal_network: the convex solve failed with P={patterns.shape[1]} "
                f"patterns: {RESULTS[sol.result]}"
            )
        return problem, sol

    key = jax.random.fold_in(key, 1)
    generated = patterns.shape[1]
    problem, sol = solve_with(patterns)
    rounds, searches, violation, max_value = 0, 0, np.nan, np.nan
    exact_done = False
    remaining = False
    while True:
        lam = pricing_multiplier(problem, sol.value)
        if pricing == "none":
            break
        if pricing == "exact":
            found = exact_pricing(
                X, lam, beta, bias=bias, existing=patterns, tol=tol, max_new=max_new
            )
        else:
            net = to_network(problem, sol)
            starts = np.concatenate([np.asarray(net.first), *given_starts], axis=0)
            key, sub = jax.random.split(key)
            found = price_patterns(
                X,
                lam,
                beta,
                key=sub,
                bias=bias,
                num_starts=num_starts,
                steps=search_steps,
                smooth_steps=smooth_steps,
                starts=starts,
                existing=patterns,
                tol=tol,
                max_new=max_new,
            )
        searches = found.num_searches
        exact_done = found.exact
        max_value = float(found.max_value)
        violation = float(found.violation)
        new = found.patterns.shape[1]
        if callback is not None:
            callback(
                dict(
                    round=rounds,
                    objective=float(sol.stats["objective"]),
                    num_patterns=int(patterns.shape[1]),
                    max_violation=violation,
                    new_patterns=new,
                    time=time.perf_counter() - start_time,
                )
            )
        if verbose:
            print(
                f"optimal_network: round {rounds}: P={patterns.shape[1]}, objective "
                f"{float(sol.stats['objective']):.10g}, max violation "
                f"{violation:.3e}, {new} new patterns"
            )
        if new == 0:
            break
        if rounds >= max_rounds:
            remaining = True
            break
        if prune:
            patterns = patterns[:, _active(patterns, sol.value, 1e-6)]
        patterns = np.asarray(merge_patterns(patterns, found.patterns))
        generated += new
        problem, sol = solve_with(patterns)
        rounds += 1

    v = np.asarray(sol.value.v if hasattr(sol.value, "v") else sol.value)
    largest = float(np.linalg.norm(v, axis=1).max(initial=0.0))
    network = to_network(problem, sol, tol=1e-12 * largest)
    dtype = problem.X.dtype
    if exact_done:
        lower = global_lower_bound(problem, sol.value, max_value)
    else:
        lower = jnp.asarray(jnp.nan, dtype)
    from ._network import nonconvex_objective

    stats = dict(sol.stats)
    stats.update(
        max_violation=jnp.asarray(violation, dtype),
        num_patterns=jnp.asarray(int(deduplicate_patterns(patterns).shape[1])),
        patterns_generated=jnp.asarray(generated),
        pricing_rounds=jnp.asarray(rounds),
        pricing_searches=jnp.asarray(searches),
        pricing_exact=jnp.asarray(exact_done),
        global_lower_bound=lower,
        network_objective=nonconvex_objective(network, X, y, beta, loss),
        wall_time=jnp.asarray(time.perf_counter() - start_time),
    )
    sol = eqx.tree_at(lambda s: s.stats, sol, stats)
    if remaining and sol.result == RESULTS.successful:
        sol = eqx.tree_at(lambda s: s.result, sol, RESULTS.steps_exhausted)
    return network, sol
