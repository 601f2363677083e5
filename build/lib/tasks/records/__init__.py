"""What the engine, the store and the flows exchange.

Shot records, compiled shots, the sequence lifecycle and its failures; imports no other room.
"""

from ._compiled import CompiledShot
from ._failures import error_record, first_error, raise_first
from ._lifecycle import FINAL_STATES, TRANSITIONS, IllegalTransition, Lifecycle, LifecycleHook
from ._outcome import Outcome, decide_outcome, is_interrupt
from ._shots import SequenceState, ShotRecord, ShotStatus

__all__ = [
    "FINAL_STATES",
    "TRANSITIONS",
    "CompiledShot",
    "IllegalTransition",
    "Lifecycle",
    "LifecycleHook",
    "Outcome",
    "SequenceState",
    "ShotRecord",
    "ShotStatus",
    "decide_outcome",
    "error_record",
    "first_error",
    "is_interrupt",
    "raise_first",
]
