"""`etl validate` finds before a run what used to fail only in one (issue 13, item 8).

Without data: a lookup of a dataset that no pipeline or dbt model publishes (which `etl plan`
silently left out). With `--data`: a rule on a column the data does not have, read from a sample.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from etl_platform.cli.main import cli
from tests.conftest import write_csv

PEOPLE = {
    "id": "people",
    "source": {"type": "csv", "path": "people.csv"},
    "destination": {"dataset": "raw.people", "write": "replace"},
}


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A pipelines folder (the test writes its files), a landing folder with people.csv, a DuckDB warehouse."""
    pipelines = tmp_path / "pipelines"
    pipelines.mkdir()
    write_csv(tmp_path / "data" / "landing", "people.csv", "id,email\n1,a@b.org\n2,c@d.org\n")
    monkeypatch.setenv("ETL_PIPELINES_DIR", str(pipelines))
    monkeypatch.setenv("ETL_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ETL_DBT_PROJECT_DIR", str(tmp_path / "dbt"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    return pipelines


def write(folder: Path, document: dict) -> None:
    (folder / f"{document['id']}.yaml").write_text(yaml.safe_dump(document, sort_keys=False))


def enriched(dataset: str) -> dict:
    lookup = {"lookup": {"dataset": dataset, "on": "id", "columns": ["segment"]}}
    return {**PEOPLE, "id": "enriched", "transforms": [lookup], "destination": {"dataset": "analytics.enriched"}}


def test_a_lookup_of_a_dataset_nobody_publishes_fails_validate_and_plan_says_so(folder: Path) -> None:
    write(folder, PEOPLE)
    write(folder, enriched("ref.segments"))
    result = CliRunner().invoke(cli, ["validate"])
    assert result.exit_code == 1
    assert "enriched.yaml: transforms[0].lookup.dataset: 'ref.segments' is published by no pipeline" in result.output
    plan = CliRunner().invoke(cli, ["plan"])
    assert plan.exit_code == 0 and "'ref.segments' is published by no pipeline" in plan.output
    assert "no edge of the plan" in plan.output

    write(folder, enriched("raw.people"))  # a pipeline's dataset
    assert CliRunner().invoke(cli, ["validate"]).exit_code == 0


def test_a_lookup_of_a_dbt_model_is_valid_when_the_manifest_has_it(folder: Path) -> None:
    write(folder, PEOPLE)
    write(folder, enriched("marts.segments"))
    dbt = folder.parent / "dbt"
    (dbt / "target" / "duckdb").mkdir(parents=True)
    (dbt / "dbt_project.yml").write_text("name: shop\n")
    warned = CliRunner().invoke(cli, ["validate"])  # no manifest yet: the models are unknown, so only a warning
    assert warned.exit_code == 0 and "unless a dbt model does" in warned.output
    model = {"resource_type": "model", "schema": "marts", "name": "segments", "alias": "segments"}
    (dbt / "target" / "duckdb" / "manifest.json").write_text(json.dumps({"nodes": {"model.shop.segments": model}}))
    assert CliRunner().invoke(cli, ["validate"]).exit_code == 0
    write(folder, enriched("marts.segment"))
    result = CliRunner().invoke(cli, ["validate"])
    assert result.exit_code == 1 and "'marts.segment' is published by no pipeline or dbt model" in result.output


def test_validate_data_catches_a_rule_on_a_column_the_data_lacks(folder: Path) -> None:
    write(folder, {**PEOPLE, "quality": {"rules": [{"field": "emial", "rule": "NotNull"}]}})
    assert CliRunner().invoke(cli, ["validate"]).exit_code == 0  # the spec itself is fine
    result = CliRunner().invoke(cli, ["validate", "--data"])
    assert result.exit_code == 1
    assert "rule(s) ['not_null_emial'] check column(s) ['emial'], which the data does not have" in result.output

    write(folder, {**PEOPLE, "quality": {"rules": [{"field": "email", "rule": "Email"}, {"field": "id", "rule": "Unique"}]}})
    result = CliRunner().invoke(cli, ["validate", "--data"])
    assert result.exit_code == 0, result.output
    assert "ok  people  (2 sample rows, 0 rejected by its transforms and rules)" in result.output


def test_validate_data_catches_a_date_format_that_fails_every_row(folder: Path) -> None:
    write_csv(folder.parent / "data" / "landing", "people.csv", "id,born\n1,2007-11-11\n2,1999-01-31\n")
    cast = {"cast": {"born": {"type": "date", "format": "%d/%m/%Y"}}}
    write(folder, {**PEOPLE, "transforms": [cast]})
    result = CliRunner().invoke(cli, ["validate", "--data"])
    assert result.exit_code == 1
    assert "on a sample of its input the circuit breaker would stop the load" in result.output
    assert "cannot cast '2007-11-11' in 'born' to date with format '%d/%m/%Y'" in result.output
