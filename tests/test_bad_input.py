"""Bad input gets a clear error naming file, line, field and fix, and nothing is half-published."""

from __future__ import annotations

from pathlib import Path

import pytest

from etl_platform.engine.runner import run_pipeline
from etl_platform.errors import DestinationError, SourceError, SpecError, TransformError, WarehouseUnavailable
from etl_platform.spec import PipelineRegistry
from tests.conftest import environment_for, pipeline, rows, write_csv

GOOD = "id,amount\n1,10\n2,20\n"
CASTS = [{"cast": {"id": "int", "amount": "float"}}]
REPLACE = {"dataset": "analytics.target", "write": "replace"}


def published(url: str) -> list[dict]:
    return rows(url, "SELECT * FROM analytics.target ORDER BY id")


def load_good_version(url: str, landing: Path) -> list[dict]:
    write_csv(landing, "input.csv", GOOD)
    run_pipeline(pipeline(transforms=CASTS, destination=REPLACE), environment_for(url, landing))
    return published(url)


def test_malformed_csv_line_fails_when_asked_and_publishes_nothing(warehouse_url: str, landing: Path) -> None:
    before = load_good_version(warehouse_url, landing)
    write_csv(landing, "input.csv", "id,amount\n3,30\n4,40,oops\n5,50\n")
    strict = pipeline(source={"type": "csv", "path": "input.csv", "on_bad_line": "fail"}, transforms=CASTS, destination=REPLACE)
    with pytest.raises(SourceError) as caught:
        run_pipeline(strict, environment_for(warehouse_url, landing))
    message = str(caught.value)
    assert "input.csv:3: malformed line: expected 2 fields, found 3: '4,40,oops'" in message
    assert "set `source.on_bad_line: quarantine`" in message
    assert published(warehouse_url) == before


def test_malformed_csv_line_is_quarantined_by_default(warehouse_url: str, landing: Path) -> None:
    write_csv(landing, "input.csv", "id,amount\n3,30\n4,40,oops\n5,50\n")
    report = run_pipeline(pipeline(transforms=CASTS, destination=REPLACE), environment_for(warehouse_url, landing))
    assert [r["id"] for r in published(warehouse_url)] == [3, 5]
    (row,) = rows(warehouse_url, "SELECT source_line, reason, value FROM _etl.quarantine")
    assert row == {"source_line": 3, "reason": "expected 2 fields, found 3", "value": "4,40,oops"}
    assert report.rows_read == 3


def test_wrong_type_in_a_column_is_quarantined_with_row_and_reason(warehouse_url: str, landing: Path) -> None:
    write_csv(landing, "input.csv", "id,amount\n1,10\n2,ten\n")
    run_pipeline(pipeline(transforms=CASTS, destination=REPLACE), environment_for(warehouse_url, landing))
    assert [r["id"] for r in published(warehouse_url)] == [1]
    (row,) = rows(warehouse_url, "SELECT column_name, value, reason, source_file, source_line, record FROM _etl.quarantine")
    assert row["column_name"] == "amount" and row["value"] == "ten" and row["source_line"] == 3
    assert row["reason"] == "cannot cast 'ten' in 'amount' to float"
    assert row["source_file"].endswith("input.csv")
    assert '"amount":"ten"' in row["record"]


def test_type_that_no_longer_fits_the_target_publishes_nothing(warehouse_url: str, landing: Path) -> None:
    append = {"dataset": "analytics.target", "write": "append", "on_changed_file": "append"}
    write_csv(landing, "input.csv", GOOD)
    run_pipeline(pipeline(transforms=CASTS, destination=append), environment_for(warehouse_url, landing))
    before = published(warehouse_url)
    write_csv(landing, "input.csv", "id,amount\n3,thirty\n")
    no_cast = pipeline(transforms=[{"cast": {"id": "int"}}], destination=append)
    with pytest.raises(DestinationError) as caught:
        run_pipeline(no_cast, environment_for(warehouse_url, landing))
    message = str(caught.value)
    assert "column 'amount' is" in message and "but the pipeline now produces" in message
    assert "Nothing was published" in message and "add a `cast`" in message
    assert published(warehouse_url) == before


def test_missing_required_column_names_it_and_the_available_ones(warehouse_url: str, landing: Path) -> None:
    before = load_good_version(warehouse_url, landing)
    write_csv(landing, "input.csv", "id,total\n1,10\n")
    with pytest.raises(TransformError) as caught:
        run_pipeline(pipeline(transforms=CASTS, destination=REPLACE), environment_for(warehouse_url, landing))
    assert "transforms[0] (cast): column(s) 'amount' not found; available: id, total" in str(caught.value)
    assert published(warehouse_url) == before


def test_invalid_yaml_and_unknown_dependency(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("id: a\nsource: {type: csv, path: x.csv\n")
    with pytest.raises(SpecError, match=r"a.yaml:3: invalid YAML"):
        PipelineRegistry.from_folder(tmp_path)
    (tmp_path / "a.yaml").write_text("id: a\nsource: {type: csv, path: x.csv}\ndestination: {dataset: s.a}\ndependencies: [b]\n")
    with pytest.raises(SpecError, match=r"a.yaml: dependencies: unknown pipeline 'b'; known pipelines: a"):
        PipelineRegistry.from_folder(tmp_path)


def test_database_down_and_wrong_credentials(landing: Path) -> None:
    write_csv(landing, "input.csv", GOOD)
    spec = pipeline(transforms=CASTS, destination=REPLACE)
    with pytest.raises(WarehouseUnavailable) as down:
        run_pipeline(spec, environment_for("postgresql://postgres@127.0.0.1:1/test", landing))
    assert "cannot connect to the PostgreSQL warehouse postgresql://postgres@127.0.0.1:1/test" in str(down.value)
    assert "nothing listens there: is the server running, and are the host and port in ETL_WAREHOUSE_URL" in str(down.value)
    with pytest.raises(WarehouseUnavailable) as refused:
        run_pipeline(spec, environment_for("postgresql://nobody:secret@127.0.0.1:5432/test", landing))
    assert "nobody" in str(refused.value) and "secret" not in str(refused.value)
