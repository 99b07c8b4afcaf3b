"""Validation cost: the same pipeline with and without five row-level quality rules, in one run.

The platform loads the seeded orders CSV (see bench_load.py) into a DuckDB file, casting six
columns, once with no rules and once with five row-level rules compiled to a Pandera schema
(NotNull, two Ranges, Email, IsIn). Runs alternate and each mode keeps its best time, so a
noisy neighbour hurts both alike. Prints seconds, rows/s, the cost per million rows and the
ratio. Target: rules add at most 30% to the run time.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from bench_load import BENCH_DIR, CASTS, PII_SALT, ensure_input_file

RULES = [
    {"field": "order_id", "rule": "NotNull"},
    {"field": "amount", "rule": "Range", "args": [0, 1_000_000]},
    {"field": "quantity", "rule": "Range", "args": [1, 1000]},
    {"field": "email", "rule": "Email"},
    {"field": "currency", "rule": "IsIn", "args": ["EUR", "USD", "GBP"]},
]


def run_once(path: Path, workdir: Path, rows: int, with_rules: bool) -> float:
    """One load (replace) of the whole file; returns the seconds run_pipeline took, or stops the
    benchmark if the load did not do the whole job (a skipped or stopped load is fast, not good)."""
    from etl_platform.engine.environment import Environment
    from etl_platform.engine.runner import run_pipeline
    from etl_platform.settings import Settings
    from etl_platform.spec.loader import spec_from_document

    document = {
        "id": "bench_quality",
        "source": {"type": "csv", "path": path.name},
        "transforms": [{"cast": CASTS}],
        "quality": {"rules": RULES if with_rules else []},
        "destination": {"dataset": "bench.orders_quality", "write": "replace"},
    }
    environment = Environment.at(
        f"duckdb:///{workdir / 'bench_quality.duckdb'}", path.parent, workdir / "lake", secrets=Settings.from_env().secrets
    )
    started = time.perf_counter()
    report = run_pipeline(spec_from_document(document), environment)
    seconds = time.perf_counter() - started
    if (
        report.skipped_reason
        or report.rows_read != rows
        or not report.rows_published
        or report.target_rows != report.rows_published
    ):
        raise SystemExit(
            f"bench_quality ({'with' if with_rules else 'without'} rules) did not load what it measures: read "
            f"{report.rows_read:,} of {rows:,} rows, published {report.rows_published:,}, target holds {report.target_rows}"
            + (f" ({report.skipped_reason})" if report.skipped_reason else "")
        )
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="input rows (default: 1,000,000)")
    parser.add_argument("--seed", type=int, default=42, help="seed of the generated CSV (default: 42)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per mode; the best counts (default: 3)")
    parser.add_argument("--workdir", type=Path, default=BENCH_DIR / "out", help="folder for data and results")
    args = parser.parse_args(argv)
    os.environ.setdefault("ETL_PII_SALT", PII_SALT)
    args.workdir.mkdir(parents=True, exist_ok=True)
    path, _ = ensure_input_file(args.workdir, args.rows, args.seed)
    (args.workdir / "bench_quality.duckdb").unlink(missing_ok=True)  # no state of an earlier invocation
    times: dict[str, list[float]] = {"without rules": [], "five row rules": []}
    for _ in range(args.repeat):
        times["without rules"].append(run_once(path, args.workdir, args.rows, with_rules=False))
        times["five row rules"].append(run_once(path, args.workdir, args.rows, with_rules=True))
    plain, ruled = min(times["without rules"]), min(times["five row rules"])
    ratio = ruled / plain
    print(f"{'mode':<16}{'best s':>9}{'rows/s':>12}   all runs (s)")
    for mode, values in times.items():
        print(f"{mode:<16}{min(values):>9.2f}{args.rows / min(values):>12,.0f}   {', '.join(f'{v:.2f}' for v in values)}")
    per_million = (ruled - plain) / args.rows * 1_000_000
    verdict = "PASS" if ratio <= 1.30 else "FAIL"
    print(f"\nvalidation cost: {per_million:.2f} s per million rows")
    print(f"run time with rules / without = {ratio:.2f} (target <= 1.30) {verdict}")
    results = {"rows": args.rows, "times": times, "ratio": ratio, "seconds_per_million_rows": per_million}
    (args.workdir / f"bench_quality_{args.rows}.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
