"""dbt's manifest, prepared with `dbt parse` when it is missing or older than the project.

Dagster builds the dbt assets from target/<dialect>/manifest.json when the code location loads. Parsing
needs no network (the project uses no dbt packages), but takes seconds, so it runs only when a
model, test, macro or config file changed since the last parse, or the warehouse's dialect did.
The parse writes into a folder of its own and the manifest is moved into place in one step, so a
process loading the code location at the same time reads the old manifest or the new, never half.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from etl_platform.dbt_layer.profile import dbt_profile_env
from etl_platform.errors import SpecError

PROJECT_FILES = ("*.yml", "models/**/*", "tests/**/*", "macros/**/*", "seeds/**/*", "snapshots/**/*")


def _newest_source_mtime(project_dir: Path) -> float:
    files = (path for pattern in PROJECT_FILES for path in project_dir.glob(pattern) if path.is_file())
    return max((path.stat().st_mtime for path in files), default=0.0)


def _is_current(manifest: Path, project_dir: Path, adapter: str) -> bool:
    if not manifest.exists() or manifest.stat().st_mtime < _newest_source_mtime(project_dir):
        return False
    try:
        return json.loads(manifest.read_text())["metadata"]["adapter_type"] == adapter
    except (ValueError, KeyError):
        return False


def dbt_executable() -> str:
    """The dbt installed beside this Python (the venv's), else the one on PATH."""
    beside = Path(sys.executable).parent / "dbt"
    return str(beside) if beside.exists() else shutil.which("dbt") or "dbt"


def prepare_manifest(project_dir: Path, warehouse_url: str) -> Path:
    """Path of an up-to-date manifest.json for `project_dir`, parsing the project if needed."""
    try:
        profile = dbt_profile_env(warehouse_url)
    except SpecError:
        # Parsing connects to nothing: the code location still loads, and a dbt build says what is wrong.
        profile = {"ETL_DBT_TARGET": "duckdb"}
    # One manifest per dialect: a DuckDB laptop and a PostgreSQL test run beside it do not re-parse each other's.
    manifest = project_dir / "target" / profile["ETL_DBT_TARGET"] / "manifest.json"
    if _is_current(manifest, project_dir, profile["ETL_DBT_TARGET"]):
        return manifest
    manifest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="parse-", dir=manifest.parent) as scratch:
        parsed = subprocess.run(
            [dbt_executable(), "parse", "--project-dir", str(project_dir), "--profiles-dir", str(project_dir)],
            env={
                **os.environ,
                **profile,
                "DBT_TARGET_PATH": scratch,
                "DBT_LOG_PATH": scratch,
                "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
            },
            capture_output=True,
            text=True,
            check=False,
        )
        if parsed.returncode != 0:
            raise SpecError(f"dbt could not parse the project in {project_dir}:\n{(parsed.stdout + parsed.stderr).strip()}")
        os.replace(Path(scratch) / "manifest.json", manifest)
    return manifest
