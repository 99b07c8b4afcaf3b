"""Property: any sequence of inserts, updates and deletes over a few keys, with runs in between,
leaves the target equal to the source table after every run (PostgreSQL and MariaDB sources)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from etl_platform.engine.options import RunOptions
from etl_platform.engine.runner import run_pipeline
from tests.cdc_support import CdcSource, MariadbCdcSource, cdc_source, mariadb_cdc_source, target_rows
from tests.conftest import environment_for

KEYS = st.integers(0, 7)
OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("insert"), KEYS, st.text("abc\t\\'\n", max_size=4)),
        st.tuples(st.just("update"), KEYS, st.text("xyz", max_size=3)),
        st.tuples(st.just("delete"), KEYS, st.none()),
        st.tuples(st.just("run"), st.sampled_from([3, 100_000]), st.none()),
    ),
    max_size=25,
)


@pytest.fixture(scope="module", params=["postgres", "mariadb"])
def source(request: pytest.FixtureRequest) -> Iterator[CdcSource | MariadbCdcSource]:
    with cdc_source() if request.param == "postgres" else mariadb_cdc_source() as created:
        yield created


def statement(source: CdcSource | MariadbCdcSource, action: str, key: int, text: str | None) -> str:
    if isinstance(source, CdcSource):
        quoted = "'" + (text or "").replace("'", "''") + "'"
        if action == "insert":
            return f"INSERT INTO src.items VALUES ({key}, {quoted}) ON CONFLICT (id) DO UPDATE SET name = excluded.name"
        if action == "update":
            return f"UPDATE src.items SET name = coalesce(name, '') || {quoted}, ok = NOT coalesce(ok, false) WHERE id = {key}"
        return f"DELETE FROM src.items WHERE id = {key}"
    quoted = "'" + (text or "").replace("\\", "\\\\").replace("'", "''") + "'"
    if action == "insert":
        return f"INSERT INTO items (id, name) VALUES ({key}, {quoted}) ON DUPLICATE KEY UPDATE name = VALUES(name)"
    if action == "update":
        return f"UPDATE items SET name = CONCAT(coalesce(name, ''), {quoted}), ok = NOT coalesce(ok, false) WHERE id = {key}"
    return f"DELETE FROM items WHERE id = {key}"


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations=OPERATIONS)
def test_the_target_equals_the_source_after_every_run(
    operations: list, source: CdcSource | MariadbCdcSource, postgresql_url: str, landing: Path
) -> None:
    environment = environment_for(postgresql_url, landing)
    source.sql("DELETE FROM src.items" if isinstance(source, CdcSource) else "DELETE FROM items")
    run_pipeline(source.spec(), environment, RunOptions(full_refresh=True))
    assert target_rows(postgresql_url) == source.rows()
    for action, value, text in [*operations, ("run", 100_000, None)]:
        if action != "run":
            source.sql(statement(source, action, value, text))
            continue
        spec = source.spec(max_changes=value)
        run_pipeline(spec, environment)
        if value > 3:  # a window that holds every change made so far
            assert target_rows(postgresql_url) == source.rows()
