"""A load killed with SIGKILL at any point leaves the target as it was; rerunning publishes once.

The loader (an append) runs in a child process against the real PostgreSQL. It is killed (1) while
chunks stream into the target inside the load transaction, and (2) at publish, held there by a lock
this test takes on the quarantine table so the kill lands after every row is in but before COMMIT.
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

from etl_platform.engine.runner import run_pipeline
from tests.conftest import environment_for, pipeline, rows, write_csv

ROWS = 300_000


def spec_document(path: str) -> dict:
    return {
        "id": "crash",
        "source": {"type": "csv", "path": path},
        "transforms": [{"cast": {"id": "int", "amount": "float"}}],
        "destination": {"dataset": "analytics.target", "write": "append"},
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


def start_loader(url: str, landing: Path) -> subprocess.Popen:
    document = json.dumps(spec_document("big.csv"))
    return subprocess.Popen([sys.executable, "-c", CHILD, url, str(landing), document], cwd=Path(__file__).parents[1])


def wait_for(condition, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, "the loader finished before it could be killed"
        assert time.monotonic() < deadline, "timed out waiting for the loader"
        time.sleep(0.005)


def prepare(url: str, landing: Path) -> int:
    write_csv(landing, "small.csv", "id,amount\n1,1\n2,2\n3,3\n")
    run_pipeline(pipeline(**spec_document("small.csv")), environment_for(url, landing))
    write_csv(landing, "big.csv", "id,amount\n" + "".join(f"{i},{i % 1000}.5\n" for i in range(10, 10 + ROWS)))
    return rows(url, "SELECT count(*) AS n FROM analytics.target")[0]["n"]


def count(url: str) -> int:
    return rows(url, "SELECT count(*) AS n FROM analytics.target")[0]["n"]


def assert_recovers(url: str, landing: Path, before: int) -> None:
    assert count(url) == before
    assert rows(url, "SELECT count(*) AS n FROM _etl.load_ledger")[0]["n"] == 1
    report = run_pipeline(pipeline(**spec_document("big.csv")), environment_for(url, landing))
    assert report.rows_published == ROWS
    assert count(url) == before + ROWS
    again = run_pipeline(pipeline(**spec_document("big.csv")), environment_for(url, landing))
    assert again.skipped_reason and count(url) == before + ROWS
    assert rows(url, "SELECT count(*) AS n FROM pg_tables WHERE schemaname = '_etl_staging'")[0]["n"] == 0


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
