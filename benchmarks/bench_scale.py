"""Scale-out benchmark: one backfill of N daily partitions on dagster-celery workers, with 1 and with
2 workers, in one run.

Each round starts from empty databases: Dagster's storage and the warehouse on the machine's
PostgreSQL, a RabbitMQ virtual host of its own, the repository's dagster.yaml (queued runs
launched by `dagster-daemon`), `dagster job backfill` of every partition, and K workers
(`dagster-celery worker start -y celery.yaml -q default`, one task each). The partition pool's
limit is K, so K partitions load at once. The pipeline is bench_load's orders pipeline (cast,
filter, sha256 mask) over one generated CSV per day: CPU-bound in the workers.

Wall seconds run from queueing the backfill until every run has finished; rows/s is the rows of
every partition over that time; scaling efficiency is the 2-worker throughput over twice the
1-worker throughput (docs/scaling.md). The reference is the platform itself on one worker: there
is no peer tool to run on celery.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg
import pyarrow.csv as pacsv
import yaml
from bench_load import CASTS, PII_SALT, generate_orders
from dagster import DagsterInstance, DagsterRunStatus

from tests.celery_cluster import broker_vhost, workers
from tests.conftest import REPO
from tests.processes import stop_group
from tests.test_embedded_pools import BIN

SERVER = "postgresql://postgres@127.0.0.1:5432"
DATABASES = {"dagster": "bench_scale_dagster", "warehouse": "bench_scale_warehouse"}
DATASET = "bench.orders_daily"
POOL = "partitions_bench_orders_daily"
EFFICIENCY_TARGET = 0.7
FINISHED = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}


def days(partitions: int) -> list[str]:
    return [f"2024-01-{day:02d}" for day in range(1, partitions + 1)]


def write_landing(landing: Path, partitions: int, rows: int) -> None:
    """One orders CSV per day, each with its own seed (so ids differ between days)."""
    for day in range(1, partitions + 1):
        path = landing / "orders" / "2024" / "01" / f"{day:02d}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        pacsv.write_csv(generate_orders(rows, seed=day), path)


def pipeline_document(partitions: int) -> dict:
    return {
        "id": "orders_daily",
        "source": {"type": "csv", "path": "orders/{year}/{month}/{day}.csv"},
        "transforms": [{"cast": CASTS}, {"filter": "amount > 0"}, {"mask": {"email": "sha256"}}],
        "destination": {"dataset": DATASET, "write": "replace"},
        "partitions": {"daily": {"start": "2024-01-01", "end": f"2024-01-{partitions + 1:02d}"}},
    }


def fresh_databases() -> dict[str, str]:
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as conn:
        for name in DATABASES.values():
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {name}")
    return {role: f"{SERVER}/{name}" for role, name in DATABASES.items()}


def dagster_home(folder: Path, dagster_url: str) -> Path:
    """The repository's dagster.yaml with the (password-less, local) storage URL written in."""
    home = folder / "dagster_home"
    home.mkdir()
    config = yaml.safe_load((REPO / "dagster.yaml").read_text())
    config["storage"]["postgres"]["postgres_url"] = dagster_url.replace("postgresql://", "postgresql+psycopg2://")
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    return home


def backfill(env: dict[str, str], partition_keys: list[str]) -> None:
    command = [str(BIN / "dagster"), "job", "backfill", "-w", "workspace.yaml", "-j", "orders_daily_job", "--noprompt"]
    command += ["--from", partition_keys[0], "--to", partition_keys[-1]]
    subprocess.run(command, cwd=REPO, env=env, check=True, capture_output=True, timeout=300)


