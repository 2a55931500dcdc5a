"""The HTTP client every connector uses: retries, backoff, Retry-After, pagination, secrets."""

from __future__ import annotations

import logging
import re
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


def failing_with(error: type[httpx.TransportError], api: FakeApi) -> httpx.MockTransport:
    """A transport whose every request fails with `error`, recorded in `api.requests`."""

    def fail(request: httpx.Request) -> httpx.Response:
        api.requests.append(request)
        raise error("the test's failure", request=request)

    return httpx.MockTransport(fail)


def action_client(transport: httpx.AsyncBaseTransport, sleeps: Sleeps) -> ApiClient:
    return ApiClient(
        "action restart-pods",
        "https://ops.acme.example",
        transport=transport,
        sleep=sleeps,
        retry=RetryPolicy.for_actions(retries=2),
    )


@pytest.mark.parametrize(
    ("error", "what"),
    [
        (httpx.ReadTimeout, "was sent but no answer came within the timeout (ReadTimeout)"),
        (httpx.WriteTimeout, "timed out while being sent (WriteTimeout)"),
        (httpx.RemoteProtocolError, "lost its connection before an answer came"),
        (httpx.ReadError, "lost its connection before an answer came (ReadError)"),
    ],
)
async def test_a_request_that_acts_is_never_sent_again_once_it_may_have_arrived(
    error: type[httpx.TransportError], what: str
) -> None:
    api, sleeps = FakeApi(), Sleeps()

    async with action_client(failing_with(error, api), sleeps) as remote:
        with pytest.raises(UpstreamError) as caught:
            await remote.request("POST", "/hooks/restart", json={"service": "payments-api"})

    assert len(api.requests) == 1
    assert sleeps.delays == []
    assert what in str(caught.value)
    assert "failed to connect" not in str(caught.value)
    assert "may have reached the receiver, so it was not sent again" in str(caught.value)


@pytest.mark.parametrize(
    ("error", "what"),
    [
        (httpx.ConnectError, "failed to connect (ConnectError)"),
        (httpx.ConnectTimeout, "timed out connecting (ConnectTimeout)"),
    ],
)
async def test_a_request_that_acts_is_sent_again_when_it_never_left(
    error: type[httpx.TransportError], what: str
) -> None:
    api, sleeps = FakeApi(), Sleeps()

    async with action_client(failing_with(error, api), sleeps) as remote:
        with pytest.raises(UpstreamError, match=rf"{re.escape(what)} after 3 attempt"):
            await remote.request("POST", "/hooks/restart", json={})

    assert len(api.requests) == 3
    assert len(sleeps.delays) == 2


async def test_a_read_that_timed_out_is_tried_again() -> None:
    api, sleeps = teams(1), Sleeps()
    calls = 0

    def slow_once(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise httpx.ReadTimeout("the test's timeout", request=request)
        return api.handle(request)

    remote = ApiClient(
        "pagerduty",
        "https://api.pagerduty.com",
        transport=httpx.MockTransport(slow_once),
        sleep=sleeps,
    )
    async with remote:
        body = await remote.get_json("/teams")

    assert body["teams"] == [{"id": "T0", "name": "team 0"}]
    assert calls == 2


@pytest.mark.parametrize(("retry_after", "requests"), [(None, 1), ("3", 2)])
async def test_a_request_that_acts_is_retried_on_429_only_when_told_when(
    retry_after: str | None, requests: int
) -> None:
    api, sleeps = FakeApi(documents={"/hooks/restart": {"ok": True}}), Sleeps()
    api.fail("/hooks/restart", failure(429, retry_after=retry_after))

    async with action_client(api.transport, sleeps) as remote:
        if requests == 1:
            with pytest.raises(UpstreamError, match="answered 429"):
                await remote.request("POST", "/hooks/restart", json={})
        else:
            await remote.request("POST", "/hooks/restart", json={})

    assert len(api.requests) == requests
    assert sleeps.delays == ([3.0] if retry_after else [])


@pytest.mark.parametrize(
    ("secret", "echoed"),
    [
        ("Bearer ops-secret-7781-Kq", "ops-secret-7781-Kq"),
        ("Token token=pd-u+Zq7Wn3xYvB", "pd-u+Zq7Wn3xYvB"),
        ('Digest username="ops", response="6629fae49393a053"', "6629fae49393a053"),
    ],
)
def test_the_redactor_removes_each_secret_part_of_a_header_value(secret: str, echoed: str) -> None:
    redact = Redactor([secret])

    assert redact(f"the receiver saw {echoed}") == "the receiver saw [redacted]"
    assert redact(f"sent {secret}") == "sent [redacted]"
    assert redact("a Bearer token was sent") == "a Bearer token was sent"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # The secret straddles the cut: taken out whole before the text is cut.
        ("x" * 15 + "Bearer ops-secret-7781-Kq", "x" * 15 + "[redacted]"),
        # The cut falls in the marker: the marker is kept whole.
        ("x" * 25 + "Bearer ops-secret-7781-Kq and more", "x" * 25 + "[redacted]"),
        # A marker the cut does not fall in stays as it is, and what follows it.
        ('{"caller": "ops-secret-7781-Kq"}', '{"caller": "[redacted]"}'),
        # The sender cut the secret itself: its beginning at the end is taken out.
        ("caller ops-secret-77", "caller [redacted]"),
        ("caller Bearer ops-sec", "caller [redacted]"),
        # A word the secret starts with, or too short a beginning, is left alone.
        ("sent with Bearer ", "sent with Bearer "),
        ("version ops-s", "version ops-s"),
    ],
)
def test_an_excerpt_is_cut_after_the_secrets_are_taken_out(text: str, expected: str) -> None:
    redact = Redactor(["Bearer ops-secret-7781-Kq"])

    assert redact.excerpt(text, 30) == expected


async def test_an_offset_listing_that_repeats_its_page_is_refused() -> None:
    api = FakeApi()

    def first_page_always(request: httpx.Request) -> httpx.Response:
        api.requests.append(request)
        return httpx.Response(200, json={"teams": [{"id": "T0"}, {"id": "T1"}], "more": True})

    remote = ApiClient(
        "pagerduty", "https://api.pagerduty.com", transport=httpx.MockTransport(first_page_always)
    )
    async with remote:
        with pytest.raises(UpstreamError, match="ignores `offset`"):
            await collect_offset_pages(remote, "/teams", "teams", limit=2)

    assert len(api.requests) == 2
