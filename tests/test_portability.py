"""Lab PCs run Windows too: flows/, tasks/ and devices/ must import and run there.

Checked on the source (AST) of every module, anywhere in it (module level or in a function):

- an import of a POSIX-only (``fcntl``, ``termios``, ``pwd``, ...) or Windows-only (``msvcrt``,
  ``winreg``) module must be guarded: inside ``if sys.platform ...`` / ``if os.name ...`` /
  ``if platform.system() ...`` (either branch), or in the body of a ``try`` whose handler
  catches ``ImportError``;
- ``os.kill(pid, 0)`` must not probe liveness (on Windows it terminates the process; use
  ``psutil.pid_exists``) unless under a platform check;
- a signal that Windows lacks or cannot handle (``signal.SIGTERM``, ``SIGHUP``, ``SIGKILL``,
  ``SIGUSR1``, ...) must be guarded by ``hasattr(signal, ...)`` or a platform check (or be in
  a ``try`` that catches ``AttributeError``).
"""

from __future__ import annotations

import ast
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("flows", "tasks", "devices")

PLATFORM_MODULES = frozenset({"fcntl", "termios", "pwd", "grp", "resource", "posix", "tty", "pty", "msvcrt", "winreg"})
PLATFORM_SIGNALS = frozenset(
    {"SIGTERM", "SIGHUP", "SIGKILL", "SIGUSR1", "SIGUSR2", "SIGQUIT", "SIGALRM", "SIGCHLD", "SIGPIPE"}
)

# Known offenders, reported on every run; an entry that matches nothing any more fails the test.
# (path, enclosing function, what)
ALLOWED_LIVENESS: frozenset[tuple[str, str, str]] = frozenset()
ALLOWED_SIGNALS: frozenset[tuple[str, str, str]] = frozenset()


@dataclass(frozen=True)
class Finding:
    kind: str  # "import", "liveness" or "signal"
    what: str
    scope: str  # enclosing function or class, dotted; "<module>" at module level
    line: int

    def key(self, path: str) -> tuple[str, str, str]:
        return (path, self.scope, self.what)


def _names_bound_to(tree: ast.Module, module: str) -> set[str]:
    """Names under which ``module`` is imported (``import signal as sg`` -> ``sg``)."""
    names = {module}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.asname for a in node.names if a.name == module and a.asname)
    return names


def _is_platform_test(test: ast.expr) -> bool:
    for node in ast.walk(test):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if (node.value.id, node.attr) in {("sys", "platform"), ("os", "name"), ("platform", "system")}:
                return True
    return False


def _is_signal_hasattr(test: ast.expr, signal_names: set[str]) -> bool:
    return any(
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "hasattr"
        and node.args
        and isinstance(node.args[0], ast.Name)
        and node.args[0].id in signal_names
        for node in ast.walk(test)
    )


def _catches(handler: ast.ExceptHandler, names: set[str]) -> bool:
    if handler.type is None:
        return True
    types = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any(isinstance(t, ast.Name) and t.id in names for t in types)


