"""Runs of one dataset at the same time, for real (threads, and a killed process), on every warehouse.

Two runs of a merge pipeline, each with its own file, started together as the file-arrival sensor
starts them, both succeed: each keeps its own staging (a run's start-up cleanup drops only staging
whose run is gone) and their publishes take the dataset lock one after the other. A replay that
read its quarantine rows before another publish removed them (a replace of the input, a purge,
another replay) publishes nothing, and `replay` starts over from what the quarantine holds.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from etl_platform.engine.options import Progress, RunOptions, given
from etl_platform.engine.replay import QuarantineSelection, quarantined, replay
from etl_platform.engine.runner import run_pipeline
from etl_platform.sources.quarantine import ReplayRaced, ReplaySource
from etl_platform.warehouse import open_warehouse
from etl_platform.warehouse.base import STAGING_SCHEMA
from etl_platform.warehouse.publish import purge_quarantine
from tests.conftest import environment_for, pipeline, rows, write_csv

ROWS = 3_000
WAIT = 30  # seconds a thread waits for the other before the test fails
TRIES = 3  # races started together are repeated: each try may interleave differently


def merge_spec(dataset: str = "analytics.conc_merge"):
    return pipeline(
        id="conc_merge",
        source={"type": "csv", "path": "*.csv"},
        transforms=[{"cast": {"id": "int", "amount": "float"}}],
        destination={"dataset": dataset, "write": "merge", "primary_key": ["id"]},
        execution={"chunk_rows": 1_000},
    )


def write_batch(landing: Path, name: str, first_id: int, count: int = ROWS) -> str:
    path = write_csv(landing, name, "id,amount\n" + "".join(f"{i},{i % 97}\n" for i in range(first_id, first_id + count)))
    return str(path.resolve())


def staging_tables(url: str) -> list[str]:
    warehouse = open_warehouse(url)
    try:
        return warehouse.list_tables(STAGING_SCHEMA, "analytics__conc_merge__")
    finally:
        warehouse.close()


def in_threads(*calls: Callable[[], object]) -> list[BaseException | None]:
    """Run the calls on threads started together; the error each raised (None: it succeeded)."""
    errors: list[BaseException | None] = [None] * len(calls)
    start = threading.Barrier(len(calls))

    def call(index: int) -> None:
        start.wait()
        try:
            calls[index]()
        except BaseException as error:  # reported by the test's assertion, with its type and message
            errors[index] = error

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return errors


def first_holds_until_second_streams(spec, environment, files: list[str], staged: Callable[[], bool]) -> list:
    """Run `spec` on each file; the first run, staging written, waits until the second run streams.

    By then the second run's start-up cleanup is done, and the first run's staging must still be
    there; the errors each run raised (None: it succeeded) are returned.
    """
    first_staged, second_streams = threading.Event(), threading.Event()

    def first_progress(_: Progress) -> None:
        if first_staged.is_set():
            return
        deadline = time.monotonic() + WAIT
        while not staged() and time.monotonic() < deadline:
            time.sleep(0.02)
        first_staged.set()
        second_streams.wait(WAIT)

    def first() -> None:
        run_pipeline(spec, environment, RunOptions(files=[files[0]], progress=first_progress))

    def second() -> None:
        assert first_staged.wait(WAIT), "the first run never staged"
        run_pipeline(spec, environment, RunOptions(files=[files[1]], progress=lambda _: second_streams.set()))

    return in_threads(first, second)


def test_two_runs_of_one_merge_pipeline_each_keep_their_staging(any_warehouse_url: str, landing: Path) -> None:
    url, environment = any_warehouse_url, environment_for(any_warehouse_url, landing)
    files = [write_batch(landing, "a.csv", 0), write_batch(landing, "b.csv", ROWS)]
    assert first_holds_until_second_streams(merge_spec(), environment, files, lambda: bool(staging_tables(url))) == [None, None]
    assert rows(url, "SELECT count(*) AS n, count(DISTINCT id) AS ids FROM analytics.conc_merge") == [
        {"n": 2 * ROWS, "ids": 2 * ROWS}
    ]
    assert staging_tables(url) == []


def test_two_runs_of_one_lake_pipeline_each_keep_their_staging_folder(duckdb_url: str, landing: Path) -> None:
    lake = landing.parent / "lake" / "lake"
    spec = pipeline(
        id="conc_lake",
        source={"type": "csv", "path": "*.csv"},
        transforms=[{"cast": {"id": "int", "amount": "float"}}],
        destination={"dataset": "lake.events", "write": "append", "format": "parquet"},
        execution={"chunk_rows": 1_000},
    )
    files = [write_batch(landing, "a.csv", 0), write_batch(landing, "b.csv", ROWS)]

    def staged() -> bool:
        return bool(list(lake.glob(".events.staging-*")))

    assert first_holds_until_second_streams(spec, environment_for(duckdb_url, landing), files, staged) == [None, None]
    ids = pq.read_table(lake / "events")["id"].to_pylist()
    assert sorted(ids) == list(range(2 * ROWS))
    assert not list(lake.glob(".*staging*"))


def test_runs_started_together_both_publish(postgresql_url: str, landing: Path) -> None:
    """Both runs create the platform's tables (a new warehouse), the schema and the target at the same moment."""
    environment = environment_for(postgresql_url, landing)
    for attempt in range(TRIES):
        dataset = f"analytics.conc_{attempt}"
        spec = merge_spec(dataset)
        files = [write_batch(landing, f"t{attempt}_{k}.csv", k * ROWS, ROWS // 4) for k in range(2)]
        errors = in_threads(*(lambda f=f, s=spec: run_pipeline(s, environment, RunOptions(files=[f])) for f in files))
        assert errors == [None, None]
        assert rows(postgresql_url, f"SELECT count(DISTINCT id) AS ids, count(*) AS n FROM {dataset}") == [
            {"ids": ROWS // 2, "n": ROWS // 2}
        ]


KILLED_RUN = """
import os, sys
import pyarrow as pa
import pyarrow.parquet as pq
from etl_platform.warehouse import open_warehouse
warehouse = open_warehouse(sys.argv[1])
warehouse.create_schema("_etl_staging")
warehouse.locks.claim(sys.argv[2])
warehouse.create_staging(sys.argv[2], pa.schema([("id", pa.int64())]))
os._exit(9)  # killed: no cleanup, no release
"""


def test_cleanup_drops_staging_of_a_killed_run_and_keeps_a_live_one(any_warehouse_url: str, landing: Path) -> None:
    url = any_warehouse_url
    killed, live = "analytics__conc_merge__deadbeef0001", "analytics__conc_merge__0123456789ab"
    child = subprocess.run([sys.executable, "-c", KILLED_RUN, url, killed], cwd=Path(__file__).parents[1], timeout=60)
    assert child.returncode == 9
    assert staging_tables(url) == [killed]
    holder = open_warehouse(url)  # a run that is still staging
    try:
        holder.locks.claim(live)
        holder.create_staging(live, pa.schema([("id", pa.int64())]))
        write_batch(landing, "a.csv", 0, 10)
        report = run_pipeline(merge_spec(), environment_for(url, landing))
        assert report.rows_published == 10
        assert staging_tables(url) == [live]
    finally:
        holder.close()


# --- replay against other publishes ---------------------------------------------------------------

REPLACE = {"dataset": "analytics.orders", "write": "replace"}


def replace_spec():
    return pipeline(
        id="orders",
        transforms=[{"cast": {"id": "int", "amount": "float"}}],
        destination=REPLACE,
        execution={"chunk_rows": 1_000},
    )


def load_with_bad_rows(url: str, landing: Path, bad_every: int = 3) -> int:
    """Load input.csv with every `bad_every`-th amount unreadable, then fix those records for a replay."""
    lines = [f"{i},{'abc' if i % bad_every == 0 else i}" for i in range(ROWS)]
    write_csv(landing, "input.csv", "id,amount\n" + "\n".join(lines) + "\n")
    report = run_pipeline(replace_spec(), environment_for(url, landing))
    warehouse = open_warehouse(url)
    try:
        warehouse.execute("UPDATE _etl.quarantine SET record = replace(record, '\"abc\"', '\"1.5\"')")
    finally:
        warehouse.close()
    return report.rows_quarantined


def corrected_input(landing: Path) -> None:
    write_csv(landing, "input.csv", "id,amount\n" + "".join(f"{i},{i}\n" for i in range(ROWS)))


def stale_replay(url: str, landing: Path, records: list[dict]) -> None:
    """A replay that read `records` earlier and publishes now."""
    options = RunOptions(source=given(ReplaySource(records)), replay=True)
    run_pipeline(replace_spec(), environment_for(url, landing), options)


def read_selection(url: str) -> list[dict]:
    warehouse = open_warehouse(url)
    try:
        return quarantined(warehouse, QuarantineSelection("orders"))
    finally:
        warehouse.close()


def purge_all(url: str) -> None:
    warehouse = open_warehouse(url)
    try:
        purge_quarantine(warehouse, "", ())
    finally:
        warehouse.close()


@pytest.mark.parametrize("meanwhile", ["replace", "purge", "replay"])
def test_a_replay_whose_rows_left_the_quarantine_meanwhile_publishes_nothing(
    any_warehouse_url: str, landing: Path, meanwhile: str
) -> None:
    """The replay read its rows; then a replace of a corrected input (which supersedes them), a purge,
    or another replay of them published; the replay re-reads them under the dataset lock and stops."""
    url, environment = any_warehouse_url, environment_for(any_warehouse_url, landing)
    quarantined_rows = load_with_bad_rows(url, landing)
    records = read_selection(url)
    assert len(records) == quarantined_rows > 0
    if meanwhile == "replace":
        corrected_input(landing)
        run_pipeline(replace_spec(), environment)
    elif meanwhile == "purge":
        purge_all(url)
    else:
        assert replay(replace_spec(), environment, QuarantineSelection()).rows_published == quarantined_rows
    before = rows(url, "SELECT count(*) AS n FROM analytics.orders")[0]["n"]
    with pytest.raises(ReplayRaced, match="left the quarantine while the replay ran"):
        stale_replay(url, landing, records)
    assert rows(url, "SELECT count(*) AS n, count(DISTINCT id) AS ids FROM analytics.orders") == [{"n": before, "ids": before}]
    assert before == (ROWS if meanwhile != "purge" else ROWS - quarantined_rows)
    assert replay(replace_spec(), environment, QuarantineSelection()) is None  # nothing left to replay


def test_replay_racing_a_replace_never_duplicates(warehouse_url: str, landing: Path) -> None:
    """`etl quarantine replay` and a replace of the corrected input started together, a few times."""
    url, environment = warehouse_url, environment_for(warehouse_url, landing)
    for _ in range(TRIES):
        load_with_bad_rows(url, landing)
        corrected_input(landing)
        errors = in_threads(
            lambda: run_pipeline(replace_spec(), environment),
            lambda: replay(replace_spec(), environment, QuarantineSelection()),
        )
        assert errors == [None, None]
        assert rows(url, "SELECT count(*) AS n, count(DISTINCT id) AS ids, sum(amount) AS total FROM analytics.orders") == [
            {"n": ROWS, "ids": ROWS, "total": float(sum(range(ROWS)))}
        ]
        assert rows(url, "SELECT count(*) AS n FROM _etl.quarantine")[0]["n"] == 0
