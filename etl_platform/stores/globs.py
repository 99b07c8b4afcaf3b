"""Source paths as globs: the literal folder part before the first wildcard, and the pattern after it."""

from __future__ import annotations

import re

WILDCARD = re.compile(r"[*?\[]")


def split_glob(path: str) -> tuple[str, str]:
    """(prefix, pattern): the folder part before the first wildcard, and the rest."""
    wildcard = WILDCARD.search(path)
    if wildcard is None:
        return path, ""
    cut = path.rfind("/", 0, wildcard.start()) + 1
    return path[:cut], path[cut:]
