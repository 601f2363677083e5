"""Resume does not trust the spec kept in the store (issue 11, class 3b): it is validated like any
spec, and refused when it no longer describes the shots already stored (count, parameters,
units). The store's ``spec`` attribute is really edited on disk, as a hand or a script would."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import anyio
import numpy as np
import pytest
from _rlab import lab_dict
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from simlab import SHOTFLOW

from flows._errors import SpecError
from flows.run._prepare import check_resume
from flows.sequence import count_shots, iter_shots, load_spec, parameter_units, plan_sequence
from tasks.records import SequenceState, ShotRecord
from tasks.store import ShotStoreWriter, read_store_spec

SHOTS = 6


async def _interrupted_store(path: Path, spec_dict: dict[str, object], completed: int) -> None:
    """A store of ``spec_dict`` whose first ``completed`` shots are done, as an interrupted run leaves it."""
    spec = load_spec(spec_dict)
    async with ShotStoreWriter.open(
        path,
        spec_json=spec.model_dump_json(),
        expected_shots=count_shots(spec),
        parameter_units=parameter_units(spec),
        axes=plan_sequence(spec).axes_record(),
    ) as writer:
        for shot in iter_shots(spec):
            if shot.index >= completed:
                break
            data = {"camera.atoms": float(shot.index)}
            await writer.write(ShotRecord(shot.index, dict(shot.parameters), data, 0.0, 0.0))
        await writer.finish(SequenceState.INTERRUPTED)


def _edit_spec(path: Path, edit: dict[str, object]) -> None:
    """Rewrite the store's ``spec`` attribute in its zarr.json (and drop nothing else)."""
    meta_path = path / "zarr.json"
    meta = json.loads(meta_path.read_text())
    spec = json.loads(meta["attributes"]["spec"])
    spec["iteration"][0]["linspace"].update(edit)
    meta["attributes"]["spec"] = json.dumps(spec)
    meta.pop("consolidated_metadata", None)
    meta_path.write_text(json.dumps(meta))


def _mhz(text: str) -> float:
    return float(text.split()[0]) * 1e6


EDITS = st.fixed_dictionaries(
    {},
    optional={
        "num": st.integers(1, 2 * SHOTS),
        "start": st.sampled_from(["-2 MHz", "-1 MHz", "-2 MHz + offset"]),
        "stop": st.sampled_from(["2 MHz", "3 MHz"]),
        "variable": st.sampled_from(["detuning", "delta"]),
    },
)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(completed=st.integers(0, SHOTS), edit=EDITS)
def test_resume_refuses_a_stored_spec_that_no_longer_describes_its_shots(
    tmp_path_factory: pytest.TempPathFactory, completed: int, edit: dict[str, object]
) -> None:
    path = tmp_path_factory.mktemp("resume") / "s.zarr"
    original = lab_dict(shots=SHOTS)
    anyio.run(_interrupted_store, path, original, completed)
    _edit_spec(path, edit)
    if edit.get("variable", "detuning") != "detuning":  # the devices use detuning: invalid spec
        with pytest.raises(SpecError, match="unknown variable"):
            load_spec(read_store_spec(path))
        return
    spec = load_spec(read_store_spec(path))  # still a valid spec: validation passes
    # consistent, computed independently of the checker: same count, name, and stored values
    num = int(edit.get("num", SHOTS))  # type: ignore[call-overload]
    old = np.linspace(-2e6, 2e6, SHOTS)[:completed]
    new = np.linspace(_mhz(str(edit.get("start", "-2 MHz"))), _mhz(str(edit.get("stop", "2 MHz"))), num)[:completed]
    consistent = num == SHOTS and np.allclose(old, new)
    if consistent:
        check_resume(spec, path)
    else:
        with pytest.raises(SpecError, match=f"cannot resume {path}"):
            check_resume(spec, path)


def test_shotflow_resume_of_an_edited_store_exits_2_with_one_message(tmp_path: Path, terminal: dict[str, str]) -> None:
    path = tmp_path / "s.zarr"
    anyio.run(_interrupted_store, path, lab_dict(shots=SHOTS), 3)
    _edit_spec(path, {"num": 2})  # the README's failure: "3 completed of 2 expected"
    done = subprocess.run([SHOTFLOW, "resume", str(path)], env=terminal, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done
    assert "Traceback" not in done.stderr and f"cannot resume {path}" in done.stderr, done.stderr
    _edit_spec(path, {"num": "many"})  # not a valid spec any more: refused by the spec's own validation
    done = subprocess.run([SHOTFLOW, "resume", str(path)], env=terminal, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "linspace.num" in done.stderr, done.stderr
