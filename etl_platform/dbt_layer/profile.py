"""dbt's profile from the warehouse URL, written for one dbt invocation and deleted after it.

ETL_WAREHOUSE_URL is the one setting that chooses the warehouse; dbt's connection is derived
from it, so there is no second place where a user configures where the marts are built. Each
dbt invocation (a parse, a build) gets a profiles.yml of its own, with the values written in, in
a private temporary folder that is removed when the invocation ends: the process environment is
never changed, and the password never outlives the build on disk. dbt_project/profiles.yml
reads the same values from `ETL_DBT_*` variables, for running dbt by hand.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from etl_platform.errors import SpecError, masked_url

# The warehouse URL's backend -> the target of dbt_project/profiles.yml that builds in it.
PROFILE_TARGETS = {"duckdb": "duckdb", "postgresql": "postgres"}
POSTGRES_OPTIONS = {"sslmode", "host"}


def dbt_profile_env(warehouse_url: str) -> dict[str, str]:
    """The `ETL_DBT_*` values (as dbt_project/profiles.yml names them) of the warehouse `warehouse_url` names."""
    try:
        url = make_url(warehouse_url)
    except ArgumentError:
        raise SpecError(
            f"ETL_WAREHOUSE_URL {masked_url(warehouse_url)!r} is not a URL such as postgresql://user@host/db"
        ) from None
    backend = url.get_backend_name()
    if backend not in PROFILE_TARGETS:
        raise SpecError(
            f"the dbt layer builds models in DuckDB or PostgreSQL, not {backend!r} "
            f"(ETL_WAREHOUSE_URL {masked_url(warehouse_url)!r}); "
            "point ETL_WAREHOUSE_URL at duckdb:///path or postgresql://user@host/db"
        )
    target = {"ETL_DBT_TARGET": PROFILE_TARGETS[backend]}
    if backend == "duckdb":
        if not url.database or url.database == ":memory:":
            raise SpecError(
                f"dbt needs the DuckDB warehouse in a file, not {masked_url(warehouse_url)!r}: use duckdb:///path/warehouse.duckdb"
            )
        return {**target, "ETL_DBT_DUCKDB_PATH": str(Path(url.database).resolve())}
    unknown = sorted(set(url.query) - POSTGRES_OPTIONS)
    if unknown:
        raise SpecError(
            f"ETL_WAREHOUSE_URL option(s) {', '.join(unknown)} are not passed on to dbt; "
            f"the dbt profile takes {', '.join(sorted(POSTGRES_OPTIONS))}"
        )
    return {
        **target,
        "ETL_DBT_PG_HOST": url.host or str(url.query.get("host") or "127.0.0.1"),
        "ETL_DBT_PG_PORT": str(url.port or 5432),
        "ETL_DBT_PG_USER": url.username or "postgres",
        "ETL_DBT_PG_PASSWORD": url.password or "",
        "ETL_DBT_PG_DATABASE": url.database or "",
        "ETL_DBT_PG_SSLMODE": str(url.query.get("sslmode") or "prefer"),
    }


def profile_name(project_dir: Path) -> str:
    """The profile the dbt project asks for (`profile:` in its dbt_project.yml)."""
    try:
        return YAML(typ="safe").load((project_dir / "dbt_project.yml").read_text())["profile"]
    except (OSError, YAMLError, KeyError, TypeError):
        raise SpecError(f"{project_dir / 'dbt_project.yml'} names no `profile:`; dbt needs one to connect") from None


def dbt_profile(project_dir: Path, warehouse_url: str) -> dict:
    """profiles.yml's document for the project: one target, the warehouse's, its values written in."""
    values = dbt_profile_env(warehouse_url)
    target = values["ETL_DBT_TARGET"]
    if target == "duckdb":
        output = {"type": "duckdb", "path": values["ETL_DBT_DUCKDB_PATH"], "schema": "main", "threads": 1}
    else:
        output = {
            "type": "postgres",
            "host": values["ETL_DBT_PG_HOST"],
            "port": int(values["ETL_DBT_PG_PORT"]),
            "user": values["ETL_DBT_PG_USER"],
            "password": values["ETL_DBT_PG_PASSWORD"],
            "dbname": values["ETL_DBT_PG_DATABASE"],
            "sslmode": values["ETL_DBT_PG_SSLMODE"],
            "schema": "public",
            "threads": 2,
        }
    return {profile_name(project_dir): {"target": target, "outputs": {target: output}}}


@contextlib.contextmanager
def profiles_dir(project_dir: Path, warehouse_url: str) -> Iterator[Path]:
    """A folder holding the profiles.yml for one dbt invocation (readable by this user only), removed after it."""
    profile = dbt_profile(project_dir, warehouse_url)
    with tempfile.TemporaryDirectory(prefix="etl-dbt-profile-") as folder:
        YAML(typ="safe").dump(profile, Path(folder) / "profiles.yml")
        yield Path(folder)
