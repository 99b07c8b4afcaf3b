"""Schema inference on files with known semantic columns, and `etl infer` output that validates."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import yaml

from etl_platform.ml.inference import link_foreign_keys, profile_table
from etl_platform.spec import spec_from_document

ETL = str(Path(sys.executable).parent / "etl")

PEOPLE = """person_id,email,phone,website,ip,zip,born,salary,card,ssn,note
1,ann@example.org,+49 30 1234567,https://ann.example.org,10.0.0.1,01067,1990-01-02,"€1,200.50",4111 1111 1111 1111,123-45-6789,hi
2,bob@example.org,+49 30 7654321,https://bob.example.org,10.0.0.2,10117,1985-05-06,€990.00,5500 0000 0000 0004,987-65-4321,
3,cy@example.org,(030) 555-0199,http://cy.example.org/x,192.168.1.20,80331,1979-12-31,€15.00,4012 8888 8888 1881,111-22-3333,ok
"""
ORDERS = "order_id,person_id,amount\n" + "".join(f"{i},{1 + i % 3},{i * 1.5}\n" for i in range(1, 31))


def test_semantic_types_keys_and_confidence() -> None:
    import csv
    import io

    records = list(csv.DictReader(io.StringIO(PEOPLE)))
    table = pa.Table.from_pylist([{k: (v or None) for k, v in r.items()} for r in records])
    profile = profile_table("people.csv", table)
    semantic = {c.name: c.semantic for c in profile.columns}
    assert semantic == {
        "person_id": None,
        "email": "email",
        "phone": "phone",
        "website": "url",
        "ip": "ip_address",
        "zip": "postal_code",
        "born": "date",
        "salary": "currency_amount",
        "card": "credit_card",
        "ssn": "national_id",
        "note": None,
    }
    types = {c.name: c.type for c in profile.columns}
    assert (types["person_id"], types["born"], types["zip"]) == ("int", "date", "text")  # 01067 keeps its zero
    assert all(c.semantic_confidence == 1.0 for c in profile.columns if c.semantic)
    assert {c.name: c.pii for c in profile.columns if c.pii} == {
        "email": "sha256",
        "phone": "redact",
        "ip": "sha256",
        "card": "redact",
        "ssn": "redact",
    }
    assert "person_id" in profile.key_candidates


def test_foreign_key_candidates_across_files() -> None:
    people = profile_table("people.csv", pa.table({"person_id": list(range(1, 31)), "name": [f"p{i}" for i in range(30)]}))
    orders = profile_table(
        "orders.csv",
        pa.table(
            {
                "order_id": list(range(100, 160)),
                "person_id": [1 + i % 30 for i in range(60)],
                "quantity": [1 + i % 3 for i in range(60)],
            }
        ),
    )
    link_foreign_keys([people, orders])
    assert orders.foreign_keys == {"person_id": "people.csv.person_id"}  # not quantity: 3 values fit in any id


def test_etl_infer_prints_yaml_that_validates(tmp_path: Path) -> None:
    (tmp_path / "people.csv").write_text(PEOPLE)
    (tmp_path / "orders.csv").write_text(ORDERS)
    done = subprocess.run(
        [ETL, "infer", str(tmp_path / "people.csv"), str(tmp_path / "orders.csv")], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    documents = [d for d in yaml.safe_load_all(done.stdout) if d]
    assert [d["id"] for d in documents] == ["people", "orders"]
    people = spec_from_document(documents[0])
    masks = next(t.mask for t in people.transforms if hasattr(t, "mask"))
    assert set(masks) == {"email", "phone", "ip", "card", "ssn"}
    assert people.destination.write == "merge" and people.destination.primary_key == ["person_id"]
    assert "# candidate primary keys: person_id" in done.stdout
    assert "email: text (100%), email (100%)" in done.stdout
    (tmp_path / "proposed.yaml").write_text(done.stdout.split("---")[1])
    folder = tmp_path / "pipelines"
    folder.mkdir()
    # alone, not beside the demo's own orders pipeline; the profiled files are the landing zone
    env = {**os.environ, "ETL_PIPELINES_DIR": str(folder), "ETL_LANDING_DIR": str(tmp_path)}
    validated = subprocess.run(
        [ETL, "validate", str(tmp_path / "proposed.yaml")], capture_output=True, text=True, timeout=120, env=env
    )
    assert validated.returncode == 0, validated.stdout + validated.stderr
