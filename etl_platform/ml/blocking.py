"""Candidate pairs from blocking rules OR-ed together, generated in bounded batches, each pair knowing its rules.

A rule's key is computed per distinct value (jellyfish for the phonetic codes), so its cost is the
distinct values, not the rows. The rows are sorted by block once per rule; a batch is a run of
consecutive blocks holding about PAIR_BATCH pairs, whose pairs are made by array arithmetic, so
no more than one batch of pair indexes exists at a time, whatever the load. A pair several rules
find is yielded once, in the batch of the first rule that finds it (the later rules' keys are
compared on the pair, as splink does), so the OR needs no set of every pair.

A block larger than MAX_BLOCK_ROWS (a key many rows share, or one that grows with the load) would
generate pairs with the square of its size: it is split instead, its rows sorted by the compared
fields it does not block on and cut into sub-blocks of MAX_BLOCK_ROWS rows, so similar rows stay
together; the split blocks are counted and reported. A `neighbors` rule takes each row's nearest
rows by cosine of the embeddings of its columns, in row batches (k pairs per row, kept sorted).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import jellyfish
import numpy as np

from etl_platform.ml.comparison import FieldValues
from etl_platform.spec.ml import BlockingKey

MAX_BLOCK_ROWS = 1_000  # a block pairs at most 499,500: a batch is PAIR_BATCH plus at most one block
PAIR_BATCH = 250_000  # pairs per batch, plus at most one block's: about 60 MB of transient arrays while compared
NEIGHBOR_BATCH = 1_024
_PHONETIC = {"soundex": jellyfish.soundex, "metaphone": jellyfish.metaphone, "nysiis": jellyfish.nysiis}


def describe_rule(rule: BlockingKey) -> str:
    name = f"{rule.method}({', '.join(rule.columns)})"
    if rule.method == "prefix":
        name = f"prefix{rule.length}({', '.join(rule.columns)})"
    return name + (f" within {describe_rule(rule.within)}" if rule.within else "")


def value_key(text: str, method: str, length: int) -> str | None:
    if method == "prefix":
        return text[:length]
    if method in _PHONETIC:
        letters = "".join(c for c in text if c.isalpha() or c.isdigit())
        return _PHONETIC[method](letters) if letters else None
    return text


def block_ids(rule: BlockingKey, values: dict[str, FieldValues]) -> np.ndarray:
    """Each row's block under a key rule (exact, prefix, phonetic); -1 where a column gives no key."""
    combined = np.zeros(len(values[rule.columns[0]].index), np.int64)
    for column in rule.columns:
        field = values[column]
        keys: dict[str, int] = {}
        per_value = [
            -1 if (k := value_key(t, rule.method, rule.length)) is None else keys.setdefault(k, len(keys)) for t in field.texts
        ]
        codes = np.append(np.array(per_value, np.int64), -1)[field.index]
        pair = np.where((combined < 0) | (codes < 0), -1, combined * (len(keys) + 1) + codes)
        _, dense = np.unique(pair, return_inverse=True)  # renumbered densely: many columns never overflow
        combined = np.where(pair < 0, -1, dense.ravel())
    return combined


