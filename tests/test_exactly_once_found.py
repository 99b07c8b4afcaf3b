"""What tests/test_exactly_once_stateful.py found, each pinned to its shortest history.

A rewritten file's old quarantined rows, a replay's ledger entry taken for one from before the
per-file ledger, and runs started together on content the dataset holds or on a new DuckDB file.
"""

from __future__ import annotations

import os
from pathlib import Path

from etl_platform.engine.replay import QuarantineSelection, replay
from etl_platform.engine.runner import run_pipeline
from tests.conftest import environment_for, pipeline, rows, write_csv
from tests.test_concurrent_runs import in_threads
from tests.test_quarantine_replay import fix_record

TRIES = 4


def landing_spec(number: int = 0):
    return pipeline(
        id=f"landing_{number}",
        source={"type": "csv", "path": "in/*.csv"},
        transforms=[{"cast": {"id": "int"}}],
        destination={"dataset": f"analytics.landing_{number}", "write": "append", "on_changed_file": "reload"},
    )


def rewrite(path: Path, text: str) -> None:
    """New content under the same name, with a later modification time (a new version)."""
    stamp = path.stat().st_mtime_ns + 2_000_000_000
    path.write_text(text)
    os.utime(path, ns=(stamp, stamp))


def test_a_reloaded_file_leaves_no_quarantined_row_of_its_old_content(warehouse_url: str, landing: Path) -> None:
    """Replaying such a row would publish a row the file no longer holds (twice, with a copy read again)."""
    path = write_csv(landing, "in/f0.csv", "id\n0\nx1\n")
    environment = environment_for(warehouse_url, landing)
    run_pipeline(landing_spec(), environment)
    rewrite(path, "id\n2\nx3\n")
    run_pipeline(landing_spec(), environment)
    assert [r["source_line"] for r in rows(warehouse_url, "SELECT source_line FROM _etl.quarantine")] == [3]
    assert "x3" in rows(warehouse_url, "SELECT record FROM _etl.quarantine")[0]["record"]


def test_a_replay_does_not_make_the_next_run_skip_a_rewritten_file(warehouse_url: str, landing: Path) -> None:
    """A replay's ledger entry named no file, like an entry from before the per-file ledger: the next run
    "upgraded" the ledger, adopting a file rewritten to the same size as appended without reading it."""
    path = write_csv(landing, "in/f0.csv", "id\n0\nx1\n")
    environment = environment_for(warehouse_url, landing)
    run_pipeline(landing_spec(), environment)
    fix_record(warehouse_url, 3, id="1")
    assert replay(landing_spec(), environment, QuarantineSelection()).rows_published == 1
    rewrite(path, "id\n5\nx7\n")  # the same size
    run_pipeline(landing_spec(), environment)
    assert rows(warehouse_url, "SELECT id FROM analytics.landing_0 ORDER BY id") == [{"id": 5}]


def test_runs_started_together_on_held_content_both_succeed(warehouse_url: str, landing: Path) -> None:
    """Both see a touched file; the one that records it second found nothing new, which is no error."""
    path = write_csv(landing, "in/f0.csv", "id\n0\n1\n")
    environment = environment_for(warehouse_url, landing)
    run_pipeline(landing_spec(), environment)
    for _ in range(TRIES):
        stamp = path.stat().st_mtime_ns + 3_000_000_000
        os.utime(path, ns=(stamp, stamp))
        assert in_threads(*[lambda: run_pipeline(landing_spec(), environment)] * 2) == [None, None]
    assert rows(warehouse_url, "SELECT count(*) AS n FROM analytics.landing_0") == [{"n": 2}]


def test_first_runs_started_together_both_succeed(warehouse_url: str, landing: Path) -> None:
    """On a new warehouse both create the platform's schemas (DuckDB: a write-write conflict at commit),
    and the second finds its file appended by the first."""
    write_csv(landing, "in/f0.csv", "id\n0\nx1\n")
    for number in range(TRIES):
        environment = environment_for(warehouse_url.replace(".duckdb", f"{number}.duckdb"), landing)
        url = environment.warehouse_url
        assert in_threads(*[lambda n=number, e=environment: run_pipeline(landing_spec(n), e)] * 2) == [None, None]
        assert rows(url, f"SELECT id FROM analytics.landing_{number}") == [{"id": 0}]
