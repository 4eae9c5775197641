"""A formula parser that never evaluates Python.

Formulas come from problem files and from users, so they are data: this module reads
them with Python's own grammar (`ast.parse(..., mode="eval")`), checks every node of
the tree against a whitelist, and builds the sympy expression node by node. Nothing is
passed to `eval`, `exec`, `sympy.sympify` or `sympy.parse_expr` (both of which call
`eval`).

The grammar: numbers (`2`, `0.5`, `1e-3`), the declared names (variables and
parameters), the constants `pi` and `E`, the operators `+ - * / % **` and `^` (a power,
exactly like `**`), unary `+`/`-`, parentheses, and calls of the whitelisted functions
in `FUNCTIONS` with positional arguments.
"""

import ast
import keyword
from collections.abc import Callable, Collection, Sequence

import sympy


#: Longest formula accepted, in characters.
MAX_LENGTH = 10_000
#: Deepest nesting accepted (parentheses, function calls, powers, unary signs; a long
#: chain `a + b + c + ...` or `a * b * c * ...` counts as one level).
MAX_DEPTH = 100
#: Largest exact number a formula may create, in bits (about 3000 decimal digits); an
#: exact power is refused before it is computed when it would exceed this.
MAX_BITS = 10_000
#: Float literals keep at most this many significant digits.
MAX_FLOAT_DIGITS = 50

#: The functions a formula may call, by name.
FUNCTIONS: dict[str, Callable] = {
    name: getattr(sympy, name)
    for name in (
        "sin cos tan asin acos atan atan2 sinh cosh tanh asinh acosh atanh exp log "
        "sqrt Abs sign Min Max erf floor ceiling"
    ).split()
}
FUNCTIONS["abs"] = sympy.Abs
FUNCTIONS["ln"] = sympy.log
FUNCTIONS["Mod"] = sympy.Mod  # how sympy prints `a % b`: str(expr) parses back

#: The named constants a formula may use.
CONSTANTS: dict[str, sympy.Expr] = {"pi": sympy.pi, "E": sympy.E}

_SYNTAX = (
    "A formula may contain numbers, the declared variables and parameters, the "
    "constants pi and E, + - * / % ** and ^ (a power, like **), parentheses and calls "
    f"of the functions {', '.join(sorted(FUNCTIONS, key=str.lower))}."
)

_OPERATORS = {
    ast.FloorDiv: "//",
    ast.MatMult: "@",
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.BitOr: "|",
    ast.BitAnd: "&",
    ast.BitXor: "^",
    ast.Not: "not",
    ast.Invert: "~",
}

_CONSTRUCTS = {
    ast.Attribute: "attribute access",
    ast.Subscript: "subscripting ([...])",
    ast.Lambda: "a lambda",
    ast.ListComp: "a comprehension",
    ast.SetComp: "a comprehension",
    ast.DictComp: "a comprehension",
    ast.GeneratorExp: "a generator expression",
    ast.Starred: "a starred argument (*)",
    ast.JoinedStr: "an f-string",
    ast.FormattedValue: "an f-string",
    ast.NamedExpr: "an assignment expression (:=)",
    ast.BoolOp: "a boolean operator (and/or)",
    ast.Compare: "a comparison",
    ast.IfExp: "a conditional expression (if/else)",
    ast.List: "a list",
    ast.Tuple: "a tuple",
    ast.Set: "a set",
    ast.Dict: "a dict",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.YieldFrom: "yield",
    ast.Slice: "a slice",
}


def _quote(text: str) -> str:
    """`repr` of a formula, shortened for error messages."""
    return repr(text) if len(text) <= 200 else repr(text[:200]) + "... (truncated)"


def _describe(node: ast.AST) -> str:
    """Names the construct of a node that is not in the grammar."""
    if isinstance(node, ast.Attribute):
        return f"attribute access (.{node.attr})"
    if isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, str):
            return "a string"
        if isinstance(value, bytes):
            return "bytes"
        if isinstance(value, bool) or value is None or value is Ellipsis:
            return f"the constant {value!r}"
        if isinstance(value, complex):
            return "a complex number"
        return f"the constant {value!r}"
    if isinstance(node, (ast.BinOp, ast.UnaryOp)) and type(node.op) in _OPERATORS:
        return f"the operator {_OPERATORS[type(node.op)]}"
    if isinstance(node, ast.keyword):
        return "a keyword argument" + (f" ({node.arg}=)" if node.arg else " (**)")
    if isinstance(node, ast.Call):
        return "a call of something other than a function name"
    return _CONSTRUCTS.get(type(node), f"a {type(node).__name__} expression")


