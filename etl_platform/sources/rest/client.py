"""One GET with the client's headers and credentials, paced by the host's budget and retried when worth it.

429, 5xx and connection errors are retried with exponential backoff and full jitter, waiting at
least what `Retry-After` asks; when the attempts run out the error is transient (the asset's retry
policy and the host's circuit breaker see an outage). Every other 4xx fails at once, permanent,
with the status, the URL and an excerpt of the body, credentials redacted
(docs/how-a-run-works.md, "Failures").
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Mapping
from urllib.parse import urlsplit

import requests

from etl_platform.breaker import BreakerBoard
from etl_platform.errors import SourceError, redact
from etl_platform.retry import is_transient
from etl_platform.sources.rest.auth import Credentials
from etl_platform.sources.rest.budget import HostBudget
from etl_platform.sources.sql import expand_env
from etl_platform.spec.rest import RestClient

EXCERPT = 300


def retry_after(value: str | None) -> float:
    """Seconds from a Retry-After header (a number, or an HTTP date); 0 when absent or unreadable."""
    if not value:
        return 0.0
    try:
        return max(float(value), 0.0)
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return max(parsed.timestamp() - time.time(), 0.0) if parsed else 0.0


class HttpClient:
    """GETs against one API: its base URL, headers, credentials, budget, retries and breaker."""

    def __init__(self, spec: RestClient, secrets: Mapping[str, str], breakers: BreakerBoard, sleep=time.sleep):
        self.spec = spec
        self.base_url = expand_env(spec.base_url, secrets)
        if not self.base_url.startswith(("http://", "https://")):
            raise SourceError(f"base_url {spec.base_url!r} does not resolve to an http:// or https:// URL; check the variable")
        self.session = requests.Session()
        self.headers = {name: expand_env(value, secrets) for name, value in spec.headers.items()}
        self.credentials = Credentials(spec.auth, secrets, self.session, spec.timeout_seconds)
        self.budget = HostBudget(spec.rate_limit)
        self.breakers = breakers
        self.sleep = sleep
        self.requests = 0

    def redact(self, text: str) -> str:
        """`text` as any message may show it: `errors.redact`, which knows every credential this client
        resolved (`expand_env` registers each) and every OAuth2 token it fetched."""
        return redact(text)

    def url(self, path: str) -> str:
        return path if "://" in path else self.base_url.rstrip("/") + "/" + path.lstrip("/")

    def get(self, url: str, params: Mapping[str, object]) -> requests.Response:
        host = urlsplit(url).netloc
        return self.breakers.guarded(f"REST API {host}", lambda: self._retried(url, dict(params)), is_transient)

    def _retried(self, url: str, params: dict) -> requests.Response:
        retries = self.spec.retries
        refreshed = False
        for attempt in range(1, retries.attempts + 1):
            response, failure = self._attempt(url, params)
            if response is not None and response.status_code == 401 and not refreshed and self.credentials.refreshable():
                refreshed = True
                continue
            if response is not None and response.status_code < 400:
                return response
            transient = failure is not None or response.status_code == 429 or response.status_code >= 500
            message = failure or self._describe(response, url)
            if not transient:
                raise SourceError(message)
            if attempt == retries.attempts:
                raise SourceError(f"{message} (after {attempt} attempts)", transient=True)
            backoff = random.uniform(0, min(retries.max_backoff_seconds, retries.backoff_seconds * 2 ** (attempt - 1)))
            waited = retry_after(response.headers.get("Retry-After")) if response is not None else 0.0
            self.sleep(max(backoff, waited))
        raise AssertionError("unreachable")

    def _attempt(self, url: str, params: dict) -> tuple[requests.Response | None, str | None]:
        headers = dict(self.headers)
        query = dict(params)
        self.credentials.apply(headers, query)
        self.budget.wait()
        self.requests += 1
        try:
            response = self.session.get(url, params=query, headers=headers, timeout=self.spec.timeout_seconds)
        except requests.RequestException as exc:
            return None, self.redact(f"GET {url}: {type(exc).__name__}: {exc}")
        self.budget.observe(response.headers)
        return response, None

    def _describe(self, response: requests.Response, url: str) -> str:
        body = " ".join(response.text[:EXCERPT].split())
        hint = " (check the credentials)" if response.status_code in (401, 403) else ""
        return self.redact(f"GET {response.url or url}: HTTP {response.status_code}{hint}; body: {body!r}")

    def close(self) -> None:
        self.session.close()
