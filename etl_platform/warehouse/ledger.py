"""The append ledger (`_etl.load_ledger`): which content each dataset holds, so no content is appended twice.

A file source's unit is the file: one entry per file appended, keyed by the fingerprint of its
bytes, with the URL its rows came from. The same bytes under another name, or touched, are found
by their fingerprint (docs/how-a-run-works.md, "Exactly once for files"; what was read of each
URL is the file state's, state.files). Other sources (SQL, frames, a replay) record one entry per
load, without a URL. Every lookup takes its keys in batches, never one query a file.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import pyarrow as pa

from etl_platform.errors import EtlError
from etl_platform.warehouse.base import Warehouse
from etl_platform.warehouse.metadata import LEDGER_SCHEMA, META_SCHEMA

BATCH = 500


class AppendedMeanwhile(EtlError):
    """Another run appended some of this load's content while it ran: this load publishes nothing."""


@dataclass(frozen=True)
class LedgerEntry:
    """Content appended to a dataset: a whole input (no URL), or one file's content and the rows it gave."""

    fingerprint: str
    file_url: str | None = None
    rows: int | None = None


def _batches(values: Iterable[str]) -> Iterator[list[str]]:
    values = list(dict.fromkeys(values))
    for start in range(0, len(values), BATCH):
        yield values[start : start + BATCH]


def _ledger(warehouse: Warehouse) -> str:
    return warehouse.relation(META_SCHEMA, "load_ledger")


def _fingerprints(warehouse: Warehouse, dataset: str, column: str, values: Iterable[str]) -> set[str]:
    """The ledger's content fingerprints of `dataset` whose `column` is one of `values`, in batches."""
    found: set[str] = set()
    for batch in _batches(values):
        sql = f"SELECT fingerprint FROM {_ledger(warehouse)} WHERE dataset = ? AND {column} IN ({', '.join('?' * len(batch))})"
        found.update(row[0] for row in warehouse.query(sql, (dataset, *batch)))
    return found


def appended_contents(warehouse: Warehouse, dataset: str, fingerprints: Iterable[str]) -> set[str]:
    """Which of these content fingerprints `dataset` already holds."""
    return _fingerprints(warehouse, dataset, "fingerprint", fingerprints)


def contents_of_files(warehouse: Warehouse, dataset: str, urls: Iterable[str]) -> set[str]:
    """The contents appended from these files (what a reload of them forgets)."""
    return _fingerprints(warehouse, dataset, "file_url", urls)


def ledger_entries(warehouse: Warehouse, dataset: str) -> int:
    """How many entries `dataset` has: appends the ledger remembers."""
    return warehouse.query(f"SELECT count(*) FROM {_ledger(warehouse)} WHERE dataset = ?", (dataset,))[0][0]


def record_appended(warehouse: Warehouse, ledger_row: dict) -> None:
    """Within an append's publish transaction, after `held_already`: its entries."""
    entries = ledger_row.get("appended") or [LedgerEntry(ledger_row["fingerprint"], rows=ledger_row["rows"])]
    insert_entries(warehouse, ledger_row["dataset"], ledger_row["pipeline"], ledger_row["run_id"], entries)


def insert_entries(warehouse: Warehouse, dataset: str, pipeline: str, run_id: str, entries: list[LedgerEntry]) -> None:
    now = datetime.datetime.now(datetime.UTC)
    rows = [
        {
            "dataset": dataset,
            "fingerprint": e.fingerprint,
            "pipeline": pipeline,
            "run_id": run_id,
            "rows": e.rows,
            "loaded_at": now,
            "file_url": e.file_url,
        }
        for e in entries
    ]
    if rows:
        warehouse.bulk_insert(_ledger(warehouse), pa.Table.from_pylist(rows, LEDGER_SCHEMA))


def held_already(warehouse: Warehouse, ledger_row: dict) -> bool:
    """Inside the publish transaction: whether the dataset holds all of this load's content already.

    The entries of the files this load reloads are forgotten first: their content (and copies of
    it this load reads) is appended anew. Part of the content held means another run appended
    those files meanwhile: AppendedMeanwhile, so this load publishes nothing and its files stay
    pending for the next run.
    """
    forget_files(warehouse, ledger_row["dataset"], ledger_row.get("reloaded") or [])
    entries = ledger_row.get("appended") or [LedgerEntry(ledger_row["fingerprint"])]
    held = appended_contents(warehouse, ledger_row["dataset"], [e.fingerprint for e in entries])
    if held and len(held) < len({e.fingerprint for e in entries}):
        taken = next(e.file_url or e.fingerprint for e in entries if e.fingerprint in held)
        raise AppendedMeanwhile(f"another run appended {taken} (and {len(held) - 1} more) to {ledger_row['dataset']} meanwhile")
    return bool(held)


def forget_files(warehouse: Warehouse, dataset: str, urls: Iterable[str]) -> None:
    """Remove the entries of files whose rows a reload replaces."""
    for batch in _batches(urls):
        sql = f"DELETE FROM {_ledger(warehouse)} WHERE dataset = ? AND file_url IN ({', '.join('?' * len(batch))})"
        warehouse.execute(sql, (dataset, *batch))


def forget_dataset(warehouse: Warehouse, dataset: str) -> None:
    """Every entry of `dataset` (a full refresh empties the target with it)."""
    warehouse.execute(f"DELETE FROM {_ledger(warehouse)} WHERE dataset = ?", (dataset,))


def legacy_entries(warehouse: Warehouse, dataset: str, pipeline: str) -> int:
    """Entries a file pipeline wrote before the ledger was per file: one per load, naming no file."""
    sql = f"SELECT count(*) FROM {_ledger(warehouse)} WHERE dataset = ? AND pipeline = ? AND file_url IS NULL"
    return warehouse.query(sql, (dataset, pipeline))[0][0]


def forget_legacy_entries(warehouse: Warehouse, dataset: str, pipeline: str) -> None:
    sql = f"DELETE FROM {_ledger(warehouse)} WHERE dataset = ? AND pipeline = ? AND file_url IS NULL"
    warehouse.execute(sql, (dataset, pipeline))
