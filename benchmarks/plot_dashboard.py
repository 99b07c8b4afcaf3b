"""Draw deploy/grafana/etl-platform.json's panels with matplotlib from real scrapes -> docs/dashboard.png.

No Grafana renderer is installable from the package registries here, so this stands in for a
screenshot: a fresh project with the demo pipelines, a real `etl metrics serve` process, and a
scrape after each real `etl run` (the third is made to fail, for the failed-runs panel). Each
panel shows what its query computes, over the scrapes instead of Grafana's range: increase()
as the growth since the first scrape, histogram_quantile() interpolated in the buckets as
Prometheus does, a plain metric as it is.

    python benchmarks/plot_dashboard.py [--out docs/dashboard.png]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from prometheus_client.parser import text_string_to_metric_families

PROJECT_DIR = Path(__file__).resolve().parent.parent
DASHBOARD = PROJECT_DIR / "deploy" / "grafana" / "etl-platform.json"
ETL = str(Path(sys.executable).parent / "etl")
METRIC = re.compile(r"\betl_[a-z_]+\b")
LABEL = re.compile(r"\{\{(\w+)\}\}")


def scrape(port: int) -> dict[str, list[tuple[dict, float]]]:
    """{sample name: [(labels, value)]}, retried until the exporter listens."""
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=60) as response:
                text = response.read().decode()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    samples: dict[str, list[tuple[dict, float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def quantile(q: float, buckets: list[tuple[float, float]]) -> float:
    """Prometheus's histogram_quantile: linear interpolation inside the bucket holding rank q."""
    buckets = sorted(buckets)
    total = buckets[-1][1]
    if total == 0:
        return float("nan")
    rank, lower, below = q * total, 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == float("inf"):
                return lower
            return lower + (bound - lower) * (rank - below) / max(count - below, 1e-12)
        lower, below = bound, count
    return lower


def series(expr: str, legend: str, scrape_: dict) -> dict[str, float]:
    """The value of each legend series in one scrape, for the metric the panel's query names."""
    name = METRIC.findall(expr)[0]
    label = (LABEL.findall(legend) or [None])[0]
    values: dict[str, float] = {}
    if name.endswith("_bucket"):
        grouped: dict[str, list[tuple[float, float]]] = {}
        for labels, value in scrape_.get(name, []):
            grouped.setdefault(labels.get(label, legend), []).append((float(labels["le"]), value))
        q = float(re.search(r"histogram_quantile\(([\d.]+)", expr)[1])
        return {key: quantile(q, buckets) for key, buckets in grouped.items()}
    for labels, value in scrape_.get(name, []):
        key = labels.get(label, legend) if label else legend
        values[key] = values.get(key, 0.0) + value
    return values


def draw(scrapes: list[tuple[float, dict]], out: Path) -> None:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    rows = (len(panels) + 1) // 2
    figure, axes = plt.subplots(rows, 2, figsize=(13, 3.2 * rows), squeeze=False)
    for axis, panel in zip(axes.flat, panels, strict=False):
        target = panel["targets"][0]
        points = [(t, series(target["expr"], target["legendFormat"], s)) for t, s in scrapes]
        keys = sorted({key for _, values in points for key in values})
        for key in keys:
            # A counter is absent until its first sample: 0 before it, as increase() sees it.
            missing = 0.0 if "increase(" in target["expr"] else float("nan")
            ys = [values.get(key, missing) for _, values in points]
            if "increase(" in target["expr"]:
                ys = [y - ys[0] for y in ys]
            axis.plot([t for t, _ in points], ys, marker="o", label=key)
        axis.set_title(panel["title"], fontsize=10)
        axis.set_xlabel("seconds since the first scrape", fontsize=8)
        axis.tick_params(labelsize=8)
        if keys:
            axis.legend(fontsize=7)
    for axis in list(axes.flat)[len(panels) :]:
        axis.set_visible(False)
    figure.suptitle(f"ETL platform dashboard ({len(scrapes)} scrapes of etl metrics serve after real runs)")
    figure.tight_layout()
    figure.savefig(out, dpi=90)


def project(root: Path) -> dict[str, str]:
    """A fresh project of the demo pipelines and data, as `etl` reads it from the environment."""
    sys.path.insert(0, str(PROJECT_DIR))
    from etl_platform.cli.demo import write_demo_data

    shutil.copytree(PROJECT_DIR / "assets" / "pipelines", root / "pipelines")
    write_demo_data(root / "data" / "landing")
    return {
        **os.environ,
        "ETL_PIPELINES_DIR": str(root / "pipelines"),
        "ETL_DATA_DIR": str(root / "data"),
        "DAGSTER_HOME": str(root / "dagster_home"),
        "ETL_WAREHOUSE_URL": f"duckdb:///{root / 'data' / 'warehouse.duckdb'}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=PROJECT_DIR / "docs" / "dashboard.png")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        env = project(Path(folder))
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        exporter = subprocess.Popen(
            [ETL, "metrics", "serve", "--port", str(port)], env=env, start_new_session=True, stderr=subprocess.DEVNULL
        )
        try:
            start = time.monotonic()
            scrapes = [(0.0, scrape(port))]
            orders = Path(env["ETL_PIPELINES_DIR"]) / "orders.yaml"
            declared = orders.read_text()
            for pipeline in ("customers", "products", "broken orders", "orders"):
                # The broken run joins on a missing column and fails (before it, so its files are still new).
                orders.write_text(declared.replace("on: product_id", "on: product_key") if "broken" in pipeline else declared)
                done = subprocess.run([ETL, "run", pipeline.split()[-1]], env=env, capture_output=True)
                assert (done.returncode != 0) == ("broken" in pipeline), done.stderr.decode()[-2000:]
                scrapes.append((time.monotonic() - start, scrape(port)))
        finally:
            os.killpg(exporter.pid, signal.SIGTERM)
            exporter.wait(30)
    draw(scrapes, args.out)
    print(f"{args.out}: {len(scrapes)} scrapes drawn")


if __name__ == "__main__":
    main()
