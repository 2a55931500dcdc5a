"""OpenSLO documents load as this catalog's SLOs, or are refused naming what is not supported."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from resilience_mcp.catalog import DEMO_ANCHOR, load_catalog
from resilience_mcp.catalog.files import Document, read_documents
from resilience_mcp.catalog.loader import parse_documents
from resilience_mcp.errors import CatalogLoadError
from resilience_mcp.graph import build_graph
from resilience_mcp.metrics.slo import get_slo_status
from resilience_mcp.store import Store
from tests.support import shared_data

pytestmark = pytest.mark.anyio

OPENSLO = "openslo"
GO_SDK = ("openslo", "go-sdk", "pkg", "openslo")


def parse(*paths: Path) -> tuple[dict[str, dict[str, Any]], list[str], list[str]]:
    documents, issues = read_documents(list(paths))
    entities, problems, skipped = parse_documents(documents)
    slos = {e.parsed.name: e.parsed.columns for e in entities if e.parsed.kind == "SLO"}
    return slos, [str(p) for p in [*issues, *problems]], skipped


@pytest.mark.parametrize(
    ("parts", "name", "expected"),
    [
        (
            (*GO_SDK, "v1alpha", "examples", "slos.yaml"),
            "web-availability-ratio",
            {"window_days": 7.0, "window_type": "calendar", "budgeting_method": "timeslices"},
        ),
        (
            (*GO_SDK, "v1", "examples", "slos.yaml"),
            "web-availability",
            {"objective": 0.995, "timeslice_target": 0.95, "timeslice_window": "1m"},
        ),
        (
            (*GO_SDK, "v2alpha", "examples", "slos.yaml"),
            "web-availability",
            {"service": "web", "window_type": "calendar", "objective": 0.995},
        ),
        (
            (OPENSLO, "OpenSLO", "examples", "budgeting-method", "occurences-slo.yaml"),
            "search-slo",
            {"window_days": 14.0, "window_type": "rolling", "budgeting_method": "occurrences"},
        ),
        (
            (OPENSLO, "OpenSLO", "examples", "budgeting-method", "ratio-timeslices.yaml"),
            "main-page",
            {"budgeting_method": "ratio-timeslices", "objective": 0.99},
        ),
    ],
)
def test_each_openslo_version_becomes_an_slo(
    parts: tuple[str, ...], name: str, expected: dict[str, Any]
) -> None:
    slos, problems, _ = parse(shared_data(*parts))

    assert problems == []
    assert {k: slos[name][k] for k in expected} == expected


def test_the_indicator_says_what_is_measured_and_labels_become_tags() -> None:
    slos, _, _ = parse(shared_data(*GO_SDK, "v1", "examples", "slos.yaml"))

    slo = slos["web-availability"]
    assert slo["indicator"] == "web-successful-requests-ratio: good over total from Prometheus"
    assert slo["tags"] == ["env:prod", "team:team-a", "team:team-b"]
    assert slo["annotations"]["openslo/calendar-time-zone"] == "America/New_York"


def test_kinds_other_than_slo_are_skipped_and_reported() -> None:
    slos, problems, skipped = parse(shared_data(*GO_SDK, "v1", "examples", "slis.yaml"))

    assert (slos, problems) == ({}, [])
    assert skipped == ["4 document(s) of kind OpenSLO SLI, which this catalog does not model"]


def test_a_one_minute_window_is_refused_naming_minutes_and_months() -> None:
    path = shared_data(OPENSLO, "OpenSLO", "examples", "budgeting-method", "timeslices-slo.yaml")

    slos, problems, _ = parse(path)

    assert slos == {}
    assert len(problems) == 1
    assert "spec.timeWindow[0].duration" in problems[0]
    assert "reads '1m' as minutes; for months write 1M" in problems[0]


def openslo(spec: dict[str, Any], version: str = "openslo/v1") -> Document:
    body = {"apiVersion": version, "kind": "SLO", "metadata": {"name": "pay"}, "spec": spec}
    return Document("inline.yaml", 1, body)


BASE_SPEC: dict[str, Any] = {
    "service": "payments",
    "timeWindow": [{"duration": "4w", "isRolling": True}],
    "budgetingMethod": "Occurrences",
    "objectives": [{"target": 0.999}],
}


def test_several_objectives_become_one_slo_each() -> None:
    spec = BASE_SPEC | {
        "budgetingMethod": "Timeslices",
        "objectives": [
            {"displayName": "Internal", "target": 0.995, "timeSliceWindow": "5m"},
            {"displayName": "SLA", "targetPercent": 99, "timeSliceWindow": "5m"},
        ],
    }

    entities, problems, _ = parse_documents([openslo(spec)])

    assert problems == []
    names = {e.parsed.name: e.parsed.columns["objective"] for e in entities}
    assert names == {"pay-internal": 0.995, "pay-sla": 0.99}
    assert entities[0].parsed.columns["window_days"] == 28.0


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"timeWindow": [{"duration": "1w"}, {"duration": "4w"}]}, "timeWindow", "several"),
        ({"budgetingMethod": "Burndown"}, "budgetingMethod", "not one of"),
        ({"objectives": [{"target": 0.9, "indicatorRef": "x"}]}, "objectives", "composite"),
        ({"objectives": [{"displayName": "no target"}]}, "target", "needs a target"),
        ({"timeWindow": [{"duration": "a fortnight"}]}, "duration", "not an OpenSLO duration"),
    ],
)
def test_what_cannot_be_carried_over_is_refused_by_name(
    change: dict[str, Any], field: str, words: str
) -> None:
    _, problems, _ = parse_documents([openslo(BASE_SPEC | change)])

    assert len(problems) == 1
    assert (problems[0].kind, problems[0].name) == ("SLO", "pay")
    assert field in (problems[0].field or "")
    assert words in problems[0].message


def test_an_unknown_openslo_version_is_refused() -> None:
    _, problems, _ = parse_documents([openslo(BASE_SPEC, version="openslo/v9")])

    assert "OpenSLO version 'v9' is not supported" in problems[0].message


async def test_an_openslo_file_loads_beside_the_catalog_and_reports_status(
    store: Store, tmp_path: Path
) -> None:
    catalog = [
        {"apiVersion": "resilience/v1", "kind": "Service", "metadata": {"name": "payments"}},
    ]
    (tmp_path / "catalog.yaml").write_text(yaml.safe_dump_all(catalog), encoding="utf-8")
    (tmp_path / "slos.yaml").write_text(yaml.safe_dump([openslo(BASE_SPEC).body]), encoding="utf-8")

    report = await load_catalog(store, [tmp_path])

    assert report.created == {"SLO": 1, "Service": 1}
    graph = await build_graph(store)
    status = await get_slo_status(store, graph, DEMO_ANCHOR, service="payments")
    assert (status.slos[0].name, status.slos[0].status) == ("pay", "no_data")


async def test_an_openslo_slo_for_an_unknown_service_names_it(store: Store, tmp_path: Path) -> None:
    (tmp_path / "slos.yaml").write_text(yaml.safe_dump(openslo(BASE_SPEC).body), encoding="utf-8")

    with pytest.raises(CatalogLoadError, match="Service 'payments', which is not in the catalog"):
        await load_catalog(store, [tmp_path])
