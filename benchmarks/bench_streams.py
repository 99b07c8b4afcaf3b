"""Stream sources benchmark: N JSON messages per broker through the platform, against the raw client.

For each broker (NATS JetStream, Redis Streams, RabbitMQ, Kafka on librdkafka's mock cluster) a fresh
stream gets N messages `{"n": ..., "ts": <publish time>, "name": ...}` (tests/streams_brokers.py's
producers: RabbitMQ in transactions of 10,000, NATS with acks gathered per 10,000, Kafka compressed
with zstd because the mock cluster deletes a partition's oldest messages beyond a few MB); then:

  platform    messages/s of `run_pipeline` runs (micro-batches of --batch messages, append into a
              DuckDB file) until no message waits after the saved position (the stream sensor's
              backlog: for Kafka the high watermarks less the saved offsets; a run that reads
              nothing while messages wait is retried, three such runs end the benchmark), and the
              p95 publish-to-visible latency of every message: the time its batch's publish
              committed (run_pipeline returned) less the time it was published (a message waits
              while the batches before it load);
  reference   messages/s of the broker's raw client consuming the same N messages and decoding
              each with orjson, acknowledging per batch, with no warehouse (a second consumer
              group or durable; for RabbitMQ the queue is filled again).

The ratio is platform / reference. The benchmark refuses to print figures unless every message was
published exactly once (as many rows as messages, no `n` twice) and the reference read all N.
1,000,000 is the target size; on a shared machine say the load average with the figures.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import duckdb
import orjson

from etl_platform.engine.runner import run_pipeline
from etl_platform.settings import Secrets
from tests.conftest import environment_for, pipeline
from tests.streams_brokers import SECRETS, BrokerStream, broker_stream, waiting


def messages(count: int) -> list[bytes]:
    return [orjson.dumps({"n": n, "ts": time.time(), "name": f"event {n}"}) for n in range(count)]


def platform(stream: BrokerStream, count: int, batch: int, folder: Path) -> tuple[float, list[float]]:
    url = f"duckdb:///{folder / 'bench.duckdb'}"
    source = {**stream.source, "max_messages": batch, "max_wait_seconds": 1.0}
    spec = pipeline(id="bench", source=source, destination={"dataset": "raw.bench", "write": "append"})
    environment = dataclasses.replace(environment_for(url, folder / "landing"), secrets=Secrets(SECRETS))
    latencies: list[float] = []
    started = time.perf_counter()
    published, empty_runs = 0, 0
    while published < count:
        report = run_pipeline(spec, environment, None)
        visible = time.time()
        if report.rows_read == 0:
            if not (left := waiting(spec, url)):
                break
            empty_runs += 1
            if empty_runs == 3:
                raise SystemExit(f"{stream.broker}: 3 runs read nothing while {left:,} messages wait")
            continue
        with duckdb.connect(str(folder / "bench.duckdb"), read_only=True) as db:
            stamps = db.execute(f"SELECT ts FROM raw.bench LIMIT {report.rows_published} OFFSET {published}").fetchall()
        latencies += [visible - float(ts) for (ts,) in stamps]
        published += report.rows_published
    elapsed = time.perf_counter() - started
    with duckdb.connect(str(folder / "bench.duckdb"), read_only=True) as db:
        total, distinct = db.execute("SELECT count(*), count(DISTINCT n) FROM raw.bench").fetchone()
    if total != count or distinct != count:
        raise SystemExit(f"{stream.broker}: {total} rows, {distinct} distinct, expected {count}: not exactly once")
    return count / elapsed, latencies


def reference(stream: BrokerStream, count: int, batch: int) -> float:
    """The raw client: consume `count` messages in batches, decode each, acknowledge each batch."""
    if stream.broker == "rabbitmq":  # the platform drained the queue: fill it again, before the clock starts
        stream.produce(messages(count))
    started = time.perf_counter()
    seen = REFERENCES[stream.broker](stream, count, batch)
    if seen < count:
        raise SystemExit(f"{stream.broker}: the reference read {seen:,} of {count:,} messages")
    return count / (time.perf_counter() - started)


def _redis_reference(stream: BrokerStream, count: int, batch: int) -> int:
    import redis

    source, seen = stream.source, 0
    client = redis.Redis.from_url(source["url"])
    client.xgroup_create(source["stream"], "reference", id="0")
    while seen < count:
        entries = client.xreadgroup("reference", "r", {source["stream"]: ">"}, count=batch, block=1000)[0][1]
        [orjson.loads(fields[b"data"]) for _, fields in entries]
        client.xack(source["stream"], "reference", *[i for i, _ in entries])
        seen += len(entries)
    return seen


def _kafka_reference(stream: BrokerStream, count: int, batch: int) -> int:
    from confluent_kafka import Consumer

    source, seen, idle = stream.source, 0, 0
    servers = source["url"].removeprefix("kafka://")
    consumer = Consumer({"bootstrap.servers": servers, "group.id": "reference", "auto.offset.reset": "earliest"})
    consumer.subscribe([source["topic"]])
    while seen < count and idle < 30:  # 30 s without a message: the reference stops short, and says so
        records = consumer.consume(batch, timeout=1)
        [orjson.loads(r.value()) for r in records if not r.error()]
        seen += len(records)
        idle = 0 if records else idle + 1
    consumer.close()
    return seen


def _nats_reference(stream: BrokerStream, count: int, batch: int) -> int:
    """A durable pull consumer of its own (AckAll), on a connection and event loop of its own."""
    import asyncio

    import nats
    from nats.js.api import AckPolicy, ConsumerConfig

    async def consume() -> int:
        connection = await nats.connect(stream.source["url"])
        js, name, seen = connection.jetstream(), stream.source["stream"], 0
        await js.add_consumer(name, ConsumerConfig(durable_name="reference", ack_policy=AckPolicy.ALL, max_ack_pending=-1))
        subscription = await js.pull_subscribe_bind("reference", name)
        try:
            while seen < count:
                fetched = await subscription.fetch(min(batch, 10_000), timeout=5)
                [orjson.loads(m.data) for m in fetched]
                await fetched[-1].ack_sync()
                seen += len(fetched)
        except TimeoutError:
            pass  # nothing within 5 s: the reference stops short, and says so
        finally:
            await connection.close()
        return seen

    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(consume())
    finally:
        loop.close()


def _rabbit_reference(stream: BrokerStream, count: int, batch: int) -> int:
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(stream.source["url"].replace("${RABBIT_PASSWORD}", "guest")))
    channel = connection.channel()
    channel.basic_qos(prefetch_count=1000)
    seen = 0
    for method, _properties, body in channel.consume(stream.source["queue"], inactivity_timeout=5):
        if method is None:
            raise SystemExit("rabbitmq: the reference found the queue empty before it read every message")
        orjson.loads(body)
        seen += 1
        if seen % 500 == 0 or seen == count:  # within the prefetch window of 1,000
            channel.basic_ack(method.delivery_tag, multiple=True)
        if seen == count:
            break
    connection.close()
    return seen


REFERENCES = {"nats": _nats_reference, "redis": _redis_reference, "kafka": _kafka_reference, "rabbitmq": _rabbit_reference}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=50_000, help="max_messages of a run")
    parser.add_argument("--brokers", default="nats,redis,rabbitmq,kafka")
    arguments = parser.parse_args()
    print(f"{arguments.messages:,} JSON messages per broker, micro-batches of {arguments.batch:,}")
    print(f"{'broker':<10}{'platform msg/s':>16}{'p95 latency s':>15}{'reference msg/s':>17}{'ratio':>8}")
    for broker in arguments.brokers.split(","):
        with broker_stream(broker) as stream, tempfile.TemporaryDirectory() as folder:
            producing = time.perf_counter()
            stream.produce(messages(arguments.messages))
            print(f"{broker}: {arguments.messages:,} produced in {time.perf_counter() - producing:.1f} s", flush=True)
            rate, latencies = platform(stream, arguments.messages, arguments.batch, Path(folder))
            p95 = statistics.quantiles(latencies, n=20)[-1]
            raw = reference(stream, arguments.messages, arguments.batch)
            print(f"{broker:<10}{rate:>16,.0f}{p95:>15.2f}{raw:>17,.0f}{rate / raw:>8.2f}")


if __name__ == "__main__":
    main()
