"""Webhooks on a real server on loopback: signatures, replays, deployments and incidents."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import anyio
import httpx
import pytest
from sqlmodel import select
from starlette.applications import Starlette

from resilience_mcp import models as m
from resilience_mcp.connectors.webhooks import EVENTS_PATH, GITHUB_PATH, sign, webhook_routes
from resilience_mcp.graph import CatalogGraph, build_graph
from resilience_mcp.metrics.dora import get_dora_metrics
from resilience_mcp.models.connectors import ConnectorSettings, PushedCommit, WebhookSettings
from resilience_mcp.server.app import build_http_app, open_state
from resilience_mcp.server.state import AppState, ServerConfig
from resilience_mcp.store import Store
from tests.connectors.fakes import on_loopback
from tests.connectors.payloads import CATALOG, NOW, github_deployment_status, github_push
from tests.support import fixed_clock, load_yaml

pytestmark = pytest.mark.anyio

GITHUB_SECRET = "gh-hook-secret-Zx81"
EVENTS_SECRET = "events-hook-secret-Qm42"
REPO = "acme/payments-api"
C1, C2, C3, C4 = ("1" * 40, "2" * 40, "3" * 40, "4" * 40)


@dataclass
class Hooks:
    http: httpx.AsyncClient
    store: Store

    async def github(
        self, event: str, payload: Any, delivery: str, *, secret: str = GITHUB_SECRET
    ) -> httpx.Response:
        body = json.dumps(payload).encode()
        headers = {
            "Content-Type": "application/json",
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery,
            "X-Hub-Signature-256": sign(secret, body),
        }
        return await self.http.post(GITHUB_PATH, content=body, headers=headers)

    async def event(
        self, document: Any, delivery: str, *, sent: float | None = None
    ) -> httpx.Response:
        body = json.dumps(document).encode()
        timestamp = str(int(sent if sent is not None else NOW.timestamp()))
        headers = {
            "Content-Type": "application/json",
            "X-Resilience-Delivery": delivery,
            "X-Resilience-Timestamp": timestamp,
            "X-Resilience-Signature-256": sign(EVENTS_SECRET, body, timestamp),
        }
        return await self.http.post(EVENTS_PATH, content=body, headers=headers)

    async def deployments(self) -> dict[str, m.Deployment]:
        async with self.store.session() as session:
            rows = await session.execute(select(m.Deployment))
            return {d.name: d for d in rows.scalars().all()}


@pytest.fixture
async def hooks(store: Store, db_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Hooks]:
    monkeypatch.setenv("TEST_GITHUB_SECRET", GITHUB_SECRET)
    monkeypatch.setenv("TEST_EVENTS_SECRET", EVENTS_SECRET)
    await load_yaml(store, CATALOG, source="local")
    settings = WebhookSettings(
        github_secret_env="TEST_GITHUB_SECRET", generic_secret_env="TEST_EVENTS_SECRET"
    )
    config = ServerConfig(
        db_url=db_url,
        clock=fixed_clock(NOW),
        connectors=ConnectorSettings(webhooks=settings),
        background_sync=False,
        # The tests add services through a store of their own: see them at once.
        version_max_age_seconds=0,
    )
    async with (
        on_loopback(build_http_app(config)) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as http,
    ):
        yield Hooks(http, store)


async def test_a_push_then_a_deployment_status_write_a_deployment_with_lead_time(
    hooks: Hooks,
) -> None:
    pushed = await hooks.github(
        "push",
        github_push(REPO, [(C1, NOW - timedelta(hours=3)), (C2, NOW - timedelta(hours=2))]),
        "d-1",
    )
    deployed = await hooks.github(
        "deployment_status",
        github_deployment_status(REPO, 9001, C2, "success", NOW - timedelta(hours=1)),
        "d-2",
    )

    assert pushed.status_code == 200
    assert pushed.json()["commits"] == 2
    assert deployed.status_code == 200
    assert deployed.json()["name"] == "payments-api-deploy-9001"
    deployment = (await hooks.deployments())["payments-api-deploy-9001"]
    assert (deployment.service, deployment.environment, deployment.status) == (
        "payments-api",
        "production",
        "success",
    )
    assert (deployment.commit, deployment.version) == (C2, "v2.15.0")
    assert deployment.commit_time == NOW - timedelta(hours=2)
    assert deployment.deploy_time == NOW - timedelta(hours=1)
    assert (deployment.source, deployment.external_id) == ("github", "9001")
    assert [c["sha"] for c in deployment.commits] == [C2]
    dora = await get_dora_metrics(
        hooks.store, await build_graph(hooks.store), NOW, scope="service", name="payments-api"
    )
    assert dora.deployment_frequency.deployments == 1
    assert dora.lead_time.median_minutes == 60


async def test_the_next_deployment_lists_the_commits_since_the_last_one(hooks: Hooks) -> None:
    await hooks.github("push", github_push(REPO, [(C1, NOW - timedelta(hours=5))]), "d-1")
    await hooks.github(
        "deployment_status",
        github_deployment_status(REPO, 9001, C1, "success", NOW - timedelta(hours=4)),
        "d-2",
    )
    later = [(C3, NOW - timedelta(hours=2)), (C4, NOW - timedelta(hours=1))]
    await hooks.github("push", github_push(REPO, later), "d-3")
    await hooks.github(
        "deployment_status",
        github_deployment_status(REPO, 9002, C4, "in_progress", NOW - timedelta(minutes=20)),
        "d-4",
    )
    await hooks.github(
        "deployment_status",
        github_deployment_status(REPO, 9002, C4, "success", NOW - timedelta(minutes=10)),
        "d-5",
    )
    late = await hooks.github(
        "deployment_status",
        github_deployment_status(REPO, 9002, C4, "queued", NOW - timedelta(minutes=15)),
        "d-6",
    )

    assert late.status_code == 202
    deployment = (await hooks.deployments())["payments-api-deploy-9002"]
    assert deployment.status == "success"
    assert [c["sha"] for c in deployment.commits] == [C4, C3]


@pytest.mark.parametrize(
    "tamper",
    ["no signature", "another secret", "body changed"],
)
async def test_a_request_whose_signature_does_not_match_is_refused(
    hooks: Hooks, tamper: str
) -> None:
    payload = github_deployment_status(REPO, 9001, C1, "success", NOW - timedelta(hours=1))
    body = json.dumps(payload).encode()
    signature = sign(GITHUB_SECRET, body)
    if tamper == "another secret":
        signature = sign("not-the-secret", body)
    if tamper == "body changed":
        body = body.replace(b"success", b"failure")
    headers = {"X-GitHub-Event": "deployment_status", "X-GitHub-Delivery": "d-1"}
    if tamper != "no signature":
        headers["X-Hub-Signature-256"] = signature

    response = await hooks.http.post(GITHUB_PATH, content=body, headers=headers)

    assert response.status_code == 401
    assert GITHUB_SECRET not in response.text
    assert await hooks.deployments() == {}


async def test_a_delivery_sent_again_is_refused(hooks: Hooks) -> None:
    payload = github_deployment_status(REPO, 9001, C1, "success", NOW - timedelta(hours=1))

    first = await hooks.github("deployment_status", payload, "d-same")
    again = await hooks.github("deployment_status", payload, "d-same")

    assert first.status_code == 200
    assert again.status_code == 409
    assert "already received" in again.json()["error"]


def malformed_push(field: str, value: Any) -> dict[str, Any]:
    payload = github_push(REPO, [(C1, NOW - timedelta(hours=2))])
    holder = payload["repository"] if field.startswith("repository.") else payload
    holder[field.removeprefix("repository.")] = value
    return payload


def malformed_deployment(part: str, field: str, value: Any) -> dict[str, Any]:
    payload = github_deployment_status(REPO, 9002, C1, "success", NOW - timedelta(hours=1))
    payload[part][field] = value
    return payload


@pytest.mark.parametrize(
    ("event", "payload", "problem"),
    [
        ("push", malformed_push("commits", 5), "commits should be a list, got 5"),
        ("push", malformed_push("commits", ["abc"]), "commits.0 should be an object"),
        (
            "push",
            malformed_push("repository.full_name", ["x"]),
            "repository.full_name should be text",
        ),
        (
            "deployment_status",
            malformed_deployment("deployment", "creator", "bot"),
            "deployment.creator should be an object, got 'bot'",
        ),
        (
            "deployment_status",
            malformed_deployment("deployment", "payload", 5),
            "deployment.payload should be an object or text, got 5",
        ),
        (
            "deployment_status",
            malformed_deployment("deployment_status", "target_url", {"href": "x"}),
            "deployment_status.target_url should be text",
        ),
    ],
)
async def test_a_signed_event_of_the_wrong_shape_is_refused_naming_the_field(
    hooks: Hooks,
    caplog: pytest.LogCaptureFixture,
    event: str,
    payload: dict[str, Any],
    problem: str,
) -> None:
    caplog.set_level(logging.DEBUG)

    refused = await hooks.github(event, payload, "d-bad")
    fixed = github_push(REPO, [(C1, NOW - timedelta(hours=2))])
    accepted = await hooks.github("push", fixed, "d-bad")

    assert refused.status_code == 422
    assert problem in refused.json()["error"]
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert accepted.status_code == 200, "nothing was recorded of the refused delivery"
    assert await hooks.deployments() == {}


async def test_a_generic_event_of_the_wrong_shape_is_refused_naming_the_field(
    hooks: Hooks, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    kind = await hooks.event({**INCIDENT, "kind": 5}, "evt-bad-1")
    metadata = await hooks.event({**INCIDENT, "metadata": "INC-1"}, "evt-bad-2")
    spec = await hooks.event({**INCIDENT, "spec": ["SEV2"]}, "evt-bad-3")

    assert [r.status_code for r in (kind, metadata, spec)] == [422, 422, 422]
    assert "its kind is 5" in kind.json()["error"]
    assert "field metadata:" in metadata.json()["error"]
    assert "field spec:" in spec.json()["error"]
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    async with hooks.store.session() as session:
        assert (await session.execute(select(m.Incident))).scalars().all() == []


async def test_an_unknown_repository_is_refused_and_can_be_sent_again_once_known(
    hooks: Hooks,
) -> None:
    payload = github_deployment_status("acme/ledger", 77, C1, "success", NOW - timedelta(hours=1))

    refused = await hooks.github("deployment_status", payload, "d-77")
    await load_yaml(
        hooks.store,
        "apiVersion: resilience/v1\nkind: Service\nmetadata: {name: ledger}\n"
        "spec: {repository: 'https://github.com/acme/ledger.git'}\n",
        source="local",
    )
    accepted = await hooks.github("deployment_status", payload, "d-77")

    assert refused.status_code == 422
    assert "No catalog service has the repository acme/ledger" in refused.json()["error"]
    assert accepted.status_code == 200
    assert "ledger-deploy-77" in await hooks.deployments()


async def test_a_deployment_status_older_than_the_window_is_refused(hooks: Hooks) -> None:
    payload = github_deployment_status(REPO, 9001, C1, "success", NOW - timedelta(days=30))

    response = await hooks.github("deployment_status", payload, "d-old")

    assert response.status_code == 422
    assert await hooks.deployments() == {}


@pytest.mark.parametrize(("event", "status"), [("ping", 200), ("issues", 202)])
async def test_pings_are_answered_and_other_events_ignored(
    hooks: Hooks, event: str, status: int
) -> None:
    response = await hooks.github(event, {"zen": "Keep it logically awesome."}, "d-x")

    assert response.status_code == status


INCIDENT = {
    "kind": "Incident",
    "metadata": {"name": "INC-4242", "title": "Checkout errors"},
    "spec": {
        "severity": "SEV2",
        "status": "investigating",
        "startedAt": "2026-12-01T11:20:00Z",
        "services": ["checkout"],
        "suspectedDeployments": [],
    },
}


async def test_a_signed_generic_event_loads_an_incident(hooks: Hooks) -> None:
    response = await hooks.event(INCIDENT, "evt-1")

    assert response.status_code == 200
    async with hooks.store.session() as session:
        incident = await session.get(m.Incident, "INC-4242")
    assert incident is not None
    assert (incident.severity, incident.source) == ("SEV2", "webhook")


@pytest.mark.parametrize("skew", [-3600, 3600])
async def test_a_generic_event_signed_outside_the_window_is_refused(
    hooks: Hooks, skew: int
) -> None:
    response = await hooks.event(INCIDENT, "evt-1", sent=NOW.timestamp() + skew)

    assert response.status_code == 401
    assert "outside the allowed window" in response.json()["error"]


async def test_a_generic_event_is_applied_once(hooks: Hooks) -> None:
    first = await hooks.event(INCIDENT, "evt-7")
    again = await hooks.event(INCIDENT, "evt-7")
    other_kind = await hooks.event({**INCIDENT, "kind": "Service"}, "evt-8")

    assert (first.status_code, again.status_code, other_kind.status_code) == (200, 409, 422)


async def test_a_captured_body_replayed_under_a_new_delivery_id_is_refused(hooks: Hooks) -> None:
    failed = github_deployment_status(REPO, 9001, C1, "failure", NOW - timedelta(hours=2))
    await hooks.github("deployment_status", failed, "d-1")
    fixed = github_deployment_status(REPO, 9001, C1, "success", NOW - timedelta(hours=1))
    await hooks.github("deployment_status", fixed, "d-2")

    replayed = await hooks.github("deployment_status", failed, "d-3")

    assert replayed.status_code == 409
    assert "already applied under another delivery id" in replayed.json()["error"]
    assert (await hooks.deployments())["payments-api-deploy-9001"].status == "success"


async def test_a_generic_event_replayed_under_a_new_delivery_id_is_refused(hooks: Hooks) -> None:
    first = await hooks.event(INCIDENT, "evt-20")
    replayed = await hooks.event(INCIDENT, "evt-21")
    resigned = await hooks.event(INCIDENT, "evt-22", sent=NOW.timestamp() - 60)

    assert (first.status_code, replayed.status_code) == (200, 409)
    assert "already applied" in replayed.json()["error"]
    assert resigned.status_code == 200, "signed anew, it is a new event"


async def test_a_push_gets_the_same_replay_and_age_checks(hooks: Hooks) -> None:
    push = github_push(REPO, [(C1, NOW - timedelta(hours=3))])
    old = github_push(REPO, [(C2, NOW - timedelta(days=40))], pushed=NOW - timedelta(days=30))
    timeless = github_push(REPO, [(C3, NOW - timedelta(hours=1))])
    del timeless["repository"]["pushed_at"]
    timeless["head_commit"] = None

    first = await hooks.github("push", push, "p-1")
    replayed = await hooks.github("push", push, "p-2")
    too_old = await hooks.github("push", old, "p-3")
    no_time = await hooks.github("push", timeless, "p-4")

    assert first.status_code == 200
    assert replayed.status_code == 409
    assert too_old.status_code == 422
    assert "push is outside the replay window" in too_old.json()["error"]
    assert no_time.status_code == 422
    async with hooks.store.session() as session:
        shas = (await session.execute(select(PushedCommit.sha))).scalars().all()
    assert sorted(shas) == [C1]


async def test_a_deployment_status_from_the_future_is_refused(hooks: Hooks) -> None:
    payload = github_deployment_status(REPO, 9001, C1, "success", NOW + timedelta(days=2))

    response = await hooks.github("deployment_status", payload, "d-future")

    assert response.status_code == 422
    assert await hooks.deployments() == {}


class GatedState:
    """The server's state, with each call for the graph held until the test lets it go,
    so two deliveries can be made to pass the first replay check together."""

    def __init__(self, inner: AppState) -> None:
        self.inner = inner
        self.gates: list[anyio.Event] = []
        self.arrivals = anyio.Event()

    @property
    def store(self) -> Store:
        return self.inner.store

    def now(self) -> datetime:
        return self.inner.now()

    async def graph(self) -> CatalogGraph:
        gate = anyio.Event()
        self.gates.append(gate)
        self.arrivals.set()
        await gate.wait()
        return await self.inner.graph()

    async def wait_for(self, count: int) -> None:
        while len(self.gates) < count:
            self.arrivals = anyio.Event()
            await self.arrivals.wait()


@pytest.mark.parametrize(
    ("second_state", "second_delivery"),
    [("failure", "d-race"), ("success", "d-other")],
    ids=["same delivery id, other body", "same body, other delivery id"],
)
async def test_two_deliveries_arriving_together_apply_once(
    store: Store,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
    second_state: str,
    second_delivery: str,
) -> None:
    monkeypatch.setenv("TEST_GITHUB_SECRET", GITHUB_SECRET)
    await load_yaml(store, CATALOG, source="local")
    settings = WebhookSettings(github_secret_env="TEST_GITHUB_SECRET")
    config = ServerConfig(db_url=db_url, clock=fixed_clock(NOW), background_sync=False)
    first = github_deployment_status(REPO, 9001, C1, "success", NOW - timedelta(hours=1))
    second = github_deployment_status(REPO, 9001, C1, second_state, NOW - timedelta(hours=1))
    answers: dict[str, httpx.Response] = {}
    first_answered = anyio.Event()

    async with open_state(config) as state:
        gated = GatedState(state)
        app = Starlette(routes=webhook_routes(gated, settings))
        async with (
            on_loopback(app) as url,
            httpx.AsyncClient(base_url=url, timeout=30) as http,
            anyio.create_task_group() as group,
        ):
            hooks = Hooks(http, store)

            async def send(label: str, payload: Any, delivery: str) -> None:
                answers[label] = await hooks.github("deployment_status", payload, delivery)
                if label == "first":
                    first_answered.set()

            group.start_soon(send, "first", first, "d-race")
            await gated.wait_for(1)
            group.start_soon(send, "second", second, second_delivery)
            await gated.wait_for(2)
            # Both passed the replay check; the first applies, then the second tries.
            gated.gates[0].set()
            await first_answered.wait()
            gated.gates[1].set()

    assert answers["first"].status_code == 200
    assert answers["second"].status_code == 409
    async with store.session() as session:
        deployment = await session.get(m.Deployment, "payments-api-deploy-9001")
    assert deployment is not None
    assert deployment.status == "success"
