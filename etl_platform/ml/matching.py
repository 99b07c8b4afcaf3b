"""Match messy values to a reference list: by embedding and character similarity, or by an LLM.

Both providers answer the same question (which reference item is this value, and how sure), and
both answers are checked the same way: a match below the threshold, or an LLM answer that is not
an item of the list, is a miss. A miss is never replaced.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Protocol

import jellyfish
import numpy as np

from etl_platform.breaker import BreakerBoard
from etl_platform.errors import TransformError
from etl_platform.ml.embeddings import Embedder
from etl_platform.ml.text import normalized
from etl_platform.retry import with_backoff
from etl_platform.spec.ml import LlmProvider

Match = tuple[str | None, float]  # (reference item or None, similarity 0..1)


class Matcher(Protocol):
    def match(self, values: list[str]) -> list[Match]: ...


class EmbeddingMatcher:
    """The reference item most similar by max(embedding cosine, Jaro-Winkler) of the normalized texts."""

    def __init__(self, reference: list[str], embedder: Embedder):
        self.reference = reference
        self.texts = [normalized(r) or "" for r in reference]
        self.embedder = embedder
        self.vectors = embedder.embed(self.texts)

    def match(self, values: list[str]) -> list[Match]:
        texts = [normalized(v) or "" for v in values]
        cosine = self.embedder.embed(texts) @ self.vectors.T
        characters = np.array([[jellyfish.jaro_winkler_similarity(t, r) for r in self.texts] for t in texts])
        similarity = np.maximum(cosine, characters)
        best = similarity.argmax(axis=1)
        return [(self.reference[b], float(similarity[i, b])) for i, b in enumerate(best)]


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, urllib.error.HTTPError):
        return exc.code == 429 or exc.code >= 500
    return isinstance(exc, urllib.error.URLError | TimeoutError | ConnectionError)


class LlmMatcher:
    """Ask an OpenAI-compatible endpoint; an answer outside the reference list counts as a miss."""

    def __init__(
        self, reference: list[str], provider: LlmProvider, where: str, secrets: Mapping[str, str], breakers: BreakerBoard
    ):
        self.reference = reference
        self.breakers = breakers
        self.provider = provider
        self.where = where
        self.url = provider.url.rstrip("/") + "/chat/completions"
        self.key = ""
        if provider.api_key_secret:
            if not secrets.get(provider.api_key_secret):
                raise TransformError(f"{where}: secret {provider.api_key_secret} is not set; export it before running")
            self.key = secrets[provider.api_key_secret]

    def _ask(self, value: str) -> str:
        prompt = (
            "Map the value to exactly one item of the list, or answer NONE. Answer with the item only.\n"
            f"List: {json.dumps(self.reference)}\nValue: {json.dumps(value)}"
        )
        body = json.dumps({"model": self.provider.model, "temperature": 0, "messages": [{"role": "user", "content": prompt}]})
        headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {self.key}"} if self.key else {})}
        request = urllib.request.Request(self.url, body.encode(), headers, method="POST")

        def call() -> str:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return json.load(answer)["choices"][0]["message"]["content"].strip()

        try:
            return self.breakers.guarded(f"LLM at {self.url}", lambda: with_backoff(call, _is_transient), _is_transient)
        except (urllib.error.URLError, TimeoutError, ConnectionError, KeyError, json.JSONDecodeError) as exc:
            raise TransformError(f"{self.where}: the LLM at {self.url} did not answer usably: {exc}") from None

    def match(self, values: list[str]) -> list[Match]:
        answers = []
        for value in values:
            answer = self._ask(value)
            answers.append((answer, 1.0) if answer in self.reference else (None, 0.0))  # validated against the list
        return answers
