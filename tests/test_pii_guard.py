"""`pii: {detect: true, action: ...}`: PII-looking columns are masked, redacted, or refuse the load."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import pytest

from etl_platform.engine.runner import run_pipeline
from etl_platform.errors import TransformError
from tests.conftest import environment_for, pipeline, rows, write_csv

PEOPLE = "id,email,phone,city\n1,ann@example.com,+49 30 1234567,Berlin\n2,bob@example.org,+33 1 23456789,Paris\n"


def people(**pii):
    return pipeline(pii=pii, destination={"dataset": "analytics.people", "write": "replace"})


def test_fail_refuses_to_publish_unmasked_pii(duckdb_url: str, landing: Path) -> None:
    write_csv(landing, "input.csv", PEOPLE)
    with pytest.raises(TransformError, match=r"columns 'email' \(email, 100% of values\), 'phone' \(phone.*look like PII"):
        run_pipeline(people(action="fail"), environment_for(duckdb_url, landing))
    assert rows(duckdb_url, "SELECT count(*) AS n FROM information_schema.tables WHERE table_name = 'people'")[0]["n"] == 0


def test_mask_hashes_emails_with_the_salt_and_redacts_phones(duckdb_url: str, landing: Path, tmp_path: Path) -> None:
    write_csv(landing, "input.csv", PEOPLE)
    (tmp_path / "salt").write_text("file-salt\n")
    run_pipeline(people(action="mask", salt_secret=f"file:{tmp_path / 'salt'}"), environment_for(duckdb_url, landing))
    published = rows(duckdb_url, "SELECT email, phone, city FROM analytics.people ORDER BY id")
    assert published[0] == {
        "email": hashlib.sha256(b"file-saltann@example.com").hexdigest(),
        "phone": "[REDACTED]",
        "city": "Berlin",
    }


def test_redact_and_ignore(duckdb_url: str, landing: Path) -> None:
    write_csv(landing, "input.csv", PEOPLE)
    run_pipeline(people(action="redact", ignore=["phone"]), environment_for(duckdb_url, landing))
    published = rows(duckdb_url, "SELECT email, phone FROM analytics.people ORDER BY id")
    assert published[1] == {"email": "[REDACTED]", "phone": "+33 1 23456789"}


def test_a_pipeline_that_masks_its_pii_passes_the_guard(duckdb_url: str, landing: Path) -> None:
    write_csv(landing, "input.csv", PEOPLE)
    spec = pipeline(
        transforms=[{"mask": {"email": "sha256", "phone": "redact"}}],
        pii={"action": "fail"},
        destination={"dataset": "analytics.people", "write": "replace"},
    )
    assert run_pipeline(spec, environment_for(duckdb_url, landing)).rows_published == 2


def test_hmac_mask_with_a_key_from_the_secret_store(duckdb_url: str, landing: Path, tmp_path: Path) -> None:
    write_csv(landing, "input.csv", PEOPLE)
    (tmp_path / "key").write_text("mask-key")
    spec = pipeline(
        transforms=[{"mask": {"phone": {"method": "hmac", "salt_secret": f"file:{tmp_path / 'key'}"}, "email": "redact"}}],
        pii={"action": "fail"},
        destination={"dataset": "analytics.people", "write": "replace"},
    )
    run_pipeline(spec, environment_for(duckdb_url, landing))
    phone = rows(duckdb_url, "SELECT phone FROM analytics.people ORDER BY id")[0]["phone"]
    assert phone == hmac.new(b"mask-key", b"+49 30 1234567", hashlib.sha256).hexdigest()


def test_a_column_that_first_holds_values_in_a_later_chunk_is_judged_there(duckdb_url: str, landing: Path) -> None:
    """REST pages and stream messages bring columns as they come: judging only the first chunk let them through."""
    early = "".join(f'{{"id": {n}, "city": "Berlin"}}\n' for n in range(1_500))
    late = "".join(f'{{"id": {n}, "city": "Paris", "email": "user{n}@example.com"}}\n' for n in range(1_500, 3_000))
    (landing / "input.jsonl").write_text(early + late)
    spec = pipeline(
        source={"type": "jsonl", "path": "input.jsonl"},
        execution={"chunk_rows": 1_000},
        pii={"action": "fail"},
        destination={"dataset": "analytics.people", "write": "replace"},
    )
    with pytest.raises(TransformError, match=r"columns 'email' \(email"):
        run_pipeline(spec, environment_for(duckdb_url, landing))
    assert rows(duckdb_url, "SELECT count(*) AS n FROM information_schema.tables WHERE table_name = 'people'")[0]["n"] == 0
