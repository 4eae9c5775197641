"""Randomized iterative sketching (sketch-and-project) as lineax linear solvers."""

import abc
import math
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.flatten_util as jfu
import jax.lax as lax
import jax.numpy as jnp
import jax.random as jr
import lineax as lx
from jaxtyping import Array, PyTree


_REFERENCES = r"""
    ??? cite "References"

        ```bibtex
        @article{gower2015randomized,
            title={Randomized Iterative Methods for Linear Systems},
            author={Gower, Robert M. and Richt{\'a}rik, Peter},
            journal={SIAM Journal on Matrix Analysis and Applications},
            volume={36},
            number={4},
            pages={1660--1690},
            year={2015}
        }

        @inproceedings{hong2023constrained,
            title={Constrained Optimization via Exact Augmented {L}agrangian and
                   Randomized Iterative Sketching},
            author={Hong, Ilgee and Na, Sen and Mahoney, Michael W. and
                    Kolar, Mladen},
            booktitle={Proceedings of the 40th International Conference on
                       Machine Learning},
            series={PMLR},
            volume={202},
            pages={13174--13198},
            year={2023}
        }
        ```
"""


class AbstractSketchSolver(lx.AbstractLinearSolver):
    """Sketch-and-project for a square system `K z = b` (Gower and Richtarik, 2015).

    Each step draws a random sketch `S` (an `N x b` matrix) and projects the iterate
    onto the solutions of the sketched system `S^T K z = S^T b`:

    `z <- z - K^T S (S^T K K^T S)^+ S^T (K z - b)`.

    Only `K^T S` is needed (`b` rows of `K` for a row sketch), computed from the
    operator's (transposed) matrix-vector product, so `K` is never formed unless the
    operator is a `lineax.MatrixLinearOperator`, whose rows are then read directly.
    The residual `K z - b` costs one full product and is checked every
    `check_every` steps.

    Accepted `options` (as in `lineax.linear_solve(..., options=...)`):

    - `key`: a `jax.random` key for the sketches (default `jax.random.key(0)`).
    - `y0`: a warm start (default zeros).
    - `tolerance`: an absolute tolerance on `||K z - b||_2` that replaces
        `atol + rtol * ||b||_2`.
    - `subspace`: a `(p, N)` array `V` of recycled sketch directions. Besides the
        random sketches, the iterate is projected onto `{z : V K z = V b}` (the
        sketch-and-project step with the fixed sketch `S = V^T`) at the start and
        after every residual check; it costs `p` transposed products per solve.
        With directions the random sketches converge slowly on (near-null
        directions of `K`, e.g. solutions of nearby systems) it removes the error
        along them.
    """

    rtol: eqx.AbstractVar[float]
    atol: eqx.AbstractVar[float]
    max_steps: eqx.AbstractVar[int]
    check_every: eqx.AbstractVar[int | None]

    uses_full_products: ClassVar[bool] = False

    @abc.abstractmethod
    def _block(self, size: int) -> int:
        """The sketch size `b` for a system of size `size`."""

    @abc.abstractmethod
    def _draw(self, words: Array, step: Array, size: int, dtype, perm):
        """The random sketch of step `step`, in the form `_apply_t` and `_project`
        understand, drawn from the key words `words` (see `_random_bits`)."""

    def _partition(self, key, size: int):
        """A random partition of the rows (block sketches), else `None`."""
        return None

    def _project(self, sketch, v: Array) -> Array:
        """`S^T v`."""
        return v[sketch]

    def _apply_t(self, operator, matrix, sketch, size, dtype, ravel) -> Array:
        """`K^T S`, shape `(size, b)`."""
        if matrix is not None:
            return matrix[sketch].T
        eye = jax.nn.one_hot(sketch, size, dtype=dtype)
        return jax.vmap(ravel.transpose_mv)(eye).T

    def init(self, operator: lx.AbstractLinearOperator, options: dict[str, Any]):
        if operator.in_size() != operator.out_size():
            raise ValueError(
                f"{type(self).__name__} needs a square operator, got "
                f"{operator.out_size()} x {operator.in_size()}."
            )
        return operator

    def compute(
        self, state, vector: PyTree[Array], options: dict[str, Any]
    ) -> tuple[PyTree[Array], lx.RESULTS, dict[str, Any]]:
        operator = state
        b, unravel_out = jfu.ravel_pytree(vector)
        in_struct = operator.in_structure()
        zeros_in = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), in_struct)
        z_flat0, unravel_in = jfu.ravel_pytree(zeros_in)
        size = b.size
        dtype = b.dtype
        ravel = _Ravel(operator, unravel_in, unravel_out)
        matrix = (
            operator.as_matrix()
            if isinstance(operator, lx.MatrixLinearOperator)
            else None
        )
        key = options.get("key", None)
        if key is None:
            key = jr.key(0)
        words = _key_words(key)
        y0 = options.get("y0", None)
        z = z_flat0.astype(dtype) if y0 is None else jfu.ravel_pytree(y0)[0]
        z = z.astype(dtype)
        tol = options.get("tolerance", None)
        if tol is None:
            tol = self.atol + self.rtol * jnp.linalg.norm(b)
        tol = jnp.asarray(tol, dtype)
        block = self._block(size)
        check_every = self.check_every
        if check_every is None:
            check_every = max(1, math.ceil(size / block))
            if self.uses_full_products:
                check_every = 4
        max_steps = self.max_steps
        perm = self._partition(key, size)

        def sketch_step(i, z):
            sketch = self._draw(words, i, size, dtype, perm)
            w = self._apply_t(operator, matrix, sketch, size, dtype, ravel)
            sr = w.T @ z - self._project(sketch, b)
            gram = w.T @ w
            if block == 1:
                g = gram[0, 0]
                safe = jnp.where(g > 0, g, jnp.ones_like(g))
                coef = jnp.where(g > 0, sr / safe, jnp.zeros_like(sr))
            else:
                coef = jnp.linalg.pinv(gram, hermitian=True) @ sr
            return z - w @ coef

        subspace = options.get("subspace", None)
        if subspace is not None:
            subspace = jnp.asarray(subspace, dtype)
            if subspace.ndim != 2 or subspace.shape[1] != size:
                raise ValueError(
                    f"`options['subspace']` must have shape (p, {size}), got "
                    f"{subspace.shape}."
                )
            if subspace.shape[0] == 0:
                subspace = None
        if subspace is not None:
            # The recycled sketch S = V^T: W = K^T V^T, and `project` is the
            # sketch-and-project step onto {z : V K z = V b}.
            w_rec = jax.vmap(ravel.transpose_mv)(subspace).T  # (size, p)
            q_rec, y_rec = _orthonormalise(w_rec, subspace @ b)

        def project(z):
            if subspace is None:
                return z
            # z - W (W^T W)^+ (W^T z - V b) = z - Q (Q^T z - y), with W = Q R
            # and y = R^{-T} V b.
            out = z - q_rec @ (q_rec.T @ z - y_rec)
            return jnp.where(jnp.all(jnp.isfinite(out)), out, z)

        def cond_fun(carry):
            _, steps, rnorm, first = carry
            more = (rnorm > tol) & (steps < max_steps) & jnp.isfinite(rnorm)
            return first | more

        # One loop body: `check_every` sketch steps (none on the first pass), the
        # recycled projection and a residual check, so each is traced once.
        def body_fun(carry):
            z, steps, _, first = carry
            count = jnp.where(first, 0, check_every)
            z = lax.fori_loop(steps, steps + count, sketch_step, z)
            z = project(z)
            rnorm = jnp.linalg.norm(ravel.mv(z) - b)
            return z, steps + count, rnorm, jnp.array(False)

        carry = (z, jnp.array(0), jnp.zeros((), dtype), jnp.array(True))
        z, steps, rnorm, _ = lax.while_loop(cond_fun, body_fun, carry)
        result = lx.RESULTS.where(
            rnorm <= tol, lx.RESULTS.successful, lx.RESULTS.max_steps_reached
        )
        result = lx.RESULTS.where(jnp.isfinite(rnorm), result, lx.RESULTS.breakdown)
        stats = {
            "num_steps": steps,
            "max_steps": max_steps,
            "residual_norm": rnorm,
            "block_size": block,
        }
        return unravel_in(z), result, stats

    def transpose(self, state, options: dict[str, Any]):
        return state.transpose(), options

    def conj(self, state, options: dict[str, Any]):
        return lx.conj(state), options

    def assume_full_rank(self) -> bool:
        return False


