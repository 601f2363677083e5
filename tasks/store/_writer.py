"""The results-store writer: a bounded queue of shot records drained by one worker thread."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import numpy as np

from tasks.records import SequenceState, ShotRecord, ShotStatus

from ._errors import StoreBackpressure, StoreError, StoreExistsError, StoreShapeError, StoreSpecMismatchError
from ._layout import RESERVED_NAMES, StoreArrays, read_root_attrs, remove_partial_files
from ._lock import WriterLock, acquire_writer_lock, is_unborn_store

__all__ = ["ShotStoreWriter"]

logger = logging.getLogger(__name__)

MAX_BATCH = 64
"""Records the worker thread writes in one go when it has fallen behind."""
FINISH_TIMEOUT_S = 60.0
"""Upper bound for draining the queue and finalizing the store on any exit path."""


@dataclass
class _RecordSchema:
    """Shapes/dtypes of data labels and kinds of parameters seen so far; checks new records."""

    expected_shots: int | None
    data: dict[str, tuple[tuple[int, ...], np.dtype]] = field(default_factory=dict)
    parameters: dict[str, bool] = field(default_factory=dict)  # name -> is bool

    @classmethod
    def from_arrays(cls, arrays: StoreArrays, expected_shots: int | None) -> _RecordSchema:
        schema = cls(expected_shots)
        for name, array in arrays.arrays.items():
            if name in arrays.parameters:
                schema.parameters[name] = array.dtype == np.dtype(bool)
            elif name not in RESERVED_NAMES:
                schema.data[name] = (tuple(array.shape[1:]), array.dtype)
        return schema

    def check(self, record: ShotRecord) -> None:
        """Raise StoreShapeError/StoreError if ``record`` does not fit; register new names."""
        if record.index < 0 or (self.expected_shots is not None and record.index >= self.expected_shots):
            raise StoreError(f"shot index {record.index} is outside 0..{self.expected_shots}")
        new_data: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
        if record.status != ShotStatus.FAILED:
            for label, value in record.data.items():
                new_data[label] = self._check_data(record.index, label, np.asarray(value))
        new_params: dict[str, bool] = {}
        for name, value in record.parameters.items():
            new_params[name] = self._check_parameter(record.index, name, value)
        clash = (set(new_data) & (set(new_params) | set(self.parameters))) | (set(new_params) & set(self.data))
        if clash:
            name = min(clash)
            raise StoreShapeError(
                f"shot {record.index}: {name!r} is both a parameter and a data label",
                label=name,
            )
        self.data.update(new_data)
        self.parameters.update(new_params)

    def _check_data(self, index: int, label: str, value: np.ndarray) -> tuple[tuple[int, ...], np.dtype]:
        if label in RESERVED_NAMES:
            raise StoreShapeError(
                f"shot {index}: data label {label!r} is a reserved store name",
                label=label,
            )
        if value.dtype.kind not in "biufc":
            raise StoreShapeError(
                f"shot {index}: data {label!r} has dtype {value.dtype}; the store keeps numeric or bool data",
                label=label,
            )
        known = self.data.get(label)
        if known is not None and (value.shape, value.dtype) != known:
            raise StoreShapeError(
                f"shot {index}: data {label!r} has shape {value.shape} dtype {value.dtype}, but earlier "
                f"shots stored shape {known[0]} dtype {known[1]}; a label keeps one shape and dtype",
                label=label,
            )
        return value.shape, value.dtype

    def _check_parameter(self, index: int, name: str, value: Any) -> bool:
        if name in RESERVED_NAMES:
            raise StoreShapeError(f"shot {index}: parameter {name!r} is a reserved store name", label=name)
        if not isinstance(value, (bool, int, float, np.bool_, np.integer, np.floating)):
            raise StoreShapeError(
                f"shot {index}: parameter {name!r} = {value!r} is not a number or bool",
                label=name,
            )
        is_bool = isinstance(value, (bool, np.bool_))
        if self.parameters.get(name, is_bool) != is_bool:
            raise StoreShapeError(
                f"shot {index}: parameter {name!r} switched between bool and number",
                label=name,
            )
        return is_bool


def _same_spec(stored: str, given: str) -> bool:
    try:
        return json.loads(stored) == json.loads(given)
    except ValueError:
        return stored == given


def _open_store(
    path: Path,
    *,
    spec_json: str,
    expected_shots: int | None,
    parameter_units: Mapping[str, str],
    resume: bool,
) -> tuple[WriterLock, StoreArrays]:
    """Blocking part of :meth:`ShotStoreWriter.open`: lock, then create or reopen."""
    if resume:
        read_root_attrs(path)  # raises StoreError if there is no store to resume
        lock = acquire_writer_lock(path)
        try:
            if not _same_spec(str(read_root_attrs(path).get("spec", "")), spec_json):
                raise StoreSpecMismatchError(
                    f"cannot resume {path}: its sequence spec differs from the one given; resume with "
                    "the spec stored in the store (see `shotflow show`)"
                )
            remove_partial_files(path)
            return lock, StoreArrays.reopen(path, expected_shots=expected_shots, writer=lock.holder)
        except BaseException:
            lock.release()
            raise
    try:
        path.mkdir(parents=True, exist_ok=False)
    except FileExistsError:
        if not is_unborn_store(path):
            raise StoreExistsError(
                f"{path} already exists; choose another store path, or resume it (`shotflow resume {path}`)"
            ) from None
        logger.warning("%s holds only the lock of a run killed before its store was written: reusing it", path)
    lock = acquire_writer_lock(path)
    try:
        arrays = StoreArrays.create(
            path,
            spec_json=spec_json,
            expected_shots=expected_shots,
            parameter_units=parameter_units,
            writer=lock.holder,
        )
    except BaseException:
        lock.release()
        raise
    return lock, arrays


class ShotStoreWriter:
    """The single writer of one results store. Create it with :meth:`open`.

    Records go through a bounded queue to a worker thread that writes each shot's data,
    then its parameters/times, then its status mark, so a shot marked completed is complete.
    Record arrays must not be mutated after :meth:`write`.
    """

    def __init__(self, path: Path, arrays: StoreArrays, schema: _RecordSchema, max_pending: int) -> None:
        self.path = path
        self._arrays = arrays
        self._schema = schema
        self._send, self._receive = anyio.create_memory_object_stream[ShotRecord](max_pending)
        status = arrays.series["status"]
        self._completed = set(np.flatnonzero(status == ShotStatus.COMPLETED).tolist())
        self._pending = 0
        self._inflight: list[ShotRecord] = []
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
        max_pending: int = 32,
        resume: bool = False,
    ) -> AsyncIterator[ShotStoreWriter]:
        """Create (or with ``resume=True`` reopen) the store at ``path`` and run its writer.

        Raises StoreError if ``path`` does not end in ``.zarr``, StoreExistsError if it exists
        and ``resume`` is false, StoreBusyError if another writer holds it,
        StoreSpecMismatchError if resuming with another spec. On exit without :meth:`finish`
        the store is finished as ``finished`` (normal exit), ``failed`` (exception, its text
        recorded) or ``interrupted`` (cancellation); that cleanup is shielded, with a timeout.
        """
        path = Path(path)
        if path.suffix != ".zarr":
            raise StoreError(f"store path {path} must end in .zarr")
        lock, arrays = await anyio.to_thread.run_sync(
            partial(
                _open_store,
                path,
                spec_json=spec_json,
                expected_shots=expected_shots,
                parameter_units=parameter_units,
                resume=resume,
            )
        )
        logger.info(
            "%s store %s (%s shots expected)",
            "resumed" if resume else "created",
            path,
            expected_shots,
        )
        body_error: BaseException | None = None  # re-raised outside the task group, unwrapped
        try:
            writer = cls(
                path,
                arrays,
                _RecordSchema.from_arrays(arrays, expected_shots),
                max_pending,
            )
            async with anyio.create_task_group() as tg:
                tg.start_soon(writer._consume)
                try:
                    yield writer
                except anyio.get_cancelled_exc_class() as exc:
                    await writer._finish_after(exc, SequenceState.INTERRUPTED)
                    raise
                except BaseException as exc:  # noqa: BLE001 - recorded in the store, then re-raised
                    interrupted = isinstance(exc, KeyboardInterrupt)
                    await writer._finish_after(
                        exc,
                        SequenceState.INTERRUPTED if interrupted else SequenceState.FAILED,
                    )
                    body_error = exc
                else:
                    if not writer._finished:
                        await writer.finish(SequenceState.FINISHED)
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

    async def write(self, record: ShotRecord) -> None:
        """Queue ``record``; wait while the queue is full (back-pressure).

        Raises StoreShapeError (naming the label) if the record does not match earlier shots,
        StoreError if the writer has failed or the store is finished. Nothing is dropped.
        """
        self._check_accepting(record)
        self._pending += 1
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

    async def finish(self, state: SequenceState, error: Mapping[str, Any] | None = None) -> None:
        """Drain the queue and record the final ``state`` and ``error``; call once.

        Trims the arrays (unknown shot count), removes zarr's temporary files and consolidates
        metadata. Shielded from cancellation, bounded by ``FINISH_TIMEOUT_S``. Raises StoreError
        if the writer failed earlier (the store then records ``failed``) or finalizing failed.
        """
        if self._finished:
            raise StoreError(f"finish() was already called on the writer of {self.path}")
        await self._finish(SequenceState(state), error)
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
            async for first in self._receive:
                batch = [first]
                while len(batch) < MAX_BATCH:
                    try:
                        batch.append(self._receive.receive_nowait())
                    except (anyio.WouldBlock, anyio.EndOfStream):
                        break
                self._inflight = batch
                await anyio.to_thread.run_sync(self._arrays.write_batch, batch)
                self._inflight = []
                self._mark_written(batch)
        except Exception as exc:  # noqa: BLE001 - kept and raised by write()/finish()
            logger.error("writing to store %s failed: %s", self.path, exc)
            self._error = exc
            self._receive.close()  # blocked and later write() calls raise instead of hanging
        finally:
            self._consumer_done.set()

    def _mark_written(self, batch: list[ShotRecord]) -> None:
        for record in batch:
            if record.status == ShotStatus.COMPLETED:
                self._completed.add(record.index)
            else:
                self._completed.discard(record.index)
        self._pending -= len(batch)

    async def _finish_after(self, exc: BaseException, state: SequenceState) -> None:
        """Finish with ``state`` and ``exc``'s text unless finish() was called; never raises."""
        if self._finished:
            return
        try:
            await self._finish(state, {"type": type(exc).__name__, "message": str(exc) or repr(exc)})
        except Exception:
            logger.exception("could not finalize store %s after %r", self.path, exc)

    async def _finish(self, state: SequenceState, error: Mapping[str, Any] | None) -> None:
        self._finished = True
        with anyio.move_on_after(FINISH_TIMEOUT_S, shield=True) as scope:
            self._send.close()
            await self._consumer_done.wait()
            leftover, self._inflight = self._inflight, []
            while self._error is None:
                try:
                    leftover.append(self._receive.receive_nowait())
                except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
                    break
            if self._error is not None and state == SequenceState.FINISHED:
                state = SequenceState.FAILED
                error = {
                    "type": type(self._error).__name__,
                    "message": f"results store writer failed: {self._error}",
                }
            await anyio.to_thread.run_sync(self._finalize, leftover, state, error)
            self._receive.close()
        if scope.cancelled_caught:
            raise StoreError(f"finalizing store {self.path} took more than {FINISH_TIMEOUT_S} s")
        logger.info(
            "store %s finished as %s (%d shots completed)",
            self.path,
            state,
            len(self._completed),
        )

    def _finalize(
        self,
        leftover: list[ShotRecord],
        state: SequenceState,
        error: Mapping[str, Any] | None,
    ) -> None:
        try:
            self._arrays.write_batch(leftover)
            self._mark_written(leftover)
        except Exception as exc:  # noqa: BLE001 - the final state still gets recorded
            logger.error(
                "store %s: %d queued shots could not be written: %s",
                self.path,
                len(leftover),
                exc,
            )
            self._error = self._error or exc
            if state == SequenceState.FINISHED:
                state, error = (
                    SequenceState.FAILED,
                    {"type": type(exc).__name__, "message": str(exc)},
                )
        self._arrays.finalize(state, error)
