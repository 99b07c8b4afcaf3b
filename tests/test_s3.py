"""S3 as source and destination, over real HTTP to moto's server (no patched client)."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from etl_platform.engine.environment import Environment
from etl_platform.engine.options import RunOptions
from etl_platform.engine.runner import run_pipeline
from etl_platform.errors import SourceError
from etl_platform.stores.s3 import s3_client
from tests.conftest import moto_server, pipeline, rows

CASTS = [{"cast": {"id": "int", "amount": "float"}}]


def put(bucket: str, key: str, body: bytes | str) -> None:
    s3_client().put_object(Bucket=bucket, Key=key, Body=body.encode() if isinstance(body, str) else body)


def keys(bucket: str, prefix: str = "") -> list[str]:
    pages = s3_client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


def s3_environment(url: str, bucket: str) -> Environment:
    """The landing zone and lake in `bucket`; its `feeds/` prefix is an allowed root besides the landing zone."""
    return Environment.at(url, f"s3://{bucket}/landing", f"s3://{bucket}/lake", allowed_roots=(f"s3://{bucket}/feeds",))


def test_csv_jsonl_and_parquet_objects_by_prefix_and_pattern(duckdb_url: str, s3_bucket: str, tmp_path: Path) -> None:
    put(s3_bucket, "landing/orders/2026-11-01.csv", "id,amount\n1,10\n2,20\n")
    put(s3_bucket, "landing/orders/2026-11-02.csv.gz", gzip.compress(b"id,amount\n3,30\n"))
    put(s3_bucket, "landing/orders/notes.txt", "not data")
    put(s3_bucket, "landing/orders/archive/2026-10-01.csv", "id,amount\n99,1\n")
    environment = s3_environment(duckdb_url, s3_bucket)
    report = run_pipeline(
        pipeline(source={"type": "csv", "path": "orders/*.csv*"}, transforms=CASTS, destination={"dataset": "s3.orders"}),
        environment,
    )
    assert report.source_files == [
        f"s3://{s3_bucket}/landing/orders/2026-11-01.csv",
        f"s3://{s3_bucket}/landing/orders/2026-11-02.csv.gz",
    ]
    assert rows(duckdb_url, "SELECT id FROM s3.orders ORDER BY id") == [{"id": 1}, {"id": 2}, {"id": 3}]

    put(s3_bucket, "feeds/events.jsonl", '{"id": "5", "amount": "1.5"}\n{"id": "6", "amount": "2.5"}\n')
    absolute = pipeline(
        id="events",
        source={"type": "jsonl", "path": f"s3://{s3_bucket}/feeds/*.jsonl"},
        transforms=CASTS,
        destination={"dataset": "s3.events"},
    )
    assert run_pipeline(absolute, environment).rows_published == 2

    buffer = io.BytesIO()
    pq.write_table(pa.table({"id": [7, 8], "amount": [1.0, 2.0]}), buffer)
    put(s3_bucket, "landing/parquet/part-1.parquet", buffer.getvalue())
    parquet = pipeline(id="pq", source={"type": "parquet", "path": "parquet/**/*.parquet"}, destination={"dataset": "s3.pq"})
    assert run_pipeline(parquet, environment).rows_published == 2
    assert rows(duckdb_url, "SELECT sum(id) AS s FROM s3.pq") == [{"s": 15}]


def test_file_destinations_on_s3_with_compression_and_partitions(duckdb_url: str, s3_bucket: str, tmp_path: Path) -> None:
    put(s3_bucket, "landing/input.csv", "id,amount,dt\n1,10,2026-11-01\n2,20,2026-11-02\n3,30,2026-11-02\n")
    environment = s3_environment(duckdb_url, s3_bucket)
    for fmt, compression in (("parquet", "zstd"), ("csv", "gzip"), ("jsonl", "bz2")):
        destination = {
            "dataset": f"lake.{fmt}",
            "format": fmt,
            "compression": compression,
            "partition_by": ["dt"],
            "write": "replace",
        }
        report = run_pipeline(pipeline(id=f"to_{fmt}", transforms=CASTS, destination=destination), environment)
        assert report.rows_published == 3
        published = keys(s3_bucket, f"lake/lake/{fmt}/")
        assert [k.split("/")[3] for k in published if not k.endswith("_manifest.json")] == ["dt=2026-11-01", "dt=2026-11-02"]
        manifest = json.loads(s3_client().get_object(Bucket=s3_bucket, Key=f"lake/lake/{fmt}/_manifest.json")["Body"].read())
        assert sorted(manifest["parts"]) == sorted(k.removeprefix(f"lake/lake/{fmt}/") for k in published if "part-" in k)
    body = s3_client().get_object(Bucket=s3_bucket, Key=next(k for k in keys(s3_bucket, "lake/lake/csv/dt=2026-11-02/")))["Body"]
    assert gzip.decompress(body.read()).decode().splitlines() == ['"id","amount"', "2,20", "3,30"]
    # Replacing again leaves only the new parts, named in the new manifest.
    before = keys(s3_bucket, "lake/lake/parquet/")
    run_pipeline(
        pipeline(
            id="to_parquet",
            transforms=CASTS,
            destination={"dataset": "lake.parquet", "format": "parquet", "partition_by": ["dt"], "write": "replace"},
        ),
        environment,
        RunOptions(full_refresh=True),
    )
    after = keys(s3_bucket, "lake/lake/parquet/")
    assert len(after) == len(before) and set(after) & set(before) == {"lake/lake/parquet/_manifest.json"}


def test_missing_bucket_and_wrong_credentials_name_the_fix(duckdb_url: str, s3_bucket: str, tmp_path: Path) -> None:
    environment = Environment.at(duckdb_url, f"s3://no-such-bucket-{s3_bucket}/landing", tmp_path / "lake")
    with pytest.raises(SourceError, match=r"the bucket does not exist; create it or fix the bucket name \(NoSuchBucket"):
        run_pipeline(pipeline(source={"type": "csv", "path": "*.csv"}), environment)
    # A second moto server that checks credentials (IAM on from the first request): ours are unknown to it.
    with moto_server(INITIAL_NO_AUTH_ACTION_COUNT="0") as strict:
        environment = Environment.at(duckdb_url, f"s3://{s3_bucket}/landing", tmp_path / "lake", lambda: s3_client(strict))
        with pytest.raises(
            SourceError, match=r"listing s3://.*: the access key is not known to the endpoint; check AWS_ACCESS_KEY_ID"
        ):
            run_pipeline(pipeline(source={"type": "csv", "path": "*.csv"}), environment)