def _orthonormalise(w: Array, rhs: Array) -> tuple[Array, Array]:
    """Modified Gram-Schmidt `W = Q R` of the few columns of `W`, and `R^{-T} rhs`.

    A column that is (numerically) in the span of the previous ones is dropped (its
    column of `Q` and entry of the result are zero), as a pseudo-inverse would drop
    it. Written out for the `p` (static, small) recycled directions: cheaper to
    compile than a pseudo-inverse's eigendecomposition."""
    p = w.shape[1]
    # The cut-off of `jnp.linalg.pinv(W^T W, hermitian=True)` (eigenvalues below
    # 10 p eps times the largest), on singular values.
    cutoff = math.sqrt(10 * p * float(jnp.finfo(w.dtype).eps))
    scale = jnp.max(jnp.linalg.norm(w, axis=0))
    qs, ys = [], []
    for k in range(p):
        v = w[:, k]
        coef = []
        for q in qs:
            r = jnp.dot(q, v)
            v = v - r * q
            coef.append(r)
        r_kk = jnp.linalg.norm(v)
        keep = r_kk > cutoff * scale
        safe = jnp.where(keep, r_kk, 1)
        qs.append(jnp.where(keep, v / safe, 0))
        y = rhs[k] - sum((c * yj for c, yj in zip(coef, ys)), jnp.zeros((), w.dtype))
        ys.append(jnp.where(keep, y / safe, 0))
    return jnp.stack(qs, axis=1), jnp.stack(ys)


