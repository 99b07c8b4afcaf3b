"""`etl metrics serve`: the Prometheus exporter (one scrape = one read of the warehouse and the instance)."""

from __future__ import annotations

import signal
import threading

import click

from etl_platform.cli.common import settings


@click.group()
def metrics() -> None:
    """Prometheus metrics of the platform (docs/operations.md lists them)."""


@metrics.command()
@click.option("--port", default=9464, show_default=True, help="Port of the /metrics endpoint.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: every interface).")
def serve(port: int, host: str) -> None:
    """Serve /metrics over HTTP until stopped; every scrape reads the `_etl` tables and the Dagster instance."""
    from prometheus_client import CollectorRegistry, start_http_server

    from etl_platform.instance.metrics import PlatformCollector

    resolved = settings()
    registry = CollectorRegistry()
    registry.register(PlatformCollector(resolved.warehouse_url, str(resolved.dagster_home), resolved.secrets))
    stopped = threading.Event()
    # Handlers of its own: a process can inherit SIGTERM and SIGINT as ignored (a test runner's worker
    # passes that on through exec), and an exporter that cannot be stopped outlives its deployment.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopped.set())
    server, thread = start_http_server(port, addr=host, registry=registry)
    click.echo(f"serving metrics on http://{host}:{port}/metrics", err=True)
    try:
        stopped.wait()
    finally:
        server.shutdown()
        thread.join()
