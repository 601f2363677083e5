"""The results-store writer: a bounded queue of shot records drained by one worker thread."""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import numpy as np

from tasks.records import SequenceState, ShotRecord, ShotStatus, decide_outcome, first_error

from ._arrays import StoreArrays, describe_os_error
from ._errors import StoreBackpressure, StoreError
from ._opening import checked_axes, open_store
from ._schema import RecordSchema
from ._states import history_entry, recordable_state

__all__ = ["ShotStoreWriter"]

logger = logging.getLogger(__name__)

MAX_BATCH = 64
"""Records the worker thread writes in one go when it has fallen behind."""
BATCH_INTERVAL_S = 0.05
"""Shortest time from the start of one batch write to the start of the next: shots that arrive
faster are gathered meanwhile. Each batch rewrites one chunk file of every 1-D array (status,
times, parameters, scalar data), about ten files: writing them per shot of a fast scan cost
more CPU (taken from the shots) than the shots themselves. A shot is durable within about
this long plus one write."""
FINISH_TIMEOUT_S = 60.0
"""Upper bound for draining the queue and finalizing the store on any exit path."""


class ShotStoreWriter:
    """The single writer of one results store. Create it with :meth:`open`.

    Records go through a bounded queue to a worker thread that writes each shot's data,
    then its parameters/times, then its status mark, so a shot marked completed is complete.
    Record arrays must not be mutated after :meth:`write`. The worker thread is the only one
    that writes the store's attributes: :meth:`record_state` hands it the states to record.
    """

    def __init__(self, path: Path, arrays: StoreArrays, schema: RecordSchema, max_pending: int) -> None:
        self.path = path
        self._arrays = arrays
        self._schema = schema
        # None in the queue wakes the worker thread to record the states in self._states
        self._send, self._receive = anyio.create_memory_object_stream[ShotRecord | None](max_pending)
        status = arrays.series["status"]
        self._completed = set(np.flatnonzero(status == ShotStatus.COMPLETED).tolist())
        self._pending = 0
        self._queued_any = False  # the data layout is declared before the first shot
        self._inflight: list[ShotRecord] = []
        self._states: list[dict[str, Any]] = []  # history entries not recorded yet, oldest first
        self._error: Exception | None = None
        self._consumer_done = anyio.Event()
        self._finished = False

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        path: str | Path,
        *,
        spec_json: str,
        expected_shots: int | None,
        parameter_units: Mapping[str, str],
        axes: Sequence[Mapping[str, Any]] | None = None,
        overrides: Mapping[str, str] | None = None,
        max_pending: int = 32,
        resume: bool = False,
        confine_to: str | Path | None = None,
    ) -> AsyncIterator[ShotStoreWriter]:
        """Create (or with ``resume=True`` reopen) the store at ``path``, state ``running``, and run its writer.

        ``axes`` (the scan's axes: name, size, unit, ... as the caller describes them) are kept
        in the root attribute ``axes``; a resumed store keeps its own. ``overrides`` (what the
        run changed in the spec it was given: name -> expression; ``spec_json`` has them
        applied) are kept in ``overrides``; a resumed store keeps its own. With ``confine_to`` (the
        results folder) the store folder must resolve inside it, checked before it is created
        and again once the writer lock is held, and must hold no symbolic link leading out.

        Raises TypeError if ``axes`` is not a list of JSON-safe mappings, StoreError if ``path``
        does not end in ``.zarr`` or leaves ``confine_to``, StoreExistsError if it exists and ``resume`` is false,
        StoreBusyError if another writer holds it, StoreSpecMismatchError if resuming with
        another spec or other axes. On exit without :meth:`finish` the writer records the
        verdict of :func:`tasks.records.decide_outcome` on how the body ended (and on
        :attr:`failure`): ``finished`` (normal exit), ``failed`` (an exception, its record
        kept, or the writer's own failure) or ``interrupted`` (cancellation, Ctrl-C); that
        cleanup is shielded, with a timeout. A normal exit then raises what :meth:`finish` raises.
        """
        path = Path(path)
        if path.suffix != ".zarr":
            raise StoreError(f"store path {path} must end in .zarr")
        lock, arrays = await anyio.to_thread.run_sync(
            partial(
                open_store,
                path,
                spec_json=spec_json,
                expected_shots=expected_shots,
                parameter_units=parameter_units,
                axes=checked_axes(axes),
                overrides={str(k): str(v) for k, v in (overrides or {}).items()},
                resume=resume,
                confine_to=Path(confine_to) if confine_to is not None else None,
            )
        )
        logger.info("%s store %s (%s shots expected)", "resumed" if resume else "created", path, expected_shots)
        body_error: BaseException | None = None  # re-raised outside the task group, unwrapped
        try:
            writer = cls(path, arrays, RecordSchema.from_arrays(arrays, expected_shots), max_pending)
            async with anyio.create_task_group() as tg:
                tg.start_soon(writer._consume)
                try:
                    yield writer
                except anyio.get_cancelled_exc_class() as exc:
                    await writer._finish_after(exc)
                    raise
                except BaseException as exc:  # noqa: BLE001 - recorded in the store, then re-raised
                    await writer._finish_after(exc)
                    body_error = exc
                else:
                    if not writer._finished:
                        outcome = decide_outcome(None, store_failure=writer.failure)
                        try:
                            await writer.finish(outcome.state, outcome.error)
                        except StoreError as exc:  # raised as itself, not in the task group's group
                            body_error = exc
        finally:
            try:
                with anyio.CancelScope(shield=True):  # closed by the final state, unless that never ran
                    await anyio.to_thread.run_sync(arrays.close)
            finally:
                lock.release()
        if body_error is not None:
            raise body_error

    @property
    def completed(self) -> frozenset[int]:
        """Indices of the shots durably marked completed (from before a resume, and since)."""
        return frozenset(self._completed)

    @property
    def pending(self) -> int:
        """Records accepted by write() that are not durable yet."""
        return self._pending

    @property
    def failure(self) -> BaseException | None:
        """The error that stopped the worker thread (the store then accepts no more shots), or None.

        Pass it to :func:`tasks.records.decide_outcome` as ``store_failure`` before :meth:`finish`.
        """
        return self._error

    async def write(self, record: ShotRecord) -> None:
        """Queue ``record``; wait while the queue is full (back-pressure).

        Raises StoreShapeError (naming the label) if the record does not match earlier shots,
        StoreError if the writer has failed or the store is finished. Nothing is dropped.
        """
        self._check_accepting(record)
        self._pending += 1
        self._queued_any = True
        try:
            await self._send.send(record)
        except anyio.BrokenResourceError:
            self._pending -= 1
            raise self._writer_failed() from self._error
        except BaseException:
            self._pending -= 1
            raise

    def write_nowait(self, record: ShotRecord) -> None:
        """Queue ``record`` or raise StoreBackpressure if the queue is full (record not queued)."""
        self._check_accepting(record)
        try:
            self._send.send_nowait(record)
        except anyio.WouldBlock:
            raise StoreBackpressure(
                f"results store queue full ({self._pending} shots pending); shot {record.index} not queued"
            ) from None
        except anyio.BrokenResourceError:
            raise self._writer_failed() from self._error
        self._pending += 1
        self._queued_any = True

    def declare(self, layout: Mapping[str, Mapping[str, Any]]) -> None:
        """Say what each data label is before the first shot is written: ``{label: {"units",
        "long_name", "dims", "coords"}}`` (see :mod:`tasks.store._variables`).

        The arrays then carry CF ``units`` and ``long_name`` attributes, named dims and their
        coordinates; the layout is kept in the group attribute ``data_layout``. Raises
        TypeError if ``layout`` is not JSON-safe, StoreError once a shot has been queued.
        """
        if self._queued_any:
            raise StoreError(f"store {self.path}: the data layout is declared before the first shot")
        self._arrays.declare(layout)

    def record_state(self, state: SequenceState) -> None:
        """Record that the run is now in ``state`` (``initializing``, ``running``, ``stopping``, ...).

        Sets the root attribute ``state`` and appends ``{"state", "time"}`` (now, UTC) to
        ``history``. Returns at once, without I/O: the worker thread writes the attributes
        after the shots queued before, within one batch; :meth:`finish` records any state
        still pending. If the writer has failed the state is kept for :meth:`finish`. Call it
        from the writer's event loop (like :meth:`write`). Raises ValueError for a final state
        (record it with :meth:`finish`), ``crashed`` or an unknown name, StoreError if the store
        is finished.
        """
        value = recordable_state(state)
        if self._finished:
            raise StoreError(f"store {self.path} is finished; state {value!r} cannot be recorded")
        self._states.append(history_entry(value))
        logger.debug("store %s: state %s", self.path, value)
        try:
            self._send.send_nowait(None)
        except anyio.WouldBlock:
            pass  # the queue is full: the worker thread records the state with its next batch
        except anyio.BrokenResourceError:
            logger.warning("store %s: writer failed; state %s will be recorded by finish()", self.path, value)

    async def finish(self, state: SequenceState, error: Mapping[str, Any] | None = None) -> None:
        """Drain the queue, then record exactly ``state`` and ``error``; call once.

        Decide them with :func:`tasks.records.decide_outcome` (passing :attr:`failure` as
        ``store_failure``). The writer decides alone only when queued shots fail to be written
        during finish itself (a failure the caller could not know): ``finished`` then becomes
        that verdict, ``failed`` with "results store writer failed: ...". Trims the arrays
        (unknown shot count), removes zarr's temporary files and consolidates metadata.
        Shielded from cancellation, bounded by ``FINISH_TIMEOUT_S``.

        Raises StoreError, always after recording the state, when the writer failed (before
        or during finish; :attr:`failure` is the cause) or when trimming/consolidating failed.
        Raises StoreError with the state not recorded only if the attribute write itself
        failed or finalizing timed out; the store then still reads as in progress (``crashed``
        once the writer lock is released). Raises StoreError if finish was already called.
        """
        if self._finished:
            raise StoreError(f"finish() was already called on the writer of {self.path}")
        state = SequenceState(state)
        if state == SequenceState.FINISHED and self._error is not None:
            logger.error("store %s: finish(finished) although its writer failed (%s)", self.path, self._error)
        await self._finish(state, error, known_failure=self._error)
        if self._error is not None:
            raise self._writer_failed() from self._error

    # internals

    def _check_accepting(self, record: ShotRecord) -> None:
        if self._finished:
            raise StoreError(f"store {self.path} is finished; shot {record.index} cannot be written")
        if self._error is not None:
            raise self._writer_failed() from self._error
        self._schema.check(record)

    def _writer_failed(self) -> StoreError:
        return StoreError(f"the writer of store {self.path} failed: {self._error}")

    async def _consume(self) -> None:
        try:
            started = -math.inf
            async for first in self._receive:
                batch = await self._gather(first, until=started + BATCH_INTERVAL_S)
                started = anyio.current_time()
                records = [item for item in batch if item is not None]
                states = list(self._states)  # taken on the event loop: record_state appends here
                self._inflight = records
                await anyio.to_thread.run_sync(self._write, records, states)
                self._inflight = []
                del self._states[: len(states)]
                self._mark_written(records)
        except Exception as exc:  # noqa: BLE001 - kept and raised by write()/finish()
            logger.error("writing to store %s failed: %s", self.path, exc)
            self._error = exc
            self._receive.close()  # blocked and later write() calls raise instead of hanging
        finally:
            self._consumer_done.set()

    async def _gather(self, first: ShotRecord | None, *, until: float) -> list[ShotRecord | None]:
        """``first``, what is queued behind it, and what arrives before ``until`` (at most
        :data:`MAX_BATCH`); at once for a state to record (``first`` None) or at the end."""
        batch = [first]
        while len(batch) < MAX_BATCH:
            try:
                batch.append(self._receive.receive_nowait())
                continue
            except anyio.EndOfStream:
                break
            except anyio.WouldBlock:
                pass
            if first is None or self._finished or anyio.current_time() >= until:
                break
            with anyio.move_on_after(until - anyio.current_time()) as waited:
                try:
                    batch.append(await self._receive.receive())
                except anyio.EndOfStream:
                    break
            if waited.cancelled_caught:
                break
        return batch

    def _write(self, records: list[ShotRecord], states: list[dict[str, Any]]) -> None:
        """In the worker thread: the shots, then the states recorded since the last batch."""
        self._arrays.write_batch(records)
        try:
            self._arrays.record_states(states)
        except OSError as exc:
            raise StoreError(f"store {self.path}: recording the run's state failed: {describe_os_error(exc)}") from exc

    def _mark_written(self, batch: list[ShotRecord]) -> None:
        for record in batch:
            if record.status == ShotStatus.COMPLETED:
                self._completed.add(record.index)
            else:
                self._completed.discard(record.index)
        self._pending -= len(batch)

    async def _finish_after(self, exc: BaseException) -> None:
        """Record the verdict on the body's ``exc`` unless finish() was called; never raises."""
        if self._finished:
            return
        outcome = decide_outcome(first_error(exc), store_failure=self._error)
        try:
            await self._finish(outcome.state, outcome.error, known_failure=self._error)
        except Exception:
            logger.exception("could not finalize store %s after %r", self.path, exc)

    async def _finish(
        self,
        state: SequenceState,
        error: Mapping[str, Any] | None,
        *,
        known_failure: BaseException | None,
    ) -> None:
        self._finished = True
        with anyio.move_on_after(FINISH_TIMEOUT_S, shield=True) as scope:
            self._send.close()
            await self._consumer_done.wait()
            leftover, self._inflight = self._inflight, []
            while self._error is None:
                try:
                    item = self._receive.receive_nowait()
                except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
                    break
                if item is not None:
                    leftover.append(item)
            states, self._states = self._states, []
            try:
                state = await anyio.to_thread.run_sync(self._finalize, leftover, states, state, error, known_failure)
            finally:
                self._receive.close()
        if scope.cancelled_caught:
            raise StoreError(f"finalizing store {self.path} took more than {FINISH_TIMEOUT_S} s")
        logger.info("store %s finished as %s (%d shots completed)", self.path, state, len(self._completed))

    def _finalize(
        self,
        leftover: list[ShotRecord],
        states: list[dict[str, Any]],
        state: SequenceState,
        error: Mapping[str, Any] | None,
        known_failure: BaseException | None,
    ) -> SequenceState:
        """In the worker thread: write the leftover shots, then record the states and the end; return the end."""
        try:
            self._arrays.write_batch(leftover)
            self._mark_written(leftover)
        except Exception as exc:  # noqa: BLE001 - the final state still gets recorded
            logger.error("store %s: %d queued shots could not be written: %s", self.path, len(leftover), exc)
            self._error = self._error or exc
        if state == SequenceState.FINISHED and self._error is not None and self._error is not known_failure:
            outcome = decide_outcome(None, store_failure=self._error)  # failed during finish: the caller could not know
            state, error = outcome.state, outcome.error
        try:
            self._arrays.finalize(state, error, states)
        except StoreError:
            raise
        except OSError as exc:
            raise StoreError(
                f"could not record the final state {state} of store {self.path}: {describe_os_error(exc)}"
            ) from exc
        except Exception as exc:
            raise StoreError(f"could not record the final state {state} of store {self.path}: {exc}") from exc
        return state
