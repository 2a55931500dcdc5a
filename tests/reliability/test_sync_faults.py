"""A remote catalog that fails during a sync: the last good data is kept, the error says what
failed, and no secret reaches the error or the log.

The remote is Backstage's catalog API, served by `httpx.MockTransport`; retries run
without waiting.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from resilience_mcp.connectors.backstage import sync_backstage
from resilience_mcp.connectors.http import ApiClient, RetryPolicy
from resilience_mcp.errors import UpstreamError
from resilience_mcp.store import Store
from tests.reliability.snapshot import snapshot

pytestmark = pytest.mark.anyio

TOKEN = "bk-secret-4a1f9c2e7d"
BASE_URL = "https://backstage.example.com"
BY_QUERY = "/api/catalog/entities/by-query"

Handler = Callable[[httpx.Request], httpx.Response]


def entity(kind: str, name: str, spec: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "backstage.io/v1alpha1",
        "kind": kind,
        "metadata": {"name": name, "uid": f"uid-{name}", "namespace": "default"},
        "spec": spec or {},
    }


ENTITIES = [
    entity("Group", "team-a", {"type": "team", "children": []}),
    entity("User", "ann", {"memberOf": ["team-a"]}),
    *(entity("Component", f"svc-{i}", {"type": "service", "owner": "team-a"}) for i in range(6)),
]


def paged(items: list[dict[str, Any]], size: int = 4) -> Handler:
    """The by-query listing of `items`, `size` per page, with cursors."""

    def handle(request: httpx.Request) -> httpx.Response:
        assert request.url.path == BY_QUERY
        start = int(request.url.params.get("cursor", "0"))
        page = items[start : start + size]
        more = start + size < len(items)
        info = {"nextCursor": str(start + size)} if more else {}
        return httpx.Response(200, json={"items": page, "totalItems": len(items), "pageInfo": info})

    return handle


def failing_after_first_page(status: int) -> Handler:
    good = paged(ENTITIES)

    def handle(request: httpx.Request) -> httpx.Response:
        if "cursor" in request.url.params:
            # Remotes echo what they got; the token must still not reach an error or a log.
            return httpx.Response(status, text=f"upstream exploded on token {TOKEN}")
        return good(request)

    return handle


def raising(error: type[httpx.TransportError]) -> Handler:
    def handle(request: httpx.Request) -> httpx.Response:
        raise error("the remote is down", request=request)

    return handle


def answering(response: httpx.Response) -> Handler:
    return lambda _request: response


OUTAGES = {
    "connection refused": raising(httpx.ConnectError),
    "read timeout": raising(httpx.ReadTimeout),
    "503 on every try": answering(httpx.Response(503, headers={"retry-after": "1"})),
    "the second page fails": failing_after_first_page(500),
    "a token that stopped working": answering(
        httpx.Response(401, json={"error": f"token {TOKEN} expired"})
    ),
    "an HTML error page": answering(
        httpx.Response(200, text=f"<html>maintenance for {TOKEN}</html>")
    ),
    "a listing that is not an object": answering(httpx.Response(200, json=[1, 2, 3])),
}


async def no_wait(_seconds: float) -> None:
    return None


async def sync(store: Store, handler: Handler) -> None:
    client = ApiClient(
        "backstage",
        BASE_URL,
        headers={"Authorization": f"Bearer {TOKEN}"},
        secrets=[TOKEN],
        retry=RetryPolicy(retries=2),
        transport=httpx.MockTransport(handler),
        sleep=no_wait,
    )
    async with client:
        await sync_backstage(store, client, prune=True)


@pytest.mark.parametrize("outage", OUTAGES.values(), ids=OUTAGES.keys())
async def test_a_failed_sync_keeps_the_last_good_data_and_says_what_failed(
    sqlite_store: Store, outage: Handler, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # The driver's own chatter is only noise here, and slow.
    caplog.set_level(logging.INFO, logger="aiosqlite")
    await sync(sqlite_store, paged(ENTITIES))
    good = await snapshot(sqlite_store)

    with pytest.raises(UpstreamError) as caught:
        await sync(sqlite_store, outage)

    assert "backstage" in str(caught.value)
    assert TOKEN not in str(caught.value)
    assert TOKEN not in caplog.text
    assert await snapshot(sqlite_store) == good
    assert len(good["service"]) == 6


async def test_a_sync_after_the_outage_brings_the_catalog_up_to_date(store: Store) -> None:
    await sync(store, paged(ENTITIES))
    with pytest.raises(UpstreamError):
        await sync(store, raising(httpx.ConnectError))

    await sync(store, paged([*ENTITIES, entity("Component", "svc-new", {"owner": "team-a"})]))

    assert len((await snapshot(store))["service"]) == 7


@pytest.mark.parametrize(
    "listing",
    [[], [{"kind": "Component"}, "not an entity", {"metadata": {"name": "x"}}]],
    ids=["an empty listing", "only malformed records"],
)
async def test_a_listing_that_looks_like_an_outage_prunes_nothing(
    sqlite_store: Store, listing: list[Any]
) -> None:
    await sync(sqlite_store, paged(ENTITIES))
    good = await snapshot(sqlite_store)

    await sync(sqlite_store, paged(listing))

    assert (await snapshot(sqlite_store))["service"] == good["service"]
