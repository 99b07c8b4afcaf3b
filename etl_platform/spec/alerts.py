"""`alerts:` of a pipeline: where its failures are sent, and which failures.

A receiver's URL and signing key are secrets by reference (etl_platform.secrets): a Slack
incoming-webhook URL carries its token, so `url` may be `env:NAME`, `file:/path` or `vault:...`
as well as a plain http(s) URL. They are resolved when an alert is sent, never at load.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from etl_platform.secrets import is_reference
from etl_platform.spec.base import Strict

AlertEvent = Literal["run_failure", "check_failure"]


class AlertReceiver(Strict):
    url: str = Field(description="an http(s) URL, or a secret reference (env:NAME, file:/path, vault:mount/path#key)")
    format: Literal["webhook", "slack"] = Field(
        "webhook", description="webhook: the alert as JSON, HMAC-signed; slack: a Slack incoming-webhook message"
    )
    signing_secret: str | None = Field(
        None, description="a secret reference: the key of the X-ETL-Signature HMAC-SHA256 header (webhook only)"
    )

    @model_validator(mode="after")
    def _check(self) -> AlertReceiver:
        if not (is_reference(self.url) or self.url.startswith(("http://", "https://"))):
            raise ValueError(f"alert url {self.url!r} must be an http(s) URL or a secret reference such as env:ALERT_URL")
        if self.signing_secret is not None and not is_reference(self.signing_secret):
            raise ValueError("signing_secret must be a secret reference (env:NAME, file:/path, vault:...), never the key itself")
        if self.signing_secret is not None and self.format == "slack":
            raise ValueError("a slack receiver checks no signature: drop signing_secret, or use format: webhook")
        return self


class AlertsSpec(Strict):
    """Receivers of the pipeline's alerts, and the events that send one."""

    on: list[AlertEvent] = Field(
        default_factory=lambda: ["run_failure", "check_failure"],
        description="run_failure: a run of the pipeline failed; check_failure: a blocking check failed "
        "(rules, breaker, anomaly rate, freshness)",
    )
    receivers: list[AlertReceiver] = Field(min_length=1)
