"""Whole-load steps beyond memory: a load many times its chunk budget aggregates, and deduplicates, within a bound
set by the chunk size (and, deduplicating, the pair batch and the compared columns); anomalies scored chunk by
chunk from the spill equal the in-memory result.

The child process (tests/whole_load_child.py) measures its own peak RSS around the load, so the
bound excludes the interpreter and the imports and holds only what the load itself allocates.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from etl_platform.engine.whole_load import WholeLoad
from etl_platform.ml.anomaly import AnomalyDetector
from etl_platform.ml.dedup import Deduplicator
from tests.conftest import REPO, pipeline, rows
from tests.processes import stop_group

ROWS, CUSTOMERS, CHUNK_ROWS, NOTE_BYTES = 200_000, 5_000, 5_000, 800
CHUNK_BYTES = CHUNK_ROWS * (NOTE_BYTES + 16)  # one chunk of the load, as Arrow holds it (4 MB)
# What the load may allocate: chunks in flight in the stream, the spill's batches, DuckDB's groups
# and allocator slack, measured at 124-159 MiB on this machine, whatever the rows. The whole load
# is 40 chunks (156 MiB): collected in memory, as before the spill, it grew the peak by 312 MiB.
BOUND = (64 << 20) + 32 * CHUNK_BYTES


def _events() -> pa.Table:
    index = pa.array(range(ROWS))
    return pa.table(
        {
            "customer": pc.remainder(index, CUSTOMERS),
            "amount": pc.remainder(index, 97),
            "note": pa.array([f"{i:08d}".ljust(NOTE_BYTES, "x") for i in range(ROWS)]),
        }
    )


def _load_in_a_child(duckdb_url: str, landing: Path, table: pa.Table, step: str) -> dict:
    """The pipeline's load of `table` in a child process: its peak RSS growth and counts."""
    pq.write_table(table, landing / "events.parquet", row_group_size=CHUNK_ROWS)
    pq.write_table(table.slice(0, 2), landing / "warmup.parquet")
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.whole_load_child", duckdb_url, str(landing), str(CHUNK_ROWS), step],
        stdout=subprocess.PIPE,
        cwd=REPO,  # `-m tests...` resolves from the working directory, which another test may have moved
        start_new_session=True,
    )
    try:
        out, _ = child.communicate(timeout=600)
    finally:
        stop_group(child)
    assert child.returncode == 0
    measured = orjson.loads(out.splitlines()[-1])
    measured["grown"] = measured["after"] - measured["before"]
    return measured


def test_an_aggregate_over_forty_chunks_stays_within_a_bound_set_by_the_chunk_size(duckdb_url: str, landing: Path) -> None:
    events = _events()
    measured = _load_in_a_child(duckdb_url, landing, events, "aggregate")
    assert measured["published"] == CUSTOMERS
    grown = measured["grown"]
    assert grown < BOUND, f"the load grew the peak RSS by {grown / 2**20:.0f} MiB, above {BOUND / 2**20:.0f} MiB"
    expected = events.group_by("customer").aggregate([("amount", "sum"), ("note", "max")])
    expected = sorted(zip(*(expected[c].to_pylist() for c in ("customer", "amount_sum", "note_max")), strict=True))
    published = rows(duckdb_url, "SELECT customer, total, longest FROM mart.events ORDER BY customer")
    assert [(r["customer"], r["total"], r["longest"]) for r in published] == expected


def test_anomalies_scored_chunk_by_chunk_from_the_spill_equal_the_in_memory_result() -> None:
    rng = np.random.default_rng(3)
    amount = rng.lognormal(3, 0.4, 3_000)
    amount[[5, 1_500, 2_999]] = [9_000.0, -4.0, 0.01]
    orders = pa.table({"order_id": np.arange(3_000), "amount": amount, "quantity": rng.integers(1, 9, 3_000)})
    spec = pipeline(transforms=[{"detect_anomalies": {"columns": ["amount", "quantity"], "max_rate": 0.5}}])
    whole = WholeLoad(spec, embedder=lambda: None, published=lambda columns: None, chunk_rows=1_000)
    for start in range(0, 3_000, 700):  # chunks of another size than the spill's batches
        whole.collect(orders.slice(start, 700))
    published = pa.concat_tables(whole.finish())
    expected, tagged = AnomalyDetector(spec.whole_load_transforms[0].detect_anomalies, "test").apply(orders)
    assert published.num_rows == 3_000 and max(len(b) for b in published.to_batches()) <= 1_000
    assert published.equals(expected) and whole.anomalies == (tagged, 3_000) and tagged >= 3


