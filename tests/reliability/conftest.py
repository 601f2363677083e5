"""The reliability suite runs against the session's embedded Prefect server (tests/conftest.py)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # the suite's helper module _rlab
