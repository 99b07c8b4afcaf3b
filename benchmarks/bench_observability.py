"""Observability overhead: the load benchmark's platform append with traces and JSON logs on vs off.

One run reuses bench_load's orders CSV and pipeline and loads it into PostgreSQL in child processes,
alternating `off` (the defaults: no-op tracer, text logs) and `on` (ETL_LOG_FORMAT=json and
OTEL_EXPORTER_OTLP_ENDPOINT pointing at a local OTLP/HTTP receiver this script serves, so every
span is really encoded and sent). Each child times run_pipeline plus the flush of its spans; the
medians of --repeats runs per side give the overhead, target <= 5% of the load time.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import statistics
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from bench_load import (
    BENCH_DIR,
    PII_SALT,
    PROJECT_DIR,
    ensure_input_file,
    platform_document,
    prepare_platform_target,
    reset_schema,
    settle,
)

OVERHEAD_TARGET = 0.05
MODE = "append"


class Receiver(BaseHTTPRequestHandler):
    """An OTLP/HTTP endpoint that reads each export and answers 200, counting the bytes it got."""

    received = 0

    def do_POST(self) -> None:
        Receiver.received += len(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args) -> None:  # quiet
        pass


def run_child(args: argparse.Namespace) -> None:
    """One load in this process, observed as the settings say; prints seconds and spans as JSON."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    from etl_platform.engine.environment import Environment
    from etl_platform.engine.runner import run_pipeline
    from etl_platform.logs import correlated, install_log_format
    from etl_platform.settings import Settings
    from etl_platform.spec.loader import spec_from_document
    from etl_platform.tracing import NO_TRACER, tracer_provider

    settings = Settings.from_env()
    install_log_format(settings.log_format)
    provider = tracer_provider(OTLPSpanExporter(endpoint=settings.traces_endpoint)) if settings.traces_endpoint else None
    prepare_platform_target(args.pg_url, MODE)
    path = Path(args.input).resolve()
    spec = spec_from_document(platform_document(MODE, path.name, args.chunk_rows))
    environment = Environment.at(args.pg_url, path.parent, args.workdir.resolve() / "lake", secrets=settings.secrets)
    environment = dataclasses.replace(environment, tracer=provider.get_tracer("bench") if provider else NO_TRACER)
    started = time.perf_counter()
    with correlated(pipeline=spec.id, dataset=spec.destination.dataset):
        report = run_pipeline(spec, environment)
        logging.getLogger("etl_platform.bench").info(
            "%s: %d read, %d published", spec.id, report.rows_read, report.rows_published
        )
    if provider is not None:
        provider.force_flush()  # the spans' export is part of the cost
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "rows_read": report.rows_read, "rows_published": report.rows_published}))


def bench_child(args: argparse.Namespace, path: Path, observed: bool, endpoint: str) -> dict:
    env = {**os.environ, "ETL_PII_SALT": PII_SALT, "PYTHONPATH": str(PROJECT_DIR)}
    for name in ("ETL_LOG_FORMAT", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        env.pop(name, None)
    if observed:
        env.update(ETL_LOG_FORMAT="json", OTEL_EXPORTER_OTLP_ENDPOINT=endpoint)
    command = [sys.executable, str(Path(__file__).resolve()), "--child", "--input", str(path), "--pg-url", args.pg_url]
    command += ["--workdir", str(args.workdir), "--chunk-rows", str(args.chunk_rows)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the {'observed' if observed else 'plain'} load failed:\n{done.stderr[-4000:]}")
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    outcome["json_lines"] = sum(line.startswith("{") for line in done.stderr.splitlines())
    return outcome


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="input rows of bench_load's CSV (default: 1,000,000)")
    parser.add_argument("--seed", type=int, default=42, help="seed of the generated CSV (default: 42)")
    parser.add_argument("--repeats", type=int, default=3, help="loads per side, alternating (default: 3)")
    parser.add_argument("--workdir", type=Path, default=BENCH_DIR / "out", help="folder of the CSV (default: benchmarks/out)")
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/test", help="PostgreSQL to load into")
    parser.add_argument("--chunk-rows", type=int, default=100_000, help="the platform's execution.chunk_rows (default: 100,000)")
    parser.add_argument("--child", action="store_true", help="internal: run one load in this process")
    parser.add_argument("--input", help="with --child: the CSV to load")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        run_child(args)
        return 0
    path, _ = ensure_input_file(args.workdir, args.rows, args.seed)
    reset_schema(args.pg_url)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    runs: dict[bool, list[dict]] = {False: [], True: []}
    try:
        for _ in range(args.repeats):
            for observed in (False, True):
                settle(args.pg_url)
                outcome = bench_child(args, path, observed, endpoint)
                runs[observed].append(outcome)
                print(f"  {'on ' if observed else 'off'}: {outcome['seconds']:.2f}s", flush=True)
    finally:
        server.shutdown()
        server.server_close()
    off, on = (statistics.median(r["seconds"] for r in runs[side]) for side in (False, True))
    fastest = {side: min(r["seconds"] for r in runs[side]) for side in (False, True)}
    overhead = on / off - 1
    print(f"\n{args.rows:,} rows, {args.repeats} loads per side, alternating (median seconds)")
    print(f"fastest load: off {fastest[False]:.2f}, on {fastest[True]:.2f}")
    print(f"observability off {off:9.2f}")
    print(f"observability on  {on:9.2f}   ({runs[True][-1]['json_lines']} JSON log lines, {Receiver.received:,} OTLP bytes sent)")
    verdict = "PASS" if overhead <= OVERHEAD_TARGET else "FAIL"
    print(f"on / off = {on / off:.3f}: overhead {overhead:+.1%} (target <= {OVERHEAD_TARGET:.0%})  {verdict}")
    return 0 if overhead <= OVERHEAD_TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
