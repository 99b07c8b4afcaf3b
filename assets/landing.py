"""The landing zone in the graph: each file pipeline's input (a folder or an S3 prefix) as an external asset.

Nothing in Dagster materializes these: files arrive from outside. The asset sits upstream of its
pipeline, so the UI shows sources -> pipelines -> marts, and the file-arrival sensor records what
it sees there as observations of it (the last file seen, the backlog and its lag; see
sensors.file_arrival). Its updates do not start the pipeline: the sensor does, with the files.
"""

from __future__ import annotations

from dagster import AssetKey, AssetSpec

from etl_platform.spec import PipelineRegistry, PipelineSpec

# Observation metadata of a landing asset (the file-arrival sensor records them; the UI plots the numbers).
LAST_FILE, LAST_FILE_MODIFIED = "etl/last_seen_file", "etl/last_seen_file_modified"
UNPROCESSED, LAG_SECONDS = "etl/unprocessed_files", "etl/oldest_unprocessed_file_seconds"


def landing_key(spec: PipelineSpec) -> AssetKey | None:
    """The key of `spec`'s input files, for a pipeline that reads files."""
    return AssetKey(["landing", spec.id]) if spec.file_path is not None else None


def landing_assets(registry: PipelineRegistry) -> list[AssetSpec]:
    """One external asset per file pipeline: where its files arrive."""
    return [
        AssetSpec(
            key,
            group_name=spec.group,
            kinds={"files"},
            description=f"Input files of pipeline {spec.id}: {spec.file_path}"
            + (" (relative to the landing zone, ETL_LANDING_DIR)" if "://" not in spec.file_path else ""),
            metadata={"location": spec.file_path, "pipeline": spec.id},
        )
        for spec in registry
        if (key := landing_key(spec)) is not None
    ]
