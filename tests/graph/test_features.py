"""Flags and features on the OpenTelemetry demo's real failure-injection flags."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from resilience_mcp import models as m
from resilience_mcp.catalog.files import Document
from resilience_mcp.catalog.loader import load_documents
from resilience_mcp.errors import InvalidInputError, NotFoundError
from resilience_mcp.graph import build_graph
from resilience_mcp.graph.features import (
    flags_touching_service,
    get_feature,
    list_feature_flags,
    resolve_environment,
    resolve_flag,
)
from resilience_mcp.store import Store
from tests.otel_demo import (
    LOADED,
    flag_body,
    import_flags,
    load_three_environments,
)

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("service", "keys"),
    [
        ("payment", ["paymentFailure"]),
        ("checkout", ["kafkaQueueProblems", "paymentUnreachable"]),
        ("fraud-detection", ["kafkaQueueProblems"]),
        ("cart", ["cartFailure", "failedReadinessProbe"]),
        ("load-generator", ["imageSlowLoad", "loadGeneratorTraffic", "loadGeneratorVUs"]),
    ],
)
async def test_failure_injection_flags_list_under_the_services_that_read_them(
    otel_store: Store, service: str, keys: list[str]
) -> None:
    graph = await build_graph(otel_store)

    listed = await list_feature_flags(otel_store, graph, NOW, service=service)

    assert [f.key for f in listed.flags] == keys
    assert all(service in f.services for f in listed.flags)


def view(environment: str, state: str, enabled: bool, **fields: Any) -> dict[str, Any]:
    return {
        "environment": environment,
        "tenant": "acme" if environment == "prod-acme" else None,
        "state": state,
        "enabled": enabled,
        "rollout": None,
        "variant": None,
        "targeting": None,
        "inherited_from": None,
        "source": None,
    } | fields


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        (
            "paymentFailure",
            [
                view("prod", "off", False),
                view(
                    "prod-acme",
                    "on",
                    True,
                    targeting='if userId in ["u1", "u2"] then 100%, else off',
                ),
                view("staging", "on (10%)", True, variant="10%"),
            ],
        ),
        (
            "kafkaQueueProblems",
            [
                view("prod", "off", False),
                view("prod-acme", "on", True),
                view(
                    "staging",
                    "on 20%",
                    True,
                    rollout=20.0,
                    targeting="split by the targeting key: on 20%, off 80%",
                ),
            ],
        ),
        (
            "loadGeneratorTraffic",
            [
                view("prod", "on", True),
                view(
                    "staging",
                    "off",
                    False,
                    targeting="disabled in flagd: the application's own default applies",
                ),
            ],
        ),
    ],
)
async def test_flag_state_per_environment_and_tenant_comes_back_exactly_as_loaded(
    store: Store, key: str, expected: list[dict[str, Any]]
) -> None:
    await load_three_environments(store)
    graph = await build_graph(store)

    listed = await list_feature_flags(store, graph, NOW, limit=100)

    [flag] = [f for f in listed.flags if f.key == key]
    assert [s.model_dump() for s in flag.states] == expected


@pytest.mark.parametrize(
    ("environment", "shown", "note"),
    [
        ("prod", ["prod", "prod-acme"], None),
        ("prod-acme", ["prod-acme"], None),
        ("acme", ["prod-acme"], "Took 'acme' for Environment prod-acme."),
        ("staging", ["staging"], None),
    ],
)
async def test_an_environment_shows_its_own_state_and_its_tenant_cells(
    otel_store: Store, environment: str, shown: list[str], note: str | None
) -> None:
    graph = await build_graph(otel_store)

    listed = await list_feature_flags(
        otel_store, graph, NOW, service="payment", environment=environment
    )

    assert [s.environment for s in listed.flags[0].states] == shown
    assert listed.notes == ([note] if note else [])


async def test_a_tenant_cell_with_no_state_of_its_own_follows_its_parent(otel_store: Store) -> None:
    graph = await build_graph(otel_store)

    listed = await list_feature_flags(
        otel_store, graph, NOW, service="cart", environment="prod-acme"
    )

    states = {f.key: [s.model_dump() for s in f.states] for f in listed.flags}
    assert states["cartFailure"] == [view("prod-acme", "off", False, inherited_from="prod")]


@pytest.mark.parametrize(
    ("filters", "keys"),
    [
        (
            {"environment": "staging", "state": "on"},
            ["kafkaQueueProblems", "loadGeneratorVUs", "paymentFailure"],
        ),
        # The acme cell has no state of its own for the load generator's flags: prod's holds.
        (
            {"environment": "prod-acme", "state": "enabled"},
            ["kafkaQueueProblems", "loadGeneratorTraffic", "loadGeneratorVUs", "paymentFailure"],
        ),
        ({"service": "load-generator", "state": "off"}, ["imageSlowLoad"]),
        ({"purpose": "kill switch"}, ["paymentUnreachable"]),
        ({"purpose": "kill-switches", "service": "payment"}, []),
    ],
)
async def test_flags_narrow_by_purpose_and_state(
    otel_store: Store, filters: dict[str, Any], keys: list[str]
) -> None:
    links = {"paymentUnreachable": {"purpose": "kill-switch"}}
    await import_flags(otel_store, flag_body(), "prod", now=LOADED, links=links)
    graph = await build_graph(otel_store)

    listed = await list_feature_flags(otel_store, graph, NOW, **filters)

    assert [f.key for f in listed.flags] == keys


async def test_kill_switches_come_first_and_recent_changes_are_marked(otel_store: Store) -> None:
    links = {"paymentUnreachable": {"purpose": "kill-switch"}}
    await import_flags(otel_store, flag_body(), "prod", now=LOADED, links=links)
    async with otel_store.transaction() as session:
        session.add(
            m.FlagChange(
                owner_ref="FeatureFlag:kafkaQueueProblems",
                flag="kafkaQueueProblems",
                environment="prod",
                at=NOW - timedelta(hours=2),
                by="chaos-bot",
                from_state="off",
                to_state="on",
            )
        )
    graph = await build_graph(otel_store)

    listed = await list_feature_flags(otel_store, graph, NOW, service="checkout")
    longer = await list_feature_flags(
        otel_store, graph, NOW + timedelta(hours=23), service="checkout", recent=timedelta(hours=1)
    )

    assert [(f.key, f.purpose, f.changed_recently) for f in listed.flags] == [
        ("paymentUnreachable", "kill-switch", False),
        ("kafkaQueueProblems", "release", True),
    ]
    change = listed.flags[1].last_change
    assert change is not None
    assert (change.by, change.to_state, change.at) == ("chaos-bot", "on", NOW - timedelta(hours=2))
    assert [f.changed_recently for f in longer.flags] == [False, False]
    assert "kafkaQueueProblems CHANGED RECENTLY" in listed.text()


async def test_a_long_list_is_cut_and_says_so(otel_store: Store) -> None:
    graph = await build_graph(otel_store)

    first = await list_feature_flags(otel_store, graph, NOW, limit=6)
    last = await list_feature_flags(otel_store, graph, NOW, limit=6, offset=12)

    assert (first.page.total, first.page.returned, first.page.truncated) == (15, 6, True)
    assert first.page.next_cursor == "6"
    assert "(showing 6 of 15 flags)" in first.text()
    assert (last.page.returned, last.page.truncated, last.page.next_cursor) == (3, False, None)


@pytest.mark.parametrize(
    ("purpose", "state", "message"),
    [
        ("rollback", None, "The purpose 'rollback' is not one flags have"),
        (None, "sideways", "The state 'sideways' is not known; use 'on' or 'off'."),
    ],
)
async def test_a_filter_value_that_means_nothing_is_refused_with_the_choices(
    otel_store: Store, purpose: str | None, state: str | None, message: str
) -> None:
    graph = await build_graph(otel_store)

    with pytest.raises(InvalidInputError, match=message):
        await list_feature_flags(otel_store, graph, NOW, purpose=purpose, state=state)


@pytest.mark.parametrize(
    ("asked", "name", "corrected"),
    [
        ("paymentFailure", "paymentFailure", False),
        ("payment_failure", "paymentFailure", False),
        ("PAYMENTFAILURE", "paymentFailure", False),
        ("paymentFailur", "paymentFailure", True),
    ],
)
async def test_a_flag_is_found_by_key_or_name_forgiving_case_separators_and_typos(
    otel_store: Store, asked: str, name: str, corrected: bool
) -> None:
    graph = await build_graph(otel_store)

    resolved = resolve_flag(graph, asked)

    assert (resolved.name, resolved.corrected_from is not None) == (name, corrected)


async def test_an_unknown_flag_is_refused_with_the_closest_names(otel_store: Store) -> None:
    graph = await build_graph(otel_store)

    with pytest.raises(NotFoundError, match=r"No flag is named 'cartFail'.*cartFailure"):
        resolve_flag(graph, "cartFail")


CHECKOUT_FLOW = """\
apiVersion: resilience/v1
kind: Team
metadata: {name: shop-team, title: Shop team}
---
apiVersion: resilience/v1
kind: Service
metadata: {name: payment}
spec: {owner: shop-team, tier: 1}
---
apiVersion: resilience/v1
kind: Feature
metadata: {name: checkout-flow, title: Checkout flow}
spec: {services: [checkout, payment]}
"""


def customer(name: str, plan: str, weight: float) -> dict[str, Any]:
    spec = {"plan": plan, "weight": weight, "features": ["checkout-flow"]}
    return {"apiVersion": "resilience/v1", "kind": "Customer", "metadata": {"name": name}} | {
        "spec": spec | {"environments": ["prod-acme"] if name == "acme" else ["prod"]}
    }


def incident(key: str, status: str, **links: list[str]) -> dict[str, Any]:
    spec = {"severity": "SEV2", "status": status, "startedAt": f"2026-11-30T1{key[-1]}:00:00Z"}
    metadata = {"name": key, "title": f"Incident {key}"}
    return {"apiVersion": "resilience/v1", "kind": "Incident", "metadata": metadata} | {
        "spec": spec | links
    }


async def test_the_feature_card_holds_services_flags_customers_owner_and_open_incidents(
    otel_store: Store,
) -> None:
    bodies = list(yaml.safe_load_all(CHECKOUT_FLOW))
    bodies += [
        customer("acme", "enterprise", 500_000),
        customer("bolt", "pro", 20_000),
        customer("cogs", "pro", 30_000),
        customer("dime", "free", 0),
        incident("INC-1", "investigating", flags=["paymentFailure"]),
        incident("INC-2", "resolved", features=["checkout-flow"]),
        incident("INC-3", "mitigated", features=["checkout-flow"]),
    ]
    await load_documents(
        otel_store, [Document("extra", i, b) for i, b in enumerate(bodies)], source="x"
    )
    links = {
        "paymentFailure": {"feature": "checkout-flow"},
        "paymentUnreachable": {"feature": "checkout-flow", "purpose": "kill-switch"},
    }
    await import_flags(otel_store, flag_body(), "prod", now=LOADED, links=links)
    graph = await build_graph(otel_store)

    card = await get_feature(otel_store, graph, "Checkout Flow", NOW, customers=2)

    assert [s.name for s in card.services] == ["payment", "checkout"]
    assert [f.key for f in card.flags] == ["paymentUnreachable", "paymentFailure"]
    assert (card.owner.owner, card.owner.inherited, card.owner.inherited_from) == (
        "shop-team",
        True,
        "Service:payment",
    )
    assert card.customers.model_dump() == {
        "total": 4,
        "total_weight": 550_000,
        "by_plan": {"enterprise": 1, "pro": 2, "free": 1},
        "top": [
            {
                "name": "acme",
                "title": None,
                "plan": "enterprise",
                "weight": 500_000,
                "environments": ["prod-acme"],
            },
            {
                "name": "cogs",
                "title": None,
                "plan": "pro",
                "weight": 30_000,
                "environments": ["prod"],
            },
        ],
    }
    assert [i.key for i in card.open_incidents] == ["INC-3", "INC-1"]
    assert "customers entitled: 4 (1 enterprise, 2 pro, 1 free)" in card.text()


CELLS = """\
apiVersion: resilience/v1
kind: Environment
metadata: {name: production}
---
apiVersion: resilience/v1
kind: Environment
metadata: {name: cell-7}
spec: {tenant: initrode, parent: production}
"""


@pytest.mark.parametrize(
    ("asked", "name", "corrected"),
    [
        ("cell-7", "cell-7", False),
        ("Initrode", "cell-7", True),
        ("environment:production", "production", False),
        ("prodution", "production", True),
    ],
)
async def test_an_environment_is_found_by_its_name_or_by_the_tenant_it_serves(
    tmp_path: Path, asked: str, name: str, corrected: bool
) -> None:
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'cells.db'}")
    try:
        bodies = list(yaml.safe_load_all(CELLS))
        await load_documents(
            store, [Document("cells", i, b) for i, b in enumerate(bodies)], source="x"
        )
        graph = await build_graph(store)
    finally:
        await store.close()

    resolved = resolve_environment(graph, asked)

    assert (resolved.name, resolved.corrected_from is not None) == (name, corrected)


async def test_every_list_of_flags_keeps_the_same_order_kill_switches_then_recent_by_key() -> None:
    from benchmarks.synthetic import ANCHOR, load_synthetic

    store = await Store.open("sqlite+aiosqlite://")
    try:
        await load_synthetic(store, "small", seed=3)
        graph = await build_graph(store)
        # Change every third flag within the last day: recent ones among both groups.
        changed = sorted(graph.flags)[::3]
        async with store.transaction() as session:
            for i, name in enumerate(changed):
                session.add(
                    m.FlagChange(
                        owner_ref=f"FeatureFlag:{name}",
                        flag=name,
                        environment="prod-us",
                        at=ANCHOR - timedelta(hours=1 + i % 20),
                        by="rollout-bot",
                        from_state="off",
                        to_state="on",
                    )
                )

        def expected(names: set[str]) -> list[str]:
            flags = [graph.flags[n] for n in names]
            flags.sort(key=lambda f: (f.purpose != "kill-switch", f.name not in changed, f.key))
            return [f.key for f in flags]

        async def listed(**filters: str) -> list[str]:
            keys: list[str] = []
            offset = 0
            while True:
                page = await list_feature_flags(
                    store, graph, ANCHOR, limit=7, offset=offset, **filters
                )
                keys += [f.key for f in page.flags]
                assert page.page.total == len(expected(chosen))
                if page.page.next_cursor is None:
                    return keys
                offset = int(page.page.next_cursor)

        kinds = {f.purpose for f in graph.flags.values()}
        assert "kill-switch" in kinds
        assert len(kinds) > 2
        chosen = set(graph.flags)
        assert await listed() == expected(chosen)
        for purpose in sorted(kinds):
            chosen = {n for n, f in graph.flags.items() if f.purpose == purpose}
            assert await listed(purpose=purpose) == expected(chosen)
        service = max(graph.service_flags, key=lambda s: len(graph.service_flags[s]))
        chosen = flags_touching_service(graph, service)
        assert await listed(service=service) == expected(chosen)
        for feature, flags in sorted(graph.feature_flags.items()):
            chosen = set(flags)
            assert await listed(feature=feature) == expected(chosen)
    finally:
        await store.close()
