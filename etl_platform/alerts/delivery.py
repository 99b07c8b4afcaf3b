"""Send an alert to one receiver: a JSON webhook (HMAC-signed) or a Slack incoming webhook.

A receiver that is down or answers 5xx is tried again with backoff (etl_platform.retry); a 4xx
answer is the configuration's fault (a wrong URL or key) and fails at once. Every request carries
the alert's idempotency key, so a retried request that did arrive is dropped by the receiver.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from urllib.parse import urlsplit

import requests

from etl_platform.alerts.alert import Alert
from etl_platform.errors import EtlError, masked_url
from etl_platform.retry import with_backoff
from etl_platform.secrets import is_reference, resolve
from etl_platform.spec.alerts import AlertReceiver

SIGNATURE_HEADER = "X-ETL-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
TIMEOUT_SECONDS = 10


class AlertDeliveryError(EtlError):
    """A receiver refused the alert, or stayed unreachable through every retry."""


def body(alert: Alert, receiver: AlertReceiver) -> bytes:
    document = {"text": alert.as_text()} if receiver.format == "slack" else alert.as_json()
    return json.dumps(document, sort_keys=True).encode()


def where(url: str) -> str:
    """The receiver as messages name it: scheme and host only (a Slack URL's path is its token)."""
    parts = urlsplit(url)
    return masked_url(f"{parts.scheme}://{parts.netloc}")


def signature(payload: bytes, key: str) -> str:
    """`sha256=<hex>` of the HMAC-SHA256 of the request body: the receiver recomputes it with its key."""
    return "sha256=" + hmac.new(key.encode(), payload, hashlib.sha256).hexdigest()


def deliver(
    alert: Alert, receiver: AlertReceiver, environment: Mapping[str, str], attempts: int = 4, base_seconds: float = 0.5
) -> None:
    """POST `alert` to `receiver`, retrying outages; raises AlertDeliveryError naming the receiver (masked)."""
    url = resolve(receiver.url, environment).get_secret_value() if is_reference(receiver.url) else receiver.url
    payload = body(alert, receiver)
    headers = {"Content-Type": "application/json", IDEMPOTENCY_HEADER: alert.idempotency_key}
    if receiver.signing_secret is not None:
        headers[SIGNATURE_HEADER] = signature(payload, resolve(receiver.signing_secret, environment).get_secret_value())

    def post() -> None:
        try:
            response = requests.post(url, data=payload, headers=headers, timeout=TIMEOUT_SECONDS)
        except requests.RequestException as exc:
            raise AlertDeliveryError(f"alert receiver {where(url)} unreachable: {type(exc).__name__}", transient=True) from None
        if response.status_code >= 500:
            raise AlertDeliveryError(f"alert receiver {where(url)} answered {response.status_code}", transient=True)
        if response.status_code >= 400:
            raise AlertDeliveryError(
                f"alert receiver {where(url)} refused the alert ({response.status_code}: {response.text[:200]}); "
                "check the pipeline's alerts.receivers url and signing_secret"
            )

    with_backoff(post, lambda exc: isinstance(exc, AlertDeliveryError) and exc.transient, attempts, base_seconds)
