"""The demo's REST API: product reviews behind an API key, paged by next links, filtered by `updated_since`.

A stdlib `ThreadingHTTPServer` on 127.0.0.1 and an ephemeral port, in a thread of the command that
runs the demo pipelines (`etl demo`, `etl ui`, `etl run`): started before them, stopped when the command
ends, so no process outlives it and nothing reaches the network. The pipelines find it through
two variables the command puts into its children's environment: ETL_DEMO_API_URL (the base URL,
`${ETL_DEMO_API_URL}` in `assets/pipelines/reviews.yaml`) and ETL_DEMO_API_KEY (the key, by the
secret reference `env:ETL_DEMO_API_KEY`); the server answers a wrong or missing key with 401.

The reviews are seeded (same seed, same records, like the demo files) and come in two releases:
the demo loads the first, then publishes the second (new reviews, and edits of earlier ones with
a later `updated_at`) and loads again, which reads only those (the pipeline's incremental cursor).
The dirt is deliberate and counted in REVIEW_DIRT: ratings out of range, ratings in words,
reviews without a product.
"""

from __future__ import annotations

import datetime
import json
import random
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

from etl_platform.cli.demo import SEED
from etl_platform.settings import Settings
from etl_platform.spec.pipeline import PipelineSpec

URL_VARIABLE = "ETL_DEMO_API_URL"
KEY_VARIABLE = "ETL_DEMO_API_KEY"
DEMO_KEY = "demo-only-api-key"
KEY_HEADER = "X-API-Key"
PATH = "/v1/reviews"
PAGE_SIZE, MAX_PAGE_SIZE = 25, 100
RELEASES = {"first": {"new": 300, "edited": 0}, "second": {"new": 40, "edited": 10}}
REVIEW_DIRT = {
    "first": {"ratings_out_of_range": 4, "ratings_in_words": 3, "missing_products": 3},
    "second": {"ratings_out_of_range": 1, "ratings_in_words": 0, "missing_products": 1},
}
TITLES = ["Great value", "Does the job", "Broke after a week", "Exactly as described", "Would buy again", "Too small"]


def _timestamp(day: datetime.date, rng: random.Random) -> str:
    moment = datetime.datetime.combine(day, datetime.time()) + datetime.timedelta(seconds=rng.randint(0, 86_399))
    return moment.isoformat() + "Z"


def _dirty(rng: random.Random, reviews: list[dict], dirt: dict[str, int]) -> None:
    picked = iter(rng.sample(reviews, sum(dirt.values())))
    for _ in range(dirt["ratings_out_of_range"]):
        next(picked)["rating"] = rng.choice([0, 6, 10])
    for _ in range(dirt["ratings_in_words"]):
        review = next(picked)
        review["rating"] = ["one", "two", "three", "four", "five"][review["rating"] - 1]
    for _ in range(dirt["missing_products"]):
        next(picked)["product_id"] = None


def _new_reviews(rng: random.Random, ids: range, days: list[datetime.date], dirt: dict[str, int]) -> list[dict]:
    reviews = [
        {
            "review_id": review_id,
            "product_id": rng.randint(1, 40),
            "customer_id": rng.randint(1, 400),
            "rating": rng.choices([1, 2, 3, 4, 5], weights=[1, 1, 2, 4, 5])[0],
            "title": rng.choice(TITLES),
            "updated_at": _timestamp(rng.choice(days), rng),
        }
        for review_id in ids
    ]
    _dirty(rng, reviews, dirt)
    return reviews


