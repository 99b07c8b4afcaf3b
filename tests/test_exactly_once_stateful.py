"""Generated landing-zone histories: after every run the target holds what the exactly-once rules say.

A hypothesis state machine adds, touches, renames, copies, grows, rewrites and deletes CSV files
in a landing folder and runs an append (`on_changed_file: reload`) on PostgreSQL and DuckDB. A
model applies the rules of docs/how-a-run-works.md ("Exactly once for files") to the same files:
a file is looked at when it is new or its version (mtime, size) changed; bytes the dataset holds
already are skipped; a grown file adds its new lines; a rewritten one replaces its rows, and the
copies of the content it held are read. Some ids are written so that the cast fails: those rows
go to the quarantine, a reloaded file's with its rows. A user may fix every quarantined record and
replay (fixed rows are published once, the others stay, however often it replays), and two runs,
or a run and a replay, may start together (the target is what one order or the other gives).
After each step the target's and the quarantine's ids are the model's, with no row published twice.
"""

from __future__ import annotations

import copy
import itertools
import json
import os
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule

from etl_platform.engine.replay import QuarantineSelection, replay
from etl_platform.engine.runner import run_pipeline
from etl_platform.warehouse import open_warehouse
from tests.conftest import environment_for, pipeline, rows
from tests.test_concurrent_runs import in_threads

NAMES = [f"f{i}.csv" for i in range(5)]
HEADER = b"id\n"
SPECS = itertools.count()


def content(ids: list[int], bad: set[int]) -> bytes:
    """A `bad` id is written as `x<id>`, which fails the cast to int: its row is quarantined."""
    return HEADER + b"".join(b"x%d\n" % i if i in bad else b"%d\n" % i for i in ids)


def ids_of(data: bytes) -> list[int]:
    return [int(line.lstrip(b"x")) for line in data[len(HEADER) :].splitlines()]


@dataclass(frozen=True)
class Seen:
    """What the model's file state holds for a file: its version then and the content read."""

    version: tuple[int, int]
    content: bytes


class Rules:
    """The documented rules, applied to the folder's files; `target` counts published ids by file."""

    def __init__(self) -> None:
        self.bad: set[int] = set()
        self.ledger: dict[bytes, str] = {}  # content appended -> the file whose rows it gave
        self.state: dict[str, Seen] = {}
        self.target: Counter[tuple[int, str]] = Counter()
        self.quarantine: Counter[tuple[int, str, bool]] = Counter()  # (id, file, record fixed)

    def run(self, folder: Path) -> None:
        files = {p.name: p for p in sorted(folder.iterdir())}
        versions = {name: (p.stat().st_mtime_ns, p.stat().st_size) for name, p in files.items()}
        queue = [n for n in files if n not in self.state or self.state[n].version != versions[n]]
        queued, held_now = set(queue), set(self.ledger)
        while queue:
            name = queue.pop(0)
            data = files[name].read_bytes()
            before = self.state.get(name)
            self.state[name] = Seen(versions[name], data)
            if data in held_now:
                continue
            held_now.add(data)
            if before is not None and before.content != data and data.startswith(before.content):
                self._publish(name, data, ids_of(data)[len(ids_of(before.content)) :])
                continue
            if before is not None and before.content != data:
                forgotten = {before.content, *(c for c, owner in self.ledger.items() if owner == name)}
                held_now -= forgotten
                self.ledger = {c: owner for c, owner in self.ledger.items() if owner != name}
                self.target = Counter({k: v for k, v in self.target.items() if k[1] != name})
                self.quarantine = Counter({k: v for k, v in self.quarantine.items() if k[1] != name})
                copies = [n for n in files if n not in queued and self.state.get(n, Seen((0, 0), b"")).content in forgotten]
                copies = [n for n in copies if self.state[n].version == versions[n]]
                queue += copies
                queued.update(copies)
            self._publish(name, data, ids_of(data))

    def _publish(self, name: str, data: bytes, ids: list[int]) -> None:
        self.ledger[data] = name
        self.target.update((i, name) for i in ids if i not in self.bad)
        self.quarantine.update((i, name, False) for i in ids if i in self.bad)

    def fix(self) -> None:
        """Every quarantined record is edited into a valid row."""
        self.quarantine = Counter({(i, name, True): count for (i, name, _), count in self.quarantine.items()})

    def replay(self) -> None:
        """Fixed records are published (from their file) and leave the quarantine; the others fail again."""
        self.target.update({(i, name): count for (i, name, fixed), count in self.quarantine.items() if fixed})
        self.quarantine = Counter({key: count for key, count in self.quarantine.items() if not key[2]})

    def ids(self) -> tuple[list[int], list[int]]:
        """The target's ids and the quarantine's."""
        return sorted(i for i, _ in self.target.elements()), sorted(i for i, _, _ in self.quarantine.elements())


