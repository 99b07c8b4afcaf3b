"""Find duplicate records: exact matches on normalized keys, and fuzzy matches on embeddings.

Fuzzy matching never compares every pair. Rows are split into blocks by their blocking keys
(a prefix, a Soundex code); within a block each row's nearest neighbours by a combined embedding
are candidates, and a candidate pair is a match when the weighted mean of its per-field cosine
similarities reaches the threshold. Matches are merged into clusters (union-find), and each
cluster keeps one survivor chosen by the strategy. A field's similarity is the embedding cosine,
the Jaro-Winkler similarity of the texts, or (hybrid, the default) the larger of the two.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import jellyfish
import numpy as np
import pyarrow as pa

from etl_platform.ml.embeddings import Embedder
from etl_platform.ml.quality_score import completeness
from etl_platform.ml.text import blocking_key, normalized
from etl_platform.sources.base import PROVENANCE
from etl_platform.spec.ml import DeduplicateSpec
from etl_platform.tables import require_columns

# Columns added to the kept rows, and to the dropped rows' audit.
CLUSTER, MEMBERS, MIN_SIMILARITY = "dedup_cluster", "dedup_members", "dedup_min_similarity"
SURVIVOR_ROW, SIMILARITY = "dedup_survivor_row", "dedup_similarity"
# Columns other steps add, which say nothing about a record's completeness.
DERIVED_COLUMNS = (CLUSTER, MEMBERS, MIN_SIMILARITY, "anomaly", "anomaly_score", "anomaly_reason")


class UnionFind:
    def __init__(self, size: int) -> None:
        self.parent = np.arange(size)

    def find(self, item: int) -> int:
        root = item
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[item] != root:
            self.parent[item], item = root, self.parent[item]
        return int(root)

    def union(self, a: int, b: int) -> None:
        root_a, root_b = self.find(a), self.find(b)
        if root_a != root_b:
            self.parent[max(root_a, root_b)] = min(root_a, root_b)


@dataclass
class FieldVectors:
    """One fuzzy field: distinct values and their embeddings, each row's index into them (-1: null), its weight."""

    name: str
    texts: list[str]
    vectors: np.ndarray
    index: np.ndarray
    weight: float


def value_similarity(x: FieldVectors, a: np.ndarray, y: FieldVectors, b: np.ndarray, compare: str) -> np.ndarray:
    """Rows a of field x against rows b of field y: embedding cosine, Jaro-Winkler, or the larger; NaN if one is null."""
    ia, ib = x.index[a], y.index[b]
    both = (ia >= 0) & (ib >= 0)
    result = np.full(len(a), np.nan)
    ia, ib = ia[both], ib[both]
    cosine = np.einsum("ij,ij->i", x.vectors[ia], y.vectors[ib]) if compare != "characters" else np.zeros(len(ia))
    if compare == "embedding":
        result[both] = cosine
        return result
    characters = np.array(
        [
            1.0 if x.texts[i] == y.texts[j] else jellyfish.jaro_winkler_similarity(x.texts[i], y.texts[j])
            for i, j in zip(ia, ib, strict=True)
        ]
    )
    result[both] = np.maximum(cosine, characters)
    return result


@dataclass
class Deduplicated:
    kept: pa.Table
    dropped: pa.Table  # the rows removed, with the cluster, survivor row and similarity of each
    clusters: int


