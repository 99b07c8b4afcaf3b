"""Change data capture: one sensor per postgres_cdc or mariadb_cdc pipeline, requesting a run when it is behind.

A tick reads only positions (well under the sensor time limit); it decodes nothing. PostgreSQL:
the slot's confirmed LSN and the server's WAL position (one catalog query). MariaDB: the GTID
saved with the last publish (the warehouse) and the server's `@@gtid_binlog_pos`. Behind, and no
run of this sensor unfinished, it requests a run whose key names the stream and the range seen,
so a tick that sees the same range again requests nothing new. The run opens its own connections
in the step process and applies one bounded window (docs/how-a-run-works.md, "Exactly once for
change data capture"); on an idle PostgreSQL slot that window is the heartbeat that lets the
slot release WAL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from dagster import (
    DefaultSensorStatus,
    ResourceParam,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)

from etl_platform.breaker import BreakerBoard
from etl_platform.errors import one_line
from etl_platform.settings import Secrets
from etl_platform.sources.mariadb_cdc import gtid_behind, server_gtid
from etl_platform.sources.pgoutput import lsn_text
from etl_platform.sources.postgres_cdc import connect, slot_state
from etl_platform.sources.sql import expand_env
from etl_platform.spec import PipelineSpec
from etl_platform.spec.sources import MariadbCdcSource
from etl_platform.state import saved_position
from resources import WarehouseResource
from sensors.runs import unfinished_run

if TYPE_CHECKING:
    from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

INTERVAL_SECONDS = 30


def sensor_name(pipeline_id: str) -> str:
    return f"{pipeline_id}_change_capture"


@dataclass(frozen=True)
class Lag:
    """Where a change-capture pipeline stands: its stream's name, the range behind (None: no position, take
    the snapshot), and how far behind in the source's unit."""

    stream: str
    behind_range: str | None
    amount: int
    unit: str


def slot_lag(source, url: str) -> Lag:
    with connect(url) as connection:
        state = slot_state(connection, source.slot_name)
    if state is None:
        return Lag(source.slot_name, None, 0, "bytes")
    return Lag(source.slot_name, f"{lsn_text(state.confirmed_lsn)}..{lsn_text(state.current_lsn)}", state.lag_bytes, "bytes")


def binlog_lag(spec: PipelineSpec, url: str, warehouse: WarehouseResource, breakers: BreakerBoard) -> Lag:
    with warehouse.platform_tables(breakers) as store:
        saved = saved_position(store, spec.id)
    stream = f"binlog:{spec.source.table}"
    if saved is None or saved.get("table") != spec.source.table:
        return Lag(stream, None, 0, "transactions")
    current = server_gtid(url)
    return Lag(stream, f"{saved['gtid']}..{current}", gtid_behind(saved["gtid"], current), "transactions")


def change_capture_sensor(spec: PipelineSpec, job: UnresolvedAssetJobDefinition) -> SensorDefinition:
    source = spec.source
    watched = f"the binlog of {source.table}" if isinstance(source, MariadbCdcSource) else f"replication slot {source.slot_name}"

    @sensor(
        name=sensor_name(spec.id),
        job=job,
        minimum_interval_seconds=INTERVAL_SECONDS,
        default_status=DefaultSensorStatus.RUNNING,
        description=f"Runs pipeline {spec.id} when {watched} is behind",
    )
    def _sensor(
        context: SensorEvaluationContext,
        warehouse: WarehouseResource,
        breakers: ResourceParam[BreakerBoard],
        secrets: ResourceParam[Secrets],
    ):
        running = unfinished_run(context, job.name)
        if running:
            return SkipReason(f"run {running.run_id} is applying changes of {watched}")
        try:
            url = expand_env(source.url, secrets)
            lag = binlog_lag(spec, url, warehouse, breakers) if isinstance(source, MariadbCdcSource) else slot_lag(source, url)
        except Exception as error:  # any driver error (or a missing variable): the source cannot be read now
            return SkipReason(f"cannot read the position of {watched}: {one_line(error)}")
        if lag.behind_range is None:
            return RunRequest(run_key=f"{lag.stream}:snapshot", tags={"etl/stream": lag.stream})
        if lag.amount == 0:
            return SkipReason(f"{watched} is at the server's position")
        context.log.info(f"{watched} is {lag.amount} {lag.unit} behind ({lag.behind_range})")
        tags = {"etl/stream": lag.stream, "etl/range": lag.behind_range, f"etl/lag_{lag.unit}": str(lag.amount)}
        return RunRequest(run_key=f"{lag.stream}:{lag.behind_range}", tags=tags)

    return _sensor
