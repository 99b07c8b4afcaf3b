"""The asset factory: one software-defined asset per pipeline spec.

The asset's key is the dataset it publishes (`analytics.orders` -> ["analytics", "orders"]),
its upstream deps are the datasets the pipeline depends on or reads, and materializing it runs
the engine's write-audit-publish load. Large data never passes through an IO manager: the asset
is the published table, and downstream pipelines read it from the warehouse.
"""

import time
import warnings
from collections.abc import Iterator

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetObservation,
    AssetsDefinition,
    AssetSelection,
    AssetSpec,
    AutomationCondition,
    Backoff,
    BetaWarning,
    Config,
    DataVersion,
    Failure,
    Jitter,
    MaterializeResult,
    ResourceParam,
    RetryPolicy,
    multi_asset,
)
from dagster._core.definitions.data_version import DATA_VERSION_TAG
from dagster_pandera import pandera_schema_to_dagster_type
from pydantic import Field

from assets.automation import dataset_updated
from assets.checks import carried_results, check_result, check_specs
from assets.failures import step_failure
from assets.landing import landing_key
from assets.metadata import DATASET_METADATA, lineage_metadata, materialization_metadata
from assets.observed import observed_step, step_log
from assets.partitions import partitions_definition, pool_name
from assets.workers import QUEUE_TAG, queue_of
from etl_platform.breaker import BreakerBoard
from etl_platform.engine.environment import Environment
from etl_platform.engine.options import Progress, RunOptions, given
from etl_platform.engine.runner import run_pipeline
from etl_platform.lineage.columns import column_lineage
from etl_platform.quality.audit import QualityGateFailed
from etl_platform.settings import Secrets
from etl_platform.sources.frame import frame_source
from etl_platform.spec import FramePipeline, PipelineRegistry, PipelineSpec
from etl_platform.tracing import Tracer
from resources import EmbeddingModelResource, LandingZoneResource, WarehouseResource

# dagster-postgres opens a connection per stored event: a long load reports progress every 2 s at most.
PROGRESS_EVERY_SECONDS = 2.0
# The progress observation's metadata (`etl run` draws its bars from these; the UI plots them).
ROWS_READ, BYTES_READ, TOTAL_BYTES = "etl/rows_read", "etl/bytes_read", "etl/total_bytes"
# Why a load published nothing (`etl run` shows it in its summary): metadata of the unchanged
# dataset's materialization, or of an observation when the dataset was never published.
SKIPPED = "etl/skipped"


class LoadConfig(Config):
    """Run config of a pipeline asset; a plain materialization needs none."""

    files: list[str] | None = Field(
        None, description="URLs of the files to load (set by the file-arrival sensor); default: every new file"
    )
    full_refresh: bool = Field(False, description="Ignore incremental state, reload everything and replace the target's rows")


def dataset_key(dataset: str) -> AssetKey:
    return AssetKey(dataset.split("."))


def progress_observation(key: AssetKey, progress: Progress) -> AssetObservation:
    """A load's progress as a structured event of its asset, which `etl run` reads from the event log."""
    metadata = {ROWS_READ: progress.rows_read, BYTES_READ: progress.bytes_read}
    if progress.total_bytes:
        metadata[TOTAL_BYTES] = progress.total_bytes
    return AssetObservation(asset_key=key, metadata=metadata)


def _progress_reporter(context: AssetExecutionContext, key: AssetKey):
    last = 0.0

    def report(progress: Progress) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last >= PROGRESS_EVERY_SECONDS:
            last = now
            context.log_event(progress_observation(key, progress))

    return report


def launcher(tags: dict[str, str]) -> str:
    """Who or what launched a Dagster run, from its tags, for the audit trail (warehouse.audit)."""
    for tag, kind in (("dagster/user", "user"), ("dagster/schedule_name", "schedule"), ("dagster/sensor_name", "sensor")):
        if tags.get(tag):
            return f"{kind} {tags[tag]}"
    backfill = tags.get("dagster/backfill") or tags.get("etl/backfill")  # Dagster's backfills, or `etl backfill`'s
    if backfill:
        return f"backfill {backfill}"
    return f"{tags['etl/trigger']} (etl)" if tags.get("etl/trigger") else "dagster"


