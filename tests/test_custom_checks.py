"""Custom row checks belong to a CustomChecks object the pipeline registry owns, not to a module global.

A Python file in the pipelines folder declares checks; the folder's YAML files may name them;
another folder, or another registry, does not see them.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from etl_platform.engine.runner import run_pipeline
from etl_platform.errors import SpecError
from etl_platform.spec import PipelineRegistry, spec_from_document
from etl_platform.spec.quality import CustomChecks
from tests.conftest import environment_for, rows, write_csv

CHECKS_MODULE = """
import polars as pl
from etl_platform.spec.quality import CustomChecks

checks = CustomChecks()

@checks.register("european")
def european(column: pl.Expr) -> pl.Expr:
    return column.is_in(["DE", "FR", "ES"])
"""

PEOPLE = """id: people
source: {type: csv, path: people.csv}
destination: {dataset: analytics.people, write: replace}
quality:
  rules:
    - {field: country, rule: european}
"""

DOCUMENT = {
    "id": "people",
    "source": {"type": "csv", "path": "people.csv"},
    "destination": {"dataset": "analytics.people", "write": "replace"},
    "quality": {"rules": [{"field": "country", "rule": "european"}]},
}


def _folder(root: Path, name: str, files: dict[str, str]) -> Path:
    folder = root / name
    folder.mkdir()
    for file_name, text in files.items():
        (folder / file_name).write_text(text)
    return folder


def test_two_registries_do_not_see_each_others_checks() -> None:
    first, second = CustomChecks(), CustomChecks()
    first.register("european")(lambda column: column.is_in(["DE", "FR"]))
    second.register("nordic")(lambda column: column.is_in(["SE", "NO"]))
    assert "european" in first and "european" not in second and "nordic" not in first
    assert spec_from_document(DOCUMENT, custom_checks=first).quality.rules[0].is_row_rule
    with pytest.raises(SpecError, match=r"quality.rules\[0\]: unknown rule 'european'.*custom: nordic"):
        spec_from_document(DOCUMENT, custom_checks=second)
    with pytest.raises(SpecError, match=r"unknown rule 'european'.*no custom checks registered"):
        spec_from_document(DOCUMENT)


def test_a_name_means_one_function_and_never_a_built_in_rule() -> None:
    checks = CustomChecks()

    @checks.register("european")
    def european(column: pl.Expr) -> pl.Expr:
        return column.is_in(["DE"])

    checks.register("european")(european)  # the same function again: harmless
    with pytest.raises(SpecError, match=r"custom check 'european' is registered twice, by .*european and .*<lambda>"):
        checks.register("european")(lambda column: column.is_in(["FR"]))
    with pytest.raises(SpecError, match=r"custom check 'Range' would hide the built-in rule"):
        checks.register("Range")(european)


def test_yaml_next_to_a_python_file_uses_its_check(duckdb_url: str, tmp_path: Path, landing: Path) -> None:
    folder = _folder(tmp_path, "pipelines", {"checks.py": CHECKS_MODULE, "people.yaml": PEOPLE})
    registry = PipelineRegistry.from_folder(folder)
    assert "european" in registry.custom_checks
    write_csv(landing, "people.csv", "id,country\n1,DE\n2,US\n3,FR\n")
    report = run_pipeline(registry.get("people"), environment_for(duckdb_url, landing))
    (check,) = [c for c in report.checks if c.name == "european_country"]
    assert not check.passed and check.rows_failed == 1 and check.samples[0]["value"] == "US"
    assert rows(duckdb_url, "SELECT id FROM analytics.people ORDER BY id") == [{"id": "1"}, {"id": "3"}]


def test_the_same_yaml_without_the_python_file_fails_with_file_and_line(tmp_path: Path) -> None:
    _folder(tmp_path, "with_checks", {"checks.py": CHECKS_MODULE})  # another registry's folder
    alone = _folder(tmp_path, "alone", {"people.yaml": PEOPLE})
    PipelineRegistry.from_folder(tmp_path / "with_checks")
    with pytest.raises(SpecError) as caught:
        PipelineRegistry.from_folder(alone)
    assert f"{alone / 'people.yaml'}:6: quality.rules[0]: unknown rule 'european'" in str(caught.value)


def test_two_python_files_giving_one_name_two_functions_fail(tmp_path: Path) -> None:
    other = CHECKS_MODULE.replace('["DE", "FR", "ES"]', '["DE"]')
    folder = _folder(tmp_path, "pipelines", {"a_checks.py": CHECKS_MODULE, "b_checks.py": other})
    with pytest.raises(SpecError, match=r"b_checks.py: custom check 'european' is registered twice"):
        PipelineRegistry.from_folder(folder)


def test_etl_validate_knows_the_checks_of_the_folders_python_files(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from etl_platform.cli.main import cli

    folder = _folder(tmp_path, "pipelines", {"checks.py": CHECKS_MODULE, "people.yaml": PEOPLE})
    result = CliRunner().invoke(cli, ["validate"], env={"ETL_PIPELINES_DIR": str(folder)})
    assert result.exit_code == 0, result.output
    assert "ok  people" in result.output
    result = CliRunner().invoke(cli, ["validate", str(folder / "people.yaml")], env={"ETL_PIPELINES_DIR": str(folder)})
    assert result.exit_code == 0, result.output
    (folder / "checks.py").unlink()
    result = CliRunner().invoke(cli, ["validate"], env={"ETL_PIPELINES_DIR": str(folder)})
    assert result.exit_code == 1 and "unknown rule 'european'" in result.output