class _Checker(ast.NodeVisitor):
    """Collects unguarded platform-specific uses, tracking guards and the enclosing scope."""

    def __init__(self, tree: ast.Module) -> None:
        self.signal = _names_bound_to(tree, "signal")
        self.os = _names_bound_to(tree, "os")
        self.kill_names = {  # from os import kill [as k]
            a.asname or a.name
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module == "os"
            for a in node.names
            if a.name == "kill"
        }
        self.scope: list[str] = []
        self.guards: list[frozenset[str]] = []
        self.findings: list[Finding] = []

    def _guarded(self, kind: str) -> bool:
        return any(kind in g or "platform" in g for g in self.guards)

    def _report(self, kind: str, what: str, node: ast.AST) -> None:
        if not self._guarded(kind):
            scope = ".".join(self.scope) or "<module>"
            self.findings.append(Finding(kind, what, scope, getattr(node, "lineno", 0)))

    def _visit_guarded(self, nodes: list[ast.stmt] | list[ast.expr], guard: frozenset[str]) -> None:
        self.guards.append(guard)
        for child in nodes:
            self.visit(child)
        self.guards.pop()

    def _test_guard(self, test: ast.expr) -> frozenset[str]:
        kinds = {"platform"} if _is_platform_test(test) else set()
        if _is_signal_hasattr(test, self.signal):
            kinds.add("signal")
        return frozenset(kinds)

    # scopes

    def _visit_scope(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> None:
        self.scope.append(node.name)
        self.generic_visit(node)
        self.scope.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _visit_scope

    # guards

    def visit_If(self, node: ast.If) -> None:
        self.visit(node.test)
        guard = self._test_guard(node.test)
        self._visit_guarded(node.body, guard)
        self._visit_guarded(node.orelse, guard)

    def visit_IfExp(self, node: ast.IfExp) -> None:
        self.visit(node.test)
        guard = self._test_guard(node.test)
        self._visit_guarded([node.body, node.orelse], guard)

    def visit_Try(self, node: ast.Try) -> None:
        guard = set()
        if any(_catches(h, {"ImportError", "ModuleNotFoundError", "Exception"}) for h in node.handlers):
            guard.add("import")
        if any(_catches(h, {"AttributeError", "Exception"}) for h in node.handlers):
            guard.add("signal")
        self._visit_guarded(node.body, frozenset(guard))
        for child in [*node.handlers, *node.orelse, *node.finalbody]:
            self.visit(child)

    visit_TryStar = visit_Try

    # the uses

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name.split(".")[0] in PLATFORM_MODULES:
                self._report("import", f"import {alias.name}", node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        root = (node.module or "").split(".")[0]
        if node.level == 0 and root in PLATFORM_MODULES:
            self._report("import", f"from {node.module} import ...", node)
        if node.level == 0 and node.module == "signal":
            for alias in node.names:
                if alias.name in PLATFORM_SIGNALS:
                    self._report("signal", f"signal.{alias.name}", node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        root: ast.expr = node.value
        while isinstance(root, ast.Attribute):
            root = root.value
        if node.attr in PLATFORM_SIGNALS and isinstance(root, ast.Name) and root.id in self.signal:
            self._report("signal", f"signal.{node.attr}", node)
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        is_kill = (
            isinstance(func, ast.Attribute)
            and func.attr == "kill"
            and isinstance(func.value, ast.Name)
            and func.value.id in self.os
        ) or (isinstance(func, ast.Name) and func.id in self.kill_names)
        if is_kill and len(node.args) == 2 and isinstance(node.args[1], ast.Constant) and node.args[1].value == 0:
            self._report("liveness", "os.kill(..., 0)", node)
        self.generic_visit(node)


def check_source(source: str) -> list[Finding]:
    """The unguarded platform-specific uses in ``source``."""
    tree = ast.parse(source)
    checker = _Checker(tree)
    checker.visit(tree)
    return checker.findings


def _findings(kind: str) -> dict[tuple[str, str, str], list[int]]:
    found: dict[tuple[str, str, str], list[int]] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            for finding in check_source(path.read_text(encoding="utf-8")):
                if finding.kind == kind:
                    found.setdefault(finding.key(relative), []).append(finding.line)
    return found


def _describe(found: dict[tuple[str, str, str], list[int]]) -> str:
    return "; ".join(
        f"{path}:{','.join(map(str, lines))} in {scope}: {what}" for (path, scope, what), lines in sorted(found.items())
    )


@pytest.mark.parametrize(
    ("kind", "allowed", "advice"),
    [
        ("import", frozenset(), "guard it with a platform check or try/except ImportError"),
        ("liveness", ALLOWED_LIVENESS, "on Windows it terminates the process; use psutil.pid_exists"),
        ("signal", ALLOWED_SIGNALS, "guard it with hasattr(signal, ...) or a platform check"),
    ],
    ids=["imports", "liveness", "signals"],
)
def test_platform_specific_code_is_guarded(kind: str, allowed: frozenset[tuple[str, str, str]], advice: str) -> None:
    found = _findings(kind)
    known = {key: lines for key, lines in found.items() if key in allowed}
    if known:
        warnings.warn(f"known unguarded {kind} uses (allow-listed): {_describe(known)}", stacklevel=1)
    new = {key: lines for key, lines in found.items() if key not in allowed}
    assert not new, f"unguarded {kind} use ({advice}): {_describe(new)}"
    stale = sorted(allowed - set(found))
    assert not stale, f"allow-listed {kind} uses that are gone; remove them from the list: {stale}"


# the checker itself


@pytest.mark.parametrize(
    "source",
    [
        "import fcntl",
        "def lock():\n    from fcntl import flock",
        "import msvcrt as m",
        "import os\ndef alive(pid):\n    os.kill(pid, 0)",
        "from os import kill\nkill(1, 0)",
        "import signal\nsignal.signal(signal.SIGTERM, handler)",
        "import signal as sg\nx = sg.Signals.SIGHUP",
        "from signal import SIGKILL",
        "import sys\nif debug:\n    import pwd",
        "try:\n    import termios\nexcept OSError:\n    pass",
        "try:\n    pass\nexcept ImportError:\n    import fcntl",  # the handler itself is not guarded
        "import signal\nif hasattr(os, 'fork'):\n    signal.SIGUSR1",
    ],
)
def test_checker_reports_unguarded_uses(source: str) -> None:
    assert check_source(source), source


@pytest.mark.parametrize(
    "source",
    [
        "import sys\nif sys.platform != 'win32':\n    import fcntl",
        "import os\nif os.name == 'nt':\n    import msvcrt\nelse:\n    import fcntl",
        "try:\n    import fcntl\nexcept ImportError:\n    fcntl = None",
        "try:\n    import pwd\nexcept (ModuleNotFoundError, KeyError):\n    pwd = None",
        "import signal\nif hasattr(signal, 'SIGTERM'):\n    signal.signal(signal.SIGTERM, handler)",
        "import signal\nsigs = [signal.SIGTERM] if hasattr(signal, 'SIGTERM') else []",
        "import signal\nterm = getattr(signal, 'SIGTERM', None)",
        "import signal, sys\ndef f():\n    if sys.platform == 'win32':\n        return\n    else:\n        os.kill(1, signal.SIGKILL)",
        "import os\nos.kill(pid, signal.SIGINT)",
        "import signal\nsignal.SIGINT",
    ],
)
def test_checker_accepts_guarded_or_portable_uses(source: str) -> None:
    assert check_source(source) == [], source


def test_checker_names_the_enclosing_function() -> None:
    (finding,) = check_source("import os\nclass Lock:\n    def dead(self, pid):\n        return os.kill(pid, 0)")
    assert (finding.kind, finding.scope, finding.line) == ("liveness", "Lock.dead", 4)
