"""The auto-tuner: chunk size and transform threads for a pipeline, from its own past loads.

With `execution: {chunk_rows: auto}`, each load looks at the pipeline's recent loads in
`_etl.load_history` (rows and bytes read, chunk size, seconds). The chunk size aims at
TARGET_CHUNK_BYTES of input per chunk, which bounds memory (a few chunks are in flight), and is
then moved to the size that gave the best rows per second among recent loads, when one clearly
did (10% or more faster than the target size itself did). Both stay within [MIN_CHUNK_ROWS,
MAX_CHUNK_ROWS]. Bytes are as read: compressed inputs (gzip, Parquet) make chunks larger in
memory than the target. Threads follow the cores this process may use, at most MAX_THREADS.
The choice and its reason go into the run's metadata.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from etl_platform.warehouse.base import Warehouse
from etl_platform.warehouse.metadata import META_SCHEMA

TARGET_CHUNK_BYTES = 32 << 20
MIN_CHUNK_ROWS, MAX_CHUNK_ROWS, DEFAULT_CHUNK_ROWS = 10_000, 1_000_000, 100_000
MAX_THREADS = 4
HISTORY = 10


@dataclass(frozen=True)
class Tuning:
    chunk_rows: int
    threads: int
    reason: str


def _bounded(rows: float) -> int:
    return int(min(MAX_CHUNK_ROWS, max(MIN_CHUNK_ROWS, round(rows / 1000) * 1000)))


def tune(warehouse: Warehouse, pipeline: str) -> Tuning:
    threads = max(1, min(MAX_THREADS, len(os.sched_getaffinity(0))))  # the cores this process may use
    history = warehouse.relation(META_SCHEMA, "load_history")
    loads = warehouse.query(
        f"SELECT rows_read, bytes_read, chunk_rows, duration_seconds FROM {history} "
        f"WHERE pipeline = ? AND rows_read > 0 AND duration_seconds > 0 ORDER BY loaded_at DESC LIMIT {HISTORY}",
        (pipeline,),
    )
    if not loads:
        return Tuning(DEFAULT_CHUNK_ROWS, threads, f"no past loads: the default {DEFAULT_CHUNK_ROWS:,} rows")
    rows_read = sum(r[0] for r in loads)
    bytes_read = sum(r[1] or 0 for r in loads)
    if not bytes_read:
        return Tuning(DEFAULT_CHUNK_ROWS, threads, "past loads read no measurable bytes: the default")
    per_row = bytes_read / rows_read
    chunk = _bounded(TARGET_CHUNK_BYTES / per_row)
    reason = f"{per_row:.0f} bytes per row over {len(loads)} loads: {chunk:,} rows make {TARGET_CHUNK_BYTES >> 20} MB chunks"
    speeds: dict[int, list[float]] = {}
    for rows, _, size, seconds in loads:
        if size:
            speeds.setdefault(size, []).append(rows / seconds)
    if len(speeds) > 1:
        best_size, best = max(((s, sum(v) / len(v)) for s, v in speeds.items()), key=lambda item: item[1])
        at_target = speeds.get(chunk)
        if best_size != chunk and at_target is not None and best > 1.1 * sum(at_target) / len(at_target):
            chunk = _bounded(best_size)
            reason += f"; {chunk:,} rows ran fastest recently ({best:,.0f} rows/s)"
    return Tuning(chunk, threads, reason)
