"""The reliability suite's lab: the shared one (tests/simlab.py)."""

from simlab import DEVICES, assert_exited_exactly_once, events, lab_dict, lab_spec, read_journal, run

__all__ = ["DEVICES", "assert_exited_exactly_once", "events", "lab_dict", "lab_spec", "read_journal", "run"]
