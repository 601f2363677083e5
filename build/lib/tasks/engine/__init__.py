"""The shot engine: compile shots, run them on the devices in order, retry, watch the event loop.

Imports neither Prefect nor zarr; the Prefect tasks in :mod:`tasks.prefect_tasks` wrap its batches.
"""

from ._analysis_stage import ShotAnalyser, analysed
from ._batch_sizer import MAX_AUTO_BATCH, SERVER_TASK_RUN_RATE, SLOW_CYCLE, TARGET_BATCH_INTERVAL, BatchSizer
from ._batches import BatchFeed, compile_batch, run_batch
from ._compiler import ShotCompiler
from ._devices import open_devices
from ._errors import DeviceExitError, DeviceSetupError, ShotExecutionError
from ._gate import ExecutionTurn, ShotGate
from ._pipeline import ENGINE_STAGES, PipelineOutcome, ShotPipeline, ShotSource, Stages, describe_batch, shots_from
from ._retry import RetryPolicy
from ._runner import ShotRunner

__all__ = [
    "MAX_AUTO_BATCH",
    "SERVER_TASK_RUN_RATE",
    "SLOW_CYCLE",
    "TARGET_BATCH_INTERVAL",
    "BatchFeed",
    "BatchSizer",
    "ENGINE_STAGES",
    "PipelineOutcome",
    "ShotSource",
    "Stages",
    "describe_batch",
    "shots_from",
    "DeviceExitError",
    "DeviceSetupError",
    "ExecutionTurn",
    "RetryPolicy",
    "ShotCompiler",
    "ShotExecutionError",
    "ShotGate",
    "ShotPipeline",
    "ShotRunner",
    "compile_batch",
    "open_devices",
    "run_batch",
    "ShotAnalyser",
    "analysed",
]
