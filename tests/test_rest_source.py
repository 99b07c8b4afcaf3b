"""The REST source against a real local HTTP server (pytest-httpserver): paginators, auth, retries, guards, state."""

from __future__ import annotations

import base64
import gzip
import itertools
import json
import time
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from etl_platform.engine.environment import Environment
from etl_platform.engine.options import RunOptions
from etl_platform.engine.runner import run_pipeline
from etl_platform.errors import EtlError, SpecError
from etl_platform.retry import is_transient
from etl_platform.settings import Secrets
from etl_platform.spec.loader import load_pipeline_files
from tests.conftest import rows
from tests.rest_helpers import SECRETS, environment, json_response, offset_page, rest_pipeline

RECORDS = [{"id": i, "name": f"item {i}"} for i in range(1, 26)]


def _ids(url: str) -> list[int]:
    return sorted(int(r["id"]) for r in rows(url, "SELECT id FROM analytics.items"))


def _run(spec, url: str, tmp_path: Path, run_id: str = "run-1"):
    return run_pipeline(spec, environment(url, tmp_path), RunOptions(run_id=run_id))


def _page_number(request: Request) -> Response:
    page = int(request.args["page"])
    return json_response({"items": RECORDS[(page - 1) * 10 : page * 10]})


def _cursor(request: Request) -> Response:
    start = int(request.args.get("cursor", 0))
    following = start + 10 if start + 10 < len(RECORDS) else None
    return json_response({"items": RECORDS[start : start + 10], "meta": {"next": following}})


def _json_link(base: str):
    def handler(request: Request) -> Response:
        start = int(request.args.get("from", 0))
        link = f"{base}/items?from={start + 10}" if start + 10 < len(RECORDS) else None
        return json_response({"items": RECORDS[start : start + 10], "links": {"next": link}})

    return handler


def _header_link(request: Request) -> Response:
    start = int(request.args.get("from", 0))
    headers = {"Link": f'</items?from={start + 10}>; rel="next"'} if start + 10 < len(RECORDS) else {}
    return json_response(RECORDS[start : start + 10], headers=headers)


PAGINATORS = {
    "offset_total": ({"type": "offset", "limit": 10, "total_path": "$.total"}, "$.data"),
    "offset_empty": ({"type": "offset", "limit": 10}, "$.data"),
    "page_number": ({"type": "page_number"}, "$.items"),
    "cursor": ({"type": "cursor", "cursor_path": "$.meta.next"}, "$.items"),
    "json_link": ({"type": "json_link", "next_url_path": "$.links.next"}, "$.items"),
    "header_link": ({"type": "header_link"}, "$"),
}


def _handler(kind: str, base: str):
    return {
        "offset_total": lambda r: offset_page(RECORDS, r),
        "offset_empty": lambda r: offset_page(RECORDS, r, total=False),
        "page_number": _page_number,
        "cursor": _cursor,
        "json_link": _json_link(base),
        "header_link": _header_link,
    }[kind]


@pytest.mark.parametrize("kind", sorted(PAGINATORS))
def test_every_paginator_reads_every_record_once(kind: str, httpserver: HTTPServer, duckdb_url: str, tmp_path: Path):
    paginator, selector = PAGINATORS[kind]
    base = httpserver.url_for("").rstrip("/")
    httpserver.expect_request("/items").respond_with_handler(_handler(kind, base))
    # The paginator is set on the client: the resource uses it (the effective configuration says so).
    spec = rest_pipeline(base, {"path": "/items", "records": selector}, {"paginator": paginator})
    assert spec.source.effective()["resource"]["paginator"]["type"] == paginator["type"]
    report = _run(spec, duckdb_url, tmp_path)
    assert _ids(duckdb_url) == list(range(1, 26))
    assert report.rows_read == 25


def _authorized(check):
    def handler(request: Request) -> Response:
        if not check(request):
            return json_response({"error": "unauthorized"}, 401)
        return json_response(RECORDS[:3])

    return handler


AUTHS = {
    "bearer": ({"type": "bearer", "token": "${TOKEN}"}, lambda r: r.headers.get("Authorization") == "Bearer tok-456"),
    # The secret references of docs/security.md work in auth as everywhere else.
    "bearer_env_reference": (
        {"type": "bearer", "token": "${env:TOKEN}"},
        lambda r: r.headers.get("Authorization") == "Bearer tok-456",
    ),
    "basic": (
        {"type": "basic", "username": "ann", "password": "${PASSWORD}"},
        lambda r: r.headers.get("Authorization") == "Basic " + base64.b64encode(b"ann:pw-789").decode(),
    ),
    "api_key_header": (
        {"type": "api_key", "name": "X-Api-Key", "key": "${API_KEY}"},
        lambda r: r.headers.get("X-Api-Key") == SECRETS["API_KEY"],
    ),
    "api_key_query": (
        {"type": "api_key", "name": "key", "key": "${API_KEY}", "location": "query"},
        lambda r: r.args.get("key") == SECRETS["API_KEY"],
    ),
}


