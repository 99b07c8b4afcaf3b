"""An S3 bucket prefix as a file store (any S3 API: AWS, MinIO, moto), through a boto3 client.

The client comes from the caller (dagster-aws's S3Resource in Dagster, or `s3_client()` from the
environment), so the endpoint, region and credentials are configured in one place. botocore's
standard retry mode retries throttling and 5xx answers with backoff and jitter; the endpoint's
circuit breaker stops a run from waiting on an S3 that is down.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import boto3
import botocore.config
import botocore.exceptions
import orjson

from etl_platform.breaker import BreakerBoard, SystemUnavailable
from etl_platform.errors import SourceError
from etl_platform.fingerprint import hash_prefix
from etl_platform.stores.base import FileStore, StoredFile

T = TypeVar("T")

SINGLE_GET_BYTES = 8 << 20
# Written last by every publish: the parts that make up the dataset now.
MANIFEST = "_manifest.json"

RETRY_CONFIG = botocore.config.Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=60)

_PERMANENT_HINTS = {
    "NoSuchBucket": "the bucket does not exist; create it or fix the bucket name",
    "AccessDenied": "access denied; give the credentials s3:GetObject/PutObject/ListBucket on it",
    "InvalidAccessKeyId": "the access key is not known to the endpoint; check AWS_ACCESS_KEY_ID",
    "SignatureDoesNotMatch": "the secret key is wrong; check AWS_SECRET_ACCESS_KEY",
    "NoSuchKey": "the object does not exist (moved or deleted meanwhile)",
    "404": "the object does not exist (moved or deleted meanwhile)",
}


def s3_client(endpoint_url: str | None = None) -> Any:
    """A boto3 S3 client from the environment (AWS_* variables; the endpoint from AWS_ENDPOINT_URL_S3)."""
    return boto3.session.Session().client("s3", endpoint_url=endpoint_url, config=RETRY_CONFIG)


def is_transient(exc: BaseException) -> bool:
    """Network trouble and server-side errors are worth retrying; an answer about our request is not."""
    if isinstance(exc, botocore.exceptions.ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        return status >= 500 or exc.response.get("Error", {}).get("Code") in ("SlowDown", "Throttling", "RequestTimeout")
    return isinstance(exc, botocore.exceptions.BotoCoreError | ConnectionError | TimeoutError)


class S3Store(FileStore):
    def __init__(self, bucket: str, root: str, client: Any, breakers: BreakerBoard):
        self.bucket = bucket
        self.breakers = breakers
        self.root = root.strip("/") + "/" if root.strip("/") else ""
        self.client = client
        self.url = f"s3://{bucket}/{self.root}"
        self.system = f"S3 at {client.meta.endpoint_url}"

    def _call(self, what: str, action: Callable[[], T]) -> T:
        """One S3 request through the endpoint's breaker, with errors that say what to fix."""
        try:
            return self.breakers.guarded(self.system, action, is_transient)
        except botocore.exceptions.ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if is_transient(exc):  # still throttled or failing after botocore's retries: an outage, not the data
                raise SystemUnavailable(f"{what}: {self.system} keeps answering {code}; try again later") from None
            hint = _PERMANENT_HINTS.get(code, exc.response.get("Error", {}).get("Message", code))
            raise SourceError(f"{what}: {hint} ({code} from {self.system})") from None
        except (botocore.exceptions.BotoCoreError, ConnectionError, TimeoutError) as exc:
            raise SystemUnavailable(f"{what}: cannot reach {self.system}: {exc}; check the endpoint and that S3 is up") from None

    def _stored(self, key: str, size: int, etag: str, modified: Any) -> StoredFile:
        relative = key[len(self.root) :]
        return StoredFile(relative, size, etag.strip('"'), modified, f"s3://{self.bucket}/{key}")

    def list(self, prefix: str) -> Iterator[StoredFile]:
        """All objects under the prefix, page by page (1,000 keys a page)."""
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.root + prefix)
        iterator = iter(pages)
        while True:
            page = self._call(f"listing {self.url}{prefix}", lambda: next(iterator, None))
            if page is None:
                return
            for item in page.get("Contents", []):
                if not item["Key"].endswith("/"):
                    yield self._stored(item["Key"], item["Size"], item["ETag"], item["LastModified"])

    @contextmanager
    def local_copy(self, file: StoredFile) -> Iterator[Path]:
        """Download to a temporary file (multipart, in parallel), removed when the context closes."""
        handle, name = tempfile.mkstemp(prefix="etl-s3-", suffix="-" + Path(file.key).name)
        os.close(handle)
        try:
            if file.size <= SINGLE_GET_BYTES:  # one request: a managed transfer's thread pool costs more than it saves
                body = self._call(
                    f"reading {file.url}", lambda: self.client.get_object(Bucket=self.bucket, Key=self.root + file.key)
                )
                Path(name).write_bytes(self._call(f"reading {file.url}", body["Body"].read))
            else:
                self._call(f"reading {file.url}", lambda: self.client.download_file(self.bucket, self.root + file.key, name))
            yield Path(name)
        finally:
            Path(name).unlink(missing_ok=True)

    def upload(self, local: Path, key: str) -> None:
        self._call(f"writing {self.file_url(key)}", lambda: self.client.upload_file(str(local), self.bucket, self.root + key))

    def put_bytes(self, key: str, data: bytes) -> None:
        self._call(
            f"writing {self.file_url(key)}", lambda: self.client.put_object(Bucket=self.bucket, Key=self.root + key, Body=data)
        )

    def move(self, key: str, to_key: str) -> None:
        """Copy, then delete: S3 has no rename."""
        source = {"Bucket": self.bucket, "Key": self.root + key}
        self._call(f"copying {self.file_url(key)}", lambda: self.client.copy(source, self.bucket, self.root + to_key))
        self.delete([key])

    def delete(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):
            objects = [{"Key": self.root + k} for k in keys[start : start + 1000]]
            answer = self._call(
                f"deleting from {self.url}",
                lambda objects=objects: self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": objects, "Quiet": True}
                ),
            )
            if answer.get("Errors"):
                first = answer["Errors"][0]
                raise SourceError(
                    f"deleting from {self.url}: {len(answer['Errors'])} object(s) were not deleted, e.g. "
                    f"{first.get('Key')}: {first.get('Code')} {first.get('Message')}; check s3:DeleteObject permission"
                )

    def staging_folder(self, prefix: str, run_tag: str, run_is_live: Callable[[str], bool]) -> Path:
        """A temporary folder of this process: no other run shares it."""
        return Path(tempfile.mkdtemp(prefix=f"etl-s3-staging-{run_tag}-"))

    def _manifest_parts(self, manifest_key: str, prefix: str) -> list[str] | None:
        """The keys the dataset's manifest names now, or None before its first publish."""
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self.root + manifest_key)["Body"].read()
        except botocore.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
                return None
            raise
        return [prefix + part for part in orjson.loads(body)["parts"]]

    def publish_folder(self, staging: Path, prefix: str, replace: bool, rename: Callable[[str], str]) -> None:
        """Upload the parts, then write the manifest in one PUT, then (replace) delete every other part.

        S3 has no rename, so a prefix listing may see old and new parts together for a moment;
        `_manifest.json`, written last, always names one complete version of the dataset. An append
        adds to the parts the manifest names (not to whatever a listing finds, such as parts a
        killed publish left behind); a replace deletes everything else under the prefix.
        """
        prefix = prefix.rstrip("/") + "/"
        manifest_key = prefix + MANIFEST
        named = self._call(f"reading {self.file_url(manifest_key)}", lambda: self._manifest_parts(manifest_key, prefix))
        if named is None:  # first publish, or a dataset written before manifests: what is there counts
            named = [f.key for f in self.list(prefix) if f.key != manifest_key]
        published = []
        try:
            for part in sorted(p for p in staging.rglob("*") if p.is_file()):
                key = prefix + rename(part.relative_to(staging).as_posix())
                self.upload(part, key)
                published.append(key)
            current = published if replace else sorted(set(named) | set(published))
            manifest = {
                "parts": [k[len(prefix) :] for k in current],
                "published_at": datetime.datetime.now(datetime.UTC).isoformat(),
            }
            self.put_bytes(manifest_key, orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
        except BaseException:
            self.delete([k for k in published if k not in set(named)])  # the manifest still names the previous parts
            raise
        else:
            if replace:
                keep = {*published, manifest_key}
                self.delete([f.key for f in self.list(prefix) if f.key not in keep])
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def content_fingerprint(self, file: StoredFile) -> str:
        """The ETag: S3's own checksum of the object's content, so nothing is downloaded to know it."""
        return file.version

    def prefix_matches(self, local: Path, length: int, fingerprint: str) -> bool:
        """A single-part upload's ETag is the MD5 of its bytes; a multipart ETag names no prefix."""
        if "-" in fingerprint or len(fingerprint) != 32:
            return False
        with local.open("rb") as handle:
            return hash_prefix(handle, length, hashlib.md5(usedforsecurity=False)) == fingerprint
