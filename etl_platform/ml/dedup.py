"""Find duplicate records: exact matches on normalized keys, and fuzzy matches scored per field.

Fuzzy matching never compares every pair. Blocking rules, OR-ed, generate candidate pairs
(ml.blocking); each candidate gets one similarity per field, vectorised over the pairs
(ml.comparison). Without an explicit `threshold`, the similarities become comparison levels and
the Fellegi-Sunter model estimated from the load decides (ml.fellegi_sunter): u from random
pairs, m and the share of matches by EM, a match at `match_probability`. With a `threshold`, the
weighted mean of the similarities decides. Matches join into clusters (connected components), and
each cluster keeps one survivor chosen by the strategy; every dropped row carries why it matched
its survivor (levels, match weight, probability).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import orjson
import pyarrow as pa
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from etl_platform.ml.blocking import Blocking, block_ids, blocking, rules_found
from etl_platform.ml.comparison import FieldValues, embed, field_values, levels, similarity
from etl_platform.ml.embeddings import Embedder
from etl_platform.ml.fellegi_sunter import LEVEL_NAMES, FellegiSunter, estimate
from etl_platform.ml.fellegi_sunter import probability as match_probability
from etl_platform.ml.quality_score import completeness
from etl_platform.sources.base import PROVENANCE, SOURCE_FILE, SOURCE_LINE
from etl_platform.spec.ml import BlockingKey, DeduplicateSpec
from etl_platform.tables import require_columns

# Columns added to the kept rows, and to the dropped rows' audit.
CLUSTER, MEMBERS, MIN_SIMILARITY = "dedup_cluster", "dedup_members", "dedup_min_similarity"
SURVIVOR_ROW, SIMILARITY, EXPLANATION = "dedup_survivor_row", "dedup_similarity", "dedup_explanation"
PUBLISHED = "_dedup_published"  # marks the target's rows while a load is matched against them
# Columns other steps add, which say nothing about a record's completeness.
DERIVED_COLUMNS = (CLUSTER, MEMBERS, MIN_SIMILARITY, "anomaly", "anomaly_score", "anomaly_reason")
RANDOM_PAIRS = 50_000  # pairs sampled for u: a level at 1 in 5,000 still shows about 10 times
EM_SAMPLE_PAIRS = 500_000  # pairs per blocking rule that m and lambda are fitted on (a sample beyond it)


@dataclass
class Deduplicated:
    kept: pa.Table
    dropped: pa.Table  # the rows removed, with the cluster, survivor row, similarity and explanation of each
    clusters: int
    model: dict = field(default_factory=dict)  # blocking counts and estimated parameters, for the run metadata


@dataclass
class Decision:
    """Which load rows survive and which are dropped, and the columns each gets: none of the rows' other values."""

    kept: np.ndarray  # the load's rows kept, ascending
    kept_columns: dict[str, pa.Array]  # CLUSTER, MEMBERS, MIN_SIMILARITY of each kept row
    dropped: np.ndarray  # the load's rows dropped, ascending
    dropped_columns: dict[str, pa.Array]  # CLUSTER, SURVIVOR_ROW, SIMILARITY, EXPLANATION of each
    clusters: int
    model: dict


def row_quality(table: pa.Table) -> np.ndarray:
    """The default quality of each row for keep_best_quality: its completeness, the steps' own columns ignored."""
    return completeness(table, ignore=DERIVED_COLUMNS)


@dataclass
class Scored:
    """Pairs judged: the score that decided (probability or weighted similarity), and the evidence."""

    score: np.ndarray
    matched: np.ndarray
    levels: np.ndarray | None = None
    weights: np.ndarray | None = None


