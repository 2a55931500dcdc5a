"""What changed: deployments and flag flips on one timeline, through dependencies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from resilience_mcp import models as m
from resilience_mcp.catalog import DEMO_ANCHOR
from resilience_mcp.catalog.files import Document
from resilience_mcp.catalog.loader import load_documents
from resilience_mcp.errors import InvalidInputError, NotFoundError
from resilience_mcp.graph import build_graph
from resilience_mcp.graph.changes import (
    change_scope,
    dependency_paths,
    list_recent_changes,
    parse_moment,
)
from resilience_mcp.graph.features import list_feature_flags
from resilience_mcp.store import Store
from tests.otel_demo import LOADED, load_otel_demo
from tests.support import load_yaml

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def hours_ago(hours: float) -> datetime:
    return NOW - timedelta(hours=hours)


async def deploy(store: Store, *deployments: tuple[str, str, datetime, str | None]) -> None:
    """Deployments as (name, service, time, environment)."""
    bodies: list[dict[str, Any]] = []
    for name, service, at, environment in deployments:
        spec = {"service": service, "version": "1.0.0", "deployTime": at.isoformat()}
        spec |= {"author": "dana", "url": f"https://ci.example.com/{name}"}
        if environment:
            spec["environment"] = environment
        bodies.append(
            {"apiVersion": "resilience/v1", "kind": "Deployment", "metadata": {"name": name}}
            | {"spec": spec}
        )
    documents = [Document("deployments", i, body) for i, body in enumerate(bodies, 1)]
    await load_documents(store, documents, source="ci")


async def flip(store: Store, flag: str, at: datetime, environment: str | None = "prod") -> None:
    """A flag change, recorded as the guarded write records one."""
    async with store.transaction() as session:
        session.add(
            m.FlagChange(
                owner_ref=f"FeatureFlag:{flag}",
                flag=flag,
                environment=environment,
                at=at,
                by="ines",
                from_state="off",
                to_state="on (50%)",
                reason="game day",
            )
        )


async def test_a_flipped_payment_flag_lists_under_payment_and_through_dependencies_under_checkout(
    store: Store,
) -> None:
    await load_otel_demo(store, now=LOADED)
    await flip(store, "paymentFailure", hours_ago(1))
    graph = await build_graph(store)

    payment = await list_recent_changes(store, graph, NOW, services=["payment"])
    checkout = await list_recent_changes(store, graph, NOW, services=["checkout"])
    flags = await list_feature_flags(store, graph, NOW, service="payment")

    [direct] = payment.changes
    [through] = checkout.changes
    assert (direct.kind, direct.key, direct.path, direct.by) == (
        "flag",
        "paymentFailure",
        ["payment"],
        "ines",
    )
    assert (through.key, through.service, through.path) == (
        "paymentFailure",
        "payment",
        ["checkout", "payment"],
    )
    assert through.summary == "flag paymentFailure in prod: off -> on (50%)"
    assert "(via checkout -> payment)" in checkout.text()
    assert flags.flags[0].changed_recently


@pytest.mark.parametrize(
    ("asked", "path"),
    [
        ("checkout", ["checkout"]),
        ("fraud-detection", ["fraud-detection"]),
        ("frontend", ["frontend", "checkout"]),
        ("accounting", None),
    ],
)
async def test_kafka_queue_problems_belong_to_checkout_and_fraud_detection(
    otel_store: Store, asked: str, path: list[str] | None
) -> None:
    await flip(otel_store, "kafkaQueueProblems", hours_ago(1))
    graph = await build_graph(otel_store)

    timeline = await list_recent_changes(otel_store, graph, NOW, services=[asked])

    # accounting uses kafka, but does not read the flag: the flag is not a change to it.
    assert [c.path for c in timeline.changes] == ([path] if path else [])


@pytest.mark.parametrize(
    ("asked", "change", "path"),
    [
        ("checkout", "dep-valkey-cart-7", ["checkout", "cart", "valkey-cart"]),
        ("frontend", "paymentFailure", ["frontend", "checkout", "payment"]),
        (
            "recommendation",
            "dep-astronomy-db-3",
            ["recommendation", "product-catalog", "astronomy-db"],
        ),
    ],
)
async def test_a_change_two_hops_away_appears_with_its_path(
    store: Store, asked: str, change: str, path: list[str]
) -> None:
    await load_otel_demo(store, now=LOADED)
    await deploy(
        store,
        ("dep-valkey-cart-7", "valkey-cart", hours_ago(2), "prod"),
        ("dep-astronomy-db-3", "astronomy-db", hours_ago(3), "prod"),
        ("dep-accounting-9", "accounting", hours_ago(4), "prod"),
    )
    await flip(store, "paymentFailure", hours_ago(5))
    graph = await build_graph(store)

    timeline = await list_recent_changes(store, graph, NOW, services=[asked])

    found = {c.name: c.path for c in timeline.changes}
    assert found[change] == path
    assert "dep-accounting-9" not in found
    deployment = next(c for c in timeline.changes if c.kind == "deployment")
    assert (deployment.by, deployment.link) == ("dana", f"https://ci.example.com/{deployment.name}")


async def test_dependency_paths_are_shortest_and_do_not_vary(otel_store: Store) -> None:
    graph = await build_graph(otel_store)

    paths = dependency_paths(graph, ["frontend-proxy"])

    assert paths["frontend-proxy"] == ["frontend-proxy"]
    assert paths["valkey-cart"] == ["frontend-proxy", "frontend", "cart", "valkey-cart"]
    assert paths["kafka"] == ["frontend-proxy", "frontend", "checkout", "kafka"]
    assert "load-generator" not in paths


WINDOWED = (
    ("dep-cart-1", "cart", hours_ago(1), "prod"),
    ("dep-cart-2", "cart", hours_ago(23), "prod"),
    ("dep-cart-3", "cart", hours_ago(25), "prod"),
    ("dep-cart-4", "cart", hours_ago(49), "prod"),
    ("dep-cart-5", "cart", NOW + timedelta(hours=1), "prod"),
)


@pytest.mark.parametrize(
    ("since", "until", "names"),
    [
        (None, None, ["dep-cart-1", "dep-cart-2"]),
        ("48h", None, ["dep-cart-1", "dep-cart-2", "dep-cart-3"]),
        ("2026-11-29T10:00:00Z", "24h", ["dep-cart-3", "dep-cart-4"]),
        # Both ends are inclusive: a change at exactly `until` or `since` is in.
        (None, "1h", ["dep-cart-1", "dep-cart-2", "dep-cart-3"]),
        ("2026-11-30T11:01", "2026-12-01T11:00+00:00", ["dep-cart-1", "dep-cart-2"]),
    ],
)
async def test_a_window_cuts_where_it_should(
    store: Store, since: str | None, until: str | None, names: list[str]
) -> None:
    await load_otel_demo(store, now=LOADED)
    await deploy(store, *WINDOWED)
    graph = await build_graph(store)

    timeline = await list_recent_changes(
        store,
        graph,
        NOW,
        services=["cart"],
        since=parse_moment(since, NOW, field="since"),
        until=parse_moment(until, NOW, field="until"),
    )

    assert [c.name for c in timeline.changes] == names
    assert timeline.page.total == len(names)


async def test_a_limit_cuts_the_newest_first_and_the_cursor_goes_on(store: Store) -> None:
    await load_otel_demo(store, now=LOADED)
    await deploy(store, *WINDOWED[:3])
    await flip(store, "cartFailure", hours_ago(2))
    await flip(store, "failedReadinessProbe", hours_ago(24))
    graph = await build_graph(store)

    pages = [
        await list_recent_changes(
            store, graph, NOW, services=["cart"], since=hours_ago(30), limit=2, offset=offset
        )
        for offset in (0, 2, 4)
    ]

    assert [[c.name for c in page.changes] for page in pages] == [
        ["dep-cart-1", "cartFailure"],
        ["dep-cart-2", "failedReadinessProbe"],
        ["dep-cart-3"],
    ]
    assert [(p.page.total, p.page.truncated, p.page.next_cursor) for p in pages] == [
        (5, True, "2"),
        (5, True, "4"),
        (5, False, None),
    ]
    assert "(showing 2 of 5 changes)" in pages[0].text()


@pytest.mark.parametrize(
    ("environment", "names", "note"),
    [
        (None, ["dep-cart-prod", "dep-cart-acme", "dep-cart-staging", "dep-cart-all"], None),
        ("prod", ["dep-cart-prod", "dep-cart-acme", "dep-cart-all"], None),
        # The acme cell records no cart of its own, so it uses prod's: prod's deploys reach it.
        (
            "acme",
            ["dep-cart-prod", "dep-cart-acme", "dep-cart-all"],
            "Took 'acme' for Environment prod-acme.",
        ),
        ("staging", ["dep-cart-staging", "dep-cart-all"], None),
    ],
)
async def test_an_environment_keeps_its_own_changes_its_tenant_cells_and_global_ones(
    otel_store: Store, environment: str | None, names: list[str], note: str | None
) -> None:
    await deploy(
        otel_store,
        ("dep-cart-prod", "cart", hours_ago(1), "prod"),
        ("dep-cart-acme", "cart", hours_ago(2), "prod-acme"),
        ("dep-cart-staging", "cart", hours_ago(3), "staging"),
        ("dep-cart-all", "cart", hours_ago(4), None),
    )
    graph = await build_graph(otel_store)

    timeline = await list_recent_changes(
        otel_store, graph, NOW, services=["cart"], environment=environment
    )

    assert [c.name for c in timeline.changes] == names
    assert timeline.notes == ([note] if note else [])
    tenants = {c.name: c.tenant for c in timeline.changes}
    assert tenants.get("dep-cart-acme", "acme") == "acme"


async def test_without_services_every_change_in_the_window_is_listed(otel_store: Store) -> None:
    await deploy(otel_store, ("dep-ad-1", "ad", hours_ago(1), "prod"))
    await flip(otel_store, "emailMemoryLeak", hours_ago(2), environment=None)
    graph = await build_graph(otel_store)

    timeline = await list_recent_changes(otel_store, graph, NOW)

    assert [(c.name, c.path) for c in timeline.changes] == [
        ("dep-ad-1", []),
        ("emailMemoryLeak", []),
    ]
    assert timeline.changes[1].service == "email"
    assert "2 change(s) to everything" in timeline.text()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("6h", NOW - timedelta(hours=6)),
        ("7d", NOW - timedelta(days=7)),
        ("90m", NOW - timedelta(minutes=90)),
        ("2026-11-30", datetime(2026, 11, 30, tzinfo=UTC)),
        ("2026-11-30T09:00:00+02:00", datetime(2026, 11, 30, 7, tzinfo=UTC)),
        (None, None),
    ],
)
def test_a_moment_is_a_time_or_a_duration_back_from_now(
    value: str | None, expected: datetime | None
) -> None:
    assert parse_moment(value, NOW, field="since") == expected


def test_a_moment_that_is_neither_is_refused_naming_the_value() -> None:
    with pytest.raises(InvalidInputError, match="The since value 'yesterday' is neither"):
        parse_moment("yesterday", NOW, field="since")


async def test_a_window_that_ends_before_it_starts_is_refused(otel_store: Store) -> None:
    graph = await build_graph(otel_store)

    with pytest.raises(InvalidInputError, match="give a since earlier than until"):
        await list_recent_changes(otel_store, graph, NOW, since=NOW, until=hours_ago(1))


async def test_an_unknown_service_is_refused_with_the_closest_names(otel_store: Store) -> None:
    graph = await build_graph(otel_store)

    with pytest.raises(NotFoundError, match="checkout"):
        await list_recent_changes(otel_store, graph, NOW, services=["checkot-svc"])


# A tenant cell that runs its own api and shares prod's search.
CELLS = """
apiVersion: resilience/v1
kind: Environment
metadata: {name: prod}
---
apiVersion: resilience/v1
kind: Environment
metadata: {name: prod-acme}
spec: {tenant: acme, parent: prod}
---
apiVersion: resilience/v1
kind: Service
metadata: {name: web}
spec:
  dependsOn: [api, search]
  environments: [{environment: prod}, {environment: prod-acme}]
