"""The registry of analysis types, filled by plugins through the ``shotflow.analyses`` entry points."""

from __future__ import annotations

import builtins
import importlib.metadata
import logging
import threading

from ._analysis import Analysis
from ._errors import AnalysisRegistrationError, UnknownAnalysisTypeError

__all__ = ["ANALYSIS_ENTRY_POINT_GROUP", "get_analysis_type", "known_analysis_types", "register_analysis"]

logger = logging.getLogger(__name__)

ANALYSIS_ENTRY_POINT_GROUP = "shotflow.analyses"
"""Entry point group; each entry point is a zero-argument callable that calls :func:`register_analysis`.

A spec names an analysis by its registered type only, never by a code path: a spec that
arrives through the API cannot choose the code that runs."""

_lock = threading.RLock()
_types: dict[str, type[Analysis]] = {}
_loaded = False


def register_analysis(type: str, analysis: builtins.type[Analysis]) -> builtins.type[Analysis]:
    """Register the :class:`Analysis` subclass ``analysis`` as type ``type``; returns it.

    Registering the same class again is a no-op. Raises :class:`AnalysisRegistrationError`
    for a class that is not a concrete Analysis, whose ``type`` field defaults to another
    name, or a ``type`` already registered with another class.
    """
    if not (isinstance(analysis, builtins.type) and issubclass(analysis, Analysis)) or analysis.__abstractmethods__:
        raise AnalysisRegistrationError(f"analysis type {type!r}: {analysis!r} is not a concrete Analysis subclass")
    field = analysis.model_fields.get("type")
    if field is None or field.default != type:
        raise AnalysisRegistrationError(
            f"analysis type {type!r}: {analysis.__name__}.type must be declared as type: Literal[{type!r}] = {type!r}"
        )
    with _lock:
        old = _types.get(type)
        if old is not None and old is not analysis:
            raise AnalysisRegistrationError(
                f"analysis type {type!r} is already registered ({old.__module__}.{old.__qualname__})"
            )
        _types[type] = analysis
    return analysis


def get_analysis_type(type: str) -> builtins.type[Analysis]:
    """The registered analysis class named ``type`` (plugins loaded first); raises UnknownAnalysisTypeError."""
    _load_entry_points()
    with _lock:
        try:
            return _types[type]
        except KeyError:
            raise UnknownAnalysisTypeError(type, _types) from None


def known_analysis_types() -> list[str]:
    """The sorted names of every registered analysis type (plugins loaded first)."""
    _load_entry_points()
    with _lock:
        return sorted(_types)


def _load_entry_points() -> None:
    """Call every ``shotflow.analyses`` entry point once per process; a failing plugin is logged and skipped."""
    global _loaded
    with _lock:
        if _loaded:
            return
        _loaded = True
        for entry_point in importlib.metadata.entry_points(group=ANALYSIS_ENTRY_POINT_GROUP):
            try:
                entry_point.load()()
            except Exception:
                logger.exception(
                    "analysis plugin %r (%s) failed to register; its analysis types are unavailable",
                    entry_point.name,
                    entry_point.value,
                )
