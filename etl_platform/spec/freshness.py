"""`freshness: {max_age: 26h}`: how old a pipeline's dataset may get before it counts as stale.

It becomes a Dagster freshness check on the dataset (assets/freshness.py), evaluated by Dagster's
freshness sensor, shown in the UI and `etl catalog`, and alerted as a failed check (sensors/alerts.py).
"""

from __future__ import annotations

import datetime

from pydantic import Field, field_validator

from etl_platform.spec.base import Strict, parse_duration


class FreshnessSpec(Strict):
    max_age: str = Field(description="the longest time since the last publish: '90s', '15m', '26h', '2d', '1w'")

    @field_validator("max_age")
    @classmethod
    def _duration(cls, value: str) -> str:
        parse_duration(value)
        return value

    @property
    def max_age_delta(self) -> datetime.timedelta:
        return parse_duration(self.max_age)
