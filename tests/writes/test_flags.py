"""Setting a flag in one environment: state, history, inheritance, the graph noticing."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlmodel import col, select

from resilience_mcp import models as m
from resilience_mcp.errors import InvalidInputError, NotFoundError
from resilience_mcp.graph import CatalogGraph, GraphCache
from resilience_mcp.models.writes import WriteAnswer
from resilience_mcp.store import Store
from resilience_mcp.writes import FlagSetting, set_feature_flag
from tests.writes.catalog import request

pytestmark = pytest.mark.anyio


async def set_flag(
    store: Store, graph: CatalogGraph, *, dry_run: bool = False, **fields: Any
) -> WriteAnswer:
    setting = FlagSetting(
        **(
            {"flag": "payments-kill-switch", "environment": "prod-eu", "reason": "INC-0007"}
            | fields
        )
    )
    call = request("set_feature_flag", dry_run=dry_run, actor="incident-bot", **fields)
    return await set_feature_flag(store, graph, call, setting)


async def states(store: Store, flag: str) -> dict[str, m.FlagState]:
    async with store.session() as session:
        result = await session.execute(select(m.FlagState).where(col(m.FlagState.flag) == flag))
        return {row.environment: row for row in result.scalars().all()}


async def history(store: Store, flag: str) -> list[m.FlagChange]:
    async with store.session() as session:
        result = await session.execute(
            select(m.FlagChange)
            .where(col(m.FlagChange.flag) == flag)
            .order_by(col(m.FlagChange.id))
        )
        return list(result.scalars().all())


async def test_flipping_a_kill_switch_sets_its_state_and_writes_who_when_from_to_and_why(
    catalog: Store, graph: CatalogGraph
) -> None:
    done = await set_flag(catalog, graph, enabled=True)

    state = (await states(catalog, "payments-kill-switch"))["prod-eu"]
    assert (state.enabled, state.updated_by, state.updated_at) == (True, "incident-bot", done.at)
    [change] = await history(catalog, "payments-kill-switch")
    assert (change.environment, change.by, change.at) == ("prod-eu", "incident-bot", done.at)
    assert (change.from_state, change.to_state, change.reason) == ("off", "on", "INC-0007")
    assert change.owner_ref == "FeatureFlag:payments-kill-switch"
    assert "kill switch engaged" in done.headline


async def test_the_graph_sees_the_new_state_once_the_write_commits(
    catalog: Store, graph: CatalogGraph
) -> None:
    cache = GraphCache(catalog)
    assert not (await cache.get()).flag_states["payments-kill-switch"]["prod-eu"].enabled

    await set_flag(catalog, graph, enabled=True)

    assert (await cache.get()).flag_states["payments-kill-switch"]["prod-eu"].enabled


async def test_a_dry_run_shows_the_change_and_writes_nothing(
    catalog: Store, graph: CatalogGraph
) -> None:
    before = await catalog.catalog_version()

    preview = await set_flag(catalog, graph, enabled=True, dry_run=True)

    assert next((c.field, c.before, c.after) for c in preview.changes) == ("state", "off", "on")
    assert not (await states(catalog, "payments-kill-switch"))["prod-eu"].enabled
    assert await history(catalog, "payments-kill-switch") == []
    assert await catalog.catalog_version() == before


async def test_a_tenant_without_its_own_state_starts_from_its_parents(
    catalog: Store, graph: CatalogGraph
) -> None:
    done = await set_flag(
        catalog, graph, flag="psp-failover", environment="prod-eu-acme", variant="adyen"
    )

    assert (done.changes[0].before, done.changes[0].after) == ("on (stripe)", "on (adyen)")
    acme = (await states(catalog, "psp-failover"))["prod-eu-acme"]
    assert (acme.variant, acme.enabled, acme.owner_ref) == (
        "adyen",
        True,
        "FeatureFlag:psp-failover",
    )
    assert (await states(catalog, "psp-failover"))["prod-eu"].variant == "stripe"


async def test_concurrent_first_changes_in_a_tenant_queue_up_into_one_state_and_a_clean_history(
    catalog: Store, graph: CatalogGraph
) -> None:
    await asyncio.gather(
        set_flag(catalog, graph, flag="psp-failover", environment="prod-eu-acme", variant="adyen"),
        set_flag(catalog, graph, flag="psp-failover", environment="prod-eu-acme", enabled=False),
    )

    async with catalog.session() as session:
        acme = await session.execute(
            select(m.FlagState).where(col(m.FlagState.environment) == "prod-eu-acme")
        )
    assert len(acme.scalars().all()) == 1
    first, second = await history(catalog, "psp-failover")
    assert first.from_state == "on (stripe)"
    assert second.from_state == first.to_state


async def test_setting_the_state_it_already_has_changes_nothing(
    catalog: Store, graph: CatalogGraph
) -> None:
    done = await set_flag(catalog, graph, enabled=False)

    assert done.changes == []
    assert await history(catalog, "payments-kill-switch") == []


@pytest.mark.parametrize(
    ("fields", "error", "message"),
    [
        ({"variant": "paypal", "flag": "psp-failover"}, InvalidInputError, "adyen, stripe"),
        ({"enabled": True, "environment": "prod-mars"}, NotFoundError, "environment"),
        ({"enabled": True, "flag": "payment-kill-switches"}, InvalidInputError, "closest is"),
        ({"enabled": True, "environment": "prod-euu"}, InvalidInputError, "'prod-eu'"),
        ({}, InvalidInputError, "Nothing to set"),
    ],
)
async def test_names_and_values_are_checked_before_use(
    catalog: Store,
    graph: CatalogGraph,
    fields: dict[str, Any],
    error: type[Exception],
    message: str,
) -> None:
    with pytest.raises(error, match=message):
        await set_flag(catalog, graph, **fields)
    assert await history(catalog, "payments-kill-switch") == []
