"""Semantic re-ranking: the index, how it proposes and scores incidents, and the extra.

Everything but the last tests runs on a small deterministic embedder that places words on
a few axes of meaning; the packaged model is tried only where the `semantic` extra is
installed.
"""

from __future__ import annotations

import asyncio
import math
import re
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest
from benchmarks.rca_eval import evaluate_all

from resilience_mcp.errors import InvalidInputError
from resilience_mcp.graph import build_graph
from resilience_mcp.models.incidents import SimilarIncidents
from resilience_mcp.search import semantic
from resilience_mcp.search.incidents import find_similar_rca
from resilience_mcp.search.semantic import SemanticIndex, load_embedder, require_semantic
from resilience_mcp.server import ServerConfig, build_server
from resilience_mcp.store import Store
from tests.support import load_yaml, shared_data

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 12, 1, tzinfo=UTC)
# The words each axis stands for; any other word leans a little on the last axis.
AXES = [
    {"memory", "oomkilled", "evicted", "exhausted"},
    {"dns", "nxdomain", "resolver", "lookups"},
    {"certificate", "tls", "expired", "handshake"},
]
OTHER = 0.3


class FakeEmbedder:
    """Vectors of length 1 on the axes above; remembers what it was asked to embed."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def encode(self, texts: Sequence[str]) -> list[list[float]]:
        self.calls.append(list(texts))
        return [self._vector(text) for text in texts]

    @staticmethod
    def _vector(text: str) -> list[float]:
        vector = [0.0] * (len(AXES) + 1)
        for word in re.findall(r"[a-z]+", text.lower()):
            axis = next((n for n, words in enumerate(AXES) if word in words), None)
            if axis is None:
                vector[-1] += OTHER
            else:
                vector[axis] += 1.0
        norm = math.sqrt(sum(x * x for x in vector)) or 1.0
        return [x / norm for x in vector]


def incident(key: str, title: str, cause: str) -> str:
    return (
        f"---\napiVersion: resilience/v1\nkind: Incident\nmetadata: {{name: {key}, title: "
        f"'{title}'}}\nspec: {{severity: SEV2, status: resolved, startedAt: '2026-10-01T00:00Z'}}"
        f"\n---\napiVersion: resilience/v1\nkind: Postmortem\nmetadata: {{name: {key}-pm}}\n"
        f"spec: {{incident: {key}, rootCause: '{cause}'}}\n"
    )


MEMORY = incident("INC-1", "Nodes exhausted memory", "Kubelet evicted workloads")
DNS = incident("INC-2", "Resolver lookups failing", "NXDOMAIN from upstream resolver")
TLS = incident("INC-3", "Certificate expired", "TLS handshake failures at the edge")
# Shares no word with MEMORY, and means the same.
QUERY = "containers oomkilled again"


@pytest.fixture
async def catalog(store: Store) -> Store:
    await load_yaml(store, MEMORY + DNS + TLS)
    return store


async def similar(
    store: Store,
    index: SemanticIndex | None,
    text: str = QUERY,
    *,
    incident: str | None = None,
    exclude: Sequence[str] = (),
) -> SimilarIncidents:
    graph = await build_graph(store)
    return await find_similar_rca(
        store, graph, NOW, text=text, incident=incident, exclude=exclude, semantic=index
    )


async def test_an_incident_sharing_no_word_is_found_only_by_meaning(catalog: Store) -> None:
    without = await similar(catalog, None)
    found = await similar(catalog, SemanticIndex(FakeEmbedder()))

    assert [hit.key for hit in without.results] == []
    assert found.results[0].key == "INC-1"
    assert found.results[0].why.matched_terms == []


async def test_each_result_says_how_close_in_meaning_it_is(catalog: Store) -> None:
    found = await similar(catalog, SemanticIndex(FakeEmbedder()))
    why = {hit.key: hit.why for hit in found.results}

    assert why["INC-1"].similar_meaning is not None
    assert why["INC-3"].similar_meaning is not None
    assert why["INC-1"].similar_meaning > 0.8 > why["INC-3"].similar_meaning
    assert "similar meaning" in found.text()


async def test_words_and_meaning_add_up(catalog: Store) -> None:
    """An incident the words find still ranks by them, with its cosine beside."""
    found = await similar(catalog, SemanticIndex(FakeEmbedder()), text="certificate expired")
    first = found.results[0]

    assert first.key == "INC-3"
    assert "certificate" in first.why.matched_terms
    assert first.why.similar_meaning is not None


async def test_without_an_index_no_meaning_is_reported(catalog: Store) -> None:
    found = await similar(catalog, None, text="certificate expired")

    assert all(hit.why.similar_meaning is None for hit in found.results)


async def test_the_incident_asked_about_is_never_proposed(catalog: Store) -> None:
    index = SemanticIndex(FakeEmbedder())
    found = await similar(catalog, index, incident="INC-1", exclude=["INC-2"])

    assert {hit.key for hit in found.results} <= {"INC-3"}


async def test_the_index_is_built_once_and_then_only_for_what_changed(catalog: Store) -> None:
    embedder = FakeEmbedder()
    index = SemanticIndex(embedder)
    await similar(catalog, index)
    await similar(catalog, index)

    assert [len(call) for call in embedder.calls] == [3, 1, 1]
    assert len(index) == 3

    await load_yaml(
        catalog, incident("INC-4", "Pods oomkilled", "Memory limit too low"), source="b"
    )
    found = await similar(catalog, index)

    # The new incident, then the query: the three known ones are not embedded again.
    assert len(embedder.calls[-2]) == 1
    assert "Pods oomkilled" in embedder.calls[-2][0]
    assert {hit.key for hit in found.results[:2]} == {"INC-1", "INC-4"}


async def test_a_changed_incident_is_embedded_again_and_a_gone_one_dropped() -> None:
    embedder = FakeEmbedder()
    index = SemanticIndex(embedder)
    await index.update({"a": "dns lookups", "b": "certificate expired"})

    assert await index.update({"a": "dns lookups", "b": "memory exhausted"}) == 1
    assert embedder.calls[-1] == ["memory exhausted"]
    assert await index.update({"b": "memory exhausted"}) == 0
    assert len(index) == 1


@pytest.fixture(params=["numpy", "plain"])
def arithmetic(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """With numpy (the extra brings it) and without, as where the extra is not installed."""
    if request.param == "numpy":
        pytest.importorskip("numpy")
    else:
        monkeypatch.setitem(sys.modules, "numpy", None)


@pytest.mark.usefixtures("arithmetic")
async def test_the_nearest_come_closest_first_leaving_out_what_is_excluded() -> None:
    index = SemanticIndex(FakeEmbedder())
    await index.update(
        {
            "dns": "dns resolver lookups exhausted",
            "memory": "memory exhausted",
            "memory-again": "memory exhausted, pods evicted",
            "tls": "tls certificate expired",
        }
    )
    query = await index.encode("oomkilled evicted")

    assert index.nearest(query, 2) == ["memory", "memory-again"]
    assert index.nearest(query, 2, exclude={"memory"}) == ["memory-again", "dns"]
    assert index.nearest(query, 10) == ["memory", "memory-again", "dns", "tls"]


@pytest.mark.usefixtures("arithmetic")
async def test_a_cosine_is_given_for_each_incident_held() -> None:
    index = SemanticIndex(FakeEmbedder())
    await index.update({"memory": "memory exhausted", "tls": "tls certificate expired"})
    query = await index.encode("oomkilled and evicted pods")

    cosines = index.cosines(query, ["memory", "tls", "unknown"])

    assert set(cosines) == {"memory", "tls"}
    expected = sum(a * b for a, b in zip(FakeEmbedder._vector("memory"), query, strict=True))
    assert cosines["memory"] == pytest.approx(expected, abs=1e-6)
    assert cosines["tls"] == pytest.approx(0.0, abs=1e-6)


async def test_an_empty_index_proposes_nothing() -> None:
    index = SemanticIndex(FakeEmbedder())
    query = await index.encode("anything")

    assert index.nearest(query, 5) == []
    assert index.cosines(query, ["a"]) == {}


async def test_queries_at_the_same_time_build_the_index_once(catalog: Store) -> None:
    embedder = FakeEmbedder()
    index = SemanticIndex(embedder)
    await asyncio.gather(*(similar(catalog, index) for _ in range(3)))

    assert sorted(len(call) for call in embedder.calls) == [1, 1, 1, 3]


def test_a_missing_extra_is_named_with_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(semantic, "_MODULES", ("sentence_transformers", "no_such_model_pkg"))

    with pytest.raises(InvalidInputError, match=r"no_such_model_pkg.*resilience-mcp\[semantic\]"):
        require_semantic()
    with pytest.raises(InvalidInputError, match="semantic extra"):
        load_embedder()
    with pytest.raises(InvalidInputError, match="semantic extra"):
        build_server(ServerConfig(semantic=True))


def test_a_server_with_a_given_embedder_needs_no_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(semantic, "_MODULES", ("no_such_model_pkg",))

    build_server(ServerConfig(semantic=True, embedder=FakeEmbedder()))


# The packaged model, where the extra is installed.


@pytest.fixture(scope="module")
def model() -> semantic.Embedder:
    pytest.importorskip("sentence_transformers")
    return load_embedder()


def test_the_packaged_model_loads_offline_and_puts_like_texts_close(
    model: semantic.Embedder,
) -> None:
    oom, evicted, tls = model.encode(
        [
            "Containers were OOMKilled over and over",
            "Nodes ran out of memory and the kubelet evicted pods",
            "The TLS certificate of the load balancer expired",
        ]
    )

    def dot(a: Sequence[float], b: Sequence[float]) -> float:
        return float(sum(x * y for x, y in zip(a, b, strict=True)))

    assert dot(oom, oom) == pytest.approx(1.0, abs=1e-4)
    assert dot(oom, evicted) > dot(oom, tls)


# A little under what benchmarks/rca_eval.py --semantic measures (0.388); 0.344 without.
K8S_FLOOR = 0.37


def test_semantic_ranking_keeps_k8s_above_its_floor(model: semantic.Embedder) -> None:
    shared_data("k8s-failure-stories", "stories.jsonl")
    scores = asyncio.run(evaluate_all(sets=["k8s"], embedder=model))

    assert scores["k8s"].ours >= K8S_FLOOR, scores["k8s"]
