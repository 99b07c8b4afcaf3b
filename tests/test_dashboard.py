"""deploy/grafana/etl-platform.json: a loadable dashboard on the provisioned Prometheus data source.

That each panel's metric is really exported is checked against a scrape after real runs, in
tests/test_metrics.py (with `dashboard_metric_names`): a renamed metric fails there.
"""

from __future__ import annotations

import json
import re

import jsonschema
import yaml

from tests.conftest import REPO

DASHBOARD = REPO / "deploy" / "grafana" / "etl-platform.json"
DATASOURCES = REPO / "deploy" / "grafana" / "provisioning" / "datasources" / "prometheus.yaml"
METRIC = re.compile(r"\betl_[a-z_]+\b")

# What Grafana's dashboard loader needs of each panel (its JSON model; docs/operations.md, "Dashboard").
PANEL = {
    "type": "object",
    "required": ["id", "type", "title", "datasource", "gridPos", "targets"],
    "properties": {
        "type": {"enum": ["timeseries", "stat", "gauge", "table", "bargauge"]},
        "gridPos": {
            "type": "object",
            "required": ["h", "w", "x", "y"],
            "properties": {"w": {"maximum": 24}, "x": {"maximum": 23}},
        },
        "targets": {
            "type": "array",
            "minItems": 1,
            "items": {"type": "object", "required": ["refId", "expr", "datasource"]},
        },
    },
}
SCHEMA = {
    "type": "object",
    "required": ["uid", "title", "schemaVersion", "panels"],
    "properties": {"panels": {"type": "array", "minItems": 1, "items": PANEL}},
}


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def dashboard_metric_names() -> set[str]:
    """Every metric a panel's query names (a histogram's as its _bucket/_count/_sum samples)."""
    return {name for panel in dashboard()["panels"] for target in panel["targets"] for name in METRIC.findall(target["expr"])}


def test_the_dashboard_loads_and_every_query_uses_the_provisioned_data_source() -> None:
    document = dashboard()
    jsonschema.validate(document, SCHEMA)
    uid = next(
        source["uid"] for source in yaml.safe_load(DATASOURCES.read_text())["datasources"] if source["type"] == "prometheus"
    )
    panels = document["panels"]
    assert len({panel["id"] for panel in panels}) == len(panels)
    for panel in panels:
        sources = [panel["datasource"], *(target["datasource"] for target in panel["targets"])]
        assert all(source == {"type": "prometheus", "uid": uid} for source in sources), panel["title"]
        assert METRIC.search(" ".join(target["expr"] for target in panel["targets"])), panel["title"]