---
apiVersion: resilience/v1
kind: Service
metadata: {name: api}
spec: {environments: [{environment: prod}, {environment: prod-acme}]}
---
apiVersion: resilience/v1
kind: Service
metadata: {name: search}
spec: {environments: [{environment: prod}]}
---
apiVersion: resilience/v1
kind: FeatureFlag
metadata: {name: api-cache}
spec:
  services: [api]
  states: [{environment: prod, enabled: true}, {environment: prod-acme, enabled: false}]
---
apiVersion: resilience/v1
kind: FeatureFlag
metadata: {name: search-ranker}
spec: {services: [search], states: [{environment: prod, enabled: true}]}
"""


async def load_cells(store: Store) -> None:
    await load_yaml(store, CELLS)
    await deploy(
        store,
        ("dep-api-prod", "api", hours_ago(1), "prod"),
        ("dep-api-acme", "api", hours_ago(2), "prod-acme"),
        ("dep-search-prod", "search", hours_ago(3), "prod"),
        ("dep-web-all", "web", hours_ago(4), None),
    )
    await flip(store, "api-cache", hours_ago(5), environment="prod")
    await flip(store, "search-ranker", hours_ago(6), environment="prod")


@pytest.mark.parametrize("services", [[], ["web"]], ids=["everything", "through-web"])
@pytest.mark.parametrize(
    ("environment", "names"),
    [
        # The cell's own api and flag state; prod's search and ranker, which it shares.
        ("acme", ["dep-api-acme", "dep-search-prod", "dep-web-all", "search-ranker"]),
        (
            "prod",
            [
                "dep-api-prod",
                "dep-api-acme",
                "dep-search-prod",
                "dep-web-all",
                "api-cache",
                "search-ranker",
            ],
        ),
    ],
)
async def test_a_tenant_cell_gets_the_changes_above_it_to_what_it_shares_only(
    store: Store, services: list[str], environment: str, names: list[str]
) -> None:
    await load_cells(store)
    graph = await build_graph(store)

    timeline = await list_recent_changes(
        store, graph, NOW, services=services, environment=environment
    )

    assert [c.name for c in timeline.changes] == names
    assert timeline.page.total == len(names)


@pytest.mark.parametrize(
    ("environment", "name", "service", "reached"),
    [
        ("prod-acme", "prod", "search", True),
        ("prod-acme", "prod", "api", False),
        ("prod-acme", "prod-acme", "api", True),
        ("prod-acme", None, "api", True),
        ("prod", "prod-acme", "api", False),
        # A service the catalog records nowhere is taken as shared with the cell above.
        ("prod-acme", "prod", "unrecorded", True),
    ],
)
async def test_a_change_scope_says_which_changes_reach_an_environment(
    store: Store, environment: str, name: str | None, service: str, reached: bool
) -> None:
    await load_yaml(store, CELLS)
    graph = await build_graph(store)

    scope = change_scope(graph, [environment], graph.instances)

    assert scope.covers(name, service) is reached


async def test_search_api_in_acmes_cell_shows_prod_eus_deployment_it_runs_on(
    demo_store: Store,
) -> None:
    graph = await build_graph(demo_store)
    since = DEMO_ANCHOR - timedelta(days=7)

    acme = await list_recent_changes(
        demo_store, graph, DEMO_ANCHOR, services=["search-api"], environment="acme", since=since
    )
    prod_eu = await list_recent_changes(
        demo_store, graph, DEMO_ANCHOR, services=["search-api"], environment="prod-eu", since=since
    )

    # Acme's cell runs no search-api of its own: prod-eu's serves it.
    summaries = [c.summary for c in acme.changes if c.service == "search-api"]
    assert "deploy search-api 3.19.12 to prod-eu: success" in summaries
    assert [c.name for c in acme.changes] == [c.name for c in prod_eu.changes]


SERVICES_BEFORE = """
apiVersion: resilience/v1
kind: Environment
metadata: {name: prod}
---
apiVersion: resilience/v1
kind: Team
metadata: {name: team-a}
---
apiVersion: resilience/v1
kind: Team
metadata: {name: team-b}
---
apiVersion: resilience/v1
kind: Service
metadata: {name: db}
---
apiVersion: resilience/v1
kind: Service
metadata: {name: cache}
---
apiVersion: resilience/v1
kind: Service
metadata: {name: web}
spec: {dependsOn: [api]}
---
apiVersion: resilience/v1
kind: Service
metadata: {name: api, description: The API}
spec: {owner: team-a, tier: 2, dependsOn: [db]}
"""
SERVICES_AFTER = SERVICES_BEFORE.replace(
    "metadata: {name: api, description: The API}\nspec: {owner: team-a, tier: 2, dependsOn: [db]}",
    "metadata: {name: api, description: Ours}\nspec: {owner: team-b, tier: 1, dependsOn: [cache]}",
)


async def test_a_sync_that_changes_an_owner_tier_or_dependencies_is_on_the_timeline(
    store: Store,
) -> None:
    await load_yaml(store, SERVICES_BEFORE, source="backstage")
    await load_yaml(store, SERVICES_AFTER, source="backstage")
    graph = await build_graph(store)
    now = m.utcnow()

    timeline = await list_recent_changes(store, graph, now, services=["web"], environment="prod")

    assert [(c.kind, c.field, c.summary, c.by) for c in timeline.changes] == [
        ("catalog", "owner", "owner of api: team-a -> team-b", "backstage"),
        ("catalog", "tier", "tier of api: 2 -> 1", "backstage"),
        ("catalog", "dependencies", "dependencies of api: +cache, -db", "backstage"),
    ]
    assert {(c.before, c.after) for c in timeline.changes} == {
        ("team-a", "team-b"),
        ("2", "1"),
        ("db", "cache"),
    }
    assert all(c.path == ["web", "api"] and c.environment is None for c in timeline.changes)
    assert "owner of api: team-a -> team-b by backstage (via web -> api)" in timeline.text()


async def test_a_catalog_edit_shows_only_under_the_services_it_bears_on(store: Store) -> None:
    await load_yaml(store, SERVICES_BEFORE)
    await load_yaml(store, SERVICES_AFTER)
    graph = await build_graph(store)
    now = m.utcnow()

    under_db = await list_recent_changes(store, graph, now, services=["db"])
    everything = await list_recent_changes(store, graph, now)
    before = await list_recent_changes(store, graph, now - timedelta(days=2))

    assert under_db.changes == []
    assert [c.field for c in everything.changes] == ["owner", "tier", "dependencies"]
    assert before.changes == []


@pytest.mark.parametrize(
    "second",
    [
        pytest.param(SERVICES_BEFORE, id="unchanged"),
        pytest.param(SERVICES_BEFORE.replace("The API", "Renamed"), id="unwatched-field"),
    ],
)
async def test_a_load_that_changes_no_watched_field_records_no_catalog_change(
    store: Store, second: str
) -> None:
    await load_yaml(store, SERVICES_BEFORE)
    await load_yaml(store, second)
    graph = await build_graph(store)

    timeline = await list_recent_changes(store, graph, m.utcnow())

    assert timeline.changes == []
