"""Backstage: the catalog API page by page, and catalog files in a checkout."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import select

from resilience_mcp import models as m
from resilience_mcp.connectors.backstage import sync_backstage, sync_backstage_files
from resilience_mcp.connectors.http import MAX_PAGES, ApiClient, RetryPolicy
from resilience_mcp.errors import UpstreamError
from resilience_mcp.graph import build_graph
from resilience_mcp.store import Store
from tests.connectors.fakes import FakeApi, Sleeps, failure
from tests.connectors.payloads import backstage_catalog, backstage_entity
from tests.support import load_yaml, shared_data

pytestmark = pytest.mark.anyio

ENTITIES = "/api/catalog/entities"
BY_QUERY = "/api/catalog/entities/by-query"


def backstage(entities: list[Any]) -> FakeApi:
    return FakeApi({ENTITIES: ("items", entities)})


def client(api: FakeApi, sleeps: Sleeps | None = None) -> ApiClient:
    return ApiClient(
        "backstage",
        "https://backstage.acme.example",
        headers={"Authorization": "Bearer static-token-1234"},
        secrets=["static-token-1234"],
        transport=api.transport,
        sleep=sleeps or Sleeps(),
        retry=RetryPolicy(retries=2),
    )


async def service_names(store: Store) -> list[str]:
    async with store.session() as session:
        return sorted((await session.execute(select(m.Service.name))).scalars().all())


async def test_the_api_is_read_with_cursors_and_loaded_with_provenance(store: Store) -> None:
    api = backstage(backstage_catalog())

    async with client(api) as remote:
        report = await sync_backstage(store, remote, page_size=3)

    assert api.paths() == [BY_QUERY] * 3
    first, *later = api.requests
    assert "cursor" not in first.url.params
    assert all(r.url.params["cursor"] and r.url.params["limit"] == "3" for r in later)
    assert await service_names(store) == ["payments-api", "payments-db", "payments.api"]
    assert report.fetched == {"entities": 8}
    assert report.notes == ["2 entities of kinds this catalog does not model"]
    graph = await build_graph(store)
    api_service = graph.services["payments-api"]
    assert (api_service.source, api_service.external_id) == (
        "backstage",
        "uid-component-payments-api",
    )
    assert graph.dependencies.has_edge("payments.api", "payments-api")
    assert graph.teams["payments"].title == "Payments"


async def test_the_classic_offset_listing_is_read_too(store: Store) -> None:
    api = backstage(backstage_catalog())

    async with client(api) as remote:
        await sync_backstage(store, remote, pagination="offset", page_size=5)

    assert api.paths() == [ENTITIES, ENTITIES]
    assert [r.url.params["offset"] for r in api.requests] == ["0", "5"]
    assert await service_names(store) == ["payments-api", "payments-db", "payments.api"]


def answering(handle: Any) -> ApiClient:
    return ApiClient(
        "backstage",
        "https://backstage.acme.example",
        transport=httpx.MockTransport(handle),
        sleep=Sleeps(),
    )


async def test_an_offset_listing_that_ignores_the_offset_is_refused_not_read_forever(
    store: Store,
) -> None:
    entities = backstage_catalog()
    requests: list[httpx.Request] = []

    def first_page_always(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(200, json=entities[:3])

    async with answering(first_page_always) as remote:
        with pytest.raises(UpstreamError, match=r"at offset 3 .* it ignores `offset`"):
            await sync_backstage(store, remote, pagination="offset", page_size=3)

    assert len(requests) == 2
    assert await service_names(store) == []


async def test_an_offset_listing_without_end_is_cut_at_the_page_limit(store: Store) -> None:
    requests: list[httpx.Request] = []

    def always_more(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        offset = int(request.url.params["offset"])
        return httpx.Response(
            200, json=[backstage_entity("Component", f"svc-{offset}", {"owner": "payments"})]
        )

    async with answering(always_more) as remote:
        with pytest.raises(UpstreamError, match=rf"more than {MAX_PAGES} pages of 1; raise"):
            await sync_backstage(store, remote, pagination="offset", page_size=1)

    assert len(requests) == MAX_PAGES
    assert await service_names(store) == []


async def test_a_cursor_listing_that_goes_round_in_a_loop_is_refused(store: Store) -> None:
    entities = backstage_catalog()

    def same_cursor(request: httpx.Request) -> httpx.Response:
        body = {"items": entities[:3], "pageInfo": {"nextCursor": "c2"}}
        return httpx.Response(200, json=body)

    async with answering(same_cursor) as remote:
        with pytest.raises(UpstreamError, match="goes round in a loop"):
            await sync_backstage(store, remote, page_size=3)

    assert await service_names(store) == []


async def test_malformed_entities_are_skipped_counted_and_logged(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    entities: list[Any] = [
        *backstage_catalog(),
        backstage_entity("Component", "ledger", {"owner": "payments", "tier": "urgent"}),
        backstage_entity("Component", "fraud-check", {"owner": "group:default/fraud"}),
        {"apiVersion": "backstage.io/v1alpha1", "kind": "Component", "metadata": {}},
        "not an entity",
    ]
    caplog.set_level(logging.WARNING)

    async with client(backstage(entities)) as remote:
        report = await sync_backstage(store, remote)

    assert len(report.skipped) == 4
    assert any("ledger" in s and "spec.tier" in s for s in report.skipped)
    assert any("fraud-check" in s and "not in the catalog" in s for s in report.skipped)
    assert await service_names(store) == ["payments-api", "payments-db", "payments.api"]
    assert sum("skipped a record" in r.getMessage() for r in caplog.records) == 4
    assert all("static-token-1234" not in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"metadata.uid": 5}, "its metadata.uid should be text, got int"),
        ({"metadata.annotations": ["owner"]}, "its metadata.annotations should be an object"),
        ({"spec": "service"}, "its spec should be an object, got str"),
        ({"apiVersion": None}, "the entity has no apiVersion"),
    ],
)
async def test_an_entity_with_a_field_of_the_wrong_shape_is_skipped_counted_and_logged(
    store: Store, caplog: pytest.LogCaptureFixture, change: dict[str, Any], problem: str
) -> None:
    ledger = backstage_entity("Component", "ledger", {"type": "service", "owner": "payments"})
    [(field, value)] = change.items()
    holder = ledger["metadata"] if field.startswith("metadata.") else ledger
    holder[field.removeprefix("metadata.")] = value
    caplog.set_level(logging.WARNING)

    async with client(backstage([*backstage_catalog(), ledger])) as remote:
        report = await sync_backstage(store, remote)

    assert [problem in reason for reason in report.skipped] == [True], report.skipped
    assert any(problem in r.getMessage() for r in caplog.records)
    assert await service_names(store) == ["payments-api", "payments-db", "payments.api"]


async def test_a_page_that_keeps_failing_leaves_the_last_good_data(store: Store) -> None:
    api = backstage(backstage_catalog())
    async with client(api) as remote:
        await sync_backstage(store, remote, page_size=3)
    version = await store.catalog_version()

    api.listings[ENTITIES] = ("items", backstage_catalog()[:2])
    api.fail(BY_QUERY, failure(200, body="{}"))
    sleeps = Sleeps()
    async with client(api, sleeps) as remote:
        with pytest.raises(UpstreamError, match="without a list of items"):
            await sync_backstage(store, remote, page_size=3)
        api.fail(BY_QUERY, *[failure(503) for _ in range(3)])
        with pytest.raises(UpstreamError, match="answered 503"):
            await sync_backstage(store, remote, page_size=3)

    assert sleeps.delays == [0.5, 1.0]
    assert await store.catalog_version() == version
    assert await service_names(store) == ["payments-api", "payments-db", "payments.api"]


async def test_what_backstage_no_longer_has_is_pruned_and_nothing_else(store: Store) -> None:
    await load_yaml(
        store,
        "apiVersion: resilience/v1\nkind: Service\nmetadata: {name: mainframe}\n",
        source="local",
    )
    api = backstage(backstage_catalog())
    async with client(api) as remote:
        await sync_backstage(store, remote)

    api.listings[ENTITIES] = (
        "items",
        [e for e in backstage_catalog() if e["metadata"]["name"] != "payments-db"],
    )
    async with client(api) as remote:
        report = await sync_backstage(store, remote)

    assert report.load is not None
    assert report.load.pruned == {"Service": 1}
    assert await service_names(store) == ["mainframe", "payments-api", "payments.api"]


async def test_nothing_is_pruned_in_a_sync_that_skipped_a_record(store: Store) -> None:
    api = backstage(backstage_catalog())
    async with client(api) as remote:
        await sync_backstage(store, remote)

    # payments-db is malformed today: its last good version must stay.
    broken = backstage_entity("Component", "payments-db", {"owner": "payments", "tier": 9})
    others = [e for e in backstage_catalog() if e["metadata"]["name"] != "payments-db"]
    api.listings[ENTITIES] = ("items", [*others, broken])
    async with client(api) as remote:
        report = await sync_backstage(store, remote)

    assert report.load is not None
    assert report.load.pruned == {}
    assert "nothing was pruned, because some records were skipped" in report.notes
    assert "payments-db" in await service_names(store)


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


CATALOG_INFO = """\
apiVersion: backstage.io/v1alpha1
kind: Component
metadata: {name: storefront, annotations: {github.com/project-slug: acme/storefront}}
spec: {type: website, lifecycle: production, owner: user:default/guest}
---
apiVersion: backstage.io/v1alpha1
kind: User
metadata: {name: guest}
spec: {}
"""
KUBERNETES = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: storefront}
spec: {replicas: 3}
"""


