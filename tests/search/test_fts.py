"""The full-text index: kept current by every kind of write, and safe for any text."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import col, delete, select

from resilience_mcp import models as m
from resilience_mcp.catalog import load_catalog
from resilience_mcp.errors import InvalidInputError
from resilience_mcp.graph import CatalogGraph, build_graph
from resilience_mcp.search import fts
from resilience_mcp.search.fts import MAX_TERMS, affordable, extract_terms, match_incidents
from resilience_mcp.search.incidents import find_similar_rca
from resilience_mcp.store import Store

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 12, 1, tzinfo=UTC)

CATALOG = """
apiVersion: resilience/v1
kind: Service
metadata: {name: payments-db}
---
apiVersion: resilience/v1
kind: Service
metadata: {name: payments-api}
spec:
  dependsOn: [service:payments-db]
---
apiVersion: resilience/v1
kind: Incident
metadata: {name: INC-1, title: payments-db out of connection slots}
spec:
  startedAt: 2026-10-07T14:21:00Z
  status: resolved
  services: [payments-api, payments-db]
  timeline:
    - {at: 2026-10-07T14:21:00Z, text: "FATAL: remaining connection slots are reserved"}
---
apiVersion: resilience/v1
kind: Postmortem
metadata: {name: pm-1}
spec:
  incident: INC-1
  rootCause: The Hikari pool grew from 10 to 30 connections per pod.
---
apiVersion: resilience/v1
kind: Incident
metadata: {name: INC-2, title: Kafka brokers out of disk}
spec:
  startedAt: 2026-10-14T09:00:00Z
  status: resolved
