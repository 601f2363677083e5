"""The Prefect UI in headless Chromium, against a real server, worker and deployments (tests/deploy_lab.py).

Chromium is Debian's package (``/usr/bin/chromium``, or ``SHOTFLOW_CHROMIUM``), driven by playwright
(in the ``test`` extra). Without them the tests are skipped, except under ``SHOTFLOW_UI_TESTS=required``
(set by .ci/run), where their absence is a failure. Screenshots go to ``SHOTFLOW_UI_SCREENSHOTS`` when
set (docs/ui/README.md), otherwise to a temporary folder.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from deploy_lab import AUTH, Lab

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # without these Chromium's own connections (updates, sync) are refused on a closed network
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
UI_TIMEOUT_MS = 90_000
"""Longest wait for one element or page of the UI (a loaded 2-core machine renders slowly)."""


def _chromium() -> str:
    """The browser's path, or a skip (a failure when the UI tests are required) saying what is missing."""
    missing = []
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("playwright (pip install -e '.[test]')")
    executable = os.environ.get("SHOTFLOW_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(executable).is_file():
        missing.append(f"chromium at {executable} (apt-get install -y chromium)")
    if missing:
        reason = "UI tests need " + " and ".join(missing)
        if os.environ.get("SHOTFLOW_UI_TESTS") == "required":
            pytest.fail(reason + " (SHOTFLOW_UI_TESTS=required)", pytrace=False)
        pytest.skip(reason)
    return executable


@pytest.fixture(scope="module")
def chromium() -> str:
    """Checked before the lab starts, so a missing browser costs no server start-up."""
    return _chromium()


@pytest.fixture
def ui_lab(chromium: str, deployed_lab: Lab) -> Lab:
    """Server with its UI, work pool, deployments and worker (the session's, shared with tests/integration)."""
    return deployed_lab


@pytest.fixture(scope="module")
def screenshots() -> Path:
    """Where the tests put their screenshots."""
    chosen = os.environ.get("SHOTFLOW_UI_SCREENSHOTS")
    folder = Path(chosen) if chosen else Path(tempfile.mkdtemp(prefix="shotflow-ui-screenshots-"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def page(ui_lab: Lab, chromium: str, tmp_path: Path) -> Iterator[Any]:
    """A logged-in page of the lab's UI, in a fresh headless Chromium profile; the browser is closed after."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=chromium,
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1000},
        )
        try:
            context.set_default_timeout(UI_TIMEOUT_MS)
            page = context.pages[0] if context.pages else context.new_page()
            page.goto(f"{ui_lab.ui_url}/login")
            page.get_by_placeholder("admin:pass").fill(AUTH)  # what a physicist types on the login page
            page.get_by_role("button", name="Login").click()
            page.wait_for_url(lambda url: "/login" not in url)
            yield page
        finally:
            context.close()
