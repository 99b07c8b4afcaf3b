"""Content fingerprints: the load ledger's way of knowing it has seen an input before."""

from __future__ import annotations

import hashlib
from typing import Any, BinaryIO


class ContentHash:
    """Incremental fingerprint of content: file bytes or serialized batches."""

    def __init__(self) -> None:
        self._hash = hashlib.blake2b(digest_size=20)

    def update(self, data: bytes | memoryview) -> None:
        self._hash.update(data)

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def hash_prefix(handle: BinaryIO, length: int, digest: ContentHash | Any | None = None) -> str:
    """The hex digest of the first `length` bytes read from `handle` (blake2b, or the `digest` given)."""
    digest = digest if digest is not None else ContentHash()
    while length > 0 and (block := handle.read(min(length, 1 << 20))):
        digest.update(block)
        length -= len(block)
    return digest.hexdigest()
