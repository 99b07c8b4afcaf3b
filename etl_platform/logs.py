"""Structured logs: with ETL_LOG_FORMAT=json, one JSON line per platform log event, with its correlation ids.

A line carries the run id, step, pipeline, dataset and tenant of the load it belongs to (set once
per step with `correlated`) and the id of the current trace (etl_platform.tracing), so logs and
traces join on one key. Messages and exception texts pass through `errors.redact`: a password in a
URL never reaches a line (docs/operations.md, "Logs"). The default stays human-readable text.
"""

from __future__ import annotations

import contextvars
import datetime
import logging
from collections.abc import Iterator
from contextlib import contextmanager

import orjson
from opentelemetry import trace

from etl_platform.errors import SpecError, redact

LOG_FORMATS = ("text", "json")
PLATFORM_LOGGER = "etl_platform"
_fields: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar("etl_log_fields", default=None)


@contextmanager
def correlated(**fields: str | None) -> Iterator[None]:
    """Log events inside carry these fields (run_id, step, pipeline, dataset, tenant; None ones left out)."""
    token = _fields.set({**(_fields.get() or {}), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _fields.reset(token)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, the correlation fields, trace id, error."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
            **(_fields.get() or {}),
        }
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            line["trace_id"] = format(span.trace_id, "032x")
        if record.exc_info:
            line["error"] = redact(self.formatException(record.exc_info))
        return orjson.dumps(line, default=str).decode()


def install_log_format(log_format: str) -> None:
    """With `json`, the platform's logger writes JSON lines to stderr (its own handler, replaced on a
    later call); with `text`, logging stays as the process set it up."""
    if log_format not in LOG_FORMATS:
        raise SpecError(f"ETL_LOG_FORMAT is {log_format!r}; set it to one of {', '.join(LOG_FORMATS)} (text is the default)")
    if log_format == "text":
        return
    logger = logging.getLogger(PLATFORM_LOGGER)
    for handler in [h for h in logger.handlers if getattr(h, "etl_format", False)]:
        logger.removeHandler(handler)
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    handler.etl_format = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