class Deduplicator:
    def __init__(self, spec: DeduplicateSpec, embedder: Embedder | None, where: str = "deduplicate"):
        self.spec = spec
        self.embedder = embedder
        self.where = where
        self.model: FellegiSunter | None = None
        self.values: dict[str, FieldValues] = {}
        # The levels of every candidate batch, in Blocking.batches' order, when EM saw every pair (a
        # load of at most EM_SAMPLE_PAIRS pairs per rule): scoring then compares nothing twice.
        self._known: list[np.ndarray] | None = None

    # --- comparing ---------------------------------------------------------------------------

    def _vectors(self, columns: list[str]) -> np.ndarray:
        """Each row's combined embedding of the columns (unit length; zero where all are null)."""
        combined = None
        for column in columns:
            values = self.values[column]
            embed(values, self.embedder)
            part = np.vstack([values.vectors, np.zeros((1, self.embedder.dimensions), np.float32)])[values.index]
            combined = part if combined is None else combined + part
        norms = np.linalg.norm(combined, axis=1, keepdims=True)
        return np.divide(combined, norms, out=np.zeros_like(combined), where=norms > 0)

    def similarities(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Pairs x fields similarity matrix; swappable fields compared crossed where that agrees better."""
        fuzzy = self.spec.fuzzy
        names = list(fuzzy.fields)
        sims = {n: similarity(self.values[n], a, self.values[n], b, fuzzy.comparison(n)) for n in names}
        for first, second in fuzzy.swappable:
            x, y = self.values[first], self.values[second]
            crossed_x = similarity(x, a, y, b, fuzzy.comparison(first))
            crossed_y = similarity(y, a, x, b, fuzzy.comparison(second))
            wx, wy = fuzzy.fields[first], fuzzy.fields[second]
            better = (wx * crossed_x + wy * crossed_y) > (wx * sims[first] + wy * sims[second])  # False at a null
            sims[first] = np.where(better, crossed_x, sims[first])
            sims[second] = np.where(better, crossed_y, sims[second])
        return np.column_stack([sims[n] for n in names]) if len(a) else np.zeros((0, len(names)))

    def score(self, a: np.ndarray, b: np.ndarray, known: np.ndarray | None = None) -> Scored:
        """Judge the pairs (a, b); `known`: their levels, already compared while the model was estimated."""
        fuzzy = self.spec.fuzzy
        if known is not None:
            return self._judge(known)
        sims = self.similarities(a, b)
        if fuzzy.threshold is not None:
            weight = np.array(list(fuzzy.fields.values()))
            present = ~np.isnan(sims)
            total = (present * weight).sum(axis=1)
            mean = np.divide(np.where(present, sims, 0) @ weight, total, out=np.zeros(len(a)), where=total > 0)
            return Scored(mean, mean >= fuzzy.threshold)
        return self._judge(levels(sims, fuzzy.levels))

    def _judge(self, level: np.ndarray) -> Scored:
        weights = self.model.weights(level)
        probability = match_probability(weights)
        # Equal on every compared field is a match whatever the estimate says: in a load of copies of one
        # record the random pairs agree exactly too, so u(exact) is 1 and the estimated weight says nothing.
        identical = (level == LEVEL_NAMES.index("exact")).all(axis=1)
        return Scored(probability, (probability >= self.spec.fuzzy.match_probability) | identical, level, weights)

    # --- finding pairs -----------------------------------------------------------------------

    def _exact_edges(self, table: pa.Table) -> tuple[np.ndarray, np.ndarray]:
        """Each row with the first row of the same normalized keys (a missing key matches nothing)."""
        values = {c: field_values(table[c], c) for c in self.spec.keys}
        ids = block_ids(BlockingKey(column=list(self.spec.keys)), values)
        rows = np.flatnonzero(ids >= 0)
        _, first, inverse = np.unique(ids[rows], return_index=True, return_inverse=True)
        return rows[first][inverse.ravel()], rows

    def _levels(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return levels(self.similarities(a, b), self.spec.fuzzy.levels)

    def _estimate(self, rows: int, found: Blocking) -> None:
        """u from random pairs, m per blocking rule and lambda by EM (ml.fellegi_sunter), on bounded samples.

        Each rule's pairs are sampled uniformly, at most EM_SAMPLE_PAIRS of them (all of a smaller
        load's); lambda is fitted over the samples' pairs each counted once, in the rule that finds
        it first, weighted by the pairs it stands for."""
        rng = np.random.default_rng(0)
        count = min(RANDOM_PAIRS, rows * (rows - 1) // 2)
        a, b = rng.integers(0, rows, count), rng.integers(0, rows, count)
        a, b = a[a != b], b[a != b]
        fuzzy = self.spec.fuzzy
        names = list(fuzzy.fields)
        swapped = {c for pair in fuzzy.swappable for c in pair}
        rules, union, weights, known = [], [], [], []
        for i, (rule, name) in enumerate(zip(fuzzy.rules, found.names, strict=True)):
            blocked = set() if rule.method == "neighbors" else set(rule.columns)
            if blocked & swapped:  # a swap compares a blocked name crossed with its partner: both say little
                blocked |= swapped
            share = min(1.0, EM_SAMPLE_PAIRS / max(found.pairs_by_rule[name], 1))
            sampled, first = [], []
            for left, right in found.rule_pairs(i):
                if share < 1.0:
                    keep = rng.random(len(left)) < share
                    left, right = left[keep], right[keep]
                sampled.append(self._levels(left, right))
                first.append((found.found_by(left, right) & ((1 << i) - 1)) == 0)
            sample = np.concatenate(sampled) if sampled else np.zeros((0, len(names)), np.int8)
            first_found = np.concatenate(first) if first else np.zeros(0, bool)
            rules.append((sample, [names.index(c) for c in blocked if c in names]))
            known += [lv[f] for lv, f in zip(sampled, first, strict=True)] if share == 1.0 else [None]
            union.append(sample[first_found])
            weights.append(np.full(int(first_found.sum()), 1.0 / share))
        weights = np.concatenate(weights)  # the candidates each sampled pair stands for: they sum to the candidates
        share = float(weights.sum()) / max(rows * (rows - 1) // 2, 1)
        self.model = estimate(names, rules, np.concatenate(union), weights, self._levels(a, b), share)
        self._known = None if any(k is None for k in known) else known

    def _fuzzy_edges(self, table: pa.Table, report: dict) -> tuple[np.ndarray, np.ndarray]:
        """The matched pairs, scored batch by batch (ml.blocking): no array over every candidate pair."""
        fuzzy = self.spec.fuzzy
        columns = {*fuzzy.fields, *(c for r in fuzzy.rules for c in [*r.columns, *(r.within.columns if r.within else [])])}
        self.values = {c: field_values(table[c], c) for c in columns}
        for name in fuzzy.fields:
            if fuzzy.comparison(name) != "characters":
                embed(self.values[name], self.embedder)
        found = blocking(fuzzy.rules, self.values, self._vectors, fuzzy.neighbors, list(fuzzy.fields))
        if fuzzy.threshold is None:
            self._estimate(len(table), found)
        lefts, rights, candidate_pairs, several = [], [], 0, 0
        known, self._known = self._known or [], None
        for i, batch in enumerate(found.batches()):
            matched = self.score(batch.left, batch.right, known[i] if i < len(known) else None).matched
            lefts.append(batch.left[matched])
            rights.append(batch.right[matched])
            candidate_pairs += len(batch.left)
            several += int((rules_found(batch.found_by[matched]) > 1).sum())
        left = np.concatenate(lefts) if lefts else np.zeros(0, np.int64)
        right = np.concatenate(rights) if rights else np.zeros(0, np.int64)
        report["blocking"] = {
            **found.report(),
            "candidate_pairs": candidate_pairs,
            "matched_pairs": len(left),
            # share of the matched pairs more than one rule found: a rule alone would lose about the rest
            "recall_estimate": round(several / len(left), 4) if len(left) else None,
        }
        if self.model is not None:
            report["parameters"] = self.model.describe()
            report["match_probability"] = fuzzy.match_probability
        else:
            report["parameters"] = {"model": "weighted_mean", "threshold": fuzzy.threshold, "weights": dict(fuzzy.fields)}
        return left, right

    def _explain(self, table: pa.Table, survivors: np.ndarray, others: np.ndarray) -> tuple[np.ndarray, list[str]]:
        """Each dropped row against its survivor: the score, and the levels and weight behind it."""
        where = [c for c in (SOURCE_FILE, SOURCE_LINE) if c in table.column_names]
        origin = table.select(where).take(pa.array(survivors, pa.int64())).to_pylist() if where else [{}] * len(survivors)
        if PUBLISHED in table.column_names:  # a published survivor is named by its values: it has no line in this load
            theirs = table.select(self.columns()).take(pa.array(survivors, pa.int64())).to_pylist()
            flags = table[PUBLISHED].take(pa.array(survivors, pa.int64())).to_pylist()
            origin = [{"published": t} if f else o for o, t, f in zip(origin, theirs, flags, strict=True)]
        if self.spec.fuzzy is None or not len(others):
            return np.ones(len(others)), [orjson.dumps({"survivor": o, "exact_keys": self.spec.keys}).decode() for o in origin]
        scored = self.score(survivors, others)
        names = list(self.spec.fuzzy.fields)
        explanations = []
        for i in range(len(others)):
            item: dict = {"survivor": origin[i]}  # the survivor's file and line: the other record of the pair
            if scored.levels is not None:
                item["levels"] = {
                    n: LEVEL_NAMES[v] if v >= 0 else "missing" for n, v in zip(names, scored.levels[i].tolist(), strict=True)
                }
                item["match_weight"] = round(float(scored.weights[i]), 3)
                item["match_probability"] = round(float(scored.score[i]), 6)
            else:
                item["weighted_similarity"] = round(float(scored.score[i]), 4)
            explanations.append(orjson.dumps(item).decode())
        return scored.score, explanations

    def _survivors(self, labels: np.ndarray, quality: np.ndarray) -> np.ndarray:
        """The survivor row of each cluster label; a tie in quality goes to the earlier row."""
        rows = np.arange(len(labels))
        strategy = self.spec.strategy
        if strategy == "keep_last":
            order = np.lexsort((-rows, labels))
        elif strategy == "keep_best_quality":
            order = np.lexsort((rows, -quality, labels))
        else:  # keep_first, and merge (which then fills the survivor's gaps)
            order = np.lexsort((rows, labels))
        first = np.r_[True, labels[order][1:] != labels[order][:-1]]
        survivor = np.empty(labels.max() + 1, np.int64)
        survivor[labels[order][first]] = order[first]
        return survivor

    def _clusters(self, table: pa.Table, report: dict) -> np.ndarray:
        """Each row's connected component over the exact and fuzzy matches."""
        edges = [self._exact_edges(table)] if self.spec.keys else []
        if self.spec.fuzzy is not None and len(table) > 1:
            edges.append(self._fuzzy_edges(table, report))
        a = np.concatenate([e[0] for e in edges]) if edges else np.zeros(0, np.int64)
        b = np.concatenate([e[1] for e in edges]) if edges else np.zeros(0, np.int64)
        graph = coo_matrix((np.ones(len(a), np.int8), (a, b)), shape=(len(table), len(table)))
        _, labels = connected_components(graph, directed=False)
        return labels

    def apply(self, table: pa.Table, quality: np.ndarray | None = None, published: pa.Table | None = None) -> Deduplicated:
        """Deduplicate a load held in memory: decide on it, then take its kept and dropped rows."""
        decision = self.decide(table, quality, published)
        dropped = self.dropped_rows(decision, table, 0)
        return Deduplicated(self.kept_rows(decision, table, 0, dropped), dropped, decision.clusters, decision.model)

    def decide(self, table: pa.Table, quality: np.ndarray | None = None, published: pa.Table | None = None) -> Decision:
        """Which rows survive, from the compared columns alone (and provenance); `published`: the target's rows.

        The table needs only `columns()` (and the provenance columns, for the audit), so a
        pipeline reads nothing else of a load into memory (engine.whole_load); `quality` is then
        given (the score column, or `row_quality` chunk by chunk). A published row always survives
        its cluster and is never output again (it is in the target already); a new row that joins
        it is dropped, its audit naming the published row.
        """
        columns = self.columns()
        require_columns(table, columns, self.where)
        new = len(table)
        work = self._with_published(table, published, columns) if published is not None and len(published) else table
        report: dict = {"published_rows_compared": len(work) - new} if published is not None else {}
        labels = self._clusters(work, report) if len(work) else np.zeros(0, np.int64)
        quality = row_quality(table) if quality is None else np.asarray(quality, np.float64)
        quality = np.r_[quality, np.zeros(len(work) - new)]
        sizes = np.bincount(labels, minlength=1)
        survivor_of = self._survivors(labels, quality) if len(work) else np.zeros(0, np.int64)
        if len(work) > new:  # the earliest published row of a cluster survives it
            first = np.unique(labels[new:], return_index=True)
            survivor_of[first[0]] = first[1] + new
        rows = np.arange(len(work))
        survivor = survivor_of[labels] if len(work) else rows
        dropped, kept = rows[(survivor != rows) & (rows < new)], rows[(survivor == rows) & (rows < new)]
        similarity, explanations = self._explain(work, survivor[dropped], dropped)
        if self.spec.keys and self.spec.fuzzy is not None:  # an exact key match is similarity 1 whatever the text says
            similarity = np.where(self._same_key(work, survivor[dropped], dropped), 1.0, similarity)
        survivors = rows[(survivor == rows) & (sizes[labels] > 1)]
        cluster_id = np.full(len(sizes), -1, np.int64)
        cluster_id[labels[survivors]] = np.arange(len(survivors))  # numbered in order of the survivors
        multi = sizes[labels[kept]] > 1 if len(kept) else np.zeros(0, bool)
        min_similarity = np.ones(len(work))
        np.minimum.at(min_similarity, survivor[dropped], similarity)
        kept_columns = {
            CLUSTER: pa.array(cluster_id[labels[kept]], pa.int64(), mask=~multi),
            MEMBERS: pa.array(sizes[labels[kept]].astype(np.int32), pa.int32()),
            MIN_SIMILARITY: pa.array(np.round(min_similarity[kept], 4), pa.float64()),
        }
        dropped_columns = {
            CLUSTER: pa.array(cluster_id[labels[dropped]], pa.int64()),
            SURVIVOR_ROW: pa.array(survivor[dropped], pa.int64()),
            SIMILARITY: pa.array(np.round(similarity, 4), pa.float64()),
            EXPLANATION: pa.array(explanations, pa.string()),
        }
        return Decision(kept, kept_columns, dropped, dropped_columns, len(survivors), report)

    def dropped_rows(self, decision: Decision, chunk: pa.Table, offset: int) -> pa.Table:
        """The dropped rows among the load's rows offset.. (the chunk), whole, with their audit columns."""
        low, high = np.searchsorted(decision.dropped, [offset, offset + len(chunk)])
        removed = chunk.take(pa.array(decision.dropped[low:high] - offset, pa.int64()))
        for name, values in decision.dropped_columns.items():
            removed = removed.append_column(name, values.slice(low, high - low))
        return removed

    def kept_rows(self, decision: Decision, chunk: pa.Table, offset: int, dropped: pa.Table) -> pa.Table:
        """The surviving rows among the load's rows offset.. (the chunk); `merge` fills their nulls from `dropped`."""
        low, high = np.searchsorted(decision.kept, [offset, offset + len(chunk)])
        output = chunk.take(pa.array(decision.kept[low:high] - offset, pa.int64()))
        if self.spec.strategy == "merge" and len(dropped):
            output = self._merge(output, decision.kept[low:high], dropped)
        for name, values in decision.kept_columns.items():
            output = output.append_column(name, values.slice(low, high - low))
        return output

    def columns(self) -> list[str]:
        """The columns the step reads: keys, fields and blocking columns."""
        columns = [*self.spec.keys, *(self.spec.fuzzy.fields if self.spec.fuzzy else ())]
        rules = self.spec.fuzzy.rules if self.spec.fuzzy else []
        columns += [c for r in rules for c in [*r.columns, *(r.within.columns if r.within else [])]]
        return list(dict.fromkeys(columns))

    @staticmethod
    def _with_published(table: pa.Table, published: pa.Table, columns: list[str]) -> pa.Table:
        """The load's compared columns, then the published rows' (cast to the load's types)."""
        load = table.select([*columns, *(c for c in (SOURCE_FILE, SOURCE_LINE) if c in table.column_names)])
        theirs = pa.table({c: published[c].cast(load.schema.field(c).type, safe=False) for c in columns})
        return pa.concat_tables(
            [load, theirs.append_column(PUBLISHED, pa.array([True] * len(theirs)))], promote_options="permissive"
        )

    def _same_key(self, table: pa.Table, survivors: np.ndarray, others: np.ndarray) -> np.ndarray:
        """Whether each dropped row has its survivor's normalized keys (a missing key matches nothing)."""
        values = {c: field_values(table[c], c) for c in self.spec.keys}
        ids = block_ids(BlockingKey(column=list(self.spec.keys)), values)
        return (ids[survivors] == ids[others]) & (ids[others] >= 0)

    @staticmethod
    def _merge(output: pa.Table, kept: np.ndarray, dropped: pa.Table) -> pa.Table:
        """Fill each survivor's nulls from its duplicates (the dropped rows, in row order)."""
        position = {int(row): i for i, row in enumerate(kept)}
        donors = [(j, position[s]) for j, s in enumerate(dropped[SURVIVOR_ROW].to_pylist()) if s in position]
        if not donors:
            return output
        columns = {}
        for name in output.column_names:
            if name in PROVENANCE:
                columns[name] = output[name]
                continue
            values = output[name].to_pylist()
            source = dropped[name]
            for j, at in donors:
                if values[at] is None:
                    values[at] = source[j].as_py()
            columns[name] = pa.array(values, output.schema.field(name).type)
        return pa.table(columns)
