"""A table or query, streamed in partitions.

With a `url`, the database is read through SQLAlchemy (PostgreSQL, SQLite, DuckDB, or any
dialect installed). Without one, the source reads the warehouse itself, through the run's own
warehouse connection: that is how a pipeline builds on datasets other pipelines publish, and it
respects DuckDB's rule that one process opens a database file with one configuration.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from etl_platform.errors import SourceError, one_line
from etl_platform.sources.base import ContentHash, SourceChunk, with_provenance
from etl_platform.spec.models import SqlSource
from etl_platform.warehouse.base import Warehouse, described_batches

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def expand_env(text: str) -> str:
    """Replace `${VAR}` with the environment variable's value; a missing variable is an error."""

    def value(match: re.Match[str]) -> str:
        name = match[1]
        if name not in os.environ:
            raise SourceError(f"environment variable {name} is not set; it is used in {text!r}")
        return os.environ[name]

    return _ENV.sub(value, text)


class SqlQuerySource:
    def __init__(self, spec: SqlSource, warehouse: Warehouse):
        self.query = spec.query or f"SELECT * FROM {spec.table}"
        self.url = expand_env(spec.url) if spec.url else None
        self.warehouse = None if spec.url else warehouse
        where = make_url(self.url).render_as_string(hide_password=True) if self.url else f"warehouse {warehouse.safe_url}"
        self.label = f"{where}: {spec.table or 'query'}"
        self._hash = ContentHash()

    def describe(self) -> list[str]:
        return [self.label]

    def total_bytes(self) -> None:
        return None

    def fingerprint(self) -> str:
        """Hash of the rows read; known once `read` is exhausted."""
        return self._hash.hexdigest()

    def read(self, chunk_rows: int) -> Iterator[SourceChunk]:
        tables = self.warehouse.read_batches(self.query, chunk_rows) if self.warehouse else self._read_external(chunk_rows)
        row = 1
        try:
            for table in tables:
                for batch in table.to_batches():
                    self._hash.update(batch.serialize())
                lines = pa.array(range(row, row + len(table)), pa.int64())
                row += len(table)
                yield SourceChunk(with_provenance(table, self.label, lines))
        except SourceError:
            raise
        except Exception as exc:  # any driver's error: the user's query or table is the likely cause
            raise SourceError(
                f"{self.label}: query failed: {str(exc).strip().splitlines()[0]}; check table and column names"
            ) from None

    def _read_external(self, chunk_rows: int) -> Iterator[pa.Table]:
        engine = sa.create_engine(self.url, poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as connection:
                result = connection.execution_options(stream_results=True).execute(sa.text(self.query))
                yield from described_batches(result.cursor.description, result.fetchmany, chunk_rows)
        except sa.exc.OperationalError as exc:
            raise SourceError(
                f"{self.label}: cannot read: {one_line(exc.orig)}; check the url and that the database is up"
            ) from None
        finally:
            engine.dispose()
