"""Impact: the OpenTelemetry demo's failure flags followed to customers, and the demo
catalog's incidents, whose answers were checked by hand against the catalog files."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from resilience_mcp.catalog import DEMO_ANCHOR, load_demo
from resilience_mcp.errors import InvalidInputError, NotFoundError
from resilience_mcp.graph.catalog import CatalogGraph, build_graph
from resilience_mcp.graph.impact import (
    compute_customer_impact,
    compute_impact,
    find_impact,
    plan_rank,
)
from resilience_mcp.models.impact import AffectedCustomer
from resilience_mcp.store import Store
from tests.graph.service_graphs import doc, load, otel_documents
from tests.support import load_yaml

pytestmark = pytest.mark.anyio

# What the demo's incident files say about the one open incident.
INC_2049_CUSTOMERS = {"initech", "fjordline-design", "maison-lumiere", "kestrel-kids"}
INC_2049_CUSTOMERS |= {"bluebird-vintage"}


@pytest.fixture
async def otel() -> AsyncIterator[CatalogGraph]:
    store = await Store.open("sqlite+aiosqlite://")
    try:
        yield await load(store, otel_documents())
    finally:
        await store.close()


@pytest.fixture
async def demo(demo_store: Store) -> CatalogGraph:
    return await build_graph(demo_store)


def names(customers: list[AffectedCustomer]) -> list[str]:
    return [c.name for c in customers]


# The OpenTelemetry demo


async def test_payment_failure_implicates_payment_then_checkout_then_frontend(
    otel: CatalogGraph,
) -> None:
    impact = find_impact(otel, otel.flags["paymentFailure"].services)

    assert impact.ranked == ["payment", "checkout", "frontend", "frontend-proxy", "load-generator"]
    assert impact.walk.path("frontend") == ["payment", "checkout", "frontend"]
    assert [impact.status(s) for s in impact.ranked] == ["failing"] + ["down"] * 4


async def test_payment_failure_reaches_every_customer_who_buys_or_browses_by_plan(
    otel: CatalogGraph,
) -> None:
    answer = compute_customer_impact(otel, flag="paymentFailure")

    assert answer.failing == ["payment"]
    assert [(f.name, f.status, f.depth) for f in answer.features] == [
        ("buy", "down", 0),
        ("browse", "down", 2),
    ]
    assert names(answer.customers) == ["big-retail", "mid-market", "small-biz", "hobby-shop"]
    assert answer.by_plan == {"enterprise": 1, "business": 1, "pro": 1, "free": 1}
    assert answer.total_weight == 1260


async def test_kafka_queue_problems_implicate_checkout_and_fraud_detection(
    otel: CatalogGraph,
) -> None:
    answer = compute_customer_impact(otel, flag="kafkaQueueProblems")

    assert answer.failing == ["checkout", "fraud-detection"]
    assert {f.name for f in answer.features} == {"buy", "fraud-screening", "browse"}
    # The bank pays more than the retailer; both are enterprise, so weight decides.
    assert names(answer.customers)[:2] == ["bank-partner", "big-retail"]
    assert answer.page.total == 5


async def test_losing_telemetry_degrades_services_but_takes_none_down(
    otel: CatalogGraph,
) -> None:
    impact = find_impact(otel, ["otel-collector"])

    assert impact.walk.hard_depth == {"otel-collector": 0}
    assert {"checkout", "payment", "frontend"} <= set(impact.walk.soft_depth)
    assert {f for f, hit in impact.features.items() if hit.down} == set()


async def test_customers_of_one_feature_are_those_entitled_to_it(otel: CatalogGraph) -> None:
    answer = compute_customer_impact(otel, feature="ads")

    assert names(answer.customers) == ["big-retail"]
    assert answer.started_from == "feature ads"


async def test_customer_impact_needs_somewhere_to_start(otel: CatalogGraph) -> None:
    with pytest.raises(InvalidInputError, match="Name failing services"):
        compute_customer_impact(otel)


# The demo catalog's incidents


async def test_inc_2049_takes_down_the_storefront_and_payouts_and_degrades_the_seller_portal(
    demo_store: Store, demo: CatalogGraph
) -> None:
    answer = await compute_impact(demo_store, demo, DEMO_ANCHOR, incident="inc-2049", limit=20)

    assert answer.failing == ["payments-api", "fraud-check", "stripe-gateway", "checkout"]
    assert answer.environment == "prod-eu"
    assert {s.name: s.status for s in answer.services if s.status != "failing"} == {
        "web-storefront": "down",
        "payouts": "down",
        "seller-portal": "degraded",
    }
    seller_portal = next(s for s in answer.services if s.name == "seller-portal")
    assert seller_portal.path == ["stripe-gateway", "payouts", "seller-portal"]
    assert [f.name for f in answer.features[:2]] == ["card-payments", "saved-cards"]


async def test_inc_2049_reaches_the_customers_the_incident_names_and_spares_acmes_own_cell(
    demo_store: Store, demo: CatalogGraph
) -> None:
    answer = await compute_impact(demo_store, demo, DEMO_ANCHOR, incident="INC-2049", limit=20)

    # Acme's dedicated cell below prod-eu runs its own copy of every failing service.
    assert set(names(answer.customers)) == INC_2049_CUSTOMERS
    assert answer.customers[0].name == "initech"
    assert answer.customers_by_plan == {"enterprise": 1, "business": 2, "pro": 1, "free": 1}
    assert "prod-eu-acme" not in answer.environments


async def test_inc_2049_offers_the_3ds_kill_switch_first_and_its_suspects_as_culprits(
    demo_store: Store, demo: CatalogGraph
) -> None:
    answer = await compute_impact(demo_store, demo, DEMO_ANCHOR, incident="INC-2049", limit=20)

    assert answer.flags[0].key == "payments-3ds-kill-switch"
    assert answer.flags[0].states == {"prod-eu": "off", "prod-eu-acme": "off"}
    named = [f.key for f in answer.flags if f.why.startswith("named by the incident")]
    assert set(named) == {"saved-cards-network-tokens", "payments-3ds-v2-exemptions"}
    suspects = [d.name for d in answer.deployments if d.suspected]
    assert suspects == ["dep-payments-api-0581", "dep-fraud-check-0800"]
    assert answer.owners[0].owner.owner == "team-payments"
    assert answer.owners[0].owner.on_call


async def test_inc_2049_was_seen_before_only_in_incidents_that_started_earlier(
    demo_store: Store, demo: CatalogGraph
) -> None:
    answer = await compute_impact(demo_store, demo, DEMO_ANCHOR, incident="INC-2049", limit=20)

    keys = [i.key for i in answer.past_incidents]
    assert keys[:3] == ["INC-2046", "INC-2044", "INC-2040"]
    assert "INC-2049" not in keys
    assert "INC-2048" not in keys
    assert answer.incident is not None
    assert all(i.started_at < answer.incident.started_at for i in answer.past_incidents)
    assert answer.past_incidents_page.total == len(keys)


async def test_inc_2044_in_acmes_tenant_cell_reaches_acme_alone(
    demo_store: Store, demo: CatalogGraph
) -> None:
    answer = await compute_impact(demo_store, demo, DEMO_ANCHOR, incident="INC-2044")

    assert answer.environment == "prod-eu-acme"
    assert names(answer.customers) == ["acme"]
    assert answer.flags[0].key == "bnpl-kill-switch"


async def test_inc_2033_reaches_every_prod_us_customer_it_names_and_no_one_elsewhere(
    demo_store: Store, demo: CatalogGraph
) -> None:
    answer = await compute_impact(demo_store, demo, DEMO_ANCHOR, incident="INC-2033", limit=50)

    assert {"globex", "umbrella-home", "hollowbrook-books"} <= set(names(answer.customers))
    assert all("prod-us" in c.environments for c in answer.customers)
    assert answer.down == 9
    assert answer.degraded == 8


@pytest.mark.parametrize(
    ("failing", "environment", "acme"),
    [
        # search-api has no copy in Acme's cell, which uses prod-eu's.
        pytest.param("search-api", "prod-eu", True, id="shared-service"),
        pytest.param("payments-api", "prod-eu", False, id="own-copy-in-the-cell"),
        # A failure of all of production reaches every cell below it.
        pytest.param("payments-api", "production", True, id="umbrella"),
        pytest.param("payments-api", "acme", True, id="tenant-by-name"),
    ],
)
async def test_a_tenant_cell_feels_a_failure_above_it_unless_it_runs_its_own_copy(
    demo: CatalogGraph, failing: str, environment: str, acme: bool
) -> None:
    answer = compute_customer_impact(demo, services=[failing], environment=environment)

    assert ("acme" in names(answer.customers)) is acme


async def test_customers_are_ranked_by_plan_then_weight(demo: CatalogGraph) -> None:
    answer = compute_customer_impact(demo, services=["auth-service"], limit=100)

    keys = [(plan_rank(c.plan), -c.weight) for c in answer.customers]
    assert keys == sorted(keys)
    assert list(answer.by_plan) == ["enterprise", "business", "pro", "free"]
    assert sum(answer.by_plan.values()) == answer.page.total == len(demo.customers)


async def test_impact_from_services_shows_the_last_days_deployments(
    demo_store: Store, demo: CatalogGraph
) -> None:
    answer = await compute_impact(demo_store, demo, DEMO_ANCHOR, services=["payments-api"])

    assert answer.deployments
    assert all(d.service == "payments-api" for d in answer.deployments)
    assert all(d.deploy_time >= answer.deployments_since for d in answer.deployments)
    times = [d.deploy_time for d in answer.deployments]
    assert times == sorted(times, reverse=True)


async def test_an_unknown_incident_is_refused_with_recent_keys(
    demo_store: Store, demo: CatalogGraph
) -> None:
    with pytest.raises(NotFoundError, match="Closest names: INC-2049"):
        await compute_impact(demo_store, demo, DEMO_ANCHOR, incident="INC-1")


async def test_the_impact_answer_is_the_same_on_every_backend(store: Store) -> None:
    await load_demo(store, now=DEMO_ANCHOR)
    graph = await build_graph(store)

    answer = await compute_impact(store, graph, DEMO_ANCHOR, incident="INC-2049", limit=20)

    assert set(names(answer.customers)) == INC_2049_CUSTOMERS
    assert [d.name for d in answer.deployments[:2]] == [
        "dep-payments-api-0581",
        "dep-fraud-check-0800",
    ]
    assert [i.key for i in answer.past_incidents[:2]] == ["INC-2046", "INC-2044"]
    assert answer.past_incidents[0].services == ["payments-api", "checkout"]


async def test_a_flag_that_names_nothing_reaches_no_one_and_says_why() -> None:
    store = await Store.open("sqlite+aiosqlite://")
    try:
        graph = await load(store, [*otel_documents(), doc("FeatureFlag", "orphan", {})])
    finally:
        await store.close()

    answer = compute_customer_impact(graph, flag="orphan")

    assert answer.page.total == 0
    assert answer.notes == ["The flag orphan names no feature and no service reading it."]


# Tenant cells: suspects where the failure is


async def test_inc_2044_in_acmes_cell_suspects_no_deployment_to_prod_eus_own_copies(
    demo_store: Store, demo: CatalogGraph
) -> None:
    answer = await compute_impact(demo_store, demo, DEMO_ANCHOR, incident="INC-2044")

    # prod-eu's payments-api 4.19.3 and checkout 7.9.1 shipped in the window too, but Acme's
    # cell runs its own copies of both.
    assert [(d.name, d.environment) for d in answer.deployments] == [
        ("dep-checkout-0456", "prod-eu-acme")
    ]
    assert "deployed: checkout 7.9.0 to prod-eu-acme at 2026-11-19 06:15Z" in answer.text()


async def test_failing_services_in_a_tenant_cell_suspect_its_own_deployments_only(
    demo_store: Store, demo: CatalogGraph
) -> None:
    answer = await compute_impact(
        demo_store, demo, DEMO_ANCHOR, services=["payments-api"], environment="acme"
    )

    # payments-api 4.20.0 went to prod-eu at 09:24, not to Acme's own payments-api.
    assert [(d.name, d.environment) for d in answer.deployments] == [
        ("dep-payments-api-0580", "prod-eu-acme")
    ]


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
metadata: {name: api}
spec: {dependsOn: [search], environments: [{environment: prod}, {environment: prod-acme}]}
---
apiVersion: resilience/v1
kind: Service
metadata: {name: search}
spec: {environments: [{environment: prod}]}
---
apiVersion: resilience/v1
kind: Deployment
metadata: {name: dep-api-prod}
spec: {service: api, environment: prod, deployTime: "2026-12-01T10:00:00Z"}
---
apiVersion: resilience/v1
kind: Deployment
metadata: {name: dep-api-acme}
spec: {service: api, environment: prod-acme, deployTime: "2026-12-01T10:10:00Z"}
---
apiVersion: resilience/v1
kind: Deployment
metadata: {name: dep-search-prod}
spec: {service: search, environment: prod, deployTime: "2026-12-01T10:20:00Z"}
"""


