"""Postmortems and remediation tasks: recorded, linked, moved along with versions."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlmodel import col, select

from resilience_mcp import models as m
from resilience_mcp.errors import ConflictError, InvalidInputError, NotFoundError
from resilience_mcp.graph import CatalogGraph
from resilience_mcp.models.writes import WriteAnswer
from resilience_mcp.store import Store
from resilience_mcp.writes import (
    PostmortemDraft,
    TaskChange,
    TaskDraft,
    create_remediation_task,
    record_postmortem,
    update_remediation_task,
)
from tests.writes.catalog import request

pytestmark = pytest.mark.anyio


async def row(store: Store, table: type[Any], name: str) -> Any:
    async with store.session() as session:
        result = await session.execute(select(table).where(col(table.name) == name))
        return result.scalar_one_or_none()


async def record(store: Store, graph: CatalogGraph, **fields: Any) -> WriteAnswer:
    draft = PostmortemDraft(**({"incident": "INC-0007"} | fields))
    return await record_postmortem(store, graph, request("record_postmortem"), draft)


async def create(store: Store, graph: CatalogGraph, **fields: Any) -> WriteAnswer:
    draft = TaskDraft(
        **({"title": "Alert on decline rate per issuer", "owner": "payments"} | fields)
    )
    return await create_remediation_task(store, graph, request("create_remediation_task"), draft)


async def move(store: Store, graph: CatalogGraph, name: str, **fields: Any) -> WriteAnswer:
    change = TaskChange(name=name, **fields)
    return await update_remediation_task(store, graph, request("update_remediation_task"), change)


async def test_the_first_record_creates_the_postmortem_and_later_ones_fill_it_in(
    catalog: Store, graph: CatalogGraph
) -> None:
    first = await record(catalog, graph, summary="Declines rose.", lessons=["Flags are changes."])
    second = await record(
        catalog, graph, root_cause="Network tokens.", author="hannah", publish=True
    )

    assert (first.name, first.created, second.created) == ("pm-inc-0007", True, False)
    postmortem = await row(catalog, m.Postmortem, "pm-inc-0007")
    assert (postmortem.incident, postmortem.source) == ("INC-0007", "mcp")
    assert (postmortem.summary, postmortem.root_cause) == ("Declines rose.", "Network tokens.")
    assert (postmortem.lessons, postmortem.author) == (["Flags are changes."], "hannah-becker")
    assert postmortem.title == "Postmortem: Card declines up"
    assert postmortem.published_at == second.at
    assert {c.field for c in second.changes} == {"root_cause", "author", "published_at"}


async def test_an_incident_with_a_postmortem_gets_that_one_updated(
    catalog: Store, graph: CatalogGraph
) -> None:
    done = await record(catalog, graph, incident="inc-0005", summary="Rewritten.")

    assert (done.name, done.created) == ("pm-inc-0005", False)
    assert [(c.before, c.after) for c in done.changes] == [("An older outage.", "Rewritten.")]


async def test_a_postmortem_for_an_unknown_incident_is_refused(
    catalog: Store, graph: CatalogGraph
) -> None:
    with pytest.raises(NotFoundError, match="INC-0007"):
        await record(catalog, graph, incident="INC-0070", summary="?")


async def test_a_task_is_named_from_its_incident_and_title_and_owned_by_a_checked_team(
    catalog: Store, graph: CatalogGraph
) -> None:
    done = await create(catalog, graph, postmortem="pm-inc-0005", priority="P1")
    again = await create(catalog, graph, postmortem="pm-inc-0005")

    assert done.name == "rt-0005-alert-on-decline-rate-per"
    assert again.name == "rt-0005-alert-on-decline-rate-per-2"
    task = await row(catalog, m.RemediationTask, done.name)
    assert (task.owner, task.incident, task.postmortem) == (
        "team-payments",
        "INC-0005",
        "pm-inc-0005",
    )
    assert (task.status, task.priority, task.version, task.source) == ("open", "P1", 1, "mcp")
    assert done.corrected == ["payments -> team-payments"]


async def test_an_owner_given_by_a_near_miss_is_refused_with_the_name_it_may_mean(
    catalog: Store, graph: CatalogGraph
) -> None:
    with pytest.raises(InvalidInputError, match="the closest is 'team-payments'"):
        await create(catalog, graph, postmortem="pm-inc-0005", owner="team-paymnets")


async def test_a_task_whose_postmortem_is_about_another_incident_is_refused(
    catalog: Store, graph: CatalogGraph
) -> None:
    with pytest.raises(InvalidInputError, match="about incident INC-0005"):
        await create(catalog, graph, incident="INC-0007", postmortem="pm-inc-0005")


async def test_closing_a_task_stamps_its_completion_and_reopening_clears_it(
    catalog: Store, graph: CatalogGraph
) -> None:
    name = (await create(catalog, graph, incident="INC-0007")).name

    closed = await move(catalog, graph, name, status="done", expected_version=1)
    assert (await row(catalog, m.RemediationTask, name)).completed_at == closed.at
    reopened = await move(catalog, graph, name, status="in_progress", expected_version=2)

    task = await row(catalog, m.RemediationTask, name)
    assert (task.status, task.completed_at, task.version) == ("in_progress", None, 3)
    assert reopened.version == 3


async def test_two_concurrent_task_updates_give_one_conflict(
    catalog: Store, graph: CatalogGraph
) -> None:
    name = (await create(catalog, graph, incident="INC-0007")).name

    results = await asyncio.gather(
        move(catalog, graph, name, expected_version=1, priority="P1"),
        move(catalog, graph, name, expected_version=1, owner="team-payments", status="done"),
        return_exceptions=True,
    )

    [done] = [r for r in results if isinstance(r, WriteAnswer)]
    [refused] = [r for r in results if not isinstance(r, WriteAnswer)]
    assert isinstance(refused, ConflictError)
    task = await row(catalog, m.RemediationTask, name)
    assert task.version == 2
    # The winner's change is there, and nothing of the loser's.
    if "priority" in {c.field for c in done.changes}:
        assert (task.priority, task.status) == ("P1", "open")
    else:
        assert (task.priority, task.status) == ("P3", "done")
