"""REST benchmark: N records over N/1000 pages from a local HTTP server, the platform against dlt's rest_api.

The parent process serves the pages (pre-rendered JSON, stdlib ThreadingHTTPServer, so the server
costs the same for both) and runs each contender in a child process of its own, so each one's
peak RSS is its own:

  platform   run_pipeline with a `type: rest` source (page_number paginator, records at $.data),
             write: append into DuckDB, raw pages kept gzip-compressed in the lake (its default).
  dlt        dlt's rest_api_source with the same paginator and selector, into DuckDB.

records/s is N divided by the child's own clock around the load (no interpreter start-up).
Target: platform at least 2x dlt. Usage: .venv/bin/python benchmarks/bench_rest.py --records 1000000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

PAGE_SIZE = 1000
TARGET_RATIO = 2.0
PAGINATOR = {"type": "page_number", "page_param": "page", "base_page": 1, "total_path": "$.total_pages"}


def render_pages(records: int) -> list[bytes]:
    pages = max(1, -(-records // PAGE_SIZE))
    bodies = []
    for page in range(pages):
        low = page * PAGE_SIZE + 1
        data = [
            {
                "id": i,
                "name": f"customer {i}",
                "amount": round(i * 0.37 % 500, 2),
                "updated_at": f"2026-11-{1 + i % 28:02d}T10:00:00Z",
            }
            for i in range(low, min(low + PAGE_SIZE, records + 1))
        ]
        bodies.append(json.dumps({"data": data, "total_pages": pages}).encode())
    return bodies


def serve(pages: list[bytes]) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            page = int(parse_qs(urlsplit(self.path).query).get("page", ["1"])[0])
            body = pages[page - 1] if 1 <= page <= len(pages) else b'{"data": []}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            """Quiet: a line per page would be the benchmark's output."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def run_platform(base: str, folder: Path) -> int:
    from etl_platform.engine.environment import Environment
    from etl_platform.engine.options import RunOptions
    from etl_platform.engine.runner import run_pipeline
    from etl_platform.spec.loader import spec_from_document

    spec = spec_from_document(
        {
            "id": "bench_rest",
            "source": {
                "type": "rest",
                "client": {"base_url": base},
                "resource": {"path": "/items", "records": "$.data", "paginator": PAGINATOR},
            },
            "destination": {"dataset": "bench.items", "write": "append"},
        }
    )
    (folder / "landing").mkdir(exist_ok=True)
    environment = Environment.at(f"duckdb:///{folder / 'platform.duckdb'}", folder / "landing", folder / "lake")
    return run_pipeline(spec, environment, RunOptions(run_id="bench")).rows_published


def run_dlt(base: str, folder: Path) -> int:
    import dlt
    from dlt.sources.rest_api import rest_api_source

    paginator = {"type": "page_number", "page_param": "page", "base_page": 1, "total_path": "total_pages"}
    source = rest_api_source(
        {
            "client": {"base_url": base, "paginator": paginator},
            "resources": [{"name": "items", "endpoint": {"path": "items", "data_selector": "data"}}],
        }
    )
    pipeline = dlt.pipeline(
        pipeline_name="bench_rest",
        destination=dlt.destinations.duckdb(str(folder / "dlt.duckdb")),
        dataset_name="bench",
        pipelines_dir=str(folder / "dlt_pipelines"),
    )
    pipeline.run(source)
    with pipeline.sql_client() as client:
        return client.execute_sql("SELECT count(*) FROM items")[0][0]


def peak_rss_mb() -> float:
    """This process's high-water RSS (VmHWM); not ru_maxrss, which Linux carries over from the parent across exec."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def child(side: str, base: str, folder: Path) -> None:
    if side == "platform":  # imported before the clock starts: start-up is no part of the load
        import etl_platform.engine.runner  # noqa: F401
    else:
        import dlt.sources.rest_api  # noqa: F401
    started = time.perf_counter()
    rows = (run_platform if side == "platform" else run_dlt)(base, folder)
    seconds = time.perf_counter() - started
    rss_mb = peak_rss_mb()
    print(json.dumps({"side": side, "rows": rows, "seconds": seconds, "rss_mb": rss_mb}))


def measure(side: str, base: str, folder: Path) -> dict:
    (folder / side).mkdir()
    command = [sys.executable, __file__, "--side", side, "--base", base, "--folder", str(folder / side)]
    output = subprocess.run(command, capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parents[1])
    return json.loads(output.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--side", choices=["platform", "dlt"], help=argparse.SUPPRESS)
    parser.add_argument("--base", help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        child(args.side, args.base, args.folder)
        return
    pages = render_pages(args.records)
    server = serve(pages)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with tempfile.TemporaryDirectory(prefix="bench_rest_") as folder:
            results = {side: measure(side, base, Path(folder)) for side in ("platform", "dlt")}
    finally:
        server.shutdown()
    print(f"{args.records:,} records over {len(pages):,} pages from a local server")
    for side, result in results.items():
        assert result["rows"] == args.records, f"{side} loaded {result['rows']} of {args.records} records"
        rate = args.records / result["seconds"]
        print(f"  {side:9s} {result['seconds']:8.2f} s  {rate:12,.0f} records/s  peak RSS {result['rss_mb']:7.0f} MB")
    ratio = results["dlt"]["seconds"] / results["platform"]["seconds"]
    print(f"  ratio platform/dlt: {ratio:.2f}x (target >= {TARGET_RATIO}x): {'met' if ratio >= TARGET_RATIO else 'NOT met'}")


if __name__ == "__main__":
    main()
