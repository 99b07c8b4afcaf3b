"""What `etl run` spends its time on: the work, not rebuilding definitions or importing what the load never uses."""

from __future__ import annotations

import subprocess
import sys

from etl_platform.cli.run import pipeline_job
from tests.conftest import REPO


def test_a_run_builds_the_definitions_once_however_often_dagster_reconstructs_its_job(project: dict) -> None:
    # Dagster reconstructs the job to plan the run, to run it and for each step; each build read
    # every pipeline file and the dbt manifest again (four builds per `etl run`).
    first = pipeline_job("orders_job")
    assert pipeline_job("orders_job") is first
    assert pipeline_job("customers_job").name == "customers_job"


def test_the_definitions_follow_a_change_of_settings(project: dict, monkeypatch, tmp_path) -> None:
    before = pipeline_job("orders_job")
    monkeypatch.setenv("ETL_WAREHOUSE_URL", f"duckdb:///{tmp_path / 'other.duckdb'}")
    assert pipeline_job("orders_job") is not before


def test_a_pipeline_run_leaves_the_dbt_layer_out_and_a_dbt_run_has_it(project: dict) -> None:
    assert "dbt" not in pipeline_job("orders_job").resource_defs  # nor was dagster-dbt imported for it
    assert "dbt" in pipeline_job("dbt_models_job").resource_defs


def test_a_load_imports_neither_scikit_learn_nor_dbt_unless_a_step_needs_them() -> None:
    # Each takes seconds to import: scikit-learn is for anomaly detection and fuzzy deduplication,
    # dagster-dbt (and dbt) for the dbt step.
    probe = (
        "import sys, etl_platform.engine.runner, etl_platform.definitions\n"
        "print(sorted({'sklearn', 'dagster_dbt'} & set(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
