"""Load benchmark: the platform's CSV -> PostgreSQL loads against hand-written PostgreSQL references.

One run generates (or reuses) a seeded orders CSV of N rows (~2% repeated order_ids, ~1% dirty
values, ~1% refunds with amount <= 0) and measures four contenders on it:

  raw COPY         COPY ... FROM STDIN into an all-TEXT table: no typing, no dedup; the throughput
                   ceiling of any loader into PostgreSQL.
  hand merge       COPY into a temp text table, then one INSERT ... SELECT DISTINCT ON ... ON CONFLICT
                   with regex-guarded casts, the `amount > 0` filter and the salted sha256 email mask:
                   the typed, deduplicated, masked first load an engineer would write by hand.
  platform append  run_pipeline (cast, filter amount > 0, mask email sha256) with write: append.
  platform merge   the same with write: merge, primary_key [order_id].
  platform rls     the append with `tenant: {value: bench, isolation: rls}`: staged (COPY is refused
                   under row-level security), then INSERT ... SELECT as the tenant's role under the
                   policy's WITH CHECK; compared with platform append.

Each platform mode runs in a child process: its time is the child's own clock around run_pipeline
(no interpreter start-up) and its peak RSS is the child's alone. rows/s is always the input row
count N divided by seconds, for every contender.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_DIR = BENCH_DIR.parent
SCHEMA = "bench"
COLUMNS = ("order_id", "customer_id", "product_id", "quantity", "amount", "currency", "email", "created_at")
DUPLICATE_SHARE = 0.02
DIRTY_SHARE = 0.01
REFUND_SHARE = 0.01  # valid rows with amount <= 0, removed by the `amount > 0` filter
COPY_BLOCK_BYTES = 1 << 20
PII_SALT = "bench-salt"
APPEND_TARGET = 0.50  # platform append rows/s / raw COPY rows/s
MERGE_TARGET = 0.75  # platform merge rows/s / hand merge rows/s
RLS_TARGET = 0.50  # platform rls rows/s / platform append rows/s
RLS_TENANT, RLS_ROLE = "bench", "etl_writer_bench"  # the role is created (NOLOGIN) when missing
RSS_TARGET_MB = 1024.0
# The casts every platform contender applies to the generated orders file.
CASTS = {
    "order_id": "int",
    "customer_id": "int",
    "product_id": "int",
    "quantity": "int",
    "amount": "float",
    "created_at": "timestamp",
}
DATASETS = {"append": f"{SCHEMA}.orders_append", "merge": f"{SCHEMA}.orders_merge", "rls": f"{SCHEMA}.orders_rls"}


@dataclass
class Result:
    """One contender's measurement; rows is always the input row count."""

    name: str
    rows: int
    seconds: float
    peak_rss_mb: float | None = None
    target_rows: int | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


# --- input file ------------------------------------------------------------------------------


def _text(values: np.ndarray) -> pa.Array:
    """Integers as CSV text, through Arrow so no Python loop touches a row."""
    return pc.cast(pa.array(values), pa.string())


