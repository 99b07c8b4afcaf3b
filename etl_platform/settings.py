"""Where things live, read from environment variables with embedded defaults.

One place decides between the embedded default (DuckDB file, local folders, SQLite-backed
Dagster instance) and production (PostgreSQL, S3, dagster-postgres): the environment. Code never
branches on an environment name. ETL_LANDING_DIR and ETL_LAKE_DIR are folders or s3://bucket/prefix
URLs; the S3 endpoint (moto, MinIO) comes from AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Settings:
    """Resolved locations of the project's inputs and outputs."""

    project_dir: Path
    pipelines_dir: Path
    dbt_project_dir: Path
    data_dir: Path
    landing: str
    lake: str
    warehouse_url: str
    dagster_home: Path
    s3_endpoint_url: str | None

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        """Read ETL_* variables and DAGSTER_HOME; unset ones fall back to the embedded layout."""
        env = os.environ if environ is None else environ
        project = Path(env.get("ETL_PROJECT_DIR", PROJECT_DIR)).resolve()
        data = Path(env.get("ETL_DATA_DIR", project / "data")).resolve()
        return cls(
            project_dir=project,
            pipelines_dir=Path(env.get("ETL_PIPELINES_DIR", project / "assets" / "pipelines")),
            dbt_project_dir=Path(env.get("ETL_DBT_PROJECT_DIR", project / "dbt_project")),
            data_dir=data,
            landing=env.get("ETL_LANDING_DIR", str(data / "landing")),
            lake=env.get("ETL_LAKE_DIR", str(data / "lake")),
            warehouse_url=env.get("ETL_WAREHOUSE_URL", f"duckdb:///{data / 'warehouse.duckdb'}"),
            dagster_home=Path(env.get("DAGSTER_HOME", project / ".dagster_home")),
            s3_endpoint_url=env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or None,
        )
