"""The expression language: units, functions, errors and injection attempts."""

from __future__ import annotations

import math
from pathlib import Path

import pint
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flows._errors import ExpressionError
from flows.sequence import compile_expression
from flows.sequence._units import Quantity, si_magnitude


def si(text: str, **namespace: object) -> float | bool:
    return si_magnitude(compile_expression(text).evaluate(namespace))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5 MHz", 5e6),
        ("5MHz", 5e6),
        ("-200 kHz", -2e5),
        ("10 %", 0.1),
        ("1 / (2 MHz)", 5e-7),
        ("2 * 3 + 1", 7.0),
        ("2 ** 10", 1024.0),
        ("sqrt(9 MHz**2 + 16 MHz**2)", 5e6),
        ("2 (1 + 2) kHz", 6e3),
        ("1e3 s", 1e3),
        ("max(1 MHz, 2 kHz)", 1e6),
        ("min(1 MHz, 2 kHz)", 2e3),
        ("abs(-3 ms)", 3e-3),
        ("sin(pi / 2)", 1.0),
        ("cos(180 deg)", -1.0),
        ("exp(0)", 1.0),
        ("log(exp(2))", 2.0),
        ("1 MHz > 2 kHz", True),
        ("not 1 > 2", True),
        ("True and False", False),
        ("1 MHz if 2 > 1 else 2 MHz", 1e6),
        ("0.5", 0.5),
    ],
)
def test_evaluates_to_si(text: str, expected: float | bool) -> None:
    value = si(text)
    if isinstance(expected, bool):
        assert value is expected
    else:
        assert value == pytest.approx(expected)


def test_variables_and_globals() -> None:
    detuning = Quantity(200, "kHz")
    assert si("2 * detuning + 5 MHz", detuning=detuning) == pytest.approx(5.4e6)
    assert si("sqrt(a**2 + b**2)", a=3.0, b=4.0) == pytest.approx(5.0)
    assert compile_expression("2 * detuning + 5 MHz").variables == {"detuning"}
    assert compile_expression("2 * detuning + 5 MHz").names == {"detuning", "MHz"}


def test_variable_wins_over_unit() -> None:
    # 's' is the second, but a variable called 's' takes precedence
    assert si("2 * s", s=Quantity(3, "MHz")) == pytest.approx(6e6)
    assert si("2 s") == pytest.approx(2.0)


def test_calibrated_namespace() -> None:
    compiled = compile_expression("calibrated.f0 + 1 MHz")
    assert compiled.calibrated == {"f0"}
    assert compiled.variables == frozenset()
    value = compiled.evaluate({}, {"f0": Quantity(80, "MHz")})
    assert si_magnitude(value) == pytest.approx(81e6)
    with pytest.raises(ExpressionError, match="no calibrated value named 'f0'"):
        compiled.evaluate({}, {})


def test_compiled_once() -> None:
    assert compile_expression("3 MHz + x") is compile_expression("3 MHz + x")


def test_numbers_are_expressions() -> None:
    assert si_magnitude(compile_expression(3).evaluate()) == 3.0
    assert compile_expression(True).evaluate() is True


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("1 MHz + 2 s", "dimension mismatch"),
        ("exp(1 MHz)", "dimensionless"),
        ("foo + 1", "unknown variable or unit 'foo'"),
        ("1 / 0", "division by zero"),
        ("sqrt(-1)", "math domain"),
        ("(-1) ** 0.5", "complex"),
        ("(1 MHz) ** 0.5", "integer exponent"),
        ("True + 1", "boolean"),
        ("1 +", "invalid syntax"),
        ("", "empty"),
        ("10 % 3", "invalid syntax"),
        ("1e308 * 10", "finite"),
        ("5j", "not allowed"),
        ("~1", "not allowed"),
        ("1 MHz > 1 s", "dimension mismatch"),
        ("max()", "at least one"),
    ],
)
def test_errors_name_the_expression(text: str, problem: str) -> None:
    with pytest.raises(ExpressionError, match=problem) as info:
        compile_expression(text).evaluate({})
    assert repr(text) in str(info.value)
    assert info.value.expression == text


