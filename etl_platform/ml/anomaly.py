"""Tag anomalous rows: Isolation Forest over chosen numeric columns, plus robust statistics per column.

Rows are tagged, never dropped: `anomaly` (bool), `anomaly_score` (1.0 at the first method's
threshold, higher is stranger) and `anomaly_reason` (which method flagged which value). The share
of tagged rows is the `anomaly_rate` asset check.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from etl_platform.errors import TransformError
from etl_platform.spec.ml import DetectAnomaliesSpec

FLAG, SCORE, REASON = "anomaly", "anomaly_score", "anomaly_reason"
MAD_SCALE = 0.6745  # makes the median absolute deviation comparable with a standard deviation
QUARTILE_SKEW = 0.05  # a normal column is near 0; amounts (lognormal, times a quantity) above 0.06


class AnomalyDetector:
    def __init__(self, spec: DetectAnomaliesSpec, where: str):
        self.spec = spec
        self.where = where

    def matrix(self, table: pa.Table) -> np.ndarray:
        """The chosen columns as float64 (NaN for null), with an error naming a missing or non-numeric one."""
        columns = []
        for name in self.spec.columns:
            if name not in table.column_names:
                raise TransformError(f"{self.where}: column {name!r} not found; available: {table.column_names}")
            column = table[name]
            if not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type) or pa.types.is_decimal(column.type)):
                raise TransformError(f"{self.where}: {name!r} is {column.type}, not numeric; `cast` it before detect_anomalies")
            columns.append(pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False))
        return np.column_stack(columns).astype(np.float64)

    def apply(self, table: pa.Table) -> tuple[pa.Table, int]:
        """The table with the three anomaly columns, and how many rows were tagged, fitted on itself."""
        return self.score(self.fit(self.matrix(table)), table)

    def fit(self, values: np.ndarray) -> Fitted:
        """The statistics (and forest) of a sample of the rows' values, which `score` applies to any rows."""
        logged = [self._skewed(values[:, j]) for j in range(values.shape[1])]
        scaled = _scale(values, logged)
        stats: list[tuple[float, float, float, float] | None] = []
        for j in range(values.shape[1]):
            column = scaled[:, j][~np.isnan(scaled[:, j])]
            if len(column) < 3:
                stats.append(None)
                continue
            median = float(np.median(column))
            q1, q3 = np.percentile(column, [25, 75])
            stats.append((median, float(np.median(np.abs(column - median))), float(q1), float(q3)))
        forest = fill = kept = None
        if "isolation_forest" in self.spec.methods and len(values) >= 10:
            fill = np.nanmedian(scaled, axis=0)
            filled = np.where(np.isnan(scaled), fill, scaled)
            kept = np.nanstd(filled, axis=0) > 0  # a constant column isolates nothing
        if kept is not None and kept.any():
            # scikit-learn takes seconds to import: only a load that detects anomalies pays for it.
            from sklearn.ensemble import IsolationForest

            forest = IsolationForest(contamination=self.spec.contamination, random_state=0, n_estimators=200)
            forest.fit(filled[:, kept])
        return Fitted(logged, stats, forest, fill, kept)

    def score(self, fitted: Fitted, table: pa.Table) -> tuple[pa.Table, int]:
        """The rows with the three anomaly columns, judged by the fitted sample; and how many were tagged."""
        values = self.matrix(table)
        rows = len(table)
        score = np.zeros(rows)
        reasons: list[list[str]] = [[] for _ in range(rows)]
        scaled = _scale(values, fitted.logged)
        for j, name in enumerate(self.spec.columns):
            column = scaled[:, j]
            present = ~np.isnan(column)
            if {"zscore", "iqr"} & set(self.spec.methods):
                for i in np.flatnonzero(np.isnan(column) & ~np.isnan(values[:, j])):  # a value <= 0 in a positive column
                    score[i] = max(score[i], 2.0)
                    reasons[i].append(f"{name}={values[i, j]:g}: not positive, unlike the rest of the column")
            if fitted.stats[j] is None:
                continue
            median, mad, q1, q3 = fitted.stats[j]
            if "zscore" in self.spec.methods and mad > 0:
                z = np.abs(MAD_SCALE * (column - median) / mad)
                self._tag(
                    z / self.spec.z_threshold,
                    present,
                    score,
                    reasons,
                    lambda i, z=z, name=name, j=j: f"{name}={values[i, j]:g}: robust z {z[i]:.1f}",
                )
            spread = (q3 - q1) * self.spec.iqr_factor
            if "iqr" in self.spec.methods and spread > 0:
                beyond = np.maximum(q1 - column, column - q3) / spread
                self._tag(
                    beyond,
                    present,
                    score,
                    reasons,
                    lambda i, name=name, j=j: f"{name}={values[i, j]:g}: beyond {self.spec.iqr_factor:g} IQR of the quartiles",
                )
        if fitted.forest is not None and rows:
            filled = np.where(np.isnan(scaled), fitted.fill, scaled)[:, fitted.kept]
            # decision_function < 0 means anomalous; 1 - d puts the threshold at 1 like the others
            relative = 1 - fitted.forest.decision_function(filled)
            flagged = fitted.forest.predict(filled) == -1
            for i in np.flatnonzero(flagged):
                reasons[i].append(f"isolation forest: score {relative[i]:.2f}")
            score = np.maximum(score, np.where(flagged, np.maximum(relative, 1.0), np.minimum(relative, 0.999)))
        tagged = np.array([bool(r) for r in reasons], dtype=bool)
        table = table.append_column(FLAG, pa.array(tagged))
        table = table.append_column(SCORE, pa.array(np.round(score, 4), pa.float64()))
        table = table.append_column(REASON, pa.array(["; ".join(r) if r else None for r in reasons], pa.string()))
        return table, int(tagged.sum())

    @staticmethod
    def _skewed(column: np.ndarray) -> bool:
        """Whether a column is right-skewed and positive (amounts, prices): judged on a log scale, where its spread is symmetric.

        On the raw scale the long right tail of such a column is its normal shape, and robust
        statistics would tag it. The rare value <= 0 in such a column has no logarithm: it is NaN
        there, and `score` tags it on its own.
        """
        present = column[~np.isnan(column)]
        if len(present) < 3 or (present <= 0).mean() > 0.01:
            return False
        # Quartile skewness: the outliers themselves cannot make a symmetric column look skewed.
        q1, median, q3 = np.percentile(present, [25, 50, 75])
        return bool(q3 > q1 and (q3 + q1 - 2 * median) / (q3 - q1) > QUARTILE_SKEW)

    @staticmethod
    def _tag(relative: np.ndarray, present: np.ndarray, score: np.ndarray, reasons: list[list[str]], reason) -> None:
        """Record a method's relative score (1.0 = its threshold) and a reason where it is exceeded."""
        relative = np.where(present, relative, 0.0)
        np.maximum(score, np.minimum(relative, np.where(relative > 1, relative, 0.999)), out=score)
        for i in np.flatnonzero(relative > 1):
            reasons[i].append(reason(i))


@dataclass
class Fitted:
    """What `AnomalyDetector.fit` learnt from a sample: per column its log scale and (median, MAD,
    Q1, Q3) on that scale (None below three values), and the isolation forest with its fill values
    and the columns it uses."""

    logged: list[bool]
    stats: list[tuple[float, float, float, float] | None]
    forest: Any = None
    fill: np.ndarray | None = None
    kept: np.ndarray | None = None


def _scale(values: np.ndarray, logged: list[bool]) -> np.ndarray:
    scaled = values.copy()
    for j, log in enumerate(logged):
        if log:
            column = values[:, j]
            scaled[:, j] = np.where(column > 0, np.log(np.where(column > 0, column, 1)), np.nan)
    return scaled
