"""A real Prefect server (with authentication), the deployments of prefect.yaml and a process worker.

Separate from the session's embedded server, and shared with tests/ui: the session fixture
``deployed_lab`` (tests/conftest.py) starts the processes once and always stops them (terminate,
wait, kill) at the end of the session. ``PREFECT_API_URL`` is set only for those subprocesses
and, inside the tests, with ``prefect.settings.temporary_settings`` (see ``Lab.settings``).
"""

from __future__ import annotations

import pytest
from _deploy_lab import Lab


@pytest.fixture
def lab(deployed_lab: Lab) -> Lab:
    """The running lab server."""
    return deployed_lab
