"""The deployed run-sequence form checks units: a duration in the wrong dimension is refused by
the server when the run is submitted (``enforce_parameter_schema``), before any flow run starts."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID

import pytest
import yaml
from _deploy_lab import REPO, Lab

from flows.sequence import SequenceSpec

RUN_TIMEOUT = 150.0
POLL_INTERVAL = 0.5


def _spec(journal: str, shot_timeout: str) -> dict[str, Any]:
    """The simulated-lab calibration scan of examples/, journalled, with ``shot_timeout`` as given."""
    spec = yaml.safe_load((REPO / "examples" / "calibration_resonance.yaml").read_text())
    spec["name"] = "form-schema"
    spec["iteration"][0]["linspace"]["num"] = 2
    for device in spec["devices"].values():
        device["faults"] = {"journal": journal}
    data = SequenceSpec.model_validate(spec).model_dump(mode="json", exclude_unset=True)
    data["execution"] = {**data.get("execution", {}), "shot_timeout": shot_timeout}  # what the form sends
    return data


def _submit(lab: Lab, **parameters: Any) -> Any:
    from prefect.deployments import run_deployment

    async def inside() -> Any:
        with lab.settings():
            return await run_deployment("run-sequence/run-sequence", parameters=parameters, timeout=0)

    return asyncio.run(inside())


@pytest.mark.parametrize("shot_timeout", ["10 kg", "10", "0 s", "2 * pulse"])
def test_a_shot_timeout_that_is_not_a_positive_duration_is_refused_at_submission(lab: Lab, shot_timeout: str) -> None:
    from prefect.exceptions import PrefectHTTPStatusError

    journal = lab.results / "form-schema.jsonl"
    with pytest.raises(PrefectHTTPStatusError) as refused:
        _submit(lab, spec=_spec(str(journal), shot_timeout))
    assert refused.value.response.status_code in (409, 422)
    message = refused.value.response.text
    assert "shot_timeout" in message and shot_timeout in message, message
    assert not journal.exists()


async def _final(lab: Lab, flow_run_id: UUID) -> Any:
    """The flow run once it is in a final state (polled, as the UI does)."""
    from prefect import get_client

    with lab.settings():
        async with get_client() as client, asyncio.timeout(RUN_TIMEOUT):
            while True:
                flow_run = await client.read_flow_run(flow_run_id)
                if flow_run.state is not None and flow_run.state.is_final():
                    return flow_run
                await asyncio.sleep(POLL_INTERVAL)


def test_a_shot_timeout_in_time_units_is_accepted_and_the_run_uses_the_overrides(lab: Lab) -> None:
    journal = lab.results / "form-schema-ok.jsonl"
    flow_run = _submit(lab, spec=_spec(str(journal), "1.5 min"), overrides={"devices.camera.exposure": "2 ms"})
    assert flow_run.parameters["spec"]["execution"]["shot_timeout"] == "1.5 min"
    final = asyncio.run(_final(lab, flow_run.id))
    assert final.state.is_completed(), final.state.message