def _bits(expr: sympy.Basic) -> int:
    """The size, in bits, of the largest exact number in `expr` (0 if none)."""
    if isinstance(expr, sympy.Rational):
        return max(int(expr.p).bit_length(), int(expr.q).bit_length())
    return max(
        (
            max(int(r.p).bit_length(), int(r.q).bit_length())
            for r in expr.atoms(sympy.Rational)
        ),
        default=0,
    )


class _FormulaError(ValueError):
    pass


class _Builder:
    """Checks a syntax tree against the grammar and builds its sympy expression."""

    def __init__(self, text: str, source: str, names: Collection[str] | None):
        self.text = text  # the formula as given (for messages)
        self.source = source  # the formula as parsed (`^` replaced by `**`)
        self.names = names  # None: any name is a symbol (syntax check only)

    def fail(self, why: str) -> _FormulaError:
        return _FormulaError(f"The formula {_quote(self.text)} {why}")

    def refuse(self, node: ast.AST) -> _FormulaError:
        return self.fail(
            f"uses {_describe(node)}, which a formula may not contain. {_SYNTAX}"
        )

    # -- pass 1: every node is in the grammar; every name is known ---------------

    def check(self, tree: ast.Expression) -> None:
        function_nodes: set[int] = set()
        unknown_symbols: set[str] = set()
        unknown_functions: set[str] = set()
        for node in ast.walk(tree):  # breadth first, without recursion
            if isinstance(
                node, (ast.Expression, ast.expr_context, ast.operator, ast.unaryop)
            ):
                continue  # operators are checked with their BinOp / UnaryOp
            if isinstance(node, ast.BinOp):
                if not isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div)):
                    if not isinstance(node.op, (ast.Pow, ast.Mod)):
                        raise self.refuse(node)
            elif isinstance(node, ast.UnaryOp):
                if not isinstance(node.op, (ast.USub, ast.UAdd)):
                    raise self.refuse(node)
            elif isinstance(node, ast.Constant):
                if isinstance(node.value, bool) or not isinstance(
                    node.value, (int, float)
                ):
                    raise self.refuse(node)
            elif isinstance(node, ast.Call):
                if node.keywords:
                    raise self.refuse(node.keywords[0])
                for arg in node.args:
                    if isinstance(arg, ast.Starred):
                        raise self.refuse(arg)
                func = node.func
                if isinstance(func, ast.Name):
                    function_nodes.add(id(func))
                elif not isinstance(func, (ast.Attribute, ast.Subscript, ast.Lambda)):
                    raise self.refuse(node)  # those three are refused as themselves
            elif isinstance(node, ast.Name):
                name = node.id
                if name.startswith("__"):
                    raise self.fail(
                        f"uses the name {name!r}: names beginning with '__' are not "
                        f"allowed. {_SYNTAX}"
                    )
                declared = self.names is None or name in self.names
                if id(node) in function_nodes:
                    if self.names is not None and name in self.names:
                        raise self.fail(
                            f"calls {name!r}, which is a variable or parameter, not a "
                            "function; write a product with `*`, e.g. "
                            f"'{name}*(x + 1)'."
                        )
                    if name not in FUNCTIONS:
                        unknown_functions.add(name)
                elif not declared and name not in CONSTANTS:
                    if name in FUNCTIONS:
                        raise self.fail(
                            f"uses the function {name!r} without calling it; write "
                            f"e.g. '{name}(x)'."
                        )
                    unknown_symbols.add(name)
            else:
                raise self.refuse(node)
        if unknown_symbols:
            raise self.fail(
                f"uses unknown symbols {sorted(unknown_symbols)}; the known symbols "
                f"are {sorted(self.names or ())} and the constants pi and E. Declare "
                "them as variables or parameters."
            )
        if unknown_functions:
            raise self.fail(
                f"calls unknown functions {sorted(unknown_functions)}; the known "
                f"functions are {sorted(FUNCTIONS, key=str.lower)}."
            )

    # -- pass 2: build, bounding depth and the size of exact numbers --------------

    def build(self, node: ast.AST, depth: int = 1) -> sympy.Expr:
        if depth > MAX_DEPTH:
            raise self.fail(
                f"is nested more than {MAX_DEPTH} levels deep; split it or simplify it."
            )
        if isinstance(node, ast.Constant):
            return self.number(node)
        if isinstance(node, ast.Name):
            declared = self.names is not None and node.id in self.names
            if node.id in CONSTANTS and not declared:
                return CONSTANTS[node.id]
            return sympy.Symbol(node.id)
        if isinstance(node, ast.UnaryOp):
            operand = self.build(node.operand, depth + 1)
            return -operand if isinstance(node.op, ast.USub) else operand
        if isinstance(node, ast.Call):
            name = node.func.id
            if not node.args:
                raise self.fail(f"calls {name}() without arguments.")
            args = [self.build(a, depth + 1) for a in node.args]
            try:
                return FUNCTIONS[name](*args)
            except (TypeError, ValueError) as e:
                raise self.fail(f"calls {name} with {len(args)} arguments: {e}")
        assert isinstance(node, ast.BinOp)
        if isinstance(node.op, (ast.Add, ast.Sub)):
            # a + b - c + ...: one level, built by one `Add` (sympy's sum is
            # canonical, so this equals the left-to-right sum, without its quadratic
            # cost on long sums).
            terms = []
            while isinstance(node, ast.BinOp) and isinstance(
                node.op, (ast.Add, ast.Sub)
            ):
                term = self.build(node.right, depth + 1)
                terms.append(-term if isinstance(node.op, ast.Sub) else term)
                node = node.left
            terms.append(self.build(node, depth + 1))
            return sympy.Add(*reversed(terms))
        if isinstance(node.op, (ast.Mult, ast.Div)):
            # a * b / c * ...: one level, multiplied left to right as Python does
            # (sympy's product of a number and a sum distributes, so the order
            # matters).
            factors = []
            while isinstance(node, ast.BinOp) and isinstance(
                node.op, (ast.Mult, ast.Div)
            ):
                factors.append((node.op, self.build(node.right, depth + 1)))
                node = node.left
            acc = self.build(node, depth + 1)
            for op, factor in reversed(factors):
                if _bits(acc) + _bits(factor) > MAX_BITS:
                    raise self.too_large()
                acc = acc * factor if isinstance(op, ast.Mult) else acc / factor
            return acc
        left = self.build(node.left, depth + 1)
        right = self.build(node.right, depth + 1)
        if isinstance(node.op, ast.Mod):
            return sympy.Mod(left, right)
        # A power: refuse an exact exponent that would build a huge number before
        # sympy computes it (e.g. 9**9**9**9, or (2*x)**10**100 whose coefficient
        # sympy expands).
        if isinstance(right, sympy.Rational) and (
            abs(right) > MAX_BITS or abs(right) * max(_bits(left), 1) > MAX_BITS
        ):
            raise self.too_large()
        return left**right

    def number(self, node: ast.Constant) -> sympy.Expr:
        value = node.value
        if isinstance(value, int):
            if value.bit_length() > MAX_BITS:
                raise self.too_large()
            return sympy.Integer(value)
        # A float keeps the digits written (as sympy's parser does), at most
        # MAX_FLOAT_DIGITS of them.
        literal = ast.get_source_segment(self.source, node) or repr(value)
        digits = sum(c.isdigit() for c in literal.lower().split("e")[0])
        if digits > MAX_FLOAT_DIGITS:
            return sympy.Float(literal, MAX_FLOAT_DIGITS)
        return sympy.Float(literal)

    def too_large(self) -> _FormulaError:
        return self.fail(
            f"creates an exact number of more than {MAX_BITS} bits (e.g. a huge "
            "integer power such as 9**9**9); write large exponents as floats (e.g. "
            "2.0**1e4) or simplify the formula."
        )


