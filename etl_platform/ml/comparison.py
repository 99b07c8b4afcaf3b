"""Field values per distinct value, and similarities over candidate pairs, vectorised.

Names, cities and dates repeat: each field is dictionary-encoded once, its distinct values
normalized (and embedded, where the field is compared by meaning) once, and every pair reads them
through integer indexes. Character similarity (Jaro-Winkler) is computed by DuckDB over the
distinct value pairs in one SQL statement, never by a Python loop per pair.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from etl_platform.ml.embeddings import Embedder
from etl_platform.ml.text import normalized
from etl_platform.tables import sandboxed_duckdb


@dataclass
class FieldValues:
    """One field: its distinct normalized values, each row's index into them (-1: null), their vectors."""

    name: str
    texts: list[str]
    index: np.ndarray
    vectors: np.ndarray | None = None


def field_values(column: pa.ChunkedArray, name: str) -> FieldValues:
    """Dictionary-encode the column, normalize each distinct raw value once, re-index by normalized text."""
    encoded = pc.dictionary_encode(column.cast(pa.string()) if not pa.types.is_string(column.type) else column).combine_chunks()
    raw = encoded.dictionary.to_pylist()
    distinct: dict[str, int] = {}
    remap = np.array([-1 if (t := normalized(v)) is None else distinct.setdefault(t, len(distinct)) for v in raw] + [-1])
    codes = encoded.indices.fill_null(len(raw)).to_numpy(zero_copy_only=False).astype(np.int64)
    return FieldValues(name, list(distinct), remap[codes])


def embed(values: FieldValues, embedder: Embedder) -> None:
    if values.vectors is None:
        values.vectors = embedder.embed(values.texts)


def jaro_winkler(left: list[str], right: list[str]) -> np.ndarray:
    """Jaro-Winkler similarity of left[i] and right[i], by DuckDB (parallel, in C++)."""
    if not left:
        return np.zeros(0)
    connection = _connection()
    connection.register("pairs", pa.table({"l": left, "r": right}))
    try:
        result = connection.sql("SELECT jaro_winkler_similarity(l, r) AS s FROM pairs").to_arrow_table()
    finally:
        connection.unregister("pairs")
    return result["s"].to_numpy()


_local = threading.local()


def _connection() -> duckdb.DuckDBPyConnection:
    """One sandboxed DuckDB per thread: opening one costs more than comparing a small block."""
    if getattr(_local, "connection", None) is None:
        _local.connection = sandboxed_duckdb()
    return _local.connection


def similarity(x: FieldValues, a: np.ndarray, y: FieldValues, b: np.ndarray, compare: str) -> np.ndarray:
    """Rows a of field x against rows b of field y: cosine, Jaro-Winkler or the larger; 1 if equal; NaN if a null."""
    ia, ib = x.index[a], y.index[b]
    both = (ia >= 0) & (ib >= 0)
    result = np.full(len(a), np.nan, np.float32)  # float32: a similarity needs no more, and a batch holds several
    width = max(len(y.texts), 1)
    codes, inverse = np.unique(ia[both] * width + ib[both], return_inverse=True)  # each distinct value pair once
    left, right = codes // width, codes % width
    texts_x, texts_y = np.array(x.texts, dtype=object), np.array(y.texts, dtype=object)
    sim = np.zeros(len(codes), np.float32)
    if compare != "embedding":
        sim = jaro_winkler(texts_x[left].tolist(), texts_y[right].tolist()).astype(np.float32)
    if compare != "characters":
        sim = np.maximum(sim, np.einsum("ij,ij->i", x.vectors[left], y.vectors[right]))
    # only equal texts are exact
    sim = np.where(texts_x[left] == texts_y[right], np.float32(1), np.minimum(sim, np.float32(0.9999)))
    result[both] = sim[inverse.ravel()]
    return result


def levels(sims: np.ndarray, bounds: tuple[float, float]) -> np.ndarray:
    """Comparison level of each similarity: 3 exact, 2 >= high, 1 >= mid, 0 below, -1 missing."""
    high, mid = bounds
    out = np.where(sims >= 1.0, 3, np.where(sims >= high, 2, np.where(sims >= mid, 1, 0)))
    return np.where(np.isnan(sims), -1, out).astype(np.int8)
