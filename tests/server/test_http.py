"""Streamable HTTP in process: tokens, Host and Origin checks, body limits, the bad-token
throttle, the health check and chat-ops cards."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette

from resilience_mcp.errors import InvalidInputError
from resilience_mcp.models.catalog import OwnerAnswer
from resilience_mcp.models.common import Link, ListCut, OwnerSummary
from resilience_mcp.server import build_server
from resilience_mcp.server.app import build_http_app
from resilience_mcp.server.http import HttpSettings, build_asgi_app
from tests.server.http_support import (
    READ_TOKEN,
    TOKENS,
    WRITE_TOKEN,
    add_probe_tools,
    copy_of_demo,
    http_client,
    mcp_client,
    started,
    text_of,
)
from tests.support import demo_config

pytestmark = pytest.mark.anyio

MODES = [pytest.param("auto", id="default-era"), pytest.param("legacy", id="legacy-era")]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_app(db: str, settings: HttpSettings | None = None, **options: Any) -> Starlette:
    tokens = options.pop("tokens", TOKENS)
    clock = options.pop("clock", None)
    server = add_probe_tools(build_server(demo_config(db, **options)))
    if clock is None:
        return build_asgi_app(server, settings, tokens)
    return build_asgi_app(server, settings, tokens, clock=clock)


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    # Module scope, so that the tests that only read share one running app.
    return "asyncio"


@pytest.fixture(scope="module")
async def app(
    demo_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Starlette]:
    """A running app whose tests only read; its bad-token throttle is off (tested apart)."""
    db = copy_of_demo(demo_template, tmp_path_factory.mktemp("http"))
    async with started(make_app(db, HttpSettings(bad_token_limit=0))) as running:
        yield running


async def test_health_says_starting_until_the_catalog_is_open_then_ok(demo_db: str) -> None:
    app = make_app(demo_db)
    async with http_client(app) as http:
        before = await http.get("/healthz")
        async with started(app):
            during = await http.get("/healthz")

    assert (before.status_code, before.json()["status"]) == (503, "starting")
    assert (during.status_code, during.json()["status"]) == (200, "ok")


@pytest.mark.parametrize("path", ["/mcp", "/cards/get_owner", "/anything-else"])
@pytest.mark.parametrize("token", [None, "not-a-token"])
async def test_without_a_valid_token_every_route_but_health_answers_401(
    app: Starlette, path: str, token: str | None
) -> None:
    async with http_client(app, token=token) as http:
        response = await http.post(path, json={})

    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer ")


@pytest.mark.parametrize("mode", MODES)
async def test_a_read_token_lists_tools_and_calls_a_read_tool(app: Starlette, mode: str) -> None:
    async with mcp_client(app, token=READ_TOKEN, mode=mode) as client:
        tools = {tool.name for tool in (await client.list_tools()).tools}
        result = await client.call_tool("get_owner", {"name": "payments-api"})

    assert {"get_owner", "get_service", "whoami"} <= tools
    assert not result.is_error
    assert result.structured_content is not None
    assert result.structured_content["owner"]["owner"] == "team-payments"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("token", "client"), [(READ_TOKEN, "chat-bot"), (WRITE_TOKEN, "ops-agent")]
)
async def test_a_tool_knows_which_client_called(
    app: Starlette, mode: str, token: str, client: str
) -> None:
    async with mcp_client(app, token=token, mode=mode) as session:
        result = await session.call_tool("whoami", {})

    assert result.structured_content == {"client": client}


@pytest.mark.parametrize("mode", MODES)
async def test_a_stateful_server_keeps_a_session_for_each_client(demo_db: str, mode: str) -> None:
    app = make_app(demo_db, HttpSettings(stateless=False))
    async with started(app), mcp_client(app, token=READ_TOKEN, mode=mode) as client:
        first = await client.call_tool("whoami", {})
        second = await client.call_tool("get_owner", {"name": "payments-api"})
        async with http_client(app, token=READ_TOKEN) as http:
            card = await http.post("/cards/whoami", json={})

    assert first.structured_content == {"client": "chat-bot"}
    assert not second.is_error
    assert card.json()["title"] == "caller chat-bot"


async def test_without_tokens_a_loopback_server_needs_none(demo_db: str) -> None:
    async with started(make_app(demo_db, tokens=None)) as app:
        async with mcp_client(app) as client:
            result = await client.call_tool("whoami", {})
        async with http_client(app) as http:
            card = await http.post("/cards/get_owner", json={"name": "payments-api"})
            wrong_method = await http.get("/cards/get_owner")

    assert result.structured_content == {"client": None}
    assert card.status_code == 200
    assert wrong_method.status_code == 405


@pytest.mark.parametrize("path", ["/mcp", "/cards/get_owner"])
async def test_an_oversized_body_gets_413(demo_db: str, path: str) -> None:
    settings = HttpSettings(max_body_bytes=1000)
    body = b'{"name": "' + b"x" * 2000 + b'"}'
    async with started(make_app(demo_db, settings)) as app, http_client(app) as http:
        response = await http.post(
            path,
            content=body,
            headers={"authorization": f"Bearer {READ_TOKEN}", "content-type": "application/json"},
        )

    assert response.status_code == 413


@pytest.mark.parametrize("path", ["/mcp", "/cards/get_owner"])
@pytest.mark.parametrize(
    ("header", "value", "status"),
    [("host", "evil.example.com", 421), ("origin", "http://evil.example.com", 403)],
)
async def test_a_foreign_host_or_origin_is_refused(
    app: Starlette, path: str, header: str, value: str, status: int
) -> None:
    async with http_client(app, token=READ_TOKEN, headers={header: value}) as http:
        response = await http.post(path, json={"name": "payments-api"})

    assert response.status_code == status


async def test_configured_hosts_and_origins_are_accepted(demo_db: str) -> None:
    settings = HttpSettings(
        allowed_hosts=("mcp.example.com",), allowed_origins=("https://chat.example.com",)
    )
    headers = {"host": "mcp.example.com:443", "origin": "https://chat.example.com"}
    async with (
        started(make_app(demo_db, settings)) as app,
        http_client(app, token=READ_TOKEN, headers=headers) as http,
    ):
        response = await http.post("/cards/get_owner", json={"name": "payments-api"})

    assert response.status_code == 200


def test_the_host_list_takes_configured_names_with_any_port_or_the_one_given() -> None:
    settings = HttpSettings(host="10.0.0.5", allowed_hosts=("mcp.example.com", "api.example:8443"))

    hosts = settings.transport_security().allowed_hosts

    assert {"mcp.example.com", "mcp.example.com:*", "api.example:8443", "10.0.0.5:*"} <= set(hosts)
    assert "api.example:8443:*" not in hosts
    assert "127.0.0.1:*" in hosts


async def test_repeated_bad_tokens_from_one_address_are_refused_until_the_window_passes(
    demo_db: str,
) -> None:
    clock = FakeClock()
    settings = HttpSettings(bad_token_limit=3, bad_token_window_seconds=60)
    async with started(make_app(demo_db, settings, clock=clock)) as app:
        async with http_client(app, token="wrong") as bad:
            statuses = [(await bad.post("/mcp", json={})).status_code for _ in range(4)]
        async with http_client(app, token=READ_TOKEN) as good:
            refused = await good.post("/cards/get_owner", json={"name": "payments-api"})
            clock.now += 61
            accepted = await good.post("/cards/get_owner", json={"name": "payments-api"})

    assert statuses == [401, 401, 401, 429]
    assert refused.status_code == 429
    assert 0 < int(refused.headers["retry-after"]) <= 60
    assert accepted.status_code == 200


async def test_requests_without_a_token_or_with_a_good_one_do_not_count_as_bad(
    demo_db: str,
) -> None:
    settings = HttpSettings(bad_token_limit=2)
    async with started(make_app(demo_db, settings)) as app:
        async with http_client(app) as anonymous:
            for _ in range(3):
                await anonymous.post("/mcp", json={})
        async with http_client(app, token=READ_TOKEN) as good:
            for _ in range(3):
                await good.post("/cards/get_owner", json={"name": "payments-api"})
            response = await good.post("/cards/get_owner", json={"name": "payments-api"})

    assert response.status_code == 200


async def test_a_card_is_the_answer_title_and_its_first_lines(app: Starlette) -> None:
    async with http_client(app, token=READ_TOKEN) as http:
        response = await http.post("/cards/get_owner", json={"name": "payments-api"})

    card = response.json()
    assert response.status_code == 200
    assert card["title"].startswith("Service payments-api: owned by team-payments")
    assert any(line.startswith("members:") for line in card["lines"])


RUNBOOKS = "https://runbooks.example.com"


@pytest.mark.parametrize(
    ("tool", "arguments", "links"),
    [
        (
            "get_service",
            {"name": "checkout"},
            [
                f"{RUNBOOKS}/checkout/checkout",
                "https://github.example.com/northwind/checkout",
                "https://grafana.example.com/d/checkout",
                "https://grafana.example.com/d/checkout-funnel",
            ],
        ),
        (
            "get_owner",
            {"name": "payments-api"},
            [
                f"{RUNBOOKS}/payments/payments-api",
                "https://github.example.com/northwind/payments-api",
                "https://grafana.example.com/d/payments-api",
                "https://grafana.example.com/d/payments-psp",
                "https://grafana.example.com/d/payments-db-pool",
                "https://wiki.example.com/northwind/payments/psp-failover",
            ],
        ),
        (
            "impact_of_incident",
            {"incident": "INC-2046"},
            [
                f"{RUNBOOKS}/payments/payments-api",
                f"{RUNBOOKS}/payments/payments-db",
                f"{RUNBOOKS}/checkout/checkout",
                f"{RUNBOOKS}/payments/ledger",
            ],
        ),
    ],
    ids=["service", "owner", "impact"],
)
async def test_a_card_links_to_the_runbooks_repositories_and_dashboards_of_the_catalog(
    app: Starlette, tool: str, arguments: dict[str, str], links: list[str]
) -> None:
    async with http_client(app, token=READ_TOKEN) as http:
        response = await http.post(f"/cards/{tool}", json=arguments)

    # The team's channel (#team-...) is not a web address, so it is not a link.
    assert response.json()["links"] == links


@pytest.mark.parametrize(
    ("channel", "links"),
    [
        ("https://chat.example.com/c/payments", ["https://chat.example.com/c/payments"]),
        ("#payments", []),
    ],
)
def test_a_card_links_the_team_channel_when_it_is_a_web_address(
    channel: str, links: list[str]
) -> None:
    answer = OwnerAnswer(
        name="team-payments",
        kind="Team",
        owner=OwnerSummary(owner="team-payments", chat_channel=channel),
        members_page=ListCut.of(0, 0),
        links=[Link(url="https://wiki.example.com/payments")],
    )

    assert answer.card().links == ["https://wiki.example.com/payments", *links]


async def test_a_card_is_drawn_by_the_answer_model_itself(app: Starlette) -> None:
    async with http_client(app, token=WRITE_TOKEN) as http:
        response = await http.post("/cards/whoami", json={})

    assert response.json() == {
        "title": "caller ops-agent",
        "lines": [],
        "links": ["https://example.com/me"],
    }


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        ("/cards/no_such_tool", {}, 404, "No tool is named 'no_such_tool'"),
        ("/cards/touch", {}, 403, "Cards are for read tools"),
        ("/cards/get_owner", [1, 2], 400, "must be a JSON object"),
        ("/cards/get_owner", {"name": "no-such-thing-at-all"}, 422, "No entity is named"),
        ("/cards/get_owner", {}, 422, "name"),
    ],
)
async def test_a_card_request_that_cannot_be_answered_says_why(
    app: Starlette, path: str, body: Any, status: int, message: str
) -> None:
    async with http_client(app, token=WRITE_TOKEN) as http:
        response = await http.post(path, json=body)

    assert response.status_code == status
    assert message in response.json()["error"]


async def test_a_card_request_must_be_json(app: Starlette) -> None:
    async with http_client(app, token=READ_TOKEN) as http:
        response = await http.post("/cards/get_owner", content=b"name=payments-api")

    assert response.status_code == 400
    assert "Content-Type" in response.json()["error"]


async def test_cards_refuse_a_get(app: Starlette) -> None:
    async with http_client(app, token=READ_TOKEN) as http:
        response = await http.get("/cards/get_owner")

    assert response.status_code == 405


@pytest.mark.parametrize("writes", [False, True])
async def test_write_tools_are_offered_over_http_only_when_writes_are_on(
    demo_db: str, writes: bool
) -> None:
    app = make_app(demo_db, toolsets=("all",), enable_writes=writes)
    async with started(app), mcp_client(app, token=WRITE_TOKEN) as client:
        tools = (await client.list_tools()).tools

    real_writes = {
        t.name
        for t in tools
        if t.annotations and t.annotations.read_only_hint is False and t.name != "touch"
    }
    assert bool(real_writes) == writes
    assert ("set_feature_flag" in real_writes) == writes


async def test_a_read_token_calling_a_write_tool_is_refused_and_a_write_token_is_not(
    demo_db: str,
) -> None:
    app = make_app(demo_db, toolsets=("all",), enable_writes=True)
    arguments = {"title": "Checkout errors in prod-eu", "severity": "SEV3", "dry_run": True}
    async with started(app):
        async with mcp_client(app, token=READ_TOKEN) as reader:
            refused = await reader.call_tool("declare_incident", arguments)
        async with mcp_client(app, token=WRITE_TOKEN) as writer:
            accepted = await writer.call_tool("declare_incident", arguments)

    assert refused.is_error
    assert "needs a token with the 'write' scope" in text_of(refused)
    assert "chat-bot" in text_of(refused)
    assert not accepted.is_error, text_of(accepted)


@pytest.mark.parametrize(
    ("host", "writes", "message"),
    [
        ("0.0.0.0", False, "Refusing to listen on 0.0.0.0 without authentication"),
        ("127.0.0.1", True, "Write tools over HTTP need bearer tokens"),
    ],
)
def test_an_unsafe_http_server_is_refused(
    demo_db: str, host: str, writes: bool, message: str
) -> None:
    config = demo_config(demo_db, enable_writes=writes)

    with pytest.raises(InvalidInputError, match=message):
        build_http_app(config, HttpSettings(host=host), None)


def test_with_tokens_any_address_may_be_served(demo_db: str) -> None:
    config = demo_config(demo_db, enable_writes=True)

    assert build_http_app(config, HttpSettings(host="0.0.0.0"), TOKENS) is not None
