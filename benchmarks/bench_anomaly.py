"""Anomaly detection: precision and recall on injected outliers, against a classic 3-sigma z-score.

100,000 orders with correlated columns (amount grows with quantity; price per unit is lognormal),
1% of them injected outliers of two kinds: extreme values (an amount 20x the usual, a negative
quantity) and broken combinations (a large quantity at a tiny amount: each value ordinary alone).
Each method of `detect_anomalies` runs alone and all together; the reference, in the same run, is
the textbook rule |x - mean| > 3 standard deviations on each column.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from etl_platform.ml.anomaly import AnomalyDetector
from etl_platform.spec.ml import DetectAnomaliesSpec

COLUMNS = ["quantity", "amount"]


def orders(rows: int, share: float, seed: int = 11) -> tuple[pa.Table, np.ndarray]:
    rng = np.random.default_rng(seed)
    quantity = rng.integers(1, 10, rows).astype(float)
    amount = quantity * rng.lognormal(3, 0.3, rows)
    outliers = rng.choice(rows, int(rows * share), replace=False)
    extreme, combination = outliers[: len(outliers) // 2], outliers[len(outliers) // 2 :]
    amount[extreme[: len(extreme) // 2]] *= 20
    quantity[extreme[len(extreme) // 2 :]] = -rng.integers(5, 50, len(extreme) - len(extreme) // 2)
    quantity[combination] = rng.integers(8, 10, len(combination))
    amount[combination] = rng.uniform(5, 12, len(combination))
    truth = np.zeros(rows, bool)
    truth[outliers] = True
    return pa.table({"quantity": quantity, "amount": amount}), truth


def score(flagged: np.ndarray, truth: np.ndarray) -> tuple[float, float, float]:
    hits = (flagged & truth).sum()
    precision = hits / flagged.sum() if flagged.sum() else 0.0
    recall = hits / truth.sum()
    return precision, recall, 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def three_sigma(table: pa.Table) -> np.ndarray:
    flagged = np.zeros(len(table), bool)
    for name in COLUMNS:
        values = table[name].to_numpy()
        flagged |= np.abs(values - values.mean()) > 3 * values.std()
    return flagged


def main() -> int:
    table, truth = orders(100_000, 0.01)
    print(f"{len(table):,} rows, {truth.sum():,} injected outliers (half extreme values, half broken combinations)")
    print(f"{'method':38} {'precision':>9} {'recall':>7} {'F1':>6} {'seconds':>8}")
    results = {}
    started = time.perf_counter()
    results["reference: mean +- 3 sigma"] = (score(three_sigma(table), truth), time.perf_counter() - started)
    for methods in (["zscore"], ["iqr"], ["isolation_forest"], ["isolation_forest", "zscore", "iqr"]):
        spec = DetectAnomaliesSpec(columns=COLUMNS, methods=methods, contamination=0.01)
        started = time.perf_counter()
        tagged, _ = AnomalyDetector(spec, "bench").apply(table)
        results["platform: " + " + ".join(methods)] = (
            score(tagged["anomaly"].to_numpy(zero_copy_only=False), truth),
            time.perf_counter() - started,
        )
    for name, ((precision, recall, f1), seconds) in results.items():
        print(f"{name:38} {precision:9.3f} {recall:7.3f} {f1:6.3f} {seconds:8.2f}")
    best = max(f1 for (_, _, f1), _ in list(results.values())[1:])
    reference = results["reference: mean +- 3 sigma"][0][2]
    print(f"best platform F1 / reference F1 = {best / reference:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
