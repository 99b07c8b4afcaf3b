"""canonicalize: values above the threshold become reference items; below it they are quarantined or flagged."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from etl_platform.engine.runner import run_pipeline
from tests.conftest import environment_for, pipeline, rows, write_csv

COUNTRIES = ["Germany", "France", "Spain", "Netherlands"]
# What rows 1-5 and 7 become; row 6 (Narnia) matches nothing.
CANONICAL = {1: "Germany", 2: "Germany", 3: "Germany", 4: "France", 5: "Netherlands", 7: None}
INPUT = "id,country\n1,Germany\n2, germany\n3,Germny\n4,Frnace\n5,The Netherlands\n6,Narnia\n7,\n"


def load(warehouse_url: str, landing: Path, **spec) -> tuple:
    write_csv(landing, "customers.csv", INPUT)
    step = {"canonicalize": {"country": {"reference": COUNTRIES, "threshold": 0.85, **spec}}}
    report = run_pipeline(
        pipeline(
            source={"type": "csv", "path": "customers.csv"},
            transforms=[{"cast": {"id": "int"}}, step],
            destination={"dataset": "crm.customers", "write": "replace"},
        ),
        environment_for(warehouse_url, landing),
    )
    published = {r["id"]: (r["country"], r["country_similarity"]) for r in rows(warehouse_url, "SELECT * FROM crm.customers")}
    return report, published


def test_similar_values_become_the_reference_item_and_misses_are_quarantined(duckdb_url: str, landing: Path) -> None:
    report, published = load(duckdb_url, landing)
    assert {i: c for i, (c, _) in published.items()} == CANONICAL
    assert published[1][1] == 1.0 and 0.85 <= published[3][1] < 1.0
    assert report.rows_quarantined == 1
    (missed,) = rows(duckdb_url, "SELECT value, reason FROM _etl.quarantine")
    assert missed["value"] == "Narnia" and "matches no item of the reference list well enough" in missed["reason"]


def test_flag_keeps_the_value_and_its_score(duckdb_url: str, landing: Path) -> None:
    report, published = load(duckdb_url, landing, on_miss="flag")
    assert report.rows_quarantined == 0
    country, similarity = published[6]
    assert country == "Narnia" and similarity < 0.85  # never silently replaced


class FakeLlm(BaseHTTPRequestHandler):
    """An OpenAI-compatible endpoint that answers like a model would, including a wrong answer."""

    answers = {
        "Germny": "Germany",
        "Frnace": "France",
        "The Netherlands": "Netherlands",
        " germany": "Germany",
        "Narnia": "Atlantis",
    }

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        assert self.path == "/v1/chat/completions" and body["model"] == "tiny"
        value = json.loads(body["messages"][0]["content"].rsplit("Value: ", 1)[1])
        answer = {"choices": [{"message": {"content": self.answers.get(value, "NONE")}}]}
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        return


@pytest.fixture
def llm_url() -> str:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeLlm)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/v1"
    server.shutdown()


def test_an_llm_provider_is_validated_against_the_reference_list(duckdb_url: str, landing: Path, llm_url: str) -> None:
    report, published = load(duckdb_url, landing, provider="llm", llm={"url": llm_url, "model": "tiny"})
    assert {i: c for i, (c, _) in published.items()} == CANONICAL
    # "Atlantis" is not in the list: a miss, quarantined, whatever the model said
    assert report.rows_quarantined == 1
