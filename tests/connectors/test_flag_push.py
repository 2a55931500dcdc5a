"""set_feature_flag pushing to a flagd-compatible endpoint on loopback: the flag service
gets the change first, and the catalog changes only when it took it."""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from jsonschema import Draft7Validator  # type: ignore[import-untyped]
from mcp import Client
from mcp.types import CallToolResult, TextContent
from pydantic import ValidationError
from referencing import Registry, Resource
from sqlmodel import col, select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from resilience_mcp import models as m
from resilience_mcp.catalog.flagd import read_flagd
from resilience_mcp.connectors.flagpush import PREVIEW_BODY, flag_publisher
from resilience_mcp.connectors.sync import run_sync
from resilience_mcp.models.connectors import (
    ConnectorSettings,
    PushTarget,
    SourceConfig,
    SyncedFlagState,
)
from resilience_mcp.server import build_server
from resilience_mcp.server.state import ServerConfig
from resilience_mcp.store import Store
from tests.connectors.fakes import on_loopback
from tests.connectors.payloads import NOW
from tests.support import fixed_clock, load_yaml, shared_data

pytestmark = pytest.mark.anyio

SECRET = "flag-admin-secret-5512-Wq"
URL = "https://flags-admin.acme.example/flagsets/production"
FLAGD_SOURCE = {
    "name": "flagd-prod",
    "type": "flagd",
    "url": "http://flagd.acme.example/flags.json",
    "environment": "production",
}
CATALOG = """\
apiVersion: resilience/v1
kind: Environment
metadata: {name: production}
---
apiVersion: resilience/v1
kind: Environment
metadata: {name: staging}
spec: {type: staging}
---
apiVersion: resilience/v1
kind: Service
metadata: {name: payment}
---
apiVersion: resilience/v1
kind: FeatureFlag
metadata: {name: payment-failure}
spec:
  key: paymentFailure
  purpose: kill-switch
  services: [payment]
  variants: {"on": true, "off": false}
  states:
    - {environment: production, enabled: false}
    - {environment: staging, enabled: false}
---
apiVersion: resilience/v1
kind: FeatureFlag
metadata: {name: cart-rollout}
spec:
  key: cartRollout
  purpose: release
  services: [payment]
  states: [{environment: production, enabled: true}]
---
apiVersion: resilience/v1
kind: FeatureFlag
metadata: {name: catalog-only}
spec:
  purpose: release
  states: [{environment: production, enabled: false}]
"""
DEFINITIONS: dict[str, Any] = {
    "$schema": "https://flagd.dev/schema/v0/flags.json",
    "metadata": {"flagSetId": "production"},
    "$evaluators": {"staff": {"ends_with": [{"var": "email"}, "@acme.example"]}},
    "flags": {
        "paymentFailure": {
            "state": "ENABLED",
            "variants": {"on": True, "off": False},
            "defaultVariant": "off",
        },
        "cartRollout": {
            "state": "ENABLED",
            "variants": {"on": True, "off": False},
            "defaultVariant": "on",
        },
        "newCheckout": {
            "state": "ENABLED",
            "variants": {"on": True, "off": False},
            "defaultVariant": "off",
            "targeting": {"if": [{"$ref": "staff"}, "on", "off"]},
        },
    },
}


@dataclass
class FlagService:
    """A flag service: serves its definitions to syncs, takes new ones on its admin path."""

    url: str = ""
    definitions: dict[str, Any] = field(default_factory=lambda: copy.deepcopy(DEFINITIONS))
    answer: str = "ok"
    pushed: list[dict[str, Any]] = field(default_factory=list)
    reads: int = 0
    release: anyio.Event = field(default_factory=anyio.Event)

    async def serve(self, request: Request) -> Response:
        self.reads += 1
        return JSONResponse(self.definitions)

    async def take(self, request: Request) -> Response:
        self.pushed.append({"headers": dict(request.headers), "body": await request.json()})
        if self.answer == "refuse":
            return JSONResponse({"error": "flag store is read-only"}, status_code=500)
        if self.answer == "stall":
            await self.release.wait()
        self.definitions = self.pushed[-1]["body"]
        return JSONResponse({"accepted": True})

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/flags.json", self.serve, methods=["GET"]),
                Route("/admin/flags", self.take, methods=["PUT"]),
            ]
        )


