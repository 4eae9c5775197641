"""Globally optimal two-layer ReLU classifier on scikit-learn's breast-cancer data.

Solves the convex program (sampled patterns, cross-entropy loss) with ADMM, recovers the
network and compares it with Adam on the same non-convex objective; then
`sciopt.relu.optimal_network` adds the Adam networks' patterns and prices new ones
until none violates the dual condition, which gives a network no Adam run beats.

    python examples/relu_breast_cancer.py
"""

import jax
import optax


jax.config.update("jax_enable_x64", True)

import sciopt  # noqa: E402
import sciopt.relu as sr  # noqa: E402
from sciopt.datasets import sklearn_binary  # noqa: E402


def main():
    X, y, Xt, yt = sklearn_binary("breast_cancer", n_train=300, seed=0)
    beta = 0.05
    patterns = sr.sample_patterns(jax.random.key(0), X, 20, bias=True)
    problem = sr.ConvexReLUProblem(X, y, patterns, beta, loss="bce", bias=True)
    sol = sciopt.solve(problem, sr.ADMM(), max_steps=50_000)
    net = sr.to_network(problem, sol)
    print(
        f"convex: objective {float(sol.stats['objective']):.5f} in "
        f"{int(sol.stats['num_steps'])} ADMM steps, width {net.width}, "
        f"train acc {float(sr.accuracy(net, X, y)):.3f}, "
        f"test acc {float(sr.accuracy(net, Xt, yt)):.3f}"
    )

    def loss(model, batch, key):
        return sr.nonconvex_objective(model, X, y, beta, "bce")

    adam_networks, adam_objectives = [], []
    for seed in range(3):
        model = sr.init_network(jax.random.key(seed), X.shape[1], net.width, bias=True)
        fit = sciopt.fit(
            model,
            loss,
            key=jax.random.key(seed),
            steps=2000,
            optimiser=optax.adam(1e-2),
        )
        adam_networks.append(fit.model)
        adam_objectives.append(float(loss(fit.model, None, None)))
        print(
            f"Adam seed {seed}: objective {adam_objectives[-1]:.5f}, "
            f"test acc {float(sr.accuracy(fit.model, Xt, yt)):.3f}"
        )

    best, sol = sr.optimal_network(
        X, y, beta, loss="bce", key=jax.random.key(0), networks=adam_networks
    )
    objective = float(sr.nonconvex_objective(best, X, y, beta, "bce"))
    print(
        f"optimal_network: objective {objective:.5f} (best Adam "
        f"{min(adam_objectives):.5f}), {int(sol.stats['num_patterns'])} patterns, "
        f"{int(sol.stats['pricing_rounds'])} pricing rounds, largest violation found "
        f"{float(sol.stats['max_violation']):.2e}, test acc "
        f"{float(sr.accuracy(best, Xt, yt)):.3f}"
    )


if __name__ == "__main__":
    main()
