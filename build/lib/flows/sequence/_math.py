"""The math functions and constants expressions may use (a whitelist), pint-aware."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pint

__all__ = ["CONSTANTS", "FUNCTIONS", "dimensionless", "tidy"]

Value = Any  # pint Quantity, float or bool while evaluating


def dimensionless(value: Value) -> float:
    if isinstance(value, pint.Quantity):
        if not value.dimensionless:
            raise ValueError(f"expected a dimensionless value, got {value:~}")
        return float(value.to("dimensionless").magnitude)
    return float(value)


def _unary_ufunc(name: str, fn: Callable[[float], float], ufunc: np.ufunc) -> Callable[..., Value]:
    def call(*args: Value) -> Value:
        if len(args) != 1:
            raise ValueError(f"{name}() takes exactly one argument")
        (x,) = args
        if isinstance(x, pint.Quantity):
            result = ufunc(x)
            return tidy(result)
        return fn(float(x))

    return call


def _sqrt(x: float) -> float:
    return math.sqrt(x)


def _log(*args: Value) -> float:
    if len(args) not in (1, 2):
        raise ValueError("log() takes one or two arguments")
    return math.log(*(dimensionless(a) for a in args))


def _extremum(name: str, pick: Callable[..., Value]) -> Callable[..., Value]:
    def call(*args: Value) -> Value:
        if not args:
            raise ValueError(f"{name}() needs at least one argument")
        return pick(args)

    return call


def _dimensionless_fn(name: str, fn: Callable[..., float], arity: int) -> Callable[..., float]:
    def call(*args: Value) -> float:
        if len(args) != arity:
            raise ValueError(f"{name}() takes {arity} argument(s)")
        return fn(*(dimensionless(a) for a in args))

    return call


def _angle_fn(name: str, fn: Callable[[float], float]) -> Callable[..., float]:
    def call(*args: Value) -> float:
        if len(args) != 1:
            raise ValueError(f"{name}() takes exactly one argument")
        (x,) = args
        if isinstance(x, pint.Quantity):
            x = x.to("radian").magnitude
        return fn(float(x))

    return call


FUNCTIONS: dict[str, Callable[..., Value]] = {
    "sqrt": _unary_ufunc("sqrt", _sqrt, np.sqrt),
    "abs": _unary_ufunc("abs", abs, np.abs),
    "exp": _dimensionless_fn("exp", math.exp, 1),
    "log": _log,
    "log10": _dimensionless_fn("log10", math.log10, 1),
    "log2": _dimensionless_fn("log2", math.log2, 1),
    "sin": _angle_fn("sin", math.sin),
    "cos": _angle_fn("cos", math.cos),
    "tan": _angle_fn("tan", math.tan),
    "asin": _dimensionless_fn("asin", math.asin, 1),
    "acos": _dimensionless_fn("acos", math.acos, 1),
    "atan": _dimensionless_fn("atan", math.atan, 1),
    "sinh": _dimensionless_fn("sinh", math.sinh, 1),
    "cosh": _dimensionless_fn("cosh", math.cosh, 1),
    "tanh": _dimensionless_fn("tanh", math.tanh, 1),
    "floor": _dimensionless_fn("floor", lambda x: float(math.floor(x)), 1),
    "ceil": _dimensionless_fn("ceil", lambda x: float(math.ceil(x)), 1),
    "min": _extremum("min", min),
    "max": _extremum("max", max),
}
CONSTANTS: dict[str, float] = {"pi": math.pi, "tau": math.tau}


def tidy(value: Value) -> Value:
    """Turn numpy scalars (from pint ufuncs) into Python floats; reject complex results."""
    if isinstance(value, complex) or (isinstance(value, pint.Quantity) and isinstance(value.magnitude, complex)):
        raise ValueError("the result is a complex number")
    if isinstance(value, pint.Quantity):
        magnitude = value.magnitude
        if not isinstance(magnitude, float):
            if isinstance(magnitude, np.ndarray) and magnitude.shape != ():
                raise ValueError("arrays are not supported")
            magnitude = float(magnitude)
            return value.__class__(magnitude, value.units)
        return value
    if isinstance(value, np.generic):
        return value.item()
    return value
