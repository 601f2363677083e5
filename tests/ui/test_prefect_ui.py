"""The lab's front end in a real browser: a run from the run-sequence form, its logs and summary, a cancel.

The browser does what a physicist does (log in, fill the custom-run form, open the run's Logs and
Artifacts tabs, press Cancel); the server's API says when a run has reached a state, so nothing waits
on a guessed duration. Screenshots of the form, the finished run and the cancelled run are taken on the way.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from deploy_lab import AUTH, Lab
from simlab import cancel_conclusion

# the lab's start-up (counted in the first test) and a run can each take minutes on a loaded shared machine
pytestmark = [pytest.mark.integration, pytest.mark.ui, pytest.mark.timeout(600)]

RUN_TIMEOUT = 240.0
"""Seconds a deployment run may take to reach the state waited for (generous: CI machines are shared)."""
DEPLOYMENT = "run-sequence/run-sequence"
FORM_CHANGE = ("Description (Optional)", ("spec", "description"))
"""The form field the test changes (its label in the form) and where its value lands in the run's parameters."""
OVERRIDE = {"devices.camera.exposure": "2 ms"}
"""The override the test types in the form's overrides editor."""


def api(lab: Lab, method: str, path: str, **kwargs: Any) -> Any:
    """One authenticated request to the lab's API; a 503 (SQLite busy, rolled back) is retried."""
    user, password = AUTH.split(":")
    for delay in (0.5, 1, 2, 4, 0):
        response = httpx.request(method, lab.api_url + path, auth=(user, password), timeout=10, **kwargs)
        if response.status_code != 503 or not delay:
            break
        time.sleep(delay)
    response.raise_for_status()
    return response.json()


def log_lines(lab: Lab, flow_run_id: str) -> list[tuple[str, int]]:
    """(message, level) of every line of the flow run's log (its Logs tab), in order."""
    body = {"logs": {"flow_run_id": {"any_": [flow_run_id]}}, "sort": "TIMESTAMP_ASC"}
    return [(entry["message"], entry["level"]) for entry in api(lab, "POST", "/logs/filter", json=body)]


def log_messages(lab: Lab, flow_run_id: str) -> list[str]:
    return [message for message, _ in log_lines(lab, flow_run_id)]


def wait_for(lab: Lab, flow_run_id: str, what: str, seen: Any) -> dict[str, Any]:
    """The flow run once ``seen(flow_run)`` holds (polled from the API); fails with the worker's log after a while."""
    deadline = time.monotonic() + RUN_TIMEOUT
    while time.monotonic() < deadline:
        flow_run = api(lab, "GET", f"/flow_runs/{flow_run_id}")
        if seen(flow_run):
            return flow_run
        time.sleep(0.5)
    worker = (lab.logs / "worker.log").read_text()[-4000:]
    raise AssertionError(f"flow run {flow_run_id}: {what} not seen after {RUN_TIMEOUT} s; worker log:\n{worker}")


def final(flow_run: dict[str, Any]) -> bool:
    return flow_run["state_type"] in {"COMPLETED", "FAILED", "CANCELLED", "CRASHED"}


def parameter(flow_run: dict[str, Any], where: tuple[str, ...]) -> Any:
    value = flow_run["parameters"]
    for key in where:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def wait_for_run_with(lab: Lab, deployment_id: str, where: tuple[str, ...], value: Any) -> str:
    """The id of the deployment's flow run whose parameter at ``where`` is ``value`` (the run the form created)."""
    body = {"deployments": {"id": {"any_": [deployment_id]}}}
    deadline = time.monotonic() + RUN_TIMEOUT
    while time.monotonic() < deadline:
        for flow_run in api(lab, "POST", "/flow_runs/filter", json=body):
            if parameter(flow_run, where) == value:
                return flow_run["id"]
        time.sleep(0.5)
    raise AssertionError(f"no flow run of the form's submission ({'.'.join(where)} = {value!r}) after {RUN_TIMEOUT} s")


def submit(page: Any) -> None:
    """Press the form's Submit as a physicist does: again when the server answered 503 (busy, rolled back)."""
    answers = []
    for _ in range(4):
        with page.expect_response(
            lambda r: r.request.method == "POST" and r.url.endswith("/create_flow_run")
        ) as response:
            page.get_by_role("button", name="Submit").click()
        answers.append(response.value.status)
        if response.value.status != 503:
            break
        close_toasts(page)
    assert answers[-1] == 201, f"the server answered the form's submission with {answers}"


def close_toasts(page: Any) -> None:
    """Dismiss the UI's notifications (e.g. the requests refused before logging in) so they hide nothing."""
    from playwright.sync_api import Error as PlaywrightError

    for button in page.locator(".p-toast__close-btn").all():
        try:
            # the click event itself: the toast's countdown ring lies over its close button, and a
            # pointer click there waits forever for the ring to let go (seen in CI)
            button.dispatch_event("click", timeout=5_000)
        except PlaywrightError:  # the toast went away by itself meanwhile
            continue


def shoot(page: Any, folder: Path, name: str, anchor: Any) -> None:
    """A screenshot of the window with ``anchor`` scrolled into view."""
    close_toasts(page)
    anchor.scroll_into_view_if_needed()
    page.screenshot(path=str(folder / name))


def form_field(page: Any, label: str) -> Any:
    """The text box of the custom-run form's field labelled ``label`` (the innermost field of that name)."""
    return page.locator(
        "xpath=//div[contains(@class,'schema-form-property')]"
        "[./div[contains(@class,'p-label__header')]//span[contains(@class,'schema-form-property__label')"
        f" and normalize-space()='{label}']]//textarea"
    ).first


