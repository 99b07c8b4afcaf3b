"""Every setting the platform takes from the environment, read here and only here.

One place decides between the embedded default (DuckDB file, local folders, SQLite-backed
Dagster instance) and production (PostgreSQL, S3, dagster-postgres): the environment. Code never
branches on an environment name, and no other module reads or writes `os.environ`: the values
are passed down (to resources, the engine's Environment, breakers, sources and transforms), and
subprocesses get an environment built from these settings (docs/architecture.md).
ETL_LANDING_DIR and ETL_LAKE_DIR are folders or s3://bucket/prefix URLs; the S3 endpoint (moto,
MinIO) comes from AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL. ETL_ALLOWED_ROOTS lists, comma-separated,
the folders and s3://bucket/prefix URLs besides the landing zone that file sources may read.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from etl_platform.errors import SpecError, masked_url

PROJECT_DIR = Path(__file__).resolve().parents[1]


class Secrets(Mapping[str, str]):
    """The environment's variables as read when the settings were made, looked up by name.

    Pipelines name their secrets (a mask's salt, an LLM's API key, `${VAR}` in a SQL source's
    URL); they are found here. Read-only, and its repr shows no value, so logging the settings
    or an Environment never prints a password.
    """

    def __init__(self, values: Mapping[str, str] | None = None):
        self._values = dict(values or {})

    def __getitem__(self, name: str) -> str:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Secrets(<{len(self)} names, values hidden>)"


_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


def canonical_url(url: str) -> str:
    """`postgres://` (Heroku's and many tools' spelling) as SQLAlchemy names it, `postgresql://`.

    A URL without a scheme is refused here with the password masked, rather than deep in
    SQLAlchemy with a traceback (and the URL echoed whole). An unknown scheme is refused by
    `open_warehouse`, which names the warehouses it opens.
    """
    if not _SCHEME.match(url):
        raise SpecError(
            f"ETL_WAREHOUSE_URL {masked_url(url)!r} has no scheme; write it as postgresql://user:password@host:5432/db, "
            "duckdb:///path/warehouse.duckdb or sqlite:///path/warehouse.sqlite"
        )
    return "postgresql://" + url.removeprefix("postgres://") if url.startswith("postgres://") else url


def _traces_endpoint(env: Mapping[str, str]) -> str | None:
    """Where OTLP/HTTP traces go: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, or OTEL_EXPORTER_OTLP_ENDPOINT's /v1/traces."""
    if traces := env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        return traces
    base = env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    return f"{base.rstrip('/')}/v1/traces" if base else None


def _roots(text: str | None) -> tuple[str, ...]:
    """ETL_ALLOWED_ROOTS: comma-separated folders (made absolute) and s3://bucket/prefix URLs."""
    entries = [entry.strip() for entry in (text or "").split(",") if entry.strip()]
    return tuple(entry if entry.startswith("s3://") else str(Path(entry).resolve()) for entry in entries)


def _number(env: Mapping[str, str], name: str, kind: type[int] | type[float], default: float) -> float:
    """A positive number from the environment, or an error that names the variable."""
    text = env.get(name)
    if text is None:
        return default
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or value <= 0:
        raise SpecError(f"{name}={text!r} is not a positive {kind.__name__}; unset it for the default ({default})")
    return value


@dataclass(frozen=True)
class BreakerSettings:
    """A circuit breaker opens after `failures` transient failures in a row, for `cooldown_seconds`."""

    failures: int = 5
    cooldown_seconds: float = 30.0


# The celery broker's URL: by name only, so the code location's snapshot never holds it.
CELERY_BROKER_VARIABLE = "ETL_CELERY_BROKER"


@dataclass(frozen=True)
class Settings:
    """Resolved locations of the project's inputs and outputs, breaker settings and named secrets."""

    project_dir: Path
    pipelines_dir: Path
    dbt_project_dir: Path
    data_dir: Path
    landing: str
    lake: str
    warehouse_url: str
    dagster_home: Path
    s3_endpoint_url: str | None
    allowed_roots: tuple[str, ...] = ()
    breakers: BreakerSettings = BreakerSettings()
    secrets: Secrets = field(default_factory=Secrets)
    # Steps run on dagster-celery workers when a broker is configured. The executor and the workers
    # read its URL (it holds a password) from the environment by name (assets/workers.py); this copy
    # is for `etl doctor` and `etl run`'s check that the broker answers.
    celery_broker: str | None = None
    traces_endpoint: str | None = None
    log_format: str = "text"

    @property
    def celery_workers(self) -> bool:
        """Whether steps run on dagster-celery workers (a broker is configured)."""
        return self.celery_broker is not None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read ETL_* variables and DAGSTER_HOME; unset ones fall back to the embedded layout."""
        env = dict(os.environ if environ is None else environ)
        project = Path(env.get("ETL_PROJECT_DIR", PROJECT_DIR)).resolve()
        data = Path(env.get("ETL_DATA_DIR", project / "data")).resolve()
        return cls(
            project_dir=project,
            pipelines_dir=Path(env.get("ETL_PIPELINES_DIR", project / "assets" / "pipelines")),
            dbt_project_dir=Path(env.get("ETL_DBT_PROJECT_DIR", project / "dbt_project")),
            data_dir=data,
            landing=env.get("ETL_LANDING_DIR", str(data / "landing")),
            lake=env.get("ETL_LAKE_DIR", str(data / "lake")),
            warehouse_url=canonical_url(env.get("ETL_WAREHOUSE_URL", f"duckdb:///{data / 'warehouse.duckdb'}")),
            dagster_home=Path(env.get("DAGSTER_HOME", project / ".dagster_home")),
            s3_endpoint_url=env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or None,
            allowed_roots=_roots(env.get("ETL_ALLOWED_ROOTS")),
            breakers=BreakerSettings(
                failures=_number(env, "ETL_BREAKER_FAILURES", int, BreakerSettings.failures),
                cooldown_seconds=_number(env, "ETL_BREAKER_COOLDOWN_SECONDS", float, BreakerSettings.cooldown_seconds),
            ),
            secrets=Secrets(env),
            celery_broker=env.get(CELERY_BROKER_VARIABLE) or None,
            traces_endpoint=_traces_endpoint(env),
            log_format=env.get("ETL_LOG_FORMAT", "text").strip().lower(),
        )

    def subprocess_environment(self, **extra: str) -> dict[str, str]:
        """The environment a child process (dagster dev, dbt) gets: these settings', DAGSTER_HOME set."""
        return {**self.secrets, "DAGSTER_HOME": str(self.dagster_home), **extra}


def export_to_process(variables: Mapping[str, str]) -> None:
    """Put `variables` into this process's own environment, for the settings read after it and the
    processes started without an explicit one (Dagster's multiprocess executor's step processes
    under `etl run`). The one write to `os.environ`, here beside the one read."""
    os.environ.update(variables)
