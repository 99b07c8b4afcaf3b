"""Exactly once for files (issue 21 items 1, 2 and 7; issue 13 item 3): the per-file append ledger.

Each test is a landing-zone day that duplicated or lost rows before: a file touched while a new
one arrives, the same bytes under another name, a file that grew, a file rewritten, a dropped
target, and a warehouse whose ledger predates per-file entries.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from etl_platform.engine.options import RunOptions
from etl_platform.engine.runner import run_pipeline
from etl_platform.errors import DestinationError, SpecError
from etl_platform.state.appends import ChangedFile
from tests.conftest import environment_for, pipeline, rows, write_csv

CASTS = [{"cast": {"id": "int", "amount": "float"}}]


def drops(**destination) -> dict:
    """An append of every `drops/*.csv` into analytics.drops."""
    return {
        "source": {"type": "csv", "path": "drops/*.csv"},
        "transforms": CASTS,
        "destination": {"dataset": "analytics.drops", "write": "append", **destination},
    }


def csv_lines(first: int, last: int) -> str:
    return "".join(f"{i},{i}.5\n" for i in range(first, last + 1))


def target_ids(url: str) -> list[int]:
    return [r["id"] for r in rows(url, "SELECT id FROM analytics.drops ORDER BY id")]


def touch(path: Path) -> None:
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))


def test_touching_an_appended_file_while_a_new_one_arrives_appends_only_the_new_one(warehouse_url: str, landing: Path) -> None:
    environment = environment_for(warehouse_url, landing)
    spec = pipeline(**drops())
    old = write_csv(landing, "drops/f1.csv", "id,amount\n" + csv_lines(1, 100))
    run_pipeline(spec, environment)
    touch(old)  # the producer re-uploads yesterday's file (same bytes) ...
    write_csv(landing, "drops/f2.csv", "id,amount\n" + csv_lines(101, 110))  # ... while today's arrives
    report = run_pipeline(spec, environment)
    assert (report.source_files, report.rows_published, report.target_rows) == ([str(landing / "drops/f2.csv")], 10, 110)
    assert target_ids(warehouse_url) == list(range(1, 111))
    again = run_pipeline(spec, environment)  # the touched file is now recorded as processed: nothing is hashed again
    assert again.skipped_reason.startswith("no new or changed files")


def test_the_same_content_under_a_new_name_is_not_appended_again(warehouse_url: str, landing: Path) -> None:
    environment = environment_for(warehouse_url, landing)
    spec = pipeline(**drops())
    write_csv(landing, "drops/a.csv", "id,amount\n" + csv_lines(1, 5))
    run_pipeline(spec, environment)
    (landing / "drops/a.csv").rename(landing / "drops/renamed.csv")
    write_csv(landing, "drops/copy.csv", "id,amount\n" + csv_lines(1, 5))
    report = run_pipeline(spec, environment)
    assert report.rows_published == 0 and "content already appended to analytics.drops" in report.skipped_reason
    # Two new files with the same bytes in one load: read once.
    write_csv(landing, "drops/twin1.csv", "id,amount\n" + csv_lines(6, 7))
    write_csv(landing, "drops/twin2.csv", "id,amount\n" + csv_lines(6, 7))
    twins = run_pipeline(spec, environment)
    assert twins.rows_published == 2 and target_ids(warehouse_url) == [1, 2, 3, 4, 5, 6, 7]


def test_a_grown_file_appends_only_its_new_lines(warehouse_url: str, landing: Path) -> None:
    environment = environment_for(warehouse_url, landing)
    spec = pipeline(**drops())
    grown = write_csv(landing, "drops/day.csv", "id,amount\n" + csv_lines(1, 50))
    run_pipeline(spec, environment)
    grown.write_text("id,amount\n" + csv_lines(1, 50) + "51,oops\n" + csv_lines(52, 52))
    report = run_pipeline(spec, environment)
    assert (report.rows_read, report.rows_published, report.rows_quarantined) == (2, 1, 1)
    assert target_ids(warehouse_url) == [*range(1, 51), 52]
    # The quarantined value is on the line an editor shows: the header is line 1, id 51 line 52.
    assert rows(warehouse_url, "SELECT source_line FROM _etl.quarantine") == [{"source_line": 52}]
    # A last line without a line break, continued later, is a change, not growth; a new line after it is growth.
    grown.write_text("id,amount\n" + csv_lines(1, 50) + "51,oops\n" + csv_lines(52, 52) + "53,53.5")
    assert run_pipeline(spec, environment).rows_published == 1
    grown.write_text("id,amount\n" + csv_lines(1, 50) + "51,oops\n" + csv_lines(52, 53) + "54,54.5\n")
    assert run_pipeline(spec, environment).rows_published == 1
    assert target_ids(warehouse_url) == [*range(1, 51), 52, 53, 54]


def test_a_grown_json_lines_file_appends_only_its_new_records(duckdb_url: str, landing: Path) -> None:
    environment = environment_for(duckdb_url, landing)
    spec = pipeline(source={"type": "jsonl", "path": "feed/*.jsonl"}, destination={"dataset": "analytics.feed"})
    feed = landing / "feed" / "events.jsonl"
    feed.parent.mkdir()
    feed.write_text("".join(json.dumps({"id": i}) + "\n" for i in range(3)))
    run_pipeline(spec, environment)
    feed.write_text("".join(json.dumps({"id": i}) + "\n" for i in range(3)) + "not json\n" + json.dumps({"id": 3}) + "\n")
    report = run_pipeline(spec, environment)
    assert (report.rows_published, report.rows_quarantined) == (1, 1)
    assert rows(duckdb_url, "SELECT source_line FROM _etl.quarantine") == [{"source_line": 4}]
    assert sorted(r["id"] for r in rows(duckdb_url, "SELECT id FROM analytics.feed")) == ["0", "1", "2", "3"]


def test_a_rewritten_file_fails_by_default_naming_the_file_and_the_choices(warehouse_url: str, landing: Path) -> None:
    environment = environment_for(warehouse_url, landing)
    day = write_csv(landing, "drops/day.csv", "id,amount\n" + csv_lines(1, 3))
    run_pipeline(pipeline(**drops()), environment)
    day.write_text("id,amount\n1,1.5\n2,99.0\n3,3.5\n")
    with pytest.raises(ChangedFile, match=r"drops/day\.csv: its content changed .*`reload`.*`append`"):
        run_pipeline(pipeline(**drops()), environment)
    assert rows(warehouse_url, "SELECT sum(amount) AS s FROM analytics.drops")[0]["s"] == 7.5


def test_on_changed_file_append_appends_the_rewritten_file_again(duckdb_url: str, landing: Path) -> None:
    environment = environment_for(duckdb_url, landing)
    spec = pipeline(**drops(on_changed_file="append"))
    day = write_csv(landing, "drops/day.csv", "id,amount\n" + csv_lines(1, 3))
    run_pipeline(spec, environment)
    day.write_text("id,amount\n" + csv_lines(4, 5))
    assert run_pipeline(spec, environment).rows_published == 2
    assert target_ids(duckdb_url) == [1, 2, 3, 4, 5]


def test_on_changed_file_reload_replaces_the_rows_of_that_file_only(warehouse_url: str, landing: Path) -> None:
    environment = environment_for(warehouse_url, landing)
    spec = pipeline(**drops(on_changed_file="reload"))
    day = write_csv(landing, "drops/day.csv", "id,amount\n" + csv_lines(1, 3))
    write_csv(landing, "drops/other.csv", "id,amount\n" + csv_lines(10, 11))
    run_pipeline(spec, environment)
    day.write_text("id,amount\n" + csv_lines(1, 2) + "3,30.0\n")
    report = run_pipeline(spec, environment)
    assert (report.rows_published, report.target_rows) == (3, 5)
    published = rows(warehouse_url, "SELECT id, amount, _etl_source_file FROM analytics.drops ORDER BY id")
    assert [(r["id"], r["amount"]) for r in published] == [(1, 1.5), (2, 2.5), (3, 30.0), (10, 10.5), (11, 11.5)]
    assert {r["_etl_source_file"] for r in published[:3]} == {str(day)}
    # The file's rows and its ledger entry went together: a second reload is again exact.
    day.write_text("id,amount\n" + csv_lines(1, 1))
    assert run_pipeline(spec, environment).target_rows == 3
    day.write_text("id,amount\n")  # rewritten to no rows at all: its rows go
    assert run_pipeline(spec, environment).rows_published == 0
    assert target_ids(warehouse_url) == [10, 11]


def test_a_dropped_append_target_is_refused_at_once_naming_full_refresh(warehouse_url: str, landing: Path) -> None:
    environment = environment_for(warehouse_url, landing)
    spec = pipeline(**drops())
    day = write_csv(landing, "drops/day.csv", "id,amount\n" + csv_lines(1, 3))
    run_pipeline(spec, environment)
    from etl_platform.warehouse import open_warehouse

    warehouse = open_warehouse(warehouse_url)
    warehouse.execute("DROP TABLE analytics.drops")
    warehouse.close()
    touch(day)
    write_csv(landing, "drops/new.csv", "id,amount\n" + csv_lines(4, 4))
    with pytest.raises(DestinationError, match=r"analytics\.drops does not exist.*--full-refresh"):
        run_pipeline(spec, environment)
    refreshed = run_pipeline(spec, environment, RunOptions(full_refresh=True))
    assert refreshed.target_rows == 4 and target_ids(warehouse_url) == [1, 2, 3, 4]
    assert run_pipeline(spec, environment).skipped_reason.startswith("no new or changed files")


def test_a_ledger_from_before_per_file_entries_is_adopted(warehouse_url: str, landing: Path) -> None:
    """A warehouse whose ledger has one entry per load (the set of files read), as the old platform wrote it."""
    environment = environment_for(warehouse_url, landing)
    spec = pipeline(**drops())
    old = write_csv(landing, "drops/old.csv", "id,amount\n" + csv_lines(1, 3))
    run_pipeline(spec, environment)
    from etl_platform.warehouse import open_warehouse

    warehouse = open_warehouse(warehouse_url)
    warehouse.execute("UPDATE _etl.load_ledger SET fingerprint = 'set-of-files', file_url = NULL")
    warehouse.execute("UPDATE _etl.file_state SET content = NULL")
    warehouse.close()
    touch(old)
    write_csv(landing, "drops/new.csv", "id,amount\n" + csv_lines(4, 4))
    report = run_pipeline(spec, environment)
    assert report.rows_published == 1 and target_ids(warehouse_url) == [1, 2, 3, 4]
    ledger = rows(warehouse_url, "SELECT file_url FROM _etl.load_ledger ORDER BY file_url")
    assert [r["file_url"] for r in ledger] == [str(landing / "drops/new.csv"), str(old)]


@pytest.mark.parametrize(
    ("destination", "transforms", "message"),
    [
        ({"write": "merge", "primary_key": ["id"], "on_changed_file": "append"}, [], "applies to write: append"),
        ({"format": "parquet", "on_changed_file": "reload"}, [], "deletes a file's earlier rows from a warehouse table"),
        ({"on_changed_file": "reload"}, [{"deduplicate": {"keys": ["id"]}}], "needs to know each row's file"),
        ({"on_changed_file": "sometimes"}, [], "fail.*reload.*append"),
    ],
)
def test_on_changed_file_is_validated(destination: dict, transforms: list, message: str) -> None:
    with pytest.raises((SpecError, ValueError), match=message):
        pipeline(source={"type": "csv", "path": "x/*.csv"}, transforms=transforms, destination={"dataset": "a.b", **destination})


def test_a_reload_reads_the_copies_that_were_skipped_as_duplicates_of_its_old_content(duckdb_url: str, landing: Path) -> None:
    """Found by the state machine: the copy's rows were the original's, which the reload deletes."""
    environment = environment_for(duckdb_url, landing)
    spec = pipeline(**drops(on_changed_file="reload"))
    original = write_csv(landing, "drops/a.csv", "id,amount\n" + csv_lines(1, 2))
    run_pipeline(spec, environment)
    write_csv(landing, "drops/copy.csv", "id,amount\n" + csv_lines(1, 2))
    assert run_pipeline(spec, environment).rows_published == 0
    original.write_text("id,amount\n" + csv_lines(3, 3))
    report = run_pipeline(spec, environment)
    assert report.source_files == [str(original), str(landing / "drops/copy.csv")]
    assert target_ids(duckdb_url) == [1, 2, 3]
