"""The HTTP client every connector uses: retries, backoff, Retry-After, pagination, secrets."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from resilience_mcp.connectors.http import (
    ApiClient,
    Redactor,
    RetryPolicy,
    collect_offset_pages,
)
from resilience_mcp.errors import UpstreamError
from tests.connectors.fakes import FakeApi, Sleeps, failure

pytestmark = pytest.mark.anyio

SECRET = "pd-token-u+Zq7Wn3xYvB"


def client(api: FakeApi, sleeps: Sleeps, **options: object) -> ApiClient:
    return ApiClient(
        "pagerduty",
        "https://api.pagerduty.com",
        headers={"Authorization": f"Token token={SECRET}"},
        secrets=[SECRET],
        transport=api.transport,
        sleep=sleeps,
        **options,  # type: ignore[arg-type]
    )


def teams(count: int) -> FakeApi:
    return FakeApi(
        {"/teams": ("teams", [{"id": f"T{i}", "name": f"team {i}"} for i in range(count)])}
    )


async def test_a_429_is_retried_after_the_seconds_retry_after_asks_for() -> None:
    api, sleeps = teams(1), Sleeps()
    api.fail("/teams", failure(429, retry_after="7"), failure(429, retry_after="2"))

    async with client(api, sleeps) as remote:
        body = await remote.get_json("/teams")

    assert body["teams"] == [{"id": "T0", "name": "team 0"}]
    assert sleeps.delays == [7.0, 2.0]
    assert len(api.requests) == 3


async def test_retry_after_as_an_http_date_is_honoured() -> None:
    api, sleeps = teams(1), Sleeps()
    when = datetime.now(UTC) + timedelta(seconds=30)
    api.fail("/teams", failure(503, retry_after=format_datetime(when, usegmt=True)))

    async with client(api, sleeps) as remote:
        await remote.get_json("/teams")

    assert len(sleeps.delays) == 1
    assert 0 < sleeps.delays[0] <= 30


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_server_errors_back_off_exponentially_then_give_up(status: int) -> None:
    api, sleeps = teams(1), Sleeps()
    api.fail("/teams", *[failure(status) for _ in range(5)])

    async with client(api, sleeps, retry=RetryPolicy(retries=3, base_delay=0.5)) as remote:
        with pytest.raises(UpstreamError, match=rf"answered {status}.* after 4 attempt"):
            await remote.get_json("/teams")

    assert sleeps.delays == [0.5, 1.0, 2.0]


async def test_a_retry_after_longer_than_allowed_fails_at_once() -> None:
    api, sleeps = teams(1), Sleeps()
    api.fail("/teams", failure(429, retry_after="3600"))

    async with client(api, sleeps) as remote:
        with pytest.raises(UpstreamError, match="answered 429"):
            await remote.get_json("/teams")

    assert sleeps.delays == []


@pytest.mark.parametrize(
    ("status", "advice"), [(401, "check the token"), (404, "check the url"), (400, "settings")]
)
async def test_client_errors_are_not_retried(status: int, advice: str) -> None:
    api, sleeps = teams(1), Sleeps()
    api.fail("/teams", failure(status))

    async with client(api, sleeps) as remote:
        with pytest.raises(UpstreamError, match=advice):
            await remote.get_json("/teams")

    assert len(api.requests) == 1


async def test_connection_failures_are_retried_and_reported_without_the_url() -> None:
    sleeps = Sleeps()

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    remote = ApiClient(
        "backstage",
        f"https://user:{SECRET}@backstage.acme.example",
        transport=httpx.MockTransport(refuse),
        sleep=sleeps,
        secrets=[SECRET],
        retry=RetryPolicy(retries=2),
    )
    async with remote:
        with pytest.raises(UpstreamError) as caught:
            await remote.get_json("/api/catalog/entities?token=x")

    assert "failed to connect (ConnectError)" in str(caught.value)
    assert SECRET not in str(caught.value)
    assert "token=x" not in str(caught.value)
    assert len(sleeps.delays) == 2


async def test_secrets_appear_in_no_log_line_and_no_error(caplog: pytest.LogCaptureFixture) -> None:
    api, sleeps = teams(1), Sleeps()
    api.fail(f"/teams/{SECRET}", failure(500), failure(500), failure(500))
    caplog.set_level(logging.DEBUG)

    async with client(api, sleeps, retry=RetryPolicy(retries=2)) as remote:
        with pytest.raises(UpstreamError) as caught:
            await remote.get_json(f"/teams/{SECRET}")

    assert SECRET not in str(caught.value)
    assert "[redacted]" in str(caught.value)
    assert caplog.records, "the retries were logged"
    assert all(SECRET not in record.getMessage() for record in caplog.records)
    assert api.requests[0].headers["Authorization"] == f"Token token={SECRET}"


async def test_a_body_that_is_not_json_is_an_upstream_error() -> None:
    api = FakeApi()
    api.fail("/teams", httpx.Response(200, text="<html>login</html>"))

    async with client(api, Sleeps()) as remote:
        with pytest.raises(UpstreamError, match="not JSON"):
            await remote.get_json("/teams")


@pytest.mark.parametrize(("count", "limit", "pages"), [(0, 10, 1), (10, 10, 1), (25, 10, 3)])
async def test_offset_pages_are_read_until_more_is_false(
    count: int, limit: int, pages: int
) -> None:
    api = teams(count)

    async with client(api, Sleeps()) as remote:
        items = await collect_offset_pages(remote, "/teams", "teams", limit=limit)

    assert [t["id"] for t in items] == [f"T{i}" for i in range(count)]
    assert len(api.requests) == pages
    assert [r.url.params["offset"] for r in api.requests] == [str(i * limit) for i in range(pages)]


async def test_a_failed_page_fails_the_whole_listing() -> None:
    api, sleeps = teams(30), Sleeps()
    api.requests.clear()
    # The second page keeps failing: nothing of the listing is returned.
    original = api.handle

    def second_page_down(request: httpx.Request) -> httpx.Response:
        if request.url.params.get("offset") == "10":
            api.requests.append(request)
            return failure(502)
        return original(request)

    remote = ApiClient(
        "pagerduty",
        "https://api.pagerduty.com",
        transport=httpx.MockTransport(second_page_down),
        sleep=sleeps,
        retry=RetryPolicy(retries=1),
    )
    async with remote:
        with pytest.raises(UpstreamError, match="answered 502"):
            await collect_offset_pages(remote, "/teams", "teams", limit=10)


def test_the_redactor_removes_every_secret_longest_first() -> None:
    redact = Redactor(["abc", "abcdef", ""])

    assert redact("key abcdef and abc") == "key [redacted] and [redacted]"
