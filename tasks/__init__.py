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
    StoreQueryError,
    StoreShapeError,
    StoreSpecMismatchError,
)
from ._groups import first_error
from ._records import SequenceState, ShotRecord, ShotStatus
from ._store_reader import open_sequence, read_store_spec, store_state
from ._quantity_text import format_quantity
from ._store_show import describe_store, plot_store
from ._retry import RetryPolicy
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
    # values with units as text (`shotflow show`)
    "format_quantity",
    # errors
    "DeviceExitError",
    "DeviceSetupError",
    "ShotExecutionError",
    "StoreBackpressure",
    "StoreBusyError",
    "StoreError",
    "StoreExistsError",
    "StoreQueryError",
    "StoreShapeError",
    "StoreSpecMismatchError",
]

# The Prefect tasks load on first use, so that compile worker processes
# (which import tasks._compile_worker) start without importing Prefect.
_LAZY = {
    "ExecutionTurn": "._execute_shots",
    "ShotGate": "._execute_shots",
    "execute_shots": "._execute_shots",
    "ShotCompiler": "._shot_compiler",
    "compile_shots": "._shot_compiler",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value