@pytest.mark.parametrize("kind", sorted(AUTHS))
def test_every_auth_type(kind: str, httpserver: HTTPServer, duckdb_url: str, tmp_path: Path):
    auth, check = AUTHS[kind]
    httpserver.expect_request("/items").respond_with_handler(_authorized(check))
    spec = rest_pipeline(httpserver.url_for(""), {"path": "items"}, {"auth": auth})
    _run(spec, duckdb_url, tmp_path)
    assert _ids(duckdb_url) == [1, 2, 3]


def test_oauth2_token_refreshed_when_it_expires_mid_run(httpserver: HTTPServer, duckdb_url: str, tmp_path: Path):
    issued: list[str] = []

    def token(request: Request) -> Response:
        assert request.form["grant_type"] == "client_credentials" and request.form["client_secret"] == "cs-000"
        issued.append(f"token-{len(issued) + 1}")
        return json_response({"access_token": issued[-1], "expires_in": 3600})

    def items(request: Request) -> Response:
        page = int(request.args["page"])
        # The first token is revoked after two pages: the server says 401, the client fetches a new one.
        valid = issued[-1] if page > 2 or len(issued) > 1 else issued[0]
        if request.headers.get("Authorization") != f"Bearer {valid}" or (page > 2 and len(issued) == 1):
            return json_response({"error": "expired"}, 401)
        return json_response(RECORDS[(page - 1) * 10 : page * 10])

    httpserver.expect_request("/token", method="POST").respond_with_handler(token)
    httpserver.expect_request("/items").respond_with_handler(items)
    auth = {
        "type": "oauth2_client_credentials",
        "token_url": httpserver.url_for("/token"),
        "client_id": "me",
        "client_secret": "${CLIENT_SECRET}",
    }
    spec = rest_pipeline(httpserver.url_for(""), {"path": "items", "paginator": {"type": "page_number"}}, {"auth": auth})
    _run(spec, duckdb_url, tmp_path)
    assert _ids(duckdb_url) == list(range(1, 26))
    assert issued == ["token-1", "token-2"]


def _flaky(failures: list[Response]):
    def handler(request: Request) -> Response:
        return failures.pop(0) if failures else json_response(RECORDS[:5])

    return handler


def test_429_honours_retry_after_and_500_is_retried(httpserver: HTTPServer, duckdb_url: str, tmp_path: Path):
    failures = [json_response({}, 429, {"Retry-After": "1"}), json_response({"error": "boom"}, 500)]
    httpserver.expect_request("/items").respond_with_handler(_flaky(failures))
    spec = rest_pipeline(httpserver.url_for(""), {"path": "items"}, {"retries": {"backoff_seconds": 0.01}})
    started = time.monotonic()
    _run(spec, duckdb_url, tmp_path)
    assert time.monotonic() - started >= 1.0  # waited what Retry-After asked
    assert _ids(duckdb_url) == [1, 2, 3, 4, 5]
    assert len(httpserver.log) == 3


def test_401_fails_at_once_with_status_url_and_body(httpserver: HTTPServer, duckdb_url: str, tmp_path: Path):
    httpserver.expect_request("/items").respond_with_json({"error": "bad key"}, status=401)
    auth = {"type": "api_key", "name": "key", "key": "${API_KEY}", "location": "query"}
    spec = rest_pipeline(httpserver.url_for(""), {"path": "items"}, {"auth": auth})
    with pytest.raises(EtlError) as caught:
        _run(spec, duckdb_url, tmp_path)
    message = str(caught.value)
    assert "HTTP 401" in message and "/items" in message and "bad key" in message
    assert SECRETS["API_KEY"] not in message and "key=***" in message
    assert not is_transient(caught.value)
    assert len(httpserver.log) == 1


def test_500_every_time_is_transient_after_the_attempts(httpserver: HTTPServer, duckdb_url: str, tmp_path: Path):
    httpserver.expect_request("/items").respond_with_json({"error": "down"}, status=503)
    spec = rest_pipeline(httpserver.url_for(""), {"path": "items"}, {"retries": {"attempts": 3, "backoff_seconds": 0.01}})
    with pytest.raises(EtlError, match=r"HTTP 503.*after 3 attempts") as caught:
        _run(spec, duckdb_url, tmp_path)
    assert is_transient(caught.value)
    assert len(httpserver.log) == 3


