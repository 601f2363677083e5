"""run-sequence-yaml: the spec as the text of a YAML file, read exactly as ``shotflow run FILE`` reads it.

Real Prefect (the session's embedded server), the simulated lab and real stores.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import yaml
from prefect import get_client
from simlab import lab_dict

from flows.run import run_sequence_yaml
from flows.sequence import load_spec, load_spec_text
from tasks.store import read_store_spec, store_state

pytestmark = pytest.mark.usefixtures("prefect_server")

ROOT = Path(__file__).resolve().parents[2]


def _run(text: str, store: Path, **kwargs: object) -> object:
    return asyncio.run(run_sequence_yaml(text, store=str(store), return_state=True, **kwargs))


async def _name(flow_run_id: object) -> str:
    async with get_client() as client:
        return (await client.read_flow_run(flow_run_id)).name


def test_a_spec_given_as_yaml_text_runs_as_the_file_would(tmp_path: Path) -> None:
    text = "# pasted from a file\n" + yaml.safe_dump(lab_dict(shots=3, name="yaml-text"))
    store = tmp_path / "y.zarr"
    state = _run(text, store, overrides={"offset": "1 MHz"})
    assert state.is_completed(), state.message
    assert load_spec(read_store_spec(store)) == load_spec_text(text).model_copy(
        update={"parameters": {"offset": "1 MHz"}}
    )
    assert store_state(store)["overrides"] == {"offset": "1 MHz"}
    assert asyncio.run(_name(state.state_details.flow_run_id)).startswith("yaml-text ")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("name: broken\niteration: [\n", "spec_yaml: line 3"),  # a syntax error names its line
        ("examples/resonance.yaml", "a sequence spec is a mapping"),  # text, never a file to read
        ("name: no-scan\n", "iteration"),  # a missing field is named
    ],
)
def test_bad_text_is_refused_naming_the_problem_before_anything_is_touched(
    tmp_path: Path, text: str, problem: str
) -> None:
    store = tmp_path / "never.zarr"
    state = _run(text, store)
    assert state.is_failed()
    assert problem in str(state.message), state.message
    assert not store.exists()


def test_the_deployment_defaults_to_the_resonance_example() -> None:
    deployments = yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]
    (deployment,) = [d for d in deployments if d["name"] == "run-sequence-yaml"]
    assert deployment["entrypoint"] == "flows.run.run_sequence_yaml"
    assert load_spec_text(deployment["parameters"]["spec_yaml"]) == load_spec(ROOT / "examples" / "resonance.yaml")