"""

# Query syntax of FTS5 and tsquery, SQL, quoting and control characters an agent might send.
NASTY = [
    "AND",
    "OR",
    "NOT",
    "NEAR",
    "NEAR(a b, 3)",
    "*",
    "^",
    ":",
    "(",
    ")",
    '"',
    "'",
    "''",
    "col:term",
    "title:payments",
    "{title summary}",
    "-",
    "+",
    "&",
    "|",
    "!",
    "<->",
    "\\",
    "%",
    "_",
    ";",
    "--",
    "/*",
    "*/",
    "DROP TABLE incident;",
    "' OR 1=1 --",
    "\x00",
    "\u200b",
    "²",
    "ﬁ",
    "İ",
    "naïve",
    "payments-db",
    "connection",
    "slots",
    "日本語",
    "🔥",
    "\n",
    "\t",
]
texts = st.one_of(
    st.text(max_size=400),
    st.lists(st.sampled_from(NASTY), max_size=30).map(" ".join),
    st.lists(st.sampled_from(NASTY), max_size=30).map("".join),
)


@pytest.fixture
async def loaded(store: Store, tmp_path: Path) -> Store:
    path = tmp_path / "catalog.yaml"
    path.write_text(CATALOG, encoding="utf-8")
    await load_catalog(store, [path])
    return store


@pytest.fixture
async def graph(loaded: Store) -> CatalogGraph:
    return await build_graph(loaded)


async def keys(store: Store, text: str) -> list[str]:
    return [hit.key for hit in await match_incidents(store, extract_terms(text))]


async def test_a_catalog_load_indexes_incidents_with_their_postmortem_and_timeline(
    loaded: Store,
) -> None:
    assert await keys(loaded, "Hikari pool") == ["INC-1"]
    assert await keys(loaded, "remaining connection slots reserved") == ["INC-1"]
    assert await keys(loaded, "kafka disk") == ["INC-2"]


async def test_writes_through_a_transaction_keep_the_index_current(loaded: Store) -> None:
    async with loaded.transaction() as session:
        session.add(
            m.Incident(name="INC-3", title="Checkout latency", started_at=NOW, status="resolved")
        )
        session.add(m.Postmortem(name="pm-3", incident="INC-3", root_cause="a noisy neighbour"))
    assert await keys(loaded, "noisy neighbour") == ["INC-3"]

    async with loaded.transaction() as session:
        incident = await session.get(m.Incident, "INC-2")
        assert incident is not None
        incident.title = "Zookeeper session expiry"
    assert await keys(loaded, "zookeeper") == ["INC-2"]
    assert await keys(loaded, "kafka") == []

    async with loaded.transaction() as session:
        await session.execute(delete(m.Postmortem).where(col(m.Postmortem.name) == "pm-1"))
    assert await keys(loaded, "Hikari") == []
    assert await keys(loaded, "remaining slots") == ["INC-1"]

    async with loaded.transaction() as session:
        await session.execute(delete(m.Incident).where(col(m.Incident.name) == "INC-1"))
    assert await keys(loaded, "remaining slots") == []


async def test_reloading_a_changed_catalog_replaces_the_old_words(
    loaded: Store, tmp_path: Path
) -> None:
    path = tmp_path / "catalog.yaml"
    path.write_text(CATALOG.replace("Kafka brokers out of disk", "RabbitMQ queue full"), "utf-8")
    await load_catalog(store=loaded, paths=[path])

    assert await keys(loaded, "rabbitmq") == ["INC-2"]
    assert await keys(loaded, "kafka") == []


async def test_a_reopened_store_keeps_its_index(loaded: Store, db_url: str) -> None:
    again = await Store.open(db_url)
    try:
        assert await keys(again, "Hikari") == ["INC-1"]
    finally:
        await again.close()


@pytest.mark.parametrize(
    "text",
    ["", "   ", "\n\t", "!!! ??? ...", "the and of", '"" () * ^ :'],
    ids=["empty", "spaces", "whitespace", "punctuation", "stop-words", "operators"],
)
async def test_text_without_words_is_refused_with_a_reason(loaded: Store, text: str) -> None:
    graph = await build_graph(loaded)
    with pytest.raises(InvalidInputError, match="text"):
        await find_similar_rca(loaded, graph, NOW, text=text)


async def test_neither_text_nor_an_incident_is_refused(loaded: Store) -> None:
    with pytest.raises(InvalidInputError, match="incident key"):
        await find_similar_rca(loaded, await build_graph(loaded), NOW)


async def test_ten_kilobytes_of_log_lines_find_the_incident(loaded: Store) -> None:
    line = (
        "2026-12-01T10:41:07.120Z ERROR [payments-api-7f9c] HikariPool-1 - Connection is not "
        'available, request timed out after 3000ms; db="payments" (pid=4242) "quoted" NEAR(*)\n'
    )
    logs = line * (10_240 // len(line) + 1)
    answer = await find_similar_rca(loaded, await build_graph(loaded), NOW, text=logs)

    assert answer.results[0].key == "INC-1"
    assert len(answer.terms) <= MAX_TERMS
    assert answer.query is not None
    assert len(answer.query) <= 200


@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=texts)
async def test_any_text_is_searched_or_refused_never_a_query_error(
    loaded: Store, graph: CatalogGraph, text: str
) -> None:
    try:
        answer = await find_similar_rca(loaded, graph, NOW, text=text)
    except InvalidInputError:
        assert not extract_terms(text)
    else:
        assert {hit.key for hit in answer.results} <= {"INC-1", "INC-2"}


@given(text=texts)
def test_extracted_terms_are_bounded_words(text: str) -> None:
    terms = extract_terms(text)

    assert len(terms) <= MAX_TERMS
    assert all(t.isalnum() and t == t.lower() for t in terms)


async def test_every_incident_is_in_the_index_after_a_load(loaded: Store) -> None:
    async with loaded.session() as session:
        incidents = set((await session.execute(select(m.Incident.name))).scalars().all())
    assert set(await keys(loaded, "out of disk connection slots")) == incidents


async def test_a_common_word_is_left_out_whatever_its_indexed_form(
    loaded: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not loaded.is_sqlite:
        pytest.skip("PostgreSQL counts words from ANALYZE statistics")
    # FTS5 keeps `certificates` as `certif`, six letters shorter.
    async with loaded.transaction() as session:
        for n in range(3, 6):
            session.add(m.Incident(name=f"INC-{n}", title="certificates expired", started_at=NOW))
    monkeypatch.setattr(fts, "POSTINGS_BUDGET", 2)
    monkeypatch.setattr(fts, "KEEP_AT_LEAST", 1)

    assert await keys(loaded, "certificates kafka") == ["INC-2"]


@pytest.mark.parametrize(
    ("counts", "kept"),
    [
        ({"disk": 10, "full": 20, "kafka": 5}, ["disk", "full", "kafka"]),
        ({"disk": 2000, "full": 2900, "kafka": 5}, ["disk", "kafka"]),
        ({"disk": 9000, "full": 8000, "kafka": 7000}, ["full", "kafka"]),
        ({}, ["disk", "full", "kafka"]),
    ],
    ids=["small-store", "over-budget", "all-common", "unknown-words"],
)
def test_the_rarest_words_are_kept_within_the_ranking_budget(
    counts: dict[str, float], kept: list[str]
) -> None:
    assert affordable(["disk", "full", "kafka"], counts) == kept