def _check_name(name: object) -> None:
    if (
        not isinstance(name, str)
        or not name.isidentifier()
        or name.startswith("__")
        or name in ("True", "False", "None")
        or keyword.iskeyword(name)
    ):
        raise ValueError(
            f"{name!r} is not a valid variable or parameter name: use letters, digits "
            "and underscores, starting with a letter (e.g. 'x1', 'alpha')."
        )


def _parse_text(text: str, names: Collection[str] | None) -> sympy.Expr:
    if len(text) > MAX_LENGTH:
        raise ValueError(
            f"The formula {_quote(text)} has {len(text)} characters; formulas may "
            f"have at most {MAX_LENGTH}."
        )
    # `^` is a power, with the precedence and right-associativity of `**` (as with
    # sympy's `convert_xor`): replace the token before parsing. A `^` inside a string
    # or comment changes nothing that matters: strings are refused, comments ignored.
    source = text.strip().replace("^", "**")
    depth = 0
    for c in source:  # Python's own parser stops at 200 nested parentheses
        depth += c in "([{"
        depth -= c in ")]}"
        if depth > MAX_DEPTH:
            raise ValueError(
                f"The formula {_quote(text)} is nested more than {MAX_DEPTH} levels "
                "deep; split it or simplify it."
            )
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as e:
        raise ValueError(
            f"Could not parse the formula {_quote(text)}: {e.msg}. Use Python/sympy "
            f"syntax, e.g. 'x1**2 + sin(x2)'. {_SYNTAX}"
        ) from None
    except (RecursionError, MemoryError, ValueError):
        raise ValueError(
            f"Could not parse the formula {_quote(text)}: it is nested too deeply or "
            "is too long a chain of operations; split it or simplify it."
        ) from None
    builder = _Builder(text, source, names)
    builder.check(tree)
    try:
        expr = builder.build(tree.body)
    except RecursionError:
        raise builder.fail("is nested too deeply; split it or simplify it.") from None
    bad = [
        str(c)
        for c in (sympy.zoo, sympy.oo, -sympy.oo, sympy.nan, sympy.I)
        if expr.has(c)
    ]
    if bad:
        raise builder.fail(
            f"evaluates to an infinite, undefined or complex constant ({bad[0]}), e.g. "
            "from 1/0, log(0) or sqrt(-1); formulas must be real and finite."
        )
    return expr