async def test_a_checkout_loads_its_catalog_files_and_ignores_other_yaml(
    store: Store, tmp_path: Path
) -> None:
    write(tmp_path / "repo" / "catalog-info.yaml", CATALOG_INFO)
    write(tmp_path / "repo" / "deploy" / "k8s.yaml", KUBERNETES)
    write(tmp_path / "repo" / ".github" / "workflows" / "ci.yaml", "on: push\njobs: {}\n")

    report = await sync_backstage_files(store, tmp_path / "repo")

    assert report.fetched == {"files": 2, "documents": 2}
    assert report.skipped == []
    graph = await build_graph(store)
    assert graph.services["storefront"].source == "backstage"
    assert graph.services["storefront"].owner == "guest"


async def test_an_unreadable_file_is_skipped_and_include_narrows_the_files(
    store: Store, tmp_path: Path
) -> None:
    write(tmp_path / "repo" / "catalog-info.yaml", CATALOG_INFO)
    write(tmp_path / "repo" / "chart" / "values.yaml", "image: {{ .Values.image }\n")

    everything = await sync_backstage_files(store, tmp_path / "repo", dry_run=True)
    narrowed = await sync_backstage_files(
        store, tmp_path / "repo", include=["**/catalog-info.yaml"]
    )

    assert len(everything.skipped) == 1
    assert "values.yaml" in everything.skipped[0]
    assert narrowed.skipped == []
    assert narrowed.fetched["files"] == 1
    assert await service_names(store) == ["storefront"]


async def test_backstages_own_example_catalog_loads_from_a_folder(store: Store) -> None:
    folder = shared_data("backstage", "backstage", "packages", "catalog-model", "examples")

    report = await sync_backstage_files(store, folder)

    assert report.load is not None
    assert report.load.created["Service"] == 21
    assert report.skipped == []


async def test_a_missing_checkout_is_an_upstream_error(store: Store, tmp_path: Path) -> None:
    with pytest.raises(UpstreamError, match="does not exist"):
        await sync_backstage_files(store, tmp_path / "nowhere")
