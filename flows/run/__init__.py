"""Running a sequence as a Prefect flow: the run's plan, its execution, progress, logs and summary."""

from ._calibrated import load_calibrated, store_calibrated
from ._flow import SequenceResult, run_sequence
from ._progress import Progress, progress_listener
from ._store_path import resolve_store_path

__all__ = [
    "Progress",
    "SequenceResult",
    "load_calibrated",
    "progress_listener",
    "resolve_store_path",
    "run_sequence",
    "store_calibrated",
]