def check_formula(text: str) -> None:
    """Raise `ValueError` unless `text` follows the formula grammar.

    The names it uses are not checked (any name not beginning with `__` is accepted):
    this validates a formula before the names it may use are known, e.g. when a
    problem file is loaded. `sciopt.symbolic.parse` checks the names.
    """
    if not isinstance(text, str):
        raise TypeError(f"A formula must be a string, got {type(text).__name__}.")
    _parse_text(text, None)


def parse(
    expression: str | sympy.Expr | float | int,
    names: Sequence[str],
) -> sympy.Expr:
    """Parse `expression` (a string or a sympy expression) over the symbols `names`.

    A string is read as data, never run as code: it is parsed by Python's `ast`
    module and every node is checked against a whitelist before the sympy expression
    is built from the nodes. The grammar: numbers, the names in `names`, the
    constants `pi` and `E`, `+ - * / % **`, `^` (a power, exactly like `**`),
    unary `+`/`-`, parentheses, and calls with positional arguments of `sin cos tan
    asin acos atan atan2 sinh cosh tanh asinh acosh atanh exp log ln sqrt Abs abs
    sign Min Max Mod erf floor ceiling`. Anything else (attribute access, subscripts,
    strings, lambdas, comprehensions, comparisons, keyword arguments, names
    beginning with `__`, ...) is refused. A formula has at most 10 000 characters
    and 100 levels of nesting, and may not build exact numbers of more than 10 000
    bits (e.g. `9**9**9**9`).

    **Arguments:**

    - `expression`: e.g. `"x1**2 + sin(x2)"`; a number; or a sympy expression (used
      as is).
    - `names`: the symbol names the expression may use (variables and parameters);
      each a Python identifier not beginning with `__`.

    **Returns:**

    A sympy expression.

    **Raises:**

    `ValueError` quoting the expression when it does not parse, uses a construct
    outside the grammar (naming it), uses a symbol outside `names` or a function
    outside the whitelist, or is too long, too deep or too large. `TypeError` when
    it is neither a string, a number nor a sympy expression.
    """
    names = list(names)
    for name in names:
        _check_name(name)
    if isinstance(expression, (int, float)):
        return sympy.sympify(expression)  # a Python number: no string is evaluated
    if isinstance(expression, str):
        try:
            expr = _parse_text(expression, set(names))
        except _FormulaError as e:
            raise ValueError(str(e)) from None
    elif isinstance(expression, sympy.Basic):
        expr = expression
    else:
        raise TypeError(
            f"A formula must be a string or a sympy expression, got "
            f"{type(expression).__name__}: {expression!r}."
        )
    if not isinstance(expr, sympy.Expr):
        raise ValueError(
            f"The formula {_quote(str(expression))} is not a scalar expression (got "
            f"{type(expr).__name__})."
        )
    unknown = sorted(str(s) for s in expr.free_symbols if str(s) not in names)
    if unknown:
        raise ValueError(
            f"The formula {_quote(str(expression))} uses unknown symbols {unknown}; "
            f"the known symbols are {names}. Declare them as variables or parameters."
        )
    undefined = sorted(
        str(f.func)
        for f in expr.atoms(sympy.Function)
        if isinstance(f, sympy.core.function.AppliedUndef)
    )
    if undefined:
        raise ValueError(
            f"The formula {_quote(str(expression))} calls unknown functions "
            f"{undefined}."
        )
    return expr
