"""Where things live, read from environment variables with embedded defaults.

One place decides between the embedded default (DuckDB file, local folders, SQLite-backed
Dagster instance) and production (PostgreSQL, S3, dagster-postgres): the environment. Code never
branches on an environment name.
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
    data_dir: Path
    landing_dir: Path
    lake_dir: Path
    warehouse_url: str
    dagster_home: Path

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        """Read ETL_* variables and DAGSTER_HOME; unset ones fall back to the embedded layout."""
        env = os.environ if environ is None else environ
        project = Path(env.get("ETL_PROJECT_DIR", PROJECT_DIR)).resolve()
        data = Path(env.get("ETL_DATA_DIR", project / "data")).resolve()
        return cls(
            project_dir=project,
            pipelines_dir=Path(env.get("ETL_PIPELINES_DIR", project / "assets" / "pipelines")),
            data_dir=data,
            landing_dir=Path(env.get("ETL_LANDING_DIR", data / "landing")),
            lake_dir=Path(env.get("ETL_LAKE_DIR", data / "lake")),
            warehouse_url=env.get("ETL_WAREHOUSE_URL", f"duckdb:///{data / 'warehouse.duckdb'}"),
            dagster_home=Path(env.get("DAGSTER_HOME", project / ".dagster_home")),
        )
