"""A load killed with SIGKILL at any point leaves the target as it was; rerunning publishes once.

The loader (an append) runs in a child process against the real PostgreSQL, and against the real
MariaDB. It is killed (1) while chunks stream into the target inside the load transaction, and (2) at
publish, held there by a lock this test takes on the quarantine table so the kill lands after every
row is in but before COMMIT. On MariaDB a replace is killed the same two ways (while staging, and
held inside its publish transaction), and a merge inside its publish transaction: the target is the
old one or the new one, never half of either.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pymysql

from etl_platform.engine.runner import run_pipeline
from tests.conftest import MARIADB_ADMIN, environment_for, pipeline, rows, write_csv

ROWS = 300_000


def big_rows(url: str) -> int:
    """The killed load's size: MariaDB's kills are three tests, so a smaller file keeps them quick."""
    return 50_000 if url.startswith("mysql") else ROWS


def spec_document(path: str, write: str = "append") -> dict:
    key = {"primary_key": ["id"]} if write == "merge" else {}
    return {
        "id": "crash",
        "source": {"type": "csv", "path": path},
        "transforms": [{"cast": {"id": "int", "amount": "float"}}],
        "destination": {"dataset": "analytics.target", "write": write, **key},
        "execution": {"chunk_rows": 10_000},
    }


CHILD = """
import json, sys
from pathlib import Path
from etl_platform.engine.environment import Environment
from etl_platform.engine.runner import run_pipeline
from etl_platform.spec import spec_from_document
url, landing, document = sys.argv[1], Path(sys.argv[2]), json.loads(sys.argv[3])
run_pipeline(spec_from_document(document), Environment.at(url, landing, landing.parent / "lake"))
"""


def start_loader(url: str, landing: Path, write: str = "append") -> subprocess.Popen:
    document = json.dumps(spec_document("big.csv", write))
    return subprocess.Popen([sys.executable, "-c", CHILD, url, str(landing), document], cwd=Path(__file__).parents[1])


def wait_for(condition, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, "the loader finished before it could be killed"
        assert time.monotonic() < deadline, "timed out waiting for the loader"
        time.sleep(0.005)


def prepare(url: str, landing: Path, write: str = "append") -> int:
    write_csv(landing, "small.csv", "id,amount\n1,1\n2,2\n3,3\n")
    run_pipeline(pipeline(**spec_document("small.csv", write)), environment_for(url, landing))
    write_csv(landing, "big.csv", "id,amount\n" + "".join(f"{i},{i % 1000}.5\n" for i in range(10, 10 + big_rows(url))))
    return rows(url, "SELECT count(*) AS n FROM analytics.target")[0]["n"]


def count(url: str) -> int:
    return rows(url, "SELECT count(*) AS n FROM analytics.target")[0]["n"]


def assert_recovers(url: str, landing: Path, before: int) -> None:
    assert count(url) == before
    assert rows(url, "SELECT count(*) AS n FROM _etl.load_ledger")[0]["n"] == 1
    report = run_pipeline(pipeline(**spec_document("big.csv")), environment_for(url, landing))
    assert report.rows_published == big_rows(url)
    assert count(url) == before + big_rows(url)
    again = run_pipeline(pipeline(**spec_document("big.csv")), environment_for(url, landing))
    assert again.skipped_reason and count(url) == before + big_rows(url)
    assert staging_tables(url) == 0


def staging_tables(url: str) -> int:
    if url.startswith("mysql"):
        staging = url.rpartition("schema_prefix=")[2] + "_etl_staging"
        return rows(url, f"SELECT count(*) AS n FROM information_schema.tables WHERE table_schema = '{staging}'")[0]["n"]
    return rows(url, "SELECT count(*) AS n FROM pg_tables WHERE schemaname = '_etl_staging'")[0]["n"]


def test_kill_while_streaming(postgresql_url: str, landing: Path) -> None:
    before = prepare(postgresql_url, landing)
    loader = start_loader(postgresql_url, landing)

    with psycopg.connect(postgresql_url, autocommit=True) as watcher:

        def load_transaction_is_writing() -> bool:
            """The loader's transaction has written rows into the target (not yet committed)."""
            query = (
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'etl_platform' "
                "AND datname = current_database() AND backend_xid IS NOT NULL AND query LIKE 'COPY%target%'"
            )
            return watcher.execute(query).fetchone()[0] > 0

        wait_for(load_transaction_is_writing, loader)
    os.kill(loader.pid, signal.SIGKILL)
    loader.wait()
    assert_recovers(postgresql_url, landing, before)


