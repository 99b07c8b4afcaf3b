"""FileArrival triggers: one sensor per pipeline with `triggers: [{file_arrival: ...}]`.

Each tick lists the watched prefix (a folder, or S3 through dagster-aws's client), asks the
warehouse which files are processed, and requests runs of the pipeline's job for the rest
(etl_platform.engine.arrivals decides). The cursor holds only the files handed to unfinished runs.
Dagster ticks carry no metadata, so the lag (age of the oldest unprocessed file) goes into the
tick's log and skip message, and into observations of the pipeline's landing asset (assets.landing),
recorded when what the sensor sees changes and at most once a minute otherwise, which the UI plots.
"""

from __future__ import annotations

import datetime
import json
import time
from typing import TYPE_CHECKING

from dagster import (
    AssetObservation,
    DagsterRunStatus,
    DefaultSensorStatus,
    ResourceParam,
    RunRequest,
    RunsFilter,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from assets import dataset_key
from assets.landing import LAG_SECONDS, LAST_FILE, LAST_FILE_MODIFIED, UNPROCESSED, landing_key
from etl_platform.breaker import BreakerBoard
from etl_platform.engine.arrivals import ArrivalPlan, file_token, finished_tokens, move_to_dead_letter, plan_arrivals
from etl_platform.engine.inputs import watched_location
from etl_platform.errors import EtlError
from etl_platform.spec import PipelineSpec
from etl_platform.state import FileState
from etl_platform.warehouse import open_warehouse
from etl_platform.warehouse.metadata import ensure_metadata
from resources import LandingZoneResource, WarehouseResource

if TYPE_CHECKING:
    from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

# While files wait, their lag is observed again after this long even when nothing else changed.
OBSERVE_LAG_EVERY_SECONDS = 60
FINISHED = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}
# A request whose run never appeared (or was deleted) frees its files after this long.
ORPHANED_AFTER_SECONDS = 600


def sensor_name(pipeline_id: str) -> str:
    return f"{pipeline_id}_file_arrival"


def load_run_config(spec: PipelineSpec, files: list[str]) -> dict:
    """Run config that narrows the pipeline's asset to `files`."""
    op_name = dataset_key(spec.destination.dataset).to_python_identifier()
    return {"ops": {op_name: {"config": {"files": files}}}}


def landing_observation(spec: PipelineSpec, plan: ArrivalPlan, cursor: dict, now: float) -> AssetObservation | None:
    """What the tick saw in the pipeline's landing asset (assets.landing), when it changed (another last
    file, another backlog), and at most once a minute while files wait (the lag grows); otherwise
    nothing, so the asset's events are not one per tick. `cursor` remembers the last one recorded."""
    newest = plan.newest
    seen = [newest.url if newest else None, plan.pending]
    observed = cursor.get("observed", {"seen": [None, 0], "at": 0.0})
    if seen == observed["seen"] and not (plan.pending and now - observed["at"] >= OBSERVE_LAG_EVERY_SECONDS):
        return None
    cursor["observed"] = {"seen": seen, "at": now}
    metadata = {UNPROCESSED: plan.pending, LAG_SECONDS: round(plan.oldest_pending_seconds or 0.0, 1)}
    if newest is not None:
        metadata |= {LAST_FILE: newest.url, LAST_FILE_MODIFIED: newest.modified.isoformat()}
    return AssetObservation(asset_key=landing_key(spec), metadata=metadata)


def file_arrival_sensor(spec: PipelineSpec, job: UnresolvedAssetJobDefinition) -> SensorDefinition:
    arrival = spec.file_arrival

    @sensor(
        name=sensor_name(spec.id),
        job=job,
        minimum_interval_seconds=arrival.interval_seconds,
        default_status=DefaultSensorStatus.RUNNING,
        description=f"Runs pipeline {spec.id} when files arrive at {spec.file_path}",
    )
    def _sensor(
        context: SensorEvaluationContext,
        warehouse: WarehouseResource,
        landing_zone: LandingZoneResource,
        breakers: ResourceParam[BreakerBoard],
    ):
        cursor = json.loads(context.cursor) if context.cursor else {"seq": 0, "in_flight": {}}
        in_flight: dict[str, str] = cursor["in_flight"]
        cursor.setdefault("requested_at", {})

        def run_finished(run_key: str) -> bool:
            """Ended; or never created or deleted, once the request is older than ORPHANED_AFTER_SECONDS."""
            runs = context.instance.get_runs(
                filters=RunsFilter(tags={"dagster/sensor_name": context.sensor_name, "dagster/run_key": run_key}), limit=1
            )
            if runs:
                return runs[0].status in FINISHED
            return time.time() - cursor["requested_at"].get(run_key, 0) > ORPHANED_AFTER_SECONDS

        for token in finished_tokens(in_flight, run_finished):
            del in_flight[token]
        cursor["requested_at"] = {key: at for key, at in cursor["requested_at"].items() if key in in_flight.values()}
        location = watched_location(
            spec, landing_zone.store(breakers), landing_zone.s3.get_client, breakers, landing_zone.roots()
        )
        try:
            store = open_warehouse(warehouse.url, breakers)
        except EtlError as exc:
            return SkipReason(f"cannot read the processed-file state: {exc}")
        try:
            ensure_metadata(store)
            state = FileState(store, spec.id)
            # A replace load reads every file anyway: one run for all that changed.
            batch = None if spec.incremental_files else 1_000_000
            plan = plan_arrivals(location, state, arrival, set(in_flight), datetime.datetime.now(datetime.UTC), batch)
            for file, failures, error in plan.dead_letters:
                try:
                    moved_to = move_to_dead_letter(location, state, arrival, file, failures, error)
                except EtlError as exc:  # the next tick tries again; the other files go on
                    context.log.error(f"{file.url} failed {failures} load(s) but could not be moved to dead letter: {exc}")
                    continue
                context.log.warning(f"{file.url} failed {failures} load(s); moved to {location.store.file_url(moved_to)}")
        finally:
            store.close()
        requests = []
        for batch in plan.batches:
            cursor["seq"] += 1
            run_key = f"{spec.id}-{cursor['seq']}"
            urls = [f.url for f in batch]
            requests.append(
                RunRequest(run_key=run_key, run_config=load_run_config(spec, urls), tags={"etl/files": str(len(urls))})
            )
            in_flight.update(dict.fromkeys((file_token(f) for f in batch), run_key))
            cursor["requested_at"][run_key] = time.time()
        if requests:  # a skipped tick's summary is its skip reason, which the daemon logs: once, not twice
            context.log.info(plan.summary())
        observation = landing_observation(spec, plan, cursor, time.time())
        return SensorResult(
            run_requests=requests,
            skip_reason=None if requests else plan.summary(),
            cursor=json.dumps(cursor),
            asset_events=[observation] if observation else [],
        )

    return _sensor
