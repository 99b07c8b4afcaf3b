"""Where a run reads and writes, and what it calls with: the values Dagster's resources hold, as plain objects.

The engine takes an `Environment` so that a load runs the same from an asset, the CLI, a test or a
benchmark; only the composition root (or a test) builds one, from the settings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from etl_platform.breaker import BreakerBoard
from etl_platform.ml.embeddings import Embedder, shared_embedder
from etl_platform.settings import Secrets
from etl_platform.stores import AllowedRoots, FileStore, open_store
from etl_platform.stores.s3 import s3_client
from etl_platform.tracing import NO_TRACER, Tracer


@dataclass(frozen=True)
class Environment:
    """Where a run reads and writes, and what it calls with: the resources' values, without Dagster.

    `breakers` is the process's board (the stores were opened on it too); `secrets` are the
    named secrets of the settings, for masks, LLM keys and `${VAR}` in SQL source URLs;
    `allowed_roots` the folders and s3://bucket/prefix URLs besides the landing zone that file
    sources may read (ETL_ALLOWED_ROOTS); `tracer` records the load's spans (etl_platform.tracing;
    the no-op tracer unless traces are configured).
    """

    warehouse_url: str
    landing: FileStore
    lake: FileStore
    s3_client: Callable[[], Any] = s3_client
    embedder: Callable[[], Embedder] = shared_embedder
    breakers: BreakerBoard = field(default_factory=BreakerBoard)
    secrets: Secrets = field(default_factory=Secrets)
    allowed_roots: tuple[str, ...] = ()
    tracer: Tracer = NO_TRACER

    @property
    def roots(self) -> AllowedRoots:
        """Where this run's file sources may read: the landing zone and the allowed roots."""
        return AllowedRoots.of(self.landing.url, self.allowed_roots)

    @classmethod
    def at(
        cls,
        warehouse_url: str,
        landing: str | Path,
        lake: str | Path,
        client: Callable[[], Any] = s3_client,
        breakers: BreakerBoard | None = None,
        secrets: Secrets | None = None,
        allowed_roots: tuple[str, ...] = (),
    ) -> Environment:
        """From locations: folders, or s3://bucket/prefix URLs."""
        board = breakers or BreakerBoard()
        stores = open_store(str(landing), client, board), open_store(str(lake), client, board)
        return cls(warehouse_url, *stores, client, shared_embedder, board, secrets or Secrets(), allowed_roots)