def test_kill_inside_the_publish_transaction(postgresql_url: str, landing: Path) -> None:
    before = prepare(postgresql_url, landing)
    with psycopg.connect(postgresql_url) as blocker:
        blocker.execute("LOCK TABLE _etl.quarantine IN ACCESS EXCLUSIVE MODE")
        loader = start_loader(postgresql_url, landing)

        def publish_is_waiting() -> bool:
            with psycopg.connect(postgresql_url, autocommit=True) as c:
                waiting = c.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'etl_platform' "
                    "AND datname = current_database() AND wait_event_type = 'Lock' AND query LIKE 'DELETE FROM%quarantine%'"
                ).fetchone()[0]
                return waiting > 0

        wait_for(publish_is_waiting, loader)
        os.kill(loader.pid, signal.SIGKILL)
        loader.wait()
        blocker.rollback()
    # PostgreSQL notices the dead connection and rolls its transaction back.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and count(postgresql_url) != before:
        time.sleep(0.1)
    assert_recovers(postgresql_url, landing, before)


def mariadb_counts(url: str) -> tuple[int, int]:
    """Rows of the target committed, and including uncommitted ones (READ UNCOMMITTED sees a load's own)."""
    database = url.rpartition("schema_prefix=")[2] + "analytics"
    with pymysql.connect(**MARIADB_ADMIN, autocommit=True) as connection, connection.cursor() as cursor:
        cursor.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        cursor.execute(f"SELECT count(*) FROM `{database}`.target")
        committed = cursor.fetchone()[0]
        cursor.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ UNCOMMITTED")
        cursor.execute(f"SELECT count(*) FROM `{database}`.target")
        return committed, cursor.fetchone()[0]


def test_kill_while_streaming_into_mariadb(mariadb_url: str, landing: Path) -> None:
    before = prepare(mariadb_url, landing)
    loader = start_loader(mariadb_url, landing)
    wait_for(lambda: mariadb_counts(mariadb_url)[1] > before, loader)
    os.kill(loader.pid, signal.SIGKILL)
    loader.wait()
    assert_recovers(mariadb_url, landing, before)


def held_at_publish(url: str, landing: Path, write: str, statement: str) -> None:
    """Run the loader with `_etl.quarantine` locked by this test; kill it once it waits at `statement`."""
    prefix = url.rpartition("schema_prefix=")[2]
    with pymysql.connect(**MARIADB_ADMIN, autocommit=True) as blocker, blocker.cursor() as cursor:
        cursor.execute(f"LOCK TABLES `{prefix}_etl`.quarantine WRITE")
        loader = start_loader(url, landing, write)

        def publish_is_waiting() -> bool:
            cursor.execute(
                "SELECT count(*) FROM information_schema.processlist WHERE info LIKE %s AND state LIKE 'Waiting%%'",
                (f"{statement}%{prefix}_etl`.`quarantine%",),
            )
            return cursor.fetchone()[0] > 0

        wait_for(publish_is_waiting, loader)
        os.kill(loader.pid, signal.SIGKILL)
        loader.wait()
        cursor.execute("UNLOCK TABLES")


def test_kill_inside_the_mariadb_publish_transaction(mariadb_url: str, landing: Path) -> None:
    before = prepare(mariadb_url, landing)
    held_at_publish(mariadb_url, landing, "append", "DELETE FROM")
    deadline = time.monotonic() + 10  # the server notices the dead connection and rolls back
    while time.monotonic() < deadline and mariadb_counts(mariadb_url)[1] != before:
        time.sleep(0.1)
    assert_recovers(mariadb_url, landing, before)


def test_a_killed_mariadb_replace_leaves_the_old_or_the_new_target(mariadb_url: str, landing: Path) -> None:
    before = prepare(mariadb_url, landing, "replace")
    loader = start_loader(mariadb_url, landing, "replace")
    wait_for(lambda: staging_tables(mariadb_url) > 0, loader)  # staging: the target is untouched
    os.kill(loader.pid, signal.SIGKILL)
    loader.wait()
    assert mariadb_counts(mariadb_url) == (before, before)
    held_at_publish(mariadb_url, landing, "replace", "DELETE FROM")  # after the target's rows are swapped in
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and mariadb_counts(mariadb_url)[1] != before:
        time.sleep(0.1)
    assert mariadb_counts(mariadb_url) == (before, before)
    report = run_pipeline(pipeline(**spec_document("big.csv", "replace")), environment_for(mariadb_url, landing))
    big = big_rows(mariadb_url)
    assert report.target_rows == big and mariadb_counts(mariadb_url) == (big, big)
    assert staging_tables(mariadb_url) == 0


def test_a_killed_mariadb_merge_leaves_the_old_or_the_new_target(mariadb_url: str, landing: Path) -> None:
    before = prepare(mariadb_url, landing, "merge")
    held_at_publish(mariadb_url, landing, "merge", "DELETE FROM")  # after the upsert, before COMMIT
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and mariadb_counts(mariadb_url)[1] != before:
        time.sleep(0.1)
    assert mariadb_counts(mariadb_url) == (before, before)
    report = run_pipeline(pipeline(**spec_document("big.csv", "merge")), environment_for(mariadb_url, landing))
    merged = before + big_rows(mariadb_url)
    assert report.target_rows == merged and mariadb_counts(mariadb_url) == (merged, merged)
    assert staging_tables(mariadb_url) == 0
