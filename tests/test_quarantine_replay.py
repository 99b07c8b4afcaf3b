"""Quarantine replay round trip on DuckDB and PostgreSQL, and the `etl quarantine` commands."""

from __future__ import annotations

import json
from pathlib import Path

from etl_platform.engine.replay import QuarantineSelection, replay
from etl_platform.engine.runner import run_pipeline
from etl_platform.warehouse import open_warehouse
from tests.conftest import environment_for, pipeline, rows, write_csv
from tests.test_cli import etl

RULES = {"rules": [{"field": "amount", "rule": "Range", "args": [0, 1000]}]}


def orders(write: str = "merge"):
    destination = {"dataset": "analytics.orders", "write": write, **({"primary_key": ["id"]} if write == "merge" else {})}
    return pipeline(transforms=[{"cast": {"id": "int", "amount": "float"}}], quality=RULES, destination=destination)


def fix_record(url: str, line: int, **values: str) -> None:
    """Edit a quarantined row as a user would, in SQL."""
    warehouse = open_warehouse(url)
    try:
        record = json.loads(warehouse.query("SELECT record FROM _etl.quarantine WHERE source_line = ?", (line,))[0][0])
        record.update(values)
        warehouse.execute("UPDATE _etl.quarantine SET record = ? WHERE source_line = ?", (json.dumps(record), line))
    finally:
        warehouse.close()


def test_replay_round_trip(warehouse_url: str, landing: Path) -> None:
    write_csv(landing, "input.csv", "id,amount\n1,10\n2,12,50\n3,abc\n4,5000\n")
    environment = environment_for(warehouse_url, landing)
    first = run_pipeline(orders(), environment)
    assert (first.rows_published, first.rows_quarantined) == (1, 3)  # malformed line, cast, range
    fix_record(warehouse_url, 4, amount="7.5")  # line 4 held "abc": now a number
    fix_record(warehouse_url, 3, raw="2,12.50")  # a malformed line is still raw text: replays stay stuck
    report = replay(orders(), environment, QuarantineSelection())
    assert (report.rows_read, report.rows_published, report.rows_quarantined) == (3, 1, 2)
    assert rows(warehouse_url, "SELECT id, amount FROM analytics.orders ORDER BY id") == [
        {"id": 1, "amount": 10.0},
        {"id": 3, "amount": 7.5},
    ]
    left = rows(warehouse_url, "SELECT rule, source_line, reason FROM _etl.quarantine ORDER BY source_line")
    assert [(r["rule"], r["source_line"]) for r in left] == [("malformed_line", 3), ("range_amount", 5)]
    assert "still malformed" in left[0]["reason"] and "amount is between 0 and 1000" in left[1]["reason"]
    # Idempotent: what was replayed is gone; replaying again publishes nothing new.
    again = replay(orders(), environment, QuarantineSelection(rule="cast"))
    assert again is None
    assert rows(warehouse_url, "SELECT count(*) AS n FROM analytics.orders")[0]["n"] == 2


def test_replaying_rows_that_fail_again_keeps_one_record_of_each(warehouse_url: str, landing: Path) -> None:
    """A replay that publishes nothing (only still-malformed lines) still consumes its records: the
    quarantine holds each failing row once, with its latest reason, however often it is replayed."""
    write_csv(landing, "input.csv", "id,amount\n1,10\n2,12,50\n3,4,5\n")
    environment = environment_for(warehouse_url, landing)
    run_pipeline(orders(), environment)
    before = rows(warehouse_url, "SELECT quarantine_id, source_line FROM _etl.quarantine ORDER BY source_line")
    assert [r["source_line"] for r in before] == [3, 4]
    for _ in range(2):
        report = replay(orders(), environment, QuarantineSelection())
        assert (report.rows_read, report.rows_published, report.rows_quarantined) == (2, 0, 2)
    after = rows(warehouse_url, "SELECT quarantine_id, source_line, reason FROM _etl.quarantine ORDER BY source_line")
    assert [r["source_line"] for r in after] == [3, 4]
    assert not {r["quarantine_id"] for r in before} & {r["quarantine_id"] for r in after}
    assert all("still malformed" in r["reason"] for r in after)


def test_replay_into_a_replace_dataset_appends(duckdb_url: str, landing: Path) -> None:
    write_csv(landing, "input.csv", "id,amount\n1,10\n2,abc\n")
    environment = environment_for(duckdb_url, landing)
    run_pipeline(orders("replace"), environment)
    fix_record(duckdb_url, 3, amount="20")
    report = replay(orders("replace"), environment, QuarantineSelection(rule="cast"))
    assert report.rows_published == 1
    assert rows(duckdb_url, "SELECT id FROM analytics.orders ORDER BY id") == [{"id": 1}, {"id": 2}]


def test_quarantine_commands(project: dict) -> None:
    assert etl("run", "products").returncode == 0
    listing = etl("quarantine", "list")
    assert listing.returncode == 0 and "products" in listing.stdout and "cast" in listing.stdout
    shown = etl("quarantine", "show", "--pipeline", "products")
    assert "cannot cast 'call us' in 'price'" in shown.stdout
    replayed = etl("quarantine", "replay", "products")
    assert replayed.returncode == 0 and "replayed 2 rows of products: 0 published, 2 still quarantined" in replayed.stdout
    purged = etl("quarantine", "purge", "--pipeline", "products", "--yes")
    assert "purged 2 quarantined rows" in purged.stdout
    assert "nothing to replay" in etl("quarantine", "replay", "products").stdout
    assert etl("quarantine", "replay").returncode == 2
    everything = etl("quarantine", "replay", "--all")
    assert everything.returncode == 0 and "products: nothing to replay" in everything.stdout
