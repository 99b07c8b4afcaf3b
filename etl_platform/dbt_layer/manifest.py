"""dbt's manifest, prepared with `dbt parse` when the project changed since the last parse.

Dagster builds the dbt assets from target/<dialect>/manifest.json when the code location loads.
Parsing needs no network (the project uses no dbt packages), but takes seconds, so it runs only
when the project's files differ from those of the last parse: a fingerprint of every file's
path, size and modification time, so a deleted or renamed model counts as a change too. The
parse writes into a folder of its own and the manifest is moved into place in one step, so a
process loading the code location at the same time reads the old manifest or the new, never half.

Beside the manifest the parse leaves dbt's partial parse state (partial_parse.msgpack). Every
later dbt invocation on the same dialect starts from it (`parse_state`), so a `dbt build` re-reads
only the files that changed instead of parsing the whole project again (most of a small build's time).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

from etl_platform.dbt_layer.profile import dbt_profile_env, profiles_dir
from etl_platform.errors import SpecError

PARTIAL_PARSE_FILE = "partial_parse.msgpack"
PROJECT_FILES = ("*.yml", "models/**/*", "tests/**/*", "macros/**/*", "seeds/**/*", "snapshots/**/*")
logger = logging.getLogger(__name__)


def project_fingerprint(project_dir: Path) -> str:
    """Changes whenever a model, test, macro, seed or config file is added, removed, renamed or edited."""
    files = sorted(
        path
        for pattern in PROJECT_FILES
        for path in project_dir.glob(pattern)
        if path.is_file() and not path.name.startswith(".")  # dbt's own .user.yml is no project file
    )
    listing = "\n".join(f"{path.relative_to(project_dir)}\t{path.stat().st_size}\t{path.stat().st_mtime_ns}" for path in files)
    return hashlib.sha256(listing.encode()).hexdigest()


def dbt_executable() -> str:
    """The dbt installed beside this Python (the venv's), else the one on PATH."""
    beside = Path(sys.executable).parent / "dbt"
    return str(beside) if beside.exists() else shutil.which("dbt") or "dbt"


def dialect_target(project_dir: Path, warehouse_url: str) -> Path:
    """The project's target folder for the warehouse's dialect: its manifest and dbt's partial parse state.

    One per dialect: a DuckDB laptop and a PostgreSQL test run beside it do not re-parse each other's.
    """
    return project_dir / "target" / dbt_profile_env(warehouse_url)["ETL_DBT_TARGET"]


def parse_state(project_dir: Path, warehouse_url: str) -> Path:
    """dbt's partial parse state of the last parse on this dialect (it may not exist yet)."""
    return dialect_target(project_dir, warehouse_url) / PARTIAL_PARSE_FILE


def seed_parse_state(project_dir: Path, warehouse_url: str, target_path: Path) -> Path:
    """Make `target_path` a dbt target folder that starts from the last parse's state; return it.

    dbt reads and writes partial_parse.msgpack in its target folder; each invocation has a folder
    of its own (concurrent builds must not share artifacts), so the state is copied in.
    """
    target_path.mkdir(parents=True, exist_ok=True)
    state = parse_state(project_dir, warehouse_url)
    if state.is_file():
        shutil.copyfile(state, target_path / PARTIAL_PARSE_FILE)
    return target_path


def keep_parse_state(project_dir: Path, warehouse_url: str, target_path: Path) -> None:
    """Keep the state dbt left in `target_path` for the next invocation (a rename: readers see the old file or the new)."""
    state = target_path / PARTIAL_PARSE_FILE
    if state.is_file():
        parse_state(project_dir, warehouse_url).parent.mkdir(parents=True, exist_ok=True)
        os.replace(state, parse_state(project_dir, warehouse_url))


def _parse(project_dir: Path, warehouse_url: str, environment: Mapping[str, str], manifest: Path) -> None:
    with (
        tempfile.TemporaryDirectory(prefix="parse-", dir=manifest.parent) as folder,
        profiles_dir(project_dir, warehouse_url) as profiles,
    ):
        scratch = seed_parse_state(project_dir, warehouse_url, Path(folder))
        try:
            parsed = subprocess.run(
                [dbt_executable(), "parse", "--project-dir", str(project_dir), "--profiles-dir", str(profiles)],
                env={
                    **environment,
                    "DBT_TARGET_PATH": str(scratch),
                    "DBT_LOG_PATH": str(scratch),
                    "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
                },
                capture_output=True,
                text=True,
                check=False,
            )
        except FileNotFoundError:
            raise SpecError(
                "dbt is not installed: `make setup` installs dbt-core with its DuckDB and PostgreSQL adapters"
            ) from None
        if parsed.returncode != 0:
            raise SpecError(f"dbt could not parse the project in {project_dir}:\n{(parsed.stdout + parsed.stderr).strip()}")
        keep_parse_state(project_dir, warehouse_url, scratch)
        os.replace(scratch / "manifest.json", manifest)


def prepare_manifest(project_dir: Path, warehouse_url: str, environment: Mapping[str, str]) -> Path:
    """Path of a manifest.json for `project_dir` built on the warehouse's dialect, parsing the project if it changed.

    `environment` is dbt's process environment (Settings.subprocess_environment); the profile is
    passed as a profiles folder of the parse's own, never through variables.

    A project that no longer parses keeps its last good manifest (with a warning), so one broken
    model does not stop the code location, and every pipeline, from loading; without one, it raises.
    """
    if not (project_dir / "dbt_project.yml").is_file():
        raise SpecError(f"no dbt project at {project_dir} (no dbt_project.yml); set ETL_DBT_PROJECT_DIR to build dbt models")
    manifest = dialect_target(project_dir, warehouse_url) / "manifest.json"
    stamp = manifest.with_name("project.fingerprint")
    fingerprint = project_fingerprint(project_dir)  # taken before parsing: an edit during the parse shows next time
    if manifest.exists() and stamp.exists() and stamp.read_text() == fingerprint:
        return manifest
    manifest.parent.mkdir(parents=True, exist_ok=True)
    try:
        _parse(project_dir, warehouse_url, environment, manifest)
    except SpecError as failure:
        if not manifest.exists():
            raise
        logger.warning("%s\nThe dbt assets keep the last manifest that parsed: %s", failure, manifest)
        return manifest
    stamp.write_text(fingerprint)
    return manifest
