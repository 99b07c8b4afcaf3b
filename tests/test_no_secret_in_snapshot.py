"""No secret in the code location's snapshot, and none in an error about a bad URL (issue 22, docs/security.md).

The repository snapshot is what the webserver serves over GraphQL to whoever opens the UI; a
resource's config values are defaults in it. The warehouse password must not be among them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from dagster._core.remote_representation.external_data import RepositorySnap
from dagster_shared.serdes import serialize_value

from etl_platform.definitions import build_definitions
from etl_platform.errors import EtlError, masked_url
from etl_platform.instance.home import ensure_dagster_home
from etl_platform.settings import Settings
from tests.conftest import REPO, free_port
from tests.processes import stop_group

PASSWORD = "Kn0wn-Pa55word-7c1e"
# PostgreSQL on this machine trusts local connections: the password is configured, never checked.
WAREHOUSE_URL = f"postgresql://postgres:{PASSWORD}@127.0.0.1:5432/test"


def _environment(tmp_path: Path) -> dict[str, str]:
    """The demo pipelines, no dbt layer (its manifest is not what is under test), a warehouse URL with a password."""
    (tmp_path / "no_dbt").mkdir()
    home = tmp_path / "dagster_home"
    ensure_dagster_home(home)
    return {
        "ETL_PIPELINES_DIR": str(REPO / "assets" / "pipelines"),
        "ETL_DBT_PROJECT_DIR": str(tmp_path / "no_dbt"),
        "ETL_DATA_DIR": str(tmp_path / "data"),
        "ETL_WAREHOUSE_URL": WAREHOUSE_URL,
        "DAGSTER_HOME": str(home),
    }


def test_the_repository_snapshot_holds_no_password(tmp_path: Path) -> None:
    defs = build_definitions(Settings.from_env(_environment(tmp_path)))
    snapshot = serialize_value(RepositorySnap.from_def(defs.get_repository_def()))
    assert PASSWORD not in snapshot
    assert masked_url(WAREHOUSE_URL) in snapshot  # the UI still shows which warehouse, password masked
    assert defs.resources["warehouse"].url == WAREHOUSE_URL  # runs connect with it


RESOURCES_QUERY = """
{
  workspaceOrError {
    ... on Workspace {
      locationEntries {
        locationOrLoadError {
          __typename
          ... on PythonError { message }
          ... on RepositoryLocation {
            repositories {
              allTopLevelResourceDetails {
                name
                configuredValues { key value type }
                configFields { name defaultValueAsJson }
              }
              jobs { name presets { runConfigYaml } }
            }
          }
        }
      }
    }
  }
  launchpadDefaults: runConfigSchemaOrError(
    selector: {repositoryLocationName: "etl_platform", repositoryName: "__repository__", pipelineName: "orders_job"}
  ) { ... on RunConfigSchema { rootDefaultYaml } }
}
"""


def _query_when_loaded(url: str, webserver: subprocess.Popen) -> str:
    """The GraphQL answer once the code location has loaded (the webserver loads it in a process of its own)."""
    deadline = time.monotonic() + 120
    while True:
        assert webserver.poll() is None and time.monotonic() < deadline, "the webserver did not serve the code location"
        try:
            answer = requests.post(url, json={"query": RESOURCES_QUERY}, timeout=30)
            if answer.ok and "rootDefaultYaml" in answer.text:
                return answer.text
        except requests.ConnectionError:
            pass
        time.sleep(1)


def test_the_webservers_graphql_answers_without_the_password(tmp_path: Path) -> None:
    port = free_port()
    webserver = subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port), "-w", "workspace.yaml"],
        cwd=REPO,
        env={**os.environ, **_environment(tmp_path)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: the code server it starts is stopped with it
    )
    try:
        text = _query_when_loaded(f"http://127.0.0.1:{port}/graphql", webserver)
    finally:
        stop_group(webserver)  # whatever of the group is left (the code server) goes too
    assert '"display_url"' in text and f"display_url: {masked_url(WAREHOUSE_URL)}" in text  # the Launchpad shows it masked
    assert PASSWORD not in text


@pytest.mark.parametrize(
    "url",
    [f"postgres:{PASSWORD}@db.example/warehouse", f"etl:{PASSWORD}@db", f"etl:{PASSWORD}@db:5432/x?sslmode=require"],
)
def test_a_warehouse_url_without_a_scheme_is_refused_clearly_and_masked(url: str) -> None:
    with pytest.raises(EtlError, match=r"ETL_WAREHOUSE_URL '.*\*\*\*@db.*' has no scheme") as refused:
        Settings.from_env({"ETL_WAREHOUSE_URL": url})
    assert PASSWORD not in str(refused.value)


def test_the_cli_refuses_a_url_without_a_scheme_without_a_traceback_or_the_password(tmp_path: Path) -> None:
    environment = {**os.environ, **_environment(tmp_path), "ETL_WAREHOUSE_URL": f"etl:{PASSWORD}@db.example/wh"}
    done = subprocess.run(
        [sys.executable, "-m", "etl_platform.cli.main", "run", "--all"],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "has no scheme" in done.stderr and "Traceback" not in done.stderr + done.stdout
    assert PASSWORD not in done.stderr + done.stdout


def test_every_error_path_masks_the_same_way() -> None:
    from etl_platform.dbt_layer.profile import dbt_profile_env
    from etl_platform.warehouse import open_warehouse

    for failing in (
        lambda: open_warehouse(f"mysqlx://etl:{PASSWORD}@db/x"),
        lambda: open_warehouse(f"etl:{PASSWORD}@db/x"),
        lambda: dbt_profile_env(f"sqlite://etl:{PASSWORD}@db/x"),
        lambda: dbt_profile_env(f"etl:{PASSWORD}@db/x"),
    ):
        with pytest.raises(EtlError) as refused:
            failing()
        assert PASSWORD not in str(refused.value)
