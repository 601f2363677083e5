"""Unit-aware expressions: parsed once with a whitelist, evaluated by walking the AST.

An expression such as ``"2 * detuning + 5 MHz"`` is tokenized, implicit
multiplications (``5 MHz``, ``(a + b) kHz``) and percent signs (``10 %``) are
made explicit (a number with its unit is one value: ``x / 2 MHz`` is
``x / (2 MHz)``), and the text is parsed with :func:`ast.parse`. The tree is then
checked against a whitelist (numbers, names, arithmetic, comparisons, boolean
operators, conditional expressions, calls of whitelisted math functions and
``calibrated.NAME``) and evaluated by a small interpreter: user text is never
passed to ``eval``/``exec``.
"""

from __future__ import annotations

import ast
import io
import keyword
import logging
import math
import operator
import tokenize
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import pint

from flows._errors import ExpressionError

from ._math import CONSTANTS, FUNCTIONS, dimensionless, tidy
from ._units import Quantity, is_unit, unit_named

__all__ = ["CALIBRATED", "MAX_EXPRESSION_LENGTH", "CompiledExpression", "calibrated_quantities", "compile_expression"]

logger = logging.getLogger(__name__)

MAX_EXPRESSION_LENGTH = 10_000
MAX_AST_DEPTH = 64
MAX_EXPONENT = 1_000.0
CALIBRATED = "calibrated"
"""Name of the namespace holding calibration values: ``calibrated.NAME``."""

Value = Any  # pint Quantity, float or bool while evaluating


_BINARY: dict[type[ast.operator], Callable[[Value, Value], Value]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
}
_COMPARE: dict[type[ast.cmpop], Callable[[Value, Value], bool]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}


def _rewrite(text: str) -> tuple[str, frozenset[str]]:
    """Tokenize ``text``, make implicit multiplications and ``%`` explicit; also the names written as units."""
    if "\n" in text or "\r" in text:
        raise ExpressionError(text, "an expression must be on one line")
    try:
        raw = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, SyntaxError) as exc:
        raise ExpressionError(text, f"cannot tokenize: {exc}") from exc
    tokens: list[tuple[int, str]] = []
    for token in raw:
        kind, string = token.type, token.string
        if kind in (tokenize.NEWLINE, tokenize.NL, tokenize.ENDMARKER, tokenize.INDENT, tokenize.DEDENT):
            continue
        if kind == tokenize.COMMENT:
            raise ExpressionError(text, "comments are not allowed")
        if kind in (tokenize.STRING, tokenize.FSTRING_START):
            raise ExpressionError(text, "strings are not allowed")
        if kind == tokenize.OP and string == "%":
            kind, string = tokenize.NAME, "percent"
        tokens.append((kind, string))
    out: list[str] = []
    units: set[str] = set()
    previous: tuple[int, str] | None = None
    i = 0
    while i < len(tokens):
        kind, string = tokens[i]
        if previous is not None and _ends_value(previous) and _starts_value(kind, string, previous):
            out.append("*")
        quantity = _quantity_length(tokens, i)
        if quantity:  # "2 MHz", "3 m**2": one value, so that "x / 2 MHz" is x / (2 MHz)
            out.append("(" + " ".join(t for _, t in _with_star(tokens[i : i + quantity])) + ")")
            units.add(tokens[i + 1][1])
            previous = (tokenize.OP, ")")
            i += quantity
            continue
        out.append(string)
        previous = (kind, string)
        i += 1
    return " ".join(out), frozenset(units)


def _quantity_length(tokens: list[tuple[int, str]], i: int) -> int:
    """Length of a ``NUMBER UNIT [** [-]NUMBER]`` group at ``i`` (0 if none)."""
    if tokens[i][0] != tokenize.NUMBER or i + 1 >= len(tokens) or not _is_identifier(*tokens[i + 1]):
        return 0
    if i + 2 < len(tokens) and tokens[i + 2][1] == "(":
        return 0  # "2 sqrt(x)": a call, not a unit
    n = 2
    if i + 3 < len(tokens) and tokens[i + 2][1] == "**":
        if tokens[i + 3][0] == tokenize.NUMBER:
            n = 4
        elif tokens[i + 3][1] == "-" and i + 4 < len(tokens) and tokens[i + 4][0] == tokenize.NUMBER:
            n = 5
    return n


