"""MariaDB change data capture against the real server: snapshot, binlog windows, deletes, drift, truncate, sensor, follow."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from etl_platform.engine.follow import follow
from etl_platform.engine.options import RunOptions
from etl_platform.engine.runner import run_pipeline
from etl_platform.quality.audit import QualityGateFailed
from etl_platform.sources.mariadb_cdc import MariadbCdcSource as MariadbCdcRun
from etl_platform.sources.mariadb_cdc import gtid_behind, server_gtid
from tests.cdc_support import MariadbCdcSource, mariadb_cdc_source, target_rows
from tests.conftest import environment_for, rows


@pytest.fixture
def source() -> Iterator[MariadbCdcSource]:
    with mariadb_cdc_source() as created:
        yield created


def saved(warehouse_url: str) -> dict:
    found = rows(warehouse_url, "SELECT position FROM _etl.source_checkpoint WHERE pipeline = 'items_cdc'")
    return json.loads(found[0]["position"])


def test_snapshot_then_inserts_updates_and_deletes_are_reproduced_row_by_row(
    source: MariadbCdcSource, postgresql_url: str, landing: Path
) -> None:
    source.sql(
        "INSERT INTO items WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 50) "
        "SELECT n, CONCAT('item ', n), n * 1.5, TIMESTAMP '2026-01-01 00:00:00' + INTERVAL n HOUR, n % 2 FROM g",
        "INSERT INTO items VALUES (51, 'tab\\there\\nnew line \\\\ back', NULL, NULL, NULL)",
    )
    environment = environment_for(postgresql_url, landing)
    first = run_pipeline(source.spec(), environment)
    assert first.rows_published == 51
    assert target_rows(postgresql_url) == source.rows()
    source.sql(
        "INSERT INTO items VALUES (60, 'new', 1, NOW(6), 1)",
        "UPDATE items SET name = 'renamed', price = 9.99 WHERE id <= 10",
        "DELETE FROM items WHERE id BETWEEN 40 AND 45",
        # several changes to one key in one window: the last one wins
        "UPDATE items SET name = 'twice' WHERE id = 60",
        "DELETE FROM items WHERE id = 60",
        "INSERT INTO items VALUES (60, 'back again', 2, NULL, 0)",
        "UPDATE items SET id = 70 WHERE id = 20",  # a changed primary key deletes the old one
    )
    second = run_pipeline(source.spec(), environment)
    assert second.rows_published > 0
    assert target_rows(postgresql_url) == source.rows()
    position = saved(postgresql_url)
    assert position["table"] == f"{source.database}.items"
    assert gtid_behind(position["gtid"], server_gtid(source.url)) == 0
    lag = [c for c in second.checks if c.name == "binlog_lag"]
    assert len(lag) == 1 and lag[0].passed and "transactions behind" in lag[0].detail


def test_small_windows_apply_whole_transactions_until_the_target_matches(
    source: MariadbCdcSource, postgresql_url: str, landing: Path
) -> None:
    environment = environment_for(postgresql_url, landing)
    spec = source.spec(max_changes=5)
    run_pipeline(spec, environment)
    for start in range(0, 40, 4):
        source.sql(
            f"INSERT INTO items (id, name) VALUES ({start}, 'n'), ({start + 1}, 'n'), ({start + 2}, 'n'), ({start + 3}, 'n')"
        )
        source.sql(f"UPDATE items SET name = 'u' WHERE id = {start}")
    source.sql("DELETE FROM items WHERE id % 3 = 0")
    runs = 0
    while target_rows(postgresql_url) != source.rows():
        run_pipeline(spec, environment)
        runs += 1
        assert runs < 40
    assert runs > 2  # bounded windows: several runs were needed
    assert run_pipeline(spec, environment).rows_published == 0


def test_soft_deletes_keep_the_row_with_its_deletion_time(source: MariadbCdcSource, postgresql_url: str, landing: Path) -> None:
    source.sql("INSERT INTO items VALUES (1, 'a', 1, NULL, 1), (2, 'b', 2, NULL, 1)")
    environment = environment_for(postgresql_url, landing)
    spec = source.spec(deletes="soft")
    run_pipeline(spec, environment)
    source.sql("DELETE FROM items WHERE id = 1")
    run_pipeline(spec, environment)
    kept = rows(postgresql_url, "SELECT id, name, _deleted_at FROM analytics.items ORDER BY id")
    assert [(r["id"], r["name"]) for r in kept] == [(1, "a"), (2, "b")]
    assert kept[0]["_deleted_at"] is not None and kept[1]["_deleted_at"] is None


def test_an_alter_table_mid_stream_goes_to_the_drift_policy_and_the_position_stays(
    source: MariadbCdcSource, postgresql_url: str, landing: Path
) -> None:
    environment = environment_for(postgresql_url, landing)
    source.sql("INSERT INTO items VALUES (1, 'a', 1, NULL, 1)")
    strict = source.spec(fields={"schema": {"on_drift": "fail"}})
    run_pipeline(strict, environment)
    source.sql(
        "INSERT INTO items VALUES (2, 'b', 2, NULL, 1)",
        "ALTER TABLE items ADD COLUMN colour varchar(20)",
        "INSERT INTO items VALUES (3, 'c', 3, NULL, 1, 'red')",
    )
    before_change = run_pipeline(strict, environment)  # the window stops before the new columns
    assert before_change.rows_published == 1
    position = saved(postgresql_url)
    with pytest.raises(QualityGateFailed, match="schema drift"):
        run_pipeline(strict, environment)
    assert saved(postgresql_url) == position  # nothing published
    run_pipeline(source.spec(fields={"schema": {"on_drift": "evolve"}}), environment)
    assert rows(postgresql_url, "SELECT id, colour FROM analytics.items ORDER BY id") == [
        {"id": 1, "colour": None},
        {"id": 2, "colour": None},
        {"id": 3, "colour": "red"},
    ]
    versions = rows(postgresql_url, "SELECT version, columns FROM _etl.schema_versions ORDER BY version")
    assert [v["version"] for v in versions] == [1, 2]
    assert "colour" in json.loads(versions[1]["columns"])


def test_a_truncate_mid_stream_empties_the_target_at_its_position_and_reports_it(
    source: MariadbCdcSource, postgresql_url: str, landing: Path
) -> None:
    environment = environment_for(postgresql_url, landing)
    source.sql("INSERT INTO items (id, name) VALUES (1, 'a')")
    run_pipeline(source.spec(), environment)
    source.sql(
        "INSERT INTO items (id, name) VALUES (2, 'b')",
        "TRUNCATE TABLE items",
        "INSERT INTO items (id, name) VALUES (3, 'c')",
        "UPDATE items SET name = 'after' WHERE id = 3",
    )
    before = run_pipeline(source.spec(), environment)  # the window ends before the truncate
    assert before.rows_published == 1 and before.truncation is None
    assert [r[0] for r in target_rows(postgresql_url)] == [1, 2]
    truncated = run_pipeline(source.spec(), environment)
    assert truncated.truncation is not None and "GTID" in truncated.truncation
    assert target_rows(postgresql_url) == source.rows() == [(3, "after", None, None, None)]
    source.sql(f"TRUNCATE {source.database}.items")  # alone in its window: the emptying still publishes
    alone = run_pipeline(source.spec(), environment)
    assert alone.truncation is not None and target_rows(postgresql_url) == [] == source.rows()


def test_two_runs_from_one_position_publish_the_window_once(source: MariadbCdcSource, postgresql_url: str, landing: Path) -> None:
    environment = environment_for(postgresql_url, landing)
    spec = source.spec()
    run_pipeline(spec, environment)
    source.sql("INSERT INTO items (id, name) VALUES (1, 'old')")
    first = saved(postgresql_url)
    late = RunOptions(source=lambda _saved: MariadbCdcRun(spec.source, source.url, first))
    run_pipeline(spec, environment)
    source.sql("UPDATE items SET name = 'new' WHERE id = 1")
    run_pipeline(spec, environment)
    report = run_pipeline(spec, environment, late)
    assert report.rows_published == 0 and "another run" in report.skipped_reason
    assert target_rows(postgresql_url) == source.rows()


def test_follow_applies_windows_back_to_back_until_stopped(source: MariadbCdcSource, postgresql_url: str, landing: Path) -> None:
    environment = environment_for(postgresql_url, landing)
    source.sql("INSERT INTO items (id, name) VALUES (1, 'a')")
    stop, batches = threading.Event(), []

    def on_batch(report) -> None:
        batches.append(report.rows_read)
        if len(batches) == 1:
            source.sql("UPDATE items SET name = 'b' WHERE id = 1", "INSERT INTO items (id, name) VALUES (2, 'c')")
        elif target_rows(postgresql_url) == source.rows() or len(batches) > 10:
            stop.set()

    follow(source.spec(max_changes=1), environment, stop, on_batch, idle_seconds=0.05)
    assert target_rows(postgresql_url) == source.rows() and len(batches) >= 3


def test_the_spec_wants_database_table_and_no_password_and_the_target_a_merge(
    source: MariadbCdcSource, mariadb_url: str, postgresql_url: str, landing: Path
) -> None:
    from etl_platform.errors import DestinationError, SourceError, SpecError
    from tests.conftest import pipeline

    with pytest.raises(SpecError, match="table"):
        source.spec(table="items")
    with pytest.raises(SpecError, match=r"\$\{MY_DB_URL\}"):
        source.spec(url="mysql+pymysql://root:secret@127.0.0.1:3306/")
    appending = pipeline(source=source.spec().source.model_dump(), destination={"dataset": "raw.items", "write": "append"})
    with pytest.raises(SourceError, match="write: merge"):
        run_pipeline(appending, environment_for(postgresql_url, landing))
    with pytest.raises(DestinationError, match="not to MariaDB"):
        run_pipeline(source.spec(), environment_for(mariadb_url, landing))


def test_a_transaction_the_reader_delivers_again_after_a_reconnect_is_in_the_window_once(source: MariadbCdcSource) -> None:
    """mysql-replication reconnects on a dropped connection and reads on from its auto_position:
    transactions the window holds already are not added again (their old changes would win the merge)."""
    from etl_platform.sources.mariadb_cdc import _Change, _Transaction, _Window

    run = MariadbCdcRun(source.spec().source, source.url, {"table": "t", "gtid": "0-1-10"})
    window = _Window({0: "0-1-10"})
    first = _Transaction("0-1-11", 0, 0, False, [_Change("I", {"id": 1}, 0)])
    again = _Transaction("0-1-11", 0, 0, False, [_Change("I", {"id": 1}, 0)])
    assert run._commit(window, first) and run._commit(window, again)
    assert len(window.changes) == 1 and window.position == "0-1-11"
    assert run._commit(window, _Transaction("0-1-12", 0, 0, False, [_Change("D", {"id": 1}, 0)]))
    assert [c.kind for c in window.changes] == ["I", "D"] and window.position == "0-1-12"


def test_a_preview_reads_nothing_and_a_replay_is_refused(source: MariadbCdcSource, postgresql_url: str, landing: Path) -> None:
    from etl_platform.engine.dry_run import dry_run
    from etl_platform.engine.replay import QuarantineSelection, replay
    from etl_platform.errors import SpecError

    environment = environment_for(postgresql_url, landing)
    run_pipeline(source.spec(), environment)
    stages = dry_run(source.spec(), environment)
    assert len(stages) == 1 and "not read" in stages[0].name and len(stages[0].data) == 0
    with pytest.raises(SpecError, match="overwrite newer ones"):
        replay(source.spec(), environment, QuarantineSelection(source.spec().id))


def test_a_last_transaction_larger_than_the_socket_buffers_is_read_whole_without_a_reconnect(
    source: MariadbCdcSource, caplog: pytest.LogCaptureFixture
) -> None:
    """Read non-blocking, the server reset the connection at the binlog's end and the reader re-read
    this transaction forever; read blocking up to the window's goal, it is one window, once."""
    start = server_gtid(source.url)
    source.sql("INSERT INTO items (id, name) SELECT seq, REPEAT('x', 120) FROM seq_1_to_30000")  # one transaction, ~4 MB
    run = MariadbCdcRun(source.spec(max_changes=1_000_000).source, source.url, {"gtid": start})
    run.types = run._column_types()
    found: list = []
    reader = threading.Thread(target=lambda: found.append(run._read_window()), daemon=True)
    with caplog.at_level("WARNING", logger="pymysqlreplication"):
        reader.start()
        reader.join(timeout=60)
    assert found, "the window did not end within 60 s"
    assert len(found[0].changes) == 30_000 and found[0].position == server_gtid(source.url)
    assert not [record for record in caplog.records if record.name == "pymysqlreplication"]  # no reconnect
