"""Structured logs: ETL_LOG_FORMAT=json gives one JSON line per event with its correlation ids, also in
Dagster's event log, and never the warehouse password (real runs, one of them on a failing connection)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
from dagster import AssetKey, DagsterInstance, materialize
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from etl_platform.definitions import build_definitions
from etl_platform.errors import SpecError
from etl_platform.logs import PLATFORM_LOGGER, install_log_format
from etl_platform.settings import Settings
from etl_platform.tracing import run_trace_id, tracer_provider

PRODUCTS = AssetKey(["analytics", "products"])
PASSWORD = "Pa55-word-in-url"


@pytest.fixture
def json_logs(project: dict, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """ETL_LOG_FORMAT=json for one test; the platform logger's handlers and level restored after."""
    logger = logging.getLogger(PLATFORM_LOGGER)
    handlers, level, propagate = list(logger.handlers), logger.level, logger.propagate
    monkeypatch.setenv("ETL_LOG_FORMAT", "json")
    yield
    logger.handlers[:], logger.propagate = handlers, propagate
    logger.setLevel(level)


def _materialize(url: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("ETL_WAREHOUSE_URL", url)
    provider = tracer_provider(InMemorySpanExporter())
    defs = build_definitions(Settings.from_env(), with_dbt=False, tracer=provider.get_tracer("test"))
    instance = DagsterInstance.ephemeral()
    result = materialize([defs.resolve_assets_def(PRODUCTS)], instance=instance, raise_on_error=False)
    return result, [entry.user_message for entry in instance.all_logs(result.run_id)]


def _json_lines(err: str) -> list[dict]:
    return [json.loads(line) for line in err.splitlines() if line.startswith("{")]


def test_json_lines_carry_the_ids_and_reach_the_event_log_without_the_password(
    json_logs: None, postgresql_url: str, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture
) -> None:
    url = postgresql_url.replace("postgres@", f"postgres:{PASSWORD}@")  # trust authentication: any password connects
    result, events = _materialize(url, monkeypatch)
    assert result.success
    err = capfd.readouterr().err
    (summary,) = [line for line in _json_lines(err) if line["logger"] == "etl_platform.step"]
    assert summary["level"] == "info" and "read" in summary["message"] and "published" in summary["message"]
    step = {k: summary[k] for k in ("run_id", "step", "pipeline", "dataset")}
    assert step == {
        "run_id": result.run_id,
        "step": "analytics__products",
        "pipeline": "products",
        "dataset": "analytics.products",
    }
    assert summary["trace_id"] == format(run_trace_id(result.run_id), "032x")  # logs and traces join on it
    assert summary["message"] in events  # forwarded into Dagster's event log
    assert PASSWORD not in err and not any(PASSWORD in e for e in events)

    missing = url.rsplit("/", 1)[0] + "/etl_no_such_database"
    result, events = _materialize(missing, monkeypatch)
    assert not result.success
    err = capfd.readouterr().err
    (failure,) = [line for line in _json_lines(err) if line["level"] == "error" and line["logger"] == "etl_platform.step"]
    assert "cannot connect to the PostgreSQL warehouse" in failure["message"] and failure["run_id"] == result.run_id
    assert "etl_no_such_database" in failure["message"] and failure["message"] in events
    assert PASSWORD not in err and not any(PASSWORD in e for e in events)


def test_an_unknown_log_format_is_refused_with_the_choices() -> None:
    with pytest.raises(SpecError, match="ETL_LOG_FORMAT is 'xml'; set it to one of text, json"):
        install_log_format("xml")
