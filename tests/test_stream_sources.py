"""Stream sources against the machine's NATS JetStream, Redis and RabbitMQ, and librdkafka's mock cluster.

Every test gets its own stream, queue or topic (tests/streams_brokers.py), deleted after it. What is
proven for each broker: messages land exactly once; a run killed with SIGKILL at each point of a load
(after reading, before the publish, between the publish and the acknowledgement, after it) loses and
duplicates nothing when the pipeline runs again; a poison message is dead-lettered with its position
and error without holding up the rest; a circuit breaker trip leaves the position where it was.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import signal
import threading
import time

import pika
import pytest
from confluent_kafka import Producer

from etl_platform.engine.options import RunOptions
from etl_platform.engine.runner import run_pipeline
from etl_platform.errors import SourceError
from etl_platform.quality.audit import QualityGateFailed
from etl_platform.settings import Secrets
from etl_platform.sources.streams import open_stream_source
from etl_platform.spec import PipelineSpec
from tests.conftest import environment_for, pipeline, rows
from tests.streams_brokers import RABBIT_URL, SECRETS, BrokerStream, broker_stream, waiting

BROKERS = ["nats", "redis", "rabbitmq", "kafka"]
KILL_POINTS = ["read", "checkpoint", "acknowledge", "acknowledged"]


def stream_pipeline(stream: BrokerStream, **fields) -> PipelineSpec:
    source = {**stream.source, "max_messages": 10, "max_wait_seconds": 1.0, **fields.pop("source", {})}
    return pipeline(id="events", source=source, destination={"dataset": "raw.events", "write": "append"}, **fields)


def environment(url: str, landing):
    return dataclasses.replace(environment_for(url, landing), secrets=Secrets(SECRETS))


def load(spec: PipelineSpec, url: str, landing, options: RunOptions | None = None):
    return run_pipeline(spec, environment(url, landing), options)


def published(url: str) -> list[int]:
    return [int(r["n"]) for r in rows(url, "SELECT n FROM raw.events")]


def drain(spec: PipelineSpec, url: str, landing, runs: int = 8) -> None:
    """Run while messages wait after the saved position: what the stream sensor does."""
    for _ in range(runs):
        if not waiting(spec, url):
            return
        load(spec, url, landing)
    raise AssertionError(f"the stream was not drained in {runs} runs")


def events(start: int, count: int) -> list[bytes]:
    return [json.dumps({"n": n, "name": f"event {n}"}).encode() for n in range(start, start + count)]


class KillAt:
    """The stream source, with the process killed (SIGKILL, nothing after it runs) at one point of the load."""

    def __init__(self, source, point: str):
        self.source, self.point = source, point

    def _die_at(self, point: str) -> None:
        if point == self.point:
            os.kill(os.getpid(), signal.SIGKILL)

    def describe(self):
        return self.source.describe()

    def total_bytes(self):
        return None

    def fingerprint(self):
        return self.source.fingerprint()

    def read(self, chunk_rows: int):
        for chunk in self.source.read(chunk_rows):
            yield chunk
            self._die_at("read")

    def checkpoint(self):
        checkpoint = self.source.checkpoint()
        self._die_at("checkpoint")
        return checkpoint

    def acknowledge(self, checkpoint) -> None:
        self._die_at("acknowledge")  # the publish has committed: between publish and acknowledge
        self.source.acknowledge(checkpoint)
        self._die_at("acknowledged")

    def close(self) -> None:
        self.source.close()


def _killed_run(spec: PipelineSpec, url: str, landing, point: str) -> None:
    opener = lambda saved: KillAt(open_stream_source(spec.source, Secrets(SECRETS), saved), point)  # noqa: E731
    load(spec, url, landing, RunOptions(source=opener))


def run_killed(spec: PipelineSpec, url: str, landing, point: str) -> int:
    process = multiprocessing.get_context("fork").Process(target=_killed_run, args=(spec, url, landing, point))
    process.start()
    process.join(60)
    return process.exitcode


@pytest.mark.parametrize("broker", BROKERS)
def test_messages_land_once_and_a_kill_anywhere_loses_and_duplicates_nothing(broker: str, duckdb_url: str, landing) -> None:
    with broker_stream(broker) as stream:
        spec = stream_pipeline(stream)
        stream.produce(events(0, 15))
        first = load(spec, duckdb_url, landing)
        assert first.rows_read == 10 and first.rows_published == 10
        drain(spec, duckdb_url, landing)
        assert sorted(published(duckdb_url)) == list(range(15))
        produced = 15
        for point in KILL_POINTS:
            stream.produce(events(produced, 7))
            produced += 7
            assert run_killed(spec, duckdb_url, landing, point) == -signal.SIGKILL, point
            drain(spec, duckdb_url, landing)
            assert sorted(published(duckdb_url)) == list(range(produced)), f"{broker}, killed at {point}"


def test_a_kafka_run_reads_the_waiting_messages_even_when_its_first_fetch_outlasts_max_wait(duckdb_url: str, landing) -> None:
    """Round trips of 300 ms: a fresh consumer's first messages take about 2 s, four times max_wait_seconds.
    The run must not publish an empty batch from a topic whose messages wait (its high watermark)."""
    with broker_stream("kafka", rtt_ms=300) as stream:
        stream.produce(events(0, 5))
        spec = stream_pipeline(stream, source={"max_wait_seconds": 0.5})
        assert load(spec, duckdb_url, landing).rows_published == 5
        assert sorted(published(duckdb_url)) == list(range(5))
        assert waiting(spec, duckdb_url) == 0


def test_a_kafka_run_refuses_to_skip_messages_that_retention_deleted(duckdb_url: str, landing) -> None:
    """The mock cluster keeps about 5 MiB per partition: overflowing each one deletes its oldest
    messages, those after the saved offsets among them. The run must say so, not start further on."""
    with broker_stream("kafka") as stream:
        stream.produce(events(0, 5))
        spec = stream_pipeline(stream)
        drain(spec, duckdb_url, landing)
        bulk = Producer({"bootstrap.servers": stream.source["url"].removeprefix("kafka://")})
        for partition in range(4):
            for n in range(600):  # 600 incompressible 12 KB messages: more than the partition keeps
                bulk.produce(stream.source["topic"], json.dumps({"n": n, "pad": os.urandom(6_000).hex()}), partition=partition)
            bulk.flush(60)
        with pytest.raises(SourceError, match=r"deleted by the topic's retention before this pipeline loaded them"):
            load(spec, duckdb_url, landing)
        assert sorted(published(duckdb_url)) == list(range(5))


def test_a_rabbitmq_backlog_read_in_short_runs_dead_letters_nothing(duckdb_url: str, landing) -> None:
    """Runs of 0.05 s against 3,000 waiting messages: the broker delivers the whole prefetch window at once.
    Requeuing what a run did not take counts as a delivery, so three such runs dead-lettered healthy messages."""
    with broker_stream("rabbitmq") as stream:
        stream.produce(events(0, 3000))
        spec = stream_pipeline(stream, source={"max_messages": 3000, "max_wait_seconds": 0.05})
        drain(spec, duckdb_url, landing, runs=20)
        assert sorted(published(duckdb_url)) == list(range(3000))
        assert stream.dead_letters() == []


def test_a_rabbitmq_run_ends_near_max_wait_while_messages_keep_arriving(duckdb_url: str, landing) -> None:
    """A message every 0.2 s, so deliveries never pause for a second: the run still ends about max_wait_seconds
    after it started, with what it took, not when max_messages have trickled in (about 20 s here)."""
    with broker_stream("rabbitmq") as stream:
        spec = stream_pipeline(stream, source={"max_messages": 100, "max_wait_seconds": 1.0})
        sent, stop = [], threading.Event()

        def trickle() -> None:  # a connection of its own: pika's are not shared between threads
            connection = pika.BlockingConnection(pika.URLParameters(RABBIT_URL.replace("${RABBIT_PASSWORD}", "guest")))
            channel = connection.channel()
            for n in range(100):
                if stop.is_set():
                    break
                channel.basic_publish("", stream.source["queue"], events(n, 1)[0])
                sent.append(n)
                time.sleep(0.2)
            connection.close()

        producer = threading.Thread(target=trickle)
        producer.start()
        try:
            time.sleep(0.5)
            started = time.monotonic()
            first = load(spec, duckdb_url, landing)
            elapsed = time.monotonic() - started
        finally:
            stop.set()
            producer.join()
        assert first.rows_published > 0 and elapsed < 10, f"{first.rows_published} messages in {elapsed:.1f} s"
        drain(spec, duckdb_url, landing)
        assert sorted(published(duckdb_url)) == sent


@pytest.mark.parametrize("broker", BROKERS)
def test_a_poison_message_is_dead_lettered_and_the_rest_lands(broker: str, duckdb_url: str, landing) -> None:
    with broker_stream(broker) as stream:
        spec = stream_pipeline(stream)
        stream.produce([*events(0, 3), b"{not json", *events(3, 3)])
        drain(spec, duckdb_url, landing)
        assert sorted(published(duckdb_url)) == list(range(6))
        if broker == "rabbitmq":
            ((body, headers),) = stream.dead_letters()
            assert body == b"{not json" and "invalid JSON" in headers["x-etl-error"] and headers["x-etl-position"] == "m3"
        else:
            (dead,) = rows(duckdb_url, "SELECT * FROM _etl.stream_dead_letters")
            assert dead["message"] == "{not json" and "invalid JSON" in dead["error"]
            assert dead["stream"].startswith(f"{broker}:") and dead["position"]


def test_messages_whose_runs_keep_failing_are_dead_lettered_after_n_deliveries(duckdb_url: str, landing) -> None:
    with broker_stream("redis") as stream:  # Redis counts deliveries (XPENDING); RabbitMQ's broker does it itself
        spec = stream_pipeline(stream, source={"dead_letter": {"after_failures": 2}})
        stream.produce(events(0, 2))
        for _ in range(2):  # two runs die after reading the batch: each delivery counts
            assert run_killed(spec, duckdb_url, landing, "read") == -signal.SIGKILL
        stream.produce(events(2, 1))
        drain(spec, duckdb_url, landing)
        assert published(duckdb_url) == [2]  # the twice-failed pair left the stream, the new message landed
        dead = rows(duckdb_url, "SELECT message, error FROM _etl.stream_dead_letters ORDER BY position")
        assert [json.loads(d["message"])["n"] for d in dead] == [0, 1]
        assert all("delivered 3 times without its batch being published" in d["error"] for d in dead)


@pytest.mark.parametrize("broker", BROKERS)
def test_a_breaker_trip_leaves_the_position_and_quarantined_rows_say_where_they_came_from(
    broker: str, duckdb_url: str, landing
) -> None:
    with broker_stream(broker) as stream:
        rules = {
            "rules": [{"field": "name", "rule": "NotNull"}],
            "circuit_breaker": {"error_threshold": 50.0, "min_record_count": 1},
        }
        spec = stream_pipeline(stream, quality=rules)
        bad = [json.dumps({"n": n}).encode() for n in range(100, 106)]
        stream.produce([*events(0, 4), *bad])
        with pytest.raises(QualityGateFailed):
            load(spec, duckdb_url, landing)
        quarantined = rows(duckdb_url, "SELECT source_file FROM _etl.quarantine ORDER BY source_file")
        assert len(quarantined) == 6 and all(r["source_file"].startswith(f"{broker}:{spec.source.name}#") for r in quarantined)
        # Nothing was acknowledged: the same messages come again, and pass once the rule is relaxed.
        relaxed = stream_pipeline(stream, quality={"rules": [{"field": "name", "rule": "NotNull", "severity": "warn"}]})
        again = load(relaxed, duckdb_url, landing)
        assert again.rows_read == 10
        assert sorted(published(duckdb_url)) == [0, 1, 2, 3, *range(100, 106)]


def test_the_password_never_shows(duckdb_url: str, landing) -> None:
    source = {"type": "stream", "broker": "rabbitmq", "url": "amqp://guest:${RABBIT_PASSWORD}@127.0.0.1:1/%2F", "queue": "q"}
    spec = pipeline(id="events", source=source, destination={"dataset": "raw.events", "write": "append"})
    with pytest.raises(SourceError) as raised:
        load(spec, duckdb_url, landing)
    assert "guest:***@127.0.0.1:1" in str(raised.value) and "guest:guest" not in str(raised.value)
    with pytest.raises(Exception, match="environment variable"):
        pipeline(id="e", source={**source, "url": "amqp://guest:guest@127.0.0.1/%2F"}, destination={"dataset": "raw.e"})
