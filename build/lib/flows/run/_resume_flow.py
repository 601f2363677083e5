"""``resume_sequence``: continue an interrupted store from the Prefect UI, given only the store."""

from __future__ import annotations

import os
from pathlib import Path

import anyio
from prefect import flow
from prefect.context import FlowRunContext
from prefect.logging import get_run_logger
from prefect.states import Failed, State

from flows._errors import SpecError
from flows.sequence import SequenceSpec, load_spec
from tasks.records import SequenceState
from tasks.store import StoreError, read_store_spec, store_state

from ._flow import run_sequence
from ._prepare import _results_root, check_resume
from ._store_path import _inside
from ._summary import SequenceResult

__all__ = ["ResumeRefusedError", "resume_sequence"]


class ResumeRefusedError(SpecError):
    """A store that cannot be resumed: missing, not a shotflow store, finished, being written, or outside the root."""


def _resume_run_name() -> str:
    """``resume <sequence>/<store folder>``: the store's last two path parts (Prefect's ``flow_run_name``)."""
    context = FlowRunContext.get()
    store = Path(str(context.parameters.get("store", "?"))) if context is not None and context.parameters else Path("?")
    return f"resume {store.parent.name}/{store.name}"


@flow(name="resume-sequence", flow_run_name=_resume_run_name, log_prints=False, validate_parameters=True)
async def resume_sequence(store: str) -> SequenceResult | State:
    """Continue the interrupted (or crashed) sequence in ``store`` with the spec the store recorded.

    ``store`` is relative to ``$SHOTFLOW_RESULTS_ROOT`` or absolute inside it (as given when
    it is not set). The store is checked first, before any instrument: a store that is
    missing, not a shotflow store, finished, still being written or outside the results
    root is refused with :class:`ResumeRefusedError`, its reason the flow run's first log
    line. Then ``run-sequence`` runs as a subflow with ``resume=True``: its
    :class:`SequenceResult` is returned, or its Cancelled or Failed state (and message)
    becomes this flow's.

    Args:
        store: The store folder to continue, relative to the results root
            (e.g. resonance/2026-12-02T09-41-07.zarr) or absolute inside it.

    """
    log = get_run_logger()
    try:
        path, spec = await anyio.to_thread.run_sync(_resumable, store)
    except ResumeRefusedError as refusal:
        log.error("%s", refusal)
        return Failed(message=str(refusal), data=refusal)
    log.info("resuming sequence %s in %s", spec.name, path)
    run = await run_sequence(spec, store=str(path), resume=True, return_state=True)
    if run.is_completed():
        return await run.aresult()
    return run  # Cancelled or Failed, with the subflow's message


def _resumable(store: str) -> tuple[Path, SequenceSpec]:
    """The store's path and its recorded spec, once it is known to be resumable (blocking reads)."""
    root = _results_root()
    path = Path(os.path.abspath(store if root is None else root / store))
    if root is not None and not _inside(path, root):
        raise ResumeRefusedError(f"store: {store} is outside the results folder {root}")
    if not path.exists():
        raise ResumeRefusedError(f"store: {store} does not exist (looked for {path})")
    try:
        state = store_state(path)
    except StoreError as exc:
        raise ResumeRefusedError(f"store: {store} cannot be resumed: {exc}") from exc
    if state.get("state") == str(SequenceState.FINISHED):
        raise ResumeRefusedError(
            f"store: {store} is finished ({state.get('completed_shots')} shots); there is nothing to resume"
        )
    if state.get("writer_alive"):
        raise ResumeRefusedError(f"store: {store} is being written by a running sequence; wait for it, or cancel it")
    try:
        spec = load_spec(read_store_spec(path))  # validated like any spec
        check_resume(spec, path)  # and still describing the stored shots
    except (StoreError, SpecError) as exc:
        raise ResumeRefusedError(f"store: {store} cannot be resumed: {exc}") from exc
    return path, spec
