"""Shared fixtures: real warehouses (a fresh PostgreSQL database per test, DuckDB and SQLite files),
a landing folder, and helpers to build pipelines and read what they published."""

from __future__ import annotations

import atexit
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from etl_platform.breaker import BreakerBoard
from etl_platform.engine.environment import Environment
from etl_platform.settings import Settings
from etl_platform.spec import PipelineSpec, spec_from_document
from etl_platform.spec.quality import CustomChecks
from etl_platform.warehouse import open_warehouse

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
os.environ.setdefault("ETL_PII_SALT", "test-salt")


@contextmanager
def new_postgres_database(prefix: str) -> Iterator[str]:
    """The name of a new, empty PostgreSQL database, dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=test", autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        yield name
    finally:
        with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=test", autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def postgresql_url() -> Iterator[str]:
    """A new, empty PostgreSQL database (a warehouse), dropped after the test."""
    with new_postgres_database("etl_t") as name:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"


@pytest.fixture
def dagster_pg_url() -> Iterator[str]:
    """A new database for a Dagster instance on dagster-postgres (the psycopg2 driver it needs)."""
    with new_postgres_database("dagster_t") as name:
        yield f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"


MARIADB_ADMIN = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}


@pytest.fixture
def mariadb_url() -> Iterator[str]:
    """A MariaDB warehouse whose schemas are new databases named `etl_t_<hex>_<schema>`, dropped after the test."""
    import pymysql

    prefix = f"etl_t_{uuid.uuid4().hex[:10]}_"
    yield f"mysql://root@127.0.0.1:3306/test?schema_prefix={prefix}"
    with pymysql.connect(**MARIADB_ADMIN, autocommit=True) as admin, admin.cursor() as cursor:
        cursor.execute("SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE %s", (prefix + "%",))
        for (name,) in cursor.fetchall():
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")


@pytest.fixture(params=["duckdb", "postgresql", "sqlite", "mariadb"])
def every_warehouse_url(request: pytest.FixtureRequest) -> str:
    """The write modes' tests: every warehouse the platform publishes to."""
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture
def duckdb_url(tmp_path: Path) -> str:
    return f"duckdb:///{tmp_path / 'warehouse.duckdb'}"


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'warehouse.sqlite'}"


@pytest.fixture(params=["duckdb", "postgresql"])
def warehouse_url(request: pytest.FixtureRequest) -> str:
    """Each test using it runs on DuckDB (the embedded default) and on the real PostgreSQL."""
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture(params=["duckdb", "postgresql", "sqlite"])
def any_warehouse_url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture
def landing(tmp_path: Path) -> Path:
    path = tmp_path / "landing"
    path.mkdir()
    return path


def environment_for(url: str, landing: Path, breakers: BreakerBoard | None = None) -> Environment:
    """A run's environment on `landing`, with the test process's variables as its secrets."""
    return Environment.at(url, landing, landing.parent / "lake", breakers=breakers, secrets=Settings.from_env().secrets)


def pipeline(custom_checks: CustomChecks | None = None, **fields) -> PipelineSpec:
    """A validated spec; defaults make a CSV-to-table append of `input.csv`; rules may name `custom_checks`."""
    document = {
        "id": "test_pipeline",
        "source": {"type": "csv", "path": "input.csv"},
        "destination": {"dataset": "analytics.target", "write": "append"},
        **fields,
    }
    return spec_from_document(document, custom_checks=custom_checks)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def moto_server(**environment: str) -> Iterator[str]:
    """moto's S3 server in its own process on 127.0.0.1: boto3 reaches it over HTTP as it would AWS."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **environment},
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"moto server did not start on {endpoint}") from None
            time.sleep(0.1)
    try:
        yield endpoint
    finally:
        server.terminate()
        server.wait(10)


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    with moto_server() as endpoint:
        yield endpoint


S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture
def s3_bucket(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A new bucket; the environment points boto3 (and the platform's settings) at the moto endpoint."""
    from etl_platform.stores.s3 import s3_client

    for key, value in {**S3_ENV, "AWS_ENDPOINT_URL_S3": s3_endpoint}.items():
        monkeypatch.setenv(key, value)
    name = f"bucket-{uuid.uuid4().hex[:12]}"
    s3_client().create_bucket(Bucket=name)
    return name


def rows(url: str, sql: str) -> list[dict]:
    """Query the warehouse and return rows as dicts."""
    warehouse = open_warehouse(url)
    try:
        return warehouse.read_arrow(sql).to_pylist()
    finally:
        warehouse.close()


def write_csv(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def parsed_dbt_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repository's dbt project with a manifest for DuckDB, parsed once per test session."""
    import shutil

    from etl_platform.dbt_layer import prepare_manifest

    copy = tmp_path_factory.mktemp("dbt") / "dbt_project"
    shutil.copytree(REPO / "dbt_project", copy, ignore=shutil.ignore_patterns("target", "logs"))
    prepare_manifest(copy, f"duckdb:///{copy.parent / 'warehouse.duckdb'}", dict(os.environ))
    return copy


def copy_dbt_project(parsed: Path, destination: Path) -> Path:
    """A test's own copy of the dbt project (its runs write into target/), keeping the parsed manifest."""
    import shutil

    shutil.copytree(parsed, destination, ignore=shutil.ignore_patterns("partial_parse.msgpack", "dbt_models-*", "logs"))
    return destination


@pytest.fixture
def demo_api(monkeypatch: pytest.MonkeyPatch) -> Iterator:
    """The demo's REST API with both releases out, its URL and key exported as `etl demo` and `etl ui` export them."""
    from etl_platform.cli.demo_api import DEMO_KEY, KEY_VARIABLE, URL_VARIABLE, DemoApi

    with DemoApi(DEMO_KEY) as api:
        monkeypatch.setenv(URL_VARIABLE, api.url)
        monkeypatch.setenv(KEY_VARIABLE, DEMO_KEY)
        yield api


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, parsed_dbt_project: Path, demo_api) -> dict[str, str]:
    """A project folder with the demo pipelines, the dbt project and the demo data (and the demo API serving);
    its settings are exported as env vars."""
    import shutil

    from etl_platform.cli.demo import write_demo_data
    from etl_platform.instance.home import ensure_dagster_home

    pipelines = tmp_path / "pipelines"
    shutil.copytree(REPO / "assets" / "pipelines", pipelines)
    dbt_project = copy_dbt_project(parsed_dbt_project, tmp_path / "dbt_project")
    write_demo_data(tmp_path / "data" / "landing")
    env = {
        "ETL_PIPELINES_DIR": str(pipelines),
        "ETL_DBT_PROJECT_DIR": str(dbt_project),
        "ETL_DATA_DIR": str(tmp_path / "data"),
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
        "ETL_WAREHOUSE_URL": f"duckdb:///{tmp_path / 'data' / 'warehouse.duckdb'}",
    }
    ensure_dagster_home(tmp_path / "dagster_home")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def _silence_stderr() -> None:
    os.dup2(os.open(os.devnull, os.O_WRONLY), 2)


# After pytest's summary, silence stderr: DuckDB 2.0's nanobind bindings report "leaked instances"
# of their own type objects during interpreter shutdown, which would otherwise follow pytest's last line.
atexit.register(_silence_stderr)