def definition_metadata(spec: PipelineSpec, python: FramePipeline | None) -> dict:
    metadata = {"pipeline": spec.id, "pipeline_file": spec.origin, "write_mode": spec.destination.write}
    if python and python.model:
        # dagster-pandera's type for the model: the column schema with its constraints, in the UI.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", BetaWarning)
            dagster_type = pandera_schema_to_dagster_type(python.model)
        metadata["dagster/column_schema"] = dagster_type.metadata["schema"].schema
    return metadata


def pipeline_automation(spec: PipelineSpec, registry: PipelineRegistry) -> AutomationCondition | None:
    """Dataset-updated and webhook triggers: run when an upstream dataset changes (a pipeline publishes, or an
    outside system reports a change), never while a blocking check upstream fails. A pipeline whose input is
    files waits for them (its file-arrival sensor): the datasets it reads changing do not start it, unless
    its trigger says `on_upstream_update: true`."""
    reported = [dataset_key(dataset) for dataset in spec.webhook_datasets]
    read = [dataset_key(dependency.destination.dataset) for dependency in registry.upstream(spec.id)]
    waits_for_files = spec.file_arrival is not None and not spec.file_arrival.on_upstream_update
    if not reported and (waits_for_files or not read):
        return None
    condition = dataset_updated(reported, ignored=read if waits_for_files else ())
    files = landing_key(spec)
    # Its landing asset is never materialized (assets.landing): neither missing nor updated for automation.
    return condition.ignore(AssetSelection.assets(files)) if files else condition


def unchanged(context: AssetExecutionContext, key: AssetKey, reason: str) -> Iterator[MaterializeResult]:
    """A load with nothing new: the published dataset is unchanged, not missing. Its materialization keeps
    the data version it had (automation starts nothing on it, assets.automation), the dataset's metadata
    and its checks' last verdicts, so dependents in the same run still load. Never published: missing."""
    previous = context.instance.get_latest_materialization_event(key)
    if previous is None or previous.asset_materialization is None:
        context.log_event(AssetObservation(asset_key=key, metadata={SKIPPED: reason}))
        return
    materialization = previous.asset_materialization
    version = materialization.tags.get(DATA_VERSION_TAG)
    names = [check_key.name for check_key in context.selected_asset_check_keys]
    yield MaterializeResult(
        metadata={**{k: v for k, v in materialization.metadata.items() if k in DATASET_METADATA}, SKIPPED: reason},
        data_version=DataVersion(version) if version else None,
        check_results=carried_results(context.instance, key, names, f"unchanged: {reason}"),
    )


def stopped_results(context: AssetExecutionContext, key: AssetKey, judged: list, reason: str) -> list:
    """A run that failed without publishing: the checks it judged, and the others' last verdicts."""
    names = {result.check_name for result in judged}
    carried = [check_key.name for check_key in context.selected_asset_check_keys if check_key.name not in names]
    return [*judged, *carried_results(context.instance, key, carried, reason)]


