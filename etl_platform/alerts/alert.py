"""One failure as an alert, with the key that makes it one alert however often it is sent."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass

from etl_platform.spec.alerts import AlertEvent


@dataclass(frozen=True)
class Alert:
    """A failure of pipeline `pipeline`: a failed run, or a failed blocking check (`check` names it).

    `failure_id` names the failure itself (the run id, or the check evaluation's record), so a
    sensor that sends it again after a crash sends the same `idempotency_key` and the receiver
    drops the copy.
    """

    event: AlertEvent
    pipeline: str
    run_id: str
    failure_id: str
    summary: str
    detail: str = ""
    check: str | None = None
    dataset: str | None = None

    @property
    def idempotency_key(self) -> str:
        text = "\x1f".join([self.event, self.pipeline, self.failure_id, self.check or ""])
        return hashlib.sha256(text.encode()).hexdigest()

    def as_json(self) -> dict:
        return {**asdict(self), "idempotency_key": self.idempotency_key}

    def as_text(self) -> str:
        """One message for a chat: what failed, and the first lines of why."""
        head = f":rotating_light: {self.summary} (run {self.run_id})"
        return f"{head}\n{self.detail[:1500]}" if self.detail else head
