"""Change-data-capture benchmark: PostgreSQL (or MariaDB, `--source mariadb`) -> PostgreSQL through a CDC pipeline.

One run creates a source and a target database, and measures:

  throughput   N changes (70% inserts, 25% updates, 5% deletes, in transactions of 1,000) made
               first, then applied by successive runs (`max_changes` per run) until the slot is
               caught up: changes/s = N / seconds of those runs.
  reference    the floor of any pgoutput consumer on the same server: decoding the same N changes
               with `pg_logical_slot_peek_binary_changes` alone, on a second slot, nothing applied.
               The ratio platform/floor says what applying and publishing costs on top of decoding.
  lag          a producer at a steady rate (changes/s) for some seconds while runs loop back to back;
               end-to-end lag of an inserted row = the time it became visible in the target (the
               run's commit) minus its source commit (`clock_timestamp()` at insert): p50 and p95.
  retained     WAL the slot still retains at the end (current WAL LSN minus its restart LSN), and
               its lag behind the server (current minus confirmed LSN).

`--source mariadb` measures the throughput of a mariadb_cdc pipeline the same way (the changes made
in a MariaDB table, applied by runs until the saved GTID is at `@@gtid_binlog_pos`), against the
floor of a Python binlog consumer: mysql-replication reading the same row events, nothing applied.
The lag phase and the retained WAL are PostgreSQL's only (MariaDB retains nothing for a reader).

dlt's pg_replication is not measured: it is a dlt "verified source", not on PyPI (`dlt init
pg_replication` copies it from GitHub, which this machine cannot reach).

    .venv/bin/python benchmarks/bench_cdc.py --changes 1000000 --rate 5000 --seconds 30
    .venv/bin/python benchmarks/bench_cdc.py --source mariadb --changes 200000
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
import uuid
from pathlib import Path

import psycopg
import pymysql

from etl_platform.engine.environment import Environment
from etl_platform.engine.runner import run_pipeline
from etl_platform.spec import spec_from_document

ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=test"
SERVER = "postgresql://postgres@127.0.0.1:5432"


def make_changes(url: str, changes: int, first_id: int) -> int:
    """`changes` changes in transactions of 1,000: 700 inserts, 250 updates, 50 deletes; returns the next id."""
    next_id = first_id
    with psycopg.connect(url, autocommit=True) as connection:
        for _ in range(max(1, changes // 1000)):
            with connection.transaction():
                connection.execute(
                    "INSERT INTO src.events SELECT g, g %% 97, 'payload ' || g, clock_timestamp() "
                    "FROM generate_series(%s::bigint, %s::bigint) g",
                    (next_id, next_id + 699),
                )
                low = max(first_id, next_id - 5000)
                connection.execute(
                    "UPDATE src.events SET v = v + 1 WHERE id IN "
                    "(SELECT id FROM src.events WHERE id >= %s ORDER BY id LIMIT 250)",
                    (low,),
                )
                connection.execute(
                    "DELETE FROM src.events WHERE id IN (SELECT id FROM src.events WHERE id >= %s ORDER BY id LIMIT 50)",
                    (low + 250,),
                )
            next_id += 700
    return next_id


def pipeline(url: str, slot: str, max_changes: int):
    return spec_from_document(
        {
            "id": "bench_cdc",
            "source": {"type": "postgres_cdc", "url": url, "table": "src.events", "slot": slot, "max_changes": max_changes},
            "destination": {"dataset": "analytics.events", "write": "merge", "primary_key": ["id"]},
            "execution": {"chunk_rows": 50_000},
        }
    )


def lag_bytes(url: str, slot: str) -> tuple[int, int]:
    with psycopg.connect(url) as connection:
        return connection.execute(
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint, "
            "pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint FROM pg_replication_slots "
            "WHERE slot_name = %s",
            (slot,),
        ).fetchone()


def catch_up(spec, environment: Environment, url: str, slot: str) -> int:
    runs = 0
    while lag_bytes(url, slot)[1] > 0 or runs == 0:
        report = run_pipeline(spec, environment)
        runs += 1
        if report.rows_read == 0:
            break
    return runs


def floor_seconds(url: str, slot: str, publication: str, changes: int) -> float:
    """Decode the pending changes with the SQL function alone: the reference."""
    with psycopg.connect(url, autocommit=True) as connection:
        started = time.perf_counter()
        count = connection.execute(
            "SELECT count(*) FROM pg_logical_slot_peek_binary_changes(%s, NULL, NULL, 'proto_version', '1', "
            "'publication_names', %s)",
            (slot, publication),
        ).fetchone()[0]
        seconds = time.perf_counter() - started
    assert count >= changes, f"the reference slot decoded {count} messages for {changes} changes"
    return seconds


def steady_lag(spec, environment: Environment, url: str, rate: int, seconds: float, first_id: int) -> list[float]:
    """Produce `rate` changes/s for `seconds` while runs loop; the lag of every inserted row."""
    stop = threading.Event()

    def produce() -> None:
        next_id, started = first_id, time.monotonic()
        while time.monotonic() - started < seconds:
            next_id = make_changes(url, 1000, next_id)
            behind = (next_id - first_id) / 700 * 1000 / rate - (time.monotonic() - started)
            if behind > 0:
                time.sleep(behind)
        stop.set()

    producer = threading.Thread(target=produce)
    producer.start()
    lags: list[float] = []
    seen = first_id - 1
    target = environment.warehouse_url
    with psycopg.connect(target, autocommit=True) as reader:
        while not stop.is_set() or lag_bytes(url, spec.source.slot)[1] > 0:
            report = run_pipeline(spec, environment)
            visible = time.time()
            rows = reader.execute("SELECT id, extract(epoch FROM at) FROM analytics.events WHERE id > %s", (seen,)).fetchall()
            lags += [visible - float(at) for _, at in rows]
            seen = max([seen, *[i for i, _ in rows]])
            if stop.is_set() and report.rows_read == 0:
                break
    producer.join()
    return lags


MARIADB = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": "", "autocommit": True}


def make_mariadb_changes(database: str, changes: int) -> None:
    """The same mix in MariaDB: per transaction 700 inserts, 250 updates, 50 deletes (the sequence engine's seq_ tables)."""
    next_id = 1
    with pymysql.connect(**MARIADB, database=database) as connection, connection.cursor() as cursor:
        for _ in range(max(1, changes // 1000)):
            cursor.execute("BEGIN")
            cursor.execute(
                "INSERT INTO events SELECT seq, seq %% 97, CONCAT('payload ', seq), NOW(6) FROM seq_%s_to_%s",
                (next_id, next_id + 699),
            )
            low = max(1, next_id - 5000)
            cursor.execute("UPDATE events SET v = v + 1 WHERE id >= %s ORDER BY id LIMIT 250", (low,))
            cursor.execute("DELETE FROM events WHERE id >= %s ORDER BY id LIMIT 50", (low + 250,))
            cursor.execute("COMMIT")
            next_id += 700


def mariadb_floor_seconds(spec, url: str, start_gtid: str) -> tuple[float, int]:
    """Read the binlog's row events of the table after `start_gtid` with the pipeline's reader alone: the reference."""
    from pymysqlreplication.event import HeartbeatLogEvent, MariadbGtidEvent, XidEvent

    from etl_platform.sources.mariadb_cdc import MariadbCdcSource, server_gtid

    started, goal = time.perf_counter(), server_gtid(url)
    stream, rows, gtid = MariadbCdcSource(spec.source, url, {"gtid": start_gtid})._stream(), 0, start_gtid
    for event in stream:  # a blocking read, as the source's: it ends at the goal (or a heartbeat at the binlog's end)
        rows += len(getattr(event, "rows", ()))
        if isinstance(event, MariadbGtidEvent):
            gtid = event.gtid
        elif isinstance(event, XidEvent):
            stream.auto_position = gtid  # as the source does: a dropped connection resumes after this transaction
            if gtid == goal:
                break
        elif isinstance(event, HeartbeatLogEvent):
            break
    stream.close()
    return time.perf_counter() - started, rows


def mariadb_main(arguments: argparse.Namespace, tag: str) -> None:
    from etl_platform.sources.mariadb_cdc import gtid_behind, server_gtid

    source_db, target_db = f"bench_cdc_src_{tag}", f"bench_cdc_dst_{tag}"
    url = "mysql+pymysql://root@127.0.0.1:3306/"
    with pymysql.connect(**MARIADB) as admin, admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {source_db}")
        cursor.execute(f"CREATE TABLE {source_db}.events (id bigint PRIMARY KEY, v int, s text, at datetime(6))")
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {target_db}")
    try:
        with tempfile.TemporaryDirectory() as folder:
            environment = Environment.at(f"{SERVER}/{target_db}", Path(folder) / "landing", Path(folder) / "lake")
            spec = spec_from_document(
                {
                    "id": "bench_cdc",
                    "source": {
                        "type": "mariadb_cdc",
                        "url": url,
                        "table": f"{source_db}.events",
                        "max_changes": arguments.max_changes,
                    },
                    "destination": {"dataset": "analytics.events", "write": "merge", "primary_key": ["id"]},
                    "execution": {"chunk_rows": 50_000},
                }
            )
            run_pipeline(spec, environment)  # the (empty) snapshot saves the GTID the binlog continues from
            start = server_gtid(url)
            made = time.perf_counter()
            make_mariadb_changes(source_db, arguments.changes)
            print(f"made {arguments.changes:,} changes in {time.perf_counter() - made:.1f} s")
            floor, decoded = mariadb_floor_seconds(spec, url, start)
            started, runs = time.perf_counter(), 0
            while True:
                report = run_pipeline(spec, environment)
                runs += 1
                if report.rows_read == 0 or gtid_behind(report_gtid(environment), server_gtid(url)) == 0:
                    break
            seconds = time.perf_counter() - started
            print(f"platform: {arguments.changes / seconds:,.0f} changes/s ({seconds:.1f} s, {runs} runs)")
            print(f"reference (mysql-replication, read only): {decoded / floor:,.0f} rows/s ({floor:.1f} s, {decoded:,} rows)")
            print(f"ratio platform/reference time: {seconds / floor:.1f}x")
    finally:
        with pymysql.connect(**MARIADB) as admin, admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {source_db}")
        with psycopg.connect(ADMIN, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {target_db} WITH (FORCE)")


def report_gtid(environment: Environment) -> str:
    """The GTID saved with the last publish."""
    with psycopg.connect(environment.warehouse_url) as connection:
        row = connection.execute("SELECT position FROM _etl.source_checkpoint WHERE pipeline = 'bench_cdc'").fetchone()
    return json.loads(row[0])["gtid"]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=1_000_000)
    parser.add_argument("--max-changes", type=int, default=200_000, help="changes per run (the pipeline's max_changes)")
    parser.add_argument("--rate", type=int, default=5000, help="steady changes/s of the lag phase")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of the lag phase")
    parser.add_argument("--source", choices=["postgres", "mariadb"], default="postgres", help="the source database")
    arguments = parser.parse_args()
    tag = uuid.uuid4().hex[:8]
    if arguments.source == "mariadb":
        mariadb_main(arguments, tag)
        return
    source_db, target_db = f"bench_cdc_src_{tag}", f"bench_cdc_dst_{tag}"
    slot, reference_slot = f"bench_cdc_{tag}", f"bench_cdc_ref_{tag}"
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {source_db}")
        admin.execute(f"CREATE DATABASE {target_db}")
    url = f"{SERVER}/{source_db}"
    try:
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute("CREATE SCHEMA src")
            connection.execute("CREATE TABLE src.events (id bigint PRIMARY KEY, v int, s text, at timestamptz)")
            connection.execute(f"CREATE PUBLICATION {slot} FOR TABLE src.events")
        with tempfile.TemporaryDirectory() as folder:
            environment = Environment.at(f"{SERVER}/{target_db}", Path(folder) / "landing", Path(folder) / "lake")
            spec = pipeline(url, slot, arguments.max_changes)
            spec = spec.model_copy(update={"source": spec.source.model_copy(update={"publication": slot})})
            run_pipeline(spec, environment)  # the (empty) snapshot creates the slot
            with psycopg.connect(url, autocommit=True) as connection:
                connection.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (reference_slot,))
            made = time.perf_counter()
            next_id = make_changes(url, arguments.changes, 1)
            print(f"made {arguments.changes:,} changes in {time.perf_counter() - made:.1f} s")
            floor = floor_seconds(url, reference_slot, slot, arguments.changes)
            with psycopg.connect(url, autocommit=True) as connection:
                connection.execute("SELECT pg_drop_replication_slot(%s)", (reference_slot,))
            started = time.perf_counter()
            runs = catch_up(spec, environment, url, slot)
            seconds = time.perf_counter() - started
            print(f"platform: {arguments.changes / seconds:,.0f} changes/s ({seconds:.1f} s, {runs} runs)")
            print(f"reference (decode only): {arguments.changes / floor:,.0f} changes/s ({floor:.1f} s)")
            print(f"ratio platform/reference time: {seconds / floor:.1f}x")
            lags = steady_lag(spec, environment, url, arguments.rate, arguments.seconds, next_id + 1_000_000)
            print(
                f"lag at {arguments.rate} changes/s for {arguments.seconds:.0f} s: p50 {percentile(lags, 0.5):.2f} s, "
                f"p95 {percentile(lags, 0.95):.2f} s ({len(lags):,} inserted rows)"
            )
            retained, behind = lag_bytes(url, slot)
            print(f"slot at the end: {retained:,} bytes of WAL retained, {behind:,} bytes behind the server")
    finally:
        with psycopg.connect(ADMIN, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name IN (%s, %s)",
                (slot, reference_slot),
            )
            admin.execute(f"DROP DATABASE IF EXISTS {source_db} WITH (FORCE)")
            admin.execute(f"DROP DATABASE IF EXISTS {target_db} WITH (FORCE)")


if __name__ == "__main__":
    main()
