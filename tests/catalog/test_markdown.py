"""Postmortems in Markdown: parsed into incidents, postmortems and tasks, loaded like YAML."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select

from resilience_mcp import models as m
from resilience_mcp.catalog import load_catalog
from resilience_mcp.catalog.markdown import is_postmortem, markdown_documents
from resilience_mcp.errors import CatalogLoadError
from resilience_mcp.search.fts import extract_terms, match_incidents
from resilience_mcp.store import Store
from tests.support import shared_data

pytestmark = pytest.mark.anyio

WRITE_UP = """\
---
key: INC-77
severity: sev-1
services: [payments-api]
owner: team-payments
---
# Checkout down after the **payments-api** 4.2 release

## Summary

The 4.2 release of payments-api shipped a [broken](https://example.com) connection string.

Card payments failed for 20 minutes.

## Timeline

All times in CET.

| Time             | Event                                   |
| :--------------- | --------------------------------------- |
| 2024-03-01 10:00 | payments-api 4.2 deployed               |
| 2024-03-01 10:05 | Alert fired: checkout error rate above 5% |
| 2024-03-01 10:20 | Rolled back to 4.1; service restored    |

## Root cause

The connection string was read from a variable that the new chart renamed.

## Contributing Factors

- No canary for payments-api
- The chart change was not reviewed
  by the payments team

## Action Items

- [x] Add a canary stage (done)
- Review chart changes with the owning team

## Attendees

- AB, CD
"""

SERVICES = """\
apiVersion: resilience/v1
kind: Team
metadata: {name: team-payments}
---
apiVersion: resilience/v1
kind: Service
metadata: {name: payments-api}
spec: {owner: team-payments}
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def by_kind(documents: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for doc in documents:
        found.setdefault(str(doc["kind"]), []).append(doc)
    return found


def test_a_write_up_becomes_an_incident_a_postmortem_and_its_tasks() -> None:
    docs = by_kind(markdown_documents(WRITE_UP, Path("anything.md")))
    incident, postmortem = docs["Incident"][0], docs["Postmortem"][0]
    spec = incident["spec"]

    assert incident["metadata"] == {
        "name": "INC-77",
        "title": "Checkout down after the payments-api 4.2 release",
    }
    assert spec["severity"] == "sev-1"
    assert spec["services"] == ["payments-api"]
    # CET is an hour ahead of UTC.
    assert spec["startedAt"] == "2024-03-01T09:00:00+00:00"
    assert spec["detectedAt"] == "2024-03-01T09:05:00+00:00"
    assert spec["resolvedAt"] == "2024-03-01T09:20:00+00:00"
    assert [e["kind"] for e in spec["timeline"]] == ["note", "detection", "resolution"]
    pm_spec = postmortem["spec"]
    assert pm_spec["rootCause"].startswith("The connection string")
    assert "broken connection string" in pm_spec["summary"]
    assert pm_spec["contributingFactors"] == [
        "No canary for payments-api",
        "The chart change was not reviewed by the payments team",
    ]
    tasks = docs["RemediationTask"]
    assert [(t["spec"]["status"], t["spec"]["owner"]) for t in tasks] == [
        ("done", "team-payments"),
        ("open", "team-payments"),
    ]


def test_a_dfds_postmortem_reads_its_stats_and_sections() -> None:
    path = shared_data("dfds-postmortems", "raw", "PM2021-002.md")
    docs = by_kind(markdown_documents(path.read_text(encoding="utf-8"), path))
    spec = docs["Incident"][0]["spec"]

    assert docs["Incident"][0]["metadata"]["name"] == "PM2021-002"
    # Time to detection 40 minutes, to recovery 55, from 06:05 CET.
    assert spec["startedAt"] == "2021-02-15T05:05:00+00:00"
    assert spec["detectedAt"] == "2021-02-15T05:45:00+00:00"
    assert spec["resolvedAt"] == "2021-02-15T06:00:00+00:00"
    assert len(docs["RemediationTask"]) == 4
    assert docs["Incident"][0]["metadata"]["tags"] == ["observability"]


@pytest.mark.parametrize(
    "text",
    ["# Project\n\nSome notes.\n", "## Summary\n\nNo title.\n", "# T\n\n## Timeline\n\nnone\n"],
    ids=["readme", "no-title", "undated-timeline"],
)
def test_other_markdown_is_not_taken_for_a_postmortem(text: str) -> None:
    assert not is_postmortem(text)


async def test_a_folder_of_write_ups_loads_and_reloads_unchanged(
    store: Store, tmp_path: Path
) -> None:
    write(tmp_path / "catalog" / "services.yaml", SERVICES)
    write(tmp_path / "catalog" / "postmortems" / "INC-77.md", WRITE_UP)
    write(tmp_path / "catalog" / "README.md", "# About this folder\n\nNot a postmortem.\n")

    first = await load_catalog(store, [tmp_path / "catalog"])
    again = await load_catalog(store, [tmp_path / "catalog"])

    assert first.created == {
        "Incident": 1,
        "Postmortem": 1,
        "RemediationTask": 2,
        "Service": 1,
        "Team": 1,
    }
    assert not again.changed
    async with store.session() as session:
        incident = await session.get(m.Incident, "INC-77")
        links = await session.execute(
            select(m.IncidentLink.target).where(col(m.IncidentLink.incident) == "INC-77")
        )
    assert incident is not None
    assert incident.severity == "SEV1"
    assert incident.started_at == datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
    assert list(links.scalars()) == ["payments-api"]


async def test_a_write_up_naming_an_unknown_service_writes_nothing(
    store: Store, tmp_path: Path
) -> None:
    path = write(tmp_path / "INC-77.md", WRITE_UP)

    with pytest.raises(CatalogLoadError) as caught:
        await load_catalog(store, [path])

    assert any("payments-api" in str(issue) for issue in caught.value.issues)


async def test_a_markdown_file_named_outright_that_is_no_postmortem_is_reported(
    store: Store, tmp_path: Path
) -> None:
    path = write(tmp_path / "README.md", "# Notes\n\nJust notes.\n")

    with pytest.raises(CatalogLoadError, match="does not read as a postmortem"):
        await load_catalog(store, [path])


async def test_the_dfds_postmortems_load_and_are_searchable(store: Store) -> None:
    report = await load_catalog(store, [shared_data("dfds-postmortems", "raw")])

    assert report.created["Incident"] == 39
    assert report.created["Postmortem"] == 39
    found = await match_incidents(store, extract_terms("Flux version update"))
    assert {hit.key for hit in found[:2]} == {"PM2021-002", "PM2021-003"}
