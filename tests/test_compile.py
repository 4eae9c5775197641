"""sciopt's own jit: XLA compiler options of the programs sciopt compiles (CPU)."""

import jax
import jax.numpy as jnp
import pytest
import sciopt


CIRCLE = sciopt.nlp.EqualityConstrainedProblem(
    objective=lambda x, r: x[0] + x[1],
    constraints=lambda x, r: jnp.array([x[0] ** 2 + x[1] ** 2 - r**2]),
)


@pytest.fixture
def bogus_options():
    # an option XLA does not know makes the compilation fail, which shows where the
    # options reach XLA and where they do not
    sciopt.set_cpu_compiler_options({"sciopt_no_such_option": True})
    yield
    sciopt.set_cpu_compiler_options()


def _solve(r):
    # min x1 + x2 s.t. ||x|| = r: x* = -r / sqrt(2) (1, 1)
    solver = sciopt.nlp.AdaSketchNewton()
    return sciopt.solve(CIRCLE, solver, jnp.array([-1.0, -0.5]), args=r).value


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="CPU compiler options")
def test_larger_programs_compile_with_xla_defaults():
    # the options apply to programs of at most `max_numbers` numbers of arrays
    sciopt.set_cpu_compiler_options({"sciopt_no_such_option": True}, max_numbers=2)
    try:
        x = _solve(jnp.asarray(1.0))  # the start alone holds two numbers, args one
    finally:
        sciopt.set_cpu_compiler_options()
    assert jnp.allclose(x, -jnp.sqrt(0.5), atol=1e-6)
    with pytest.raises(TypeError, match="max_numbers"):
        sciopt.set_cpu_compiler_options(max_numbers=1.5)


def test_default_cpu_options_turn_the_fusion_emitters_off():
    assert sciopt.cpu_compiler_options() == {"xla_cpu_use_fusion_emitters": False}
    sciopt.set_cpu_compiler_options(None)
    try:
        assert sciopt.cpu_compiler_options() == {}
    finally:
        sciopt.set_cpu_compiler_options()
    assert sciopt.cpu_compiler_options() == {"xla_cpu_use_fusion_emitters": False}


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="CPU compiler options")
def test_options_reach_the_top_level_and_vmap_programs(bogus_options):
    with pytest.raises(Exception, match="sciopt_no_such_option"):
        _solve(jnp.asarray(1.0))
    with pytest.raises(Exception, match="sciopt_no_such_option"):
        jax.vmap(_solve)(jnp.array([1.0, 2.0]))


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="CPU compiler options")
def test_a_callers_jit_compiles_with_the_callers_options(bogus_options):
    # JAX accepts compiler options only on a top-level jit: inside the caller's jit
    # sciopt's options are not applied; a top-level grad's forward solve is a
    # top-level program, and takes them
    x = jax.jit(_solve)(jnp.asarray(1.0))
    assert jnp.allclose(x, -jnp.sqrt(0.5), atol=1e-6)
    g = jax.jit(jax.grad(lambda r: jnp.sum(_solve(r))))(jnp.asarray(1.0))
    assert jnp.allclose(g, -jnp.sqrt(2.0), atol=1e-5)
    with pytest.raises(Exception, match="sciopt_no_such_option"):
        jax.grad(lambda r: jnp.sum(_solve(r)))(jnp.asarray(1.0))


def test_solutions_do_not_depend_on_the_options():
    with_default = _solve(jnp.asarray(2.0))
    sciopt.set_cpu_compiler_options(None)
    try:
        with_xla_defaults = _solve(jnp.asarray(2.0))
    finally:
        sciopt.set_cpu_compiler_options()
    assert jnp.allclose(with_default, with_xla_defaults, rtol=1e-12, atol=1e-12)
    assert jnp.allclose(with_default, -jnp.sqrt(2.0), atol=1e-6)


