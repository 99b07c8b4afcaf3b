"""Webhook and schedule triggers, through the real Dagster webserver and Dagster's evaluation APIs."""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
import time
import zoneinfo
from pathlib import Path

import requests
from croniter import croniter
from dagster import AssetKey, DagsterInstance, build_schedule_context, evaluate_automation_conditions

from etl_platform.definitions import build_definitions
from etl_platform.settings import Settings
from tests.conftest import REPO, free_port


def test_a_webhook_post_to_the_webserver_runs_the_dependent_pipeline(project: dict) -> None:
    defs = build_definitions(Settings.from_env())
    instance = DagsterInstance.from_config(project["DAGSTER_HOME"])
    customers = AssetKey(["analytics", "customers"])
    baseline = evaluate_automation_conditions(defs, instance)
    assert baseline.get_num_requested(customers) == 0

    port = free_port()
    webserver = subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port), "-w", "workspace.yaml"],
        cwd=REPO,
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}/report_asset_materialization/crm/export"
        deadline = time.monotonic() + 90
        while True:
            try:
                answer = requests.post(url, json={"metadata": {"export_rows": 412}}, timeout=5)
                break
            except requests.ConnectionError:
                assert webserver.poll() is None and time.monotonic() < deadline, "the webserver did not start"
                time.sleep(0.5)
        assert answer.status_code == 200, answer.text
    finally:
        webserver.terminate()
        webserver.wait(20)
    event = instance.get_latest_materialization_event(AssetKey(["crm", "export"]))
    assert event.asset_materialization.metadata["export_rows"].value == 412
    after = evaluate_automation_conditions(defs, instance, cursor=baseline.cursor)
    assert after.get_num_requested(customers) == 1


def test_the_products_schedule_requests_its_job_when_evaluated(project: dict) -> None:
    defs = build_definitions(Settings.from_env())
    schedule = defs.resolve_schedule_def("products_schedule")
    at = datetime.datetime(2026, 11, 23, 5, 0, tzinfo=zoneinfo.ZoneInfo("Europe/Berlin"))
    with build_schedule_context(scheduled_execution_time=at) as context:
        (request,) = schedule.evaluate_tick(context).run_requests
    assert request.job_name in (None, "products_job")
    upcoming = croniter(schedule.cron_schedule, at).get_next(datetime.datetime)
    assert upcoming == at + datetime.timedelta(days=1)  # 05:00 Berlin, every day
