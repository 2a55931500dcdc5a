"""Declaring and updating incidents: checked names, keys, times, versions."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select

from resilience_mcp import models as m
from resilience_mcp.catalog import load_documents
from resilience_mcp.catalog.export import export_documents
from resilience_mcp.catalog.files import Document
from resilience_mcp.errors import ConflictError, InvalidInputError, NotFoundError
from resilience_mcp.graph import CatalogGraph
from resilience_mcp.models.writes import WriteAnswer
from resilience_mcp.store import Store
from resilience_mcp.writes import IncidentChange, IncidentDraft, declare_incident, update_incident
from resilience_mcp.writes.versioning import compare_and_set
from tests.writes.catalog import request

pytestmark = pytest.mark.anyio


async def incident(store: Store, key: str) -> m.Incident:
    async with store.session() as session:
        result = await session.execute(select(m.Incident).where(col(m.Incident.name) == key))
        return result.scalar_one()


async def owned(store: Store, table: type[Any], key: str) -> list[Any]:
    async with store.session() as session:
        result = await session.execute(
            select(table).where(col(table.incident) == key).order_by(col(table.id))
        )
        return list(result.scalars().all())


async def declare(store: Store, graph: CatalogGraph, **fields: Any) -> WriteAnswer:
    draft = IncidentDraft(**({"title": "Checkout down", "severity": "SEV1"} | fields))
    return await declare_incident(store, graph, request("declare_incident"), draft)


async def update(store: Store, graph: CatalogGraph, **fields: Any) -> WriteAnswer:
    change = IncidentChange(**({"key": "INC-0007"} | fields))
    return await update_incident(store, graph, request("update_incident", **fields), change)


async def test_declaring_takes_the_next_key_links_what_it_touched_and_opens_the_timeline(
    catalog: Store, graph: CatalogGraph
) -> None:
    done = await declare(
        catalog,
        graph,
        services=["Payments API", "payments-db"],
        environments=["prod-eu-acme"],
        features=["card-payments"],
        customers=["initech"],
        commander="dev-raman",
        started_at="2026-12-01T11:50:00Z",
    )

    assert (done.name, done.version, done.created) == ("INC-0008", 1, True)
    row = await incident(catalog, "INC-0008")
    assert (row.status, row.severity, row.commander, row.source) == (
        "investigating",
        "SEV1",
        "dev-raman",
        "mcp",
    )
    assert (row.started_at.hour, row.started_at.minute) == (11, 50)
    assert row.detected_at == done.at
    links = await owned(catalog, m.IncidentLink, "INC-0008")
    assert {(link.kind, link.target) for link in links} == {
        ("service", "payments-api"),
        ("service", "payments-db"),
        ("environment", "prod-eu-acme"),
        ("feature", "card-payments"),
        ("customer", "initech"),
    }
    [entry] = await owned(catalog, m.TimelineEntry, "INC-0008")
    assert (entry.text, entry.author) == ("Declared SEV1: Checkout down", "local")
    assert {r.owner_ref for r in [*links, entry]} == {"Incident:INC-0008"}


async def test_an_unknown_service_is_refused_with_the_closest_names(
    catalog: Store, graph: CatalogGraph
) -> None:
    with pytest.raises(NotFoundError) as caught:
        await declare(catalog, graph, services=["payments-apu-v2"])

    assert "payments-api" in caught.value.suggestions
    assert len(await owned(catalog, m.IncidentLink, "INC-0008")) == 0


@pytest.mark.parametrize("key", ["inc-0007", "INC-0007", "INC_0007"])
async def test_a_key_already_taken_in_any_spelling_is_a_conflict(
    catalog: Store, graph: CatalogGraph, key: str
) -> None:
    with pytest.raises(ConflictError, match="INC-0007 already exists"):
        await declare(catalog, graph, key=key)


async def test_a_start_in_the_future_or_after_detection_is_refused(
    catalog: Store, graph: CatalogGraph
) -> None:
    with pytest.raises(InvalidInputError, match="in the future"):
        await declare(catalog, graph, started_at="2026-12-02T00:00:00Z")
    with pytest.raises(InvalidInputError, match="before started_at"):
        await declare(
            catalog, graph, started_at="2026-12-01T11:00:00Z", detected_at="2026-12-01T10:00:00Z"
        )


async def test_mitigating_stamps_the_time_bumps_the_version_and_notes_it(
    catalog: Store, graph: CatalogGraph
) -> None:
    done = await update(
        catalog, graph, expected_version=1, status="mitigated", note="Kill switch on in prod-eu."
    )

    row = await incident(catalog, "INC-0007")
    assert (row.status, row.version, done.version) == ("mitigated", 2, 2)
    assert row.mitigated_at == done.at
    entry = (await owned(catalog, m.TimelineEntry, "INC-0007"))[-1]
    assert entry.kind == "mitigation"
    assert entry.text == "Status investigating -> mitigated. Kill switch on in prod-eu."
    assert entry.owner_ref == "Incident:INC-0007"
    assert {c.field for c in done.changes} == {"status", "mitigated_at", "timeline"}


async def test_reopening_a_resolved_incident_clears_its_resolution_time(
    catalog: Store, graph: CatalogGraph
) -> None:
    await update(catalog, graph, key="INC-0005", status="investigating")

    row = await incident(catalog, "INC-0005")
    assert (row.status, row.resolved_at) == ("investigating", None)


async def test_a_resolution_before_the_start_is_refused(
    catalog: Store, graph: CatalogGraph
) -> None:
    with pytest.raises(InvalidInputError, match=r"resolved_at .* is before started_at"):
        await update(catalog, graph, status="resolved", resolved_at="2026-12-01T08:00:00Z")


async def test_an_update_asking_nothing_is_refused(catalog: Store, graph: CatalogGraph) -> None:
    with pytest.raises(InvalidInputError, match="Nothing to update"):
        await update(catalog, graph)


async def test_an_update_that_changes_nothing_keeps_the_version(
    catalog: Store, graph: CatalogGraph
) -> None:
    done = await update(catalog, graph, status="investigating", severity="SEV2")

    assert (done.changes, done.version) == ([], 1)
    assert (await incident(catalog, "INC-0007")).version == 1


async def test_an_update_against_an_old_version_says_to_re_read(
    catalog: Store, graph: CatalogGraph
) -> None:
    await update(catalog, graph, note="first")

    with pytest.raises(ConflictError, match=r"version 2, not 1.*get_incident"):
        await update(catalog, graph, expected_version=1, severity="SEV1")
    assert (await incident(catalog, "INC-0007")).severity == "SEV2"


async def test_the_compare_and_set_refuses_a_row_changed_since_it_was_read(
    catalog: Store,
) -> None:
    stale = await incident(catalog, "INC-0007")
    async with catalog.transaction() as session:
        await compare_and_set(
            session, m.Incident, stale, {"severity": "SEV1"}, kind="Incident", reread="x"
        )

    with pytest.raises(ConflictError, match="no longer version 1"):
        async with catalog.transaction() as session:
            await compare_and_set(
                session, m.Incident, stale, {"severity": "SEV4"}, kind="Incident", reread="x"
            )
    assert (await incident(catalog, "INC-0007")).severity == "SEV1"


@pytest.mark.parametrize("expected_version", [1, None])
async def test_two_concurrent_updates_never_lose_one_silently(
    catalog: Store, graph: CatalogGraph, expected_version: int | None
) -> None:
    results = await asyncio.gather(
        update(catalog, graph, expected_version=expected_version, note="agent one"),
        update(catalog, graph, expected_version=expected_version, severity="SEV1", note="two"),
        return_exceptions=True,
    )

    done = [r for r in results if isinstance(r, WriteAnswer)]
    refused = [r for r in results if not isinstance(r, WriteAnswer)]
    assert all(isinstance(r, ConflictError) for r in refused)
    # Naming the version read asks to be refused when it moved; naming none asks to apply.
    expected = (1, 1) if expected_version is not None else (2, 0)
    assert (len(done), len(refused)) == expected
    # Every update that was answered as done is in the record; every other was refused.
    row = await incident(catalog, "INC-0007")
    assert row.version == 1 + len(done)
    texts = [e.text for e in await owned(catalog, m.TimelineEntry, "INC-0007")]
    for answer in done:
        assert answer.changes[-1].after in texts
    assert len(texts) == 1 + len(done)


async def test_many_concurrent_updates_naming_no_version_queue_up_and_all_apply(
    catalog: Store, graph: CatalogGraph, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="resilience_mcp.writes.audit")
    notes = [f"agent {n}" for n in range(20)]

    results = await asyncio.gather(*(update(catalog, graph, note=note) for note in notes))

    assert all(isinstance(r, WriteAnswer) for r in results)
    assert (await incident(catalog, "INC-0007")).version == 1 + len(notes)
    texts = [e.text for e in await owned(catalog, m.TimelineEntry, "INC-0007")]
    assert set(notes) <= set(texts)
    # They waited for the row in turn: none lost a race and planned again.
    assert "lost a version race" not in caplog.text


async def test_a_declared_incident_survives_export_and_reload(
    catalog: Store, graph: CatalogGraph, tmp_path: Path
) -> None:
    await declare(catalog, graph, services=["payments-api"], customers=["initech"])
    await update(catalog, graph, key="INC-0008", status="mitigated", note="Rolled back.")

    documents = [
        Document(file="export.yaml", index=i, body=body)
        for i, body in enumerate(await export_documents(catalog))
    ]
    fresh = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'again.db'}")
    try:
        await load_documents(fresh, documents, source="export")
        again = await incident(fresh, "INC-0008")
        links = await owned(fresh, m.IncidentLink, "INC-0008")
        timeline = await owned(fresh, m.TimelineEntry, "INC-0008")
    finally:
        await fresh.close()
    assert (again.status, again.mitigated_at) == (
        "mitigated",
        (await incident(catalog, "INC-0008")).mitigated_at,
    )
    assert {(link.kind, link.target) for link in links} == {
        ("service", "payments-api"),
        ("customer", "initech"),
    }
    assert [t.text for t in timeline] == [
        "Declared SEV1: Checkout down",
        "Status investigating -> mitigated. Rolled back.",
    ]
