"""`etl plan` and `etl run --dry-run` show a REST source's effective configuration, with references, not secrets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from pytest_httpserver import HTTPServer
from werkzeug import Response

from etl_platform.cli.main import cli


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, httpserver: HTTPServer) -> Path:
    pipelines = tmp_path / "pipelines"
    pipelines.mkdir()
    (tmp_path / "data" / "landing").mkdir(parents=True)
    document = {
        "id": "api_items",
        "source": {
            "type": "rest",
            "client": {
                "base_url": httpserver.url_for(""),
                "auth": {"type": "api_key", "name": "key", "key": "${DEMO_KEY}", "location": "query"},
                "paginator": {"type": "page_number"},
            },
            "resource": {"path": "/items", "records": "$.data"},
        },
        "destination": {"dataset": "raw.items", "write": "append"},
    }
    (pipelines / "api_items.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    for name, value in {
        "ETL_PIPELINES_DIR": str(pipelines),
        "ETL_DATA_DIR": str(tmp_path / "data"),
        "ETL_DBT_PROJECT_DIR": str(tmp_path / "dbt"),
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
        "DEMO_KEY": "very-secret-key",
    }.items():
        monkeypatch.setenv(name, value)
    return pipelines


def test_plan_and_dry_run_show_the_effective_configuration(folder: Path, httpserver: HTTPServer):
    def page(request):
        assert request.args["key"] == "very-secret-key"
        number = int(request.args["page"])
        return json.dumps({"data": [{"id": number}] if number <= 2 else []})

    httpserver.expect_request("/items").respond_with_handler(lambda r: Response(page(r)))
    plan = CliRunner().invoke(cli, ["plan"])
    assert plan.exit_code == 0, plan.output
    effective = json.loads(plan.output.split("effective source configuration\n", 1)[1].split("\nlevel 1", 1)[0])
    assert effective["resource"]["paginator"] == {"type": "page_number", "page_param": "page", "base_page": 1, "total_path": None}
    assert effective["client"]["retries"]["attempts"] == 5 and effective["raw_pages"]["retention_days"] == 7
    command = [sys.executable, "-m", "etl_platform.cli.main", "run", "api_items", "--dry-run"]
    dry = subprocess.run(command, capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "200"})
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "effective source configuration" in dry.stdout and "source (rest): 2 rows" in dry.stdout
    assert "very-secret-key" not in plan.output + dry.stdout + dry.stderr