@pytest.fixture
async def service(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FlagService]:
    monkeypatch.setenv("FLAGS_TOKEN", f"Bearer {SECRET}")
    found = FlagService()
    async with on_loopback(found.app()) as url:
        found.url = url
        try:
            yield found
        finally:
            found.release.set()


@pytest.fixture
async def catalog(store: Store) -> Store:
    await load_yaml(store, CATALOG, source="local")
    return store


def source(service: FlagService, **push: Any) -> SourceConfig:
    target = PushTarget(
        url=f"{service.url}/admin/flags", headers={"Authorization": "FLAGS_TOKEN"}, **push
    )
    return SourceConfig(
        name="flagd-prod",
        type="flagd",
        url=f"{service.url}/flags.json",
        environment="production",
        push=target,
    )


def client(db_url: str, service: FlagService, **push: Any) -> Client:
    config = ServerConfig(
        db_url=db_url,
        toolsets=("all",),
        enable_writes=True,
        clock=fixed_clock(NOW),
        background_sync=False,
        connectors=ConnectorSettings(sources=[source(service, **push)]),
    )
    return Client(build_server(config))


def text(result: CallToolResult) -> str:
    return "\n".join(b.text for b in result.content if isinstance(b, TextContent))


async def flip(mcp: Client, **arguments: Any) -> CallToolResult:
    base = {
        "flag": "paymentFailure",
        "environment": "production",
        "enabled": True,
        "reason": "INC-4242: card payments failing",
    }
    return await mcp.call_tool("set_feature_flag", {**base, **arguments})


async def state(store: Store, flag: str, environment: str = "production") -> m.FlagState:
    async with store.session() as session:
        rows = await session.execute(
            select(m.FlagState).where(
                col(m.FlagState.flag) == flag, col(m.FlagState.environment) == environment
            )
        )
        return rows.scalars().one()


async def rows(store: Store, table: type[Any]) -> list[Any]:
    async with store.session() as session:
        return list((await session.execute(select(table))).scalars().all())


async def test_a_kill_switch_is_pushed_first_then_recorded(
    catalog: Store, db_url: str, service: FlagService
) -> None:
    async with client(db_url, service) as mcp:
        result = await flip(mcp)

    assert not result.is_error, text(result)
    assert "(kill switch engaged, the path it guards is off). flagd-prod has it." in text(result)
    [push] = service.pushed
    assert push["headers"]["authorization"] == f"Bearer {SECRET}"
    expected = copy.deepcopy(DEFINITIONS)
    expected["flags"]["paymentFailure"]["defaultVariant"] = "on"
    assert push["body"] == expected, "every other flag, its targeting and evaluators kept"
    assert (await state(catalog, "payment-failure")).enabled is True
    [change] = await rows(catalog, m.FlagChange)
    assert (change.environment, change.from_state, change.to_state) == ("production", "off", "on")
    [confirmed] = await rows(catalog, SyncedFlagState)
    assert (confirmed.flag, confirmed.environment, confirmed.source) == (
        "payment-failure",
        "production",
        "flagd",
    )
    [audit] = await rows(catalog, m.AuditRecord)
    changes = {c["field"]: c for c in audit.result["changes"]}
    assert changes["flagd-prod answer"]["after"] == "200 OK"
    assert changes["flagd-prod request"]["after"].startswith("PUT 127.0.0.1/admin/flags")
    assert SECRET not in json.dumps(audit.result) + text(result)


async def test_after_a_push_the_next_sync_finds_nothing_to_change(
    catalog: Store, db_url: str, service: FlagService
) -> None:
    await run_sync(catalog, source(service), now=NOW)
    async with client(db_url, service) as mcp:
        for change in ({}, {"flag": "cartRollout", "enabled": None, "rollout": 25}):
            result = await flip(mcp, **change)
            assert not result.is_error, text(result)

    report = await run_sync(catalog, source(service), now=NOW)

    assert report.load is not None
    assert not report.load.changed
    assert len(await rows(catalog, m.FlagChange)) == 2


async def test_a_partial_rollout_is_pushed_as_a_fractional_split(
    catalog: Store, db_url: str, service: FlagService
) -> None:
    async with client(db_url, service) as mcp:
        result = await flip(mcp, flag="cartRollout", enabled=None, rollout=25)

    assert not result.is_error, text(result)
    pushed = service.pushed[0]["body"]["flags"]["cartRollout"]
    assert pushed["targeting"] == {"fractional": [["on", 25], ["off", 75]]}
    row = await state(catalog, "cart-rollout")
    assert (row.enabled, row.rollout) == (True, 25.0)
    assert row.targeting == "split by the targeting key: on 25%, off 75%"


