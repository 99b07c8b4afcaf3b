"""Which request follows a page, and the guards that keep a paginator from looping or stopping early.

A paginator turns (the request just made, its response, its records) into the next request, or
None when the pages end: an empty page, no next link or cursor, or the total reached. The guards
fail the run naming the page: more than `max_pages`, a next link or cursor seen before, or a
page whose body is byte for byte one already read (a server that ignores the page parameter).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import requests

from etl_platform.errors import SourceError
from etl_platform.sources.rest.selector import first
from etl_platform.spec.rest import (
    CursorPaginator,
    HeaderLinkPaginator,
    JsonLinkPaginator,
    OffsetPaginator,
    PageNumberPaginator,
    SinglePage,
)


class EndlessPagination(SourceError):
    """A paginator that would loop or never end."""


@dataclass(frozen=True)
class PageRequest:
    url: str
    params: dict[str, Any]


def first_request(paginator: Any, url: str, params: dict[str, Any]) -> PageRequest:
    """The first page's request: offset and page number start at their first value."""
    if isinstance(paginator, OffsetPaginator):
        params = {**params, paginator.offset_param: paginator.offset, paginator.limit_param: paginator.limit}
    elif isinstance(paginator, PageNumberPaginator):
        params = {**params, paginator.page_param: paginator.base_page}
    return PageRequest(url, params)


def next_request(paginator: Any, request: PageRequest, response: requests.Response, body: Any, count: int) -> PageRequest | None:
    """The request after this page, or None when the pages end."""
    if isinstance(paginator, SinglePage):
        return None
    if isinstance(paginator, JsonLinkPaginator):
        link = first(body, paginator.next_url_path)
        return PageRequest(requests.compat.urljoin(request.url, link), {}) if link else None
    if isinstance(paginator, HeaderLinkPaginator):
        link = response.links.get(paginator.rel, {}).get("url")
        return PageRequest(requests.compat.urljoin(request.url, link), {}) if link else None
    if isinstance(paginator, CursorPaginator):
        cursor = first(body, paginator.cursor_path)
        return PageRequest(request.url, {**request.params, paginator.cursor_param: cursor}) if cursor not in (None, "") else None
    if count == 0:
        return None
    if isinstance(paginator, OffsetPaginator):
        offset = request.params[paginator.offset_param] + paginator.limit
        total = first(body, paginator.total_path) if paginator.total_path else None
        if total is not None and offset >= int(total):
            return None
        return PageRequest(request.url, {**request.params, paginator.offset_param: offset})
    page = request.params[paginator.page_param] + 1
    pages = first(body, paginator.total_path) if paginator.total_path else None
    if pages is not None and page >= int(pages) + paginator.base_page:
        return None
    return PageRequest(request.url, {**request.params, paginator.page_param: page})


@dataclass
class LoopGuard:
    """Fails on the page that would make the pagination endless."""

    where: str
    max_pages: int
    requests_seen: set[tuple] = field(default_factory=set)
    bodies_seen: dict[str, int] = field(default_factory=dict)

    def check_request(self, number: int, request: PageRequest) -> None:
        if number > self.max_pages:
            raise EndlessPagination(
                f"{self.where}: page {number} is past max_pages {self.max_pages}; raise max_pages if the API really has "
                "more pages, or check the paginator"
            )
        key = (request.url, tuple(sorted((k, str(v)) for k, v in request.params.items())))
        if key in self.requests_seen:
            raise EndlessPagination(f"{self.where}: page {number} repeats an earlier request (same next link or cursor)")
        self.requests_seen.add(key)

    def check_body(self, number: int, content: bytes, count: int) -> None:
        if count == 0:
            return
        digest = hashlib.blake2b(content, digest_size=16).hexdigest()
        if digest in self.bodies_seen:
            raise EndlessPagination(
                f"{self.where}: page {number} is the same as page {self.bodies_seen[digest]} (the server ignores the "
                "paginator's parameter?)"
            )
        self.bodies_seen[digest] = number