class LandingZone(RuleBasedStateMachine):
    warehouse_url = ""

    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="etl-landing-"))
        self.folder = self.root / "landing" / "in"
        self.folder.mkdir(parents=True)
        number = next(SPECS)
        self.dataset = f"analytics.landing_{number}"
        self.spec = pipeline(
            id=f"landing_{number}",
            source={"type": "csv", "path": "in/*.csv"},
            transforms=[{"cast": {"id": "int"}}],
            destination={"dataset": self.dataset, "write": "append", "on_changed_file": "reload"},
        )
        self.environment = environment_for(self.warehouse_url, self.root / "landing")
        self.rules = Rules()
        self.next_id = 0
        self.changed: set[str] = set()  # files written since the last run
        self.new_names: set[str] = set()  # files renamed or copied since the last run
        self.loaded = False  # the warehouse has the platform's tables (a run happened)

    def new_content(self, count: int) -> bytes:
        """A file of `count` new ids; every second one after the first is bad, so each file and each
        grown part has a good row and the circuit breaker (which stops a load of only failing rows) passes."""
        first, self.next_id = self.next_id, self.next_id + count
        self.rules.bad.update(range(first + 1, first + count, 2))
        return content(list(range(first, first + count)), self.rules.bad)

    def files(self) -> list[str]:
        return sorted(p.name for p in self.folder.iterdir())

    def write(self, name: str, data: bytes) -> None:
        self.changed.add(name)
        path = self.folder / name
        old = path.stat().st_mtime_ns if path.exists() else 0
        path.write_bytes(data)
        os.utime(path, ns=(old + 2_000_000_000, max(old + 2_000_000_000, path.stat().st_mtime_ns)))

    @rule(name=st.sampled_from(NAMES), count=st.integers(1, 3))
    def add(self, name: str, count: int) -> None:
        if not (self.folder / name).exists():
            self.write(name, self.new_content(count))

    @precondition(lambda self: self.files())
    @rule(data=st.data())
    def touch(self, data: st.DataObject) -> None:
        path = self.folder / data.draw(st.sampled_from(self.files()))
        stamp = path.stat().st_mtime_ns + 3_000_000_000
        os.utime(path, ns=(stamp, stamp))

    def unchanged(self) -> list[str]:
        return [n for n in self.files() if n not in self.changed]

    @precondition(lambda self: self.unchanged())
    @rule(data=st.data(), to=st.sampled_from(NAMES), keep=st.booleans())
    def rename_or_copy(self, data: st.DataObject, to: str, keep: bool) -> None:
        """Of a file as the last run saw it: a file grown or rewritten, then renamed, is a new file with new
        bytes (read whole; the rules table says so), which the ledger cannot tell from a new one."""
        name = data.draw(st.sampled_from(self.unchanged()))
        if name != to and not (self.folder / to).exists():
            (shutil.copy2 if keep else os.replace)(self.folder / name, self.folder / to)
            self.new_names.add(to)

    @precondition(lambda self: [n for n in self.files() if n not in self.new_names])
    @rule(data=st.data(), count=st.integers(1, 2))
    def grow(self, data: st.DataObject, count: int) -> None:
        """Not a file renamed or copied since the last run: its new name's bytes would be new (read whole)."""
        path = self.folder / data.draw(st.sampled_from([n for n in self.files() if n not in self.new_names]))
        self.write(path.name, path.read_bytes() + self.new_content(count)[len(HEADER) :])

    @precondition(lambda self: self.files())
    @rule(data=st.data(), count=st.integers(1, 3))
    def rewrite(self, data: st.DataObject, count: int) -> None:
        self.write(data.draw(st.sampled_from(self.files())), self.new_content(count))

    @precondition(lambda self: self.files())
    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        (self.folder / data.draw(st.sampled_from(self.files()))).unlink()

    @precondition(lambda self: self.files())
    @rule()
    def run(self) -> None:
        run_pipeline(self.spec, self.environment)
        self.rules.run(self.folder)
        self.ran()
        assert self.held() == self.rules.ids()

    def ran(self) -> None:
        self.loaded = True
        self.changed.clear()
        self.new_names.clear()

    def held(self) -> tuple[list[int], list[int]]:
        """The target's ids and the quarantine's, checking that no row was published twice."""
        published = sorted(r["id"] for r in rows(self.warehouse_url, f"SELECT id FROM {self.dataset}"))
        assert len(published) == len(set(published)), "a row was published twice"
        records = rows(self.warehouse_url, f"SELECT record FROM _etl.quarantine WHERE pipeline = '{self.spec.id}'")
        return published, sorted(int(json.loads(r["record"])["id"].lstrip("x")) for r in records)

    @precondition(lambda self: self.loaded)
    @rule()
    def fix(self) -> None:
        """A user edits every quarantined record into a valid row, in SQL."""
        warehouse = open_warehouse(self.warehouse_url)
        try:
            for quarantine_id, record in warehouse.query(
                "SELECT quarantine_id, record FROM _etl.quarantine WHERE pipeline = ?", (self.spec.id,)
            ):
                fixed = {**json.loads(record), "id": json.loads(record)["id"].lstrip("x")}
                sql = "UPDATE _etl.quarantine SET record = ? WHERE quarantine_id = ?"
                warehouse.execute(sql, (json.dumps(fixed), quarantine_id))
        finally:
            warehouse.close()
        self.rules.fix()

    @precondition(lambda self: self.loaded)
    @rule()
    def replay(self) -> None:
        """`etl quarantine replay`: fixed records are published once, the others stay, however often it runs."""
        replay(self.spec, self.environment, QuarantineSelection())
        self.rules.replay()
        assert self.held() == self.rules.ids()

    @precondition(lambda self: self.files())
    @rule(with_replay=st.booleans())
    def two_at_once(self, with_replay: bool) -> None:
        """Two runs, or a run and a replay, started together: both succeed (one may find nothing new), and
        the target is what one order or the other gives: each row once, none lost."""
        second = (lambda: replay(self.spec, self.environment, QuarantineSelection())) if with_replay else self.load
        for error in in_threads(self.load, second):
            if error is not None:
                raise error  # with the traceback of where it failed
        orders = [copy.deepcopy(self.rules) for _ in range(2)]
        orders[0].run(self.folder)
        if with_replay:
            orders[0].replay()
            orders[1].replay()
        orders[1].run(self.folder)
        self.ran()
        held = self.held()
        assert held in [order.ids() for order in orders]
        self.rules = next(order for order in orders if order.ids() == held)

    def load(self) -> None:
        run_pipeline(self.spec, self.environment)

    def teardown(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.mark.parametrize("kind", ["duckdb", "postgresql"])
def test_generated_landing_histories_publish_each_row_once(kind: str, request: pytest.FixtureRequest) -> None:
    on_warehouse = type(f"LandingZoneOn{kind}", (LandingZone,), {"warehouse_url": request.getfixturevalue(f"{kind}_url")})
    machine = settings(max_examples=10, stateful_step_count=12, deadline=None, suppress_health_check=list(HealthCheck))(
        on_warehouse
    )
    machine.TestCase().runTest()