async def test_a_dry_run_shows_the_request_and_sends_nothing(
    catalog: Store, db_url: str, service: FlagService
) -> None:
    async with client(db_url, service) as mcp:
        result = await flip(mcp, dry_run=True)

    assert not result.is_error, text(result)
    assert service.pushed == []
    shown = text(result)
    assert shown.startswith("Dry run, nothing written: Would set payment-failure")
    assert "Would send it to flagd-prod first." in shown
    assert result.structured_content is not None
    changes = {c["field"]: c for c in result.structured_content["changes"]}
    request = changes["flagd-prod request"]["after"]
    assert request.startswith(
        "PUT 127.0.0.1/admin/flags (headers: Authorization, Content-Type, User-Agent) {"
    )
    assert (
        json.loads(request.split(") ", 1)[1])["flags"]["paymentFailure"]["defaultVariant"] == "on"
    )
    assert json.loads(changes["flagd-prod definition"]["after"])["defaultVariant"] == "on"
    assert SECRET not in shown + json.dumps(result.structured_content)
    assert (await state(catalog, "payment-failure")).enabled is False


async def test_a_flag_file_source_plans_its_push_against_the_file(
    catalog: Store, db_url: str, service: FlagService, tmp_path: Path
) -> None:
    path = tmp_path / "flags.json"
    path.write_text(json.dumps(DEFINITIONS), encoding="utf-8")
    target = PushTarget(url=f"{service.url}/admin/flags", headers={"Authorization": "FLAGS_TOKEN"})
    from_file = SourceConfig(
        name="flagd-prod", type="flagd", path=str(path), environment="production", push=target
    )
    config = ServerConfig(
        db_url=db_url,
        toolsets=("all",),
        enable_writes=True,
        clock=fixed_clock(NOW),
        background_sync=False,
        connectors=ConnectorSettings(sources=[from_file]),
    )

    async with Client(build_server(config)) as mcp:
        result = await flip(mcp)

    assert not result.is_error, text(result)
    assert service.reads == 0
    [push] = service.pushed
    expected = copy.deepcopy(DEFINITIONS)
    expected["flags"]["paymentFailure"]["defaultVariant"] = "on"
    assert push["body"] == expected
    assert (await state(catalog, "payment-failure")).enabled is True


async def test_no_secret_reaches_a_push_preview_or_answer_even_where_they_are_cut(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FLAGS_TOKEN", f"Bearer {SECRET}")
    definitions = copy.deepcopy(DEFINITIONS)
    # A definition that carries the token (pasted into a note), across where a preview cuts.
    definitions["metadata"]["note"] = "MARK"
    at = json.dumps(definitions, sort_keys=True).index("MARK")
    definitions["metadata"]["note"] = "x" * (PREVIEW_BODY - 10 - at) + SECRET

    def flag_service(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200, json=definitions)
        # A reason phrase that echoes the caller, as a proxy in front of it might.
        return httpx.Response(200, extensions={"reason_phrase": f"OK for {SECRET}".encode()})

    target = PushTarget(url=URL, headers={"Authorization": "FLAGS_TOKEN"})
    settings = ConnectorSettings(sources=[SourceConfig(**FLAGD_SOURCE, push=target)])
    publisher = flag_publisher(settings, transport=httpx.MockTransport(flag_service))
    assert publisher is not None

    push = await publisher.plan(
        "paymentFailure", "production", enabled=True, rollout=None, variant=None
    )
    answer = await publisher.send(push)

    pieces = {SECRET[i : i + 8] for i in range(len(SECRET) - 7)}
    assert [p for p in pieces if p in push.request or p in answer] == []
    assert answer == "200 OK for [redacted]"


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ("refuse", "answered 500 Internal Server Error after 1 attempt"),
        ("stall", "no answer came within the timeout (ReadTimeout)"),
    ],
)
async def test_a_push_the_flag_service_did_not_take_leaves_the_catalog_as_it_was(
    catalog: Store, db_url: str, service: FlagService, answer: str, message: str
) -> None:
    service.answer = answer

    async with client(db_url, service, timeout_seconds=0.5) as mcp:
        result = await flip(mcp)

    assert result.is_error
    said = text(result)
    assert (
        "flagd-prod did not take the change to payment-failure in production, so the catalog "
        "was not changed either: it still says off." in said
    )
    assert message in said
    assert len(service.pushed) == 1, "a push is not sent twice"
    assert (await state(catalog, "payment-failure")).enabled is False
    assert await rows(catalog, m.FlagChange) == []
    assert await rows(catalog, SyncedFlagState) == []
    [audit] = await rows(catalog, m.AuditRecord)
    assert audit.outcome == "failed"
    assert "did not take the change" in audit.result["error"]


