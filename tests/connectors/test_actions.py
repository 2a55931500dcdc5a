"""Outbound actions run by an agent: sent to a real receiver on loopback, guarded, audited."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.types import CallToolResult, TextContent
from sqlmodel import col, select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from resilience_mcp import models as m
from resilience_mcp.models.connectors import ActionSpec, ConnectorSettings
from resilience_mcp.server import build_server
from resilience_mcp.server.state import ServerConfig
from resilience_mcp.store import Store
from tests.connectors.fakes import on_loopback
from tests.support import fixed_clock

pytestmark = pytest.mark.anyio

SECRET = "ops-secret-7781-Kq"
SCHEMA = {
    "type": "object",
    "properties": {
        "service": {"type": "string"},
        "environment": {"enum": ["production", "staging"]},
    },
    "required": ["service", "environment"],
    "additionalProperties": False,
}
GOOD = {"service": "payments-api", "environment": "production"}


@dataclass
class Receiver:
    """A tiny system on the other end: it records what it got and answers as told."""

    url: str = ""
    received: list[dict[str, Any]] = field(default_factory=list)
    # Set when a stalled request has arrived; what it waits for, set when the test is done.
    arrived: anyio.Event = field(default_factory=anyio.Event)
    release: anyio.Event = field(default_factory=anyio.Event)

    async def restart(self, request: Request) -> Response:
        self.received.append({"headers": dict(request.headers), "body": await request.json()})
        echo = request.headers.get("authorization", "")
        return JSONResponse({"accepted": True, "seen": echo}, status_code=202)

    async def broken(self, request: Request) -> Response:
        self.received.append({"headers": dict(request.headers), "body": await request.json()})
        return JSONResponse({"error": "pager is down"}, status_code=500)

    async def stall(self, request: Request) -> Response:
        """Takes the request, then answers only once the test is over."""
        self.received.append({"headers": dict(request.headers), "body": await request.json()})
        self.arrived.set()
        await self.release.wait()
        return JSONResponse({"accepted": True}, status_code=202)

    async def echo_token(self, request: Request) -> Response:
        """Echoes the token part of the Authorization header, as some receivers do."""
        self.received.append({"headers": dict(request.headers), "body": await request.json()})
        token = request.headers.get("authorization", "").split()[-1]
        return JSONResponse({"accepted": True, "caller": token})

    async def echo_late(self, request: Request) -> Response:
        """Echoes the Authorization header after a long preamble, across where an answer
        cuts the reply."""
        self.received.append({"headers": dict(request.headers), "body": await request.json()})
        return PlainTextResponse("x" * 490 + "auth " + request.headers.get("authorization", ""))

    async def echo_clipped(self, request: Request) -> Response:
        """Echoes the start of the token only, as a receiver that shortens what it logs."""
        self.received.append({"headers": dict(request.headers), "body": await request.json()})
        return PlainTextResponse("caller " + request.headers.get("authorization", "")[:-4])

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/hooks/restart", self.restart, methods=["POST"]),
                Route("/hooks/page", self.broken, methods=["POST"]),
                Route("/hooks/stall", self.stall, methods=["POST"]),
                Route("/hooks/echo", self.echo_token, methods=["POST"]),
                Route("/hooks/late", self.echo_late, methods=["POST"]),
                Route("/hooks/clipped", self.echo_clipped, methods=["POST"]),
            ]
        )


@pytest.fixture
async def receiver(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Receiver]:
    monkeypatch.setenv("OPS_TOKEN", f"Bearer {SECRET}")
    found = Receiver()
    async with on_loopback(found.app()) as url:
        found.url = url
        try:
            yield found
        finally:
            found.release.set()


def actions(url: str, *extra: ActionSpec) -> ConnectorSettings:
    return ConnectorSettings(
        actions=[
            *extra,
            ActionSpec(
                name="restart-pods",
                description="Restart a service's pods in one environment.",
                url=f"{url}/hooks/restart",
                headers={"Authorization": "OPS_TOKEN"},
                input_schema=SCHEMA,
            ),
            ActionSpec(
                name="page-team",
                description="Page a team through the old pager.",
                url=f"{url}/hooks/page",
                input_schema={"type": "object", "properties": {"team": {"type": "string"}}},
            ),
        ]
    )


def client(db_url: str, receiver: Receiver, *extra: ActionSpec, writes: bool = True) -> Client:
    config = ServerConfig(
        db_url=db_url,
        toolsets=("writes",),
        enable_writes=writes,
        clock=fixed_clock(),
        connectors=actions(receiver.url, *extra),
    )
    return Client(build_server(config))


def text(result: CallToolResult) -> str:
    return "\n".join(b.text for b in result.content if isinstance(b, TextContent))


async def audit(store: Store) -> list[m.AuditRecord]:
    async with store.session() as session:
        rows = await session.execute(
            select(m.AuditRecord)
            .where(col(m.AuditRecord.tool) == "run_action")
            .order_by(col(m.AuditRecord.id))
        )
        return list(rows.scalars().all())


async def test_with_writes_off_actions_are_listed_and_cannot_be_run(
    db_url: str, receiver: Receiver
) -> None:
    async with client(db_url, receiver, writes=False) as mcp:
        names = {tool.name for tool in (await mcp.list_tools()).tools}
        listed = await mcp.call_tool("list_actions", {})

    assert "run_action" not in names
    assert "list_actions" in names
    assert listed.structured_content is not None
    assert [a["name"] for a in listed.structured_content["actions"]] == [
        "page-team",
        "restart-pods",
    ]
    assert listed.structured_content["actions"][1]["host"] == "127.0.0.1"
    assert "run_action is not available" in text(listed)
    assert SECRET not in json.dumps(listed.structured_content)


async def test_the_input_schema_of_run_action_stays_flat(db_url: str, receiver: Receiver) -> None:
    async with client(db_url, receiver) as mcp:
        tool = next(t for t in (await mcp.list_tools()).tools if t.name == "run_action")

    schema = json.dumps(tool.input_schema)
    assert "$ref" not in schema
    assert "$defs" not in schema


async def test_an_action_is_sent_once_with_its_secret_header_and_audited(
    store: Store, db_url: str, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    arguments = {"name": "restart-pods", "inputs": GOOD, "idempotency_key": "restart-0001"}

    async with client(db_url, receiver) as mcp:
        first = await mcp.call_tool("run_action", arguments)
        again = await mcp.call_tool("run_action", arguments)

    assert not first.is_error, text(first)
    assert text(first).startswith("Ran restart-pods: 127.0.0.1 answered 202 Accepted.")
    assert len(receiver.received) == 1
    sent = receiver.received[0]
    assert sent["headers"]["authorization"] == f"Bearer {SECRET}"
    assert sent["headers"]["idempotency-key"] == "restart-0001"
    assert sent["body"] == {
        "action": "restart-pods",
        "inputs": GOOD,
        "idempotency_key": "restart-0001",
        "requested_by": "local",
    }
    assert again.structured_content is not None
    assert again.structured_content["replayed"] is True

    records = await audit(store)
    assert [(r.outcome, r.actor, r.dry_run) for r in records] == [
        ("ok", "local", False),
        ("replayed", "local", False),
    ]
    assert records[0].arguments == {"name": "restart-pods", "inputs": GOOD}
    everything = [text(first), json.dumps(first.structured_content), json.dumps(records[0].result)]
    everything += [r.getMessage() for r in caplog.records]
    assert all(SECRET not in item for item in everything)


async def test_a_dry_run_shows_the_request_and_sends_nothing(
    store: Store, db_url: str, receiver: Receiver
) -> None:
    async with client(db_url, receiver) as mcp:
        result = await mcp.call_tool(
            "run_action", {"name": "restart-pods", "inputs": GOOD, "dry_run": True}
        )

    assert receiver.received == []
    assert text(result).startswith("Dry run, nothing written: Would run restart-pods")
    assert "headers: Authorization, Content-Type, User-Agent" in text(result)
    assert SECRET not in text(result)
    assert [(r.outcome, r.dry_run) for r in await audit(store)] == [("ok", True)]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            {"name": "restart-pods", "inputs": {"service": "x", "environment": "moon"}},
            "The inputs do not fit action restart-pods: environment: 'moon' is not one of",
        ),
        ({"name": "restart-pods"}, "'service' is a required property"),
        ({"name": "restart-pod", "inputs": GOOD}, "No action is named 'restart-pod'"),
    ],
)
async def test_bad_calls_are_refused_with_a_reason_and_send_nothing(
    db_url: str, receiver: Receiver, arguments: dict[str, Any], message: str
) -> None:
    async with client(db_url, receiver) as mcp:
        result = await mcp.call_tool("run_action", arguments)

    assert result.is_error
    assert message in text(result)
    assert receiver.received == []


async def test_a_receiver_failure_is_reported_and_audited_as_failed(
    store: Store, db_url: str, receiver: Receiver
) -> None:
    async with client(db_url, receiver) as mcp:
        result = await mcp.call_tool("run_action", {"name": "page-team", "inputs": {"team": "sre"}})

    assert result.is_error
    assert "answered 500 Internal Server Error after 1 attempt" in text(result)
    assert len(receiver.received) == 1, "a 5xx is not retried: the receiver may have acted"
    records = await audit(store)
    assert [r.outcome for r in records] == ["failed"]


async def test_a_missing_secret_is_an_error_for_the_operator(
    db_url: str, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPS_TOKEN")

    async with client(db_url, receiver) as mcp:
        result = await mcp.call_tool("run_action", {"name": "restart-pods", "inputs": GOOD})

    assert result.is_error
    assert "needs $OPS_TOKEN" in text(result)
    assert receiver.received == []


async def test_without_configured_actions_run_action_says_so(db_url: str) -> None:
    config = ServerConfig(
        db_url=db_url, toolsets=("writes",), enable_writes=True, clock=fixed_clock()
    )

    async with Client(build_server(config)) as mcp:
        listed = await mcp.call_tool("list_actions", {})
        result = await mcp.call_tool("run_action", {"name": "restart-pods"})

    assert text(listed) == "No actions are configured on this server."
    assert result.is_error
    assert "No actions are configured on this server" in text(result)


def extra_action(receiver: Receiver, path: str, **options: Any) -> ActionSpec:
    return ActionSpec(
        name=path.rsplit("/", 1)[-1],
        description="An action the test configures.",
        url=f"{receiver.url}{path}",
        headers={"Authorization": "OPS_TOKEN"},
        **options,
    )


async def test_an_action_whose_answer_times_out_is_sent_once_and_says_it_may_have_acted(
    store: Store, db_url: str, receiver: Receiver
) -> None:
    stall = extra_action(receiver, "/hooks/stall", timeout_seconds=0.5)

    async with client(db_url, receiver, stall) as mcp:
        result = await mcp.call_tool("run_action", {"name": "stall", "inputs": {}})

    assert result.is_error
    assert len(receiver.received) == 1, "a request that may have arrived is not sent again"
    message = text(result)
    assert "no answer came within the timeout (ReadTimeout) after 1 attempt" in message
    assert "may have reached the receiver" in message
    assert "failed to connect" not in message
    assert [r.outcome for r in await audit(store)] == ["failed"]


async def test_a_receiver_echoing_only_the_token_leaks_it_nowhere(
    store: Store, db_url: str, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    echo = extra_action(receiver, "/hooks/echo")

    async with client(db_url, receiver, echo) as mcp:
        result = await mcp.call_tool("run_action", {"name": "echo", "inputs": {}})

    assert not result.is_error, text(result)
    assert receiver.received[0]["headers"]["authorization"] == f"Bearer {SECRET}"
    records = await audit(store)
    everything = [text(result), *(json.dumps(r.result) for r in records)]
    everything += [r.getMessage() for r in caplog.records]
    assert all(SECRET not in item for item in everything)
    assert '"caller":"[redacted]"' in text(result)


def pieces(secret: str, size: int = 6) -> set[str]:
    """Every run of `size` characters of `secret`: any of them in a text is a leak."""
    return {secret[i : i + size] for i in range(len(secret) - size + 1)} - {"secret"}


@pytest.mark.parametrize("path", ["/hooks/late", "/hooks/clipped"])
async def test_a_secret_cut_where_the_reply_is_cut_leaks_no_part_of_it(
    store: Store, db_url: str, receiver: Receiver, path: str
) -> None:
    echo = extra_action(receiver, path)

    async with client(db_url, receiver, echo) as mcp:
        result = await mcp.call_tool("run_action", {"name": path.rsplit("/", 1)[-1], "inputs": {}})

    assert not result.is_error, text(result)
    [record] = await audit(store)
    everything = [text(result), json.dumps(result.structured_content), json.dumps(record.result)]
    leaks = [p for p in pieces(SECRET) for item in everything if p in item]
    assert leaks == []
    assert "[redacted]" in json.dumps(record.result)


async def test_two_concurrent_runs_with_one_key_send_one_request(
    store: Store, db_url: str, receiver: Receiver
) -> None:
    stall = extra_action(receiver, "/hooks/stall", timeout_seconds=60)
    arguments = {"name": "stall", "inputs": {}, "idempotency_key": "stall-0001"}
    results: dict[str, CallToolResult] = {}

    async with client(db_url, receiver, stall) as one, client(db_url, receiver, stall) as two:

        async def run_first() -> None:
            results["first"] = await one.call_tool("run_action", arguments)

        async with anyio.create_task_group() as group:
            group.start_soon(run_first)
            await receiver.arrived.wait()
            results["second"] = await two.call_tool("run_action", arguments)
            receiver.release.set()
        results["third"] = await two.call_tool("run_action", arguments)

    assert len(receiver.received) == 1
    assert not results["first"].is_error, text(results["first"])
    assert results["second"].is_error
    assert "is still in progress, so this one did nothing" in text(results["second"])
    assert results["third"].structured_content is not None
    assert results["third"].structured_content["replayed"] is True
    assert sorted(r.outcome for r in await audit(store)) == ["conflict", "ok", "replayed"]
