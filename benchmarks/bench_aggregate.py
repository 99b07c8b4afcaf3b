"""A 1,000,000-row aggregate pipeline's peak memory and speed, against DuckDB's own CSV group-by, in one run.

The platform runs a pipeline (CSV source, `cast`, `aggregate` by customer with sum, mean, count
and max) into a DuckDB warehouse: its rows are spilled chunk by chunk and aggregated by DuckDB
over the spill with a bounded memory (docs/architecture.md, Contracts 1). The reference is one
DuckDB query, `read_csv` straight into the same GROUP BY. Each runs in its own process, so each
peak RSS (the interpreter and imports included) is its own.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

RSS_TARGET_MB = 1024
AGGREGATE = {
    "group_by": ["customer"],
    "measures": {"revenue": {"sum": "amount"}, "average": {"mean": "amount"}, "orders": {"count": "*"}, "last": {"max": "day"}},
}


def orders(rows: int, customers: int, seed: int = 5) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table(
        {
            "order_id": np.arange(rows),
            "customer": rng.integers(0, customers, rows),
            "amount": np.round(rng.lognormal(3, 0.5, rows), 2),
            "country": pa.array(rng.choice(["DE", "FR", "IT", "ES", "NL"], rows)),
            "day": pa.array(rng.choice([f"2026-11-{d:02d}" for d in range(1, 31)], rows)),
        }
    )


def run_platform(folder: Path) -> int:
    from etl_platform.engine.environment import Environment
    from etl_platform.engine.runner import run_pipeline
    from etl_platform.spec.loader import spec_from_document

    spec = spec_from_document(
        {
            "id": "bench_aggregate",
            "source": {"type": "csv", "path": "orders.csv"},
            "transforms": [{"cast": {"customer": "int", "amount": "float"}}, {"aggregate": AGGREGATE}],
            "destination": {"dataset": "mart.customers", "write": "replace"},
            "execution": {"chunk_rows": 50_000},
        }
    )
    report = run_pipeline(spec, Environment.at(f"duckdb:///{folder / 'warehouse.duckdb'}", folder, folder / "lake"))
    return report.rows_published


def run_reference(folder: Path) -> int:
    import duckdb

    connection = duckdb.connect()
    sql = (
        "SELECT customer, sum(amount) AS revenue, avg(amount) AS average, count(*) AS orders, max(day) AS last "
        f"FROM read_csv('{folder / 'orders.csv'}') GROUP BY customer ORDER BY customer"
    )
    return len(connection.sql(sql).to_arrow_table())


def child(contender: str, folder: Path) -> None:
    started = time.perf_counter()
    groups = (run_platform if contender == "platform" else run_reference)(folder)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "groups": groups, "peak_mb": peak}))


def measure(contender: str, folder: Path) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", contender, "--folder", str(folder)], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="order rows in the CSV file")
    parser.add_argument("--customers", type=int, default=100_000, help="distinct customers (the groups)")
    parser.add_argument("--child", choices=["platform", "reference"], help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.folder)
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-aggregate-") as name:
        folder = Path(name)
        pa_csv.write_csv(orders(args.rows, args.customers), folder / "orders.csv")
        platform, reference = measure("platform", folder), measure("reference", folder)
    assert platform["groups"] == reference["groups"], (platform, reference)
    print(f"{args.rows:,} rows into {platform['groups']:,} groups")
    print(f"{'':10} {'seconds':>8} {'rows/s':>10} {'peak RSS MB':>12}")
    for name, result in (("platform", platform), ("duckdb", reference)):
        rate = args.rows / result["seconds"]
        print(f"{name:10} {result['seconds']:8.2f} {rate:10,.0f} {result['peak_mb']:12,.0f}")
    print(
        f"platform / duckdb: {platform['seconds'] / reference['seconds']:.2f}x the time, "
        f"{platform['peak_mb'] / reference['peak_mb']:.2f}x the memory"
    )
    ok = platform["peak_mb"] < RSS_TARGET_MB
    print(f"platform peak RSS under {RSS_TARGET_MB} MB: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
