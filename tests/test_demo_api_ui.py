"""The UI path of the demo's REST pipeline: `etl ui` serves the demo API while the UI runs, so the UI can
materialize `reviews`, and stopping the UI stops the API with it (no process, no thread, no port left)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from dagster import AssetKey, DagsterInstance, DagsterRunStatus, materialize

from etl_platform.cli.demo_api import DEMO_KEY, KEY_HEADER, KEY_VARIABLE, PATH, URL_VARIABLE, serving
from etl_platform.definitions import build_definitions
from etl_platform.settings import Settings
from etl_platform.spec import PipelineRegistry
from tests.conftest import free_port, rows
from tests.processes import stop_group

REVIEWS = AssetKey(["analytics", "reviews"])
ETL = str(Path(sys.executable).parent / "etl")
LAUNCH = """
mutation($selector: JobOrPipelineSelector!) {
  launchRun(executionParams: {selector: $selector}) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
  }
}
"""


def _without_demo_api(monkeypatch: pytest.MonkeyPatch) -> None:
    """The project fixture's API is not wanted here: the command under test starts its own."""
    monkeypatch.delenv(URL_VARIABLE)
    monkeypatch.delenv(KEY_VARIABLE)


def test_the_rest_asset_materializes_with_the_api_served_as_etl_ui_serves_it(
    project: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    _without_demo_api(monkeypatch)
    resolved = Settings.from_env()
    with serving(resolved, PipelineRegistry.from_folder(resolved.pipelines_dir)) as (api, api_environment):
        assert api is not None and set(api_environment) == {URL_VARIABLE, KEY_VARIABLE}
        # What dagster dev's processes read: the environment `etl ui` gives them.
        defs = build_definitions(Settings.from_env(resolved.subprocess_environment(**api_environment)))
        result = materialize([defs.resolve_assets_def(REVIEWS)], instance=DagsterInstance.ephemeral())
        url = api.url
    assert result.success
    (event,) = result.get_asset_materialization_events()
    metadata = {k: v.value for k, v in event.step_materialization_data.materialization.metadata.items()}
    assert (metadata["rows_read"], metadata["rows_published"], metadata["rows_quarantined"]) == (340, 328, 12)
    # Stopped with the command: the port refuses and the server's thread is gone.
    with pytest.raises(requests.ConnectionError):
        requests.get(url + PATH, timeout=5)
    assert not [t for t in threading.enumerate() if t.name == f"demo-api {url}"]


def _wait(condition, seconds: float, what: str, process: subprocess.Popen):
    deadline = time.monotonic() + seconds
    while True:
        assert process.poll() is None, f"etl ui exited while waiting for {what}"
        try:
            found = condition()
        except requests.ConnectionError:
            found = None
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(1)


def _group(pgid: int) -> list[str]:
    """The live processes of a process group (zombies, which only wait for a parent to reap them, do not count)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, _parent, group = stat.read_text().rsplit(")", 1)[1].split()[:3]
            command = (stat.parent / "cmdline").read_text().replace("\0", " ")[:120]
        except OSError:
            continue
        if int(group) == pgid and state != "Z":
            members.append(f"{stat.parent.name} {command}")
    return members


def _wait_until_empty(pgid: int, seconds: float) -> list[str]:
    deadline = time.monotonic() + seconds
    while (left := _group(pgid)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return left


def _launched(graphql: str) -> str | None:
    selector = {"repositoryLocationName": "etl_platform", "repositoryName": "__repository__", "jobName": "reviews_job"}
    answer = requests.post(graphql, json={"query": LAUNCH, "variables": {"selector": selector}}, timeout=30).json()
    launched = (answer.get("data") or {}).get("launchRun") or {}
    return launched["run"]["runId"] if launched.get("__typename") == "LaunchRunSuccess" else None


def _finished(instance: DagsterInstance, run_id: str):
    run = instance.get_run_by_id(run_id)
    return run if run and run.is_finished else None


def test_etl_ui_serves_the_demo_api_while_it_runs_and_stops_it_on_exit(
    project: dict, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _without_demo_api(monkeypatch)
    port, log = free_port(), tmp_path / "ui.log"
    with log.open("w") as output:
        ui = subprocess.Popen(
            [ETL, "ui", "--port", str(port)], stdout=output, stderr=subprocess.STDOUT, env=os.environ, start_new_session=True
        )
    try:
        found = _wait(lambda: re.search(r"Demo API at (http://127\.0\.0\.1:\d+)", log.read_text()), 60, "the demo API", ui)
        api_url = found[1]
        assert requests.get(api_url + PATH, headers={KEY_HEADER: DEMO_KEY}, timeout=10).json()["meta"]["total"] == 340
        run_id = _wait(lambda: _launched(f"http://127.0.0.1:{port}/graphql"), 240, "the UI to launch reviews_job", ui)
        instance = DagsterInstance.from_config(project["DAGSTER_HOME"])
        run = _wait(lambda: _finished(instance, run_id), 240, "the run", ui)
        assert run.status == DagsterRunStatus.SUCCESS, log.read_text()[-3000:]
        ui.send_signal(signal.SIGTERM)  # to `etl ui` alone: it stops dagster dev, then the demo API
        ui.wait(90)
        with pytest.raises(requests.ConnectionError):
            requests.get(api_url + PATH, timeout=5)
        left = _wait_until_empty(ui.pid, 60)
        assert not left, f"still running in the UI's process group: {left}"
    finally:
        stop_group(ui)
    assert rows(project["ETL_WAREHOUSE_URL"], "SELECT count(*) AS n FROM analytics.reviews") == [{"n": 328}]


def test_etl_run_serves_the_demo_api_for_the_demo_pipeline_too(project: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """After `etl demo`, `etl run --all` (or `etl run reviews`) works as well: the command serves the API itself."""
    _without_demo_api(monkeypatch)
    done = subprocess.run([ETL, "run", "reviews"], env=os.environ, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert re.search(r"Demo API at http://127\.0\.0\.1:\d+ for the demo pipelines", done.stdout)
    assert rows(project["ETL_WAREHOUSE_URL"], "SELECT count(*) AS n FROM analytics.reviews") == [{"n": 328}]
