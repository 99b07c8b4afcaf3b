"""A per-row quality score: how complete the row is, and how many of the pipeline's row rules it passes.

score = (completeness + validity) / 2, where completeness is the share of non-null data columns
and validity the share of row rules passed (1 with no rules). Rows failing an `error` rule are
quarantined, so published rows lose validity only to `warn` rules. deduplicate's
`keep_best_quality` keeps the cluster member with the highest score.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from etl_platform.sources.base import PROVENANCE


def completeness(table: pa.Table, ignore: tuple[str, ...] = ()) -> np.ndarray:
    """Share of non-null data columns per row."""
    columns = [c for c in table.column_names if c not in PROVENANCE and c not in ignore]
    if not columns:
        return np.ones(len(table))
    valid = sum(np.asarray(table[c].is_valid(), dtype=np.float64) for c in columns)
    return valid / len(columns)


def quality_scores(table: pa.Table, broken_rules: dict[int, int], rules: int) -> pa.Array:
    """The score of every row; `broken_rules` maps a row's position to the number of rules it failed."""
    validity = np.ones(len(table))
    if rules:
        for row, broken in broken_rules.items():
            validity[row] = 1 - broken / rules
    return pa.array(np.round((completeness(table) + validity) / 2, 4), pa.float64())
