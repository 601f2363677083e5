"""Every path a spec or a parameter names stays inside SHOTFLOW_RESULTS_ROOT when it is opened
(issue 11, class 1): the store folder actually written, links swapped in after the checks, links
inside a store, and the simulated instruments' journal. Real folders and real symbolic links."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
import pytest
from _rlab import lab_dict, read_journal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import devices.sim._faults as sim_faults
from devices import DeviceConfigurationError
from devices.sim._faults import SimFaults
from devices.sim.rf_source import RFSourceDevice
from flows._errors import SpecError
from flows.run import resolve_store_path
from flows.run._prepare import RESULTS_ROOT_ENV
from flows.sequence import load_spec
from tasks.store import ShotStoreWriter, StoreError

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@contextmanager
def _results_root(root: Path) -> Iterator[None]:
    old = os.environ.get(RESULTS_ROOT_ENV)
    os.environ[RESULTS_ROOT_ENV] = str(root)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(RESULTS_ROOT_ENV)
        else:
            os.environ[RESULTS_ROOT_ENV] = old


def _lab(tmp: Path) -> tuple[Path, Path]:
    results, outside = tmp / "results", tmp / "outside"
    results.mkdir()
    outside.mkdir()
    return results, outside


def _listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_the_devices_package_reads_the_same_variable_as_the_run() -> None:
    assert sim_faults.RESULTS_ROOT_ENV == RESULTS_ROOT_ENV


# which component of <root>/<storage.root>/<name>/<stamp>.zarr is a link, and where it points
LINKED = st.sampled_from(["storage_root", "name", "store"])
TARGET = st.sampled_from(["outside", "outside/deeper", "inside", "/"])


@SETTINGS
@given(linked=LINKED, target=TARGET)
def test_a_link_anywhere_on_the_store_path_may_not_lead_out(tmp_path_factory: object, linked: str, target: str) -> None:
    tmp = tmp_path_factory.mktemp("links")  # type: ignore[attr-defined]
    results, outside = _lab(tmp)
    (outside / "deeper").mkdir()
    (results / "inside").mkdir()
    destination = Path("/") if target == "/" else (tmp / target if target.startswith("outside") else results / target)
    spec = lab_dict(name="scan")
    spec["storage"] = {"root": "data"}
    loaded = load_spec(spec)
    escapes = target != "inside"
    if linked == "storage_root":
        (results / "data").symlink_to(destination)
    elif linked == "name":
        (results / "data").mkdir()
        (results / "data" / "scan").symlink_to(destination)
    if linked != "store":
        if escapes:
            with pytest.raises(SpecError, match="storage.root"):
                resolve_store_path(loaded, results_root=results)
        else:
            resolve_store_path(loaded, results_root=results)
        return
    # the store folder itself is a link: given with --store (resume of an existing store)
    (results / "s.zarr").symlink_to(destination)
    if escapes:
        with pytest.raises(SpecError, match="store"):
            resolve_store_path(loaded, results_root=results, store=Path("s.zarr"))
    else:  # a link to a folder inside the results root is fine
        resolve_store_path(loaded, results_root=results, store=Path("s.zarr"))


async def _open(path: Path, root: Path, *, resume: bool = False) -> None:
    async with ShotStoreWriter.open(
        path, spec_json="{}", expected_shots=3, parameter_units={}, confine_to=root, resume=resume
    ) as writer:
        await writer.finish("finished")  # type: ignore[arg-type]


@SETTINGS
@given(swapped=st.sampled_from(["name", "parent_of_store"]))
def test_a_link_swapped_in_after_the_path_check_is_refused_when_the_store_opens(
    tmp_path_factory: object, swapped: str
) -> None:
    """What a link swapped in while the run waits for its devices' locks does: the path was
    checked (and found inside) before, the link appears, then the store is opened."""
    tmp = tmp_path_factory.mktemp("swap")  # type: ignore[attr-defined]
    results, outside = _lab(tmp)
    spec = lab_dict(name="scan")
    spec["storage"] = {"root": "data"}
    path = resolve_store_path(load_spec(spec), results_root=results)  # inside: accepted
    (results / "data").mkdir()
    if swapped == "name":
        (results / "data" / "scan").symlink_to(outside)
    else:
        (results / "data" / "scan").mkdir()
        path = results / "data" / "scan" / "sub" / path.name
        (results / "data" / "scan" / "sub").symlink_to(outside)
    with pytest.raises(StoreError, match="outside the results folder"):
        anyio.run(_open, path, results)
    assert _listing(outside) == [], "something was written outside the results folder"


def test_a_store_holding_a_link_out_is_not_resumed(tmp_path: Path) -> None:
    results, outside = _lab(tmp_path)
    store = results / "s.zarr"
    anyio.run(_open, store, results)
    (store / "camera.atoms").symlink_to(outside)  # an array folder that leads out
    with pytest.raises(StoreError, match="symbolic link"):
        anyio.run(lambda: _open(store, results, resume=True))
    assert _listing(outside) == []


JOURNALS = st.one_of(
    st.sampled_from(["../outside/j.jsonl", "/tmp/j.jsonl", "link/j.jsonl", "inside/j.jsonl", "j.jsonl", "inside/../j"]),
    st.lists(st.sampled_from(["..", "inside", "link", "x"]), min_size=1, max_size=5).map(lambda p: "/".join(p)),
)


@SETTINGS
@given(journal=JOURNALS)
def test_a_sim_journal_must_resolve_inside_the_results_folder(tmp_path_factory: object, journal: str) -> None:
    tmp = tmp_path_factory.mktemp("journal")  # type: ignore[attr-defined]
    results, outside = _lab(tmp)
    (results / "inside").mkdir()
    (results / "link").symlink_to(outside)
    path = results / journal
    real = Path(os.path.realpath(path))
    allowed = real == results.resolve() or results.resolve() in real.parents
    with _results_root(results):
        if allowed:
            RFSourceDevice(name="rf", faults=SimFaults(journal=str(path)))
        else:
            with pytest.raises(DeviceConfigurationError, match="outside the results folder"):
                RFSourceDevice(name="rf", faults=SimFaults(journal=str(path)))
    assert _listing(outside) == []


def test_a_journal_swapped_for_a_link_after_the_check_is_not_followed(tmp_path: Path) -> None:
    results, outside = _lab(tmp_path)
    journal = results / "j.jsonl"
    with _results_root(results):
        sim_faults.check_journal(str(journal))
        journal.symlink_to(outside / "victim")  # swapped in after the device was built
        with pytest.raises((OSError, ValueError)):  # re-checked, and opened without following a link
            sim_faults.write_journal(str(journal), "camera", "enter")
    assert _listing(outside) == []


@pytest.mark.usefixtures("prefect_server")
def test_a_run_with_a_journal_outside_the_root_touches_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The sim lab is a deployment: any API caller could name a journal anywhere."""
    from flows.run import run_sequence

    results, outside = _lab(tmp_path)
    journal = outside / "journal.jsonl"
    monkeypatch.setenv(RESULTS_ROOT_ENV, str(results))
    state = asyncio.run(run_sequence(load_spec(lab_dict(journal=journal)), return_state=True))
    assert state.is_failed()
    assert "outside the results folder" in str(state.message) or "faults.journal" in str(state.message)
    assert not journal.exists() and read_journal(journal) == []
    assert _listing(outside) == []
