"""The celery workers a broker-configured deployment runs its steps on: the broker answers, and every
queue has a worker.

With `ETL_CELERY_BROKER` set, every step is a celery task (assets/workers.py). A broker that is down
fails each run with a bare "Connection refused", and a queue no worker consumes (often `ml`, whose
workers are started apart) leaves its steps waiting for ever with nothing failed: `etl doctor` says
both, and `etl run` checks the broker before it starts a run (docs/scaling.md).
"""

from __future__ import annotations

from assets.workers import DEFAULT_QUEUE, ML_QUEUE
from etl_platform.errors import redact
from etl_platform.observability.findings import Finding, probe

BROKER_FIX = "start the broker, or correct ETL_CELERY_BROKER (unset it to run steps in local processes)"
# How long workers have to answer the broadcast that asks for their queues.
INSPECT_TIMEOUT_SECONDS = 3.0


def reach_broker(url: str) -> str:
    """Connect to the broker once (no retries); raises ConnectionError naming it when it cannot."""
    from kombu import Connection

    try:
        with Connection(url, connect_timeout=5) as connection:
            connection.ensure_connection(max_retries=1)
    except Exception as error:  # kombu raises the transport's own errors (socket, amqp, redis)
        raise ConnectionError(f"cannot reach the celery broker {redact(url)} (ETL_CELERY_BROKER): {error}") from error
    return redact(url)


def celery_findings(url: str) -> list[Finding]:
    """The broker reachable, then the workers that consume each of the platform's queues."""
    broker = probe("celery broker", lambda: reach_broker(url), BROKER_FIX)
    if not broker.ok:
        return [broker, Finding("celery queues", False, "not checked: the broker is unreachable", BROKER_FIX)]
    consumers = _queue_consumers(url)
    findings = [broker]
    for queue in (DEFAULT_QUEUE, ML_QUEUE):
        workers = sorted(consumers.get(queue, ()))
        detail = f"queue {queue}: {len(workers)} workers ({', '.join(workers)})" if workers else f"queue {queue}: no worker"
        fix = f"start one: `dagster-celery worker start -A dagster_celery.app -y celery.yaml -q {queue}`"
        findings.append(Finding(f"celery queue {queue}", bool(workers), detail + ("" if workers else ", so its steps wait"), fix))
    return findings


def _queue_consumers(url: str) -> dict[str, set[str]]:
    from celery import Celery

    app = Celery(broker=url)
    try:
        answers = app.control.inspect(timeout=INSPECT_TIMEOUT_SECONDS).active_queues() or {}
    finally:
        app.close()
    consumers: dict[str, set[str]] = {}
    for worker, queues in answers.items():
        for queue in queues:
            consumers.setdefault(queue["name"], set()).add(worker)
    return consumers
