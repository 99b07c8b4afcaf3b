"""Load benchmark, MariaDB target (`bench_load.py --target mariadb`): the platform against hand-written MariaDB.

The same seeded orders CSV as bench_load.py, and four contenders, each into a new database:

  raw LOAD DATA    LOAD DATA LOCAL INFILE into an all-TEXT table: no typing, no dedup; the ceiling.
  hand merge       LOAD DATA into a temporary text table, then one INSERT ... SELECT with REGEXP-guarded
                   casts, the `amount > 0` filter, the salted SHA-256 email mask and the last row per
                   key (row_number), ON DUPLICATE KEY UPDATE: the typed first load written by hand.
  platform append  run_pipeline (cast, filter, mask) with write: append into a MariaDB warehouse.
  platform merge   the same with write: merge, primary_key [order_id].

Platform runs are child processes timed by their own clock around run_pipeline, as in bench_load.py.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pymysql

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_load import (  # the sibling benchmark, run as a script
    APPEND_TARGET,
    COLUMNS,
    DATASETS,
    MERGE_TARGET,
    PII_SALT,
    PROJECT_DIR,
    Result,
    ensure_input_file,
    peak_rss_mb,
    platform_document,
    watch_peak_rss,
)

SERVER = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}
_INT = "CASE WHEN {c} REGEXP '^-?[0-9]+$' THEN CAST({c} AS SIGNED) END"
_SAFE_CASTS = {
    "order_id": _INT.format(c="order_id"),
    "customer_id": _INT.format(c="customer_id"),
    "product_id": _INT.format(c="product_id"),
    "quantity": _INT.format(c="quantity"),
    "amount": r"CASE WHEN amount REGEXP '^-?[0-9]+(\\.[0-9]+)?$' THEN CAST(amount AS DOUBLE) END",
    "currency": "currency",
    "email": f"SHA2(CONCAT('{PII_SALT}', email), 256)",
    "created_at": "CASE WHEN created_at REGEXP '^[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}:[0-9]{2}$' "
    "THEN CAST(REPLACE(created_at, 'T', ' ') AS DATETIME(6)) END",
}
_TYPED = "order_id bigint PRIMARY KEY, customer_id bigint, product_id bigint, quantity bigint, amount double, "
_TYPED += "currency longtext, email longtext, created_at datetime(6)"
_CSV = "FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' LINES TERMINATED BY '\\n' IGNORE 1 LINES"


def connect(database: str | None = None) -> pymysql.Connection:
    return pymysql.connect(**SERVER, database=database, local_infile=True, autocommit=True)


def count_rows(table: str) -> int | None:
    with connect() as conn, conn.cursor() as cursor:
        try:
            cursor.execute(f"SELECT count(*) FROM {table}")
        except pymysql.err.ProgrammingError:
            return None
        return cursor.fetchone()[0]


def bench_raw_load(database: str, path: Path, rows: int) -> Result:
    table = f"{database}.orders_raw"
    with connect() as conn, conn.cursor() as cursor:
        cursor.execute(f"CREATE TABLE {table} ({', '.join(f'{c} longtext' for c in COLUMNS)})")
        started = time.perf_counter()
        cursor.execute(f"LOAD DATA LOCAL INFILE '{path}' INTO TABLE {table} {_CSV} ({', '.join(COLUMNS)})")
        conn.commit()
        seconds = time.perf_counter() - started
    return Result("raw LOAD DATA", rows, seconds, target_rows=count_rows(table))


def hand_merge_sql(target: str, staging: str) -> str:
    columns = ", ".join(COLUMNS)
    casts = ", ".join(f"{expression} AS {column}" for column, expression in _SAFE_CASTS.items())
    parsed = " AND ".join(f"{c} IS NOT NULL" for c, e in _SAFE_CASTS.items() if e.startswith("CASE"))
    updates = ", ".join(f"{c} = VALUES({c})" for c in COLUMNS if c != "order_id")
    return (
        f"INSERT INTO {target} ({columns}) SELECT {columns} FROM ("
        f"SELECT {columns}, row_number() OVER (PARTITION BY order_id ORDER BY line DESC) AS rank_in_key FROM "
        f"(SELECT line, {casts} FROM {staging}) typed WHERE {parsed} AND amount > 0) latest "
        f"WHERE rank_in_key = 1 ON DUPLICATE KEY UPDATE {updates}"
    )


def bench_hand_merge(database: str, path: Path, rows: int) -> Result:
    target, staging = f"{database}.orders_ref_merge", "orders_ref_stage"
    with connect(database) as conn, conn.cursor() as cursor:
        cursor.execute(f"CREATE TABLE {target} ({_TYPED})")
        started = time.perf_counter()
        cursor.execute("START TRANSACTION")
        text = ", ".join(f"{c} longtext" for c in COLUMNS)
        cursor.execute(f"CREATE TEMPORARY TABLE {staging} (line bigint AUTO_INCREMENT PRIMARY KEY, {text})")
        cursor.execute(f"LOAD DATA LOCAL INFILE '{path}' INTO TABLE {staging} {_CSV} ({', '.join(COLUMNS)})")
        cursor.execute(hand_merge_sql(target, staging))
        cursor.execute("COMMIT")
        seconds = time.perf_counter() - started
    return Result("hand merge", rows, seconds, target_rows=count_rows(target))


def warehouse_url(prefix: str) -> str:
    return f"mysql://root@127.0.0.1:3306/test?schema_prefix={prefix}"


def run_child(mode: str, path: Path, prefix: str, chunk_rows: int, workdir: Path) -> None:
    os.environ.setdefault("ETL_PII_SALT", PII_SALT)
    from etl_platform.engine.environment import Environment
    from etl_platform.engine.runner import run_pipeline
    from etl_platform.settings import Settings
    from etl_platform.spec.loader import spec_from_document

    spec = spec_from_document(platform_document(mode, path.name, chunk_rows))
    environment = Environment.at(warehouse_url(prefix), path.parent, workdir / "lake", secrets=Settings.from_env().secrets)
    started = time.perf_counter()
    report = run_pipeline(spec, environment)
    seconds = time.perf_counter() - started
    outcome = {"seconds": seconds, "rows_read": report.rows_read, "rows_published": report.rows_published}
    print(json.dumps({**outcome, "target_rows": report.target_rows, "vm_hwm_mb": peak_rss_mb()}))


def bench_platform(mode: str, path: Path, rows: int, prefix: str, args: argparse.Namespace) -> Result:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", mode, "--input", str(path), "--prefix", prefix]
    command += ["--chunk-rows", str(args.chunk_rows), "--workdir", str(args.workdir)]
    env = {**os.environ, "ETL_PII_SALT": PII_SALT, "PYTHONPATH": str(PROJECT_DIR)}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    polled = watch_peak_rss(process)
    stdout, stderr = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"platform {mode} run failed (exit {process.returncode}):\n{stderr[-4000:]}")
    outcome = json.loads(stdout.strip().splitlines()[-1])
    peak = max(polled, outcome["vm_hwm_mb"])
    return Result(f"platform {mode}", rows, outcome["seconds"], peak, outcome["target_rows"], outcome)


def drop_databases(prefix: str) -> None:
    with connect() as conn, conn.cursor() as cursor:
        cursor.execute("SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE %s", (prefix + "%",))
        for (name,) in cursor.fetchall():
            cursor.execute(f"DROP DATABASE `{name}`")


def measure(args: argparse.Namespace) -> int:
    path, _ = ensure_input_file(args.workdir, args.rows, args.seed)
    prefix = f"bench_{uuid.uuid4().hex[:8]}_"
    database = prefix + "reference"
    results: dict[str, Result] = {}
    try:
        with connect() as conn, conn.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE {database}")
        for run in (
            lambda: bench_raw_load(database, path.resolve(), args.rows),
            lambda: bench_hand_merge(database, path.resolve(), args.rows),
            lambda: bench_platform("append", path, args.rows, prefix, args),
            lambda: bench_platform("merge", path, args.rows, prefix, args),
        ):
            result = run()
            results[result.name] = result
            print(f"  {result.name}: {result.seconds:.2f}s", flush=True)
        merged, by_hand = results["platform merge"].target_rows, results["hand merge"].target_rows
        if merged != by_hand:
            raise SystemExit(f"platform merge left {merged} rows, the hand merge {by_hand}: the contenders differ")
    finally:
        drop_databases(prefix)
    append = results["platform append"].rows_per_second / results["raw LOAD DATA"].rows_per_second
    merge = results["platform merge"].rows_per_second / results["hand merge"].rows_per_second
    print(f"\n{'contender':<17} {'seconds':>9} {'rows/s':>11} {'peak RSS MB':>12} {'target rows':>12}")
    for r in results.values():
        rss = f"{r.peak_rss_mb:.0f}" if r.peak_rss_mb else "-"
        print(f"{r.name:<17} {r.seconds:>9.2f} {r.rows_per_second:>11,.0f} {rss:>12} {r.target_rows or 0:>12,}")
    print(f"\nplatform append / raw LOAD DATA (rows/s)  {append:.2f}  (target >= {APPEND_TARGET:.2f})")
    print(f"platform merge / hand merge (rows/s)      {merge:.2f}  (target >= {MERGE_TARGET:.2f})")
    return 0 if append >= APPEND_TARGET and merge >= MERGE_TARGET else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--workdir", type=Path, default=Path(__file__).resolve().parent / "out")
    parser.add_argument("--chunk-rows", type=int, default=100_000)
    parser.add_argument("--child", choices=sorted(DATASETS), help="internal: run one platform mode and print JSON")
    parser.add_argument("--input", type=Path, help="with --child: the CSV")
    parser.add_argument("--prefix", help="with --child: the warehouse's schema prefix")
    args = parser.parse_args(argv)
    if args.child:
        run_child(args.child, args.input.resolve(), args.prefix, args.chunk_rows, args.workdir.resolve())
        return 0
    return measure(args)


if __name__ == "__main__":
    sys.exit(main())
