"""A batch of equality-constrained NLPs under `jax.vmap`, with per-instance gradients.

Eight instances of `min 1/2 ||x - a||^2 + 1/4 sum x^4` s.t. two nonlinear equalities,
solved in one vmapped call with `jax.grad` of `w^T x*(p)` per instance; instance 3 is
infeasible: its solve (`throw=False`) reports its own result code and the others are
unaffected. Checked against scipy SLSQP instance by instance. The code is
`sciopt.gallery.compose.nlp_batch`; see docs/composing.md.

    python examples/compose_nlp_batch.py
"""

import jax


jax.config.update("jax_enable_x64", True)

from sciopt.gallery.compose import nlp_batch  # noqa: E402


def main():
    r = nlp_batch(batch=8, infeasible=3)
    for i, ok in enumerate(r["successful"]):
        print(f"instance {i}: {'ok' if ok else 'failed'} in {r['steps'][i]} steps")
    for message in r["failure_messages"]:
        print(f"reported failure: {message}")
    print(
        f"max |x - x_SLSQP| {r['x_error']:.1e}; max relative gradient error against "
        f"differences of SLSQP solutions {r['grad_error']:.1e}; batch solve "
        f"{r['time'] * 1e3:.1f} ms after compilation"
    )


if __name__ == "__main__":
    main()
