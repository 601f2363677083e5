"""A real Prefect server (with authentication), the deployments of prefect.yaml and a process worker.

Module-scoped and separate from the session's embedded server: the processes
are started once for tests/integration/test_deployments.py and always stopped
(terminate, wait, kill) in the fixture's teardown. ``PREFECT_API_URL`` is set
only for those subprocesses and, inside the tests, with
``prefect.settings.temporary_settings`` (see ``Lab.settings``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from _deploy_lab import Lab, start_lab, stop_lab


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    """The running lab server; stopped at the end of the module whatever happens."""
    running = start_lab()
    try:
        yield running
    finally:
        stop_lab(running)
