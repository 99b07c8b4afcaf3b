"""The Prometheus collector: every scrape reads the warehouse's `_etl` tables and the Dagster instance afresh.

No Pushgateway: a pushed metric is lost when a run crashes before pushing, while these tables and
the instance record every load and every run whatever became of its process (docs/operations.md
lists each metric). Labels are low-cardinality: a pipeline, a dataset, a job, a check.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from pathlib import Path

from dagster import DagsterRunStatus, RunsFilter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from etl_platform.instance.home import open_instance
from etl_platform.spec.partitions import pipeline_of
from etl_platform.warehouse import open_warehouse
from etl_platform.warehouse.metadata import META_SCHEMA

# Load duration buckets (seconds): sub-second no-op loads to hour-long backfills.
DURATION_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)


class PlatformCollector(Collector):
    """Collects `etl_*` metrics from the warehouse at `warehouse_url` and the instance at `dagster_home`."""

    def __init__(self, warehouse_url: str, dagster_home: str, secrets: Mapping[str, str]):
        self.warehouse_url, self.dagster_home, self.secrets = warehouse_url, dagster_home, secrets

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("etl_warehouse_up", "1 if the warehouse answered this scrape's queries, else 0")
        try:
            yield from self._warehouse_metrics()
            up.add_metric([], 1)
        except Exception:  # an unreachable warehouse is a value of its own, not a failed scrape
            up.add_metric([], 0)
        yield up
        yield from self._instance_metrics()

    def _warehouse_metrics(self) -> list[Metric]:
        warehouse = open_warehouse(self.warehouse_url, secrets=self.secrets)
        try:
            history = warehouse.relation(META_SCHEMA, "load_history")
            quarantine = warehouse.relation(META_SCHEMA, "quarantine")
            loads = warehouse.query(
                f"SELECT pipeline, dataset, rows_read, rows, duration_seconds, loaded_at FROM {history}"
                if warehouse.columns(META_SCHEMA, "load_history") is not None
                else "SELECT 1 WHERE 1 = 0"
            )
            held = (
                warehouse.query(f"SELECT pipeline, count(*) FROM {quarantine} GROUP BY pipeline")
                if warehouse.columns(META_SCHEMA, "quarantine") is not None
                else []
            )
        finally:
            warehouse.close()
        return [*_load_metrics(loads), _quarantine_metric(held)]

    def _instance_metrics(self) -> list[Metric]:
        instance = open_instance(Path(self.dagster_home))
        failed = CounterMetricFamily("etl_runs_failed", "Runs that ended in failure, per job", labels=["job"])
        counts: dict[str, int] = {}
        for run in instance.get_runs(filters=RunsFilter(statuses=[DagsterRunStatus.FAILURE])):
            counts[run.job_name] = counts.get(run.job_name, 0) + 1
        for job, count in sorted(counts.items()):
            failed.add_metric([job], count)
        return [failed]


def _load_metrics(loads: list[tuple]) -> list[Metric]:
    read = CounterMetricFamily("etl_rows_read", "Rows read by published loads", labels=["pipeline"])
    published = CounterMetricFamily("etl_rows_published", "Rows published by loads", labels=["pipeline"])
    duration = HistogramMetricFamily("etl_load_duration_seconds", "Duration of published loads", labels=["pipeline"])
    age = GaugeMetricFamily("etl_dataset_freshness_age_seconds", "Seconds since the dataset's last publish", labels=["dataset"])
    by_pipeline: dict[str, list[tuple]] = {}
    newest: dict[str, float] = {}
    for key, dataset, rows_read, rows, seconds, loaded_at in loads:  # a partition's loads count for its pipeline
        by_pipeline.setdefault(pipeline_of(key), []).append((rows_read or 0, rows or 0, seconds or 0.0))
        stamp = _epoch(loaded_at)
        newest[dataset] = max(newest.get(dataset, stamp), stamp)
    for pipeline, rows in sorted(by_pipeline.items()):
        read.add_metric([pipeline], sum(r[0] for r in rows))
        published.add_metric([pipeline], sum(r[1] for r in rows))
        buckets = [(str(bound), sum(1 for r in rows if r[2] <= bound)) for bound in DURATION_BUCKETS]
        duration.add_metric([pipeline], [*buckets, ("+Inf", len(rows))], sum(r[2] for r in rows))
    now = time.time()
    for dataset, stamp in sorted(newest.items()):
        age.add_metric([dataset], max(0.0, now - stamp))
    return [read, published, duration, age]


def _quarantine_metric(held: list[tuple]) -> Metric:
    gauge = GaugeMetricFamily("etl_quarantine_rows", "Rows held in quarantine now, per pipeline", labels=["pipeline"])
    counts: dict[str, int] = {}
    for key, count in held:
        counts[pipeline_of(key)] = counts.get(pipeline_of(key), 0) + count
    for pipeline, count in sorted(counts.items()):
        gauge.add_metric([pipeline], count)
    return gauge


def _epoch(value) -> float:
    """A TIMESTAMPTZ as the warehouse returns it (datetime; SQLite: ISO text) in seconds since the epoch."""
    import datetime

    if isinstance(value, str):
        value = datetime.datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.UTC)
    return value.timestamp()
