"""Every pipeline has a circuit breaker: a load that quarantines most (or all) of its rows fails.

Issue 13, item 4: a wrong date format quarantined every row and the run reported success with 0
rows published. The default breaker trips above 50% quarantined from 100 rows read, and whenever
rows were quarantined and none is left to publish; a pipeline overrides it in `quality`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from etl_platform.engine.runner import run_pipeline
from etl_platform.quality.audit import QualityGateFailed
from tests.conftest import environment_for, pipeline, rows, write_csv

DAY_FIRST = {"cast": {"day": {"type": "date", "format": "%d/%m/%Y"}}}


def load(url: str, landing: Path, days: list[str], **quality):
    write_csv(landing, "input.csv", "id,day\n" + "".join(f"{i},{day}\n" for i, day in enumerate(days)))
    spec = pipeline(transforms=[DAY_FIRST], quality=quality, destination={"dataset": "analytics.days", "write": "replace"})
    return run_pipeline(spec, environment_for(url, landing))


def test_a_wrong_date_format_fails_the_run_and_names_the_format(duckdb_url: str, landing: Path) -> None:
    with pytest.raises(QualityGateFailed) as stopped:
        load(duckdb_url, landing, ["2007-11-11"] * 150)
    message = str(stopped.value)
    assert "circuit_breaker" in message and "100.00% of 150 rows failed (threshold 50" in message
    assert "cannot cast '2007-11-11' in 'day' to date with format '%d/%m/%Y'" in message
    assert stopped.value.report.rows_published == 0
    assert rows(duckdb_url, "SELECT count(*) AS n FROM _etl.quarantine")[0]["n"] == 150  # kept for the fix and a replay


def test_a_few_rows_that_all_fail_trip_the_breaker_below_min_record_count(duckdb_url: str, landing: Path) -> None:
    with pytest.raises(QualityGateFailed, match="every one of the 3 rows read failed or was filtered"):
        load(duckdb_url, landing, ["2007-11-11"] * 3)


@pytest.mark.parametrize(("bad", "trips"), [(101, True), (99, False)])
def test_the_default_threshold_is_half_of_the_rows(duckdb_url: str, landing: Path, bad: int, trips: bool) -> None:
    days = ["2007-11-11"] * bad + ["11/11/2007"] * (200 - bad)
    if trips:
        with pytest.raises(QualityGateFailed, match=r"50\.50% of 200 rows failed"):
            load(duckdb_url, landing, days)
    else:
        assert load(duckdb_url, landing, days).rows_published == 101


def test_a_pipeline_overrides_the_default(duckdb_url: str, landing: Path) -> None:
    report = load(
        duckdb_url, landing, ["2007-11-11"] * 150, circuit_breaker={"error_threshold": 100, "fail_when_all_rows_fail": False}
    )
    breaker = next(c for c in report.checks if c.name == "circuit_breaker")
    assert breaker.passed and (report.rows_published, report.rows_quarantined) == (0, 150)
    with pytest.raises(QualityGateFailed, match=r"5\.00% of 20 rows failed \(threshold 1\.0%\)"):
        load(duckdb_url, landing, ["2007-11-11"] + ["11/11/2007"] * 19, circuit_breaker={"error_threshold": 1.0})


def test_only_malformed_lines_is_no_empty_input(duckdb_url: str, landing: Path) -> None:
    write_csv(landing, "input.csv", "id,day\n" + "".join(f"{i},11/11/2007,extra,fields\n" for i in range(5)))
    spec = pipeline(transforms=[DAY_FIRST], destination={"dataset": "analytics.days", "write": "replace"})
    with pytest.raises(QualityGateFailed, match="malformed_line 5"):
        run_pipeline(spec, environment_for(duckdb_url, landing))