def _with_star(group: list[tuple[int, str]]) -> list[tuple[int, str]]:
    return [group[0], (tokenize.OP, "*"), *group[1:]]


def _is_identifier(kind: int, string: str) -> bool:
    return kind == tokenize.NAME and not keyword.iskeyword(string)


def _ends_value(token: tuple[int, str]) -> bool:
    kind, string = token
    return kind == tokenize.NUMBER or _is_identifier(kind, string) or string in (")", "True", "False")


def _starts_value(kind: int, string: str, previous: tuple[int, str]) -> bool:
    if _is_identifier(kind, string):
        return True
    # "(" after a name is a call; after a number or ")" it multiplies: "2 (a + b)"
    return string == "(" and not _is_identifier(*previous)


@dataclass(frozen=True)
class CompiledExpression:
    """A parsed, whitelisted expression; evaluate it with :meth:`evaluate`.

    ``names`` are the free identifiers (variables or units; variables win),
    ``calibrated`` the ``calibrated.NAME`` references, ``units`` the names
    written as the unit of a number (``us`` in ``20 us``) and ``variables`` the
    names that are neither units nor constants, so must be defined.
    """

    text: str
    tree: ast.expr
    names: frozenset[str]
    calibrated: frozenset[str]
    units: frozenset[str] = frozenset()

    @property
    def variables(self) -> frozenset[str]:
        """Referenced names that are not units or constants (must be defined)."""
        return frozenset(n for n in self.names if n not in CONSTANTS and not is_unit(n))

    def evaluate(
        self,
        namespace: Mapping[str, Value] | None = None,
        calibrated: Mapping[str, Value] | None = None,
    ) -> Value:
        """Evaluate with variables from ``namespace`` (Quantity, float or bool).

        Returns a pint Quantity (dimensionless for plain numbers) or a bool.
        Raises :class:`ExpressionError` naming the expression on any problem
        (unknown name, dimension mismatch, division by zero, overflow...).
        """
        evaluator = _Evaluator(
            self.text, {} if namespace is None else namespace, {} if calibrated is None else calibrated
        )
        try:
            result = evaluator.visit(self.tree)
        except ExpressionError:
            raise
        except pint.DimensionalityError as exc:
            raise ExpressionError(self.text, f"dimension mismatch: {exc}") from exc
        except pint.OffsetUnitCalculusError as exc:
            raise ExpressionError(self.text, f"ambiguous offset unit: {exc}") from exc
        except ZeroDivisionError as exc:
            raise ExpressionError(self.text, "division by zero") from exc
        except OverflowError as exc:
            raise ExpressionError(self.text, "numerical overflow") from exc
        except RecursionError as exc:
            raise ExpressionError(self.text, "expression nested too deeply") from exc
        except ValueError as exc:
            raise ExpressionError(self.text, str(exc)) from exc
        except Exception as exc:  # the tree is whitelisted: anything left is a value problem
            raise ExpressionError(self.text, f"{type(exc).__name__}: {exc}") from exc
        if isinstance(result, bool):
            return result
        if not isinstance(result, pint.Quantity):
            result = Quantity(float(result), "dimensionless")
        magnitude = result.magnitude
        if getattr(magnitude, "shape", None) == () and getattr(magnitude, "dtype", None) == "float64":
            magnitude = float(magnitude)  # a registry set to force_ndarray_like (pint-xarray does it on import)
        if not isinstance(magnitude, float) or not math.isfinite(magnitude):
            raise ExpressionError(self.text, "the result is not a finite real number")
        if not _finite_in_si(result):
            raise ExpressionError(self.text, f"the result is out of range in SI units ({result:~g} overflows)")
        return result


def _finite_in_si(value: pint.Quantity) -> bool:
    """Whether ``value`` is a finite float once converted to SI base units (``1e305 GHz`` is not)."""
    factor = _si_factor(value.units)
    try:
        if factor is None:  # an offset unit (degC): convert the value itself
            return math.isfinite(float(value.to_base_units().magnitude))
        return math.isfinite(value.magnitude * factor)
    except (OverflowError, ArithmeticError, ValueError):
        return False


