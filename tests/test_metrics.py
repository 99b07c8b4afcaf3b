"""`etl metrics serve` after real runs: a real exporter process scraped over HTTP, its values checked against the tables."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import free_port, rows
from tests.processes import stop_group
from tests.test_cli import ETL, etl
from tests.test_dashboard import dashboard_metric_names


def scrape(port: int, deadline: float) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} of one scrape, retried until the exporter listens."""
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as response:
                text = response.read().decode()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_exporter_serves_the_loads_and_failed_runs_of_the_instance(project: dict) -> None:
    assert etl("run", "customers").returncode == 0
    orders_file = Path(project["ETL_PIPELINES_DIR"]) / "orders.yaml"
    orders_file.write_text(orders_file.read_text().replace("on: product_id", "on: product_key"))
    assert etl("run", "orders").returncode == 1
    warehouse = project["ETL_WAREHOUSE_URL"]
    history = rows(warehouse, "SELECT rows_read, rows, duration_seconds FROM _etl.load_history WHERE pipeline = 'customers'")
    held = rows(warehouse, "SELECT count(*) AS n FROM _etl.quarantine WHERE pipeline = 'customers'")[0]["n"]

    port = free_port()
    exporter = subprocess.Popen(
        [ETL, "metrics", "serve", "--port", str(port)],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        samples = scrape(port, time.monotonic() + 120)
    finally:
        stop_group(exporter)
    customers = (("pipeline", "customers"),)
    assert samples[("etl_rows_read_total", customers)] == history[0]["rows_read"] == 420
    assert samples[("etl_rows_published_total", customers)] == history[0]["rows"] == 390
    assert samples[("etl_quarantine_rows", customers)] == held == 10
    assert samples[("etl_load_duration_seconds_count", customers)] == 1
    assert samples[("etl_load_duration_seconds_sum", customers)] == history[0]["duration_seconds"]
    assert samples[("etl_runs_failed_total", (("job", "orders_job"),))] == 1
    assert 0 <= samples[("etl_dataset_freshness_age_seconds", (("dataset", "analytics.customers"),))] < 600
    assert samples[("etl_warehouse_up", ())] == 1
    assert dashboard_metric_names() - {name for name, _ in samples} == set(), "the dashboard queries metrics never exported"


def test_a_partitioned_pipeline_is_one_series_not_one_per_partition() -> None:
    """Labels stay low-cardinality: an hourly pipeline's loads are one pipeline's, not 8,760 series a year."""
    import datetime

    from etl_platform.instance.metrics import _load_metrics, _quarantine_metric

    stamp = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    loads = [(f"events@2026-01-0{day}", "raw.events", 10, 9, 1.0, stamp) for day in (1, 2, 3)] + [
        ("orders", "a.o", 5, 5, 2.0, stamp)
    ]
    read = next(m for m in _load_metrics(loads) if m.name == "etl_rows_read")
    assert sorted((s.labels["pipeline"], s.value) for s in read.samples) == [("events", 30), ("orders", 5)]
    held = _quarantine_metric([("events@2026-01-01", 2), ("events@2026-01-02", 3)])
    assert [(s.labels["pipeline"], s.value) for s in held.samples] == [("events", 5)]


def _ignore_stop_signals() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def test_the_exporter_stops_on_sigterm_even_when_it_inherited_it_ignored(project: dict) -> None:
    """A pytest-xdist worker passes SIGTERM on as ignored: an exporter relying on the default outlived its test."""
    port = free_port()
    exporter = subprocess.Popen(
        [ETL, "metrics", "serve", "--port", str(port)],
        preexec_fn=_ignore_stop_signals,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        scrape(port, time.monotonic() + 120)
        os.killpg(exporter.pid, signal.SIGTERM)
        assert exporter.wait(timeout=15) == 0
    finally:
        stop_group(exporter)
