"""The integration tests' name for the shared lab machinery (tests/deploy_lab.py, also used by tests/ui)."""

from deploy_lab import AUTH, REPO, Lab, start_lab, stop_lab

__all__ = ["AUTH", "REPO", "Lab", "start_lab", "stop_lab"]