@pytest.mark.parametrize(
    ("environment", "suspects"),
    [
        ("prod-acme", ["dep-search-prod", "dep-api-acme"]),
        ("prod", ["dep-search-prod", "dep-api-acme", "dep-api-prod"]),
    ],
)
async def test_a_deployment_above_a_cell_is_a_suspect_there_only_for_what_it_shares(
    store: Store, environment: str, suspects: list[str]
) -> None:
    await load_yaml(store, CELLS)
    graph = await build_graph(store)

    answer = await compute_impact(
        store, graph, DEMO_ANCHOR, services=["api", "search"], environment=environment
    )

    assert [d.name for d in answer.deployments] == suspects


# Flag changes beside deployments


async def test_inc_2044_shows_the_flag_flip_that_started_it_beside_the_deployments(
    demo_store: Store, demo: CatalogGraph
) -> None:
    answer = await compute_impact(demo_store, demo, DEMO_ANCHOR, incident="INC-2044")

    # bnpl-klarna on at 09:40, a minute before it started; the rest is the mitigation.
    assert [(c.key, c.from_state, c.to_state, f"{c.at:%H:%M}") for c in answer.flag_changes] == [
        ("bnpl-kill-switch", "on", "off", "13:20"),
        ("bnpl-klarna", "on 100%", "off", "12:55"),
        ("bnpl-kill-switch", "off", "on", "10:58"),
        ("bnpl-klarna", "off", "on 100%", "09:40"),
    ]
    cause = answer.flag_changes[-1]
    assert (cause.environment, cause.by) == ("prod-eu-acme", "camila-rojas")
    assert answer.flag_changes_page.total == 4
    text = answer.text()
    assert (
        "flag changed: bnpl-klarna in prod-eu-acme off -> on 100% at 2026-11-19 09:40Z "
        "by camila-rojas" in text
    )
    assert "bnpl-klarna (prod-eu-acme off; changed 2026-11-19 12:55Z)" in text


