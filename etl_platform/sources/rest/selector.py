"""Records out of a page's JSON body, by the resource's JSONPath."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from jsonpath_ng.exceptions import JsonPathParserError
from jsonpath_ng.ext import parse

from etl_platform.errors import SourceError


@lru_cache(maxsize=64)
def compiled(path: str) -> Any:
    try:
        return parse(path)
    except (JsonPathParserError, Exception) as exc:
        raise SourceError(f"{path!r} is not a JSONPath: {exc}") from None


def first(body: Any, path: str) -> Any:
    """The first value at `path`, or None."""
    matches = compiled(path).find(body)
    return matches[0].value if matches else None


class UnexpectedBody(SourceError):
    """A page whose body does not hold records where the selector looks."""


def select_records(body: Any, path: str) -> list[dict]:
    """The records at `path`: one list of objects, or each match an object; anything else is an error."""
    matches = [m.value for m in compiled(path).find(body)]
    if not matches:
        raise UnexpectedBody(f"the records selector {path!r} matches nothing")
    if len(matches) == 1 and isinstance(matches[0], list):
        matches = matches[0]
    bad = next((m for m in matches if not isinstance(m, dict)), None)
    if bad is not None:
        raise UnexpectedBody(f"the records selector {path!r} gives a {type(bad).__name__}, not an object per record")
    return matches