def _key_words(key) -> Array:
    """The words of a `jax.random` key (typed, or raw key data) as a flat `uint32`
    array."""
    if jnp.issubdtype(jnp.asarray(key).dtype, jax.dtypes.prng_key):
        key = jr.key_data(key)
    return jnp.ravel(jnp.asarray(key)).astype(jnp.uint32)


def _as_typed_key(key):
    """`key` as a typed `jax.random` key (raw data of the default implementation is
    wrapped; other raw words are hashed into one)."""
    if jnp.issubdtype(jnp.asarray(key).dtype, jax.dtypes.prng_key):
        return key
    words = _key_words(key)
    if words.shape == (2,):
        return jr.wrap_key_data(words)
    return jr.key(_mix(_fold(words, jnp.uint32(0))))


def _mix(x: Array) -> Array:
    """A 32-bit integer finaliser (Wellons' `lowbias32`): a bijection of `uint32`
    that spreads every input bit over the output."""
    x = x ^ (x >> 16)
    x = x * jnp.uint32(0x7FEB352D)
    x = x ^ (x >> 15)
    x = x * jnp.uint32(0x846CA68B)
    return x ^ (x >> 16)


def _fold(words: Array, counter: Array) -> Array:
    h = jnp.uint32(0x9E3779B9)
    for k in range(words.shape[0]):
        h = _mix(h ^ words[k])
    return _mix(h ^ jnp.asarray(counter).astype(jnp.uint32))


def _random_bits(words: Array, counter: Array, shape) -> Array:
    """Counter-based random `uint32`s: a hash of the key words, the step counter
    and the position. The sketches draw a few indices per step; a hash costs a few
    integer operations where a threefry draw compiles to hundreds."""
    h = _fold(words, counter)
    count = math.prod(shape)
    lanes = jnp.arange(count, dtype=jnp.uint32) * jnp.uint32(0x85EBCA6B)
    return _mix(_mix(h ^ lanes) + jnp.uint32(0x27D4EB2F)).reshape(shape)


def _random_index(words: Array, counter: Array, size: int, count: int) -> Array:
    """`count` indices in `[0, size)`, uniform up to a bias of `size / 2^32`."""
    bits = _random_bits(words, counter, (count,))
    return (bits % jnp.uint32(size)).astype(jnp.int32)


def _random_normal(words: Array, counter: Array, shape, dtype) -> Array:
    """Standard normals by Box-Muller from two hashed uniforms per entry."""
    bits = _random_bits(words, counter, (2, *shape))
    scale = 2.0**-32
    u1 = (bits[0].astype(dtype) + 0.5) * scale
    u2 = (bits[1].astype(dtype) + 0.5) * scale
    return jnp.sqrt(-2 * jnp.log(u1)) * jnp.cos(2 * jnp.pi * u2)