def _amount_text(cents: np.ndarray) -> pa.Array:
    """Cents as `-12.05`-style decimals (fixed two digits, like a real export)."""
    sign = pa.array(np.where(cents < 0, "-", ""))
    magnitude = np.abs(cents)
    whole = _text(magnitude // 100)
    fraction = pc.utf8_lpad(_text(magnitude % 100), 2, "0")
    return pc.binary_join_element_wise(sign, whole, pa.array(np.full(len(cents), ".")), fraction, "")


def _duplicate_sources(rng: np.random.Generator, rows: int) -> np.ndarray:
    """For each row, the earlier row it copies (itself if it is an original): ~2% repeats, always later in the file."""
    source = np.arange(rows)
    repeats = np.flatnonzero(rng.random(rows) < DUPLICATE_SHARE)
    repeats = repeats[repeats > 0]
    source[repeats] = (rng.random(len(repeats)) * repeats).astype(np.int64)
    while not np.array_equal(source, source[source]):  # a copy of a copy points at the original
        source = source[source]
    return source


def _dirty(rng: np.random.Generator, columns: dict[str, pa.Array], rows: int) -> None:
    """Spoil ~1% of rows with one unparsable value each, the kinds real exports contain."""
    spoiled = np.flatnonzero(rng.random(rows) < DIRTY_SHARE)
    kinds = rng.integers(0, 4, len(spoiled))
    for kind, (column, value) in enumerate(
        [("amount", "n/a"), ("amount", "12,50"), ("created_at", "not a date"), ("quantity", "x")]
    ):
        where = spoiled[kinds == kind]
        mask = np.zeros(rows, dtype=bool)
        mask[where] = True
        columns[column] = pc.if_else(pa.array(mask), pa.scalar(value), columns[column])


def generate_orders(rows: int, seed: int) -> pa.Table:
    """A deterministic orders table (all text, as a CSV export has it) with duplicates and dirty values."""
    rng = np.random.default_rng(seed)
    order_id = rng.permutation(rows).astype(np.int64) + 10_000_000
    customer_id = rng.integers(1, max(rows // 10, 2), rows)
    cents = rng.integers(100, 100_000, rows)
    cents[rng.random(rows) < REFUND_SHARE] *= -1
    start = np.datetime64("2024-01-01T00:00:00", "s").astype(np.int64)
    created = start + rng.integers(0, 365 * 86_400, rows)
    customer_text = _text(customer_id)
    columns: dict[str, pa.Array] = {
        "order_id": _text(order_id),
        "customer_id": customer_text,
        "product_id": _text(rng.integers(1, 5_000, rows)),
        "quantity": _text(rng.integers(1, 10, rows)),
        "amount": _amount_text(cents),
        "currency": pa.array(["EUR", "USD", "GBP"]).take(pa.array(rng.integers(0, 3, rows))),
        "email": pc.binary_join_element_wise("customer", customer_text, "@example.com", ""),
        "created_at": pc.cast(pa.array(created.astype("datetime64[s]")), pa.string()),
    }
    _dirty(rng, columns, rows)
    return pa.table(columns).take(pa.array(_duplicate_sources(rng, rows)))


def ensure_input_file(workdir: Path, rows: int, seed: int) -> tuple[Path, float]:
    """The CSV for (rows, seed), generated only if missing; the name carries both so a reuse is exact."""
    path = workdir / f"orders_{rows}_seed{seed}.csv"
    if path.exists():
        return path, 0.0
    started = time.perf_counter()
    workdir.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".csv.partial")
    pacsv.write_csv(generate_orders(rows, seed), partial)
    partial.replace(path)  # a killed run never leaves a truncated file that would be reused
    return path, time.perf_counter() - started


# --- PostgreSQL references -------------------------------------------------------------------


def connect(pg_url: str) -> psycopg.Connection:
    return psycopg.connect(pg_url, autocommit=True)


def reset_schema(pg_url: str) -> None:
    """Start from an empty `bench` schema so every contender does a first load; the rls tenant's role exists."""
    with connect(pg_url) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        conn.execute(f"CREATE SCHEMA {SCHEMA}")
        if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (RLS_ROLE,)).fetchone():
            conn.execute(f"CREATE ROLE {RLS_ROLE} NOLOGIN")


def settle(pg_url: str) -> None:
    """Flush the previous contender's dirty pages first, so no one pays for another's writes."""
    with connect(pg_url) as conn:
        conn.execute("CHECKPOINT")


def copy_file(conn: psycopg.Connection, statement: str, path: Path) -> None:
    """Stream the file to COPY in blocks, so memory stays flat whatever the file size."""
    with conn.cursor().copy(statement) as copy, path.open("rb") as handle:
        while block := handle.read(COPY_BLOCK_BYTES):
            copy.write(block)


def count_rows(pg_url: str, table: str) -> int | None:
    with connect(pg_url) as conn:
        if conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()[0] is None:
            return None
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def bench_raw_copy(pg_url: str, path: Path, rows: int) -> Result:
    """Reference A: the bare COPY of text, no typing, no dedup - the throughput ceiling."""
    table = f"{SCHEMA}.orders_raw"
    columns = ", ".join(COLUMNS)
    with connect(pg_url) as conn:
        conn.execute(f"CREATE TABLE {table} ({', '.join(f'{c} text' for c in COLUMNS)})")
        started = time.perf_counter()
        with conn.transaction():
            copy_file(conn, f"COPY {table} ({columns}) FROM STDIN (FORMAT csv, HEADER true)", path)
        seconds = time.perf_counter() - started
    return Result("raw COPY", rows, seconds, target_rows=count_rows(pg_url, table))


_SAFE_CASTS = {
    "order_id": r"CASE WHEN order_id ~ '^-?[0-9]+$' THEN order_id::bigint END",
    "customer_id": r"CASE WHEN customer_id ~ '^-?[0-9]+$' THEN customer_id::bigint END",
    "product_id": r"CASE WHEN product_id ~ '^-?[0-9]+$' THEN product_id::bigint END",
    "quantity": r"CASE WHEN quantity ~ '^-?[0-9]+$' THEN quantity::bigint END",
    "amount": r"CASE WHEN amount ~ '^-?[0-9]+(\.[0-9]+)?$' THEN amount::double precision END",
    "currency": "currency",
    "email": f"encode(sha256(convert_to('{PII_SALT}' || email, 'UTF8')), 'hex')",
    "created_at": r"CASE WHEN created_at ~ '^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}$' THEN created_at::timestamp END",
}
_TYPED_COLUMNS = {
    "order_id": "bigint PRIMARY KEY",
    "customer_id": "bigint",
    "product_id": "bigint",
    "quantity": "bigint",
    "amount": "double precision",
    "currency": "text",
    "email": "text",
    "created_at": "timestamp",
}


def hand_merge_sql(target: str, staging: str) -> str:
    """The one statement: safe casts, drop unparsable rows, filter, last row per key wins, upsert.

    `OFFSET 0` keeps the typed subquery from being pulled up, which would evaluate every regex
    and cast twice (once in WHERE, once in the select list): a fair reference avoids that waste.
    """
    columns = ", ".join(COLUMNS)
    casts = ", ".join(f"{expression} AS {column}" for column, expression in _SAFE_CASTS.items())
    parsed = " AND ".join(f"{c} IS NOT NULL" for c, e in _SAFE_CASTS.items() if e.startswith("CASE"))
    updates = ", ".join(f"{c} = excluded.{c}" for c in COLUMNS if c != "order_id")
    return (
        f"INSERT INTO {target} ({columns}) "
        f"SELECT DISTINCT ON (order_id) {columns} FROM (SELECT line, {casts} FROM {staging} OFFSET 0) typed "
        f"WHERE {parsed} AND amount > 0 ORDER BY order_id, line DESC "
        f"ON CONFLICT (order_id) DO UPDATE SET {updates}"
    )


def bench_hand_merge(pg_url: str, path: Path, rows: int) -> Result:
    """Reference B: what the platform's merge replaces - COPY to a temp table plus one typed upsert."""
    target = f"{SCHEMA}.orders_ref_merge"
    staging = "orders_ref_stage"
    with connect(pg_url) as conn:
        conn.execute(f"CREATE TABLE {target} ({', '.join(f'{c} {t}' for c, t in _TYPED_COLUMNS.items())})")
        started = time.perf_counter()
        with conn.transaction():
            text_columns = ", ".join(f"{c} text" for c in COLUMNS)
            conn.execute(f"CREATE TEMP TABLE {staging} (line bigint GENERATED ALWAYS AS IDENTITY, {text_columns}) ON COMMIT DROP")
            copy_file(conn, f"COPY {staging} ({', '.join(COLUMNS)}) FROM STDIN (FORMAT csv, HEADER true)", path)
            conn.execute(hand_merge_sql(target, staging))
        seconds = time.perf_counter() - started
    return Result("hand merge", rows, seconds, target_rows=count_rows(pg_url, target))


# --- the platform ----------------------------------------------------------------------------


def platform_document(mode: str, file_name: str, chunk_rows: int) -> dict[str, Any]:
    """The pipeline spec, as a Python dict through the platform's public loader."""
    destination: dict[str, Any] = {"dataset": DATASETS[mode], "write": "append" if mode == "rls" else mode}
    if mode == "merge":
        destination["primary_key"] = ["order_id"]
    tenant = {"tenant": {"value": RLS_TENANT, "isolation": "rls", "role": RLS_ROLE}} if mode == "rls" else {}
    return {
        "id": f"bench_orders_{mode}",
        **tenant,
        "source": {"type": "csv", "path": file_name},
        "transforms": [
            {"cast": CASTS},
            {"filter": "amount > 0"},
            {"mask": {"email": "sha256"}},
        ],
        "destination": destination,
        "execution": {"chunk_rows": chunk_rows},
    }


def prepare_platform_target(pg_url: str, mode: str) -> None:
    """Make the platform run a first load: no target, no ledger entry and no processed-file record that would skip it."""
    with connect(pg_url) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {DATASETS[mode]}")
        if conn.execute("SELECT to_regclass('_etl.load_ledger')").fetchone()[0] is not None:
            conn.execute("DELETE FROM _etl.load_ledger WHERE dataset = %s", (DATASETS[mode],))
        if conn.execute("SELECT to_regclass('_etl.file_state')").fetchone()[0] is not None:
            conn.execute("DELETE FROM _etl.file_state WHERE pipeline = %s", (f"bench_orders_{mode}",))


def run_child(args: argparse.Namespace) -> None:
    """In the child process: run one pipeline and print its own timing and counts as JSON (last stdout line).

    Only run_pipeline is timed, so interpreter start-up and imports do not count against the platform.
    """
    if not args.input:
        raise SystemExit("--child needs --input PATH_TO_CSV")
    os.environ.setdefault("ETL_PII_SALT", PII_SALT)
    from etl_platform.engine.environment import Environment
    from etl_platform.engine.runner import run_pipeline
    from etl_platform.settings import Settings
    from etl_platform.spec.loader import spec_from_document

    prepare_platform_target(args.pg_url, args.child)  # here, so a standalone (profiled) child is a first load too
    path = Path(args.input).resolve()
    spec = spec_from_document(platform_document(args.child, path.name, args.chunk_rows))
    environment = Environment.at(args.pg_url, path.parent, args.workdir.resolve() / "lake", secrets=Settings.from_env().secrets)
    started = time.perf_counter()
    report = run_pipeline(spec, environment)
    seconds = time.perf_counter() - started
    fields = ("rows_read", "rows_published", "rows_quarantined", "rows_filtered", "duration_seconds", "target_rows", "chunks")
    outcome = {k: getattr(report, k) for k in fields}
    outcome["quarantined_by_rule"] = report.quarantined_by_rule
    outcome["skipped_reason"] = report.skipped_reason
    outcome["seconds"] = seconds
    outcome["vm_hwm_mb"] = peak_rss_mb()
    print(json.dumps(outcome))


def peak_rss_mb() -> float:
    """This process's resident-set high-water mark (VmHWM).

    Not ru_maxrss: Linux carries ru_maxrss across fork and exec, so a child would report the
    parent's peak (the parent holds the generated table), while VmHWM belongs to the new image.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # kB
    raise RuntimeError("no VmHWM in /proc/self/status")


def child_command(args: argparse.Namespace, mode: str, path: Path) -> list[str]:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", mode, "--input", str(path)]
    return [*command, "--pg-url", args.pg_url, "--workdir", str(args.workdir), "--chunk-rows", str(args.chunk_rows)]


def watch_peak_rss(process: subprocess.Popen, interval: float = 0.05) -> float:
    """Poll the child's RSS until it exits; a cross-check of the child's own VmHWM."""
    peak = 0
    try:
        watched = psutil.Process(process.pid)
        while process.poll() is None:
            peak = max(peak, watched.memory_info().rss)
            time.sleep(interval)
    except psutil.NoSuchProcess:
        pass
    return peak / (1 << 20)


def bench_platform(args: argparse.Namespace, mode: str, path: Path, rows: int) -> Result:
    """Run the platform in a child process; time is the child's own clock around run_pipeline."""
    env = {**os.environ, "ETL_PII_SALT": PII_SALT, "PYTHONPATH": str(PROJECT_DIR)}
    process = subprocess.Popen(
        child_command(args, mode, path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True
    )
    polled_mb = watch_peak_rss(process)
    stdout, stderr = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"platform {mode} run failed (exit {process.returncode}):\n{stderr[-4000:]}")
    outcome = json.loads(stdout.strip().splitlines()[-1])
    peak = max(outcome["vm_hwm_mb"], polled_mb)
    details = {**outcome, "polled_peak_rss_mb": polled_mb}
    return Result(f"platform {mode}", rows, outcome["seconds"], peak, count_rows(args.pg_url, DATASETS[mode]), details)


# --- report ----------------------------------------------------------------------------------


def verify_loaded(results: dict[str, Result], rows: int) -> None:
    """Refuse to print ratios of contenders that did not do the whole job (a skipped load is fast)."""
    problems = []
    if results["raw COPY"].target_rows != rows:
        problems.append(f"raw COPY left {results['raw COPY'].target_rows} rows, not {rows:,}")
    for mode in DATASETS:
        result = results[f"platform {mode}"]
        if result.details.get("rows_read") != rows:
            problems.append(f"platform {mode} read {result.details.get('rows_read')} rows, not {rows:,}")
    if results["platform merge"].target_rows != results["hand merge"].target_rows:
        merged, by_hand = results["platform merge"].target_rows, results["hand merge"].target_rows
        problems.append(f"platform merge left {merged} rows, the hand merge {by_hand}")
    for mode in ("append", "rls"):
        result = results[f"platform {mode}"]
        if result.target_rows != result.details.get("rows_published"):
            problems.append(f"platform {mode}'s target does not hold the rows it published")
    if problems:
        raise SystemExit("the benchmark did not load what it measures: " + "; ".join(problems))


def ratios(results: dict[str, Result]) -> list[dict[str, Any]]:
    """The three pass/fail checks: two throughput ratios and the memory ceiling."""
    append = results["platform append"].rows_per_second / results["raw COPY"].rows_per_second
    merge = results["platform merge"].rows_per_second / results["hand merge"].rows_per_second
    rls = results["platform rls"].rows_per_second / results["platform append"].rows_per_second
    peak = max(results[f"platform {m}"].peak_rss_mb or 0.0 for m in DATASETS)
    return [
        {
            "check": "platform append / raw COPY (rows/s)",
            "value": append,
            "target": f">= {APPEND_TARGET:.2f}",
            "pass": append >= APPEND_TARGET,
        },
        {
            "check": "platform merge / hand merge (rows/s)",
            "value": merge,
            "target": f">= {MERGE_TARGET:.2f}",
            "pass": merge >= MERGE_TARGET,
        },
        {
            "check": "platform rls / platform append (rows/s)",
            "value": rls,
            "target": f">= {RLS_TARGET:.2f}",
            "pass": rls >= RLS_TARGET,
        },
        {"check": "platform peak RSS (MB)", "value": peak, "target": f"< {RSS_TARGET_MB:.0f}", "pass": peak < RSS_TARGET_MB},
    ]


def render(results: dict[str, Result], checks: list[dict[str, Any]]) -> str:
    header = f"{'contender':<17} {'input rows':>11} {'seconds':>9} {'rows/s':>11} {'peak RSS MB':>12} {'target rows':>12}"
    lines = [header, "-" * len(header)]
    for r in results.values():
        rss = f"{r.peak_rss_mb:.0f}" if r.peak_rss_mb is not None else "-"
        target = f"{r.target_rows:,}" if r.target_rows is not None else "-"
        lines.append(f"{r.name:<17} {r.rows:>11,} {r.seconds:>9.2f} {r.rows_per_second:>11,.0f} {rss:>12} {target:>12}")
    lines.append("")
    for c in checks:
        value = f"{c['value']:.0f}" if "RSS" in c["check"] else f"{c['value']:.2f}"
        lines.append(f"{c['check']:<40} {value:>8}  (target {c['target']})  {'PASS' if c['pass'] else 'FAIL'}")
    for mode in DATASETS:
        d = results[f"platform {mode}"].details
        lines.append(
            f"platform {mode}: read {d['rows_read']:,}, published {d['rows_published']:,}, quarantined "
            f"{d['rows_quarantined']:,}, filtered {d['rows_filtered']:,}, chunks {d['chunks']}"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "targets (exit status 1 if any fails):\n"
            f"  platform append rows/s / raw COPY rows/s   >= {APPEND_TARGET:.2f}\n"
            f"  platform merge rows/s / hand merge rows/s  >= {MERGE_TARGET:.2f}\n"
            f"  platform rls rows/s / platform append rows/s >= {RLS_TARGET:.2f}\n"
            f"  platform peak RSS                          <  {RSS_TARGET_MB:.0f} MB\n\n"
            "The schema `bench` is dropped and recreated on every run. The CSV is WORKDIR/orders_<rows>_seed<seed>.csv\n"
            "and the results WORKDIR/bench_load_<rows>.json."
        ),
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="input rows in the generated CSV (default: 1,000,000)")
    parser.add_argument("--seed", type=int, default=42, help="seed of the generated CSV (default: 42)")
    parser.add_argument(
        "--workdir", type=Path, default=BENCH_DIR / "out", help="folder for the CSV and results (default: benchmarks/out)"
    )
    parser.add_argument(
        "--pg-url",
        default="postgresql://postgres@127.0.0.1:5432/test",
        help="PostgreSQL to load into (default: postgresql://postgres@127.0.0.1:5432/test)",
    )
    parser.add_argument("--chunk-rows", type=int, default=100_000, help="the platform's execution.chunk_rows (default: 100,000)")
    parser.add_argument(
        "--child",
        choices=sorted(DATASETS),
        help="internal: run only this platform mode in this process on --input and print JSON (used for profiling)",
    )
    parser.add_argument("--input", help="with --child: the CSV to load")
    parser.add_argument(
        "--target",
        choices=("postgresql", "mariadb"),
        default="postgresql",
        help="the warehouse: postgresql (this module), or mariadb (bench_load_mariadb.py: LOAD DATA references)",
    )
    return parser.parse_known_args(argv)[0]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.target == "mariadb":
        from bench_load_mariadb import main as mariadb_main

        return mariadb_main([a for a in (argv if argv is not None else sys.argv[1:]) if a not in ("--target", "mariadb")])
    if args.child:
        run_child(args)
        return 0
    path, generated = ensure_input_file(args.workdir, args.rows, args.seed)
    note = f"generated in {generated:.1f}s" if generated else "reused"
    print(f"input: {path} ({path.stat().st_size / (1 << 20):.0f} MB, {args.rows:,} rows, seed {args.seed}, {note})", flush=True)
    reset_schema(args.pg_url)
    results: dict[str, Result] = {}
    for result in (
        lambda: bench_raw_copy(args.pg_url, path, args.rows),
        lambda: bench_hand_merge(args.pg_url, path, args.rows),
        lambda: bench_platform(args, "append", path, args.rows),
        lambda: bench_platform(args, "merge", path, args.rows),
        lambda: bench_platform(args, "rls", path, args.rows),
    ):
        settle(args.pg_url)
        r = result()
        results[r.name] = r
        print(f"  {r.name}: {r.seconds:.2f}s", flush=True)
    verify_loaded(results, args.rows)
    checks = ratios(results)
    print()
    print(render(results, checks))
    output = args.workdir / f"bench_load_{args.rows}.json"
    document = {
        "rows": args.rows,
        "seed": args.seed,
        "input": str(path),
        "chunk_rows": args.chunk_rows,
        "results": [{**asdict(r), "rows_per_second": r.rows_per_second} for r in results.values()],
        "checks": checks,
    }
    output.write_text(json.dumps(document, indent=2, default=str))
    print(f"\nresults: {output}")
    return 0 if all(c["pass"] for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