def wait_until_finished(instance: DagsterInstance, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = instance.get_runs()
        if len(runs) == count and all(run.status in FINISHED for run in runs):
            failed = [run.run_id for run in runs if run.status != DagsterRunStatus.SUCCESS]
            if failed:
                raise SystemExit(f"{len(failed)} runs failed; the first: {failure_of(instance, failed[0])}")
            return
        time.sleep(0.5)
    raise SystemExit(f"the backfill did not finish within {timeout:.0f} s")


def failure_of(instance: DagsterInstance, run_id: str) -> str:
    """The first error of a failed run, from its event log."""
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is not None and event.is_failure and getattr(event.event_specific_data, "error", None):
            return event.event_specific_data.error.to_string()
    return f"run {run_id} (no error event: see the daemon's log)"


def published_rows(warehouse_url: str) -> int:
    with psycopg.connect(warehouse_url) as conn:
        return conn.execute(f"SELECT count(*) FROM {DATASET}").fetchone()[0]


def round_seconds(worker_count: int, args: argparse.Namespace, landing: Path) -> tuple[float, int]:
    """One backfill of every partition on `worker_count` workers: (wall seconds, rows published)."""
    urls = fresh_databases()
    with tempfile.TemporaryDirectory(prefix="bench_scale_") as scratch, broker_vhost() as broker:
        folder = Path(scratch)
        home = dagster_home(folder, urls["dagster"])
        (folder / "pipelines").mkdir()
        (folder / "pipelines" / "orders.yaml").write_text(yaml.safe_dump(pipeline_document(args.partitions)))
        env = {
            "PATH": f"{BIN}:/usr/bin:/bin",
            "HOME": str(folder),
            "HF_HUB_OFFLINE": "1",
            "ETL_PII_SALT": PII_SALT,
            "DAGSTER_HOME": str(home),
            "ETL_CELERY_BROKER": broker,
            "ETL_PIPELINES_DIR": str(folder / "pipelines"),
            "ETL_WAREHOUSE_URL": urls["warehouse"],
            "ETL_LANDING_DIR": str(landing),
            "ETL_DATA_DIR": str(folder / "data"),
        }
        instance = DagsterInstance.from_config(str(home))
        instance.event_log_storage.set_concurrency_slots(POOL, worker_count)
        names = [f"bench{index}" for index in range(worker_count)]
        with workers(names, "default", env, folder):
            daemon_log = (folder / "daemon.log").open("w")
            daemon = subprocess.Popen(
                [str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"],
                cwd=REPO, env=env, stdout=daemon_log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
            try:
                time.sleep(args.warmup_seconds)  # workers and daemon up before the clock starts
                started = time.perf_counter()
                backfill(env, days(args.partitions))
                wait_until_finished(instance, args.partitions, args.timeout)
                seconds = time.perf_counter() - started
            finally:
                stop_group(daemon)
                daemon_log.close()
        return seconds, published_rows(urls["warehouse"])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--partitions", type=int, default=8, help="daily partitions in the backfill (default 8)")
    parser.add_argument("--rows", type=int, default=300_000, help="rows per partition (default 300,000)")
    parser.add_argument("--warmup-seconds", type=float, default=15.0, help="wait for workers and daemon before timing")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds a round may take")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench_scale_landing_") as landing_folder:
        landing = Path(landing_folder)
        write_landing(landing, args.partitions, args.rows)
        results = {count: round_seconds(count, args, landing) for count in (1, 2)}
    total = args.partitions * args.rows
    print(f"{args.partitions} daily partitions x {args.rows:,} rows ({total:,} rows read per backfill)")
    print(f"{'workers':>7} {'wall s':>8} {'rows/s':>10} {'published':>10}")
    throughput = {}
    for count, (seconds, published) in results.items():
        throughput[count] = total / seconds
        print(f"{count:>7} {seconds:>8.1f} {throughput[count]:>10,.0f} {published:>10,}")
    efficiency = throughput[2] / (2 * throughput[1])
    verdict = "met" if efficiency >= EFFICIENCY_TARGET else "NOT met"
    print(f"scaling efficiency (2-worker rows/s / 2 x 1-worker rows/s): {efficiency:.2f} (target {EFFICIENCY_TARGET}: {verdict})")
    for count, (_, published) in results.items():
        if published != results[1][1]:
            print(f"the {count}-worker round published {published:,} rows, the 1-worker round {results[1][1]:,}")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
