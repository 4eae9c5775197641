import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy
from sciopt.symbolic import lower, lower_vector, parse


def test_lowered_formula_matches_hand_written_function_and_gradient():
    fn = lower(
        "-x1*x2*x3*x4 + a*sin(x1)^2 + exp(x2)/x3", ["x1", "x2", "x3", "x4"], ["a"]
    )
    x = jnp.array([0.3, -0.7, 1.5, 2.0])
    a = jnp.array([2.5])

    def hand(x, a):
        return (
            -x[0] * x[1] * x[2] * x[3]
            + a[0] * jnp.sin(x[0]) ** 2
            + jnp.exp(x[1]) / x[2]
        )

    np.testing.assert_allclose(fn(x, a), hand(x, a), rtol=1e-14)
    np.testing.assert_allclose(jax.grad(fn)(x, a), jax.grad(hand)(x, a), rtol=1e-14)
    np.testing.assert_allclose(jax.jit(fn)(x, {"a": 2.5}), hand(x, a), rtol=1e-14)


def test_lower_vector_shapes_dtypes_and_jacobian():
    fn = lower_vector(["x1**3 + x2**2 - 1", "x1**2*x2", "3"], ["x1", "x2"])
    x32 = jnp.array([1.0, 2.0], dtype=jnp.float32)
    out = fn(x32)
    assert out.shape == (3,) and out.dtype == jnp.float32
    np.testing.assert_allclose(out, [4.0, 2.0, 3.0])
    jac = jax.jacfwd(fn)(jnp.array([1.0, 2.0]))
    np.testing.assert_allclose(jac, [[3.0, 4.0], [4.0, 1.0], [0.0, 0.0]])
    batched = jax.vmap(fn)(jnp.ones((5, 2)))
    assert batched.shape == (5, 3)


def test_sympy_objects_are_accepted():
    x1, x2 = sympy.symbols("x1 x2")
    fn = lower(x1**2 + sympy.cos(x2), ["x1", "x2"])
    np.testing.assert_allclose(fn(jnp.array([2.0, 0.0])), 5.0)


@pytest.mark.parametrize(
    "formula, match",
    [
        ("x1 + y", "unknown symbols \\['y'\\]"),
        ("x1 +* 2", "Could not parse"),
        ("foo(x1)", "unknown functions"),
        ("x1 = 2", "Could not parse|not a scalar"),
    ],
)
def test_bad_formulas_name_the_expression(formula, match):
    with pytest.raises(ValueError, match=match):
        parse(formula, ["x1"])


def test_bad_arguments_raise():
    fn = lower("x1 * a", ["x1"], ["a"])
    with pytest.raises(ValueError, match="parameters"):
        fn(jnp.ones(1))
    with pytest.raises(ValueError, match="shape"):
        fn(jnp.ones(2), jnp.ones(1))
    with pytest.raises(ValueError, match="missing"):
        fn(jnp.ones(1), {"b": 1.0})
    with pytest.raises(ValueError, match="distinct"):
        lower("x1", ["x1"], ["x1"])
    with pytest.raises(TypeError):
        parse(object(), ["x1"])
