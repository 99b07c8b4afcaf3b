"""What the PostgreSQL change-data-capture tests share: a source database with a slot that is always dropped."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
import pymysql

from etl_platform.spec import PipelineSpec
from tests.conftest import MARIADB_ADMIN, new_postgres_database, pipeline


@dataclass(frozen=True)
class CdcSource:
    url: str
    slot: str
    publication: str

    def sql(self, *statements: str) -> None:
        with psycopg.connect(self.url, autocommit=True) as connection:
            for statement in statements:
                connection.execute(statement)

    def rows(self, table: str = "src.items") -> list[tuple]:
        with psycopg.connect(self.url) as connection:
            return connection.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()

    def confirmed_lsn(self) -> str | None:
        with psycopg.connect(self.url) as connection:
            row = connection.execute(
                "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = %s", (self.slot,)
            ).fetchone()
            return row[0] if row else None

    def spec(self, pipeline_id: str = "items_cdc", fields: dict | None = None, **source: object) -> PipelineSpec:
        """The pipeline replicating src.items into analytics.items; `fields` are its other top-level keys."""
        return pipeline(
            **(fields or {}),
            id=pipeline_id,
            source={
                "type": "postgres_cdc",
                "url": self.url,
                "table": "src.items",
                "slot": self.slot,
                "publication": self.publication,
                **source,
            },
            destination={"dataset": "analytics.items", "write": "merge", "primary_key": ["id"]},
        )


@contextmanager
def cdc_source() -> Iterator[CdcSource]:
    """A new source database with `src.items`; its slot and publication are dropped whatever the test did."""
    tag = uuid.uuid4().hex[:10]
    with new_postgres_database("cdc_src") as name:
        source = CdcSource(f"postgresql://postgres@127.0.0.1:5432/{name}", f"etl_test_{tag}", f"etl_test_{tag}")
        source.sql(
            "CREATE SCHEMA src",
            "CREATE TABLE src.items (id int PRIMARY KEY, name text, price numeric(10,2), seen timestamptz, ok boolean)",
        )
        try:
            yield source
        finally:
            with psycopg.connect(source.url, autocommit=True) as connection:
                connection.execute(
                    "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = %s AND active",
                    (source.slot,),
                )
                connection.execute(
                    "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s",
                    (source.slot,),
                )
                connection.execute(f"DROP PUBLICATION IF EXISTS {source.publication}")


def target_rows(warehouse_url: str, table: str = "analytics.items") -> list[tuple]:
    """The target's rows in the source's columns; none while the target does not exist yet."""
    with psycopg.connect(warehouse_url) as connection:
        if connection.execute("SELECT to_regclass(%s)", (table,)).fetchone()[0] is None:
            return []
        return connection.execute(f"SELECT id, name, price, seen, ok FROM {table} ORDER BY 1").fetchall()


@dataclass(frozen=True)
class MariadbCdcSource:
    """A source database on the MariaDB server with `items`, the same columns as the PostgreSQL one."""

    database: str

    @property
    def url(self) -> str:
        return "mysql+pymysql://root@127.0.0.1:3306/"

    def sql(self, *statements: str) -> None:
        connection = pymysql.connect(**MARIADB_ADMIN, database=self.database, autocommit=True)
        with connection, connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)

    def rows(self, table: str = "items") -> list[tuple]:
        with pymysql.connect(**MARIADB_ADMIN, database=self.database) as connection, connection.cursor() as cursor:
            cursor.execute(f"SELECT id, name, price, seen, ok FROM {table} ORDER BY 1")
            return [tuple(row) for row in cursor.fetchall()]

    def spec(self, pipeline_id: str = "items_cdc", fields: dict | None = None, **source: object) -> PipelineSpec:
        """The pipeline replicating <database>.items into analytics.items; `fields` are its other top-level keys."""
        return pipeline(
            **(fields or {}),
            id=pipeline_id,
            source={"type": "mariadb_cdc", "url": self.url, "table": f"{self.database}.items", **source},
            destination={"dataset": "analytics.items", "write": "merge", "primary_key": ["id"]},
        )


@contextmanager
def mariadb_cdc_source() -> Iterator[MariadbCdcSource]:
    """A new MariaDB database with `items`, dropped whatever the test did."""
    source = MariadbCdcSource(f"cdc_src_{uuid.uuid4().hex[:10]}")
    with pymysql.connect(**MARIADB_ADMIN, autocommit=True) as admin, admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {source.database}")
    try:
        source.sql(
            "CREATE TABLE items (id int PRIMARY KEY, name text, price decimal(10,2), seen datetime(6), ok tinyint) ENGINE=InnoDB"
        )
        yield source
    finally:
        with pymysql.connect(**MARIADB_ADMIN, autocommit=True) as admin, admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {source.database}")
