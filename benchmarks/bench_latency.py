"""File-arrival latency: from a file landing in S3 to its rows published in PostgreSQL, with the daemon running.

The production path as deployed: Dagster's instance on PostgreSQL with the repository's dagster.yaml
(queued runs), `dagster-daemon run`, S3 served by moto on 127.0.0.1, a PostgreSQL warehouse. Each of
`--drops` files is put into S3 at a random point of the sensor's interval; its latency is the time
until its rows are visible in the target table (polled every 100 ms). The run records split it into
the sensor's wait (put to run created), the queue (created to started: dequeue, process start and
code location load) and the run itself (started to rows visible).

The reference, measured in the same run: the same file loaded by `run_pipeline` in this process (no
sensor, no queue, no process start), the floor any orchestration adds to. The ratio is printed.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import boto3
import psycopg
import yaml

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_DIR = BENCH_DIR.parent
sys.path.insert(0, str(PROJECT_DIR))
BIN = Path(sys.executable).parent
P95_TARGET_SECONDS = 30.0
S3_ENV = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}
PIPELINE = {
    "id": "drops",
    "source": {"type": "csv"},
    "transforms": [{"cast": {"id": "int", "drop": "int", "amount": "float"}}],
    "destination": {"dataset": "bench.drops", "write": "append"},
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_port(port: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing listens on 127.0.0.1:{port}")


def create_database(admin_url: str, prefix: str) -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    return name


def drop_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def drop_file(drop: int, rows: int) -> bytes:
    lines = [f"{drop * 1_000_000 + i},{drop},{i % 100}.5" for i in range(rows)]
    return ("id,drop,amount\n" + "\n".join(lines) + "\n").encode()


def published(connection: psycopg.Connection, drop: int) -> bool:
    try:
        return bool(connection.execute("SELECT 1 FROM bench.drops WHERE drop = %s LIMIT 1", (drop,)).fetchone())
    except psycopg.errors.UndefinedTable:
        return False


def reference_seconds(warehouse_url: str, body: bytes, workdir: Path) -> float:
    """The same load with no orchestration: run_pipeline in this process, from a local file."""
    from etl_platform.engine.environment import Environment
    from etl_platform.engine.runner import run_pipeline
    from etl_platform.settings import Settings
    from etl_platform.spec import spec_from_document

    (workdir / "reference").mkdir()
    (workdir / "reference" / "drop.csv").write_bytes(body)
    spec = spec_from_document(
        {
            **PIPELINE,
            "id": "reference",
            "source": {"type": "csv", "path": "drop.csv"},
            "destination": {"dataset": "bench.reference", "write": "append"},
        }
    )
    started = time.perf_counter()
    report = run_pipeline(
        spec, Environment.at(warehouse_url, workdir / "reference", workdir / "lake", secrets=Settings.from_env().secrets)
    )
    seconds = time.perf_counter() - started
    if report.rows_published != body.count(b"\n") - 1:  # the header line
        raise SystemExit(f"the reference load published {report.rows_published:,} rows ({report.skipped_reason}): no ratio")
    return seconds


def verify_published(connection: psycopg.Connection, drops: int, rows: int) -> None:
    """Every drop published all its rows, once: a latency of a partial or doubled load means nothing."""
    counts = dict(connection.execute("SELECT drop, count(*) FROM bench.drops GROUP BY drop").fetchall())
    wrong = {drop: counts.get(drop, 0) for drop in range(1, drops + 1) if counts.get(drop, 0) != rows}
    if wrong or len(counts) != drops:
        raise SystemExit(f"drops not published exactly once with {rows} rows each (drop: rows): {wrong or counts}")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--drops", type=int, default=20, help="files put into S3, one after another")
    parser.add_argument("--rows", type=int, default=1000, help="rows per file")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test", help="admin URL of the PostgreSQL server")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench-latency-"))
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    moto = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    dagster_db = create_database(args.pg, "bench_dagster")
    warehouse_db = create_database(args.pg, "bench_warehouse")
    warehouse_url = f"postgresql://postgres@127.0.0.1:5432/{warehouse_db}"
    daemon = None
    try:
        wait_port(port, 30)
        os.environ.update({**S3_ENV, "AWS_ENDPOINT_URL_S3": endpoint})
        s3 = boto3.client("s3")
        bucket = "landing"
        s3.create_bucket(Bucket=bucket)
        home = workdir / "dagster_home"
        home.mkdir()
        shutil.copy(PROJECT_DIR / "dagster.yaml", home / "dagster.yaml")
        pipelines = workdir / "pipelines"
        pipelines.mkdir()
        trigger = {"file_arrival": {"bucket": bucket, "prefix": "incoming/", "pattern": "*.csv"}}  # the default interval
        (pipelines / "drops.yaml").write_text(yaml.safe_dump({**PIPELINE, "triggers": [trigger]}))
        env = {
            **os.environ,
            "DAGSTER_HOME": str(home),
            "DAGSTER_PG_URL": f"postgresql+psycopg2://postgres@127.0.0.1:5432/{dagster_db}",
            "ETL_PIPELINES_DIR": str(pipelines),
            "ETL_WAREHOUSE_URL": warehouse_url,
            "ETL_LANDING_DIR": f"s3://{bucket}/landing",
            "ETL_ALLOWED_ROOTS": f"s3://{bucket}/incoming/",  # the prefix the file trigger watches
            "ETL_LAKE_DIR": f"s3://{bucket}/lake",
        }
        os.environ.update({k: env[k] for k in ("DAGSTER_HOME", "DAGSTER_PG_URL")})
        daemon = subprocess.Popen(
            [str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"],
            cwd=PROJECT_DIR,
            env=env,
            stdout=(workdir / "daemon.log").open("w"),
            stderr=subprocess.STDOUT,
        )
        from dagster import DagsterInstance

        from etl_platform.spec.triggers import FileArrival

        interval = FileArrival().interval_seconds
        time.sleep(interval)  # the daemon loads the code location and runs a first, empty tick
        instance = DagsterInstance.get()
        latencies, waits, queues, runs = [], [], [], []
        with psycopg.connect(warehouse_url, autocommit=True) as connection:
            for drop in range(1, args.drops + 1):
                time.sleep(random.uniform(0, interval))
                put_at = time.time()
                s3.put_object(Bucket=bucket, Key=f"incoming/drop-{drop:03d}.csv", Body=drop_file(drop, args.rows))
                deadline = time.monotonic() + 180
                while not published(connection, drop):
                    if time.monotonic() > deadline:
                        raise SystemExit(f"drop {drop} was not published within 180 s; see {workdir / 'daemon.log'}")
                    time.sleep(0.1)
                latency = time.time() - put_at
                record = instance.get_run_records(limit=1)[0]
                waits.append(record.create_timestamp.timestamp() - put_at)
                queues.append(record.start_time - record.create_timestamp.timestamp())
                runs.append(put_at + latency - record.start_time)
                latencies.append(latency)
                print(
                    f"drop {drop:2d}: {latency:6.2f} s "
                    f"(sensor {waits[-1]:5.2f}, queue+launch {queues[-1]:5.2f}, run {runs[-1]:5.2f})",
                    flush=True,
                )
            verify_published(connection, args.drops, args.rows)
        reference = reference_seconds(warehouse_url, drop_file(0, args.rows), workdir)
    finally:
        if daemon is not None:
            daemon.terminate()
            daemon.wait(30)
        moto.terminate()
        drop_database(args.pg, dagster_db)
        drop_database(args.pg, warehouse_db)
    p50, p95 = statistics.median(latencies), percentile(latencies, 0.95)
    print(f"\n{args.drops} drops of {args.rows} rows, sensor interval {interval} s, queue dequeue interval 2 s")
    print(f"latency p50 {p50:.2f} s, p95 {p95:.2f} s, max {max(latencies):.2f} s")
    print(f"  sensor wait    p50 {statistics.median(waits):.2f} s   (put -> run created; bounded by the sensor interval)")
    print(f"  queue + launch p50 {statistics.median(queues):.2f} s   (dequeue interval, run process start, code location load)")
    print(f"  run            p50 {statistics.median(runs):.2f} s   (S3 read, load, publish, until the rows are visible)")
    print(f"reference: the same load in process, no orchestration: {reference:.2f} s; p50 / reference = {p50 / reference:.1f}x")
    passed = p95 < P95_TARGET_SECONDS
    print(f"p95 < {P95_TARGET_SECONDS:.0f} s: {'PASS' if passed else 'FAIL'}")
    shutil.rmtree(workdir, ignore_errors=True)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