def tab(page: Any, name: str) -> Any:
    return page.locator("li.p-tab", has_text=name)


def test_a_run_from_the_form_completes_and_shows_its_log_and_summary(ui_lab: Lab, page: Any, screenshots: Path) -> None:
    deployment = api(ui_lab, "GET", f"/deployments/name/{DEPLOYMENT}")
    page.goto(f"{ui_lab.ui_url}/deployments/deployment/{deployment['id']}/run")  # Run → Custom run
    label, where = FORM_CHANGE
    typed = f"typed in the browser {uuid.uuid4().hex[:8]}"
    field = form_field(page, label)
    field.fill(typed)
    overrides = form_field(page, "overrides (Optional)")  # the quick path: one setting changed, no JSON of the spec
    overrides.fill(json.dumps(OVERRIDE))
    shoot(page, screenshots, "form.png", overrides)
    submit(page)
    flow_run_id = wait_for_run_with(ui_lab, deployment["id"], where, typed)
    assert api(ui_lab, "GET", f"/flow_runs/{flow_run_id}")["parameters"]["overrides"] == OVERRIDE

    page.goto(f"{ui_lab.ui_url}/runs/flow-run/{flow_run_id}")
    flow_run = wait_for(ui_lab, flow_run_id, "a final state", final)
    assert flow_run["state_type"] == "COMPLETED", flow_run["state"]
    spec = deployment["parameters"]["spec"]
    shots = spec["iteration"][1]["linspace"]["num"]  # the default spec: examples/resonance.yaml

    assert "overrides: devices.camera.exposure = 2 ms" in log_messages(ui_lab, flow_run_id)

    page.reload()
    finished = page.get_by_text(f"sequence {spec['name']} finished: {shots}/{shots} shots")
    finished.wait_for()  # the Logs tab is the run page's first tab
    assert page.locator(".state-badge", has_text="Completed").first.is_visible()
    shoot(page, screenshots, "finished-run-logs.png", finished)

    tab(page, "Artifacts").click()
    page.get_by_text("sequence-summary").first.click()
    heading = page.get_by_role("heading", name="Sequence finished")
    heading.wait_for()
    assert page.get_by_text(f"{shots} / {shots}").first.is_visible()
    assert page.get_by_text("shotflow show").first.is_visible()
    shoot(page, screenshots, "finished-run-summary.png", heading)


def test_cancel_in_the_ui_interrupts_the_run_and_its_log_says_so(ui_lab: Lab, page: Any, screenshots: Path) -> None:
    deployment = api(ui_lab, "GET", f"/deployments/name/{DEPLOYMENT}")
    spec = deployment["parameters"]["spec"]
    spec["name"] = "ui-cancel-me"
    spec["iteration"][1]["linspace"]["num"] = 400  # about a minute of shots: far longer than the cancel takes
    spec["timeline"]["steps"][0]["duration"] = "100 ms"
    created = api(
        ui_lab, "POST", f"/deployments/{deployment['id']}/create_flow_run", json={"parameters": {"spec": spec}}
    )
    flow_run_id = created["id"]
    wait_for(
        ui_lab,
        flow_run_id,
        "the sequence running",
        lambda _: any("ui-cancel-me: initializing -> running" in m for m in log_messages(ui_lab, flow_run_id)),
    )

    page.goto(f"{ui_lab.ui_url}/runs/flow-run/{flow_run_id}")
    page.get_by_role("button", name="Cancel").click()
    page.get_by_role("button", name="Confirm").click()

    flow_run = wait_for(ui_lab, flow_run_id, "a final state", final)
    assert flow_run["state_type"] == "CANCELLED", flow_run["state"]
    # the flow's last line is its own end: once it is in, the process shipped its whole log
    wait_for(
        ui_lab,
        flow_run_id,
        "the flow's last log line",
        lambda _: any(m.startswith("Finished in state Cancelled") for m in log_messages(ui_lab, flow_run_id)),
    )
    conclusion = cancel_conclusion(log_lines(ui_lab, flow_run_id))
    assert conclusion.startswith("sequence ui-cancel-me interrupted by a cancel from the Prefect UI or API"), conclusion
    kept_in = conclusion.split(" shots kept in ", 1)[1].split(";", 1)[0]
    assert " at shot " in conclusion and (ui_lab.results / kept_in).is_dir(), conclusion  # relative to the root
    # the worker's own Cancelled state may replace the run's message (README, Deploy): the run's is in the history
    history = api(ui_lab, "GET", "/flow_run_states/", params={"flow_run_id": flow_run_id})
    assert conclusion in [state["message"] for state in history if state["type"] == "CANCELLED"], history
    artifacts = api(ui_lab, "POST", "/artifacts/filter", json={"artifacts": {"flow_run_id": {"any_": [flow_run_id]}}})
    summaries = [a["data"] for a in artifacts if a["key"] == "sequence-summary"]
    assert summaries and conclusion in summaries[0], artifacts

    page.reload()
    interrupted = page.get_by_text("sequence ui-cancel-me interrupted by a cancel").first
    interrupted.wait_for()
    assert page.get_by_text("interrupt requested").first.is_visible()
    assert page.locator(".state-badge", has_text="Cancelled").first.is_visible()
    shoot(page, screenshots, "cancelled-run.png", interrupted)
