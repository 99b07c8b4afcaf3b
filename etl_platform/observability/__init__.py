"""Observability of the engine: health checks (`etl doctor`), structured logs, traces and alert delivery.

Engine-side: nothing here imports Dagster. What reads the Dagster instance (runs, daemon heartbeats,
the metrics collector) is in `etl_platform.instance`; the CLI joins both (docs/operations.md).
"""