INJECTIONS = [
    "__import__('os').system('touch {marker}')",
    '__import__("os").system("touch {marker}")',
    "().__class__.__bases__[0].__subclasses__()",
    "().__class__",
    "x.__class__",
    "open('{marker}', 'w')",
    "eval('1')",
    "exec('1')",
    "(lambda: 1)()",
    "lambda: 1",
    "[c for c in ()]",
    "{{1: 2}}",
    "x[0]",
    "__builtins__",
    "_x + 1",
    "calibrated.__class__",
    "sqrt.__globals__",
    "getattr(sqrt, 'x')",
    "(y := 1)",
    "f'{{1}}'",
    "b'x'",
    "1; import os",
    "1 # comment",
    "a\nb",
    "...",
    "None",
    "sqrt(*[1])",
    "max(x=1)",
]


@pytest.mark.parametrize("attack", INJECTIONS)
def test_injection_attempts_are_rejected(attack: str, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    text = attack.format(marker=marker)
    with pytest.raises(ExpressionError) as info:
        compile_expression(text).evaluate({"x": 1.0})
    assert info.value.expression == text
    assert not marker.exists()


def test_huge_exponent_refused() -> None:
    with pytest.raises(ExpressionError, match="exponent"):
        compile_expression("9**9**9").evaluate()
    with pytest.raises(ExpressionError, match="exponent"):
        compile_expression("2 ** 1e6").evaluate()


def test_huge_expressions_refused_without_parsing() -> None:
    with pytest.raises(ExpressionError, match="longer than"):
        compile_expression("1+" * 500_000 + "1")
    with pytest.raises(ExpressionError):
        compile_expression("(" * 4_000 + "1" + ")" * 4_000)
    with pytest.raises(ExpressionError):
        compile_expression("-" * 9_000 + "1")
    with pytest.raises(ExpressionError):
        compile_expression("1" * 9_000)  # an integer literal beyond Python's digit limit
    with pytest.raises(ExpressionError):
        compile_expression("1" + "**1" * 3_000).evaluate()


def _result_is_sane(value: object) -> None:
    assert isinstance(value, bool) or (isinstance(value, pint.Quantity) and math.isfinite(value.magnitude))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=60))
def test_fuzz_random_text(text: str) -> None:
    try:
        value = compile_expression(text).evaluate({"x": 2.0, "f": Quantity(3, "MHz")})
    except ExpressionError:
        return
    _result_is_sane(value)


_ATOMS = st.sampled_from(
    [
        "1",
        "0",
        "2.5",
        "1e3",
        "x",
        "f",
        "MHz",
        "s",
        "%",
        "pi",
        "True",
        "__import__",
        "os",
        "calibrated.f0",
        "calibrated.__class__",
        "'s'",
        "()",
        "[]",
        "sqrt",
        "None",
        "_x",
        "lambda: 1",
        "kHz",
        "deg",
    ]
)
_OPS = st.sampled_from(["+", "-", "*", "/", "**", "%", "<", "==", " and ", " or ", " if True else ", ".", ",", " "])


def _expressions() -> st.SearchStrategy[str]:
    return st.recursive(
        _ATOMS,
        lambda inner: st.one_of(
            st.tuples(inner, _OPS, inner).map("".join),
            inner.map(lambda e: f"({e})"),
            inner.map(lambda e: f"-{e}"),
            st.tuples(st.sampled_from(["sqrt", "exp", "max", "min", "abs", "sin", "open", "eval", "log"]), inner).map(
                lambda t: f"{t[0]}({t[1]})"
            ),
            st.tuples(inner, st.sampled_from([".__class__", "[0]", ".real", "()"])).map("".join),
        ),
        max_leaves=12,
    )


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_expressions())
def test_fuzz_structured_expressions(text: str) -> None:
    try:
        value = compile_expression(text).evaluate({"x": 2.0, "f": Quantity(3, "MHz")}, {"f0": Quantity(1, "Hz")})
    except ExpressionError:
        return
    _result_is_sane(value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1 / 2 MHz", 5e-7),  # a number with its unit is one value
        ("4 MHz / 2 MHz", 2.0),
        ("5 MHz**2 / 1 MHz", 5e6),
        ("3 m**-1 * 1 m", 3.0),
        ("2 sqrt(4)", 4.0),
    ],
)
def test_number_with_unit_binds_tightly(text: str, expected: float) -> None:
    assert si(text) == pytest.approx(expected)