def test_endless_next_link_fails_naming_the_page(httpserver: HTTPServer, duckdb_url: str, tmp_path: Path):
    counter = iter(range(1000))

    def handler(request: Request) -> Response:
        return json_response({"items": [{"id": next(counter)}], "next": "/items?same=1"})

    httpserver.expect_request("/items").respond_with_handler(handler)
    spec = rest_pipeline(
        httpserver.url_for(""),
        {"path": "items", "records": "$.items", "paginator": {"type": "json_link", "next_url_path": "$.next"}},
    )
    with pytest.raises(EtlError, match="page 3 repeats an earlier request"):
        _run(spec, duckdb_url, tmp_path)


def test_server_ignoring_the_page_parameter_fails_naming_the_page(httpserver: HTTPServer, duckdb_url: str, tmp_path: Path):
    httpserver.expect_request("/items").respond_with_json(RECORDS[:10])
    spec = rest_pipeline(httpserver.url_for(""), {"path": "items", "paginator": {"type": "page_number"}})
    with pytest.raises(EtlError, match="page 2 is the same as page 1"):
        _run(spec, duckdb_url, tmp_path)


def test_max_pages_fails_naming_the_page(httpserver: HTTPServer, duckdb_url: str, tmp_path: Path):
    httpserver.expect_request("/items").respond_with_handler(lambda r: json_response([{"id": int(r.args["page"])}]))
    spec = rest_pipeline(httpserver.url_for(""), {"path": "items", "max_pages": 4, "paginator": {"type": "page_number"}})
    with pytest.raises(EtlError, match="page 5 is past max_pages 4"):
        _run(spec, duckdb_url, tmp_path)
    assert len(httpserver.log) == 4


def test_unexpected_body_is_named_with_url_and_sample(httpserver: HTTPServer, duckdb_url: str, tmp_path: Path):
    httpserver.expect_request("/items").respond_with_json({"error": {"message": "maintenance"}})
    auth = {"type": "api_key", "name": "api_key", "key": "${API_KEY}", "location": "query"}
    spec = rest_pipeline(httpserver.url_for(""), {"path": "items", "records": "$.data"}, {"auth": auth})
    with pytest.raises(EtlError) as caught:
        _run(spec, duckdb_url, tmp_path)
    message = str(caught.value)
    assert "/items" in message and "page 1" in message and "'$.data' matches nothing" in message and "maintenance" in message
    assert SECRETS["API_KEY"] not in message


def test_raw_pages_kept_compressed_by_run_and_page(httpserver: HTTPServer, duckdb_url: str, tmp_path: Path):
    httpserver.expect_request("/items").respond_with_handler(lambda r: offset_page(RECORDS, r))
    spec = rest_pipeline(
        httpserver.url_for(""), {"path": "items", "records": "$.data", "paginator": {"type": "offset", "limit": 10}}
    )
    _run(spec, duckdb_url, tmp_path, run_id="run-7")
    kept = sorted((tmp_path / "lake" / "_raw" / "rest" / "rest_items" / "run-7").iterdir())
    assert [p.name for p in kept] == [f"resource-page-{n:06d}.json.gz" for n in (1, 2, 3, 4)]
    assert json.loads(gzip.decompress(kept[0].read_bytes()))["data"][0]["id"] == 1


def test_unknown_key_and_literal_secret_are_refused_with_file_and_line(tmp_path: Path):
    path = tmp_path / "rest.yaml"
    path.write_text(
        "id: r\nsource:\n  type: rest\n  client:\n    base_url: http://api.example\n"
        "    auth: {type: bearer, token: plain-text-token}\n  resource:\n    path: /items\n"
        "destination: {dataset: analytics.r, write: append}\n"
    )
    with pytest.raises(SpecError, match=r"rest.yaml:6: source.client.auth.bearer.token"):
        load_pipeline_files([path])


