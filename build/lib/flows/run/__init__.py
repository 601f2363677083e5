"""Running a sequence as a Prefect flow: what is checked first, the execution, interrupts, progress, logs, summary."""

from ._calibrated import load_calibrated, store_calibrated
from ._flow import run_sequence, run_sequence_yaml
from ._prepare import check_resume
from ._progress import Progress, progress_listener
from ._resume_flow import ResumeRefusedError, resume_sequence
from ._store_path import resolve_store_path
from ._summary import SequenceResult

__all__ = [
    "Progress",
    "ResumeRefusedError",
    "SequenceResult",
    "check_resume",
    "load_calibrated",
    "progress_listener",
    "resolve_store_path",
    "resume_sequence",
    "run_sequence",
    "run_sequence_yaml",
    "store_calibrated",
]
