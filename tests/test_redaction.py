"""Redaction as a guarantee: pipelines run through Dagster (`etl run`) with known secret values, a
warehouse password from a file reference, a PII salt from Vault (a real local KV v2 server), a
SQL source's password from an env reference, and the failing warehouse connection (its port wrong,
the password written in the URL) of a run and of a CLI command; then every output is
searched: stdout, stderr, every file of the Dagster instance (its event log database included)
and of the data folder, and every table of the warehouse. Zero hits."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import psycopg

from tests.conftest import new_postgres_database, write_csv
from tests.test_cli import etl
from tests.vault_server import kv2_server

PEOPLE = """\
id: people
source: {type: csv, path: people.csv}
transforms:
  - mask:
      email: {method: sha256, salt_secret: "vault:secret/etl#pii_salt"}
destination: {dataset: analytics.people, write: replace}
"""
COPY = """\
id: {name}
source:
  type: sql
  url: "postgresql://postgres:${{env:SRC_DB_PASS}}@127.0.0.1:{port}/{database}"
  table: public.source_rows
destination: {{dataset: analytics.{name}, write: replace}}
"""


def searched_text(folders: list[Path], database: str) -> dict[str, bytes]:
    """Every file under `folders` and every row of every table of `database`, as bytes by where."""
    found = {str(path): path.read_bytes() for folder in folders for path in folder.rglob("*") if path.is_file()}
    with psycopg.connect(f"host=127.0.0.1 user=postgres dbname={database}") as connection:
        tables = connection.execute(
            "SELECT schemaname, tablename FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"
        ).fetchall()
        for schema, table in tables:
            rows = connection.execute(f'SELECT t::text FROM "{schema}"."{table}" t').fetchall()
            found[f"{schema}.{table}"] = "\n".join(r[0] for r in rows).encode()
    return found


def test_no_secret_value_reaches_any_output(tmp_path: Path) -> None:
    password, salt, source_password, token = (f"s3cr3t-{uuid.uuid4().hex}" for _ in range(4))
    secrets_dir, project = tmp_path / "secrets", tmp_path / "project"
    (secrets_dir).mkdir()
    (secrets_dir / "pg").write_text(password + "\n")
    pipelines, data, home = project / "pipelines", project / "data", project / "dagster_home"
    pipelines.mkdir(parents=True)
    write_csv(data / "landing", "people.csv", "id,email\n1,ann@example.com\n2,bob@example.com\n")
    with new_postgres_database("etl_redact") as database, kv2_server({"secret/etl": {"pii_salt": salt}}, token) as vault:
        with psycopg.connect(f"host=127.0.0.1 user=postgres dbname={database}", autocommit=True) as admin:
            admin.execute("CREATE TABLE public.source_rows AS SELECT 1 AS id, 'x' AS label")
        (pipelines / "people.yaml").write_text(PEOPLE)
        (pipelines / "copy.yaml").write_text(COPY.format(name="copy", port=5432, database=database))
        env = {
            "ETL_PIPELINES_DIR": str(pipelines),
            "ETL_DATA_DIR": str(data),
            "DAGSTER_HOME": str(home),
            "ETL_WAREHOUSE_URL": f"postgresql://postgres:${{file:{secrets_dir / 'pg'}}}@127.0.0.1:5432/{database}",
            "VAULT_ADDR": vault,
            "VAULT_TOKEN": token,
            "SRC_DB_PASS": source_password,
        }
        runs = [
            etl("run", "people", env=env),
            etl("run", "copy", env=env),
            etl("run", "people", env={**env, "ETL_WAREHOUSE_URL": f"postgresql://postgres:{password}@127.0.0.1:1/{database}"}),
            etl("quarantine", "list", env={**env, "ETL_WAREHOUSE_URL": f"postgresql://postgres:{password}@127.0.0.1:1/x"}),
        ]
        assert [run.returncode for run in runs[:2]] == [0, 0], [run.stderr[-2000:] for run in runs]
        assert runs[2].returncode != 0 and runs[3].returncode != 0
        with psycopg.connect(f"host=127.0.0.1 user=postgres dbname={database}") as connection:
            emails = [r[0] for r in connection.execute("SELECT email FROM analytics.people ORDER BY id")]
        assert emails[0] == hashlib.sha256(f"{salt}ann@example.com".encode()).hexdigest()  # the Vault salt was used
        outputs = searched_text([home, data], database)
    outputs.update({f"run {i} stdout": r.stdout.encode() for i, r in enumerate(runs)})
    outputs.update({f"run {i} stderr": r.stderr.encode() for i, r in enumerate(runs)})
    assert any(name.endswith(".db") for name in outputs), "the instance's event log database was searched"
    assert "_etl.audit_log" in outputs and outputs["analytics.copy"]
    leaks = [
        (where, secret[:10])
        for where, text in outputs.items()
        for secret in (password, salt, source_password, token)
        if secret.encode() in text
    ]
    assert leaks == []
