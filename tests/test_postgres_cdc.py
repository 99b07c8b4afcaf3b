"""PostgreSQL change data capture against the real server: snapshot, change windows, deletes, drift, restarts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from etl_platform.engine.options import RunOptions
from etl_platform.engine.runner import run_pipeline
from etl_platform.errors import SourceError
from etl_platform.quality.audit import QualityGateFailed
from etl_platform.sources.pgoutput import lsn_number
from etl_platform.sources.postgres_cdc import PostgresCdcSource
from tests.cdc_support import CdcSource, cdc_source, target_rows
from tests.conftest import environment_for, rows


@pytest.fixture
def source() -> Iterator[CdcSource]:
    with cdc_source() as created:
        yield created


def test_snapshot_then_inserts_updates_and_deletes_are_reproduced_row_by_row(
    source: CdcSource, postgresql_url: str, landing: Path
) -> None:
    source.sql(
        "INSERT INTO src.items SELECT g, 'item ' || g, g * 1.5, '2026-01-01 00:00+00'::timestamptz + g * interval '1h', "
        "g % 2 = 0 FROM generate_series(1, 50) g",
        "INSERT INTO src.items VALUES (51, E'tab\\there\\nnew line \\\\ back', NULL, NULL, NULL)",
    )
    environment = environment_for(postgresql_url, landing)
    first = run_pipeline(source.spec(), environment)
    assert first.rows_published == 51
    assert target_rows(postgresql_url) == source.rows()

    source.sql(
        "INSERT INTO src.items VALUES (60, 'new', 1, now(), true)",
        "UPDATE src.items SET name = 'renamed', price = 9.99 WHERE id <= 10",
        "DELETE FROM src.items WHERE id BETWEEN 40 AND 45",
        # several changes to one key in one window: the last one wins
        "UPDATE src.items SET name = 'twice' WHERE id = 60",
        "DELETE FROM src.items WHERE id = 60",
        "INSERT INTO src.items VALUES (60, 'back again', 2, NULL, false)",
        "UPDATE src.items SET id = 70 WHERE id = 20",  # a changed primary key deletes the old one
    )
    second = run_pipeline(source.spec(), environment)
    assert second.rows_published > 0
    assert target_rows(postgresql_url) == source.rows()
    saved = rows(postgresql_url, "SELECT position FROM _etl.source_checkpoint WHERE pipeline = 'items_cdc'")
    position = json.loads(saved[0]["position"])
    assert position["slot"] == source.slot
    assert lsn_number(source.confirmed_lsn()) == position["lsn"]  # acknowledged after the commit


def test_small_windows_apply_whole_transactions_until_the_target_matches(
    source: CdcSource, postgresql_url: str, landing: Path
) -> None:
    environment = environment_for(postgresql_url, landing)
    spec = source.spec(max_changes=5)
    run_pipeline(spec, environment)
    for start in range(0, 40, 4):
        source.sql(f"INSERT INTO src.items SELECT g, 'n' FROM generate_series({start}, {start + 3}) g")
        source.sql(f"UPDATE src.items SET name = 'u' WHERE id = {start}")
    source.sql("DELETE FROM src.items WHERE id % 3 = 0")
    runs = 0
    while target_rows(postgresql_url) != source.rows():
        run_pipeline(spec, environment)
        runs += 1
        assert runs < 40
    assert runs > 2  # bounded windows: several runs were needed
    idle = run_pipeline(spec, environment)
    assert idle.rows_published == 0


def test_soft_deletes_keep_the_row_with_its_deletion_time(source: CdcSource, postgresql_url: str, landing: Path) -> None:
    source.sql("INSERT INTO src.items VALUES (1, 'a', 1, NULL, true), (2, 'b', 2, NULL, true)")
    environment = environment_for(postgresql_url, landing)
    spec = source.spec(deletes="soft")
    run_pipeline(spec, environment)
    source.sql("DELETE FROM src.items WHERE id = 1")
    run_pipeline(spec, environment)
    kept = rows(postgresql_url, "SELECT id, name, _deleted_at FROM analytics.items ORDER BY id")
    assert [(r["id"], r["name"]) for r in kept] == [(1, "a"), (2, "b")]
    assert kept[0]["_deleted_at"] is not None and kept[1]["_deleted_at"] is None


def test_a_schema_change_mid_stream_goes_to_the_drift_policy_and_the_position_stays(
    source: CdcSource, postgresql_url: str, landing: Path
) -> None:
    environment = environment_for(postgresql_url, landing)
    source.sql("INSERT INTO src.items VALUES (1, 'a', 1, NULL, true)")
    strict = source.spec(fields={"schema": {"on_drift": "fail"}})
    run_pipeline(strict, environment)
    source.sql(
        "INSERT INTO src.items VALUES (2, 'b', 2, NULL, true)",
        "ALTER TABLE src.items ADD COLUMN colour text",
        "INSERT INTO src.items VALUES (3, 'c', 3, NULL, true, 'red')",
    )
    before_change = run_pipeline(strict, environment)  # the window stops before the new schema
    assert before_change.rows_published == 1
    position = source.confirmed_lsn()
    with pytest.raises(QualityGateFailed, match="schema drift"):
        run_pipeline(strict, environment)
    assert source.confirmed_lsn() == position  # nothing acknowledged
    evolving = source.spec(fields={"schema": {"on_drift": "evolve"}})
    run_pipeline(evolving, environment)
    assert rows(postgresql_url, "SELECT id, colour FROM analytics.items ORDER BY id") == [
        {"id": 1, "colour": None},
        {"id": 2, "colour": None},
        {"id": 3, "colour": "red"},
    ]
    versions = rows(postgresql_url, "SELECT version, columns FROM _etl.schema_versions ORDER BY version")
    assert [v["version"] for v in versions] == [1, 2]  # the Relation message's new schema, registered with its publish
    assert "colour" in json.loads(versions[1]["columns"]) and "colour" not in json.loads(versions[0]["columns"])


def test_a_truncate_mid_stream_empties_the_target_at_its_position_and_reports_it(
    source: CdcSource, postgresql_url: str, landing: Path
) -> None:
    environment = environment_for(postgresql_url, landing)
    source.sql("INSERT INTO src.items VALUES (1, 'a')")
    run_pipeline(source.spec(), environment)
    source.sql(
        "INSERT INTO src.items VALUES (2, 'b')",
        "BEGIN; INSERT INTO src.items VALUES (4, 'gone with the truncate'); TRUNCATE src.items; "
        "INSERT INTO src.items VALUES (3, 'c'); COMMIT",
        "UPDATE src.items SET name = 'after' WHERE id = 3",
    )
    before = run_pipeline(source.spec(), environment)  # the window ends before the truncate
    assert before.rows_published == 1 and before.truncation is None
    assert [r[0] for r in target_rows(postgresql_url)] == [1, 2]
    truncated = run_pipeline(source.spec(), environment)  # starts with it: emptied, then the changes after it
    assert truncated.truncation is not None and "truncated at" in truncated.truncation
    assert target_rows(postgresql_url) == source.rows() == [(3, "after", None, None, None)]
    source.sql("TRUNCATE src.items")  # a window of only a truncate still publishes the emptying
    alone = run_pipeline(source.spec(), environment)
    assert alone.truncation is not None and target_rows(postgresql_url) == [] == source.rows()


def test_a_truncate_with_soft_deletes_marks_every_row_deleted(source: CdcSource, postgresql_url: str, landing: Path) -> None:
    environment = environment_for(postgresql_url, landing)
    spec = source.spec(deletes="soft")
    source.sql("INSERT INTO src.items VALUES (1, 'a'), (2, 'b')")
    run_pipeline(spec, environment)
    source.sql("TRUNCATE src.items", "INSERT INTO src.items VALUES (2, 'again')")
    run_pipeline(spec, environment)
    kept = rows(postgresql_url, "SELECT id, name, _deleted_at IS NOT NULL AS gone FROM analytics.items ORDER BY id")
    assert kept == [{"id": 1, "name": "a", "gone": True}, {"id": 2, "name": "again", "gone": False}]


def test_row_rules_quarantine_bad_changes_with_their_lsn_and_a_breaker_trip_keeps_the_position(
    source: CdcSource, postgresql_url: str, landing: Path
) -> None:
    environment = environment_for(postgresql_url, landing)
    rules = {"rules": [{"rule": "NotNull", "field": "name"}]}
    spec = source.spec(fields={"quality": rules})
    run_pipeline(spec, environment)
    source.sql("INSERT INTO src.items VALUES (1, 'a'), (2, NULL), (3, 'c')", "DELETE FROM src.items WHERE id = 3")
    report = run_pipeline(spec, environment)
    assert report.rows_quarantined == 1  # the delete carries no name and is not judged by the rule
    kept = rows(postgresql_url, "SELECT source_file, source_line FROM _etl.quarantine")
    assert len(kept) == 1 and "line = LSN" in kept[0]["source_file"] and kept[0]["source_line"] > 0
    assert [r[0] for r in target_rows(postgresql_url)] == [1]

    tripping = source.spec(fields={"quality": {**rules, "circuit_breaker": {"error_threshold": 10, "min_record_count": 1}}})
    position = source.confirmed_lsn()
    source.sql("INSERT INTO src.items VALUES (4, NULL), (5, NULL)")
    with pytest.raises(QualityGateFailed):
        run_pipeline(tripping, environment)
    assert source.confirmed_lsn() == position


def test_a_lost_slot_says_to_take_a_new_snapshot(source: CdcSource, postgresql_url: str, landing: Path) -> None:
    environment = environment_for(postgresql_url, landing)
    run_pipeline(source.spec(), environment)
    source.sql(f"SELECT pg_drop_replication_slot('{source.slot}')")
    with pytest.raises(SourceError, match="--full-refresh"):
        run_pipeline(source.spec(), environment)
    source.sql("INSERT INTO src.items VALUES (1, 'a')")
    run_pipeline(source.spec(), environment, RunOptions(full_refresh=True))
    assert target_rows(postgresql_url) == source.rows()


def test_the_slot_lag_check_reports_the_wal_held_after_the_run_against_its_threshold(
    source: CdcSource, postgresql_url: str, landing: Path
) -> None:
    environment = environment_for(postgresql_url, landing)
    source.sql("INSERT INTO src.items VALUES (1, 'a')")
    report = run_pipeline(source.spec(lag_threshold_bytes=1 << 30), environment)
    lag = [c for c in report.checks if c.name == "replication_slot_lag"]
    assert len(lag) == 1 and lag[0].passed and "bytes of WAL behind" in lag[0].detail
    # An idle window still moves the slot (the heartbeat): the WAL others write is not held.
    source.sql("CREATE TABLE src.other (n int)", "INSERT INTO src.other SELECT generate_series(1, 20000)")
    before = lsn_number(source.confirmed_lsn())
    idle = run_pipeline(source.spec(lag_threshold_bytes=1), environment)
    assert idle.rows_published == 0 and lsn_number(source.confirmed_lsn()) > before
    assert "replication_slot_lag" in [c.name for c in idle.checks]


def test_two_runs_from_one_position_publish_the_window_once(source: CdcSource, postgresql_url: str, landing: Path) -> None:
    environment = environment_for(postgresql_url, landing)
    spec = source.spec()
    run_pipeline(spec, environment)
    source.sql("INSERT INTO src.items VALUES (1, 'old')")
    # A run that read the window, and another that read it too and published first (then a newer change).
    saved = json.loads(rows(postgresql_url, "SELECT position FROM _etl.source_checkpoint")[0]["position"])
    late = RunOptions(source=lambda _saved: PostgresCdcSource(spec.source, source.url, saved))
    run_pipeline(spec, environment)
    source.sql("UPDATE src.items SET name = 'new' WHERE id = 1")
    run_pipeline(spec, environment)
    report = run_pipeline(spec, environment, late)
    assert report.rows_published == 0 and "another run" in report.skipped_reason
    assert target_rows(postgresql_url) == source.rows()


def test_an_adopted_publication_with_other_tables_gives_only_the_pipelines_table(
    source: CdcSource, postgresql_url: str, landing: Path
) -> None:
    source.sql(
        "CREATE TABLE src.other (id int PRIMARY KEY, name text)",
        f"CREATE PUBLICATION {source.publication} FOR TABLE src.items, src.other",
    )
    environment = environment_for(postgresql_url, landing)
    run_pipeline(source.spec(), environment)
    source.sql("INSERT INTO src.other VALUES (100, 'elsewhere')", "INSERT INTO src.items VALUES (1, 'here')")
    run_pipeline(source.spec(), environment)
    assert target_rows(postgresql_url) == source.rows() == [(1, "here", None, None, None)]


def test_a_preview_leaves_the_slot_and_a_replay_is_refused(source: CdcSource, postgresql_url: str, landing: Path) -> None:
    """A dry run reads no slot (reading it outside a run re-created it, and the changes since the saved
    LSN were lost); a quarantined change is not replayed over the row's later changes."""
    from etl_platform.engine.dry_run import dry_run
    from etl_platform.engine.replay import QuarantineSelection, replay
    from etl_platform.errors import SpecError

    environment = environment_for(postgresql_url, landing)
    run_pipeline(source.spec(), environment)
    source.sql("INSERT INTO src.items VALUES (7, 'while previewing')")
    stages = dry_run(source.spec(), environment)
    assert len(stages) == 1 and "not read" in stages[0].name and len(stages[0].data) == 0
    run_pipeline(source.spec(), environment)
    assert target_rows(postgresql_url) == source.rows()
    with pytest.raises(SpecError, match="overwrite newer ones"):
        replay(source.spec(), environment, QuarantineSelection(source.spec().id))