async def test_flag_changes_are_cut_to_the_limit_and_say_how_many(
    demo_store: Store, demo: CatalogGraph
) -> None:
    answer = await compute_impact(demo_store, demo, DEMO_ANCHOR, incident="INC-2044", limit=2)

    assert [c.key for c in answer.flag_changes] == ["bnpl-kill-switch", "bnpl-klarna"]
    assert (answer.flag_changes_page.total, answer.flag_changes_page.truncated) == (4, True)


async def test_inc_2040_puts_the_experiment_ramp_before_it_beside_the_suspected_deployment(
    demo_store: Store, demo: CatalogGraph
) -> None:
    answer = await compute_impact(demo_store, demo, DEMO_ANCHOR, incident="INC-2040", limit=20)

    assert answer.incident is not None
    ramp = answer.flag_changes[-1]
    assert (ramp.key, ramp.environment, ramp.from_state, ramp.to_state, ramp.by) == (
        "recommendations-ranker-v2",
        "prod-us",
        "treatment 10%",
        "treatment 50%",
        "ravi-shankar",
    )
    assert ramp.at == answer.incident.started_at - timedelta(minutes=3)
    assert [c.key for c in answer.flag_changes] == [
        "recommendations-kill-switch",
        "recommendations-ranker-v2",
        "search-semantic-kill-switch",
        "recommendations-kill-switch",
        "recommendations-ranker-v2",
    ]
    named = next(f for f in answer.flags if f.key == "recommendations-ranker-v2")
    assert named.why.startswith("named by the incident")
    assert named.changed_at == datetime(2026, 11, 10, 15, 14, tzinfo=UTC)