class Deduplicator:
    def __init__(self, spec: DeduplicateSpec, embedder: Embedder | None, where: str = "deduplicate"):
        self.spec = spec
        self.embedder = embedder
        self.where = where

    def _exact(self, table: pa.Table, clusters: UnionFind) -> None:
        groups: dict[tuple, int] = {}
        keys = [[normalized(v) for v in table[c].to_pylist()] for c in self.spec.keys]
        for row, key in enumerate(zip(*keys, strict=True)):
            if any(part is None for part in key):
                continue  # a missing key matches nothing
            first = groups.setdefault(key, row)
            if first != row:
                clusters.union(first, row)

    def _fields(self, table: pa.Table) -> list[FieldVectors]:
        fuzzy = self.spec.fuzzy
        total = sum(fuzzy.fields.values())
        fields = []
        for column, weight in fuzzy.fields.items():
            texts, vectors, index = self.embedder.embed_distinct([normalized(v) for v in table[column].to_pylist()])
            fields.append(FieldVectors(column, texts, vectors, index, weight / total))
        return fields

    def similarity(self, fields: list[FieldVectors], a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Weighted mean field similarity of row pairs (a[i], b[i]) over the fields both rows have.

        For each `swappable` pair of fields (given and family name), the pair counts crossed
        (a's given name against b's family name and the other way) where that agrees better.
        """
        compare = self.spec.fuzzy.compare
        by_name = {f.name: f for f in fields}
        sims = {f.name: value_similarity(f, a, f, b, compare) for f in fields}
        for first, second in self.spec.fuzzy.swappable:
            x, y = by_name[first], by_name[second]
            crossed_x, crossed_y = value_similarity(x, a, y, b, compare), value_similarity(y, a, x, b, compare)
            direct = x.weight * sims[first] + y.weight * sims[second]
            better = (x.weight * crossed_x + y.weight * crossed_y) > direct  # False where any value is null
            sims[first] = np.where(better, crossed_x, sims[first])
            sims[second] = np.where(better, crossed_y, sims[second])
        score = np.zeros(len(a))
        weight = np.zeros(len(a))
        for field in fields:
            present = ~np.isnan(sims[field.name])
            score[present] += field.weight * sims[field.name][present]
            weight[present] += field.weight
        return np.divide(score, weight, out=np.zeros(len(a)), where=weight > 0)

    def _blocks(self, table: pa.Table) -> list[np.ndarray]:
        blocking = self.spec.fuzzy.blocking
        if not blocking:
            return [np.arange(len(table))]
        parts = [[blocking_key(v, b.method, b.length) for v in table[b.column].to_pylist()] for b in blocking]
        members: dict[tuple, list[int]] = defaultdict(list)
        for row, key in enumerate(zip(*parts, strict=True)):
            if all(k is not None for k in key):
                members[key].append(row)
        return [np.array(rows) for rows in members.values() if len(rows) > 1]

    def _fuzzy(self, table: pa.Table, clusters: UnionFind) -> list[FieldVectors]:
        """Union rows whose weighted similarity reaches the threshold; returns the fields' vectors."""
        # scikit-learn takes seconds to import: only a load that deduplicates fuzzily pays for it.
        from sklearn.neighbors import NearestNeighbors

        fuzzy = self.spec.fuzzy
        fields = self._fields(table)
        combined = np.zeros((len(table), self.embedder.dimensions), np.float32)
        for field in fields:
            present = field.index >= 0
            combined[present] += np.sqrt(field.weight) * field.vectors[field.index[present]]
        norms = np.linalg.norm(combined, axis=1, keepdims=True)
        combined = np.divide(combined, norms, out=np.zeros_like(combined), where=norms > 0)
        for rows in self._blocks(table):
            neighbours = min(fuzzy.neighbors + 1, len(rows))
            search = NearestNeighbors(n_neighbors=neighbours, metric="cosine", algorithm="brute").fit(combined[rows])
            _, found = search.kneighbors(combined[rows])
            left = np.repeat(rows, neighbours)
            right = rows[found.ravel()]
            # a pair counts once, whichever of its rows found the other
            pairs = np.unique(np.column_stack([np.minimum(left, right), np.maximum(left, right)]), axis=0)
            pairs = pairs[pairs[:, 0] != pairs[:, 1]]
            left, right = pairs[:, 0], pairs[:, 1]
            scores = self.similarity(fields, left, right)
            match = scores >= fuzzy.threshold
            for a, b in zip(left[match], right[match], strict=True):
                clusters.union(int(a), int(b))
        return fields

    def _survivor(self, members: list[int], quality: np.ndarray) -> int:
        strategy = self.spec.strategy
        if strategy == "keep_last":
            return members[-1]
        if strategy == "keep_best_quality":
            return max(members, key=lambda row: (quality[row], -row))
        return members[0]  # keep_first, and merge (which then fills the survivor's gaps)

    def apply(self, table: pa.Table, quality: np.ndarray | None = None) -> Deduplicated:
        columns = [*self.spec.keys, *(self.spec.fuzzy.fields if self.spec.fuzzy else ())]
        columns += [b.column for b in (self.spec.fuzzy.blocking if self.spec.fuzzy else ())]
        require_columns(table, columns, self.where)
        clusters = UnionFind(len(table))
        if self.spec.keys:
            self._exact(table, clusters)
        fields = self._fuzzy(table, clusters) if self.spec.fuzzy is not None and len(table) > 1 else []
        groups: dict[int, list[int]] = defaultdict(list)
        for row in range(len(table)):
            groups[clusters.find(row)].append(row)
        quality = completeness(table, ignore=DERIVED_COLUMNS) if quality is None else quality
        cluster_of = np.full(len(table), -1, np.int64)
        members_of = np.ones(len(table), np.int32)
        min_similarity = np.ones(len(table))
        kept, dropped, dropped_survivor, dropped_similarity = [], [], [], []
        merged_rows: dict[int, list[int]] = {}
        for cluster_id, members in enumerate(sorted(groups.values(), key=lambda m: m[0])):
            if len(members) == 1:
                kept.append(members[0])
                continue
            survivor = self._survivor(members, quality)
            others = np.array([m for m in members if m != survivor])
            similarity = self.similarity(fields, np.full(len(others), survivor), others) if fields else np.ones(len(others))
            if self.spec.keys and fields:  # an exact key match is similarity 1 whatever the text says
                same_key = self._same_key(table, survivor, others)
                similarity = np.where(same_key, 1.0, similarity)
            kept.append(survivor)
            cluster_of[survivor], members_of[survivor] = cluster_id, len(members)
            min_similarity[survivor] = float(similarity.min())
            dropped += others.tolist()
            dropped_survivor += [survivor] * len(others)
            dropped_similarity += similarity.tolist()
            if self.spec.strategy == "merge":
                merged_rows[survivor] = members
        kept.sort()
        output = table.take(pa.array(kept, pa.int64()))
        if merged_rows:
            output = self._merge(table, output, kept, merged_rows)
        output = output.append_column(
            CLUSTER, pa.array([cluster_of[r] if cluster_of[r] >= 0 else None for r in kept], pa.int64())
        )
        output = output.append_column(MEMBERS, pa.array(members_of[kept], pa.int32()))
        output = output.append_column(MIN_SIMILARITY, pa.array(np.round(min_similarity[kept], 4), pa.float64()))
        removed = table.take(pa.array(dropped, pa.int64())).append_column(
            CLUSTER, pa.array(cluster_of[dropped_survivor], pa.int64())
        )
        removed = removed.append_column(SURVIVOR_ROW, pa.array(dropped_survivor, pa.int64()))
        removed = removed.append_column(SIMILARITY, pa.array(np.round(dropped_similarity, 4), pa.float64()))
        return Deduplicated(output, removed, int((cluster_of >= 0).sum()))

    def _same_key(self, table: pa.Table, survivor: int, others: np.ndarray) -> np.ndarray:
        key = [normalized(table[c][survivor].as_py()) for c in self.spec.keys]
        if any(part is None for part in key):
            return np.zeros(len(others), bool)  # a missing key matches nothing
        return np.array([[normalized(table[c][int(o)].as_py()) for c in self.spec.keys] == key for o in others])

    @staticmethod
    def _merge(table: pa.Table, output: pa.Table, kept: list[int], merged_rows: dict[int, list[int]]) -> pa.Table:
        """Fill each survivor's nulls from its duplicates, in row order."""
        position = {row: i for i, row in enumerate(kept)}
        columns = {}
        for name in output.column_names:
            if name in PROVENANCE:
                columns[name] = output[name]
                continue
            values = output[name].to_pylist()
            source = table[name]
            for survivor, members in merged_rows.items():
                if values[position[survivor]] is None:
                    values[position[survivor]] = next((v for v in (source[m].as_py() for m in members) if v is not None), None)
            columns[name] = pa.array(values, output.schema.field(name).type)
        return pa.table(columns)
