"""A warehouse table destination.

Append streams chunks straight into the target inside one load transaction (a row written once);
replace and merge stage chunks in a staging table and publish set-wise in one transaction.
Either way nothing is visible until the commit at publish.
"""

from __future__ import annotations

from collections.abc import Iterable

import pyarrow as pa

from etl_platform.destinations.staging import ChunkTable, staging_table
from etl_platform.spec.destinations import Destination as DestinationSpec
from etl_platform.warehouse import PublishResult, Warehouse
from etl_platform.warehouse.base import STAGING_SCHEMA
from etl_platform.warehouse.publish import Audit, begin_append, finish_append, publish_staged


class TableDestination:
    def __init__(
        self,
        spec: DestinationSpec,
        warehouse: Warehouse,
        staging_name: str,
        evolve: bool = False,
        truncate: bool = False,
        reloaded: list[str] | None = None,
    ):
        self.spec = spec
        self.warehouse = warehouse
        self.staging_name = staging_name
        self._in_transaction = False
        self.evolve = evolve  # schema on_drift: evolve: new columns join the target, missing ones stay
        self.truncate = truncate  # a full refresh: the load replaces the target's rows
        self.reloaded = reloaded or []  # files whose earlier rows an append replaces (on_changed_file: reload)
        if spec.write == "append":
            self.chunks = ChunkTable(warehouse, warehouse.target(spec.dataset), self._begin_append, None, with_sequence=False)
        else:
            warehouse.locks.claim(staging_name)  # the run's own until discard: other runs' cleanup keeps it
            self.chunks = staging_table(warehouse, staging_name)

    def _begin_append(self, schema: pa.Schema) -> None:
        begin_append(self.warehouse, self.spec.dataset, schema, self.evolve, self.truncate, self.reloaded)
        self._in_transaction = True

    @property
    def schema(self) -> pa.Schema | None:
        return self.chunks.schema

    def write(self, table: pa.Table) -> None:
        self.chunks.write(table)

    def publish(self, ledger_row: dict, quarantined: Iterable[pa.Table], audit: Audit) -> PublishResult:
        if self.spec.write == "append":
            self._in_transaction = False
            return finish_append(self.warehouse, self.spec.dataset, ledger_row, quarantined, audit)
        return publish_staged(
            self.warehouse,
            self.spec.dataset,
            self.staging_name,
            self.spec.write,
            self.spec.primary_key,
            ledger_row,
            quarantined,
            audit,
            self.evolve,
            self.truncate,
        )

    def discard(self) -> None:
        """Roll back an unfinished append; drop the staging table of replace and merge."""
        if self._in_transaction:
            self._in_transaction = False
            self.warehouse.rollback()
        if self.spec.write != "append":
            self.warehouse.execute(f"DROP TABLE IF EXISTS {self.warehouse.relation(STAGING_SCHEMA, self.staging_name)}")
            self.warehouse.locks.release(self.staging_name)
