"""Loading a :class:`SequenceSpec` from YAML or JSON, with errors naming field paths."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from flows._errors import SpecError

from ._spec import SequenceSpec
from ._steps import MAX_NESTING, TAG_PREFIX

__all__ = ["format_validation_error", "load_spec", "parse_spec_text"]

logger = logging.getLogger(__name__)


class _UniqueKeyLoader(yaml.SafeLoader):
    """A SafeLoader that rejects duplicate mapping keys (e.g. two devices with one name)."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        line = key_node.start_mark.line + 1
        if key in seen:
            raise SpecError(f"line {line}: duplicate key {key!r} (first defined on line {seen[key]})")
        seen[key] = line
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _json_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise SpecError(f"duplicate key {key!r}")
        result[key] = value
    return result


_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _format_loc(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, str) and part.startswith(TAG_PREFIX):
            continue  # union tags inserted by pydantic; the step key follows
        if part == "[key]":
            continue  # a mapping key that failed: the key itself is the last part
        if isinstance(part, int):
            path += f"[{part}]"
        elif not _PLAIN_KEY.fullmatch(part):
            path += f"[{part[:80]!r}]"  # devices['a/b'], so the path itself is unambiguous
        else:
            path += f".{part}" if path else str(part)
    return path


def format_validation_error(error: ValidationError) -> str:
    """One line per problem, ``field.path: problem``."""
    lines: list[str] = []
    for item in error.errors(include_url=False):
        path = _format_loc(item["loc"])
        message = item["msg"]
        if item["type"] == "value_error":
            message = str(item["ctx"]["error"]) if "ctx" in item else message.removeprefix("Value error, ")
        for line in message.splitlines():
            if not path or line.startswith(path):
                lines.append(line)
            else:
                lines.append(f"{path}: {line}")
    return "\n".join(dict.fromkeys(lines))


def parse_spec_text(text: str, *, source: str = "<text>") -> dict[str, Any]:
    """Parse YAML or JSON text into a mapping; raises :class:`SpecError` with the line."""
    stripped = text.lstrip()
    try:
        if stripped.startswith("{"):
            data = json.loads(text, object_pairs_hook=_json_pairs)
        else:
            data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except SpecError as exc:
        raise SpecError(f"{source}: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise SpecError(f"{source}: line {exc.lineno}: invalid JSON: {exc.msg}") from exc
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        context = ""
        if exc.context and exc.context_mark and exc.context_mark is not mark:
            context = f" ({exc.context} on line {exc.context_mark.line + 1})"
        raise SpecError(f"{source}: {where}invalid YAML: {exc.problem or exc.context}{context}") from exc
    except yaml.YAMLError as exc:
        raise SpecError(f"{source}: invalid YAML: {exc}") from exc
    except RecursionError as exc:  # e.g. a thousand nested loops: refuse, never crash
        raise SpecError(f"{source}: nested too deeply to be a sequence spec") from exc
    if not isinstance(data, dict):
        raise SpecError(f"{source}: a sequence spec is a mapping, got {type(data).__name__}")
    return data


MAX_DEPTH = 4 * MAX_NESTING + 16
"""Deepest nesting of mappings and lists a spec may have (a loop adds four levels)."""
MAX_VALUES = 100_000
"""Most values (mappings, lists and scalars) a spec may hold once its YAML aliases are expanded."""


def _containers(node: Any) -> list[Any]:
    children = node.values() if isinstance(node, dict) else node
    return [child for child in children if isinstance(child, (dict, list))]


def _measure(root: Any, memo: dict[int, tuple[int, int]]) -> tuple[int, int] | None:
    """(depth, expanded size) of ``root``, or None when it contains itself (a recursive YAML alias).

    Walks each distinct object once (memoised by id, as YAML aliases share objects), without
    recursion: a 300-byte alias bomb of 9**8 values is measured in microseconds, never expanded.
    """
    if not isinstance(root, (dict, list)):
        return 1, 1
    on_path: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            on_path.discard(key)
            depth, size = (2 if node else 1), 1 + len(node)  # a scalar child is one level and one value
            for child in _containers(node):
                child_depth, child_size = memo[id(child)]
                depth = max(depth, child_depth + 1)
                size += child_size - 1
            memo[key] = (depth, min(size, MAX_VALUES + 1))
            continue
        if key in memo:
            continue
        if key in on_path:
            return None
        on_path.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _containers(node))
    return memo[id(root)]


def _shape_problem(data: dict[str, Any]) -> str | None:
    """What makes ``data`` too deep, too large once expanded, or recursive (naming the top-level field)."""
    memo: dict[int, tuple[int, int]] = {}
    total = 0
    for field, value in data.items():
        measured = _measure(value, memo)
        if measured is None:
            return f"{field}: contains itself (a recursive YAML alias)"
        depth, size = measured
        if depth > MAX_DEPTH:
            return f"{field}: nested deeper than {MAX_DEPTH} levels (loops nest at most {MAX_NESTING} deep)"
        total += size
        if total > MAX_VALUES:
            return f"{field}: more than {MAX_VALUES} values once YAML aliases are expanded"
    return None


def load_spec(source: str | Path | dict[str, Any]) -> SequenceSpec:
    """Load and validate a spec from a file path, YAML/JSON text or a mapping.

    Raises :class:`SpecError` listing every problem as ``field.path: problem``
    (or the line of a YAML/JSON syntax error); nothing else is touched.
    """
    if isinstance(source, dict):
        data, where = source, "<mapping>"
    else:
        text, where = _read(source)
        data = parse_spec_text(text, source=where)
    problem = _shape_problem(data)
    if problem is not None:
        raise SpecError(f"{where}: {problem}")
    try:
        return SequenceSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(f"{where}: invalid sequence spec:\n{format_validation_error(exc)}") from exc


def load_spec_text(text: str, *, source: str = "<text>") -> SequenceSpec:
    """Load and validate a spec from YAML or JSON text only: never read as a file path (text from
    the API or a form is data). Raises :class:`SpecError` as :func:`load_spec` does."""
    return load_spec(parse_spec_text(text, source=source))


def _read(source: str | Path) -> tuple[str, str]:
    if isinstance(source, Path) or ("\n" not in source and source.endswith((".yaml", ".yml", ".json"))):
        path = Path(source)
        try:
            return path.read_text(encoding="utf-8"), str(path)
        except OSError as exc:
            raise SpecError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return source, "<text>"
