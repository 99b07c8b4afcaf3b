"""OpenTelemetry traces of a run: one trace per Dagster run, whatever process a step runs in.

A step process cannot receive a trace context from the run's other processes (Dagster passes none),
so the trace id is derived from the run id (`RunIdGenerator`) and every step span's parent is the
run's span, whose span id is derived too (`run_context`): the steps of one run join one trace
without propagation (docs/architecture.md, "Observability"). Off by default: the engine's tracer is
OpenTelemetry's no-op one unless the settings name an OTLP endpoint or a test passes an exporter.
"""

from __future__ import annotations

import contextvars
import hashlib
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.trace import NonRecordingSpan, Span, SpanContext, StatusCode, TraceFlags, Tracer

from etl_platform.errors import redact

__all__ = ["Context", "Span", "Tracer"]

T = TypeVar("T")
_END = object()
SERVICE_NAME = "etl-platform"
NO_TRACER: Tracer = trace.NoOpTracer()
_run_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("etl_trace_run_id", default=None)
# Set while the run's own span is started: its span id is then the derived one its steps name as parent.
_run_span: contextvars.ContextVar[bool] = contextvars.ContextVar("etl_trace_run_span", default=False)


def run_trace_id(run_id: str) -> int:
    """The trace id of a run: the run id itself when it is a 128-bit hex id (Dagster's are), else its hash."""
    text = run_id.replace("-", "")
    if len(text) == 32:
        try:
            return int(text, 16) or 1
        except ValueError:
            pass
    return int.from_bytes(hashlib.sha256(run_id.encode()).digest()[:16], "big") or 1


def run_span_id(run_id: str) -> int:
    """The span id of a run's own span, the parent of its steps' spans."""
    return int.from_bytes(hashlib.sha256(f"run:{run_id}".encode()).digest()[:8], "big") or 1


class RunIdGenerator(IdGenerator):
    """Trace ids from the run being traced (`traced_run`); span ids at random."""

    def __init__(self) -> None:
        self._random = RandomIdGenerator()

    def generate_span_id(self) -> int:
        run_id = _run_id.get()
        return run_span_id(run_id) if run_id and _run_span.get() else self._random.generate_span_id()

    def generate_trace_id(self) -> int:
        run_id = _run_id.get()
        return run_trace_id(run_id) if run_id else self._random.generate_trace_id()


def current_context() -> Context:
    """The calling thread's trace context, to hand to threads that run part of its span."""
    return otel_context.get_current()


def context_of(span: Span) -> Context:
    """A context whose current span is `span` (a span not made current, such as a load's `write`)."""
    return trace.set_span_in_context(span)


def run_context(run_id: str) -> Context:
    """A context whose current span is the run's span (known by its derived ids, not recorded here)."""
    parent = SpanContext(run_trace_id(run_id), run_span_id(run_id), is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    return trace.set_span_in_context(NonRecordingSpan(parent))


@contextmanager
def run_ids(run_id: str) -> Iterator[None]:
    """Root spans started inside (a load run from the CLI, without a step) get the run's trace id."""
    token = _run_id.set(run_id)
    try:
        yield
    finally:
        _run_id.reset(token)


@contextmanager
def traced_step(tracer: Tracer, run_id: str, name: str, **attributes: str) -> Iterator[Span]:
    """A step's span, under the run's span: its trace id is the run's, in any process."""
    tags = {"etl.run_id": run_id, **attributes}
    with run_ids(run_id), tracer.start_as_current_span(name, context=run_context(run_id), attributes=tags) as span:
        yield span


def record_run_span(tracer: Tracer, run_id: str, job: str, start: float, end: float, succeeded: bool) -> None:
    """The run's own span, recorded once the run has ended, from its start and end times (seconds).

    No process lives for a whole run (the launcher, the run worker and each step's process come and
    go), so the span is made afterwards, by whoever learns that the run ended; its trace and span ids
    are the derived ones the steps' spans already name as their parent, which gives the trace its root.
    """
    run_token, span_token = _run_id.set(run_id), _run_span.set(True)
    try:
        span = tracer.start_span(
            "run", context=Context(), start_time=int(start * 1e9), attributes={"etl.run_id": run_id, "etl.job": job}
        )
    finally:
        _run_span.reset(span_token)
        _run_id.reset(run_token)
    span.set_status(StatusCode.OK if succeeded else StatusCode.ERROR)
    span.end(end_time=int(end * 1e9))


def tracer_provider(exporter: SpanExporter) -> TracerProvider:
    """A provider that exports with `exporter`, its trace ids derived from run ids."""
    provider = TracerProvider(resource=Resource.create({"service.name": SERVICE_NAME}), id_generator=RunIdGenerator())
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def otlp_tracer(endpoint: str | None) -> Tracer:
    """The tracer the settings ask for: OTLP over HTTP to `endpoint`, or the no-op tracer when unset."""
    if not endpoint:
        return NO_TRACER
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return tracer_provider(OTLPSpanExporter(endpoint=endpoint)).get_tracer(SERVICE_NAME)


def statement_span(
    tracer: Tracer, parent: Context | None, name: str, dialect: str, sql: str, attributes: dict[str, int | str]
) -> AbstractContextManager[Span]:
    """A warehouse statement's span: under the current span, or `parent` on a thread that has none.
    With traces off, nothing: every statement of every load passes here, so its text is not redacted for no one."""
    if tracer is NO_TRACER:
        return nullcontext(trace.INVALID_SPAN)
    context = None if trace.get_current_span().get_span_context().is_valid else parent
    first = sql.lstrip().split(None, 1)
    operation = first[0].upper() if first else ""
    return tracer.start_as_current_span(
        name,
        context=context,
        attributes={"db.system.name": dialect, "db.operation.name": operation, "db.query.text": redact(sql[:500]), **attributes},
    )


def traced_iteration(tracer: Tracer, name: str, items: Iterable[T]) -> Iterator[T]:
    """`items`, each one's production (a source reading a chunk) a `name` span with its rows."""
    iterator = iter(items)
    while True:
        with tracer.start_as_current_span(name) as span:
            item = next(iterator, _END)  # the last span finds the end of the input: no rows
            span.set_attribute("rows", getattr(getattr(item, "table", None), "num_rows", 0))
        if item is _END:
            return
        yield item
