"""Flags from a flagd HTTP endpoint: state per environment, changes recorded, bad flags skipped."""

from __future__ import annotations

from typing import Any

import pytest
from sqlmodel import col, select

from resilience_mcp import models as m
from resilience_mcp.connectors.flags import sync_flagd
from resilience_mcp.connectors.http import ApiClient
from resilience_mcp.connectors.sync import run_sync
from resilience_mcp.errors import UpstreamError
from resilience_mcp.graph import build_graph
from resilience_mcp.models.connectors import SourceConfig
from resilience_mcp.store import Store
from tests.connectors.fakes import FakeApi, Sleeps
from tests.connectors.payloads import NOW
from tests.otel_demo import flag_body
from tests.support import load_yaml

pytestmark = pytest.mark.anyio

FLAGS_PATH = "/flags/demo.flagd.json"
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
metadata: {name: paymentFailure}
spec:
  purpose: kill-switch
  services: [payment]
  states: [{environment: staging, enabled: true, variant: "50%"}]
"""


@pytest.fixture
async def catalog(store: Store) -> Store:
    await load_yaml(store, CATALOG, source="local")
    return store


async def sync(store: Store, body: dict[str, Any]) -> Any:
    api = FakeApi(documents={FLAGS_PATH: body})
    remote = ApiClient("flagd", "http://flagd.acme.example:8013", transport=api.transport)
    async with remote:
        return await sync_flagd(store, remote, environment="production", now=NOW, path=FLAGS_PATH)


async def states(store: Store, flag: str) -> dict[str, tuple[bool, str | None]]:
    graph = await build_graph(store)
    return {env: (s.enabled, s.variant) for env, s in graph.flag_states[flag].items()}


async def test_the_endpoints_flags_are_the_state_of_its_environment(catalog: Store) -> None:
    report = await sync(catalog, flag_body())

    assert report.fetched == {"flags": len(flag_body()["flags"])}
    assert report.skipped == []
    graph = await build_graph(catalog)
    assert graph.flags["adFailure"].source == "flagd"
    assert graph.flags["adFailure"].flag_type == "boolean"
    # A flag the catalog declared keeps what it said, and its state elsewhere.
    assert graph.flags["paymentFailure"].purpose == "kill-switch"
    assert graph.flags["paymentFailure"].services == ["payment"]
    assert await states(catalog, "paymentFailure") == {
        "production": (False, None),
        "staging": (True, "50%"),
    }


async def test_a_state_that_changed_is_recorded_in_the_flags_history(catalog: Store) -> None:
    await sync(catalog, flag_body())
    body = flag_body()
    body["flags"]["paymentFailure"]["defaultVariant"] = "100%"

    await sync(catalog, body)

    assert (await states(catalog, "paymentFailure"))["production"] == (True, "100%")
    async with catalog.session() as session:
        changes = await session.execute(
            select(m.FlagChange).where(col(m.FlagChange.flag) == "paymentFailure")
        )
        change = changes.scalars().one()
    assert (change.environment, change.from_state, change.to_state, change.by) == (
        "production",
        "off",
        "on (100%)",
        "flagd (flagd)",
    )


async def test_a_malformed_flag_is_skipped_and_the_others_load(catalog: Store) -> None:
    body = flag_body()
    body["flags"]["adFailure"]["defaultVariant"] = "sometimes"
    body["flags"]["cartFailure"] = "on"

    report = await sync(catalog, body)

    assert len(report.skipped) == 2
    graph = await build_graph(catalog)
    assert "adFailure" not in graph.flags
    assert "adHighCpu" in graph.flags


async def test_an_answer_that_is_not_a_flag_set_is_refused(catalog: Store) -> None:
    with pytest.raises(UpstreamError, match="did not answer with flagd flag definitions"):
        await sync(catalog, {"status": "ok"})


async def test_a_configured_source_reads_the_document_its_url_names(catalog: Store) -> None:
    api = FakeApi(documents={FLAGS_PATH: flag_body()})
    source = SourceConfig(
        name="flagd-prod",
        type="flagd",
        url=f"http://flagd.acme.example:8013{FLAGS_PATH}",
        environment="production",
    )

    report = await run_sync(catalog, source, now=NOW, transport=api.transport, sleep=Sleeps())

    assert [str(r.url) for r in api.requests] == [f"http://flagd.acme.example:8013{FLAGS_PATH}"]
    assert report.label == "flagd"
    assert report.load is not None
    assert report.load.created["FeatureFlag"] == len(flag_body()["flags"]) - 1
