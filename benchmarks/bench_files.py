"""Landing-folder benchmark: many small files appended, then a rerun over the same unchanged files.

N files (default 10,000) of R rows (default 100) land in a folder; one append pipeline
(`cast`, `write: append`) loads them into a fresh PostgreSQL database. Two figures:

  first load     files per second of the load that reads every file (the per-file content
                 ledger hashes each file and records one ledger row per file, in batches);
  no-op rerun    seconds of a second run over the same, unchanged files (it must publish nothing).

Times are the platform's own: `perf_counter` around `run_pipeline` in this process, interpreter
start-up and imports excluded. The benchmark refuses to print figures unless the first load
published every row and the rerun published none. The same script runs against an older
checkout (`PYTHONPATH=/path/to/checkout`) to compare ledgers; it uses only `run_pipeline`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from pathlib import Path

import psycopg

BENCH_DIR = Path(__file__).resolve().parent
NOOP_TARGET_SECONDS = 5.0
ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"


def ensure_landing(workdir: Path, files: int, rows: int) -> Path:
    """`files` CSV files of `rows` rows each (ids unique across files), reused when complete."""
    landing = workdir / f"landing_{files}x{rows}" / "drops"
    existing = sorted(landing.glob("*.csv")) if landing.is_dir() else []
    if len(existing) == files:
        return landing.parent
    landing.mkdir(parents=True, exist_ok=True)
    for number in range(files):
        first = number * rows
        lines = "".join(f"{i},{i % 97},{(i % 1000) / 10:.1f}\n" for i in range(first, first + rows))
        (landing / f"drop_{number:06d}.csv").write_text("id,customer,amount\n" + lines)
    return landing.parent


def fresh_database(admin_url: str) -> tuple[str, str]:
    name = f"bench_files_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    return name, admin_url.rsplit("/", 1)[0] + "/" + name


def drop_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def measure(landing: Path, warehouse_url: str, files: int, rows: int) -> dict:
    from etl_platform.engine.environment import Environment
    from etl_platform.engine.runner import run_pipeline
    from etl_platform.spec import spec_from_document

    spec = spec_from_document(
        {
            "id": "bench_files",
            "source": {"type": "csv", "path": "drops/*.csv"},
            "transforms": [{"cast": {"id": "int", "customer": "int", "amount": "float"}}],
            "destination": {"dataset": "bench.drops", "write": "append"},
        }
    )
    environment = Environment.at(warehouse_url, landing, landing.parent / "lake")
    started = time.perf_counter()
    first = run_pipeline(spec, environment)
    first_seconds = time.perf_counter() - started
    if first.rows_published != files * rows or first.target_rows != files * rows:
        raise SystemExit(f"first load published {first.rows_published} rows, target {first.target_rows}; expected {files * rows}")
    started = time.perf_counter()
    rerun = run_pipeline(spec, environment)
    rerun_seconds = time.perf_counter() - started
    if rerun.rows_published:
        raise SystemExit(f"the rerun over unchanged files published {rerun.rows_published} rows")
    return {
        "files": files,
        "rows_per_file": rows,
        "first_load_seconds": round(first_seconds, 2),
        "first_load_files_per_second": round(files / first_seconds, 1),
        "noop_rerun_seconds": round(rerun_seconds, 2),
        "noop_rerun_reason": rerun.skipped_reason,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--rows", type=int, default=100)
    parser.add_argument("--admin-url", default=ADMIN_URL, help="PostgreSQL where a fresh database is created and dropped")
    parser.add_argument("--workdir", type=Path, default=BENCH_DIR / "out")
    parser.add_argument("--label", default="this checkout", help="names the code measured in the output")
    args = parser.parse_args()
    landing = ensure_landing(args.workdir, args.files, args.rows)
    name, url = fresh_database(args.admin_url)
    try:
        result = {"code": args.label, **measure(landing, url, args.files, args.rows)}
    finally:
        drop_database(args.admin_url, name)
    verdict = "PASS" if result["noop_rerun_seconds"] < NOOP_TARGET_SECONDS else "FAIL"
    print(json.dumps(result, indent=2))
    seconds = result["noop_rerun_seconds"]
    print(f"no-op rerun over {args.files} unchanged files: {seconds} s (target < {NOOP_TARGET_SECONDS} s) {verdict}")
    (args.workdir / f"bench_files_{args.files}.json").write_text(json.dumps(result, indent=2))
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
