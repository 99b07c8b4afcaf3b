"""Retries and circuit breakers per external system: S3 endpoints and the PostgreSQL warehouse."""

from __future__ import annotations

import time
from pathlib import Path

import boto3
import botocore.config
import pytest

from etl_platform.breaker import BreakerBoard, SystemUnavailable
from etl_platform.engine.runner import run_pipeline
from etl_platform.errors import WarehouseUnavailable
from etl_platform.settings import BreakerSettings
from etl_platform.stores import AllowedRoots, FileLocation, S3Store
from tests.conftest import environment_for, pipeline


def test_an_unreachable_endpoint_opens_the_breaker(s3_bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    breakers = BreakerBoard(BreakerSettings(failures=2))
    config = botocore.config.Config(retries={"max_attempts": 1}, connect_timeout=1)
    down = boto3.session.Session().client("s3", endpoint_url="http://127.0.0.1:9", config=config)
    location = FileLocation(S3Store(s3_bucket, "", down, breakers), "", "*.csv", AllowedRoots.of(f"s3://{s3_bucket}/"))
    for _ in range(2):
        with pytest.raises(SystemUnavailable, match=r"cannot reach S3 at http://127\.0\.0\.1:9"):
            location.files()
    with pytest.raises(
        SystemUnavailable, match=r"failed 2 times in a row, so calls to it are stopped .* \(circuit breaker open\)"
    ):
        location.files()
    # After the cool-down one call probes again (and here fails again, re-opening the breaker).
    monkeypatch.setattr(breakers.breaker("S3 at http://127.0.0.1:9", lambda exc: True), "reset_timeout", 0.2)
    time.sleep(0.3)
    with pytest.raises(SystemUnavailable, match="cannot reach"):
        location.files()


def test_a_down_warehouse_opens_its_breaker_and_fails_fast(landing: Path) -> None:
    breakers = BreakerBoard(BreakerSettings(failures=2))
    down = environment_for("postgresql://postgres@127.0.0.1:1/test", landing, breakers)
    spec = pipeline(source={"type": "csv", "path": "*.csv"})
    for _ in range(2):
        with pytest.raises(WarehouseUnavailable, match="cannot connect to the PostgreSQL warehouse"):
            run_pipeline(spec, down)
    started = time.monotonic()
    with pytest.raises(SystemUnavailable, match=r"PostgreSQL at 127\.0\.0\.1:1 failed 2 times in a row"):
        run_pipeline(spec, down)
    assert time.monotonic() - started < 1  # no connection attempts, no backoff sleeps
