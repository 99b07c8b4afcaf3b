"""Text normalization and blocking keys shared by deduplication and value normalization."""

from __future__ import annotations

import re
import unicodedata

import jellyfish

_SPACES = re.compile(r"\s+")


def normalized(value: object) -> str | None:
    """Lower case, no accents, single spaces; None and blank stay None."""
    if value is None:
        return None
    text = unicodedata.normalize("NFKD", str(value))
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = _SPACES.sub(" ", text).strip().lower()
    return text or None


def blocking_key(value: object, method: str, length: int) -> str | None:
    """The block a value falls in: itself, its first `length` characters, or its Soundex code."""
    text = normalized(value)
    if text is None:
        return None
    if method == "prefix":
        return text[:length]
    if method == "soundex":
        letters = "".join(c for c in text if c.isalpha())
        return jellyfish.soundex(letters) if letters else None
    return text
