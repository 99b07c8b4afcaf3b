"""The pipeline spec: one declared pipeline, from its source through steps and quality to its destination.

Each part is a model of its own module (sources, steps, quality, destinations, triggers); this
module puts them together and checks what spans parts, such as the order of whole-load steps
or a lookback that needs a merge.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, PrivateAttr, StringConstraints, model_validator

from etl_platform.spec.alerts import AlertsSpec
from etl_platform.spec.base import Identifier, Strict, single_key
from etl_platform.spec.destinations import Destination
from etl_platform.spec.freshness import FreshnessSpec
from etl_platform.spec.ml import DetectAnomaliesSpec, DetectAnomaliesStep
from etl_platform.spec.partitions import Partitions, PartitionSlice, check_partitioned, state_key, unpartitioned_path
from etl_platform.spec.pii import PiiSpec
from etl_platform.spec.quality import QualitySpec
from etl_platform.spec.sources import Source
from etl_platform.spec.steps import WHOLE_LOAD_STEPS, Transform
from etl_platform.spec.tenant import TenantSpec, check_tenant_keys, isolated_dataset, tenant_spec
from etl_platform.spec.triggers import FileArrival, FileArrivalTrigger, Schedule, Trigger, WebhookTrigger

# Dagster's rules for asset tags, checked here so a bad tag is a pipeline-file error with a line.
TagKey = Annotated[str, StringConstraints(pattern=r"^([A-Za-z0-9_.-]{1,63}/)?[A-Za-z0-9_.-]{1,63}$")]
TagValue = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{0,63}$")]


class SchemaPolicy(Strict):
    on_drift: Literal["fail", "warn", "evolve"] = Field(
        "warn", description="fail: stop before publishing; warn: report and go on; evolve: add new columns to the target"
    )


class Execution(Strict):
    chunk_rows: int | Literal["auto"] = Field(
        100_000, description="rows per streamed chunk (1,000 to 5,000,000), or auto: chosen from past loads"
    )

    @model_validator(mode="after")
    def _check(self) -> Execution:
        if self.chunk_rows != "auto" and not 1_000 <= self.chunk_rows <= 5_000_000:
            raise ValueError("chunk_rows must be between 1,000 and 5,000,000, or auto")
        return self


OWNER = re.compile(r"^(team:[A-Za-z0-9_-]+|[^@\s]+@[^@\s]+\.[^@\s]+)$")


class PipelineSpec(Strict):
    """One declared pipeline: source, ordered transforms, quality, destination and triggers."""

    id: Identifier
    description: str = ""
    group: Identifier = "default"
    owner: str | None = Field(None, description="an email address or team:name")
    tags: dict[TagKey, TagValue] = Field(default_factory=dict, description="letters, digits, _ . - only")
    tenant: Identifier | TenantSpec | None = Field(None, description="a fixed tenant, or {value | column, name, isolation}")
    source: Source
    transforms: list[Transform] = Field(default_factory=list)
    quality: QualitySpec = Field(default_factory=QualitySpec, description="quality rules and circuit breaker")
    destination: Destination
    dependencies: list[Identifier] = Field(default_factory=list)
    schedule: Schedule | None = None
    triggers: list[Trigger] = Field(default_factory=list)
    execution: Execution = Field(default_factory=Execution)
    schema_policy: SchemaPolicy = Field(default_factory=SchemaPolicy, alias="schema")
    pii: PiiSpec | None = Field(None, description="find PII-looking columns before publishing: mask, redact or fail")
    partitions: Partitions | None = Field(None, description="daily, hourly or static slices, each loaded on its own")
    alerts: AlertsSpec | None = Field(None, description="webhook and Slack receivers of the pipeline's failures")
    freshness: FreshnessSpec | None = Field(None, description="a Dagster freshness check: the dataset's longest time unpublished")

    _file: Path | None = PrivateAttr(None)
    _slice: PartitionSlice | None = PrivateAttr(None)

    @model_validator(mode="before")
    @classmethod
    def _tenant_schema(cls, document: Any) -> Any:
        return isolated_dataset(document)

    @property
    def tenancy(self) -> TenantSpec | None:
        """The `tenant:` as a TenantSpec (`tenant: acme` is a fixed tenant)."""
        return tenant_spec(self.tenant)

    @model_validator(mode="after")
    def _check(self) -> PipelineSpec:
        if self.owner is not None and not OWNER.match(self.owner):
            raise ValueError(f"owner {self.owner!r} must be an email address or `team:name`")
        if self.id in self.dependencies:
            raise ValueError(f"pipeline {self.id!r} lists itself in `dependencies`")
        self._check_file_location()
        self._check_partitions()
        kinds = [single_key(t) for t in self.transforms]
        first_whole = next((i for i, k in enumerate(kinds) if k in WHOLE_LOAD_STEPS), len(kinds))
        if kinds.count("detect_anomalies") > 1 or kinds.count("aggregate") > 1:
            raise ValueError("use at most one detect_anomalies and one aggregate step")
        if "aggregate" in kinds and kinds[-1] != "aggregate":
            raise ValueError("`aggregate` must be the last step: the steps after it would see groups, not records")
        late = [k for k in kinds[first_whole:] if k not in WHOLE_LOAD_STEPS]
        if late:
            raise ValueError(
                f"`{kinds[first_whole]}` sees the whole load, so it comes after the row-by-row transforms; move {late} before it"
            )
        incremental = getattr(self.source, "incremental", None)
        if incremental and incremental.lookback and self.destination.write != "merge":
            raise ValueError("an incremental source with `lookback` reads some rows twice: use write: merge with a primary_key")
        if self.destination.on_changed_file == "reload" and (self.file_path is None or self.whole_load_transforms):
            raise ValueError(
                "on_changed_file: reload needs to know each row's file: a file source, and no whole-load step "
                f"({', '.join(sorted(WHOLE_LOAD_STEPS))})"
            )
        sql_rules = [r.check_name for r in self.quality.rules if r.rule in ("Unique", "CustomQuery")]
        if self.destination.is_file and sql_rules:
            raise ValueError(f"rules {sql_rules} query a warehouse table; a file destination supports the others")
        return self

    def _check_file_location(self) -> None:
        """Where the files are is said once: in `source.path`, or by the file_arrival trigger."""
        arrivals = [t.file_arrival for t in self.triggers if isinstance(t, FileArrivalTrigger)]
        if len(arrivals) > 1:
            raise ValueError("declare one file_arrival trigger per pipeline")
        path = getattr(self.source, "path", None)
        if self.source.type in ("sql", "frame", "rest", "postgres_cdc", "mariadb_cdc", "stream"):
            if arrivals:
                raise ValueError(f"a file_arrival trigger needs a file source, not {self.source.type}")
            return
        if arrivals and arrivals[0].names_location:
            if path is not None:
                raise ValueError("say where the files are once: drop `source.path`, the file_arrival trigger names them")
        elif path is None:
            raise ValueError("`source.path` is required (or a file_arrival trigger with `prefix`)")

    def _check_partitions(self) -> None:
        tenant = self.tenancy
        if tenant is not None and tenant.partition_key and (self.partitions is None or self.partitions.static is None):
            raise ValueError("tenant `partition_key: true` needs static partitions: `partitions: {static: [tenant, ...]}`")
        if self.partitions is None:
            unpartitioned_path(self.file_path)
            return
        if tenant is not None and tenant.partition_key:
            check_tenant_keys(self.partitions.static)
        check_partitioned(self.partitions, self.source.type, self.file_path, self.destination.is_file)
        if self.file_arrival is not None or self.schedule is not None:
            raise ValueError("a partitioned pipeline loads per partition: backfill it (`etl backfill`), not by a trigger")
        if any(getattr(step, "deduplicate", None) and step.deduplicate.against_target for step in self.transforms):
            # It would match the other partitions' rows, and a re-loaded slice against the rows it replaces.
            raise ValueError("deduplicate `against_target` reads the whole target: it cannot be used in a partitioned pipeline")

    def for_partition(self, key: str) -> PipelineSpec:
        """The spec of one partition's load: its state key is `<id>@<key>` (its own checkpoint, file
        records and load history), its path names the slice, and the slice is what it publishes."""
        if self.partitions is None:
            raise ValueError(f"pipeline {self.id!r} has no partitions; drop the partition key")
        piece = self.partitions.slice(key)
        update: dict = {"id": state_key(self.id, key)}
        path = getattr(self.source, "path", None)
        if path is not None:
            update["source"] = self.source.model_copy(update={"path": piece.path(path)})
        if self.tenancy is not None and self.tenancy.partition_key:  # the partition's key is its load's tenant
            update["tenant"] = self.tenancy.model_copy(update={"value": key})
        sliced = self.model_copy(update=update)
        sliced._file, sliced._slice = self._file, piece
        return sliced

    @property
    def partition(self) -> PartitionSlice | None:
        """The slice this spec loads (`for_partition`), or None for a whole pipeline."""
        return self._slice

    @property
    def file_arrival(self) -> FileArrival | None:
        return next((t.file_arrival for t in self.triggers if isinstance(t, FileArrivalTrigger)), None)

    @property
    def file_path(self) -> str | None:
        """The path or URL glob a file source reads: `source.path`, or the trigger's location."""
        path = getattr(self.source, "path", None)
        if path is None and self.file_arrival is not None:
            return self.file_arrival.location()
        return path

    @property
    def streaming_transforms(self) -> list:
        """The row-by-row transforms, applied chunk by chunk."""
        return [t for t in self.transforms if single_key(t) not in WHOLE_LOAD_STEPS]

    @property
    def whole_load_transforms(self) -> list:
        """The steps after them that see every row of the load at once (validated to come last)."""
        return self.transforms[len(self.streaming_transforms) :]

    @property
    def anomaly_detection(self) -> DetectAnomaliesSpec | None:
        return next((t.detect_anomalies for t in self.transforms if isinstance(t, DetectAnomaliesStep)), None)

    @property
    def webhook_datasets(self) -> list[str]:
        return [t.webhook.dataset for t in self.triggers if isinstance(t, WebhookTrigger)]

    @property
    def incremental_files(self) -> bool:
        """File sources of append and merge pipelines read only files not processed before; replace reads all."""
        return self.file_path is not None and self.destination.write != "replace"

    @property
    def file(self) -> Path | None:
        """The YAML file this pipeline was loaded from, or None for a Python declaration."""
        return self._file

    @property
    def origin(self) -> str:
        """Where the pipeline was declared, for error messages."""
        return str(self._file) if self._file else f"pipeline {self.id!r} (declared in Python)"
