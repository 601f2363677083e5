"""Per-shot work: compiling and executing shots (Prefect tasks), and the results store."""

from ._compiled import CompiledShot
from ._device_session import open_devices
from ._errors import (
    DeviceExitError,
    DeviceSetupError,
    ShotExecutionError,
    StoreBackpressure,
    StoreBusyError,
    StoreError,
    StoreExistsError,
    StoreShapeError,
    StoreSpecMismatchError,
)
from ._groups import first_error
from ._execute_shots import ExecutionTurn, ShotGate, execute_shots
from ._records import SequenceState, ShotRecord, ShotStatus
from ._store_reader import open_sequence, read_store_spec, store_state
from ._store_show import describe_store, plot_store
from ._retry import RetryPolicy
from ._shot_compiler import ShotCompiler, compile_shots
from ._shot_runner import ShotRunner
from ._store_writer import ShotStoreWriter

__all__ = [
    # compile and execute
    "CompiledShot",
    "ExecutionTurn",
    "RetryPolicy",
    "ShotCompiler",
    "ShotGate",
    "ShotRunner",
    "compile_shots",
    "execute_shots",
    "open_devices",
    "first_error",
    # records
    "SequenceState",
    "ShotRecord",
    "ShotStatus",
    # results store
    "ShotStoreWriter",
    "describe_store",
    "open_sequence",
    "plot_store",
    "read_store_spec",
    "store_state",
    # errors
    "DeviceExitError",
    "DeviceSetupError",
    "ShotExecutionError",
    "StoreBackpressure",
    "StoreBusyError",
    "StoreError",
    "StoreExistsError",
    "StoreShapeError",
    "StoreSpecMismatchError",
]
