"""The REST API source on the checkpoint protocol (docs/architecture.md, "Source checkpoints").

Parents are read whole on every run; for each parent (or once, without one) the resource's pages
are read from that parent's saved cursor, so a child of a parent that did not change is still
read, and one parent's cursor never skips another's records. Records become text columns as JSON
files do (sources.json); each row's provenance is its page (kept in the lake) and its index there.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import orjson
import pyarrow as pa

from etl_platform.breaker import BreakerBoard
from etl_platform.errors import SourceError
from etl_platform.fingerprint import ContentHash
from etl_platform.sources.base import SOURCE_FILE, SourceChunk
from etl_platform.sources.json import records_to_table
from etl_platform.sources.rest.client import HttpClient
from etl_platform.sources.rest.cursors import NO_PARENT, RestCursors, later, less_lookback, ordered, saved_cursors
from etl_platform.sources.rest.pages import PageKeeper
from etl_platform.sources.rest.pagination import LoopGuard, PageRequest, first_request, next_request
from etl_platform.sources.rest.selector import UnexpectedBody, first, select_records
from etl_platform.spec.rest import PLACEHOLDER, ResourceBase, RestSourceSpec

SAMPLE = 200


def _filled(text: str, parent: dict | None) -> str:
    """`text` with each `{parent.FIELD}` replaced; a field the parent record lacks is an error, never an empty string."""
    if parent is None:
        return text

    def value(match) -> str:
        if parent.get(match[1]) is None:
            raise SourceError(f"{text!r} uses {{parent.{match[1]}}}, but a parent record has no {match[1]!r}: {parent}")
        return str(parent[match[1]])

    return PLACEHOLDER.sub(value, text)


def _loaded(record: dict, saved: dict) -> bool:
    """Whether an earlier run loaded this record: below the saved cursor, or at it and among its boundary hashes."""
    value, mark = ordered(record["value"]), ordered(saved["value"])
    if type(value) is not type(mark):
        value, mark = str(value), str(mark)
    return value < mark or (value == mark and record["boundary"][0] in saved["boundary"])


class RestApiSource:
    """Records of one resource (per parent, if it has one), read from the saved cursors."""

    def __init__(
        self,
        spec: RestSourceSpec,
        saved: object,
        secrets: Mapping[str, str],
        breakers: BreakerBoard,
        pages: PageKeeper,
        reset: bool = False,
    ):
        self.spec = spec
        self.http = HttpClient(spec.client, secrets, breakers)
        self.pages = pages
        self.reset = reset
        incremental = spec.resource.incremental
        self.saved = saved_cursors(saved, incremental.cursor_path) if incremental and not reset else {}
        self.seen: dict[str, dict] = {}
        self._hash = ContentHash()

    def describe(self) -> list[str]:
        parent = f" for each {self.spec.resource.parent.path}" if self.spec.resource.parent else ""
        return [self.http.redact(f"REST {self.http.url(self.spec.resource.path)}{parent}")]

    def total_bytes(self) -> None:
        return None

    def fingerprint(self) -> str:
        return self._hash.hexdigest()

    def checkpoint(self) -> RestCursors | None:
        incremental = self.spec.resource.incremental
        if incremental is None or (not self.seen and not self.reset):
            return None
        return RestCursors(incremental.cursor_path, self.seen, self.reset)

    def acknowledge(self, checkpoint: RestCursors) -> None:
        """The API keeps its records: nothing to tell it."""

    def read(self, chunk_rows: int) -> Iterator[SourceChunk]:
        rows: list[dict] = []
        provenance: list[tuple[str, int]] = []
        try:
            for parent in self._parents():
                for page_name, records in self._child_pages(parent):
                    for index, record in enumerate(records, start=1):
                        rows.append(record)
                        provenance.append((page_name, index))
                    if len(rows) >= chunk_rows:
                        yield self._chunk(rows, provenance)
                        rows, provenance = [], []
            if rows:
                yield self._chunk(rows, provenance)
        finally:
            self.http.close()

    def _chunk(self, rows: list[dict], provenance: list[tuple[str, int]]) -> SourceChunk:
        table = records_to_table(rows, "", [line for _, line in provenance])
        files = pa.array([name for name, _ in provenance], pa.string()).dictionary_encode()
        table = table.set_column(table.schema.get_field_index(SOURCE_FILE), SOURCE_FILE, files)
        return SourceChunk(table)

    def _parents(self) -> Iterator[dict | None]:
        parent = self.spec.resource.parent
        if parent is None:
            yield None
            return
        for _, records in self._pages(parent, None, "parent", NO_PARENT, {}):
            for record in records:
                if parent.key not in record:
                    raise SourceError(f"{self.describe()[0]}: a parent record has no key field {parent.key!r}: {record}")
                yield record

    def _child_pages(self, parent: dict | None) -> Iterator[tuple[str, list[dict]]]:
        resource, incremental = self.spec.resource, self.spec.resource.incremental
        key = NO_PARENT if parent is None else str(parent[resource.parent.key])
        extra: dict[str, Any] = {}
        saved = self.saved.get(key)
        if incremental is not None:
            start = less_lookback(saved["value"], incremental.lookback) if saved else incremental.initial_value
            if incremental.start_param:
                extra[incremental.start_param] = start
            if incremental.end_param:
                extra[incremental.end_param] = incremental.end_value
        copied = {} if parent is None else {f"parent_{f}": parent.get(f) for f in {resource.parent.key, *resource.parent.fields}}
        for page_name, records in self._pages(resource, parent, "resource", key, extra):
            if incremental is not None:
                records = self._new_records(records, key, saved)
            yield page_name, [{**record, **copied} for record in records]

    def _new_records(self, records: list[dict], key: str, saved: dict | None) -> list[dict]:
        """Records past the saved cursor (with a look-back: every record), tracking the new cursor of `key`."""
        incremental = self.spec.resource.incremental
        kept = []
        for record in records:
            value = first(record, incremental.cursor_path)
            if value is None:
                raise SourceError(f"{self.describe()[0]}: a record has no cursor {incremental.cursor_path!r}: {record}")
            digest = ContentHash()
            digest.update(orjson.dumps(record, option=orjson.OPT_SORT_KEYS))
            this = {"value": value, "boundary": [digest.hexdigest()]}
            if saved and not incremental.lookback and _loaded(this, saved):
                continue
            self.seen[key] = later(self.seen.get(key), this)
            kept.append(record)
        return kept

    def _pages(
        self, resource: ResourceBase, parent: dict | None, role: str, key: str, extra: dict
    ) -> Iterator[tuple[str, list[dict]]]:
        """(page name, records) of every page of `resource`, guarded against endless pagination."""
        paginator = self.spec.paginator_of(resource)
        params = {name: _filled(str(v), parent) if isinstance(v, str) else v for name, v in resource.params.items()}
        request: PageRequest | None = first_request(paginator, self.http.url(_filled(resource.path, parent)), params | extra)
        where = self.http.redact(f"{self.http.url(_filled(resource.path, parent))}")
        guard = LoopGuard(where, resource.max_pages)
        number = 0
        while request is not None:
            number += 1
            guard.check_request(number, request)
            response = self.http.get(request.url, request.params)
            body = self._json(response, number)
            try:
                records = select_records(body, resource.records)
            except UnexpectedBody as exc:
                sample = self.http.redact(response.text[:SAMPLE])
                raise UnexpectedBody(f"{self.http.redact(response.url)} (page {number}): {exc}; body: {sample!r}") from None
            guard.check_body(number, response.content, len(records))
            if role == "resource":
                self._hash.update(response.content)
            name = self.pages.keep(self.pages.name(role, key, number), response.content)
            yield name, records
            request = next_request(paginator, request, response, body, len(records))

    def _json(self, response: Any, number: int) -> Any:
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError:
            sample = self.http.redact(response.text[:SAMPLE])
            raise UnexpectedBody(f"{self.http.redact(response.url)} (page {number}): the body is not JSON: {sample!r}") from None
