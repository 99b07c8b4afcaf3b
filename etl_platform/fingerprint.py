"""Content fingerprints: the load ledger's way of knowing it has seen an input before."""

from __future__ import annotations

import hashlib


class ContentHash:
    """Incremental fingerprint of content: file bytes or serialized batches."""

    def __init__(self) -> None:
        self._hash = hashlib.blake2b(digest_size=20)

    def update(self, data: bytes | memoryview) -> None:
        self._hash.update(data)

    def hexdigest(self) -> str:
        return self._hash.hexdigest()