@lru_cache(maxsize=1024)
def _si_factor(unit: pint.Unit) -> float | None:
    """SI magnitude of one ``unit`` (``inf`` when it overflows: ``MHz ** 60``); None for offset units."""
    try:
        if Quantity(0.0, unit).to_base_units().magnitude != 0:
            return None  # 0 degC is not 0 K
        return float(Quantity(1.0, unit).to_base_units().magnitude)
    except (OverflowError, ArithmeticError):
        return math.inf


class _Checker(ast.NodeVisitor):
    """Walks a parsed tree, rejecting anything outside the whitelist."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.names: set[str] = set()
        self.calibrated: set[str] = set()

    def fail(self, problem: str) -> None:
        raise ExpressionError(self.text, problem)

    def check(self, tree: ast.AST) -> None:
        stack: list[tuple[ast.AST, int]] = [(tree, 0)]
        while stack:  # iterative: depth is bounded before any recursion
            node, depth = stack.pop()
            if depth > MAX_AST_DEPTH:
                self.fail(f"expression nested deeper than {MAX_AST_DEPTH} levels")
            self.check_node(node)
            if isinstance(node, ast.Attribute):
                continue
            if isinstance(node, ast.Call):
                children: list[ast.AST] = list(node.args)
            else:
                children = list(ast.iter_child_nodes(node))
            stack.extend((child, depth + 1) for child in children)

    def check_node(self, node: ast.AST) -> None:
        match node:
            case ast.Expression() | ast.operator() | ast.unaryop() | ast.cmpop() | ast.boolop() | ast.expr_context():
                return  # operators are checked with their parent node
            case ast.UnaryOp(op=ast.Invert()):
                self.fail("operator '~' is not allowed")
            case ast.BinOp(op=op) if type(op) in _BINARY:
                return
            case ast.BinOp(op=ast.Mod()):
                self.fail("'%' means percent; the modulo operator is not supported")
            case ast.BinOp():
                self.fail(f"operator {type(node.op).__name__} is not allowed")
            case ast.UnaryOp() | ast.BoolOp() | ast.IfExp():
                return
            case ast.Compare(ops=ops) if all(type(o) in _COMPARE for o in ops):
                return
            case ast.Constant(value=value):
                if isinstance(value, bool) or (isinstance(value, (int, float)) and not isinstance(value, bool)):
                    return
                self.fail(f"constant {value!r} is not allowed (only numbers and True/False)")
            case ast.Name(id=name):
                self.check_name(name)
                self.names.add(name)
            case ast.Attribute(value=ast.Name(id=base), attr=attr) if base == CALIBRATED:
                self.check_name(attr)
                self.calibrated.add(attr)
            case ast.Attribute():
                self.fail(f"attribute access is not allowed (only '{CALIBRATED}.NAME')")
            case ast.Call(func=ast.Name(id=name), keywords=[]) if name in FUNCTIONS:
                if any(isinstance(a, ast.Starred) for a in node.args):
                    self.fail("starred arguments are not allowed")
            case ast.Call(func=ast.Name(id=name)):
                allowed = ", ".join(sorted(FUNCTIONS))
                self.fail(f"call of {name!r} is not allowed; functions: {allowed}")
            case ast.Call():
                self.fail("only calls of whitelisted math functions are allowed")
            case _:
                self.fail(f"{type(node).__name__} is not allowed in an expression")

    def check_name(self, name: str) -> None:
        if name.startswith("_"):
            self.fail(f"name {name!r} is not allowed (names must not start with '_')")


class _Evaluator:
    """Evaluates a checked tree; only node types accepted by :class:`_Checker` occur."""

    def __init__(self, text: str, namespace: Mapping[str, Value], calibrated: Mapping[str, Value]) -> None:
        self.text = text
        self.namespace = namespace
        self.calibrated = calibrated

    def visit(self, node: ast.AST) -> Value:
        match node:
            case ast.Expression(body=body):
                return self.visit(body)
            case ast.Constant(value=value):
                return value if isinstance(value, bool) else float(value)
            case ast.Name(id=name):
                return self.name(name)
            case ast.Attribute(attr=attr):
                if attr not in self.calibrated:
                    raise ExpressionError(self.text, f"no calibrated value named {attr!r}")
                return self.calibrated[attr]
            case ast.UnaryOp(op=ast.Not(), operand=operand):
                return not self.boolean(self.visit(operand))
            case ast.UnaryOp(op=op, operand=operand):
                value = self.number(self.visit(operand))
                return -value if isinstance(op, ast.USub) else +value
            case ast.BinOp(left=left, op=op, right=right):
                a, b = self.number(self.visit(left)), self.number(self.visit(right))
                if isinstance(op, ast.Pow):
                    self.check_exponent(a, b)
                return tidy(_BINARY[type(op)](a, b))
            case ast.BoolOp(op=op, values=values):
                if isinstance(op, ast.And):
                    return all(self.boolean(self.visit(v)) for v in values)
                return any(self.boolean(self.visit(v)) for v in values)
            case ast.Compare(left=left, ops=ops, comparators=comparators):
                a = self.visit(left)
                for op, comparator in zip(ops, comparators, strict=True):
                    b = self.visit(comparator)
                    if not bool(_COMPARE[type(op)](a, b)):
                        return False
                    a = b
                return True
            case ast.IfExp(test=test, body=body, orelse=orelse):
                return self.visit(body) if self.boolean(self.visit(test)) else self.visit(orelse)
            case ast.Call(func=ast.Name(id=name), args=args):
                return tidy(FUNCTIONS[name](*(self.number(self.visit(a)) for a in args)))
        raise ExpressionError(self.text, f"{type(node).__name__} is not allowed")  # pragma: no cover

    def name(self, name: str) -> Value:
        if name in self.namespace:
            return self.namespace[name]
        if name in CONSTANTS:
            return CONSTANTS[name]
        unit = unit_named(name)
        if unit is None:
            raise ExpressionError(self.text, f"unknown variable or unit {name!r}")
        return Quantity(1.0, unit)

    def number(self, value: Value) -> Value:
        if isinstance(value, bool):
            raise ExpressionError(self.text, "arithmetic on a boolean (True/False) is not allowed")
        return value

    def boolean(self, value: Value) -> bool:
        if not isinstance(value, bool):
            raise ExpressionError(self.text, "expected a boolean (a comparison, True or False)")
        return value

    def check_exponent(self, base: Value, exponent: Value) -> None:
        exp = dimensionless(exponent)
        if abs(exp) > MAX_EXPONENT:
            raise ExpressionError(self.text, f"exponent {exp:g} is too large (limit {MAX_EXPONENT:g})")
        if isinstance(base, pint.Quantity) and not base.dimensionless and exp != int(exp):
            raise ExpressionError(self.text, "a quantity with units needs an integer exponent")


@lru_cache(maxsize=8192)
def _compile_cached(text: str) -> CompiledExpression:
    rewritten, units = _rewrite(text)
    if not rewritten.strip():
        raise ExpressionError(text, "empty expression")
    try:
        tree = ast.parse(rewritten, mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(text, f"invalid syntax ({exc.msg})") from exc
    except (RecursionError, MemoryError, ValueError, OverflowError) as exc:
        raise ExpressionError(text, f"cannot parse: {type(exc).__name__}") from exc
    checker = _Checker(text)
    checker.check(tree)
    return CompiledExpression(text, tree.body, frozenset(checker.names), frozenset(checker.calibrated), units)


def compile_expression(text: object) -> CompiledExpression:
    """Parse and check ``text`` once (cached); raises :class:`ExpressionError`."""
    if isinstance(text, bool):
        text = "True" if text else "False"
    elif isinstance(text, (int, float)):
        text = repr(float(text)) if isinstance(text, float) else str(text)
    if not isinstance(text, str):
        raise ExpressionError(repr(text)[:80], "an expression must be a string or a number")
    if len(text) > MAX_EXPRESSION_LENGTH:
        raise ExpressionError(text, f"expression longer than {MAX_EXPRESSION_LENGTH} characters")
    return _compile_cached(text)


def calibrated_quantities(calibrated: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Calibration values for ``calibrated.NAME``: Quantities, bools, numbers (dimensionless) or expression texts."""
    if calibrated is None:
        return None
    result: dict[str, Any] = {}
    for name, value in calibrated.items():
        if isinstance(value, str):
            value = compile_expression(value).evaluate()
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            value = float(value)
        result[name] = value
    return result