# More of the demo catalog's incidents, each checked by hand against the catalog files:
# who needs the failing services where the incident is, which features those implement,
# the customers entitled to them and served there, and the deployments in the day before.


@dataclass(frozen=True)
class Checked:
    key: str
    environment: str
    # Services other than the failing ones, down or degraded.
    reached: dict[str, str]
    # A kill switch the responders used (or would reach for), with its state there.
    kill_switch: tuple[str, str]
    by_plan: dict[str, int]
    deployments: list[str]
    suspected: list[str]
    flag_changes: list[str]


CHECKED = [
    # A flag ramp: every service named failing, nothing above them left to take down.
    Checked(
        key="INC-2040",
        environment="prod-us",
        reached={},
        kill_switch=("recommendations-kill-switch", "off"),
        by_plan={"enterprise": 2, "business": 2, "pro": 2, "free": 1},
        deployments=[
            "dep-ml-feature-store-0484",
            "dep-recommendations-0199",
            "dep-payments-api-0557",
            "dep-search-api-0453",
            "dep-checkout-0441",
        ],
        suspected=["dep-ml-feature-store-0484"],
        flag_changes=[
            "recommendations-kill-switch",
            "recommendations-ranker-v2",
            "search-semantic-kill-switch",
            "recommendations-kill-switch",
            "recommendations-ranker-v2",
        ],
    ),
    # payments-db out of connections: gift-cards and payouts need ledger or the database
    # hard; fraud-check reads the database and seller-portal payouts softly.
    Checked(
        key="INC-2031",
        environment="prod-us",
        reached={
            "web-storefront": "down",
            "payouts": "down",
            "gift-cards": "down",
            "fraud-check": "degraded",
            "seller-portal": "degraded",
        },
        kill_switch=("payments-3ds-kill-switch", "off"),
        by_plan={"enterprise": 2, "business": 2, "pro": 2, "free": 1},
        deployments=["dep-payments-api-0509", "dep-payments-api-0512", "dep-checkout-0392"],
        suspected=["dep-payments-api-0509"],
        flag_changes=[],
    ),
    # cart 5.19.0 in prod-eu: Acme's cell runs its own cart and checkout, so neither its
    # deployments nor its customer count.
    Checked(
        key="INC-2036",
        environment="prod-eu",
        reached={},
        kill_switch=("bnpl-kill-switch", "off"),
        by_plan={"enterprise": 1, "business": 2, "pro": 1, "free": 1},
        deployments=["dep-cart-0468", "dep-checkout-0428"],
        suspected=["dep-cart-0468"],
        flag_changes=[],
    ),
    # Black Friday: the suspect shipped two days before, outside the window, and is shown.
    Checked(
        key="INC-2046",
        environment="prod-us",
        reached={
            "web-storefront": "down",
            "payouts": "down",
            "fraud-check": "degraded",
            "seller-portal": "degraded",
        },
        kill_switch=("gift-cards-kill-switch", "off"),
        by_plan={"enterprise": 2, "business": 2, "pro": 2, "free": 1},
        deployments=["dep-payments-api-0575", "dep-payments-api-0577"],
        suspected=["dep-payments-api-0575"],
        flag_changes=["gift-cards-kill-switch", "gift-cards-kill-switch"],
    ),
    # Shipping in prod-eu: the storefront reads order tracking softly. Acme's cell has no
    # shipping of its own, so Acme feels it; the prod-us rollout of the suspect does not count.
    Checked(
        key="INC-2048",
        environment="prod-eu",
        reached={"web-storefront": "degraded"},
        kill_switch=("recommendations-kill-switch", "off"),
        by_plan={"enterprise": 2, "business": 2, "pro": 1, "free": 1},
        deployments=["dep-shipping-0130"],
        suspected=["dep-shipping-0130"],
        flag_changes=["checkout-express-pay-position"],
    ),
]


@pytest.mark.parametrize("checked", CHECKED, ids=[c.key for c in CHECKED])
async def test_a_demo_incident_has_the_impact_checked_by_hand(
    demo_store: Store, demo: CatalogGraph, checked: Checked
) -> None:
    answer = await compute_impact(demo_store, demo, DEMO_ANCHOR, incident=checked.key, limit=50)

    assert answer.environment == checked.environment
    assert {s.name: s.status for s in answer.services if s.status != "failing"} == checked.reached
    assert (answer.down, answer.degraded) == (
        sum(v == "down" for v in checked.reached.values()),
        sum(v == "degraded" for v in checked.reached.values()),
    )
    switch, state = checked.kill_switch
    offered = {f.key: f.states for f in answer.flags if f.kill_switch}
    assert offered[switch][checked.environment] == state
    assert answer.customers_by_plan == checked.by_plan
    assert answer.customers_page.total == sum(checked.by_plan.values())
    assert [d.name for d in answer.deployments] == checked.deployments
    assert [d.name for d in answer.deployments if d.suspected] == checked.suspected
    assert [c.key for c in answer.flag_changes] == checked.flag_changes
