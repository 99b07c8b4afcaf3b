"""The dbt models as assets: staging views and marts built on the datasets the pipelines publish.

dagster-dbt reads the manifest (prepared offline, etl_platform.dbt_layer) and makes each model
an asset and each dbt test an asset check. The translator keys models and sources alike by
`schema.table`, the way pipeline assets are keyed by their dataset, so a dbt source such as
`analytics.orders` is the `orders` pipeline's own asset and the graph runs from the raw files
through the pipelines to the marts without a seam.
"""

import contextlib
import io
import logging
import shutil
import time
import uuid
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path
from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    AutomationCondition,
    DagsterLogManager,
    Failure,
    ResourceParam,
)
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, DbtProject, dbt_assets

from assets.automation import dataset_updated
from assets.dbt_traces import record_build_spans
from etl_platform.dbt_layer import dbt_executable, keep_parse_state, prepare_manifest, profiles_dir, seed_parse_state
from etl_platform.errors import SpecError
from etl_platform.tracing import Tracer
from resources import WarehouseResource

DBT_ASSETS_NAME = "dbt_models"
# Tests run when every model they test is built or upstream of what is built. dbt's default (eager) also
# runs a test of an unselected model that merely refers to a selected one: a relationships test of
# stg_orders when automation builds stg_customers alone, which fails while stg_orders does not exist yet.
BUILD_ARGS = ["build", "--indirect-selection", "buildable"]
logger = logging.getLogger(__name__)


class PlatformDbtTranslator(DagsterDbtTranslator):
    """dbt models and sources keyed `[schema, table]`; models run when their upstream datasets change.

    `reported` are the datasets outside systems report (webhook triggers): see assets.automation.
    """

    def __init__(self, reported: Collection[AssetKey] = ()):
        super().__init__()
        self._reported = tuple(reported)

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> AssetKey:
        table = dbt_resource_props.get("identifier") or dbt_resource_props.get("alias") or dbt_resource_props["name"]
        return AssetKey([dbt_resource_props["schema"], table])

    def get_automation_condition(self, dbt_resource_props: Mapping[str, Any]) -> AutomationCondition | None:
        # DatasetUpdated: rebuild when an upstream pipeline or model publishes, never over a failed blocking check.
        return dataset_updated(self._reported)


class DbtOutputToRunLog(io.TextIOBase):
    """dagster-dbt echoes dbt's output lines on stdout: keep them in the run's log (the UI shows them),
    not on the terminal of `etl run`, where they would tear through the progress bars."""

    def __init__(self, log: DagsterLogManager):
        self._log = log
        self._pending = ""

    def write(self, text: str) -> int:
        *lines, self._pending = (self._pending + text).split("\n")
        for line in lines:
            if line.strip():
                self._log.info(line)
        return len(text)


def release_adapter(adapter: Any) -> None:
    """Close the connections dagster-dbt's in-process adapter opened to read column types and row counts.

    dbt-duckdb keeps its database open for the life of the process; a pipeline step after the dbt
    step in the same process would then find the DuckDB file open read-only and fail to write.
    """
    if adapter is None:
        return
    adapter.cleanup_connections()
    close_all = getattr(type(adapter.connections), "close_all_connections", None)
    if close_all is not None:
        close_all()


def dbt_resource(project_dir: Path) -> DbtCliResource:
    """The dbt CLI of this environment on the project; each build gets its profile from the warehouse (`profiled`)."""
    return DbtCliResource(project_dir=str(project_dir), dbt_executable=dbt_executable())


@contextlib.contextmanager
def profiled(dbt: DbtCliResource, warehouse_url: str) -> Iterator[DbtCliResource]:
    """`dbt` with a profiles folder of this build's own, for dbt and dagster-dbt's in-process adapter alike,
    rendered from the warehouse URL and deleted after the build (the password among its values)."""
    with profiles_dir(Path(dbt.project_dir), warehouse_url) as folder:
        yield DbtCliResource(project_dir=dbt.project_dir, dbt_executable=dbt.dbt_executable, profiles_dir=str(folder))


def _result_line(result: dict) -> str:
    name = result["unique_id"].split(".")[2]
    return f"{name} ({result['status']}, {result['failures']} rows)" if result.get("failures") else f"{name} ({result['status']})"


def build_failure(invocation: Any) -> Failure:
    """What failed in a `dbt build`, from its run results: the tests and models, what dbt skipped, where the log is."""
    results = invocation.get_artifact("run_results.json")["results"]
    failed = [_result_line(r) for r in results if r["status"] in {"fail", "error"}]
    skipped = [r["unique_id"].split(".")[2] for r in results if r["status"] == "skipped" and r["unique_id"].startswith("model.")]
    kept = f"; dbt skipped the models built on them, which keep their last content: {', '.join(skipped)}" if skipped else ""
    log = invocation.target_path / "dbt.log"
    return Failure(
        description=f"dbt build failed: {', '.join(failed) or 'see its log'}{kept}; dbt's log: {log}", allow_retries=False
    )


def dbt_models(
    project_dir: Path, warehouse_url: str, environment: Mapping[str, str], reported: Collection[AssetKey] = ()
) -> AssetsDefinition | None:
    """One multi-asset for the dbt project, built by `dbt build` (models, then their tests); None, with a
    warning, when the project cannot be loaded here (no dbt adapter for the warehouse, a project that never parsed)."""
    try:
        manifest = prepare_manifest(project_dir, warehouse_url, environment)
    except SpecError as unavailable:
        logger.warning("The dbt models are left out of the code location: %s", unavailable)
        return None

    @dbt_assets(
        manifest=manifest,
        project=DbtProject(project_dir=project_dir),
        name=DBT_ASSETS_NAME,
        dagster_dbt_translator=PlatformDbtTranslator(reported),
        pool="dbt_project",
    )
    def _dbt_models(
        context: AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource, tracer: ResourceParam[Tracer]
    ) -> Iterator[Any]:
        # The profile's connection comes from the warehouse URL, in a profiles folder of this build's own.
        # A target folder of this build's own, starting from the last parse's state: dbt re-parses only what changed.
        target = seed_parse_state(project_dir, warehouse.url, project_dir / "target" / f"build-{uuid.uuid4().hex[:12]}")
        started = time.time()
        with profiled(dbt, warehouse.url) as build:
            invocation = build.cli(BUILD_ARGS, context=context, raise_on_error=False, target_path=target)
            try:
                with contextlib.redirect_stdout(DbtOutputToRunLog(context.log)):
                    yield from invocation.stream().fetch_row_counts().fetch_column_metadata()
            finally:
                release_adapter(invocation.adapter)
        keep_parse_state(project_dir, warehouse.url, target)
        results = _run_results(invocation)
        step = context.get_step_execution_context().step.key
        record_build_spans(tracer, context.run.run_id, step, started, time.time(), results, invocation.is_successful())
        if not invocation.is_successful():
            raise build_failure(invocation)
        shutil.rmtree(invocation.target_path, ignore_errors=True)  # a failed build keeps its folder, log and results

    return _dbt_models


def _run_results(invocation: Any) -> list[dict]:
    """The build's run results; none when dbt failed before writing them (a project that does not compile)."""
    try:
        return invocation.get_artifact("run_results.json").get("results", [])
    except (FileNotFoundError, ValueError):
        return []
