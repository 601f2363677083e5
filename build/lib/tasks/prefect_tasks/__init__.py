"""The Prefect tasks that wrap the engine's batches."""

from ._tasks import PREFECT_STAGES, compile_shots, execute_shots

__all__ = [
    "PREFECT_STAGES",
    "compile_shots",
    "execute_shots",
]
