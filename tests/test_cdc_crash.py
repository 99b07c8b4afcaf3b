"""kill -9 during change data capture (PostgreSQL and MariaDB): at random points of a run and between commit and acknowledge.

After every kill the next runs bring the target to exactly the source's rows: no change lost, none
applied twice (a replayed delete or update would bring back an old row), and the PostgreSQL slot
never released WAL the warehouse had not saved.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from etl_platform.engine.runner import run_pipeline
from etl_platform.sources.pgoutput import lsn_number
from tests.cdc_support import CdcSource, MariadbCdcSource, cdc_source, mariadb_cdc_source, target_rows
from tests.conftest import environment_for, rows

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def source() -> Iterator[CdcSource]:
    with cdc_source() as created:
        yield created


def random_changes(source: CdcSource | MariadbCdcSource, chooser: random.Random, count: int) -> None:
    postgres = isinstance(source, CdcSource)
    table, upsert = ("src.items", "ON CONFLICT (id) DO UPDATE SET name = excluded.name") if postgres else ("items", "")
    statements = []
    for _ in range(count):
        key = chooser.randrange(60)
        action = chooser.choice(["insert", "insert", "update", "delete"])
        if action == "insert":
            verb = "INSERT" if postgres else "REPLACE"
            statements.append(f"{verb} INTO {table} VALUES ({key}, 'v{chooser.randrange(1000)}', {key}.5, now(), true) {upsert}")
        elif action == "update":
            name = "name || '+'" if postgres else "CONCAT(name, '+')"
            statements.append(f"UPDATE {table} SET name = {name}, ok = NOT coalesce(ok, false) WHERE id = {key}")
        else:
            statements.append(f"DELETE FROM {table} WHERE id = {key}")
    for start in range(0, len(statements), 5):  # transactions of up to five changes
        if postgres:
            source.sql("BEGIN; " + "; ".join(statements[start : start + 5]) + "; COMMIT")
        else:
            source.sql("BEGIN", *statements[start : start + 5], "COMMIT")


def child(source: CdcSource | MariadbCdcSource, warehouse_url: str, landing: Path, mode: str) -> subprocess.Popen:
    kind = "postgres" if isinstance(source, CdcSource) else "mariadb"
    arguments = [kind, json.dumps(dataclasses.asdict(source)), warehouse_url, str(landing), mode]
    return subprocess.Popen(
        [sys.executable, "-m", "tests.cdc_child", *arguments],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    process.stdout.close()


def saved_position(warehouse_url: str) -> dict:
    saved = rows(warehouse_url, "SELECT position FROM _etl.source_checkpoint WHERE pipeline = 'items_cdc'")
    return json.loads(saved[0]["position"]) if saved else {}


def saved_lsn(warehouse_url: str) -> int:
    return int(saved_position(warehouse_url).get("lsn", 0))


def kill_during_runs(
    source: CdcSource | MariadbCdcSource, warehouse_url: str, landing: Path, mode: str, chooser: random.Random
) -> None:
    """New changes, then a child applying them killed at a random moment (`loop`) or after its commit."""
    random_changes(source, chooser, 25)
    process = child(source, warehouse_url, landing, mode)
    try:
        assert process.stdout.readline().strip() == "ready"
        if mode == "loop":
            time.sleep(chooser.uniform(0.0, 0.8))
        else:
            process.wait(timeout=60)
            assert process.returncode == -signal.SIGKILL  # died in acknowledge, after the commit
    finally:
        stop(process)


KILLS = ["after-commit", "loop", "loop", "after-commit", "loop", "loop", "loop", "after-commit", "loop", "loop"]


def test_kill_9_at_random_points_and_between_commit_and_acknowledge_loses_and_repeats_nothing(
    source: CdcSource, postgresql_url: str, landing: Path
) -> None:
    chooser = random.Random(15)
    environment = environment_for(postgresql_url, landing)
    spec = source.spec(max_changes=40)
    random_changes(source, chooser, 30)
    run_pipeline(spec, environment)  # the snapshot
    for mode in KILLS:
        kill_during_runs(source, postgresql_url, landing, mode, chooser)
        confirmed = source.confirmed_lsn()
        assert lsn_number(confirmed) <= saved_lsn(postgresql_url)  # the slot never releases what is not saved
        if mode == "after-commit":
            assert lsn_number(confirmed) < saved_lsn(postgresql_url)  # published, not yet acknowledged
    run_pipeline(source.spec(max_changes=100_000), environment)  # the rest, in one window
    assert target_rows(postgresql_url) == source.rows()
    assert lsn_number(source.confirmed_lsn()) >= saved_lsn(postgresql_url)


def test_mariadb_kill_9_at_random_points_and_after_the_commit_loses_and_repeats_nothing(
    postgresql_url: str, landing: Path
) -> None:
    chooser = random.Random(16)
    environment = environment_for(postgresql_url, landing)
    with mariadb_cdc_source() as source:
        random_changes(source, chooser, 30)
        run_pipeline(source.spec(max_changes=40), environment)  # the snapshot
        for mode in KILLS:
            before = saved_position(postgresql_url)
            kill_during_runs(source, postgresql_url, landing, mode, chooser)
            if mode == "after-commit":
                assert saved_position(postgresql_url) != before  # published before the kill
        run_pipeline(source.spec(max_changes=100_000), environment)  # the rest, in one window
        assert target_rows(postgresql_url) == source.rows()
