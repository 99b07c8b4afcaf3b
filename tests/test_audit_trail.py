"""The audit trail: publish, replay, full refresh and purge each leave a hash-chained entry written in
their own transaction, on every warehouse; `etl audit verify` finds an edited, a deleted and an
inserted entry and names it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from etl_platform.engine.options import RunOptions
from etl_platform.engine.replay import QuarantineSelection, replay
from etl_platform.engine.runner import run_pipeline
from etl_platform.quality.audit import QualityGateFailed
from etl_platform.warehouse import open_warehouse
from etl_platform.warehouse.audit import audit_entries, entry_hash, os_user, verify_chain
from etl_platform.warehouse.publish import purge_quarantine
from tests.conftest import environment_for, pipeline, write_csv
from tests.test_cli import etl

RULES = {"rules": [{"field": "amount", "rule": "Range", "args": [0, 1000]}]}


def orders(**quality):
    return pipeline(
        transforms=[{"cast": {"id": "int", "amount": "float"}}],
        quality={**RULES, **quality},
        destination={"dataset": "analytics.orders", "write": "merge", "primary_key": ["id"]},
    )


def history(url: str, landing: Path) -> None:
    """A publish, a replay, a full refresh and a purge: four entries."""
    write_csv(landing, "input.csv", "id,amount\n1,10\n2,5000\n3,7\n")
    environment = environment_for(url, landing)
    run_pipeline(orders(), environment, RunOptions(launched_by="schedule nightly"))
    warehouse = open_warehouse(url)
    try:
        warehouse.execute(f"UPDATE {warehouse.relation('_etl', 'quarantine')} SET record = replace(record, '5000', '50')")
    finally:
        warehouse.close()
    replay(orders(), environment, QuarantineSelection())
    write_csv(landing, "input.csv", "id,amount\n1,11\n4,9000\n")
    run_pipeline(orders(), environment, RunOptions(full_refresh=True))
    warehouse = open_warehouse(url)
    try:
        assert purge_quarantine(warehouse, "", (), launched_by="etl quarantine purge") == 1
    finally:
        warehouse.close()


def chain(url: str) -> list[dict]:
    warehouse = open_warehouse(url)
    try:
        return audit_entries(warehouse)
    finally:
        warehouse.close()


def verdict(url: str):
    warehouse = open_warehouse(url)
    try:
        return verify_chain(warehouse)
    finally:
        warehouse.close()


def sql(url: str, statement: str, params: tuple = ()) -> None:
    """`statement` with `_etl.audit_log` and `rows` as the warehouse names them (MariaDB: the test's prefix, a reserved word)."""
    warehouse = open_warehouse(url)
    try:
        named = statement.replace("_etl.audit_log", warehouse.relation("_etl", "audit_log"))
        warehouse.execute(re.sub(r"\brows\b", warehouse.quote("rows"), named), params)  # a reserved word in MariaDB
    finally:
        warehouse.close()


def test_each_change_is_one_chained_entry_and_tampering_is_found(every_warehouse_url: str, landing: Path) -> None:
    url = every_warehouse_url
    history(url, landing)
    entries = chain(url)
    assert [(e["seq"], e["action"], e["dataset"], e["rows"]) for e in entries] == [
        (1, "publish", "analytics.orders", 2),
        (2, "replay", "analytics.orders", 1),
        (3, "full_refresh", "analytics.orders", 1),
        (4, "purge", "analytics.orders", 1),
    ]
    assert entries[0]["launched_by"] == "schedule nightly" and entries[3]["launched_by"] == "etl quarantine purge"
    assert all(e["os_user"] == os_user() for e in entries)
    assert entries[0]["db_user"] == {"postgresql": "postgres", "mysql": "root"}.get(url.split(":")[0])  # file databases: none
    assert [e["previous_hash"] for e in entries[1:]] == [e["entry_hash"] for e in entries[:-1]]
    assert verdict(url).intact and verdict(url).head == entries[-1]["entry_hash"]

    sql(url, "UPDATE _etl.audit_log SET rows = 200 WHERE seq = 2")  # edited
    found = verdict(url)
    assert (found.broken_seq, found.problem) == (2, "entry 2 does not match its hash: it was edited")
    sql(url, "UPDATE _etl.audit_log SET rows = 1 WHERE seq = 2")
    assert verdict(url).intact

    sql(url, "DELETE FROM _etl.audit_log WHERE seq = 2")  # deleted
    assert verdict(url).broken_seq == 3 and "entries are missing" in verdict(url).problem
    second = entries[1]
    sql(url, f"INSERT INTO _etl.audit_log ({', '.join(second)}) VALUES ({', '.join('?' * len(second))})", tuple(second.values()))
    assert verdict(url).intact

    # inserted after entry 1: the later entries renumbered, the new one hashed as the platform would
    for seq in (4, 3, 2):
        sql(url, "UPDATE _etl.audit_log SET seq = ? WHERE seq = ?", (seq + 1, seq))
    forged = {**entries[0], "seq": 2, "action": "publish", "rows": 99, "previous_hash": entries[0]["entry_hash"]}
    forged["entry_hash"] = entry_hash(forged)
    sql(url, f"INSERT INTO _etl.audit_log ({', '.join(forged)}) VALUES ({', '.join('?' * len(forged))})", tuple(forged.values()))
    found = verdict(url)
    assert found.broken_seq == 3 and "does not link to entry 2" in found.problem


def test_a_load_stopped_by_its_checks_writes_no_entry(duckdb_url: str, landing: Path) -> None:
    """The entry is in the publish transaction: a load rolled back leaves none."""
    write_csv(landing, "input.csv", "id,amount\n1,5000\n2,6000\n")
    with pytest.raises(QualityGateFailed):
        run_pipeline(orders(circuit_breaker={"error_threshold": 0.1}), environment_for(duckdb_url, landing))
    assert chain(duckdb_url) == []


def test_etl_audit_verify_and_list(sqlite_url: str, landing: Path) -> None:
    history(sqlite_url, landing)
    env = {"ETL_WAREHOUSE_URL": sqlite_url}
    listed = etl("audit", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    assert "full_refresh" in listed.stdout and "schedule nightly" in listed.stdout
    assert f"head {chain(sqlite_url)[-1]['entry_hash']}" in listed.stdout
    intact = etl("audit", "verify", env=env)
    assert intact.returncode == 0 and "audit chain intact: 4 entries" in intact.stdout
    sql(sqlite_url, "UPDATE _etl.audit_log SET dataset = 'analytics.other' WHERE seq = 3")
    broken = etl("audit", "verify", env=env)
    assert broken.returncode == 1
    assert "audit chain broken at entry 3: entry 3 does not match its hash: it was edited" in broken.stderr


def test_the_audit_names_the_backfill_a_run_belongs_to() -> None:
    from assets.factory import launcher

    assert launcher({"etl/backfill": "bf-1", "etl/trigger": "backfill"}) == "backfill bf-1"  # `etl backfill`
    assert launcher({"dagster/backfill": "abcd"}) == "backfill abcd"  # the UI's or the daemon's
    assert launcher({"dagster/schedule_name": "nightly"}) == "schedule nightly"
