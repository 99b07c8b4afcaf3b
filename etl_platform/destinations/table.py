"""A warehouse table destination.

Append streams chunks straight into the target inside one load transaction (a row written once);
replace and merge stage chunks in a staging table and publish set-wise in one transaction.
Either way nothing is visible until the commit at publish. Under `isolation: rls` an append stages
too, and publishes as its tenant's role (warehouse.rls: COPY is refused under row-level security).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable

import pyarrow as pa

from etl_platform.destinations.staging import ChunkTable, staging_table
from etl_platform.spec.destinations import Destination as DestinationSpec
from etl_platform.spec.tenant import TenantSpec
from etl_platform.warehouse import PublishResult, Warehouse
from etl_platform.warehouse.base import STAGING_SCHEMA
from etl_platform.warehouse.publish import Audit, Slice, begin_append, finish_append, publish_staged
from etl_platform.warehouse.rls import publish_rls, require_rls


class TableDestination:
    def __init__(
        self,
        spec: DestinationSpec,
        warehouse: Warehouse,
        staging_name: str,
        evolve: bool = False,
        truncate: bool = False,
        reloaded: list[str] | None = None,
        partition: Slice | None = None,
        tenant: TenantSpec | None = None,
    ):
        self.spec = spec
        self.warehouse = warehouse
        self.staging_name = staging_name
        self._in_transaction = False
        self.evolve = evolve  # schema on_drift: evolve: new columns join the target, missing ones stay
        self.truncate = truncate  # a full refresh: the load replaces the target's rows
        self.truncated_at: datetime.datetime | None = None  # change data: the source table was truncated first
        self.reloaded = reloaded or []  # files whose earlier rows an append replaces (on_changed_file: reload)
        self.partition = partition  # a partition's load publishes its slice only (warehouse.partitions)
        self.rls = tenant if tenant is not None and tenant.isolation == "rls" else None
        if self.rls is not None:
            require_rls(warehouse, spec.dataset, spec.write, truncate)
        if spec.write == "append" and self.rls is None:
            self.chunks = ChunkTable(warehouse, warehouse.target(spec.dataset), self._begin_append, None, with_sequence=False)
        else:
            warehouse.locks.claim(staging_name)  # the run's own until discard: other runs' cleanup keeps it
            self.chunks = staging_table(warehouse, staging_name)

    def _begin_append(self, schema: pa.Schema) -> None:
        begin_append(self.warehouse, self.spec.dataset, schema, self.evolve, self.truncate, self.reloaded, self.partition)
        self._in_transaction = True

    @property
    def schema(self) -> pa.Schema | None:
        return self.chunks.schema

    def write(self, table: pa.Table) -> None:
        self.chunks.write(table)

    def publish(self, ledger_row: dict, quarantined: Iterable[pa.Table], audit: Audit) -> PublishResult:
        if self.rls is not None:
            key = self.spec.primary_key if self.spec.write == "merge" else None
            return publish_rls(
                self.warehouse, self.spec.dataset, self.staging_name, self.rls, key, ledger_row, quarantined, audit, self.evolve
            )
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
            self.partition,
            self.truncated_at,
        )

    def discard(self) -> None:
        """Roll back an unfinished append; drop the staging table of replace and merge."""
        if self._in_transaction:
            self._in_transaction = False
            self.warehouse.rollback()
        if self.spec.write != "append" or self.rls is not None:
            self.warehouse.execute(f"DROP TABLE IF EXISTS {self.warehouse.relation(STAGING_SCHEMA, self.staging_name)}")
            self.warehouse.locks.release(self.staging_name)
