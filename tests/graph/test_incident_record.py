"""get_incident's record of a long incident: a cut timeline keeps how it began and the latest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from resilience_mcp.graph.incidents import get_incident
from resilience_mcp.store import Store
from tests.support import load_yaml

pytestmark = pytest.mark.anyio

START = datetime(2026, 11, 20, 8, tzinfo=UTC)


def long_incident(entries: int) -> str:
    lines = [
        "apiVersion: resilience/v1",
        "kind: Incident",
        "metadata: {name: INC-0100, title: Checkout errors}",
        "spec:",
        "  severity: SEV2",
        "  status: investigating",
        f"  startedAt: '{START:%Y-%m-%dT%H:%M:%SZ}'",
        "  timeline:",
    ]
    for n in range(entries):
        at = START + timedelta(minutes=5 * n)
        lines.append(f"    - {{at: '{at:%Y-%m-%dT%H:%M:%SZ}', kind: note, text: 'update {n}'}}")
    return "\n".join(lines) + "\n"


async def test_a_long_timeline_keeps_its_first_entries_and_its_latest_in_order(
    store: Store,
) -> None:
    await load_yaml(store, long_incident(30))

    record = await get_incident(store, "INC-0100", START + timedelta(days=1), timeline_limit=10)

    texts = [entry.text for entry in record.timeline]
    assert texts == [f"update {n}" for n in (0, 1, 2, 3, 4, 25, 26, 27, 28, 29)]
    assert (record.timeline_page.total, record.timeline_page.returned) == (30, 10)
    assert "the first few and the latest" in record.text()


async def test_a_timeline_within_the_limit_comes_whole(store: Store) -> None:
    await load_yaml(store, long_incident(4))

    record = await get_incident(store, "INC-0100", START + timedelta(days=1), timeline_limit=10)

    assert [entry.text for entry in record.timeline] == [f"update {n}" for n in range(4)]
    assert not record.timeline_page.truncated


def postmortem(name: str, published: str) -> str:
    return (
        f"---\napiVersion: resilience/v1\nkind: Postmortem\nmetadata: {{name: {name}}}\n"
        f"spec: {{incident: INC-0100, summary: {name}, publishedAt: '{published}'}}\n"
    )


@pytest.mark.parametrize("key", ["INC-0100", "inc 0100"])
async def test_the_record_shows_the_latest_of_several_postmortems(store: Store, key: str) -> None:
    first = postmortem("pm-first", "2026-11-21T09:00:00Z")
    second = postmortem("pm-second", "2026-11-24T09:00:00Z")
    await load_yaml(store, long_incident(2) + first + second)

    record = await get_incident(store, key, START + timedelta(days=10))

    assert record.key == "INC-0100"
    assert record.postmortem is not None
    assert record.postmortem.name == "pm-second"


async def test_an_incident_without_a_postmortem_has_none(store: Store) -> None:
    await load_yaml(store, long_incident(2))

    record = await get_incident(store, "INC-0100", START + timedelta(days=1))

    assert record.postmortem is None
    assert [entry.text for entry in record.timeline] == ["update 0", "update 1"]
