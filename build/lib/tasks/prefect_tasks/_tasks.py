"""The Prefect tasks of a sequence: one task run per batch of shots compiled, one per batch executed."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.states import Cancelled, State

from devices import Shot
from tasks.engine import BatchFeed, ExecutionTurn, ShotCompiler, ShotRunner, Stages, compile_batch, run_batch
from tasks.records import CompiledShot, ShotRecord

from ._task_run_memory import forget_task_run_assets

__all__ = ["PREFECT_STAGES", "compile_shots", "execute_shots"]


@task(name="compile-shots", task_run_name="compile {label}", cache_policy=NO_CACHE, persist_result=False)
async def compile_shots(
    first: int,
    label: str,
    shots: BatchFeed[Shot],
    compiler: ShotCompiler,
    on_compiled: Callable[[CompiledShot], Awaitable[None]],
) -> int:
    """Prefect task: compile a batch of consecutive shots (``first`` is the first index), as they arrive.

    ``label`` names the task run (``compile shot 3 · detuning -1.5 MHz``).

    Each compiled shot is handed to ``on_compiled``, not returned: Prefect keeps a
    state for every returned object in the flow run's context until the run ends,
    which would grow memory with every batch of a long sequence (bench/engine_memory.py).
    Returns how many shots were compiled. Raises ``ShotCompilationError`` naming
    the failing shot and device.
    """
    forget_task_run_assets()
    return await compile_batch(shots, compiler, on_compiled)


@task(name="execute-shots", task_run_name="execute {label}", cache_policy=NO_CACHE, persist_result=False)
async def execute_shots(
    first: int,
    label: str,
    shots: BatchFeed[CompiledShot],
    turn: ExecutionTurn,
    runner: ShotRunner,
    on_record: Callable[[ShotRecord], object],
) -> int | State:
    """Prefect task: run a batch of compiled shots on the devices, in order, as its turn and they come.

    See :func:`tasks.engine.run_batch`. Returns the number of completed shots, or a
    Cancelled state when the batch was discarded before starting.
    """
    forget_task_run_assets()
    done = await run_batch(shots, turn, runner, on_record)
    if done is None:
        return Cancelled(message=f"shots from {first} discarded: the sequence is stopping")
    return done


PREFECT_STAGES = Stages(compile=compile_shots, execute=execute_shots)
"""The pipeline's stages as Prefect tasks: one task run per batch compiled, one per batch executed."""
