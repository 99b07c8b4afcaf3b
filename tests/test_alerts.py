"""Alerts against a real local HTTP receiver: signing, idempotency, retries, and one alert per failure
of a real failing pipeline run in a real Dagster instance."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
from pathlib import Path

import pytest
import yaml
from dagster import AssetCheckKey, DagsterInstance, Definitions, build_sensor_context, instance_for_test
from pytest_httpserver import HTTPServer

from assets import dataset_key
from assets.freshness import FRESHNESS_CHECK
from etl_platform.alerts import Alert, AlertDeliveryError, deliver
from etl_platform.alerts.delivery import IDEMPOTENCY_HEADER, SIGNATURE_HEADER
from etl_platform.definitions import ALL_PIPELINES_JOB, build_definitions, job_name
from etl_platform.errors import SpecError
from etl_platform.instance.catalog import CheckState, build_catalog
from etl_platform.settings import Settings
from etl_platform.spec import PipelineRegistry
from etl_platform.spec.alerts import AlertReceiver
from sensors.alerts import CHECK_FAILURE_SENSOR, RUN_FAILURE_SENSOR
from tests.conftest import write_csv

KEY = "s3cr3t-signing-key"
ALERT = Alert("run_failure", "orders", "run-1", "run-1", "pipeline orders: run failed", "boom")


def test_webhook_is_signed_carries_the_idempotency_key_and_is_retried_after_a_5xx(httpserver: HTTPServer) -> None:
    httpserver.expect_ordered_request("/hook", method="POST").respond_with_data("busy", status=503)
    httpserver.expect_ordered_request("/hook", method="POST").respond_with_data("ok", status=200)
    receiver = AlertReceiver(url="env:ALERT_URL", signing_secret="env:ALERT_KEY")
    deliver(ALERT, receiver, {"ALERT_URL": httpserver.url_for("/hook"), "ALERT_KEY": KEY}, base_seconds=0.01)
    requests = [request for request, _ in httpserver.log]
    assert len(requests) == 2
    for request in requests:
        expected = "sha256=" + hmac.new(KEY.encode(), request.get_data(), hashlib.sha256).hexdigest()
        assert request.headers[SIGNATURE_HEADER] == expected
        assert request.headers[IDEMPOTENCY_HEADER] == ALERT.idempotency_key
    body = json.loads(requests[1].get_data())
    assert body["pipeline"] == "orders" and body["event"] == "run_failure" and body["detail"] == "boom"


def test_4xx_fails_at_once_and_slack_gets_a_text_message(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/slack/T000/SECRETTOKEN", method="POST").respond_with_data("no_service", status=404)
    receiver = AlertReceiver(url=httpserver.url_for("/slack/T000/SECRETTOKEN"), format="slack")
    with pytest.raises(AlertDeliveryError) as caught:
        deliver(ALERT, receiver, {}, base_seconds=0.01)
    assert not caught.value.transient and "404" in str(caught.value) and "SECRETTOKEN" not in str(caught.value)
    assert len(httpserver.log) == 1
    assert json.loads(httpserver.log[0][0].get_data()) == {"text": ALERT.as_text()}


def test_an_unreachable_receiver_is_a_transient_failure_after_every_attempt() -> None:
    receiver = AlertReceiver(url="http://127.0.0.1:9/hook")
    with pytest.raises(AlertDeliveryError) as caught:
        deliver(ALERT, receiver, {}, attempts=2, base_seconds=0.01)
    assert caught.value.transient and "unreachable" in str(caught.value)


@pytest.mark.parametrize(
    ("alerts", "message"),
    [
        ("{receivers: [{url: 'http://x/h', sign: env:K}]}", "orders.yaml:4: alerts.receivers[0].sign: unknown key 'sign'"),
        ("{receivers: [{url: 'http://x/h', signing_secret: plain}]}", "never the key itself"),
        ("{on: [run_failure], receivers: []}", "receivers"),
    ],
)
def test_alerts_section_is_validated_with_file_and_line(tmp_path: Path, alerts: str, message: str) -> None:
    (tmp_path / "orders.yaml").write_text(
        f"id: orders\nsource: {{type: csv, path: 'in/*.csv'}}\ndestination: {{dataset: raw.orders}}\nalerts: {alerts}\n"
    )
    with pytest.raises(SpecError) as caught:
        PipelineRegistry.from_folder(tmp_path)
    assert message in str(caught.value)


@pytest.fixture
def instance() -> DagsterInstance:
    with instance_for_test() as instance:
        yield instance


def tick(defs, instance: DagsterInstance, name: str, cursor: str | None) -> str | None:
    with build_sensor_context(instance=instance, cursor=cursor, sensor_name=name, resources=defs.resources) as context:
        return defs.get_sensor_def(name)(context).cursor


def project(tmp_path: Path, duckdb_url: str, landing: Path, receiver: str, **spec) -> Definitions:
    """A project of one CSV pipeline `orders` alerting `receiver`, signed with KEY."""
    write_csv(landing, "orders/a.csv", "id,amount\n1,5\n")
    pipelines = tmp_path / "pipelines"
    pipelines.mkdir()
    document = {
        "id": "orders",
        "source": {"type": "csv", "path": "orders/*.csv"},
        "destination": {"dataset": "raw.orders"},
        "alerts": {"receivers": [{"url": "env:ALERT_URL", "signing_secret": "env:ALERT_KEY"}]},
        **spec,
    }
    (pipelines / "orders.yaml").write_text(yaml.safe_dump(document))
    environ = {
        **os.environ,
        "ETL_PIPELINES_DIR": str(pipelines),
        "ETL_WAREHOUSE_URL": duckdb_url,
        "ETL_LANDING_DIR": str(landing),
        "ETL_LAKE_DIR": str(tmp_path / "lake"),
        "ALERT_URL": receiver,
        "ALERT_KEY": KEY,
    }
    return build_definitions(Settings.from_env(environ), with_dbt=False)


def test_a_failing_blocking_check_sends_one_run_alert_and_one_check_alert(
    tmp_path: Path, instance: DagsterInstance, duckdb_url: str, landing: Path, httpserver: HTTPServer
) -> None:
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    quality = {"rules": [{"rule": "RowCount", "min": 10}]}
    defs = project(tmp_path, duckdb_url, landing, httpserver.url_for("/hook"), quality=quality)
    result = defs.resolve_job_def(job_name("orders")).execute_in_process(instance=instance, raise_on_error=False)
    assert not result.success

    cursors = {name: tick(defs, instance, name, None) for name in (RUN_FAILURE_SENSOR, CHECK_FAILURE_SENSOR)}
    bodies = [json.loads(request.get_data()) for request, _ in httpserver.log]
    assert sorted(body["event"] for body in bodies) == ["check_failure", "run_failure"]
    check = next(body for body in bodies if body["event"] == "check_failure")
    assert check["check"].startswith("row_count") and check["run_id"] == result.run_id
    run = next(body for body in bodies if body["event"] == "run_failure")
    assert run["run_id"] == result.run_id and "row_count" in run["detail"].lower()

    # The next ticks find nothing new: one failure, one alert.
    for name, cursor in cursors.items():
        assert tick(defs, instance, name, cursor) == cursor
    assert len(httpserver.log) == 2


def test_a_missed_freshness_is_a_failed_check_in_the_catalog_and_one_alert(
    tmp_path: Path, instance: DagsterInstance, duckdb_url: str, landing: Path, httpserver: HTTPServer
) -> None:
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    defs = project(tmp_path, duckdb_url, landing, httpserver.url_for("/hook"), freshness={"max_age": "1s"})
    assert defs.resolve_job_def(job_name("orders")).execute_in_process(instance=instance).success
    check = AssetCheckKey(dataset_key("raw.orders"), FRESHNESS_CHECK)
    checks = defs.resolve_implicit_global_asset_job_def().get_subset(asset_selection=set(), asset_check_selection={check})
    time.sleep(1.5)
    checks.execute_in_process(instance=instance, raise_on_error=False)

    entry = next(e for e in build_catalog(defs, instance) if e.dataset == "raw.orders")
    assert CheckState(FRESHNESS_CHECK, "failed") in entry.checks
    cursor = tick(defs, instance, CHECK_FAILURE_SENSOR, None)
    assert tick(defs, instance, CHECK_FAILURE_SENSOR, cursor) == cursor
    bodies = [json.loads(request.get_data()) for request, _ in httpserver.log]
    assert [(body["event"], body["check"]) for body in bodies] == [("check_failure", FRESHNESS_CHECK)]


def test_a_pipeline_failing_in_a_run_of_every_pipeline_sends_its_run_alert(
    tmp_path: Path, instance: DagsterInstance, duckdb_url: str, landing: Path, httpserver: HTTPServer
) -> None:
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    defs = project(
        tmp_path, duckdb_url, landing, httpserver.url_for("/hook"), quality={"rules": [{"rule": "RowCount", "min": 10}]}
    )
    result = defs.resolve_job_def(ALL_PIPELINES_JOB).execute_in_process(instance=instance, raise_on_error=False)
    assert not result.success
    tick(defs, instance, RUN_FAILURE_SENSOR, None)
    (body,) = [json.loads(request.get_data()) for request, _ in httpserver.log]
    assert (body["event"], body["pipeline"], body["run_id"]) == ("run_failure", "orders", result.run_id)
    assert "row_count" in body["detail"].lower()