def split_blocks(blocks: np.ndarray, order_by: np.ndarray) -> tuple[np.ndarray, int, int]:
    """The block ids with each block above MAX_BLOCK_ROWS cut into sub-blocks of at most that many rows,
    its rows in `order_by` order; and how many blocks were split, holding how many rows."""
    rows = np.flatnonzero(blocks >= 0)
    order = rows[np.lexsort((order_by[rows], blocks[rows]))]
    ids = blocks[order]
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]]) if len(ids) else np.zeros(0, np.int64)
    sizes = np.diff(np.r_[starts, len(ids)])
    oversized = sizes > MAX_BLOCK_ROWS
    if not oversized.any():
        return blocks, 0, 0
    position = np.arange(len(ids)) - np.repeat(starts, sizes)  # each row's place in its block
    sub = np.where(np.repeat(oversized, sizes), position // MAX_BLOCK_ROWS + 1, 0)
    split = np.full(len(blocks), -1, np.int64)
    _, dense = np.unique(ids * (len(ids) // MAX_BLOCK_ROWS + 2) + sub, return_inverse=True)
    split[order] = dense.ravel()
    return split, int(oversized.sum()), int(sizes[oversized].sum())


def pairs_within(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All pairs (i < j) of positions with equal ids, for ids sorted by block."""
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]]) if len(ids) else np.zeros(0, np.int64)
    sizes = np.diff(np.r_[starts, len(ids)])
    after = np.repeat(starts + sizes, sizes) - np.arange(len(ids)) - 1  # positions after each in its block
    left = np.repeat(np.arange(len(ids)), after)
    offset = np.arange(len(left)) - np.repeat(np.cumsum(after) - after, after) + 1
    return left, left + offset


def nearest_pairs(vectors: np.ndarray, k: int, groups: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Each row and its k nearest rows by cosine (unit vectors), within its group when groups are given."""
    members = [np.arange(len(vectors))] if groups is None else _groups(groups)
    lefts, rights = [], []
    for rows in members:
        if len(rows) < 2:
            continue
        found = min(k + 1, len(rows))
        block = vectors[rows]
        for start in range(0, len(rows), NEIGHBOR_BATCH):
            scores = block[start : start + NEIGHBOR_BATCH] @ block.T
            nearest = np.argpartition(-scores, found - 1, axis=1)[:, :found]
            lefts.append(np.repeat(rows[start : start + NEIGHBOR_BATCH], found))
            rights.append(rows[nearest.ravel()])
    if not lefts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    a, b = np.concatenate(lefts), np.concatenate(rights)
    keep = a != b
    return np.minimum(a, b)[keep], np.maximum(a, b)[keep]


def _groups(groups: np.ndarray) -> list[np.ndarray]:
    rows = np.flatnonzero(groups >= 0)
    order = rows[np.argsort(groups[rows], kind="stable")]
    cuts = np.flatnonzero(np.diff(groups[order])) + 1
    return np.split(order, cuts)


def rules_found(found_by: np.ndarray) -> np.ndarray:
    """How many rules found each pair (bit i of found_by: rule i did)."""
    bits = found_by.copy()
    count = np.zeros(len(bits), np.int8)
    while bits.any():
        count += (bits & 1).astype(np.int8)
        bits >>= 1
    return count


@dataclass
class Candidates:
    """One batch of distinct candidate pairs (left < right), and a bit per rule that found each."""

    left: np.ndarray
    right: np.ndarray
    found_by: np.ndarray  # bit i set: rule i generated the pair


@dataclass
class Blocking:
    """The rules' blocks (sorted rows per key rule, sorted pair codes per neighbors rule), and their counts."""

    rows: int
    names: list[str]
    keys: list[np.ndarray | None]  # per rule: each row's (split) block, or None for a neighbors rule
    sorted_rows: list[np.ndarray | None]  # per key rule: the rows with a block, sorted by it
    near: list[np.ndarray | None]  # per neighbors rule: its pairs as sorted codes left * rows + right
    pairs_by_rule: dict[str, int] = field(default_factory=dict)
    split: dict[str, dict[str, int]] = field(default_factory=dict)  # rule: blocks split and their rows

    def rule_pairs(self, i: int, budget: int = PAIR_BATCH) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """The pairs rule i generates, in batches of about `budget` (a run of whole blocks)."""
        if self.near[i] is not None:
            for start in range(0, len(self.near[i]), budget):
                codes = self.near[i][start : start + budget]
                yield codes // self.rows, codes % self.rows
            return
        order = self.sorted_rows[i]
        ids = self.keys[i][order]
        starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]]) if len(ids) else np.zeros(0, np.int64)
        sizes = np.diff(np.r_[starts, len(ids)])
        pairs = sizes * (sizes - 1) // 2
        run = (np.cumsum(pairs) - pairs) // budget  # blocks of one run: at most budget + one block's pairs
        cuts = np.r_[starts[np.r_[True, run[1:] != run[:-1]]], len(ids)] if len(ids) else np.zeros(0, np.int64)
        for begin, end in itertools.pairwise(cuts):
            left, right = pairs_within(ids[begin:end])
            a, b = order[begin:end][left], order[begin:end][right]
            yield np.minimum(a, b), np.maximum(a, b)

    def found_by(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Bit i set where rule i generates the pair (a, b)."""
        bits = np.zeros(len(a), np.int64)
        for i, ids in enumerate(self.keys):
            if ids is not None:
                hit = (ids[a] == ids[b]) & (ids[a] >= 0)
            else:
                codes = a.astype(np.int64) * self.rows + b
                at = np.minimum(np.searchsorted(self.near[i], codes), max(len(self.near[i]) - 1, 0))
                hit = self.near[i][at] == codes if len(self.near[i]) else np.zeros(len(a), bool)
            bits |= hit.astype(np.int64) << i
        return bits

    def batches(self, budget: int = PAIR_BATCH) -> Iterator[Candidates]:
        """Every distinct candidate pair once, in batches: each in the pass of the first rule that finds it."""
        for i in range(len(self.keys)):
            for a, b in self.rule_pairs(i, budget):
                bits = self.found_by(a, b)
                first = (bits & ((1 << i) - 1)) == 0
                yield Candidates(a[first], b[first], bits[first])

    def report(self) -> dict:
        return {"pairs_by_rule": self.pairs_by_rule, **({"split_blocks": self.split} if self.split else {})}


def blocking(
    rules: list[BlockingKey],
    values: dict[str, FieldValues],
    vectors: Callable[[list[str]], np.ndarray],
    default_k: int,
    fields: list[str],
) -> Blocking:
    """The rules' blocks over the load; an oversized block is split in the order of the `fields` it does not block on."""
    rows = len(next(iter(values.values())).index)
    result = Blocking(rows, [describe_rule(r) for r in rules], [], [], [])
    for rule, name in zip(rules, result.names, strict=True):
        if rule.method == "neighbors":
            groups = block_ids(rule.within, values) if rule.within else None
            a, b = nearest_pairs(vectors(rule.columns), rule.neighbors or default_k, groups)
            codes = np.unique(a.astype(np.int64) * rows + b)
            result.keys.append(None)
            result.sorted_rows.append(None)
            result.near.append(codes)
            result.pairs_by_rule[name] = len(codes)
            continue
        free = [values[f] for f in fields if f not in rule.columns] or [values[rule.columns[0]]]
        ids, blocks, members = split_blocks(block_ids(rule, values), _text_order(free[0]))
        if blocks:
            result.split[name] = {"blocks": blocks, "rows": members, "max_rows": MAX_BLOCK_ROWS}
        present = np.flatnonzero(ids >= 0)
        order = present[np.argsort(ids[present], kind="stable")]
        sizes = np.bincount(ids[present]) if len(present) else np.zeros(0, np.int64)
        result.keys.append(ids)
        result.sorted_rows.append(order)
        result.near.append(None)
        result.pairs_by_rule[name] = int((sizes * (sizes - 1) // 2).sum())
    return result


def _text_order(values: FieldValues) -> np.ndarray:
    """Each row's rank by its normalized text (nulls last), for cutting a block so that alike rows stay together."""
    rank = np.empty(len(values.texts) + 1, np.int64)
    rank[np.argsort(np.array(values.texts, dtype=object), kind="stable")] = np.arange(len(values.texts))
    rank[-1] = len(values.texts)
    return rank[values.index]
