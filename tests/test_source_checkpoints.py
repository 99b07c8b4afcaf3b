"""The source checkpoint protocol, proven with a source written against it in this file.

`CounterSource` reads integers from a stand-in broker by offset: the smallest possible connector
(docs/architecture.md, "Source checkpoints", has the same example). It shows that a checkpoint is
saved only with a publish, that `acknowledge` is called once for every saved checkpoint and never
for a failed load, and that a kill between publish and acknowledge re-delivers rows which the
append ledger or a merge absorbs: no duplicate rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from etl_platform.engine.options import RunOptions
from etl_platform.engine.runner import run_pipeline
from etl_platform.errors import SourceError
from etl_platform.quality.audit import QualityGateFailed
from etl_platform.sources import SourceChunk
from etl_platform.sources.base import with_provenance
from etl_platform.state import Position, saved_position
from etl_platform.warehouse import open_warehouse
from tests.conftest import environment_for, pipeline, rows


class Killed(BaseException):
    """The process dies here: nothing after this point runs (BaseException, like a SIGKILL'd step)."""


@dataclass
class Broker:
    """A stand-in for a message broker: messages at offsets 0.., and what consumers acknowledged."""

    produced: int
    acked: int = 0
    acks: list[int] = field(default_factory=list)
    fail_read_at: int | None = None
    die_on_ack: bool = False


class CounterSource:
    """Integers from an offset. `seeks`: start at the saved checkpoint (a Kafka-like broker); else the
    broker re-delivers everything after its acknowledged offset (a queue that cannot seek)."""

    def __init__(self, broker: Broker, saved: dict | None, seeks: bool):
        self.broker = broker
        self.start = saved["offset"] if seeks and saved else broker.acked
        self.end = broker.produced

    def describe(self) -> list[str]:
        return [f"counter {self.start}..{self.end}"]

    def total_bytes(self) -> None:
        return None

    def fingerprint(self) -> str:
        return f"counter:{self.start}:{self.end}"

    def read(self, chunk_rows: int) -> Iterator[SourceChunk]:
        for low in range(self.start, self.end, chunk_rows):
            high = min(low + chunk_rows, self.end)
            if self.broker.fail_read_at is not None and low <= self.broker.fail_read_at < high:
                raise SourceError(f"counter: the broker went away at offset {self.broker.fail_read_at}")
            numbers = pa.array(range(low, high), pa.int64())
            table = pa.table({"n": numbers, "square": pc.multiply(numbers, numbers)})
            yield SourceChunk(with_provenance(table, "counter", pc.add(numbers, 1)))

    def checkpoint(self) -> Position:
        return Position({"offset": self.end})

    def acknowledge(self, checkpoint: Position) -> None:
        if self.broker.die_on_ack:
            self.broker.die_on_ack = False
            raise Killed
        self.broker.acked = checkpoint.value["offset"]
        self.broker.acks.append(checkpoint.value["offset"])


def counter_pipeline(write: str = "append", **fields):
    destination = {"dataset": "stream.numbers", "write": write}
    if write == "merge":
        destination["primary_key"] = ["n"]
    return pipeline(id="numbers", destination=destination, execution={"chunk_rows": 1000}, **fields)


def load(url: str, landing, broker: Broker, seeks: bool = True, write: str = "append", **fields):
    options = RunOptions(source=lambda saved: CounterSource(broker, saved, seeks))
    return run_pipeline(counter_pipeline(write, **fields), environment_for(url, landing), options)


def saved(url: str) -> dict | None:
    warehouse = open_warehouse(url)
    try:
        return saved_position(warehouse, "numbers")
    finally:
        warehouse.close()


def published(url: str) -> list[int]:
    return [r["n"] for r in rows(url, "SELECT n FROM stream.numbers ORDER BY n")]


def test_checkpoint_is_saved_with_the_publish_and_acknowledged_once(warehouse_url: str, landing) -> None:
    broker = Broker(produced=2500)
    first = load(warehouse_url, landing, broker)
    assert first.rows_published == 2500 and first.chunks == 3
    assert saved(warehouse_url) == {"offset": 2500}
    assert broker.acks == [2500]

    broker.produced = 3000
    second = load(warehouse_url, landing, broker)
    assert second.rows_read == 500  # from the saved offset, not from the start
    assert published(warehouse_url) == list(range(3000))
    assert broker.acks == [2500, 3000]


def test_a_failed_load_saves_no_checkpoint_and_acknowledges_nothing(warehouse_url: str, landing) -> None:
    broker = Broker(produced=1000)
    load(warehouse_url, landing, broker)
    broker.produced, broker.fail_read_at = 2500, 2200
    with pytest.raises(SourceError, match="offset 2200"):
        load(warehouse_url, landing, broker)
    assert saved(warehouse_url) == {"offset": 1000} and broker.acks == [1000]
    assert published(warehouse_url) == list(range(1000))

    # A blocking check that fails rolls back the publish transaction, and the checkpoint with it.
    broker.fail_read_at = None
    strict = {"rules": [{"rule": "RowCount", "max": 5, "severity": "error"}]}
    with pytest.raises(QualityGateFailed):
        load(warehouse_url, landing, broker, quality=strict)
    assert saved(warehouse_url) == {"offset": 1000} and broker.acks == [1000]
    assert published(warehouse_url) == list(range(1000))

    load(warehouse_url, landing, broker)
    assert saved(warehouse_url) == {"offset": 2500} and broker.acks == [1000, 2500]
    assert published(warehouse_url) == list(range(2500))


def test_a_kill_before_acknowledge_redelivers_and_the_ledger_absorbs_it(warehouse_url: str, landing) -> None:
    broker = Broker(produced=1200)
    load(warehouse_url, landing, broker, seeks=False)
    broker.produced, broker.die_on_ack = 2000, True
    with pytest.raises(Killed):
        load(warehouse_url, landing, broker, seeks=False)
    assert published(warehouse_url) == list(range(2000))  # published and saved, but the broker was never told
    assert saved(warehouse_url) == {"offset": 2000} and broker.acked == 1200

    again = load(warehouse_url, landing, broker, seeks=False)  # offsets 1200..1999 delivered a second time
    assert again.rows_published == 0 and "already" in again.skipped_reason
    assert published(warehouse_url) == list(range(2000))
    assert broker.acks == [1200, 2000]


def test_a_kill_before_acknowledge_redelivers_and_the_merge_absorbs_it(warehouse_url: str, landing) -> None:
    broker = Broker(produced=1200)
    load(warehouse_url, landing, broker, seeks=False, write="merge")
    broker.produced, broker.die_on_ack = 2000, True
    with pytest.raises(Killed):
        load(warehouse_url, landing, broker, seeks=False, write="merge")
    broker.produced = 2600  # more arrived meanwhile: the re-delivery is not the same content, the merge key decides
    again = load(warehouse_url, landing, broker, seeks=False, write="merge")
    assert again.rows_read == 1400
    assert published(warehouse_url) == list(range(2600))
    assert broker.acks == [1200, 2600]


def test_a_seeking_source_resumes_from_the_checkpoint_after_a_kill(warehouse_url: str, landing) -> None:
    broker = Broker(produced=1200, die_on_ack=True)
    with pytest.raises(Killed):
        load(warehouse_url, landing, broker)
    broker.produced = 1500
    resumed = load(warehouse_url, landing, broker)
    assert resumed.rows_read == 300  # nothing delivered twice: the saved checkpoint says where to start
    assert published(warehouse_url) == list(range(1500))
    assert broker.acks == [1500]
