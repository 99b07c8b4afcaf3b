"""REST incremental loads: exactly once on append, a cursor per parent, a kill -9 mid-load, a replay without the API."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from etl_platform.engine.options import RunOptions
from etl_platform.engine.replay import QuarantineSelection, replay
from etl_platform.engine.runner import run_pipeline
from etl_platform.errors import SourceError
from tests.conftest import REPO, rows
from tests.rest_helpers import environment, json_response, offset_page, rest_pipeline


def _since_handler(records: list[dict], page_size: int = 3):
    """Records with updated >= since, paged by number, sorted by (updated, id): what most APIs do."""

    def handler(request: Request) -> Response:
        since = int(request.args.get("since", 0))
        page = int(request.args["page"])
        matching = sorted((r for r in records if r["updated"] >= since), key=lambda r: (r["updated"], r["id"]))
        return json_response({"data": matching[(page - 1) * page_size : page * page_size]})

    return handler


def _incremental_spec(base: str, **resource):
    return rest_pipeline(
        base,
        {
            "path": "/items",
            "records": "$.data",
            "paginator": {"type": "page_number"},
            "incremental": {"cursor_path": "updated", "start_param": "since", "initial_value": 0},
            **resource,
        },
    )


def _ids(url: str) -> list[int]:
    return sorted(int(r["id"]) for r in rows(url, "SELECT id FROM analytics.items"))


def test_append_loads_each_record_once_across_runs(httpserver: HTTPServer, duckdb_url: str, tmp_path: Path):
    records = [{"id": i, "updated": min(i, 5)} for i in range(1, 7)]  # ids 5 and 6 share the cursor value 5
    httpserver.expect_request("/items").respond_with_handler(_since_handler(records))
    spec = _incremental_spec(httpserver.url_for(""))
    run_pipeline(spec, environment(duckdb_url, tmp_path), RunOptions(run_id="r1"))
    records += [{"id": 7, "updated": 5}, {"id": 8, "updated": 9}]  # one more at the boundary value, one past it
    run_pipeline(spec, environment(duckdb_url, tmp_path), RunOptions(run_id="r2"))
    assert _ids(duckdb_url) == list(range(1, 9))
    assert httpserver.log[-1][0].args["since"] == "5"
    report = run_pipeline(spec, environment(duckdb_url, tmp_path), RunOptions(run_id="r3"))
    assert report.rows_published == 0 and _ids(duckdb_url) == list(range(1, 9))


def test_child_cursor_is_kept_per_parent(httpserver: HTTPServer, duckdb_url: str, tmp_path: Path):
    issues = {"a": [{"id": 1, "updated": 10}], "b": [{"id": 2, "updated": 3}]}

    def children(request: Request) -> Response:
        repo = request.path.split("/")[2]
        since = int(request.args["since"])
        return json_response([i for i in issues[repo] if i["updated"] >= since])

    httpserver.expect_request("/repos").respond_with_json([{"id": "a", "owner": "ann"}, {"id": "b", "owner": "bob"}])
    httpserver.expect_request("/repos/a/issues").respond_with_handler(children)
    httpserver.expect_request("/repos/b/issues").respond_with_handler(children)
    resource = {
        "path": "/repos/{parent.id}/issues",
        "incremental": {"cursor_path": "updated", "start_param": "since", "initial_value": 0},
        "parent": {"path": "/repos", "key": "id", "fields": ["owner"]},
    }
    spec = rest_pipeline(httpserver.url_for(""), resource)
    run_pipeline(spec, environment(duckdb_url, tmp_path), RunOptions(run_id="r1"))
    # The parents did not change (their list is the same); b gets an issue older than a's cursor.
    issues["b"].append({"id": 3, "updated": 4})
    run_pipeline(spec, environment(duckdb_url, tmp_path), RunOptions(run_id="r2"))
    loaded = rows(duckdb_url, "SELECT id, parent_id, parent_owner FROM analytics.items ORDER BY id")
    assert loaded == [
        {"id": "1", "parent_id": "a", "parent_owner": "ann"},
        {"id": "2", "parent_id": "b", "parent_owner": "bob"},
        {"id": "3", "parent_id": "b", "parent_owner": "bob"},
    ]
    asked = {entry[0].path: entry[0].args.get("since") for entry in httpserver.log[-3:]}
    assert asked == {"/repos": None, "/repos/a/issues": "10", "/repos/b/issues": "3"}


_LOAD = """
import sys
from etl_platform.engine.options import RunOptions
from etl_platform.engine.runner import run_pipeline
from etl_platform.errors import SourceError
from pathlib import Path
from tests.test_rest_incremental import _incremental_spec
from tests.rest_helpers import environment
run_pipeline(_incremental_spec(sys.argv[1]), environment(sys.argv[2], Path(sys.argv[3])), RunOptions(run_id=sys.argv[4]))
"""


def test_kill_9_mid_load_then_rerun_loses_and_duplicates_nothing(httpserver: HTTPServer, postgresql_url: str, tmp_path: Path):
    records = [{"id": i, "updated": i // 2} for i in range(1, 11)]
    handler = _since_handler(records)
    load: dict[str, subprocess.Popen] = {}

    def killing(request: Request) -> Response:
        if "victim" in load and request.args["page"] == "2":
            os.kill(load.pop("victim").pid, signal.SIGKILL)  # after the first publish, on the next load's second page
        return handler(request)

    httpserver.expect_request("/items").respond_with_handler(killing)
    spec = _incremental_spec(httpserver.url_for(""))
    run_pipeline(spec, environment(postgresql_url, tmp_path), RunOptions(run_id="r1"))
    records += [{"id": i, "updated": i // 2} for i in range(11, 21)]
    arguments = [httpserver.url_for(""), postgresql_url, str(tmp_path), "r2"]
    victim = subprocess.Popen([sys.executable, "-c", _LOAD, *arguments], cwd=REPO, start_new_session=True)
    load["victim"] = victim
    try:
        assert victim.wait(timeout=120) == -signal.SIGKILL
    finally:
        if victim.poll() is None:
            os.killpg(victim.pid, signal.SIGKILL)
    assert _ids(postgresql_url) == list(range(1, 11))  # the killed load published nothing
    run_pipeline(spec, environment(postgresql_url, tmp_path), RunOptions(run_id="r3"))
    assert _ids(postgresql_url) == list(range(1, 21))


def test_quarantine_replay_never_calls_the_api(httpserver: HTTPServer, duckdb_url: str, tmp_path: Path):
    records = [{"id": 1, "name": "a"}, {"id": 2}, {"id": 3, "name": "c"}]
    httpserver.expect_request("/items").respond_with_json(records)
    spec = rest_pipeline(httpserver.url_for(""), {"path": "/items"}, quality={"rules": [{"field": "name", "rule": "NotNull"}]})
    report = run_pipeline(spec, environment(duckdb_url, tmp_path), RunOptions(run_id="r1"))
    assert report.rows_quarantined == 1
    quarantined = rows(duckdb_url, "SELECT source_file, source_line FROM _etl.quarantine")
    assert quarantined[0]["source_file"].endswith("r1/resource-page-000001.json.gz") and quarantined[0]["source_line"] == 2
    served = len(httpserver.log)
    replay(spec, environment(duckdb_url, tmp_path), QuarantineSelection())
    assert len(httpserver.log) == served  # zero requests during the replay


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(total=st.integers(0, 60), limit=st.integers(1, 17), with_total=st.booleans())
def test_offset_pages_of_any_size_give_every_record_once(
    httpserver: HTTPServer, tmp_path_factory, total: int, limit: int, with_total: bool
):
    records = [{"id": i} for i in range(1, total + 1)]
    httpserver.clear()
    httpserver.expect_request("/items").respond_with_handler(lambda r: offset_page(records, r, with_total))
    folder = tmp_path_factory.mktemp("offsets")
    url = f"duckdb:///{folder / 'w.duckdb'}"
    paginator = {"type": "offset", "limit": limit, **({"total_path": "$.total"} if with_total else {})}
    spec = rest_pipeline(httpserver.url_for(""), {"path": "/items", "records": "$.data", "paginator": paginator})
    report = run_pipeline(spec, environment(url, folder), RunOptions(run_id="r"))
    assert report.rows_read == total
    if total:
        assert _ids(url) == list(range(1, total + 1))


def test_lookback_and_end_param_with_merge(httpserver: HTTPServer, duckdb_url: str, tmp_path: Path):
    records = [{"id": i, "updated": i} for i in range(1, 6)]
    httpserver.expect_request("/items").respond_with_handler(_since_handler(records))
    incremental = {"cursor_path": "updated", "start_param": "since", "initial_value": 0, "lookback": 2}
    incremental |= {"end_param": "until", "end_value": 100}
    resource = {"path": "/items", "records": "$.data", "paginator": {"type": "page_number"}, "incremental": incremental}
    spec = rest_pipeline(httpserver.url_for(""), resource, write="merge")
    run_pipeline(spec, environment(duckdb_url, tmp_path), RunOptions(run_id="r1"))
    records.append({"id": 6, "updated": 6})
    run_pipeline(spec, environment(duckdb_url, tmp_path), RunOptions(run_id="r2"))
    assert _ids(duckdb_url) == [1, 2, 3, 4, 5, 6]
    first_of_second_run = [e[0].args for e in httpserver.log if e[0].args["page"] == "1"][-1]
    assert (first_of_second_run["since"], first_of_second_run["until"]) == ("3", "100")  # the cursor 5, less 2


def test_a_placeholder_the_parent_lacks_is_an_error(httpserver: HTTPServer, duckdb_url: str, tmp_path: Path):
    httpserver.expect_request("/repos").respond_with_json([{"id": "a"}])
    spec = rest_pipeline(httpserver.url_for(""), {"path": "/repos/{parent.name}/issues", "parent": {"path": "/repos"}})
    with pytest.raises(SourceError, match=r"uses \{parent.name\}, but a parent record has no 'name'"):
        run_pipeline(spec, environment(duckdb_url, tmp_path), RunOptions(run_id="r1"))
