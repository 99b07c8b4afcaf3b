"""Deduplication with the real all-MiniLM-L6-v2 model: exact keys, fuzzy fields, blocking, strategies, audit."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from etl_platform.engine.runner import run_pipeline
from etl_platform.ml.dedup import Deduplicator
from etl_platform.ml.embeddings import shared_embedder
from etl_platform.spec.ml import DeduplicateSpec
from tests.conftest import environment_for, pipeline, rows, write_csv

PEOPLE = pa.table(
    {
        "id": [1, 2, 3, 4, 5, 6],
        "first_name": ["Jonathan", "Jonathon", "Maria", "Marie", "Peter", "Jonathan"],
        "last_name": ["Smith", "Smith", "Garcia", "Garcia", "Novak", "Smyth"],
        "city": ["Berlin", "Berlin", "Madrid", None, "Prague", "Berlin"],
        "phone": [None, "030 1234", None, "91 555", "420 777", None],
    }
)


def dedup(table: pa.Table, **spec) -> tuple[list, list, list]:
    result = Deduplicator(DeduplicateSpec.model_validate(spec), shared_embedder()).apply(table)
    return result.kept["id"].to_pylist(), result.dropped["id"].to_pylist(), result.kept


FUZZY = {"fields": {"first_name": 1.0, "last_name": 1.0}, "threshold": 0.85}


def test_fuzzy_matches_typos_and_keeps_the_first() -> None:
    kept, dropped, table = dedup(PEOPLE, fuzzy=FUZZY)
    assert kept == [1, 3, 5] and sorted(dropped) == [2, 4, 6]
    clusters = dict(zip(table["id"].to_pylist(), table["dedup_members"].to_pylist(), strict=True))
    assert clusters == {1: 3, 3: 2, 5: 1}
    assert 0.85 <= table["dedup_min_similarity"][0].as_py() < 1.0


def test_a_higher_threshold_separates_what_a_lower_one_joins() -> None:
    kept, _, _ = dedup(PEOPLE, fuzzy={**FUZZY, "threshold": 0.99})
    assert kept == [1, 2, 3, 4, 5, 6]


def test_blocking_compares_only_rows_of_one_block() -> None:
    # Soundex(Smith) == Soundex(Smyth) == S530: still compared; Garcia and Novak are other blocks.
    kept, _, _ = dedup(PEOPLE, fuzzy={**FUZZY, "blocking": [{"column": "last_name", "method": "soundex"}]})
    assert kept == [1, 3, 5]
    # By city (exact), Maria (Madrid) and Marie (no city) are never compared.
    kept, _, _ = dedup(PEOPLE, fuzzy={**FUZZY, "blocking": [{"column": "city"}]})
    assert kept == [1, 3, 4, 5]


@pytest.mark.parametrize(
    ("strategy", "kept"),
    # best quality: the most non-null values; Maria and Marie tie (4 of 5), so the first wins
    [("keep_first", [1, 3, 5]), ("keep_last", [4, 5, 6]), ("keep_best_quality", [2, 3, 5])],
)
def test_strategies_choose_the_survivor(strategy: str, kept: list[int]) -> None:
    assert dedup(PEOPLE, fuzzy=FUZZY, strategy=strategy)[0] == kept


def test_merge_fills_the_survivors_nulls_from_its_duplicates() -> None:
    _, _, table = dedup(PEOPLE, fuzzy=FUZZY, strategy="merge")
    merged = {r["id"]: r for r in table.to_pylist()}
    assert merged[1]["phone"] == "030 1234"  # from row 2
    assert (merged[3]["city"], merged[3]["phone"]) == ("Madrid", "91 555")


def test_exact_keys_are_normalized() -> None:
    table = pa.table({"id": [1, 2, 3], "email": [" Anna@Example.com", "anna@example.com", None]})
    kept, dropped, _ = dedup(table, keys=["email"])
    assert (kept, dropped) == ([1, 3], [2])  # a null key matches nothing


def test_a_pipeline_publishes_survivors_and_audits_dropped_rows(warehouse_url: str, landing: Path) -> None:
    write_csv(
        landing,
        "people.csv",
        "id,first_name,last_name,email\n1,Jonathan,Smith,j@x.org\n2,Jonathon,Smith,\n3,Anna,Berg,anna@x.org\n"
        "4,Ana,Berg, ANNA@x.org\n5,Peter,Novak,p@x.org\n",
    )
    spec = pipeline(
        id="people",
        source={"type": "csv", "path": "people.csv"},
        transforms=[
            {"cast": {"id": "int"}},
            {"deduplicate": {"keys": ["email"], "fuzzy": FUZZY, "strategy": "merge"}},
        ],
        destination={"dataset": "crm.people", "write": "replace"},
    )
    report = run_pipeline(spec, environment_for(warehouse_url, landing))
    assert (report.rows_read, report.rows_published, report.rows_filtered, report.rows_deduplicated) == (5, 3, 2, 2)
    published = rows(warehouse_url, "SELECT id, email, dedup_members FROM crm.people ORDER BY id")
    assert published == [
        {"id": 1, "email": "j@x.org", "dedup_members": 2},
        {"id": 3, "email": "anna@x.org", "dedup_members": 2},
        {"id": 5, "email": "p@x.org", "dedup_members": 1},
    ]
    audit = rows(warehouse_url, "SELECT source_line, similarity, record FROM _etl.dedup_audit ORDER BY source_line")
    assert [a["source_line"] for a in audit] == [3, 5]
    assert audit[1]["similarity"] == 1.0  # same email: an exact match
    assert '"first_name":"Jonathon"' in audit[0]["record"]


def test_deduplicate_must_follow_the_row_transforms() -> None:
    from etl_platform.errors import SpecError

    with pytest.raises(SpecError, match=r"`deduplicate` sees the whole load.*move \['cast'\] before it"):
        pipeline(transforms=[{"deduplicate": {"keys": ["id"]}}, {"cast": {"id": "int"}}])