def demo_reviews(releases: int) -> list[dict]:
    """The reviews the API holds after `releases` releases (1 or 2), oldest change first; same seed, same records."""
    rng = random.Random(SEED)
    count, added = RELEASES["first"]["new"], RELEASES["second"]["new"]
    first = _new_reviews(
        rng, range(1, count + 1), [datetime.date(2026, 11, 20), datetime.date(2026, 11, 21)], REVIEW_DIRT["first"]
    )
    by_id = {review["review_id"]: review for review in first}
    second_day = [datetime.date(2026, 11, 22)]
    second = _new_reviews(rng, range(count + 1, count + added + 1), second_day, REVIEW_DIRT["second"])
    clean = [r for r in first if isinstance(r["rating"], int) and 1 <= r["rating"] <= 5 and r["product_id"]]
    edits = [
        dict(r, rating=max(1, r["rating"] - 2), title=r["title"] + " (edited)", updated_at=_timestamp(second_day[0], rng))
        for r in rng.sample(clean, RELEASES["second"]["edited"])
    ]
    if releases >= 2:
        by_id |= {review["review_id"]: review for review in second + edits}
    return sorted(by_id.values(), key=lambda r: (r["updated_at"], r["review_id"]))


class DemoApi:
    """The demo API server in a thread of this process; `with DemoApi(key) as api:` serves at `api.url`."""

    def __init__(self, api_key: str, releases: int = 2):
        self.api_key = api_key
        self.reviews = demo_reviews(releases)
        self.requests = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._server.serve_forever, name=f"demo-api {self.url}", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def publish_second_release(self) -> None:
        """New reviews and edits of earlier ones arrive: the next incremental load reads only these."""
        self.reviews = demo_reviews(2)

    def page(self, query: dict[str, str]) -> dict:
        """One page of the reviews changed at or after `updated_since`, with the next page's link (relative)."""
        since = query.get("updated_since", "")
        size = min(int(query.get("per_page", PAGE_SIZE)), MAX_PAGE_SIZE)
        number = int(query.get("page", 1))
        if size < 1 or number < 1:
            raise ValueError("page and per_page start at 1")
        matching = [r for r in self.reviews if r["updated_at"] >= since]
        following = {"updated_since": since, "per_page": size, "page": number + 1}
        more = number * size < len(matching)
        return {
            "data": matching[(number - 1) * size : number * size],
            "links": {"next": f"{PATH}?{urlencode(following)}" if more else None},
            "meta": {"page": number, "per_page": size, "total": len(matching)},
        }

    def __enter__(self) -> DemoApi:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def _handler(api: DemoApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            api.requests += 1
            address = urlsplit(self.path)
            if self.headers.get(KEY_HEADER) != api.api_key:
                return self._answer(401, {"error": f"missing or invalid API key (send it in the {KEY_HEADER} header)"})
            if address.path != PATH:
                return self._answer(404, {"error": f"no such resource {address.path}; the demo API serves {PATH}"})
            query = {name: values[-1] for name, values in parse_qs(address.query).items()}
            try:
                return self._answer(200, api.page(query))
            except ValueError:
                return self._answer(400, {"error": "page and per_page must be whole numbers from 1"})

        def _answer(self, status: int, body: dict) -> None:
            content = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: the demo's output is the pipelines' summary, not an access log."""

    return Handler


def reads_demo_api(spec: PipelineSpec) -> bool:
    """Whether the pipeline's source is the demo API (its base URL is `${ETL_DEMO_API_URL}`)."""
    client = getattr(spec.source, "client", None)
    return client is not None and f"${{{URL_VARIABLE}}}" in client.base_url


@contextmanager
def serving(settings: Settings, pipelines: Iterable[PipelineSpec], releases: int = 2) -> Iterator[tuple[DemoApi | None, dict]]:
    """The demo API, while a command runs pipelines that read it, and the environment its children need.

    Started only when a pipeline reads it and ETL_DEMO_API_URL is not set already (then that API
    is used); the key is ETL_DEMO_API_KEY if set, else a demo-only key.
    """
    if settings.secrets.get(URL_VARIABLE) or not any(reads_demo_api(spec) for spec in pipelines):
        yield None, {}
        return
    key = settings.secrets.get(KEY_VARIABLE) or DEMO_KEY
    with DemoApi(key, releases) as api:
        yield api, {URL_VARIABLE: api.url, KEY_VARIABLE: key}