# Deduplicating, the load's 40 chunks stay on disk but for the compared columns (about 30 bytes a
# row here, 6 MB, copied out of their batches: Spill.read_columns) and the step's per-row arrays
# (indexes, blocks, labels, quality: about 100 bytes a row, 20 MB); one batch of pairs is compared
# at a time (PAIR_BATCH plus one block: numpy's arrays and DuckDB's Jaro-Winkler, about 90 MB that
# DuckDB keeps and reuses), and the dropped rows are held whole for the audit (10,000 x 0.8 KB,
# 8 MB). Measured: 166 MiB of growth; read whole, the load's notes alone (160 MB) would add to it.
DEDUP_BOUND = BOUND + (64 << 20)
COPY_EVERY = 20


def _people() -> pa.Table:
    """Distinct names in blocks of 10 rows by city; every 20th row a one-letter typo of the row before."""
    names = [f"{(i * 2_654_435_761) % 10**9:09d}" for i in range(ROWS)]
    for i in range(COPY_EVERY - 1, ROWS, COPY_EVERY):
        names[i] = names[i - 1][:-1] + ("x" if names[i - 1][-1] != "x" else "y")
    return pa.table(
        {
            "name": names,
            "city": [f"city{i // 10}" for i in range(ROWS)],
            "note": pa.array([f"{i:08d}".ljust(NOTE_BYTES, "x") for i in range(ROWS)]),
        }
    )


def test_deduplicating_forty_chunks_holds_the_compared_columns_and_one_pair_batch_not_the_load(
    duckdb_url: str, landing: Path
) -> None:
    measured = _load_in_a_child(duckdb_url, landing, _people(), "deduplicate")
    planted = ROWS // COPY_EVERY
    assert measured["published"] + measured["deduplicated"] == ROWS
    assert planted * 0.95 <= measured["deduplicated"] <= planted * 1.05
    grown = measured["grown"]
    assert grown < DEDUP_BOUND, f"the load grew the peak RSS by {grown / 2**20:.0f} MiB, above {DEDUP_BOUND / 2**20:.0f} MiB"


def test_deduplicated_chunk_by_chunk_from_the_spill_equals_the_in_memory_result() -> None:
    rng = np.random.default_rng(5)
    people = 300
    names = [f"{(i * 2_654_435_761) % 10**9:09d}" for i in range(people)]
    picks = rng.integers(0, people, 900)  # each person about 3 times, spread over every chunk
    table = pa.table(
        {
            "name": [names[p] for p in picks],
            "city": [f"city{p % 40}" for p in picks],
            "phone": pa.array([None if rng.random() < 0.5 else f"{p}-{i}" for i, p in enumerate(picks)], pa.string()),
        }
    )
    step = {
        "keys": ["name"],
        "fuzzy": {"fields": {"name": 1, "city": 1}, "compare": "characters", "blocking": [{"column": "city"}]},
    }
    spec = pipeline(transforms=[{"deduplicate": {**step, "strategy": "merge"}}])
    whole = WholeLoad(spec, embedder=lambda: None, published=lambda columns: None, chunk_rows=100)
    for start in range(0, 900, 70):  # chunks of another size than the spill's batches
        whole.collect(table.slice(start, 70))
    published = pa.concat_tables(whole.finish())
    expected = Deduplicator(spec.whole_load_transforms[0].deduplicate, None).apply(table)
    assert published.num_rows == len(set(picks.tolist())) and max(len(b) for b in published.to_batches()) <= 100
    assert published.equals(expected.kept) and whole.dropped[0].equals(expected.dropped)
    assert published["phone"].null_count < expected.dropped["phone"].null_count  # merge filled nulls across chunks