def test_the_loop_is_traced_without_its_derivative_rule_only_where_none_is_needed(
    monkeypatch,
):
    # at the top level and under vmap nothing can differentiate the solution: the
    # loop is traced without the implicit adjoint's custom derivative; a top-level
    # jvp differentiates it outside the loop (the same forward program); under jit
    # (which may be differentiated later) the rule is traced with the loop
    from sciopt import _solve as solve_module

    calls = []
    apply = solve_module._PrimalOnly.apply

    def spy(self, *args):
        calls.append(True)
        return apply(self, *args)

    monkeypatch.setattr(solve_module._PrimalOnly, "apply", spy)
    r = jnp.asarray(1.3)
    expected = -1.3 / jnp.sqrt(2.0)
    for run, primal_only in (
        (lambda: _solve(r), True),
        (lambda: jax.vmap(_solve)(jnp.stack([r, r]))[0], True),
        (lambda: jax.jit(_solve)(r), False),
        (lambda: jax.jvp(_solve, (r,), (jnp.asarray(1.0),))[0], True),
        (lambda: jax.jit(lambda r: jax.jvp(_solve, (r,), (r,))[0])(r), False),
    ):
        jax.clear_caches()
        calls.clear()
        assert jnp.allclose(run(), expected, atol=1e-6)
        assert bool(calls) == primal_only
    # jit of grad and grad of jit differentiate it
    g = jax.grad(lambda r: jnp.sum(jax.jit(_solve)(r)))(r)
    assert jnp.allclose(g, -jnp.sqrt(2.0), atol=1e-5)
    g = jax.jit(jax.grad(lambda r: jnp.sum(_solve(r))))(r)
    assert jnp.allclose(g, -jnp.sqrt(2.0), atol=1e-5)


def test_a_top_level_grad_reuses_the_forward_program(monkeypatch):
    # jax.grad / jax.jvp called at the top level differentiate the solve outside its
    # compiled loop: the forward solve is the program of the undifferentiated call,
    # traced and compiled once for both
    from sciopt import _adjoint, _solve as solve_module

    traced = {"primal": 0, "implicit": 0}
    primal_apply = solve_module._PrimalOnly.apply
    implicit_apply = _adjoint.ImplicitAdjoint.apply

    def primal_spy(self, *args):
        traced["primal"] += 1
        return primal_apply(self, *args)

    def implicit_spy(self, *args):
        traced["implicit"] += 1
        return implicit_apply(self, *args)

    monkeypatch.setattr(solve_module._PrimalOnly, "apply", primal_spy)
    monkeypatch.setattr(_adjoint.ImplicitAdjoint, "apply", implicit_spy)
    jax.clear_caches()
    r = jnp.asarray(1.7)
    _solve(r)
    assert traced == {"primal": 1, "implicit": 0}
    g = jax.grad(lambda r: jnp.sum(_solve(r)))(r + 1.0)
    assert jnp.allclose(g, -jnp.sqrt(2.0), atol=1e-5)
    _, t = jax.jvp(_solve, (r,), (jnp.asarray(2.0),))
    assert jnp.allclose(t, -2.0 / jnp.sqrt(2.0), atol=1e-5)
    assert traced == {"primal": 1, "implicit": 0}


def test_a_top_level_grad_with_new_values_compiles_nothing():
    # a Python float differentiated by jax.grad arrives as a typed float: it must not
    # become a static value of the programs (every new value would compile again)
    from .helpers import count_compilations

    grad = jax.grad(lambda r: jnp.sum(_solve(r)))
    assert jnp.allclose(grad(1.0), -jnp.sqrt(2.0), atol=1e-5)
    with count_compilations() as compiled:
        g = grad(2.5)
    assert compiled[0] == 0
    assert jnp.allclose(g, -jnp.sqrt(2.0), atol=1e-5)


def test_tracers_in_callables_are_found():
    # the top-level gradient path is taken only when no callable of the problem
    # holds a traced value (closure, default, bound object or partial argument)
    import functools

    from sciopt._solve import _holds_tracers

    seen = {}

    def probe(r):
        def closure(x):
            return x * r

        def default(x, s=r):
            return x * s

        class Holder:
            def __init__(self):
                self.value = r

            def method(self, x):
                return x * self.value

        seen["closure"] = _holds_tracers([closure])
        seen["default"] = _holds_tracers([default])
        seen["method"] = _holds_tracers([Holder().method])
        seen["partial"] = _holds_tracers([functools.partial(lambda x, s: x * s, s=r)])
        seen["nested"] = _holds_tracers([lambda x: closure(x)])
        seen["clean"] = _holds_tracers([lambda x: 2 * x, CIRCLE])
        return r

    jax.grad(probe)(1.0)
    assert seen == {
        "closure": True,
        "default": True,
        "method": True,
        "partial": True,
        "nested": True,
        "clean": False,
    }