def test_a_base_url_reference_is_resolved_at_run_time_and_must_be_http(tmp_path: Path, duckdb_url: str):
    """`${VAR}` in base_url (the demo API's address): resolved from the secrets when the run starts, never at load."""
    spec = rest_pipeline("${API_URL}", {"path": "/items"})
    assert spec.source.effective()["client"]["base_url"] == "${API_URL}"
    with pytest.raises(EtlError, match=r"environment variable API_URL is not set"):
        _run(spec, duckdb_url, tmp_path)
    wrong_scheme = Environment.at(
        duckdb_url, tmp_path / "landing", tmp_path / "lake", secrets=Secrets({"API_URL": "ftp://x.example"})
    )
    with pytest.raises(EtlError, match=r"base_url '\$\{API_URL\}' does not resolve to an http:// or https:// URL"):
        run_pipeline(spec, wrong_scheme, RunOptions())
    with pytest.raises(SpecError, match=r"base_url"):
        rest_pipeline("api.example/v1", {"path": "/items"})


def test_the_documented_example_is_valid_with_the_paginators_it_really_uses():
    text = (Path(__file__).resolve().parents[1] / "docs" / "pipeline-spec.md").read_text()
    example = text.split("### REST APIs", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    from ruamel.yaml import YAML

    from etl_platform.spec.loader import spec_from_document

    document = {"id": "doc", **YAML(typ="safe").load(example), "destination": {"dataset": "analytics.d", "write": "append"}}
    effective = spec_from_document(document).source.effective()
    assert effective["resource"]["parent"]["paginator"] == {"type": "header_link", "rel": "next"}
    assert effective["client"]["auth"]["key"] == "${EXAMPLE_API_KEY}"


def _timed(body_headers: dict | None = None):
    """Answers one record per page and notes when each request arrived (the server's clock)."""
    arrived: list[float] = []

    def handler(request: Request) -> Response:
        arrived.append(time.monotonic())
        page = int(request.args["page"])
        return json_response([{"id": page}] if page <= 4 else [], headers=body_headers)

    return handler, arrived


def test_requests_per_second_paces_the_host(httpserver: HTTPServer, duckdb_url: str, tmp_path: Path):
    handler, arrived = _timed()
    httpserver.expect_request("/items").respond_with_handler(handler)
    client = {"rate_limit": {"requests_per_second": 4}}
    _run(
        rest_pipeline(httpserver.url_for(""), {"path": "items", "paginator": {"type": "page_number"}}, client),
        duckdb_url,
        tmp_path,
    )
    gaps = [b - a for a, b in itertools.pairwise(arrived)]
    assert len(arrived) == 5 and min(gaps) >= 0.2  # 0.25 s apart, less the server's own latency


def test_exhausted_rate_limit_header_waits_for_the_reset(httpserver: HTTPServer, duckdb_url: str, tmp_path: Path):
    handler, arrived = _timed({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1"})
    httpserver.expect_request("/items").respond_with_handler(handler)
    _run(rest_pipeline(httpserver.url_for(""), {"path": "items", "paginator": {"type": "page_number"}}), duckdb_url, tmp_path)
    assert _ids(duckdb_url) == [1, 2, 3, 4]
    assert min(b - a for a, b in itertools.pairwise(arrived)) >= 0.9


def test_the_hosts_breaker_opens_after_repeated_outages(httpserver: HTTPServer, duckdb_url: str, tmp_path: Path):
    from etl_platform.breaker import BreakerBoard
    from etl_platform.engine.environment import Environment
    from etl_platform.settings import BreakerSettings, Secrets

    httpserver.expect_request("/items").respond_with_json({"error": "down"}, status=502)
    spec = rest_pipeline(httpserver.url_for(""), {"path": "items"}, {"retries": {"attempts": 1}})
    board = BreakerBoard(BreakerSettings(failures=2, cooldown_seconds=60))
    (tmp_path / "landing").mkdir()
    env = Environment.at(duckdb_url, tmp_path / "landing", tmp_path / "lake", breakers=board, secrets=Secrets(SECRETS))
    for _ in range(2):
        with pytest.raises(EtlError, match="HTTP 502"):
            run_pipeline(spec, env, RunOptions(run_id="r"))
    with pytest.raises(EtlError, match="circuit breaker open") as caught:
        run_pipeline(spec, env, RunOptions(run_id="r"))
    assert "REST API 127.0.0.1" in str(caught.value) or "REST API localhost" in str(caught.value)
    assert len(httpserver.log) == 2 and is_transient(caught.value)


def test_a_lookback_on_append_is_refused():
    incremental = {"cursor_path": "updated", "initial_value": 0, "lookback": 5}
    with pytest.raises(SpecError, match="use write: merge"):
        rest_pipeline("http://api.example", {"path": "/items", "incremental": incremental})
    with pytest.raises(SpecError, match=r"\{parent.id\} needs a `parent` resource"):
        rest_pipeline("http://api.example", {"path": "/repos/{parent.id}/issues"})
