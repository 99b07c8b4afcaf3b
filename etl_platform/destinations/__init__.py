"""Destinations: where a pipeline's rows are staged during a run and published at its end."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

import pyarrow as pa

from etl_platform.warehouse import PublishResult
from etl_platform.warehouse.publish import Audit


class Destination(Protocol):
    """Write chunks to a staging area; publish atomically or discard."""

    schema: pa.Schema | None

    def write(self, table: pa.Table) -> None: ...

    def publish(self, ledger_row: dict, quarantined: Iterable[pa.Table], audit: Audit) -> PublishResult: ...

    def discard(self) -> None: ...
