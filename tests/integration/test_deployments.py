"""End to end on a real Prefect server: prefect.yaml deployments, a process worker, API-triggered runs.

Runs through the API (``run_deployment``, plain HTTP), hardware locks between
overlapping deployment runs, cancellation from the API, a schedule firing, and
a calibration whose value the next sequence uses; the server requires
authentication.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import numpy as np
import pytest
import yaml
from _deploy_lab import AUTH, REPO, Lab

from flows.sequence import load_spec
from tasks.store import open_sequence, store_state

pytestmark = pytest.mark.integration

RUN_TIMEOUT = 150.0
SCHEDULE_EVERY = 8
"""Seconds between two runs of the test's calibration schedule."""
TRUE_RESONANCE = 80.137e6


def lab_spec(name: str, journal: Path, *, shots: int = 4, load: str = "5 ms", **changes: Any) -> dict[str, Any]:
    """The simulated-lab calibration scan of examples/, renamed, shortened, journalled, as JSON."""
    spec = yaml.safe_load((REPO / "examples" / "calibration_resonance.yaml").read_text())
    spec["name"] = name
    spec["iteration"][0]["linspace"]["num"] = shots
    spec["timeline"]["steps"][0]["duration"] = load
    spec["execution"] = {"lookahead": 2, "shot_timeout": "5 s", "compile_workers": 1}
    for device in spec["devices"].values():
        device["faults"] = {"journal": str(journal)}
    spec.update(changes)
    return load_spec_json(spec)


def load_spec_json(data: dict[str, Any]) -> dict[str, Any]:
    """Validated, with every expression as a string (what the server's JSON schema expects)."""
    from flows.sequence import SequenceSpec

    return SequenceSpec.model_validate(data).model_dump(mode="json", exclude_unset=True)


def journal_events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def span(path: Path) -> tuple[float, float]:
    entries = journal_events(path)
    enters = [e["time"] for e in entries if e["event"] == "enter"]
    exits = [e["time"] for e in entries if e["event"] == "exit"]
    assert enters and len(enters) == len(exits), f"devices not entered and exited: {entries}"
    return min(enters), max(exits)


async def trigger(deployment: str, **parameters: Any) -> Any:
    """Start a deployment run through the API; returns the flow run at once (``timeout=0``)."""
    from prefect.deployments import run_deployment

    return await run_deployment(deployment, parameters=parameters, timeout=0)


def timed_out(lab: Lab, what: str) -> AssertionError:
    log = (lab.logs / "worker.log").read_text()[-4000:]
    return AssertionError(f"{what} not seen after {RUN_TIMEOUT} s; worker log:\n{log}")


async def wait_final(lab: Lab, flow_run_id: UUID) -> Any:
    """The flow run once it is in a final state."""
    from prefect import get_client

    async with get_client() as client:
        try:
            async with asyncio.timeout(RUN_TIMEOUT):
                while True:
                    run = await client.read_flow_run(flow_run_id)
                    if run.state is not None and run.state.is_final():
                        return run
                    await asyncio.sleep(0.5)
        except TimeoutError:
            raise timed_out(lab, f"a final state of flow run {flow_run_id}") from None


async def wait_for_shots(lab: Lab, journal: Path, shots: int) -> None:
    """Until the camera of the journalled run has finished ``shots`` shots."""
    try:
        async with asyncio.timeout(RUN_TIMEOUT):
            while (
                len([e for e in journal_events(journal) if e["event"] == "run_end" and e["device"] == "camera"]) < shots
            ):
                await asyncio.sleep(0.2)
    except TimeoutError:
        raise timed_out(lab, f"{shots} shots in {journal.name}") from None


def run(coroutine: Any, lab: Lab) -> Any:
    async def inside() -> Any:
        with lab.settings():
            return await coroutine

    return asyncio.run(inside())


def test_deployments_from_prefect_yaml(lab: Lab) -> None:
    async def check() -> None:
        from prefect import get_client

        async with get_client() as client:
            sequence = await client.read_deployment_by_name("run-sequence/run-sequence")
            calibration = await client.read_deployment_by_name("calibrate-resonance/calibrate-resonance")
        assert sequence.enforce_parameter_schema and calibration.enforce_parameter_schema
        schema = sequence.parameter_openapi_schema
        assert "SequenceSpec" in json.dumps(schema["properties"]["spec"]), "the UI form is not typed"
        from flows.sequence import SequenceSpec

        assert SequenceSpec.model_validate(sequence.parameters["spec"]) == load_spec(REPO / "examples/resonance.yaml")
        assert SequenceSpec.model_validate(calibration.parameters["spec"]) == load_spec(
            REPO / "examples/calibration_resonance.yaml"
        )
        assert sequence.pull_steps == [
            {"prefect.deployments.steps.set_working_directory": {"directory": str(lab.project.resolve())}}
        ]
        assert sequence.work_pool_name == "shotflow-pool"
        (schedule,) = calibration.schedules
        assert schedule.active is False and schedule.schedule.cron == "0 6 * * *"

    run(check(), lab)