async def test_a_change_elsewhere_is_not_pushed(
    catalog: Store, db_url: str, service: FlagService
) -> None:
    async with client(db_url, service) as mcp:
        result = await flip(mcp, environment="staging")

    assert not result.is_error, text(result)
    assert service.pushed == []
    assert service.reads == 0
    assert (await state(catalog, "payment-failure", "staging")).enabled is True


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            {"flag": "catalog-only"},
            "Flag catalog-only is not among the flags flagd-prod serves for production",
        ),
        (
            {"flag": "cartRollout", "enabled": None, "variant": "off"},
            "its variant 'off' turns it off",
        ),
    ],
)
async def test_a_change_the_flag_service_cannot_take_is_refused_before_sending(
    catalog: Store, db_url: str, service: FlagService, arguments: dict[str, Any], message: str
) -> None:
    async with client(db_url, service) as mcp:
        result = await flip(mcp, **arguments)

    assert result.is_error
    assert message in text(result)
    assert "Nothing was changed." in text(result)
    assert service.pushed == []
    assert await rows(catalog, m.FlagChange) == []


async def test_a_push_header_whose_variable_is_unset_is_an_error_for_the_operator(
    catalog: Store, db_url: str, service: FlagService, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FLAGS_TOKEN")

    async with client(db_url, service) as mcp:
        result = await flip(mcp)

    assert result.is_error
    assert "needs $FLAGS_TOKEN for the Authorization header of its push" in text(result)
    assert service.pushed == []


async def test_the_pushed_definitions_are_valid_flagd_and_read_as_the_catalog_says(
    catalog: Store, db_url: str, service: FlagService
) -> None:
    schema = json.loads(
        shared_data("flagd", "docs", "schema", "v0", "flags.json").read_text(encoding="utf-8")
    )
    # The schema's targeting rules live in a file of their own; any targeting passes here.
    registry = Registry().with_resources(
        (uri, Resource.opaque({}))
        for uri in ("./targeting.json", "https://flagd.dev/schema/v0/targeting.json")
    )

    async with client(db_url, service) as mcp:
        await flip(mcp, flag="cartRollout", enabled=None, rollout=40)

    body = service.pushed[0]["body"]
    Draft7Validator(schema, registry=registry).validate(body)
    flags, problems = read_flagd(body)
    assert problems == []
    read = {f.key: f for f in flags}["cartRollout"]
    assert (read.enabled, read.rollout) == (True, 40.0)


async def test_a_retry_with_the_same_key_pushes_once(
    catalog: Store, db_url: str, service: FlagService
) -> None:
    async with client(db_url, service) as mcp:
        first = await flip(mcp, idempotency_key="flip-0001")
        again = await flip(mcp, idempotency_key="flip-0001")

    assert not first.is_error, text(first)
    assert again.structured_content is not None
    assert again.structured_content["replayed"] is True
    assert len(service.pushed) == 1


@pytest.mark.parametrize(
    ("sources", "message"),
    [
        (
            [{"name": "bs", "type": "backstage", "url": "https://b.example", "push": {"url": URL}}],
            "only flagd sources take push",
        ),
        (
            [{**FLAGD_SOURCE, "push": {"url": URL, "headers": {"Authorization": "Bearer x"}}}],
            "must name an environment variable",
        ),
        ([{**FLAGD_SOURCE, "push": {"url": "ftp://flags.example/x"}}], "push.url must be http"),
        (
            [
                {**FLAGD_SOURCE, "push": {"url": URL}},
                {**FLAGD_SOURCE, "name": "flagd-two", "push": {"url": URL}},
            ],
            "only one flagd source may push to an environment: production",
        ),
    ],
)
def test_a_push_that_cannot_work_is_refused_when_the_file_is_read(
    sources: list[dict[str, Any]], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        ConnectorSettings.model_validate({"sources": sources})
