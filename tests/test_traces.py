"""Traces: a real pipeline run as Dagster materializes it, its spans collected in memory."""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterEventType, DagsterInstance, build_run_status_sensor_context, materialize
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from etl_platform.definitions import build_definitions
from etl_platform.settings import Settings
from etl_platform.tracing import run_span_id, run_trace_id, tracer_provider

PRODUCTS = AssetKey(["analytics", "products"])
BIN = Path(sys.executable).parent


@pytest.fixture(params=["duckdb", "postgresql", "sqlite", "mariadb"])
def traced_run(request: pytest.FixtureRequest, project: dict, monkeypatch: pytest.MonkeyPatch):
    """The products pipeline materialized on each warehouse; its run id and finished spans."""
    if request.param != "duckdb":  # the project's own warehouse
        monkeypatch.setenv("ETL_WAREHOUSE_URL", request.getfixturevalue(f"{request.param}_url"))
    exporter = InMemorySpanExporter()
    provider = tracer_provider(exporter)
    defs = build_definitions(Settings.from_env(), with_dbt=False, tracer=provider.get_tracer("test"))
    result = materialize([defs.resolve_assets_def(PRODUCTS)], instance=DagsterInstance.ephemeral())
    assert result.success
    provider.force_flush()
    return result.run_id, exporter.get_finished_spans()


def test_a_run_is_one_trace_of_step_load_phases_and_statements(traced_run) -> None:
    run_id, spans = traced_run
    by_id = {s.context.span_id: s for s in spans}
    assert {s.context.trace_id for s in spans} == {run_trace_id(run_id)}  # the run id names the trace

    def children(parent, name: str) -> list:
        return [s for s in spans if s.parent is not None and s.parent.span_id == parent.context.span_id and s.name == name]

    (step,) = [s for s in spans if s.name == "step"]
    assert step.parent.span_id == run_span_id(run_id)  # the run's span: known by its derived id in every process
    assert step.attributes["etl.pipeline"] == "products" and step.attributes["etl.run_id"] == run_id
    (load,) = children(step, "load")
    assert load.attributes["etl.dataset"] == "analytics.products"
    assert load.attributes["rows.read"] == sum(s.attributes["rows"] for s in children(load, "read")) > 0
    for phase in ("read", "transform", "rules", "write", "publish"):
        assert children(load, phase), phase
    (publish,) = children(load, "publish")
    (audit,) = children(publish, "audit")
    assert children(audit, "statement") and children(publish, "statement")
    (write,) = children(load, "write")
    copies = children(write, "copy")
    assert sum(c.attributes["rows"] for c in copies) == load.attributes["rows.published"]
    assert all(c.attributes["bytes"] > 0 and "_etl_staging" in c.attributes["db.query.text"] for c in copies)
    # Every span hangs from the step: nothing started a trace of its own.
    for span in spans:
        top = span
        while top.parent is not None and top.parent.span_id in by_id:
            top = by_id[top.parent.span_id]
        assert top is step, span.name


def test_the_daemon_records_the_run_span_the_steps_name_as_their_parent(project: dict) -> None:
    exporter = InMemorySpanExporter()
    provider = tracer_provider(exporter)
    defs = build_definitions(Settings.from_env(), with_dbt=False, tracer=provider.get_tracer("test"))
    instance = DagsterInstance.ephemeral()
    result = materialize([defs.resolve_assets_def(PRODUCTS)], instance=instance)
    sensor = defs.get_sensor_def("run_spans_success")
    (entry,) = instance.all_logs(result.run_id, of_type=DagsterEventType.RUN_SUCCESS)
    context = build_run_status_sensor_context(
        "run_spans_success", entry.dagster_event, instance, result.dagster_run, resources={"tracer": provider.get_tracer("test")}
    )
    sensor(context)
    provider.force_flush()
    spans = exporter.get_finished_spans()
    (run,) = [s for s in spans if s.name == "run"]
    (step,) = [s for s in spans if s.name == "step"]
    assert run.parent is None and run.context.trace_id == run_trace_id(result.run_id)
    assert step.parent.span_id == run.context.span_id  # the trace has its root now
    assert run.start_time <= step.start_time and step.end_time <= run.end_time
    assert run.attributes["etl.job"] == result.dagster_run.job_name


class _OtlpReceiver(http.server.BaseHTTPRequestHandler):
    """An OTLP/HTTP collector on 127.0.0.1: keeps each exported batch's spans."""

    spans: list = []

    def do_POST(self) -> None:
        request = ExportTraceServiceRequest.FromString(self.rfile.read(int(self.headers["Content-Length"])))
        for resource in request.resource_spans:
            for scope in resource.scope_spans:
                type(self).spans.extend(scope.spans)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def test_etl_run_records_its_run_span_and_the_daemon_leaves_it_alone(project: dict) -> None:
    """No daemon: `etl run` sees its run end and records the root; the sensor skips CLI runs, so a
    daemon running beside it would not record a second root."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _OtlpReceiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        env = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{server.server_port}"}
        done = subprocess.run([str(BIN / "etl"), "run", "products"], env=env, capture_output=True, text=True, timeout=180)
    finally:
        server.shutdown()
        server.server_close()
    assert done.returncode == 0, done.stdout + done.stderr
    instance = DagsterInstance.from_config(project["DAGSTER_HOME"])
    (run_record,) = instance.get_run_records()
    run_id = run_record.dagster_run.run_id
    (run,) = [s for s in _OtlpReceiver.spans if s.name == "run"]
    (step,) = [s for s in _OtlpReceiver.spans if s.name == "step"]
    assert int.from_bytes(run.trace_id, "big") == run_trace_id(run_id)
    assert int.from_bytes(run.span_id, "big") == run_span_id(run_id) and not run.parent_span_id
    assert step.parent_span_id == run.span_id and step.trace_id == run.trace_id

    exporter = InMemorySpanExporter()
    provider = tracer_provider(exporter)
    defs = build_definitions(Settings.from_env(), with_dbt=False, tracer=provider.get_tracer("test"))
    (entry,) = instance.all_logs(run_id, of_type=DagsterEventType.RUN_SUCCESS)
    context = build_run_status_sensor_context(
        "run_spans_success",
        entry.dagster_event,
        instance,
        run_record.dagster_run,
        resources={"tracer": provider.get_tracer("test")},
    )
    defs.get_sensor_def("run_spans_success")(context)
    provider.force_flush()
    assert exporter.get_finished_spans() == ()