def test_api_run_returns_at_once_and_its_result_is_readable(lab: Lab) -> None:
    journal = lab.results / "api.jsonl"

    async def scenario() -> tuple[Any, Any]:
        flow_run = await trigger("run-sequence/run-sequence", spec=lab_spec("api-run", journal, shots=5))
        assert not flow_run.state.is_final(), "run_deployment(timeout=0) waited for the run"
        final = await wait_final(lab, flow_run.id)
        return final, await final.state.aresult()

    final, result = run(scenario(), lab)
    assert final.state.is_completed(), final.state.message
    assert result.state == "finished" and result.completed_shots == 5
    store = Path(result.store)
    assert lab.results.resolve() in store.parents
    ds = open_sequence(store)
    assert ds.sizes["shot"] == 5 and ds["camera.atoms"].shape == (5, 32, 32)


def post_retrying_503(url: str, **kwargs: Any) -> httpx.Response:
    """POST as the README's `curl --retry 5` does: a 503 (the SQLite server's database was busy) is retried.

    The server rolls the request back before it answers 503, so the retry creates one flow run, not two;
    the Prefect client retries the same codes.
    """
    delay = 1.0
    for _ in range(5):
        response = httpx.post(url, timeout=10, **kwargs)
        if response.status_code != 503:
            return response
        time.sleep(delay)
        delay *= 2
    return httpx.post(url, timeout=10, **kwargs)


def test_plain_http_needs_the_auth_string(lab: Lab) -> None:
    base = lab.api_url
    refused = httpx.post(f"{base}/deployments/filter", json={}, timeout=10)
    assert refused.status_code == 401
    wrong = httpx.post(f"{base}/deployments/filter", json={}, auth=("shotflow", "guess"), timeout=10)
    assert wrong.status_code == 401
    user, password = AUTH.split(":")
    deployment = httpx.get(
        f"{base}/deployments/name/run-sequence/run-sequence",
        auth=(user, password),
        timeout=10,
    )
    assert deployment.status_code == 200
    deployment_id = deployment.json()["id"]
    journal = lab.results / "http.jsonl"
    body = {"parameters": {"spec": lab_spec("http-run", journal, shots=3)}}
    assert httpx.post(f"{base}/deployments/{deployment_id}/create_flow_run", json=body, timeout=10).status_code == 401
    header = {"Authorization": "Basic " + base64.b64encode(AUTH.encode()).decode()}
    created = post_retrying_503(f"{base}/deployments/{deployment_id}/create_flow_run", json=body, headers=header)
    assert created.status_code == 201, created.text
    final = run(wait_final(lab, UUID(created.json()["id"])), lab)
    assert final.state.is_completed(), final.state.message
    assert len([e for e in journal_events(journal) if e["event"] == "run_end" and e["device"] == "camera"]) == 3


def test_invalid_parameters_are_rejected_by_the_server(lab: Lab) -> None:
    from prefect.exceptions import PrefectHTTPStatusError

    journal = lab.results / "invalid.jsonl"
    spec = lab_spec("invalid-run", journal)
    spec["iteration"][0]["linspace"]["num"] = "many"
    with pytest.raises(PrefectHTTPStatusError) as refused:
        run(trigger("run-sequence/run-sequence", spec=spec), lab)
    message = refused.value.response.text
    assert refused.value.response.status_code in (409, 422)
    assert "num" in message and "many" in message, message
    assert not journal.exists()


def test_storage_outside_the_results_root_is_refused(lab: Lab) -> None:
    journal = lab.results / "escape.jsonl"

    async def scenario() -> list[Any]:
        escaping = [
            await trigger(
                "run-sequence/run-sequence",
                spec=lab_spec("escape", journal, storage={"root": "../../x"}),
            ),
            await trigger(
                "run-sequence/run-sequence",
                spec=lab_spec("escape", journal),
                store="/tmp/shotflow-escape.zarr",
            ),
        ]
        return [await wait_final(lab, r.id) for r in escaping]

    for final in run(scenario(), lab):
        assert final.state.is_failed()
        assert "results folder" in final.state.message, final.state.message
    assert not journal.exists(), "a refused run touched a device"
    assert not Path("/tmp/shotflow-escape.zarr").exists()


