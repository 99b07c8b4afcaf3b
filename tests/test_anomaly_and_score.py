"""Anomaly tagging on data with injected outliers, and the per-row quality score."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from etl_platform.engine.runner import run_pipeline
from etl_platform.ml.anomaly import AnomalyDetector
from etl_platform.spec.ml import DetectAnomaliesSpec
from tests.conftest import environment_for, pipeline, rows, write_csv


def orders_with_outliers(count: int = 1000, seed: int = 3) -> tuple[pa.Table, set[int]]:
    rng = np.random.default_rng(seed)
    amount = rng.normal(50, 8, count)
    quantity = rng.integers(1, 6, count).astype(float)
    injected = set(rng.choice(count, 10, replace=False).tolist())
    for i in injected:
        amount[i] = rng.choice([900.0, -300.0, 2500.0])
    return pa.table({"id": np.arange(count), "amount": amount, "quantity": quantity}), injected


@pytest.mark.parametrize("methods", [["zscore"], ["iqr"], ["isolation_forest"], ["isolation_forest", "zscore", "iqr"]])
def test_injected_outliers_are_tagged_not_dropped(methods: list[str]) -> None:
    table, injected = orders_with_outliers()
    spec = DetectAnomaliesSpec(columns=["amount", "quantity"], methods=methods, contamination=0.01)
    tagged, count = AnomalyDetector(spec, "test").apply(table)
    assert len(tagged) == len(table)  # tagged, never dropped
    flagged = {i for i, f in enumerate(tagged["anomaly"].to_pylist()) if f}
    recall = len(flagged & injected) / len(injected)
    precision = len(flagged & injected) / len(flagged)
    assert recall == 1.0 and precision >= 0.5, (methods, precision, recall)
    assert count == len(flagged)
    reason = tagged["anomaly_reason"][sorted(injected)[0]].as_py()
    assert reason and ("amount=" in reason or "isolation forest" in reason)
    scores = tagged["anomaly_score"].to_numpy()
    assert scores[sorted(injected)].min() > 1.0 >= scores[[i for i in range(len(table)) if i not in flagged]].max()


def test_the_anomaly_rate_is_a_check_with_a_bound(duckdb_url: str, landing: Path) -> None:
    table, _ = orders_with_outliers(200)
    lines = "\n".join(f"{i},{a:.2f},{q:.0f}" for i, a, q in zip(*(table[c].to_pylist() for c in table.column_names), strict=True))
    write_csv(landing, "orders.csv", "id,amount,quantity\n" + lines + "\n")
    steps = [{"cast": {"id": "int", "amount": "float", "quantity": "float"}}]
    strict = {"detect_anomalies": {"columns": ["amount"], "methods": ["zscore"], "max_rate": 0.001}}
    report = run_pipeline(
        pipeline(source={"type": "csv", "path": "orders.csv"}, transforms=[*steps, strict]), environment_for(duckdb_url, landing)
    )
    (check,) = [c for c in report.checks if c.name == "anomaly_rate"]
    assert not check.passed and check.severity == "warn" and check.rows_failed >= 1
    assert report.rows_published == 200  # a warning: every row is published, tagged
    assert rows(duckdb_url, "SELECT count(*) AS n FROM analytics.target WHERE anomaly")[0]["n"] == check.rows_failed


def test_quality_score_from_completeness_and_rules(duckdb_url: str, landing: Path) -> None:
    write_csv(landing, "people.csv", "id,email,age\n1,a@x.org,30\n2,,40\n3,not-an-email,\n")
    spec = pipeline(
        source={"type": "csv", "path": "people.csv"},
        transforms=[{"cast": {"id": "int", "age": "int"}}],
        quality={"score_column": "quality_score", "rules": [{"field": "email", "rule": "Email", "severity": "warn"}]},
        destination={"dataset": "crm.people", "write": "replace"},
    )
    run_pipeline(spec, environment_for(duckdb_url, landing))
    scores = {r["id"]: r["quality_score"] for r in rows(duckdb_url, "SELECT id, quality_score FROM crm.people")}
    # id 1: complete, valid: 1. id 2: 2 of 3 columns, email null passes Email: (2/3 + 1) / 2.
    # id 3: 2 of 3 columns and the Email rule broken: (2/3 + 0) / 2.
    assert scores == {1: 1.0, 2: round((2 / 3 + 1) / 2, 4), 3: round((2 / 3) / 2, 4)}


def test_clean_data_is_mostly_left_alone() -> None:
    rng = np.random.default_rng(5)
    table = pa.table({"amount": rng.normal(50, 8, 1000), "constant": np.full(1000, 3.0)})
    _, tagged = AnomalyDetector(DetectAnomaliesSpec(columns=["amount", "constant"]), "test").apply(table)
    assert tagged <= 20  # the default contamination (1%) plus the few values beyond 3.5 robust z
