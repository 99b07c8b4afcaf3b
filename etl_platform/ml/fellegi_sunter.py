"""The Fellegi-Sunter model of record linkage, estimated from the data: no labels, no sweep.

Each compared pair has one comparison level per field (-1: a value is missing, 0: different,
1: mid similarity, 2: high, 3: exact). For a match the levels follow the m probabilities, for a
non-match the u probabilities; a pair's match weight is log2 of its prior odds plus, per field,
log2(m / u) of its level, and its match probability follows from the weight.

u comes from random pairs (almost all non-matches, so their level frequencies are u); m and the
share of matches among the candidate pairs (lambda) come from expectation maximisation over the
candidate pairs, with u held fixed (the literature's usual choice, and splink's). EM runs over the
distinct level patterns with their counts, so its cost does not grow with the number of pairs;
on a large load it runs on a bounded sample of the pairs (ml.dedup).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LEVELS = 4  # 0 different, 1 mid, 2 high, 3 exact; -1 (missing) carries no evidence
LEVEL_NAMES = ("else", "mid", "high", "exact")
SMOOTHING = 1.0  # a level never seen among random pairs is still possible: one pseudo-count
EM_ITERATIONS = 50
EM_TOLERANCE = 1e-6
M_START = np.array([0.05, 0.05, 0.1, 0.8])  # matches mostly agree; EM moves it where the data says


@dataclass
class FellegiSunter:
    """m and u per field and level, and the prior: the probability that the pairs weighed are a match.

    While EM runs over candidate pairs the prior is lambda, their share of matches; the fitted
    model weighs any pair with the probability that two random records match (lambda times the
    candidates' share of all pairs), since u comes from random pairs, not from candidates.
    """

    fields: list[str]
    m: np.ndarray  # fields x LEVELS
    u: np.ndarray  # fields x LEVELS
    prior: float
    iterations: int = 0
    candidate_share: float | None = None  # lambda, once the prior is that of two random records

    def field_weights(self) -> np.ndarray:
        """log2(m / u) per field and level: the evidence each level gives for a match."""
        return np.log2(self.m / self.u)

    def weights(self, levels: np.ndarray) -> np.ndarray:
        """Match weight of each pair (rows of `levels`, one column per field)."""
        per_field = self.field_weights()
        total = np.full(len(levels), np.log2(self.prior / (1 - self.prior)))
        for j in range(len(self.fields)):
            present = levels[:, j] >= 0
            total[present] += per_field[j, levels[present, j]]
        return total

    def probabilities(self, levels: np.ndarray) -> np.ndarray:
        return probability(self.weights(levels))

    def describe(self) -> dict:
        """The estimated parameters, as the run metadata and the audit show them."""
        weights = self.field_weights()
        return {
            "model": "fellegi_sunter",
            "prior_two_random_records": float(f"{self.prior:.6g}"),
            "match_share_of_candidates": None if self.candidate_share is None else round(self.candidate_share, 6),
            "em_iterations": self.iterations,
            "fields": {
                name: {
                    level: {
                        "m": round(float(self.m[j, i]), 6),
                        "u": round(float(self.u[j, i]), 6),
                        "weight": round(float(weights[j, i]), 3),
                    }
                    for i, level in enumerate(LEVEL_NAMES)
                }
                for j, name in enumerate(self.fields)
            },
        }


def probability(weights: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp2(-np.clip(weights, -60, 60)))


def level_frequencies(levels: np.ndarray, responsibility: np.ndarray | None = None) -> np.ndarray:
    """Per field, the (weighted) share of pairs at each level among those where the field is present."""
    weight = np.ones(len(levels)) if responsibility is None else responsibility
    counts = np.full((levels.shape[1], LEVELS), SMOOTHING * (responsibility is None) + 1e-9)
    for j in range(levels.shape[1]):
        present = levels[:, j] >= 0
        counts[j] += np.bincount(levels[present, j], weights=weight[present], minlength=LEVELS)
    return counts / counts.sum(axis=1, keepdims=True)


def _em(model: FellegiSunter, levels: np.ndarray, fit_m: bool, weights: np.ndarray | None = None) -> FellegiSunter:
    """EM over the distinct level patterns (each pair counted with its weight): m (when fit_m) and lambda; u stays fixed."""
    if not len(levels):
        return model
    patterns, counts = _patterns(levels, weights)
    for _ in range(EM_ITERATIONS):
        match = model.probabilities(patterns) * counts  # E: expected matches per pattern
        m = np.maximum(level_frequencies(patterns, match), 1e-6) if fit_m else model.m
        m = m / m.sum(axis=1, keepdims=True)
        prior = float(np.clip(match.sum() / counts.sum(), 1e-6, 1 - 1e-6))
        converged = np.abs(m - model.m).max() < EM_TOLERANCE and abs(prior - model.prior) < EM_TOLERANCE
        model.m, model.prior, model.iterations = m, prior, model.iterations + 1
        if converged:
            break
    return model


def _patterns(levels: np.ndarray, weights: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of `levels` and their (weighted) counts; each row read as one base-5 number,
    since numpy's unique over rows sorts them as bytes, many times slower on millions of pairs."""
    base = LEVELS + 1
    if levels.shape[1] > 27:  # 5 ** 27 is the most an int64 holds
        patterns, inverse = np.unique(levels, axis=0, return_inverse=True)
        return patterns, np.bincount(inverse.ravel(), weights=weights, minlength=len(patterns))
    powers = base ** np.arange(levels.shape[1], dtype=np.int64)
    codes, inverse = np.unique((levels.astype(np.int64) + 1) @ powers, return_inverse=True)
    patterns = ((codes[:, None] // powers) % base - 1).astype(np.int8)
    return patterns, np.bincount(inverse.ravel(), weights=weights, minlength=len(codes))


def estimate(
    fields: list[str],
    rules: list[tuple[np.ndarray, list[int]]],
    candidates: np.ndarray,
    weights: np.ndarray | None,
    random_pairs: np.ndarray,
    candidate_share: float = 1.0,
) -> FellegiSunter:
    """u from the random pairs' levels; m per blocking rule, lambda over the candidates.

    `rules` holds each rule's pairs' levels (all of them, or a uniform sample) with the fields it
    blocks on; `candidates` the distinct candidate pairs' levels (or a sample, each pair weighted by
    the pairs it stands for), so a large load is estimated from bounded arrays, as splink samples.
    A rule's pairs agree on its own columns by construction, so EM over them says nothing about
    those columns' m, and would take every pair found by a strong key for a match. As splink does,
    m of a field is estimated from the rules that do not block on it (its columns are set missing
    there), and averaged over those rules; then lambda alone is fitted over all candidates, and
    the model's prior becomes lambda times `candidate_share` (the candidates' share of all pairs).
    """
    u = level_frequencies(random_pairs)
    m_sum, m_count = np.zeros((len(fields), LEVELS)), np.zeros((len(fields), 1))
    for found, blocked in rules:
        levels = found.copy()
        levels[:, blocked] = -1
        fitted = _em(FellegiSunter(fields, np.tile(M_START, (len(fields), 1)), u, 0.1), levels, fit_m=True)
        free = np.setdiff1d(np.arange(len(fields)), blocked)
        m_sum[free] += fitted.m[free]
        m_count[free] += 1
    m = np.where(m_count > 0, m_sum / np.maximum(m_count, 1), M_START)
    model = _em(FellegiSunter(fields, m, u, 0.1), candidates, fit_m=False, weights=weights)
    # Blocking chose the candidates for agreeing, and their levels' weights count that agreement
    # again (u is from random pairs): weighed with lambda, a pair would count it twice, and a load
    # whose blocks grow would merge ever more chance agreements. Two random records' prior does not.
    model.candidate_share = model.prior
    model.prior = float(np.clip(model.prior * candidate_share, 1e-15, 1 - 1e-6))
    return model