def pipeline_asset(spec: PipelineSpec, registry: PipelineRegistry, warehouse_kind: str) -> AssetsDefinition:
    """Build the asset that materializes `spec`'s dataset."""
    destination = spec.destination
    kinds = {spec.source.type, destination.format or warehouse_kind}
    tags = dict(spec.tags)
    if spec.tenancy and spec.tenancy.value:
        tags["tenant"] = spec.tenancy.value
    description = (
        spec.description or f"Pipeline {spec.id}: {spec.source.type} source, {destination.write} into {destination.dataset}"
    )

    key = dataset_key(destination.dataset)
    upstream = [dataset_key(dependency.destination.dataset) for dependency in registry.upstream(spec.id)]
    upstream += [dataset_key(dataset) for dataset in spec.webhook_datasets]
    upstream += [files] if (files := landing_key(spec)) else []

    # A multi_asset of one, so that a load that was never published may skip its materialization and checks.
    @multi_asset(
        name=key.to_python_identifier(),
        specs=[
            AssetSpec(
                key,
                group_name=spec.group,
                deps=upstream,
                description=description,
                owners=[spec.owner] if spec.owner else [],
                kinds=kinds,
                tags=tags,
                metadata=definition_metadata(spec, registry.frames.get(spec.id)),
                automation_condition=pipeline_automation(spec, registry),
                skippable=True,
            )
        ],
        check_specs=check_specs(spec, key, registry.frames[spec.id].model if spec.id in registry.frames else None),
        can_subset=True,
        pool=pool_name(spec),
        partitions_def=partitions_definition(spec),
        # Only transient failures (an outage, a lock; assets/failures.py) retry the step, with growing delays.
        retry_policy=RetryPolicy(max_retries=3, delay=5, backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS),
        op_tags={"etl/pipeline": spec.id, QUEUE_TAG: queue_of(spec)},
    )
    def _pipeline(
        context: AssetExecutionContext,
        config: LoadConfig,
        warehouse: WarehouseResource,
        landing_zone: LandingZoneResource,
        embedding_model: EmbeddingModelResource,
        breakers: ResourceParam[BreakerBoard],
        secrets: ResourceParam[Secrets],
        tracer: ResourceParam[Tracer],
    ):
        if key not in context.selected_asset_keys:
            raise Failure(
                description=f"the checks of {destination.dataset} are judged by its load: materialize the asset to run them",
                allow_retries=False,
            )
        environment = Environment(
            warehouse.url,
            landing_zone.store(breakers),
            warehouse.lake_store(breakers),
            landing_zone.s3.get_client,
            embedding_model.embedder,
            breakers,
            secrets,
            tuple(landing_zone.allowed_roots),
            tracer,
        )
        python = registry.frames.get(spec.id)
        try:
            frame = frame_source(python, warehouse.url) if python else None
            options = RunOptions(
                run_id=context.run.run_id,
                progress=_progress_reporter(context, key),
                files=config.files,
                full_refresh=config.full_refresh,
                source=given(frame) if frame else None,
                model=python.model if python else None,
                launched_by=launcher(context.run.tags),
            )
            # A partition's load: its slice, its own state key (etl_platform.spec.partitions).
            loaded = spec.for_partition(context.partition_key) if context.has_partition_key else spec
            # The step's span joins the run's trace by its run id; its log events carry the ids (assets/observed.py).
            with observed_step(context, tracer, spec):
                report = run_pipeline(loaded, environment, options)
                if report.rows_published or not report.skipped_reason:
                    step_log.info(
                        f"{spec.id}: {report.rows_read:,} read, {report.rows_published:,} published, "
                        f"{report.rows_quarantined:,} quarantined, {report.rows_filtered:,} filtered"
                    )
        except QualityGateFailed as stopped:
            # Record every check that was judged, then fail: the breaker or a blocking rule stops here.
            judged = [check_result(outcome) for outcome in stopped.outcomes]
            yield from stopped_results(context, key, judged, f"the load was stopped: {stopped}")
            metadata = materialization_metadata(stopped.report, "", destination.dataset) if stopped.report else {}
            raise Failure(description=str(stopped), metadata=metadata, allow_retries=False) from stopped
        except Exception as error:  # retried only if transient (assets/failures.py)
            failure = step_failure(error)
            if not failure.allow_retries:  # a retried failure is not the run's last word: it carries nothing yet
                yield from stopped_results(context, key, [], f"the run failed before publishing: {failure.description}")
            raise failure from error
        if report.rows_published == 0 and report.skipped_reason:
            context.log.info(f"{spec.id}: nothing to publish: {report.skipped_reason}")
            yield from unchanged(context, key, report.skipped_reason)
            return
        dialect = "files" if destination.is_file else warehouse.dialect
        table_name = destination.path or destination.dataset if destination.is_file else destination.dataset
        try:
            metadata = {
                **materialization_metadata(report, dialect, table_name),
                **lineage_metadata(column_lineage(spec, report.source_columns), report.schema.names if report.schema else []),
            }
        except Exception as error:  # published already: a retry would only load nothing new and fail again
            raise step_failure(error) from error
        yield MaterializeResult(metadata=metadata, check_results=[check_result(outcome) for outcome in report.checks])

    return _pipeline