def test_hardware_lock_serialises_overlapping_deployment_runs(lab: Lab) -> None:
    first, second = lab.results / "lock-a.jsonl", lab.results / "lock-b.jsonl"

    async def scenario() -> list[Any]:
        runs = [
            await trigger(
                "run-sequence/run-sequence",
                spec=lab_spec("lock-a", first, shots=6, load="150 ms"),
            ),
            await trigger(
                "run-sequence/run-sequence",
                spec=lab_spec("lock-b", second, shots=6, load="150 ms"),
            ),
        ]
        return [await wait_final(lab, r.id) for r in runs]

    finals = run(scenario(), lab)
    assert all(f.state.is_completed() for f in finals), [f.state.message for f in finals]
    a, b = sorted([span(first), span(second)])
    assert a[1] <= b[0], f"two runs used the same devices at the same time: {a} and {b}"


def test_cancelling_a_deployment_run_interrupts_it_cleanly(lab: Lab) -> None:
    journal = lab.results / "cancel.jsonl"

    async def scenario() -> Any:
        from prefect import get_client
        from prefect.states import Cancelling

        flow_run = await trigger(
            "run-sequence/run-sequence",
            spec=lab_spec("cancel-me", journal, shots=60, load="150 ms"),
        )
        await wait_for_shots(lab, journal, 3)
        async with get_client() as client:
            await client.set_flow_run_state(flow_run.id, Cancelling())  # what the UI's "Cancel" does
        return await wait_final(lab, flow_run.id)

    final = run(scenario(), lab)
    assert final.state.is_cancelled(), final.state
    entries = journal_events(journal)
    entered = sorted(e["device"] for e in entries if e["event"] == "enter")
    exited = sorted(e["device"] for e in entries if e["event"] == "exit")
    assert entered == exited == ["camera", "rf", "sequencer"]
    (store,) = (lab.results / "results" / "cancel-me").glob("*.zarr")
    info = store_state(store)
    assert info["state"] == "interrupted"
    completed = info["completed_shots"]
    assert 3 <= completed < 60
    assert open_sequence(store).sizes["shot"] == completed


def test_scheduled_calibration_updates_the_value_the_next_sequence_uses(
    lab: Lab,
) -> None:
    journal = lab.results / "after-calibration.jsonl"  # (a file named calibrated.x.. would read as a reference)

    async def scenario() -> tuple[Any, Any, Any]:
        from prefect import get_client
        from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
        from prefect.client.schemas.schedules import IntervalSchedule
        from prefect.variables import Variable

        async with get_client() as client:
            calibration = await client.read_deployment_by_name("calibrate-resonance/calibrate-resonance")
            # every few seconds from now: the scheduler only creates runs due after its
            # own pass, so a single run a few seconds out can be missed on a busy machine;
            # the schedule is deleted as soon as its first run has started
            (schedule,) = await client.create_deployment_schedules(
                calibration.id,
                [
                    (
                        IntervalSchedule(
                            interval=timedelta(seconds=SCHEDULE_EVERY),
                            anchor_date=datetime.now(UTC),
                        ),
                        True,
                    )
                ],
                max_scheduled_runs=1,
            )
            deleted = False
            try:
                async with asyncio.timeout(RUN_TIMEOUT):
                    while True:
                        runs = await client.read_flow_runs(
                            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[calibration.id]))
                        )
                        started = [
                            r for r in runs if r.auto_scheduled and r.state is not None and not r.state.is_scheduled()
                        ]
                        if started and not deleted:
                            await client.delete_deployment_schedule(calibration.id, schedule.id)
                            deleted = True
                        if started and started[0].state.is_final():
                            break
                        await asyncio.sleep(0.5)
            except TimeoutError:
                raise timed_out(lab, "a scheduled calibration run") from None
            finally:
                if not deleted:
                    await client.delete_deployment_schedule(calibration.id, schedule.id)
            fired = started[0]
            stored = await Variable.aget("calibrated_resonance")
        spec = yaml.safe_load((REPO / "examples" / "calibrated_scan.yaml").read_text())
        for device in spec["devices"].values():
            device["faults"] = {"journal": str(journal)}
        spec["execution"]["compile_workers"] = 1
        following = await trigger("run-sequence/run-sequence", spec=load_spec_json(spec))
        final = await wait_final(lab, following.id)
        return fired, stored, final

    fired, stored, final = run(scenario(), lab)
    assert fired.state.is_completed(), fired.state.message
    assert abs(stored["value"] - TRUE_RESONANCE) < 3 * stored["uncertainty"] + 5e3
    assert stored["flow_run"] == str(fired.id)
    assert final.state.is_completed(), final.state.message
    result = run(final.state.aresult(), lab)
    ds = open_sequence(result.store)
    np.testing.assert_allclose(ds["rf.frequency"].values, stored["value"] + ds["detuning"].values)