class _Ravel(eqx.Module):
    """Flat-vector views of an operator's product and transposed product."""

    operator: lx.AbstractLinearOperator
    unravel_in: Any
    unravel_out: Any

    def mv(self, z):
        return jfu.ravel_pytree(self.operator.mv(self.unravel_in(z)))[0]

    def transpose_mv(self, v):
        out = self.operator.transpose().mv(self.unravel_out(v))
        return jfu.ravel_pytree(out)[0]


class RowSketch(AbstractSketchSolver):
    """Randomized Kaczmarz: sketch-and-project with one row of `K` per step, drawn
    uniformly at random (`S = e_i`).

    A step costs one row of `K` (for the KKT matrices of `sciopt.nlp`, one
    Hessian-vector product and one constraint gradient) and `O(N)` flops.
    """

    rtol: float = 1e-6
    atol: float = 0.0
    max_steps: int = 100_000
    check_every: int | None = None

    def _block(self, size):
        return 1

    def _draw(self, words, step, size, dtype, perm):
        return _random_index(words, step, size, 1)


RowSketch.__init__.__doc__ = f"""**Arguments:**

- `rtol`, `atol`: stop when `||K z - b||_2 <= atol + rtol ||b||_2` (or below the
    `tolerance` option).
- `max_steps`: the largest number of sketch steps (rows used).
- `check_every`: sketch steps between residual checks (default: `N`, one pass).
{_REFERENCES}
"""


class BlockSketch(AbstractSketchSolver):
    """Block sketch-and-project: each step projects onto `block_size` rows of `K`,
    one block of a random partition of the rows, chosen uniformly at random.

    A step costs `block_size` rows of `K` and a `block_size x block_size`
    pseudo-inverse. With `block_size >= N` one step solves the system exactly.
    """

    block_size: int = 8
    rtol: float = 1e-6
    atol: float = 0.0
    max_steps: int = 100_000
    check_every: int | None = None

    def __check_init__(self):
        if not isinstance(self.block_size, int) or self.block_size < 1:
            raise ValueError(
                f"`block_size` must be a positive int, got {self.block_size!r}."
            )

    def _block(self, size):
        return min(self.block_size, size)

    def _partition(self, key, size):
        block = self._block(size)
        n_blocks = math.ceil(size / block)
        perm = jr.permutation(_as_typed_key(key), size)
        return jnp.concatenate([perm, perm[: n_blocks * block - size]])

    def _draw(self, words, step, size, dtype, perm):
        block = self._block(size)
        n_blocks = math.ceil(size / block)
        j = _random_index(words, step, n_blocks, 1)[0]
        return lax.dynamic_slice(perm, (j * block,), (block,))


BlockSketch.__init__.__doc__ = f"""**Arguments:**

- `block_size`: rows per sketch (clipped to `N`).
- `rtol`, `atol`, `max_steps`, `check_every`: as for `RowSketch`
    (`check_every` defaults to `ceil(N / block_size)`, one pass).
{_REFERENCES}
"""


class GaussianSketch(AbstractSketchSolver):
    """Gaussian sketch-and-project: `S` has `block_size` standard normal columns.

    A step costs `block_size` full (transposed) products with `K`, like a Krylov
    step, but stores no basis.
    """

    block_size: int = 1
    rtol: float = 1e-6
    atol: float = 0.0
    max_steps: int = 100_000
    check_every: int | None = None

    uses_full_products: ClassVar[bool] = True

    def __check_init__(self):
        if not isinstance(self.block_size, int) or self.block_size < 1:
            raise ValueError(
                f"`block_size` must be a positive int, got {self.block_size!r}."
            )

    def _block(self, size):
        return min(self.block_size, size)

    def _draw(self, words, step, size, dtype, perm):
        return _random_normal(words, step, (size, self._block(size)), dtype)

    def _project(self, sketch, v):
        return sketch.T @ v

    def _apply_t(self, operator, matrix, sketch, size, dtype, ravel):
        if matrix is not None:
            return matrix.T @ sketch
        return jax.vmap(ravel.transpose_mv, in_axes=1, out_axes=1)(sketch)


GaussianSketch.__init__.__doc__ = f"""**Arguments:**

- `block_size`: number of Gaussian sketch vectors per step.
- `rtol`, `atol`, `max_steps`, `check_every`: as for `RowSketch`
    (`check_every` defaults to 4).
{_REFERENCES}
"""
